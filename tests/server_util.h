// Helpers for the tests that build real servers, run them, and talk to them
// over 127.0.0.1 with raw sockets: processes, sockets, HTTP responses, /proc.
//
// Every server runs in its own process group, with stdout/stderr in files of
// its own temp dir, on a port picked at run time (compiled in with --port),
// and is killed (SIGKILL to the group) when its ServerProcess goes away.
// Every wait here is bounded in time.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <ctime>
#include <functional>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spec.h"
#include "test_util.h"

namespace asmsrv::test {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0);
void sleep_ms(int ms);

/// Polls `pred` every `step_ms` until it holds or `timeout_ms` passed;
/// returns its last value.
bool eventually(const std::function<bool()>& pred, int timeout_ms = 2000, int step_ms = 10);

/// source_dir()/specs/NAME.json
std::string spec_path(const std::string& name);

/// The full path of `prog` found in PATH, or "".
std::string find_in_path(const std::string& prog);

/// Writes `json` to dir/spec.json and returns that path.
std::string write_spec(const std::string& json, const std::string& dir);

/// Copies specs/NAME.json into a new temp dir with `patch` merged into it
/// (RFC 7386 merge patch: {"mode": "fork", "limits": {"keepalive_timeout_ms": 300}}),
/// along with the subdirectories of specs/ (files named by a spec are
/// relative to it). Returns the copy's path; throws if it cannot.
std::string spec_copy(const std::string& name, const nlohmann::ordered_json& patch);

/// "NAME listening on ADDRESS:PORT\n", the first line a server prints.
std::string startup_line(const Spec& spec, int port);

// ---------------------------------------------------------------------------
// Sockets

/// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release();
  void reset();

 private:
  int fd_ = -1;
};

/// A TCP connection to 127.0.0.1:port, or an invalid Fd.
/// rcvbuf > 0: SO_RCVBUF, set before connect() so that the window is small.
Fd connect_to(int port, int rcvbuf = 0);

/// The local (client) port of a connected socket, -1 on error.
int local_port(int fd);

/// Sends every byte (MSG_NOSIGNAL); false if the peer is gone.
bool send_all(int fd, const std::string& data);

/// TCP_NODELAY: every small send goes out as its own segment.
void set_nodelay(int fd);

/// SO_LINGER {1, 0}: close() then sends RST instead of FIN.
void set_reset_on_close(int fd);

/// true if `fd` becomes readable (data, EOF or error) within timeout_ms.
bool readable_within(int fd, int timeout_ms);

struct ReadResult {
  std::string data;
  bool eof = false;      // the peer closed (read returned 0)
  bool error = false;    // read failed (e.g. ECONNRESET)
  bool timeout = false;  // the deadline passed first
};

/// Reads until EOF, an error, or `timeout_ms` passed.
ReadResult read_until_eof(int fd, int timeout_ms = 5000);

/// Connects, sends `request`, reads the whole answer until EOF.
ReadResult exchange(int port, const std::string& request, int timeout_ms = 5000);

/// A listening socket on 0.0.0.0:port (no SO_REUSEADDR), or an invalid Fd.
Fd listen_on_any(int port);

// ---------------------------------------------------------------------------
// HTTP responses, read one at a time

/// One HTTP response as read from a socket.
struct Reply {
  bool complete = false;  // a whole response (head and body) was read
  std::string raw;        // its bytes; when incomplete, whatever was read
  std::string head;       // status line and header section, with the final CR LF CR LF
  std::string status_line;
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // in order, values trimmed
  std::string body;
  bool eof = false;      // incomplete because the peer closed
  bool error = false;    // ... because a read failed, or the head did not parse
  bool timeout = false;  // ... because the deadline passed

  /// The first field with this name (case-insensitive), if any.
  std::optional<std::string> header(std::string_view name) const;
  /// How many fields have this name.
  int header_count(std::string_view name) const;
};

/// Parses r.head (a status line and fields, as received) into status_line,
/// status and headers; false if it is not an HTTP/1.x response head.
bool parse_head(Reply& r);

/// Reads exactly one response from `fd`: the head, then Content-Length body
/// bytes. No body for a response to HEAD (`head_request`) nor for 1xx, 204
/// and 304; without Content-Length, the body runs to EOF. `pending` holds
/// bytes read before and keeps what follows this response (pipelining).
Reply read_response(int fd, std::string& pending, bool head_request = false,
                    int timeout_ms = 5000);

/// A client connection that can read responses one by one (keep-alive,
/// pipelining) without waiting for EOF.
class Client {
 public:
  Client() = default;
  explicit Client(int port, int rcvbuf = 0);
  bool valid() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }
  int local_port() const;
  bool send(const std::string& data) { return send_all(fd_.get(), data); }
  /// One response; see read_response().
  Reply read_response(bool head_request = false, int timeout_ms = 5000);
  /// Bytes already buffered, then everything until EOF.
  ReadResult read_until_eof(int timeout_ms = 5000);
  /// true if the server closes the connection (EOF or reset) within
  /// timeout_ms; bytes that come first are added to `*extra`.
  bool closed_within(int timeout_ms, std::string* extra = nullptr);
  /// Bytes received but not consumed by read_response().
  const std::string& pending() const { return pending_; }
  void close() { fd_.reset(); }

 private:
  Fd fd_;
  std::string pending_;
};

// ---------------------------------------------------------------------------
// The Date header (RFC 9110 §6.6.1)
//
// Every HTTP response a server sends, error responses included and in every
// mode, carries "Date: <IMF-fixdate>" as the LAST field of its head (the head
// ends with "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"), formatted at run
// time from CLOCK_REALTIME and refreshed at most once per second. The
// compiler's own response table (build_response_table, response_head) holds
// the heads WITHOUT it. So the tests check the Date lines of what they
// receive and strip them, then compare the rest byte for byte with the table:
//
//   EXPECT_EQ(undate(c.read_response()).raw, expect().answer("GET", "/health"));
//   EXPECT_EQ(undate(exchange(port, request).data), want);
//
// raw_response specs are not HTTP responses of asmsrv's: no Date; compare
// their bytes as they are.

/// "Sun, 06 Nov 1994 08:49:37 GMT" for `t` (seconds since the epoch).
std::string imf_fixdate(time_t t);

/// Parses an IMF-fixdate (RFC 9110 §5.6.7) strictly: exactly
/// "Www, DD Mmm YYYY HH:MM:SS GMT" (29 bytes), a day name that matches the
/// date, a month name, a real calendar day, 00-23:00-59:00-59. nullopt
/// when it is not one.
std::optional<time_t> parse_imf_fixdate(std::string_view s);

/// Seconds since the epoch, with a fraction (CLOCK_REALTIME).
double wall_clock();

struct DateOptions {
  /// A response head without a Date line is a problem. When false, a Date
  /// line is still checked and stripped when present.
  bool require = true;
  /// When the bytes were received (wall_clock()); default: now. Pass it
  /// when bytes are checked long after they arrived.
  std::optional<double> received_at;
  /// How far, in seconds, a Date may be from received_at.
  double max_skew_s = 3.0;
};

struct DateCheck {
  std::string stripped;               // the bytes without their Date lines
  std::vector<std::string> dates;     // each Date value, in order
  int responses = 0;                  // response heads found
  std::vector<std::string> problems;  // one line each; empty when all is well
  bool ok() const { return problems.empty(); }
  std::string problem_text() const;   // the problems, one per line
};

/// Walks the HTTP responses in `bytes` (one, or several pipelined): each
/// head (from "HTTP/" to CR LF CR LF) is followed by Content-Length body
/// bytes (none for 1xx, 204 and 304; fewer when the bytes end first, as
/// after a HEAD; the rest without Content-Length). Every head must hold
/// exactly one field named Date, as its last field, written
/// "Date: <IMF-fixdate>", within max_skew_s of received_at. Returns the
/// bytes with every Date field line removed (also misplaced or malformed
/// ones), the values and the problems. Bytes that do not start with "HTTP/"
/// where a response should start are kept as they are and end the walk.
DateCheck check_dates(std::string_view bytes, const DateOptions& opt = {});

/// false when the environment says ASMSRV_TEST_DATE=optional: then undate()
/// accepts responses without Date (checking and stripping Date where it is
/// there), so that the byte-for-byte tests can run against a server built
/// before Date existed. The tests about Date itself ignore it.
bool date_required();

/// check_dates() with `require` = date_required(), recording a test failure
/// (at most 10 per test) for each problem; returns the stripped bytes.
std::string undate(std::string_view bytes, std::optional<double> received_at = std::nullopt);
/// The same for one reply: raw, head and headers lose their Date.
Reply undate(Reply r, std::optional<double> received_at = std::nullopt);

/// The bytes of ONE response from the table (`response`) with
/// "Date: <date>\r\n" inserted before the CR LF that ends its head: what the
/// server sends.
std::string with_date(std::string_view response, std::string_view date);

// ---------------------------------------------------------------------------
// /proc

struct ProcStat {
  char state = '?';
  int ppid = -1;
  long utime = 0, stime = 0;  // clock ticks
};

std::optional<ProcStat> proc_stat(pid_t pid);

struct Children {
  int total = 0;
  int zombies = 0;
};

/// The processes whose parent is `pid`, found by scanning /proc/*/stat.
Children children_of(pid_t pid);

/// The number of sockets the process holds open, -1 if it is gone.
int socket_count(pid_t pid);

// ---------------------------------------------------------------------------
// Building and running servers

/// Builds `spec` into dir/server, listening on `port`. Returns the binary's
/// path, or "" after recording a test failure.
std::string build_server(const std::string& spec, const std::string& syntax, int port,
                         const std::string& dir);

/// A running server. Killed (with its whole process group) on destruction;
/// children of a fork-mode server are reaped too (this process becomes their
/// subreaper).
class ServerProcess {
 public:
  /// Starts `bin` in `dir` with stdout/stderr in dir/stdout and dir/stderr,
  /// an empty environment and only fds 0, 1, 2 open; `nofile` sets
  /// RLIMIT_NOFILE in the child before exec. `args` follow argv[0]; `env`
  /// ("NAME=value") is the whole environment (never the tests' own: a PORT
  /// there must not move a server).
  ServerProcess(std::string bin, std::string dir, std::optional<rlim_t> nofile = std::nullopt,
                std::vector<std::string> args = {}, std::vector<std::string> env = {});
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess();

  pid_t pid() const { return pid_; }
  std::string out() const;
  std::string err() const;

  /// Waits (at most timeout_ms) for "listening on" on stdout. false if the
  /// server exited or did not get there in time.
  bool wait_ready(int timeout_ms = 5000);
  /// true once the process has exited (reaps it).
  bool exited();
  /// Waits at most timeout_ms for the exit; returns the exit status
  /// (128 + signal when killed), or nullopt if it is still running.
  std::optional<int> wait_exit(int timeout_ms);
  bool signal(int sig);
  /// Waits (bounded) until the server holds `n` sockets: e.g. 2 once it
  /// accepted a client (the listening socket and the client's).
  bool wait_sockets(int n, int timeout_ms = 2000);
  /// Waits (bounded) until stdout contains `text`.
  bool wait_out_contains(const std::string& text, int timeout_ms = 2000);

 private:
  std::string dir_, out_path_, err_path_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

/// One way to run a server, for the tests that try each mode.
struct ModeVariant {
  const char* label;  // the test's name suffix
  const char* mode;   // the spec's "mode"
  int workers;
  const char* syntax;  // nasm or gas
};

/// Every mode (epoll, iterative, fork, epoll with 2 workers); NASM and GAS
/// alternate so that each builds twice.
inline constexpr ModeVariant kModeVariants[] = {
    {"epoll", "epoll", 1, "nasm"},
    {"iterative", "iterative", 1, "gas"},
    {"fork", "fork", 1, "nasm"},
    {"epoll2Workers", "epoll", 2, "gas"},
};

void PrintTo(const ModeVariant& v, std::ostream* os);

/// The label, as INSTANTIATE_TEST_SUITE_P's name generator.
std::string mode_variant_name(const testing::TestParamInfo<ModeVariant>& info);

/// A server built from a spec and started on a free port.
struct Running {
  Spec spec;
  int port = 0;
  std::string dir;
  std::unique_ptr<ServerProcess> proc;
};

/// Builds and starts `spec_file` with `syntax` on a free port (retrying
/// with another port if that one was taken meanwhile), and checks its
/// startup line. Returns nullopt after recording a failure.
std::optional<Running> start_server(const std::string& spec_file, const std::string& syntax,
                                    std::optional<rlim_t> nofile = std::nullopt);

}  // namespace asmsrv::test
