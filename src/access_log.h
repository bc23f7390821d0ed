// The logs a spec asks for: one line per request (log.requests) and one per
// connection (log.connections), each built in line_buf and written with one
// write() so that lines from several processes never interleave.
#pragma once

#include "client_addr.h"
#include "gen.h"
#include "http_date.h"
#include "http_parse.h"
#include "runtime.h"

namespace asmsrv {

class AccessLog : public Gen {
 public:
  AccessLog(const Spec& spec, Builder& b, Runtime& rt);
  /// Longest a logged header value may grow to once escaped; the rest is cut.
  static constexpr int kHeaderBytes = 2048;
  /// The same for a JSON line's method and protocol.
  static constexpr int kWordBytes = 64;

  /// Subroutine, rbx = record, rbp/r14 = the request buffer: one access-log
  /// line, in spec.log_format, for the response prepared last (status and
  /// body bytes given); `req` and `date` for the fields the format logs.
  Label request(Label status, Label body_bytes, const RequestVars& req, HttpDate& date);
  /// With uploads: after a 201, the line also says where the body was
  /// stored (`location`, `len`: qwords of the path, set by the upload).
  void log_stored(Label location, Label len);
  /// Subroutine, rbx = record: "connection from ADDR:PORT, bytes read: N".
  Label connection();
  void emit();

 private:
  /// Inline: the bytes of `text` at rdi, which is advanced.
  void put(const std::string& text);
  /// Inline: eax = the status, rax = the body bytes, each appended.
  void put_number(Label var, Width w);
  /// Inline: "[06/Nov/1994:08:49:37 +0000]" or "1994-11-06T08:49:37Z" at rdi,
  /// copied from the Date line (refreshed first). Clobbers rax, rsi.
  void put_time();
  /// Inline: a header value kept by the parser, escaped, between `quote`s;
  /// `missing` when the request had none. Zeroes its length for the next.
  void put_header(Label value, Label len, const std::string& quote, const std::string& missing);
  void emit_request();
  void emit_escape();
  void emit_word();

  Runtime& rt_;
  AddressText addr_text_;
  /// Inline: " stored /path" (asmsrv) or ,"stored":"/path" (json) after a 201.
  void put_stored();
  Label request_, connection_, status_, body_bytes_, escape_, word_, stored_, stored_len_;
  size_t line_bytes_ = 0;
  RequestVars req_;
  HttpDate* date_ = nullptr;
  bool want_request_ = false, want_connection_ = false;
};

}  // namespace asmsrv
