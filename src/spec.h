// The server spec: JSON in, a validated Spec out, or every error found as
// "FILE: /json/pointer: message".
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "site.h"

namespace asmsrv {

/// The largest body asmsrv embeds (16 MiB).
constexpr uint64_t kMaxBodyBytes = 16u << 20;

enum class Mode { epoll, iterative, fork };
inline constexpr const char* kModeNames[] = {"epoll", "iterative", "fork"};

/// A complete HTTP response, fixed at compile time.
struct HttpResponse {
  int status = 200;
  std::string reason;        // defaults to the standard phrase
  std::string content_type;  // defaults to text/plain (or from the file's extension)
  std::vector<std::pair<std::string, std::string>> headers;  // in spec order
  std::string body;          // when file is empty
  std::string file;          // as written in the spec: relative to the spec's directory
  uint64_t file_size = 0;
  std::string etag;          // a 200 with a body: strong_etag of its bytes
  uint64_t body_size() const { return file.empty() ? body.size() : file_size; }
};

enum class LogTarget { stdout_, stderr_, file };

/// The access log's line (log.format): asmsrv's own, NCSA Common and
/// Combined Log Format, or one JSON object per line.
enum class LogFormat { asmsrv, common, combined, json };
inline constexpr const char* kLogFormatNames[] = {"asmsrv", "common", "combined", "json"};

/// The methods a route can name, numbered as the generated parser numbers them.
enum class Method { GET = 1, HEAD, POST, PUT, DELETE, PATCH, OPTIONS };
inline constexpr const char* kMethodNames[] = {"", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
inline constexpr int kMethodCount = 7;

/// One route: an exact path and a method, answered with a fixed response.
struct Route {
  Method method = Method::GET;
  std::string path;
  HttpResponse response;
};

/// "uploads": a URL prefix under which PUT and POST store request bodies
/// as files of a directory, at run time.
struct Upload {
  std::string path = "/";            // the URL prefix, ending in '/'
  std::string root;                  // the directory, opened at start
  bool put = true, post = true;      // the methods that store
  bool overwrite = false;            // an existing name is replaced, not 409
  int64_t max_bytes = 104857600;     // a larger body is 413
  int mode = 0644;                   // the new file's permissions (before the umask)
  bool fsync = false;                // fsync(2) before the rename
};

/// Bounds on every request and connection.
struct Limits {
  /// The request line and header section: 16 KiB, so that an 8,000-octet
  /// request line (RFC 9112 3 RECOMMENDED) fits with a browser's fields.
  int request_bytes = 16384;
  int64_t body_bytes = 1048576;        // a request body, read and discarded
  int header_timeout_ms = 10000;       // deadline for the whole header section
  int body_timeout_ms = 60000;         // deadline for the whole body being dropped
  int keepalive_timeout_ms = 5000;     // idle time between requests
  int keepalive_requests = 1000;       // requests per connection
  int max_connections = 1024;          // epoll: the per-worker connection table
  int shutdown_timeout_ms = 5000;      // epoll: how long a graceful stop may take
  int send_timeout_ms = 10000;         // how long a client may take nothing of a response
  /// Lingering close: after its last response the server shuts down its
  /// write side, then reads and drops what the client still sends, for at
  /// most this long and this much, before close() (nginx's lingering_timeout
  /// is 5 s). Closing with input unread would reset the connection and
  /// could destroy answers the client has not read yet. 0 ms: close at once.
  int linger_ms = 5000;
  int64_t linger_bytes = 1048576;
};

/// Cross-origin requests (routes only): every response says
/// Access-Control-Allow-Origin, and OPTIONS on a known path answers a
/// browser's preflight with the path's methods.
struct Cors {
  std::string allow_origin = "*";
  std::string allow_headers = "*";
  int max_age_s = 600;
};

/// `server --probe`: a health check the server binary runs against itself
/// (a Docker HEALTHCHECK in an image with nothing else inside).
struct Probe {
  std::string path = "/";   // GET this on the server's own port, over loopback
  int timeout_ms = 2000;    // the whole probe: connect, send, the status line
};

struct Spec {
  std::string file;                    // the spec's path, as given
  std::string dir;                     // its directory ("." for a bare name)
  std::string name = "asmsrv";
  std::string address = "0.0.0.0";     // IPv6 in RFC 5952 form, without brackets
  bool ipv6 = false;
  /// The address in network byte order: 4 bytes (IPv4) or 16 (IPv6).
  std::array<uint8_t, 16> address_bytes = {};
  int port = 8080;
  /// When this environment variable is set at run time, its value is the
  /// port (Cloud Run, Heroku, Render and Fly set PORT); empty: off.
  std::string port_env = "PORT";
  int backlog = 511;                   // nginx's default; the kernel caps it at somaxconn
  /// TCP_DEFER_ACCEPT: accept() returns once the first bytes have come, or
  /// after about this many seconds of silence; 0: off.
  int defer_accept_s = 3;
  Mode mode = Mode::epoll;
  int workers = 1;                     // server processes; more than 1: a supervisor
  std::optional<std::string> raw_response;
  std::optional<HttpResponse> response;
  std::vector<Route> routes;           // when neither raw_response nor response
  std::vector<StaticSite> sites;       // "static" entries, alone or with routes
  std::vector<Upload> uploads;         // "uploads" entries, alone or with routes and static
  HttpResponse not_found;              // for unmatched paths (routes only)
  std::vector<std::pair<std::string, std::string>> headers;  // added to every HTTP response
  std::optional<Cors> cors;
  Limits limits;
  bool log_connections = false;
  bool log_requests = false;
  LogFormat log_format = LogFormat::asmsrv;  // of the log.requests lines
  LogTarget log_target = LogTarget::stdout_;
  std::string log_path;                // when log_target is file
  std::optional<Probe> probe;          // `server --probe`; none: no probe code
  /// Not from the JSON: `--teach` asks for a listing for a first reading,
  /// in which die names only the errnos a first run is likely to meet.
  bool teach = false;

  /// True when the server opens files at run time (a static site's root,
  /// an upload's).
  bool files_at_run_time() const {
    if (!uploads.empty()) return true;
    for (const StaticSite& s : sites)
      if (!s.root.empty()) return true;
    return false;
  }
};

/// Thrown for an invalid spec; what() holds every error, one per line.
class SpecError : public std::runtime_error {
 public:
  explicit SpecError(std::vector<std::string> lines);
  const std::vector<std::string>& lines() const { return lines_; }

 private:
  std::vector<std::string> lines_;
};

/// Reads and validates the spec at `path`. Files named by the spec are
/// resolved relative to the spec's directory. Throws SpecError, or
/// std::runtime_error when the spec itself cannot be read.
Spec load_spec(const std::string& path);

/// Validates spec text; `path` is used for messages and to find files.
Spec parse_spec(const std::string& text, const std::string& path);

/// "0.0.0.0:8080", "[::1]:8080"
std::string listen_text(const Spec& spec);
/// "0.0.0.0", "[::1]": the address as it goes before ":port".
std::string address_text(const Spec& spec);

}  // namespace asmsrv
