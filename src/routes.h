// Routing, decided at compile time: every response the server can send,
// with its three possible heads, and which one answers which request.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "http.h"
#include "spec.h"

namespace asmsrv {

/// How a response is made at run time (see response.h).
enum class ResponseKind : uint8_t {
  fixed,  // a head and a body made at compile time, the Date line made once a second
};

/// One response, ready to be laid out in .rodata.
struct CompiledResponse {
  ResponseKind kind = ResponseKind::fixed;
  std::string what;                 // "GET /index.html", "400 for a malformed request"
  int status = 200;
  std::array<std::string, 3> heads; // by ConnHeader: close, keep-alive, keep-alive 1.0
  bool always_close = false;        // protocol errors end the connection
  std::string body;                 // the inline body, or
  std::string file;                 // a file embedded with incbin
  uint64_t body_size = 0;
};

/// The responses for one exact path.
struct PathRoutes {
  std::string path;
  std::array<int, kMethodCount + 1> by_method;  // response index by Method, -1: none
  int not_allowed = -1;                         // 405 with Allow, when some method is missing
};

struct ResponseTable {
  std::vector<CompiledResponse> responses;
  std::vector<PathRoutes> paths;  // "routes" specs
  int catch_all = -1;             // "response" specs: every path and method
  int not_found = -1;
  int bad_request = -1;           // 400
  int content_too_large = -1;     // 413
  int uri_too_long = -1;          // 414
  int headers_too_large = -1;     // 431
  int not_implemented = -1;       // 501
  int version_not_supported = -1; // 505
};

/// Every response of an HTTP spec (`response` or `routes`).
ResponseTable build_response_table(const Spec& spec);

}  // namespace asmsrv
