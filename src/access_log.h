// The logs a spec asks for: one line per request (log.requests) and one per
// connection (log.connections), each built in line_buf and written with one
// write() so that lines from several processes never interleave.
#pragma once

#include "client_addr.h"
#include "gen.h"
#include "http_parse.h"
#include "runtime.h"

namespace asmsrv {

class AccessLog : public Gen {
 public:
  AccessLog(const Spec& spec, Builder& b, Runtime& rt);
  /// Subroutine, rbx = record, rbp/r14 = the request buffer: one access-log
  /// line for the response prepared last (status and body bytes given).
  Label request(Label status, Label body_bytes);
  /// Subroutine, rbx = record: "connection from ADDR:PORT, bytes read: N".
  Label connection();
  void emit();

 private:
  Runtime& rt_;
  AddressText addr_text_;
  Label request_, connection_, status_, body_bytes_;
  bool want_request_ = false, want_connection_ = false;
};

}  // namespace asmsrv
