// Parsing a request head: where it ends, the request line, the header fields
// that matter, the rules across fields (RFC 9112), then a tail call to routing.
// The answer is a response index in eax.
#pragma once

#include "gen.h"
#include "routes.h"

namespace asmsrv {

/// What parse_request leaves for routing, responses and the logs: one
/// variable each in .bss, valid until the next request is parsed.
struct RequestVars {
  Label method, minor, close, keepalive, host, cl_count;      // dwords
  /// Transfer-Encoding (dword): one of the kTe values below.
  Label te;
  /// Expect (dword): one of the kExpect values below.
  Label expect;
  /// Only with uploads (id -1 otherwise), dword: 1 when a Transfer-Encoding
  /// coding other than "chunked" (gzip...) came before it. A dropped body
  /// may have one; a stored body cannot be decoded (501).
  Label te_coded;
  Label content_length, path, path_len, head_len;             // qwords
  /// Only when the access log's format logs them (id -1 otherwise): the
  /// value of the last Referer / User-Agent field, a pointer into the buffer
  /// and its length (0: none). The log zeroes the lengths once it is written.
  Label referer, referer_len, user_agent, user_agent_len;     // qwords
  /// Only when some response is an entity (id -1 otherwise): the values of
  /// the fields that choose its answer, a pointer into the buffer and a
  /// length (0: none; the last such field wins). Zeroed for each request.
  Label accept_encoding, accept_encoding_len, if_none_match, if_none_match_len;  // qwords
  Label range, range_len, if_range, if_range_len;                              // qwords
  /// Only when some response is read from disk (its Last-Modified).
  Label if_modified_since, if_modified_since_len;                              // qwords
  /// Only when some response is a redirect: the query, from its '?'.
  Label query, query_len;                                                      // qwords
};

/// RequestVars::te, from the codings of every Transfer-Encoding field in
/// order (RFC 9112 6.1): none; some, the last not "chunked"; "chunked" last
/// (a chunked body follows); "chunked" and then another coding (400).
inline constexpr int kTeNone = 0, kTeOther = 1, kTeChunked = 2, kTeChunkedNotLast = 3;
/// RequestVars::expect: no Expect field; "100-continue" (RFC 9110 10.1.1,
/// case-insensitive); anything else (417).
inline constexpr int kExpectNone = 0, kExpectContinue = 1, kExpectOther = 2;

class HttpParse : public Gen {
 public:
  HttpParse(const Spec& spec, Builder& b, const ResponseTable& table);
  const RequestVars& vars() const { return v_; }

  // Subroutines; rbx = the connection record, rbp = its buffer, r14 = bytes in it.
  Label find_head_end() const { return find_head_end_; }  // rax = head length or 0
  Label parse_request() const { return parse_request_; }  // eax = response index
  Label too_large() const { return too_large_; }          // eax = 414 or 431

  /// Emits the subroutines; parse_request ends in a tail call to `route`.
  void emit(Label route);


 private:
  /// s = the first byte of the buffer that is not CR or LF (RFC 9112 2.2:
  /// empty lines before a request line), then on to `start`; to `none`
  /// when every byte is. Uses eax.
  void skip_empty_lines(Reg s, Label none, Label start, const std::string& why_none);
  void emit_find_head_end();
  void emit_too_large();
  void emit_method(Label target);
  void emit_target(Label version);
  void emit_version();
  void emit_headers(Label line);
  void emit_host(Label next);
  void emit_content_length(Label next);
  /// A comma-separated list in the value r11..r9 (RFC 9110 5.6.1): at
  /// `element`, separators and whitespace are skipped (at `skip`); then on
  /// to `start` with r11 at an element, or to `none` at the value's end.
  void list_element(Label element, Label skip, Label none, Label start, const std::string& why_none);
  void emit_connection(Label next);
  void emit_transfer_encoding(Label next);
  void emit_expect(Label next);
  void emit_checks(Label route);
  static std::string name_table(const std::vector<std::pair<std::string, int>>& names);
  void emit_find_name();
  // The numbers of value_tokens.
  static constexpr int kTokenClose = 1, kTokenKeepAlive = 2, kTokenChunked = 3, kToken100Continue = 4;

  const ResponseTable& t_;
  RequestVars v_;
  Label char_class_, slash_;
  Label find_head_end_, parse_request_, too_large_, bad_request_;
  Label find_name_, method_names_, value_tokens_;
};

}  // namespace asmsrv
