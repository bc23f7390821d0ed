// Responses: the table of every response the server can send, laid out at
// compile time, and prepare_response, which turns a response index into what
// the connection record sends (its iov). A response has a kind: the kind
// says which parts are made at run time. Today's kind, "fixed", is a
// precomputed head, the Date line made once a second, and a precomputed
// body. A new kind (a body from a file, say) is a new case in prepare and,
// if it sends differently, in flush.
#pragma once

#include "gen.h"
#include "http_date.h"
#include "http_parse.h"
#include "routes.h"
#include "runtime.h"

namespace asmsrv {

/// A record of the `responses` table.
enum class RespField { head, len_close, len_keep, len_keep10, body, body_len, status, flags };
inline constexpr Layout<8> kRespLayout{{{
    {"head", 4, "offset of the first head in response_heads"},
    {"len_close", 4, "length of the head with Connection: close (without its last CR LF)"},
    {"len_keep", 4, "... for HTTP/1.1 keep-alive"},
    {"len_keep10", 4, "... with Connection: keep-alive (HTTP/1.0)"},
    {"body", 4, "offset of the body in response_bodies"},
    {"body_len", 4, "length of the body"},
    {"status", 4, "the status code, for the log"},
    {"flags", 4, "bits 0-7: the kind; bit 8: always close the connection after it"},
}}};
inline constexpr int kRespAlwaysClose = 1 << 8;
inline MemOp resp(Reg base, RespField f) { return field(kRespLayout, "resp_", base, f); }

class Responses : public Gen {
 public:
  Responses(const Spec& spec, Builder& b, Runtime& rt, const ResponseTable& table, const RequestVars& req);

  Label table() const { return responses_; }
  /// Subroutine: eax = response index, rbx = the record, its conn_mode
  /// already decided -> record.iov = its parts; resp_status and resp_body_bytes set
  /// for the log. Keeps rbx, rbp, r12-r15.
  Label prepare() const { return prepare_; }
  Label status() const { return status_; }       // dd: status of the last response
  Label body_bytes() const { return body_bytes_; }  // dq: its body bytes
  HttpDate& date() { return date_; }
  void emit();

 private:
  void emit_fixed(Label l);
  Runtime& rt_;
  const ResponseTable& t_;
  const RequestVars& req_;
  HttpDate date_;
  Label heads_, bodies_, responses_, prepare_, status_, body_bytes_;
};

}  // namespace asmsrv
