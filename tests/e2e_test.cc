// End-to-end tests: build real servers from specs, run them, and talk to
// them over 127.0.0.1 with raw sockets and curl.
//
// Every server runs in its own process group, with stdout/stderr in files of
// its own temp dir, on a port picked at run time (compiled in with --port),
// and is killed (SIGKILL to the group) when its ServerProcess goes away.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http.h"
#include "spec.h"
#include "test_util.h"

namespace {

using namespace ::asmsrv::test;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const std::vector<std::string> kSyntaxes = {"nasm", "gas"};
const std::string kRequest = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void sleep_ms(int ms) { std::this_thread::sleep_for(milliseconds(ms)); }

std::string spec_path(const std::string& name) {
  return source_dir() + "/specs/" + name + ".json";
}

// ---------------------------------------------------------------------------
// Expected bytes

/// The exact bytes a server built from this spec sends for one request.
std::string expected_response(const ::asmsrv::Spec& spec) {
  if (spec.raw_response) return *spec.raw_response;
  const ::asmsrv::HttpResponse& r = *spec.response;
  std::string body = r.file.empty() ? r.body : read(spec.dir + "/" + r.file);
  return ::asmsrv::response_head(r) + body;
}

std::string startup_line(const ::asmsrv::Spec& spec, int port) {
  return spec.name + " listening on " + spec.address + ":" + std::to_string(port) + "\n";
}

// ---------------------------------------------------------------------------
// Sockets

/// A port that was free on 127.0.0.1 a moment ago.
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  int port = -1;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

/// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

/// A TCP connection to 127.0.0.1:port, or an invalid Fd.
/// rcvbuf > 0: SO_RCVBUF, set before connect() so that the window is small.
Fd connect_to(int port, int rcvbuf = 0) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fd;
  if (rcvbuf > 0) ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  // A blocking connect on loopback completes (or is refused) at once: the
  // kernel finishes the handshake even before the server calls accept().
  for (int tries = 0; tries < 3; ++tries) {
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
    if (errno != EINTR) break;
  }
  return Fd();
}

int local_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return -1;
  return ntohs(a.sin_port);
}

bool send_all(int fd, const std::string& data) {
  size_t off = 0;
  int guard = 0;
  while (off < data.size() && guard++ < 1000000) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return off == data.size();
}

struct ReadResult {
  std::string data;
  bool eof = false;     // the peer closed (read returned 0)
  bool error = false;   // read failed (e.g. ECONNRESET)
  bool timeout = false; // the deadline passed first
};

/// Reads until EOF, an error, or `timeout_ms` passed.
ReadResult read_until_eof(int fd, int timeout_ms = 5000) {
  ReadResult r;
  auto deadline = Clock::now() + milliseconds(timeout_ms);
  char buf[65536];
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      r.timeout = true;
      return r;
    }
    pollfd p{fd, POLLIN, 0};
    int pr = ::poll(&p, 1, static_cast<int>(left));
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) {
      r.error = true;
      return r;
    }
    if (pr == 0) continue;  // the deadline check above ends the loop
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      r.error = true;
      return r;
    }
    if (n == 0) {
      r.eof = true;
      return r;
    }
    r.data.append(buf, static_cast<size_t>(n));
  }
}

/// Connects, sends `request`, reads the whole answer.
ReadResult exchange(int port, const std::string& request, int timeout_ms = 5000) {
  Fd fd = connect_to(port);
  if (!fd.valid()) {
    ReadResult r;
    r.error = true;
    return r;
  }
  if (!send_all(fd.get(), request)) {
    // The server may have answered and closed already; read what is there.
  }
  return read_until_eof(fd.get(), timeout_ms);
}

/// A listening socket on 0.0.0.0:port (no SO_REUSEADDR), or an invalid Fd.
Fd listen_on_any(int port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fd;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return Fd();
  if (::listen(fd.get(), 16) != 0) return Fd();
  return fd;
}

// ---------------------------------------------------------------------------
// /proc

struct ProcStat {
  char state = '?';
  int ppid = -1;
  long utime = 0, stime = 0;  // clock ticks
};

std::optional<ProcStat> proc_stat(pid_t pid) {
  std::string text;
  try {
    text = read("/proc/" + std::to_string(pid) + "/stat");
  } catch (...) {
    return std::nullopt;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(text.substr(close + 1));
  std::vector<std::string> f;
  for (std::string w; in >> w && f.size() < 20;) f.push_back(w);
  if (f.size() < 13) return std::nullopt;
  ProcStat s;
  s.state = f[0][0];     // field 3
  s.ppid = std::stoi(f[1]);  // field 4
  s.utime = std::stol(f[11]);  // field 14
  s.stime = std::stol(f[12]);  // field 15
  return s;
}

struct Children {
  int total = 0;
  int zombies = 0;
};

/// The processes whose parent is `pid`, found by scanning /proc/*/stat.
Children children_of(pid_t pid) {
  Children c;
  DIR* d = ::opendir("/proc");
  if (!d) return c;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long p = std::strtol(e->d_name, &end, 10);
    if (!end || *end != '\0' || p <= 0) continue;
    auto s = proc_stat(static_cast<pid_t>(p));
    if (!s || s->ppid != pid) continue;
    ++c.total;
    if (s->state == 'Z') ++c.zombies;
  }
  ::closedir(d);
  return c;
}

/// The number of sockets the process holds open.
int socket_count(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[256];
    ssize_t len = ::readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
    if (len > 0 && std::string(target, static_cast<size_t>(len)).rfind("socket:", 0) == 0) ++n;
  }
  ::closedir(d);
  return n;
}

// ---------------------------------------------------------------------------
// Building and running servers

/// Builds `spec` into dir/server, listening on `port`. Returns the binary's
/// path, or "" after recording a test failure.
std::string build_server(const std::string& spec, const std::string& syntax, int port,
                         const std::string& dir) {
  std::string bin = dir + "/server";
  CmdResult r = asmsrv::test::asmsrv({"build", spec, "--syntax", syntax, "--port", std::to_string(port),
                        "-o", bin});
  if (r.status != 0 || !exists(bin)) {
    ADD_FAILURE() << "asmsrv build " << spec << " --syntax " << syntax << " --port " << port
                  << " failed with status " << r.status << "\nstdout: " << r.out
                  << "\nstderr: " << r.err;
    return "";
  }
  return bin;
}

/// A running server. Killed (with its whole process group) on destruction.
class ServerProcess {
 public:
  /// Starts `bin` with stdout/stderr in files under `dir`; `nofile` sets
  /// RLIMIT_NOFILE in the child before exec.
  ServerProcess(std::string bin, std::string dir, std::optional<rlim_t> nofile = std::nullopt)
      : dir_(std::move(dir)) {
    // Children of a fork-mode server that outlive it are re-parented to this
    // process, which reaps them in the destructor: nothing is left behind.
    static const bool subreaper = ::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
    (void)subreaper;
    out_path_ = dir_ + "/stdout";
    err_path_ = dir_ + "/stderr";
    pid_ = ::fork();
    if (pid_ < 0) {
      ADD_FAILURE() << "fork failed: " << std::strerror(errno);
      return;
    }
    if (pid_ == 0) {
      ::setpgid(0, 0);
      int in = ::open("/dev/null", O_RDONLY);
      int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (in < 0 || out < 0 || err < 0) ::_exit(126);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      // Nothing but 0, 1, 2 may reach the server: fd 3 must be free for its
      // listening socket (RLIMIT_NOFILE test), and no test socket may leak.
      for (int fd = 3; fd < 4096; ++fd) ::close(fd);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      for (int s : {SIGPIPE, SIGTERM, SIGINT, SIGCHLD}) ::signal(s, SIG_DFL);
      if (::chdir(dir_.c_str()) != 0) ::_exit(126);
      if (nofile) {
        rlimit rl{*nofile, *nofile};
        if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) ::_exit(125);
      }
      char* argv[] = {const_cast<char*>(bin.c_str()), nullptr};
      char* envp[] = {nullptr};
      ::execve(bin.c_str(), argv, envp);
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);  // also from here: no race with the child's own call
  }

  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  ~ServerProcess() {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGKILL);  // the server and any children it forked
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      int status;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
    // Its orphaned children are ours now (subreaper): reap them, bounded.
    auto deadline = Clock::now() + milliseconds(2000);
    while (Clock::now() < deadline) {
      int status;
      pid_t r = ::waitpid(-pid_, &status, WNOHANG);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) break;  // ECHILD: none left in the group
      if (r == 0) {
        ::kill(-pid_, SIGKILL);
        sleep_ms(1);
      }
    }
  }

  pid_t pid() const { return pid_; }
  std::string out() const { return exists(out_path_) ? read(out_path_) : ""; }
  std::string err() const { return exists(err_path_) ? read(err_path_) : ""; }

  /// Waits (at most timeout_ms) for "listening on" on stdout. false if the
  /// server exited or did not get there in time.
  bool wait_ready(int timeout_ms = 5000) {
    auto deadline = Clock::now() + milliseconds(timeout_ms);
    while (Clock::now() < deadline) {
      if (out().find("listening on") != std::string::npos) return true;
      if (exited()) return out().find("listening on") != std::string::npos;
      sleep_ms(5);
    }
    return false;
  }

  /// true once the process has exited (reaps it).
  bool exited() {
    if (pid_ <= 0) return true;
    if (reaped_) return true;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      status_ = status;
    }
    return reaped_;
  }

  /// Waits at most timeout_ms for the exit; returns the exit status
  /// (128 + signal when killed), or nullopt if it is still running.
  std::optional<int> wait_exit(int timeout_ms) {
    auto deadline = Clock::now() + milliseconds(timeout_ms);
    for (;;) {
      if (exited()) break;
      if (Clock::now() >= deadline) return std::nullopt;
      sleep_ms(2);
    }
    if (WIFEXITED(status_)) return WEXITSTATUS(status_);
    if (WIFSIGNALED(status_)) return 128 + WTERMSIG(status_);
    return -1;
  }

  bool signal(int sig) { return pid_ > 0 && !reaped_ && ::kill(pid_, sig) == 0; }

  /// Waits (bounded) until the server holds `n` sockets: e.g. 2 once it
  /// accepted a client (the listening socket and the client's).
  bool wait_sockets(int n, int timeout_ms = 2000) {
    auto deadline = Clock::now() + milliseconds(timeout_ms);
    while (Clock::now() < deadline) {
      if (socket_count(pid_) == n) return true;
      sleep_ms(2);
    }
    return false;
  }

 private:
  std::string dir_, out_path_, err_path_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

/// A server built from a spec and started on a free port.
struct Running {
  ::asmsrv::Spec spec;
  int port = 0;
  std::string dir;
  std::unique_ptr<ServerProcess> proc;
  std::string expected;  // the response to any request
};

/// Builds and starts `spec_file` with `syntax` on a free port (retrying
/// with another port if that one was taken meanwhile). Returns nullopt
/// after recording a failure.
std::optional<Running> start_server(const std::string& spec_file, const std::string& syntax,
                                    std::optional<rlim_t> nofile = std::nullopt) {
  Running r;
  try {
    r.spec = ::asmsrv::load_spec(spec_file);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "cannot load " << spec_file << ": " << e.what();
    return std::nullopt;
  }
  r.expected = expected_response(r.spec);
  for (int attempt = 0; attempt < 5; ++attempt) {
    r.port = free_port();
    if (r.port <= 0) {
      ADD_FAILURE() << "no free port";
      return std::nullopt;
    }
    r.dir = temp_dir();
    std::string bin = build_server(spec_file, syntax, r.port, r.dir);
    if (bin.empty()) return std::nullopt;
    r.proc = std::make_unique<ServerProcess>(bin, r.dir, nofile);
    if (r.proc->wait_ready()) {
      std::string out = r.proc->out();
      std::string line = startup_line(r.spec, r.port);
      if (out.rfind(line, 0) != 0) {
        ADD_FAILURE() << "startup line: expected " << testing::PrintToString(line)
                      << ", stdout is " << testing::PrintToString(out);
        return std::nullopt;
      }
      return r;
    }
    std::string err = r.proc->err();
    if (r.proc->exited() && err.find("Address already in use") != std::string::npos)
      continue;  // somebody took the port between free_port() and bind(): retry
    ADD_FAILURE() << spec_file << " (" << syntax << ") did not start on port " << r.port
                  << "\nstdout: " << r.proc->out() << "\nstderr: " << err;
    return std::nullopt;
  }
  ADD_FAILURE() << "could not find a free port for " << spec_file;
  return std::nullopt;
}

std::string find_in_path(const std::string& prog) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::istringstream in(p);
  for (std::string dir; std::getline(in, dir, ':');) {
    if (dir.empty()) dir = ".";
    std::string full = dir + "/" + prog;
    if (::access(full.c_str(), X_OK) == 0) return full;
  }
  return "";
}

/// Writes a spec (JSON text) into a new temp dir and returns its path.
std::string write_spec(const std::string& json, const std::string& dir) {
  std::string path = dir + "/spec.json";
  write(path, json);
  return path;
}

// ===========================================================================
// Every spec in specs/, both syntaxes

struct SpecCase {
  std::string spec;
  std::string syntax;
};

void PrintTo(const SpecCase& c, std::ostream* os) { *os << c.spec << " (" << c.syntax << ")"; }

std::vector<SpecCase> all_spec_cases() {
  std::vector<SpecCase> v;
  for (const auto& name : spec_names())
    for (const auto& syn : kSyntaxes) v.push_back({name, syn});
  return v;
}

std::string case_name(const testing::TestParamInfo<SpecCase>& info) {
  std::string s = info.param.spec + "_" + info.param.syntax;
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

class EverySpec : public testing::TestWithParam<SpecCase> {};

TEST_P(EverySpec, AnswersExactBytes) {
  auto s = start_server(spec_path(GetParam().spec), GetParam().syntax);
  ASSERT_TRUE(s);
  for (int i = 0; i < 5; ++i) {
    ReadResult r = exchange(s->port, kRequest);
    EXPECT_TRUE(r.eof) << "request " << i << ": the server did not close the connection";
    ASSERT_EQ(r.data, s->expected) << "request " << i;
  }
  EXPECT_FALSE(s->proc->exited()) << "the server died";
  EXPECT_EQ(s->proc->err(), "") << "nothing expected on stderr";
  std::string out = s->proc->out();
  std::string line = startup_line(s->spec, s->port);
  if (!s->spec.log_connections || s->spec.log_target != ::asmsrv::LogTarget::stdout_)
    EXPECT_EQ(out, line) << "stdout holds exactly the startup line";
  else
    EXPECT_EQ(out.rfind(line, 0), 0u) << out;
}

TEST_P(EverySpec, Curl) {
  std::string curl = find_in_path("curl");
  ASSERT_FALSE(curl.empty()) << "curl is not installed (not found in PATH): install curl "
                                "(e.g. apt-get install curl) to run this test";
  auto s = start_server(spec_path(GetParam().spec), GetParam().syntax);
  ASSERT_TRUE(s);
  if (s->spec.raw_response && s->spec.raw_response->rfind("HTTP/", 0) != 0)
    GTEST_SKIP() << "the raw response is not HTTP: nothing for curl to check";
  std::string url = "http://127.0.0.1:" + std::to_string(s->port) + "/";
  CmdResult r = run({curl, "-s", "-i", "--max-time", "5", url});
  EXPECT_EQ(r.status, 0) << "curl failed: " << r.err;
  EXPECT_EQ(r.out, s->expected);
}

INSTANTIATE_TEST_SUITE_P(Specs, EverySpec, testing::ValuesIn(all_spec_cases()), case_name);

// ===========================================================================
// Per-syntax behaviour

class E2e : public testing::TestWithParam<std::string> {
 protected:
  const std::string& syntax() const { return GetParam(); }
};

INSTANTIATE_TEST_SUITE_P(Syntax, E2e, testing::ValuesIn(kSyntaxes),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });

TEST_P(E2e, ExactResponsesForMinhttpAndFork) {
  auto m = start_server(spec_path("minhttp"), syntax());
  ASSERT_TRUE(m);
  EXPECT_EQ(exchange(m->port, kRequest).data,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n"
            "Connection: close\r\n\r\nHello from assembly!\n");
  auto h = start_server(spec_path("hello"), syntax());
  ASSERT_TRUE(h);
  EXPECT_EQ(exchange(h->port, kRequest).data,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\n"
            "Connection: close\r\nServer: asmsrv\r\n\r\nHello from asmsrv!\n");
  auto f = start_server(spec_path("fork"), syntax());
  ASSERT_TRUE(f);
  std::string raw = exchange(f->port, kRequest).data;
  EXPECT_EQ(raw, "HTTP/1.0 200 OK FROM TCP SERVER\r\n\r\n");
  EXPECT_EQ(raw.size(), 35u);
}

TEST_P(E2e, StartupLineIsExact) {
  for (const auto& [name, shown] : std::vector<std::pair<std::string, std::string>>{
           {"hello", "hello"}, {"minhttp", "minhttp"}, {"fork", "fork_server"}}) {
    auto s = start_server(spec_path(name), syntax());
    ASSERT_TRUE(s);
    sleep_ms(50);
    EXPECT_EQ(s->proc->out(), shown + " listening on 0.0.0.0:" + std::to_string(s->port) + "\n");
    EXPECT_EQ(s->proc->err(), "");
  }
}

TEST_P(E2e, MinhttpLogsEachConnection) {
  auto s = start_server(spec_path("minhttp"), syntax());
  ASSERT_TRUE(s);
  std::string expected_out = startup_line(s->spec, s->port);

  // A full request.
  {
    Fd c = connect_to(s->port);
    ASSERT_TRUE(c.valid());
    int lp = local_port(c.get());
    ASSERT_TRUE(send_all(c.get(), kRequest));
    ReadResult r = read_until_eof(c.get());
    EXPECT_EQ(r.data, s->expected);
    expected_out += "connection from 127.0.0.1:" + std::to_string(lp) +
                    ", bytes read: " + std::to_string(kRequest.size()) + "\n";
  }
  // A bigger request, with headers.
  {
    std::string req = "GET /some/path?q=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: e2e\r\n"
                      "Accept: */*\r\nX-Pad: " + std::string(1000, 'p') + "\r\n\r\n";
    Fd c = connect_to(s->port);
    ASSERT_TRUE(c.valid());
    int lp = local_port(c.get());
    ASSERT_TRUE(send_all(c.get(), req));
    EXPECT_EQ(read_until_eof(c.get()).data, s->expected);
    expected_out += "connection from 127.0.0.1:" + std::to_string(lp) +
                    ", bytes read: " + std::to_string(req.size()) + "\n";
  }
  // A partial request ended by EOF: answered, and counted.
  {
    std::string req = "GET / HTTP/1.1\r\n";
    Fd c = connect_to(s->port);
    ASSERT_TRUE(c.valid());
    int lp = local_port(c.get());
    ASSERT_TRUE(send_all(c.get(), req));
    ::shutdown(c.get(), SHUT_WR);
    EXPECT_EQ(read_until_eof(c.get()).data, s->expected) << "EOF after some bytes: answered";
    expected_out += "connection from 127.0.0.1:" + std::to_string(lp) +
                    ", bytes read: " + std::to_string(req.size()) + "\n";
  }
  // Nothing sent, then EOF: no answer, logged with 0 bytes.
  {
    Fd c = connect_to(s->port);
    ASSERT_TRUE(c.valid());
    int lp = local_port(c.get());
    ::shutdown(c.get(), SHUT_WR);
    ReadResult r = read_until_eof(c.get());
    EXPECT_EQ(r.data, "") << "EOF with 0 bytes: closed without a response";
    EXPECT_TRUE(r.eof);
    expected_out += "connection from 127.0.0.1:" + std::to_string(lp) + ", bytes read: 0\n";
  }
  // The log line is written before close(), so it is there by now; allow a
  // moment all the same.
  auto deadline = Clock::now() + milliseconds(2000);
  while (s->proc->out() != expected_out && Clock::now() < deadline) sleep_ms(10);
  EXPECT_EQ(s->proc->out(), expected_out);
  EXPECT_EQ(s->proc->err(), "");
}

TEST_P(E2e, LogToFileAppends) {
  std::string dir = temp_dir();
  std::string log = dir + "/access.log";
  write(log, "earlier line\n");
  std::string spec = write_spec(R"({
  "name": "filelog",
  "listen": { "port": 8080 },
  "mode": "iterative",
  "response": { "body": "logged\n" },
  "log": { "connections": true, "target": ")" + log + R"(" }
})",
                                dir);
  auto s = start_server(spec, syntax());
  ASSERT_TRUE(s);
  std::string expected_log = "earlier line\n";
  for (int i = 0; i < 3; ++i) {
    std::string req = "GET /" + std::string(static_cast<size_t>(i), 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n";
    Fd c = connect_to(s->port);
    ASSERT_TRUE(c.valid());
    int lp = local_port(c.get());
    ASSERT_TRUE(send_all(c.get(), req));
    EXPECT_EQ(read_until_eof(c.get()).data, s->expected);
    expected_log += "connection from 127.0.0.1:" + std::to_string(lp) +
                    ", bytes read: " + std::to_string(req.size()) + "\n";
  }
  auto deadline = Clock::now() + milliseconds(2000);
  while (read(log) != expected_log && Clock::now() < deadline) sleep_ms(10);
  EXPECT_EQ(read(log), expected_log);
  EXPECT_EQ(s->proc->out(), startup_line(s->spec, s->port)) << "nothing logged to stdout";
  EXPECT_EQ(s->proc->err(), "");
}

TEST_P(E2e, LogFileIsCreated) {
  std::string dir = temp_dir();
  std::string log = dir + "/new.log";
  std::string spec = write_spec(R"({
  "name": "newlog",
  "response": { "body": "x" },
  "log": { "connections": true, "target": ")" + log + R"(" }
})",
                                dir);
  auto s = start_server(spec, syntax());
  ASSERT_TRUE(s);
  EXPECT_TRUE(exists(log)) << "the log file is created at start";
  struct stat st{};
  ASSERT_EQ(::stat(log.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
  Fd c = connect_to(s->port);
  ASSERT_TRUE(c.valid());
  int lp = local_port(c.get());
  ASSERT_TRUE(send_all(c.get(), kRequest));
  EXPECT_EQ(read_until_eof(c.get()).data, s->expected);
  std::string want = "connection from 127.0.0.1:" + std::to_string(lp) +
                     ", bytes read: " + std::to_string(kRequest.size()) + "\n";
  auto deadline = Clock::now() + milliseconds(2000);
  while (read(log) != want && Clock::now() < deadline) sleep_ms(10);
  EXPECT_EQ(read(log), want);
}

TEST_P(E2e, FileResponseLargeBodyIsSentCompletely) {
  // 10 MiB: more than the socket buffers hold, so write() blocks and
  // returns short counts.
  std::string dir = temp_dir();
  std::string body(10u << 20, '\0');
  std::mt19937 rng(12345);
  for (char& ch : body) ch = static_cast<char>(rng() & 0xff);
  write(dir + "/blob.bin", body);
  std::string spec = write_spec(R"({
  "name": "big",
  "response": { "file": "blob.bin" }
})",
                                dir);
  auto s = start_server(spec, syntax());
  ASSERT_TRUE(s);
  ASSERT_EQ(s->expected.size(), ::asmsrv::response_head(*s->spec.response).size() + body.size());
  for (int i = 0; i < 2; ++i) {
    ReadResult r = exchange(s->port, kRequest, 10000);
    EXPECT_TRUE(r.eof);
    EXPECT_EQ(r.data.size(), s->expected.size());
    EXPECT_TRUE(r.data == s->expected) << "request " << i << ": the bytes differ";
  }
  // A reader that waits first: the server fills the socket buffers (its
  // send buffer grows to 4 MiB at most) and blocks in write(), then gets
  // short writes as the client drains them.
  Fd c = connect_to(s->port, 65536);
  ASSERT_TRUE(c.valid());
  ASSERT_TRUE(send_all(c.get(), kRequest));
  ASSERT_TRUE(s->proc->wait_sockets(2));
  sleep_ms(300);
  EXPECT_EQ(socket_count(s->proc->pid()), 2) << "the server is still writing the response";
  ReadResult r = read_until_eof(c.get(), 10000);
  EXPECT_TRUE(r.eof);
  EXPECT_EQ(r.data.size(), s->expected.size());
  EXPECT_TRUE(r.data == s->expected) << "the bytes differ";
}

TEST_P(E2e, StopSignalWhenIdleExitsZero) {
  for (const std::string name : {"hello", "fork"}) {
    for (int sig : {SIGTERM, SIGINT}) {
      SCOPED_TRACE(name + " " + strsignal(sig));
      auto s = start_server(spec_path(name), syntax());
      ASSERT_TRUE(s);
      // Serve one request first: the server is back in accept() after it.
      EXPECT_EQ(exchange(s->port, kRequest).data, s->expected);
      sleep_ms(20);
      auto t0 = Clock::now();
      ASSERT_TRUE(s->proc->signal(sig));
      auto st = s->proc->wait_exit(2000);
      ASSERT_TRUE(st) << "still running 2 s after the signal";
      EXPECT_EQ(*st, 0);
      EXPECT_LT(seconds_since(t0), 1.0);
      EXPECT_EQ(s->proc->err(), "");
    }
  }
}

TEST_P(E2e, StopSignalRightAfterStartExitsZero) {
  for (int sig : {SIGTERM, SIGINT}) {
    auto s = start_server(spec_path("minhttp"), syntax());
    ASSERT_TRUE(s);
    auto t0 = Clock::now();
    ASSERT_TRUE(s->proc->signal(sig));
    auto st = s->proc->wait_exit(2000);
    ASSERT_TRUE(st) << strsignal(sig) << ": still running 2 s later";
    EXPECT_EQ(*st, 0) << strsignal(sig);
    EXPECT_LT(seconds_since(t0), 1.0);
  }
}

TEST_P(E2e, StopSignalDuringConnectionFinishesItFirst) {
  for (int sig : {SIGTERM, SIGINT}) {
    SCOPED_TRACE(strsignal(sig));
    auto s = start_server(spec_path("minhttp"), syntax());
    ASSERT_TRUE(s);
    Fd c = connect_to(s->port);
    ASSERT_TRUE(c.valid());
    int lp = local_port(c.get());
    std::string first = "GET / HTTP/1.1\r\nHost: ";
    std::string rest = "x\r\n\r\n";
    ASSERT_TRUE(send_all(c.get(), first));
    ASSERT_TRUE(s->proc->wait_sockets(2)) << "the server did not accept the client";
    sleep_ms(50);  // let it block in read()
    ASSERT_TRUE(s->proc->signal(sig));
    sleep_ms(300);
    EXPECT_FALSE(s->proc->exited()) << "the server quit in the middle of a connection";
    ASSERT_TRUE(send_all(c.get(), rest));
    ReadResult r = read_until_eof(c.get());
    EXPECT_EQ(r.data, s->expected) << "the connection in progress gets its full response";
    auto t0 = Clock::now();
    auto st = s->proc->wait_exit(2000);
    ASSERT_TRUE(st) << "the server did not exit after finishing the connection";
    EXPECT_EQ(*st, 0);
    EXPECT_LT(seconds_since(t0), 1.0);
    EXPECT_EQ(s->proc->out(), startup_line(s->spec, s->port) + "connection from 127.0.0.1:" +
                                  std::to_string(lp) + ", bytes read: " +
                                  std::to_string(first.size() + rest.size()) + "\n");
  }
}

TEST_P(E2e, StopSignalDuringLargeWriteFinishesIt) {
  // SIGTERM while write() blocks on a full socket: write returns EINTR or a
  // short count, and write_all must carry on to the last byte.
  std::string dir = temp_dir();
  std::string body(10u << 20, 'b');
  for (size_t i = 0; i < body.size(); i += 97) body[i] = static_cast<char>('a' + i % 26);
  write(dir + "/blob.txt", body);
  std::string spec = write_spec(R"({ "name": "bigsig", "response": { "file": "blob.txt" } })",
                                dir);
  auto s = start_server(spec, syntax());
  ASSERT_TRUE(s);
  Fd c = connect_to(s->port, 65536);
  ASSERT_TRUE(c.valid());
  ASSERT_TRUE(send_all(c.get(), kRequest));
  ASSERT_TRUE(s->proc->wait_sockets(2));
  sleep_ms(300);  // the server fills the socket buffers and blocks in write()
  ASSERT_EQ(socket_count(s->proc->pid()), 2) << "the server is not blocked in write()";
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(s->proc->signal(i % 2 ? SIGINT : SIGTERM));
    sleep_ms(50);
  }
  EXPECT_FALSE(s->proc->exited()) << "the server quit in the middle of a response";
  ReadResult r = read_until_eof(c.get(), 10000);
  EXPECT_EQ(r.data.size(), s->expected.size());
  EXPECT_TRUE(r.data == s->expected) << "the response was cut or corrupted";
  auto st = s->proc->wait_exit(2000);
  ASSERT_TRUE(st);
  EXPECT_EQ(*st, 0);
}

TEST_P(E2e, BindToPortInUseFails) {
  for (const auto& [name, shown] : std::vector<std::pair<std::string, std::string>>{
           {"hello", "hello"}, {"minhttp", "minhttp"}, {"fork", "fork_server"}}) {
    SCOPED_TRACE(name);
    Fd holder;
    int port = 0;
    for (int tries = 0; tries < 10 && !holder.valid(); ++tries) {
      port = free_port();
      holder = listen_on_any(port);
    }
    ASSERT_TRUE(holder.valid()) << "cannot hold a port";
    std::string dir = temp_dir();
    std::string bin = build_server(spec_path(name), syntax(), port, dir);
    ASSERT_FALSE(bin.empty());
    ServerProcess p(bin, dir);
    auto st = p.wait_exit(5000);
    ASSERT_TRUE(st) << "the server kept running on a port in use";
    EXPECT_EQ(*st, 1);
    EXPECT_EQ(p.err(), shown + ": bind 0.0.0.0:" + std::to_string(port) +
                           ": Address already in use\n");
    EXPECT_EQ(p.out(), "");
  }
}

TEST_P(E2e, ClientsThatLeaveEarlyDoNotStopTheServer) {
  for (const std::string name : {"hello", "fork"}) {
    SCOPED_TRACE(name);
    auto s = start_server(spec_path(name), syntax());
    ASSERT_TRUE(s);
    for (int i = 0; i < 20; ++i) {
      {  // send the request, close without reading (FIN)
        Fd c = connect_to(s->port);
        ASSERT_TRUE(c.valid());
        send_all(c.get(), kRequest);
      }
      {  // send the request, close with RST (SO_LINGER {1, 0})
        Fd c = connect_to(s->port);
        ASSERT_TRUE(c.valid());
        send_all(c.get(), kRequest);
        linger l{1, 0};
        ::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
      }
      {  // RST before sending anything
        Fd c = connect_to(s->port);
        ASSERT_TRUE(c.valid());
        linger l{1, 0};
        ::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
      }
      {  // half a request, then RST
        Fd c = connect_to(s->port);
        ASSERT_TRUE(c.valid());
        send_all(c.get(), "GET / HT");
        linger l{1, 0};
        ::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
      }
      if (i % 5 == 4) {
        ReadResult r = exchange(s->port, kRequest);
        ASSERT_EQ(r.data, s->expected) << "round " << i;
      }
    }
    ReadResult r = exchange(s->port, kRequest);
    EXPECT_EQ(r.data, s->expected);
    EXPECT_FALSE(s->proc->exited()) << "the server died";
  }
}

TEST_P(E2e, ClientLeavesDuringLargeResponse) {
  // The server is in the middle of a 10 MiB write when the client resets the
  // connection: write fails (ECONNRESET/EPIPE, no SIGPIPE death) and the
  // server goes on with the next client.
  std::string dir = temp_dir();
  write(dir + "/blob.bin", std::string(10u << 20, 'z'));
  std::string spec = write_spec(R"({ "name": "bigrst", "response": { "file": "blob.bin" } })",
                                dir);
  auto s = start_server(spec, syntax());
  ASSERT_TRUE(s);
  for (int i = 0; i < 5; ++i) {
    Fd c = connect_to(s->port, 65536);
    ASSERT_TRUE(c.valid());
    ASSERT_TRUE(send_all(c.get(), kRequest));
    char buf[1000];
    ASSERT_GT(::recv(c.get(), buf, sizeof buf, 0), 0);
    sleep_ms(100);
    EXPECT_EQ(socket_count(s->proc->pid()), 2) << "the server should be blocked in write()";
    if (i % 2) {
      linger l{1, 0};
      ::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    c.reset();  // unread data: the kernel sends RST either way
    sleep_ms(20);
  }
  ReadResult r = exchange(s->port, kRequest, 10000);
  EXPECT_EQ(r.data.size(), s->expected.size());
  EXPECT_TRUE(r.data == s->expected);
  EXPECT_FALSE(s->proc->exited()) << "the server died (SIGPIPE?)";
}

TEST_P(E2e, RequestSplitIntoSingleBytes) {
  for (const std::string name : {"hello", "minhttp"}) {
    SCOPED_TRACE(name);
    auto s = start_server(spec_path(name), syntax());
    ASSERT_TRUE(s);
    std::string req = "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n";
    Fd c = connect_to(s->port);
    ASSERT_TRUE(c.valid());
    int lp = local_port(c.get());
    int one = 1;
    ::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (size_t i = 0; i < req.size(); ++i) {
      ASSERT_TRUE(send_all(c.get(), req.substr(i, 1)));
      sleep_ms(1);
      if (i + 1 < req.size()) {
        // Nothing may come back before the head is complete.
        pollfd p{c.get(), POLLIN, 0};
        ASSERT_EQ(::poll(&p, 1, 0), 0) << "the server answered after " << i + 1 << " bytes";
      }
    }
    ReadResult r = read_until_eof(c.get());
    EXPECT_TRUE(r.eof);
    EXPECT_EQ(r.data, s->expected) << "answered exactly once, in full";
    if (name == "minhttp") {
      std::string want = startup_line(s->spec, s->port) + "connection from 127.0.0.1:" +
                         std::to_string(lp) + ", bytes read: " + std::to_string(req.size()) + "\n";
      auto deadline = Clock::now() + milliseconds(2000);
      while (s->proc->out() != want && Clock::now() < deadline) sleep_ms(10);
      EXPECT_EQ(s->proc->out(), want);
    }
    EXPECT_EQ(exchange(s->port, kRequest).data, s->expected) << "and serves the next client";
  }
}

TEST_P(E2e, TerminatorSplitAcrossReads) {
  // CR LF | CR LF and CR | LF CR LF: the scan must look back across reads.
  auto s = start_server(spec_path("minhttp"), syntax());
  ASSERT_TRUE(s);
  for (size_t cut : {size_t{1}, size_t{2}, size_t{3}}) {
    std::string head = "GET / HTTP/1.1\r\nHost: x";
    std::string term = "\r\n\r\n";
    Fd c = connect_to(s->port);
    ASSERT_TRUE(c.valid());
    int one = 1;
    ::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ASSERT_TRUE(send_all(c.get(), head + term.substr(0, cut)));
    sleep_ms(100);
    pollfd p{c.get(), POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 0), 0) << "answered before the head was complete (cut " << cut << ")";
    ASSERT_TRUE(send_all(c.get(), term.substr(cut)));
    ReadResult r = read_until_eof(c.get(), 3000);
    EXPECT_TRUE(r.eof) << "cut " << cut << ": no answer (terminator across reads not found?)";
    EXPECT_EQ(r.data, s->expected) << "cut " << cut;
  }
}

TEST_P(E2e, OversizedHeaderIsAnsweredWhenBufferIsFull) {
  for (const std::string name : {"hello", "minhttp"}) {
    SCOPED_TRACE(name);
    auto s = start_server(spec_path(name), syntax());
    ASSERT_TRUE(s);
    for (size_t size : {size_t{8192}, size_t{10000}, size_t{40000}}) {
      std::string req = "GET / HTTP/1.1\r\nX-Big: ";
      req += std::string(size - req.size(), 'a');  // no CRLF CRLF anywhere
      Fd c = connect_to(s->port);
      ASSERT_TRUE(c.valid());
      int lp = local_port(c.get());
      ASSERT_TRUE(send_all(c.get(), req));
      // The connection stays open for writing: the server must answer
      // because its buffer is full, not because of EOF.
      ReadResult r = read_until_eof(c.get(), 5000);
      EXPECT_EQ(r.data, s->expected) << "size " << size;
      EXPECT_FALSE(r.timeout) << "size " << size << ": no answer with a full buffer";
      if (name == "minhttp") {
        std::string line = "connection from 127.0.0.1:" + std::to_string(lp) +
                           ", bytes read: 8192\n";
        auto deadline = Clock::now() + milliseconds(2000);
        while (s->proc->out().find(line) == std::string::npos && Clock::now() < deadline)
          sleep_ms(10);
        EXPECT_NE(s->proc->out().find(line), std::string::npos)
            << "want " << line << " in " << s->proc->out();
      }
      EXPECT_EQ(exchange(s->port, kRequest).data, s->expected)
          << "size " << size << ": the next client is served";
    }
    EXPECT_FALSE(s->proc->exited());
  }
}

TEST_P(E2e, AcceptErrorsDoNotKillOrSpin) {
  for (const std::string name : {"hello", "fork"}) {
    SCOPED_TRACE(name);
    // fds 0, 1, 2 and the listening socket 3: accept() fails with EMFILE.
    auto s = start_server(spec_path(name), syntax(), rlim_t{4});
    ASSERT_TRUE(s);
    auto before = proc_stat(s->proc->pid());
    ASSERT_TRUE(before);
    Fd c = connect_to(s->port);
    ASSERT_TRUE(c.valid()) << "the kernel completes the handshake from the backlog";
    ASSERT_TRUE(send_all(c.get(), kRequest));
    sleep_ms(1500);
    EXPECT_FALSE(s->proc->exited()) << "the server died on EMFILE";
    EXPECT_EQ(socket_count(s->proc->pid()), 1) << "accept() should have failed (EMFILE)";
    auto after = proc_stat(s->proc->pid());
    ASSERT_TRUE(after);
    EXPECT_NE(after->state, 'Z');
    long ticks = (after->utime + after->stime) - (before->utime + before->stime);
    double cpu = static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
    EXPECT_LT(cpu, 0.3) << "the server spins on failing accept(): " << cpu << " s of CPU in 1.5 s";
    EXPECT_EQ(s->proc->err(), "");
    // It could never accept: no answer for this client.
    ReadResult r = read_until_eof(c.get(), 100);
    EXPECT_EQ(r.data, "");
    EXPECT_TRUE(s->proc->signal(SIGTERM));
    auto st = s->proc->wait_exit(2000);
    ASSERT_TRUE(st) << "SIGTERM did not stop a server looping on accept errors";
    EXPECT_EQ(*st, 0);
  }
}

TEST_P(E2e, ManySequentialRequestsIterative) {
  auto s = start_server(spec_path("hello"), syntax());
  ASSERT_TRUE(s);
  for (int i = 0; i < 200; ++i) {
    ReadResult r = exchange(s->port, kRequest);
    ASSERT_EQ(r.data, s->expected) << "request " << i;
  }
}

TEST_P(E2e, ConcurrentClientsIterativeAllServed) {
  auto s = start_server(spec_path("hello"), syntax());
  ASSERT_TRUE(s);
  // Connect 20 clients first (they queue in the backlog), then send the
  // requests in reverse order.
  std::vector<Fd> cs;
  for (int i = 0; i < 20; ++i) {
    cs.push_back(connect_to(s->port));
    ASSERT_TRUE(cs.back().valid());
  }
  for (int i = 19; i >= 0; --i) ASSERT_TRUE(send_all(cs[static_cast<size_t>(i)].get(), kRequest));
  for (auto& c : cs) EXPECT_EQ(read_until_eof(c.get()).data, s->expected);
}

TEST_P(E2e, ForkModeLeavesNoZombies) {
  auto s = start_server(spec_path("fork"), syntax());
  ASSERT_TRUE(s);
  pid_t pid = s->proc->pid();
  int max_zombies = 0;
  for (int i = 0; i < 500; ++i) {
    ReadResult r = exchange(s->port, kRequest);
    ASSERT_EQ(r.data, s->expected) << "request " << i;
    if (i % 100 == 99) max_zombies = std::max(max_zombies, children_of(pid).zombies);
  }
  // The last children may still be exiting: wait (bounded) until none is left.
  auto deadline = Clock::now() + milliseconds(3000);
  Children c = children_of(pid);
  while (c.total > 0 && Clock::now() < deadline) {
    sleep_ms(20);
    c = children_of(pid);
  }
  EXPECT_EQ(c.zombies, 0) << "zombie children after 500 requests";
  EXPECT_EQ(c.total, 0) << "children still around 3 s after the last request";
  EXPECT_EQ(max_zombies, 0) << "zombies seen during the run";
  EXPECT_FALSE(s->proc->exited());
}

TEST_P(E2e, ForkModeServesClientsConcurrently) {
  auto s = start_server(spec_path("fork"), syntax());
  ASSERT_TRUE(s);
  // A silent client holds one child; others are served at once.
  Fd silent = connect_to(s->port);
  ASSERT_TRUE(silent.valid());
  sleep_ms(50);
  auto t0 = Clock::now();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(exchange(s->port, kRequest, 3000).data, s->expected);
  EXPECT_LT(seconds_since(t0), 2.0) << "a silent client blocked the fork server";
  // The silent client's child is still waiting for it: a request now is
  // answered.
  ASSERT_TRUE(send_all(silent.get(), kRequest));
  EXPECT_EQ(read_until_eof(silent.get(), 3000).data, s->expected);
}

TEST_P(E2e, ForkModeStopWhileChildServes) {
  auto s = start_server(spec_path("fork"), syntax());
  ASSERT_TRUE(s);
  Fd c = connect_to(s->port);
  ASSERT_TRUE(c.valid());
  auto deadline = Clock::now() + milliseconds(2000);
  while (children_of(s->proc->pid()).total == 0 && Clock::now() < deadline) sleep_ms(5);
  ASSERT_EQ(children_of(s->proc->pid()).total, 1) << "no child serves the client";
  auto t0 = Clock::now();
  ASSERT_TRUE(s->proc->signal(SIGTERM));
  auto st = s->proc->wait_exit(2000);
  ASSERT_TRUE(st) << "the parent did not exit";
  EXPECT_EQ(*st, 0);
  EXPECT_LT(seconds_since(t0), 1.0) << "the idle parent exits at once";
  // The child still serves its client.
  ASSERT_TRUE(send_all(c.get(), kRequest));
  EXPECT_EQ(read_until_eof(c.get(), 3000).data, s->expected);
}

// ===========================================================================
// Slow: the 10 s read timeout

TEST(E2eSlow, SilentClientIsDroppedAfter10sAndNextClientServed) {
  // Both syntaxes at once, so the test takes ~10 s, not 20.
  struct Case {
    std::string syntax;
    std::optional<Running> s;
    Fd silent, second;
    Clock::time_point t0;
    ReadResult silent_result, second_result;
    double served_after = 0, dropped_after = 0;
  };
  std::vector<Case> cases(kSyntaxes.size());
  for (size_t i = 0; i < kSyntaxes.size(); ++i) {
    Case& c = cases[i];
    c.syntax = kSyntaxes[i];
    c.s = start_server(spec_path("hello"), c.syntax);
    ASSERT_TRUE(c.s);
    c.silent = connect_to(c.s->port);
    ASSERT_TRUE(c.silent.valid());
    ASSERT_TRUE(c.s->proc->wait_sockets(2)) << "the silent client was not accepted";
    c.t0 = Clock::now();
    c.second = connect_to(c.s->port);
    ASSERT_TRUE(c.second.valid());
    ASSERT_TRUE(send_all(c.second.get(), kRequest));
  }
  // Wait for both second clients (at most ~13 s), polling both sockets.
  auto deadline = Clock::now() + milliseconds(13000);
  std::vector<bool> done(cases.size(), false);
  std::vector<std::string> got(cases.size());
  size_t remaining = cases.size();
  while (remaining > 0 && Clock::now() < deadline) {
    for (size_t i = 0; i < cases.size(); ++i) {
      if (done[i]) continue;
      pollfd p{cases[i].second.get(), POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(cases[i].second.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        if (got[i].empty()) cases[i].served_after = seconds_since(cases[i].t0);
        got[i].append(buf, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        done[i] = true;
        --remaining;
      }
    }
    sleep_ms(10);
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    Case& c = cases[i];
    SCOPED_TRACE(c.syntax);
    EXPECT_TRUE(done[i]) << "the second client was not served within 13 s";
    EXPECT_EQ(got[i], c.s->expected);
    EXPECT_GT(c.served_after, 8.0) << "iterative: served only after the silent client's timeout";
    EXPECT_LT(c.served_after, 12.0) << "served after " << c.served_after << " s";
    // The silent client was closed without a response.
    ReadResult r = read_until_eof(c.silent.get(), 1000);
    EXPECT_EQ(r.data, "");
    EXPECT_TRUE(r.eof || r.error) << "the silent client is still connected";
    EXPECT_FALSE(c.s->proc->exited());
  }
}

}  // namespace
