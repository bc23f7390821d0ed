// Responses: the table of every response the server can send, laid out at
// compile time, and prepare_response, which turns a response index into the
// six parts the connection record sends (IovPart, abi.h). A response has a
// kind, which says which parts are made at run time:
//
//   fixed     a head and a body made at compile time.
//   entity    a 200 with a body. It has one representation per content
//             coding (br, gzip, identity), each with its own field lines and
//             body. Accept-Encoding chooses one; If-None-Match may make it a
//             304; Range a 206 or 416. Each answer is the status line and a
//             prefix of the representation's field lines, plus, for 206 and
//             416, Content-Range and Content-Length made in the scratch.
//   redirect  a fixed head ending in a Location, the request's query after it.
//
// Every kind ends the same way: the Connection line for the record's mode,
// the Date line (made once a second), and the body, none for HEAD.
#pragma once

#include "gen.h"
#include "http_date.h"
#include "http_parse.h"
#include "routes.h"
#include "runtime.h"

namespace asmsrv {

/// A record of the `responses` table.
enum class RespField { head, head_len, body, body_len, status, flags, reps, spare };
inline constexpr Layout<8> kRespLayout{{{
    {"head", 4, "offset of the head in response_heads (an entity: its 200 status line)"},
    {"head_len", 4, "its length"},
    {"body", 4, "offset of the body in response_bodies"},
    {"body_len", 4, "length of the body"},
    {"status", 4, "the status code, for the log"},
    {"flags", 4, "bits 0-7: the kind; bit 8: always close; bits 16-18: an entity's codings"},
    {"reps", 4, "an entity: the index of its first record in representations"},
    {"spare", 4, "0: a record is 32 bytes, so that an index shifts into an offset"},
}}};
inline constexpr int kRespAlwaysClose = 1 << 8;
inline constexpr int kRespCodingShift = 16;
inline MemOp resp(Reg base, RespField f) { return field(kRespLayout, "resp_", base, f); }

/// A record of the `representations` table: one coding of an entity.
enum class RepField { fields, len_shared, len_304, len_ranged, len_full, body, body_len, etag };
inline constexpr Layout<8> kRepLayout{{{
    {"fields", 4, "offset of its field lines in response_heads"},
    {"len_shared", 4, "what a 416 sends of them: the response's own and the spec's headers"},
    {"len_304", 4, "... a 304: and ETag, Cache-Control, Vary"},
    {"len_ranged", 4, "... a 206: and Content-Type, Content-Encoding, Accept-Ranges"},
    {"len_full", 4, "... a 200: all, Content-Length too"},
    {"body", 4, "offset of the body in response_bodies"},
    {"body_len", 4, "length of the body"},
    {"etag", 4, "offset of the ETag's value in response_heads (18 bytes, quotes included)"},
}}};
inline MemOp rep(Reg base, RepField f) { return field(kRepLayout, "rep_", base, f); }

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
  void emit_entity(Label l);
  void emit_redirect(Label l);
  void emit_finish();
  void emit_choose_coding();
  void emit_etag_listed();
  void emit_parse_range();
  /// Inline: the 18 bytes of an ETag at `tag` and at rdx differ -> `differ`. Uses rax.
  void same_etag(Reg tag, Label differ);
  /// Inline: rsi past spaces and tabs, up to rdi. No other register.
  void skip_ows(const std::string& hint);
  /// iov[part] = { rsi-or-reg, len }.
  void set_part(IovPart p, Operand base, Operand len, const std::string& what);
  void status_line(Label text, size_t len, int status);
  /// Inline: iov[status] = the head of the response at r10.
  void head_part(const std::string& what);
  /// Inline: to `to` when r's low byte is one of `chars`.
  void jmp_if_one_of(Reg r, std::string_view chars, Label to);
  Runtime& rt_;
  const ResponseTable& t_;
  const RequestVars& req_;
  HttpDate date_;
  bool entities_ = false, redirects_ = false;
  Label heads_, bodies_, responses_, reps_, prepare_, status_, body_bytes_, finish_;
  Label conn_close_, conn_keep10_, crlf_;
  Label status_304_, status_206_, status_416_, range_text_, length_text_, unsatisfied_text_;
  Label choose_coding_, etag_listed_, parse_range_, range_number_;
};

}  // namespace asmsrv
