// A reference model of what a generated HTTP server answers: given a spec
// and the bytes a client sends on one connection, the answers the server
// must send, in order, and whether it then closes or waits for more.
//
// It is written from RFC 9112/9110 and the README's "HTTP" section, as a
// second implementation beside the generated parser (http_parse.cc), so
// that a differential fuzzer (tests/diff_fuzz_test.cc) can compare the two.
// Which responses exist is the compiler's decision, not the model's: answers
// are indices into build_response_table(spec).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "http.h"
#include "routes.h"
#include "spec.h"

namespace asmsrv {

/// One response the server sends.
struct ModelAnswer {
  int response = -1;      // index into ResponseTable::responses
  int status = 0;         // that response's status
  ConnHeader head = ConnHeader::close;  // which of its heads: what it says about the connection
  bool body = true;       // false for HEAD (the head alone; 204 has no body anyway)
  bool closes = false;    // the server closes the connection after it (its head says so)
  std::string why;        // "GET /health", "400: no Host in HTTP/1.1", ...
  std::string query;      // the target's query, from its '?' ("" if none): a redirect's Location ends with it
};

/// What the server does with the bytes of one connection.
struct ModelResult {
  std::vector<ModelAnswer> answers;
  /// true: the server closes after the last answer (it reads nothing more),
  /// also after a keep-alive answer whose chunked body then turned out malformed;
  /// false: it waits for more input (the rest of a head or a body, or the
  /// next request) and sends nothing further unless more comes.
  bool closes = false;
  std::string end;        // why it closes or what it waits for
};

class HttpModel {
 public:
  explicit HttpModel(const Spec& spec);

  const Spec& spec() const { return spec_; }
  const ResponseTable& table() const { return table_; }

  /// The answers to `bytes`, everything a client sent on one connection
  /// (several pipelined requests, possibly ending inside one).
  ModelResult run(std::string_view bytes) const;

 private:
  struct Request;  // what parsing one head decided
  Request parse(std::string_view head) const;
  int route(int method, std::string_view path) const;

  Spec spec_;
  ResponseTable table_;
};

}  // namespace asmsrv
