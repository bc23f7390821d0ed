// Routing, decided at compile time: every response the server can send,
// with its three possible heads, and which one answers which request.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "http.h"
#include "site.h"
#include "spec.h"

namespace asmsrv {

/// How a response is made at run time (see response.h).
enum class ResponseKind : uint8_t {
  fixed,     // a head and a body made at compile time, the Date line made once a second
  entity,    // a 200 with a body: a representation chosen by Accept-Encoding, then 200,
             // 304 (If-None-Match), 206 or 416 (Range), made from slices of its fields
  redirect,  // a head made at compile time ending in a Location, the request's query after it
  disk,      // a file read at run time from a static site's root: opened, checked, sent with sendfile
  upload,    // a request body stored in an upload's root: 201 Created, its Location made at run time
};

/// A static site read at run time ("root"): what its disk responses need.
struct DiskSite {
  std::string prefix;        // the URL prefix, ending in '/'
  int root = -1;             // its directory in run_time_roots()
  std::string index;         // the file that answers for a directory
  std::string index_type;    // the index's Content-Type
  bool hidden = false;       // serve names starting with '.'
};

/// An upload read at run time: what its answers need.
struct UploadSite {
  std::string prefix;        // the URL prefix, ending in '/'
  int root = -1;             // its directory in run_time_roots()
  bool overwrite = false;
  bool fsync = false;
  int mode = 0644;
  int64_t max_bytes = 0;
};

/// The directories the server opens at start, each once: static sites'
/// roots, then uploads' roots, in spec order.
std::vector<std::string> run_time_roots(const Spec& spec);

/// One representation of an entity: its bytes and the field lines that
/// describe it, laid out so that each answer is a prefix of them.
struct CompiledRep {
  Coding coding = Coding::identity;
  /// Field lines, each ending in CR LF: the response's own and the spec's
  /// headers; then ETag, Cache-Control and Vary; then Content-Type,
  /// Content-Encoding and Accept-Ranges; then Content-Length. A 416 sends
  /// the first len_shared bytes, a 304 len_304, a 206 len_ranged, a 200 all.
  EntityFields fields;
  std::string etag;       // with its quotes
  std::string body;       // the bytes, or
  std::string file;       // a file embedded with incbin
  uint64_t size = 0;
};

/// One response, ready to be laid out in .rodata.
struct CompiledResponse {
  ResponseKind kind = ResponseKind::fixed;
  std::string what;                 // "GET /index.html", "400 for a malformed request"
  int status = 200;
  /// fixed: the status line and every field line but Connection, each
  /// ending in CR LF. redirect: the same, ending in the Location's value
  /// without its CR LF. entity: the 200 status line.
  std::string head;
  bool always_close = false;        // protocol errors end the connection
  std::string body;                 // fixed: the inline body, or
  std::string file;                 // a file embedded with incbin
  uint64_t body_size = 0;
  std::vector<CompiledRep> reps;    // entity: in Coding order, identity last
  int disk_site = -1;               // disk: its site in ResponseTable::disk_sites; head: the
                                    // field lines its answers share (Accept-Ranges, the spec's headers)
                                    // upload: its site in ResponseTable::upload_sites; head: the
                                    // 201's status line and field lines, the Location after them
};

/// The responses for one exact path.
struct PathRoutes {
  std::string path;
  std::array<int, kMethodCount + 1> by_method;  // response index by Method, -1: none
  int not_allowed = -1;                         // 405 with Allow, when some method is missing
};

struct ResponseTable {
  std::vector<CompiledResponse> responses;
  std::vector<PathRoutes> paths;  // "routes" and "static" specs: exact paths
  /// Static sites with a fallback: a request under `path` that no exact
  /// path matches, longest prefix first.
  std::vector<PathRoutes> fallbacks;
  int catch_all = -1;             // "response" specs: every path and method
  int not_found = -1;
  int bad_request = -1;           // 400
  int content_too_large = -1;     // 413
  int uri_too_long = -1;          // 414
  int headers_too_large = -1;     // 431
  int not_implemented = -1;       // 501
  int version_not_supported = -1; // 505
  int expectation_failed = -1;    // 417
  /// With sites read at run time: the sites, and their answers when a
  /// file cannot be served.
  std::vector<DiskSite> disk_sites;
  int forbidden = -1;             // 403: a directory without its index, not a regular file, EACCES
  int unavailable = -1;           // 503: out of file descriptors or memory
  int server_error = -1;          // 500: another error of the file system (EIO)
  /// With uploads: the uploads, and their answers when a body is not stored.
  std::vector<UploadSite> upload_sites;
  int conflict = -1;              // 409: the name exists (and overwrite is false), or is a directory
  int insufficient_storage = -1;  // 507: ENOSPC, EDQUOT
  int upload_failed = -1;         // 500, closing: another error, the body not all read
};

/// Every response of an HTTP spec (`response` or `routes`).
ResponseTable build_response_table(const Spec& spec);

/// The head of the full answer to `c` (an entity's identity 200), ending in
/// CR LF CR LF, without the Date line the server adds last. A redirect's
/// Location ends with the request's `query` (from its '?', or "").
std::string full_head(const CompiledResponse& c, ConnHeader conn, const std::string& query = "");
/// true when some body is a file, which the assembler reads (incbin).
bool embeds_files(const ResponseTable& t);
/// Its inline body ("" when the body is a file).
const std::string& full_body(const CompiledResponse& c);
/// Its body's file, relative to the spec's directory ("" when inline).
const std::string& full_file(const CompiledResponse& c);

}  // namespace asmsrv
