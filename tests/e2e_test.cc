// End-to-end tests: build real servers from specs, run them, and talk to
// them over 127.0.0.1 with raw sockets and curl.
//
// The servers are HTTP/1.1 servers with keep-alive: tests that read until
// EOF send "Connection: close" (kRequest), or read one response at a time
// (Client::read_response). The process, socket and /proc helpers live in
// server_util.h.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "http.h"
#include "routes.h"
#include "server_util.h"
#include "spec.h"
#include "test_util.h"

namespace {

using namespace ::asmsrv::test;
using ::asmsrv::ConnHeader;
using std::chrono::milliseconds;

const std::vector<std::string> kSyntaxes = {"nasm", "gas"};
/// A valid request that asks to close: the server answers and closes.
const std::string kRequest = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
/// The same, kept alive (the HTTP/1.1 default).
const std::string kKeepRequest = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

// ---------------------------------------------------------------------------
// Expected bytes

/// The body a compiled response sends (files read from the spec's directory).
std::string body_of(const ::asmsrv::Spec& spec, const ::asmsrv::CompiledResponse& c) {
  if (::asmsrv::status_has_no_body(c.status)) return "";
  return full_file(c).empty() ? full_body(c) : read(spec.dir + "/" + full_file(c));
}

/// The exact bytes a server built from this spec sends for "GET /", with
/// the head for `conn` (a raw response is the same for every request).
std::string expected_response(const ::asmsrv::Spec& spec, ConnHeader conn = ConnHeader::close) {
  if (spec.raw_response) return *spec.raw_response;
  if (spec.response) {
    const ::asmsrv::HttpResponse& r = *spec.response;
    std::string body = r.file.empty() ? r.body : read(spec.dir + "/" + r.file);
    return ::asmsrv::response_head(r, conn, spec.headers) + body;
  }
  // A "routes" spec: the route for GET /, or not_found.
  ::asmsrv::ResponseTable t = ::asmsrv::build_response_table(spec);
  int idx = t.not_found;
  for (const auto& p : t.paths)
    if (p.path == "/" && p.by_method[static_cast<int>(::asmsrv::Method::GET)] >= 0)
      idx = p.by_method[static_cast<int>(::asmsrv::Method::GET)];
  const auto& c = t.responses[static_cast<size_t>(idx)];
  return full_head(c, conn) + body_of(spec, c);
}

/// The generated error response `index` of the spec's table (always "close").
std::string expected_error(const ::asmsrv::Spec& spec, int ::asmsrv::ResponseTable::*which) {
  ::asmsrv::ResponseTable t = ::asmsrv::build_response_table(spec);
  const auto& c = t.responses[static_cast<size_t>(t.*which)];
  return full_head(c, ConnHeader::close) + body_of(spec, c);
}

std::string conn_log_line(int client_port, size_t bytes) {
  return "connection from 127.0.0.1:" + std::to_string(client_port) +
         ", bytes read: " + std::to_string(bytes) + "\n";
}

/// A copy of specs/NAME.json in iterative mode (one connection at a time),
/// for the tests about that mode: hello.json uses the default mode.
std::string iterative_spec(const std::string& name) {
  return spec_copy(name, {{"mode", "iterative"}});
}

/// The same, with TCP_DEFER_ACCEPT off: a client that connects and sends
/// nothing is accepted at once, as the tests of the header deadline need.
std::string iterative_spec_no_defer(const std::string& name) {
  return spec_copy(name, {{"mode", "iterative"}, {"listen", {{"defer_accept_s", 0}}}});
}

/// A running server and the bytes it answers kRequest with.
struct Served : Running {
  std::string expected;       // for kRequest ("Connection: close")
  std::string expected_keep;  // for kKeepRequest (HTTP/1.1 keep-alive)
};

/// Builds and starts `spec_file` with `syntax` on a free port. Returns
/// nullopt after recording a failure.
std::optional<Served> serve(const std::string& spec_file, const std::string& syntax,
                            std::optional<rlim_t> nofile = std::nullopt) {
  std::optional<Running> r = start_server(spec_file, syntax, nofile);
  if (!r) return std::nullopt;
  Served s;
  static_cast<Running&>(s) = std::move(*r);
  s.expected = expected_response(s.spec, ConnHeader::close);
  s.expected_keep = expected_response(s.spec, ConnHeader::keep_alive);
  return s;
}

/// What a server sent, ready to compare with the table's bytes: HTTP
/// responses lose their Date lines, which undate() checks; a raw response
/// is not asmsrv's HTTP, has no Date and is left as it is.
std::string received(const Running& s, std::string_view bytes,
                     std::optional<double> received_at = std::nullopt) {
  return s.spec.raw_response ? std::string(bytes) : undate(bytes, received_at);
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
  auto s = serve(spec_path(GetParam().spec), GetParam().syntax);
  ASSERT_TRUE(s);
  for (int i = 0; i < 5; ++i) {
    ReadResult r = exchange(s->port, kRequest);
    EXPECT_TRUE(r.eof) << "request " << i << ": the server did not close the connection";
    ASSERT_EQ(received(*s, r.data), s->expected) << "request " << i;
  }
  int requests = 5, connections = 5;
  if (!s->spec.raw_response) {
    // HTTP/1.1 keeps the connection: three responses on one, then close.
    Client c(s->port);
    ASSERT_TRUE(c.valid());
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(c.send(kKeepRequest));
      Reply r = c.read_response();
      ASSERT_TRUE(r.complete) << "keep-alive request " << i;
      EXPECT_EQ(undate(r).raw, s->expected_keep) << "keep-alive request " << i;
    }
    ASSERT_TRUE(c.send(kRequest));
    ReadResult r = c.read_until_eof();
    EXPECT_TRUE(r.eof);
    EXPECT_EQ(undate(r.data), s->expected);
    requests += 4;
    connections += 1;
  }
  EXPECT_FALSE(s->proc->exited()) << "the server died";
  EXPECT_EQ(s->proc->err(), "") << "nothing expected on stderr";
  std::string out = s->proc->out();
  std::string line = startup_line(s->spec, s->port);
  bool logs_to_stdout = (s->spec.log_connections || s->spec.log_requests) &&
                        s->spec.log_target == ::asmsrv::LogTarget::stdout_;
  if (!logs_to_stdout) {
    EXPECT_EQ(out, line) << "stdout holds exactly the startup line";
  } else {
    EXPECT_EQ(out.rfind(line, 0), 0u) << out;
    if (s->spec.log_requests) {
      // One access-log line per request (written before the connection
      // closes), and one per connection when they are logged too.
      int lines = 1 + requests + (s->spec.log_connections ? connections : 0);
      eventually([&] {
        out = s->proc->out();
        return std::count(out.begin(), out.end(), '\n') >= lines;
      });
      EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), lines) << out;
    }
  }
}

TEST_P(EverySpec, Curl) {
  std::string curl = find_in_path("curl");
  ASSERT_FALSE(curl.empty()) << "curl is not installed (not found in PATH): install curl "
                                "(e.g. apt-get install curl) to run this test";
  auto s = serve(spec_path(GetParam().spec), GetParam().syntax);
  ASSERT_TRUE(s);
  if (s->spec.raw_response && s->spec.raw_response->rfind("HTTP/", 0) != 0)
    GTEST_SKIP() << "the raw response is not HTTP: nothing for curl to check";
  std::string url = "http://127.0.0.1:" + std::to_string(s->port) + "/";
  CmdResult r = run({curl, "-s", "-i", "--max-time", "5", url});
  EXPECT_EQ(r.status, 0) << "curl failed: " << r.err;
  // curl speaks HTTP/1.1 and keeps the connection: no Connection header.
  EXPECT_EQ(received(*s, r.out), s->expected_keep);
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

// Written out by hand; each ETag is the first 16 hex digits of the
// body's SHA-256 (`printf 'Hello from assembly!\n' | sha256sum`).
const std::string kMinhttpFields =
    "HTTP/1.1 200 OK\r\nETag: \"65760878ae4c49a1\"\r\nContent-Type: text/plain\r\nAccept-Ranges: bytes\r\n"
    "Content-Length: 21\r\n";
const std::string kHelloFields =
    "HTTP/1.1 200 OK\r\nServer: asmsrv\r\nETag: \"64e6a149977e60dc\"\r\n"
    "Content-Type: text/plain; charset=utf-8\r\nAccept-Ranges: bytes\r\nContent-Length: 19\r\n";

TEST_P(E2e, ExactResponsesForMinhttpAndFork) {
  auto m = serve(spec_path("minhttp"), syntax());
  ASSERT_TRUE(m);
  EXPECT_EQ(undate(exchange(m->port, kRequest).data),
            kMinhttpFields + "Connection: close\r\n\r\nHello from assembly!\n");
  {
    // Kept alive: HTTP/1.1 by default, HTTP/1.0 when asked; HTTP/1.0 closes.
    Client c(m->port);
    ASSERT_TRUE(c.valid());
    ASSERT_TRUE(c.send(kKeepRequest));
    EXPECT_EQ(undate(c.read_response()).raw,
              kMinhttpFields + "\r\nHello from assembly!\n");
    ASSERT_TRUE(c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    EXPECT_EQ(undate(c.read_response()).raw,
              kMinhttpFields + "Connection: keep-alive\r\n\r\nHello from assembly!\n");
    ASSERT_TRUE(c.send("GET / HTTP/1.0\r\n\r\n"));
    ReadResult r = c.read_until_eof();
    EXPECT_TRUE(r.eof);
    EXPECT_EQ(undate(r.data),
              kMinhttpFields + "Connection: close\r\n\r\nHello from assembly!\n");
  }
  // HTTP/1.1 without Host is malformed.
  EXPECT_EQ(undate(exchange(m->port, "GET / HTTP/1.1\r\n\r\n").data),
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n"
            "Connection: close\r\n\r\n400 Bad Request\n");
  auto h = serve(spec_path("hello"), syntax());
  ASSERT_TRUE(h);
  {
    Client c(h->port);
    ASSERT_TRUE(c.valid());
    ASSERT_TRUE(c.send(kKeepRequest));
    EXPECT_EQ(undate(c.read_response()).raw,
              kHelloFields + "\r\nHello from asmsrv!\n");
  }
  EXPECT_EQ(undate(exchange(h->port, kRequest).data),
            kHelloFields + "Connection: close\r\n\r\nHello from asmsrv!\n");
  auto f = serve(spec_path("fork"), syntax());
  ASSERT_TRUE(f);
  std::string raw = exchange(f->port, kRequest).data;  // raw: as it is, no Date
  EXPECT_EQ(raw, "HTTP/1.0 200 OK FROM TCP SERVER\r\n\r\n");
  EXPECT_EQ(raw.size(), 35u);
}

TEST_P(E2e, ResponseSpecAnswersEveryPathAndMethod) {
  auto s = serve(spec_path("hello"), syntax());
  ASSERT_TRUE(s);
  std::string head = ::asmsrv::response_head(*s->spec.response, ConnHeader::keep_alive,
                                             s->spec.headers);
  Client c(s->port);
  ASSERT_TRUE(c.valid());
  for (const std::string method : {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    for (const std::string target : {"/", "/index.html", "/a/b/c?x=1", "http://h/elsewhere"}) {
      SCOPED_TRACE(method + " " + target);
      bool head_request = method == "HEAD";
      ASSERT_TRUE(c.send(method + " " + target + " HTTP/1.1\r\nHost: x\r\n\r\n"));
      Reply r = undate(c.read_response(head_request));
      ASSERT_TRUE(r.complete);
      EXPECT_EQ(r.raw, head_request ? head : s->expected_keep) << "HEAD gets the head alone";
    }
  }
  // Nothing more came (HEAD really had no body), and close still works.
  EXPECT_FALSE(readable_within(c.fd(), 100)) << "unexpected bytes after the responses";
  ASSERT_TRUE(c.send(kRequest));
  ReadResult r = c.read_until_eof();
  EXPECT_TRUE(r.eof);
  EXPECT_EQ(received(*s, r.data), s->expected);
}

TEST_P(E2e, StartupLineIsExact) {
  for (const auto& [name, shown] : std::vector<std::pair<std::string, std::string>>{
           {"hello", "hello"}, {"minhttp", "minhttp"}, {"fork", "fork_server"}}) {
    auto s = serve(spec_path(name), syntax());
    ASSERT_TRUE(s);
    sleep_ms(50);
    EXPECT_EQ(s->proc->out(), shown + " listening on 0.0.0.0:" + std::to_string(s->port) + "\n");
    EXPECT_EQ(s->proc->err(), "");
  }
}

TEST_P(E2e, MinhttpLogsEachConnection) {
  auto s = serve(spec_path("minhttp"), syntax());
  ASSERT_TRUE(s);
  std::string expected_out = startup_line(s->spec, s->port);

  // A full request.
  {
    Fd c = connect_to(s->port);
    ASSERT_TRUE(c.valid());
    int lp = local_port(c.get());
    ASSERT_TRUE(send_all(c.get(), kRequest));
    ReadResult r = read_until_eof(c.get());
    EXPECT_EQ(received(*s, r.data), s->expected);
    expected_out += "connection from 127.0.0.1:" + std::to_string(lp) +
                    ", bytes read: " + std::to_string(kRequest.size()) + "\n";
  }
  // A bigger request, with headers.
  {
    std::string req = "GET /some/path?q=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: e2e\r\n"
                      "Accept: */*\r\nX-Pad: " + std::string(1000, 'p') +
                      "\r\nConnection: close\r\n\r\n";
    Fd c = connect_to(s->port);
    ASSERT_TRUE(c.valid());
    int lp = local_port(c.get());
    ASSERT_TRUE(send_all(c.get(), req));
    EXPECT_EQ(received(*s, read_until_eof(c.get()).data), s->expected);
    expected_out += "connection from 127.0.0.1:" + std::to_string(lp) +
                    ", bytes read: " + std::to_string(req.size()) + "\n";
  }
  // Two requests on one kept-alive connection: one line when it closes,
  // with every byte read on it.
  {
    Client c(s->port);
    ASSERT_TRUE(c.valid());
    int lp = c.local_port();
    ASSERT_TRUE(c.send(kKeepRequest));
    EXPECT_EQ(undate(c.read_response()).raw, s->expected_keep);
    sleep_ms(50);
    EXPECT_EQ(s->proc->out(), expected_out) << "no line while the connection is open";
    ASSERT_TRUE(c.send(kRequest));
    ReadResult r = c.read_until_eof();
    EXPECT_TRUE(r.eof);
    EXPECT_EQ(received(*s, r.data), s->expected);
    expected_out += conn_log_line(lp, kKeepRequest.size() + kRequest.size());
  }
  // A partial request ended by EOF: nothing to answer, but counted.
  {
    std::string req = "GET / HTTP/1.1\r\n";
    Fd c = connect_to(s->port);
    ASSERT_TRUE(c.valid());
    int lp = local_port(c.get());
    ASSERT_TRUE(send_all(c.get(), req));
    ::shutdown(c.get(), SHUT_WR);
    ReadResult r = read_until_eof(c.get());
    EXPECT_EQ(r.data, "") << "EOF after part of a request: closed without a response";
    EXPECT_TRUE(r.eof);
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
  auto s = serve(spec, syntax());
  ASSERT_TRUE(s);
  std::string expected_log = "earlier line\n";
  for (int i = 0; i < 3; ++i) {
    std::string req = "GET /" + std::string(static_cast<size_t>(i), 'a') +
                      " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    Fd c = connect_to(s->port);
    ASSERT_TRUE(c.valid());
    int lp = local_port(c.get());
    ASSERT_TRUE(send_all(c.get(), req));
    EXPECT_EQ(received(*s, read_until_eof(c.get()).data), s->expected);
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
  "mode": "iterative",
  "response": { "body": "x" },
  "log": { "connections": true, "target": ")" + log + R"(" }
})",
                                dir);
  auto s = serve(spec, syntax());
  ASSERT_TRUE(s);
  EXPECT_TRUE(exists(log)) << "the log file is created at start";
  struct stat st{};
  ASSERT_EQ(::stat(log.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
  Fd c = connect_to(s->port);
  ASSERT_TRUE(c.valid());
  int lp = local_port(c.get());
  ASSERT_TRUE(send_all(c.get(), kRequest));
  EXPECT_EQ(received(*s, read_until_eof(c.get()).data), s->expected);
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
  "mode": "iterative",
  "response": { "file": "blob.bin" }
})",
                                dir);
  auto s = serve(spec, syntax());
  ASSERT_TRUE(s);
  ASSERT_EQ(s->expected.size(), ::asmsrv::response_head(*s->spec.response).size() + body.size());
  for (int i = 0; i < 2; ++i) {
    ReadResult r = exchange(s->port, kRequest, 10000);
    r.data = undate(r.data);
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
  r.data = undate(r.data);
  EXPECT_TRUE(r.eof);
  EXPECT_EQ(r.data.size(), s->expected.size());
  EXPECT_TRUE(r.data == s->expected) << "the bytes differ";
}

TEST_P(E2e, StopSignalWhenIdleExitsZero) {
  for (const std::string name : {"hello", "fork"}) {
    for (int sig : {SIGTERM, SIGINT}) {
      SCOPED_TRACE(name + " " + strsignal(sig));
      auto s = serve(spec_path(name), syntax());
      ASSERT_TRUE(s);
      // Serve one request first: the server is back in accept() after it.
      EXPECT_EQ(received(*s, exchange(s->port, kRequest).data), s->expected);
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
    auto s = serve(spec_path("minhttp"), syntax());
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
    auto s = serve(spec_path("minhttp"), syntax());
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
    // The request asked for keep-alive, but the server is stopping: it
    // answers with "Connection: close" and closes.
    ReadResult r = read_until_eof(c.get());
    EXPECT_TRUE(r.eof);
    EXPECT_EQ(received(*s, r.data), s->expected)
        << "the connection in progress gets its full response";
    c.reset();  // as clients do after end of file: the server stops lingering
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

TEST_P(E2e, StopSignalClosesIdleKeepAliveConnection) {
  for (int sig : {SIGTERM, SIGINT}) {
    SCOPED_TRACE(strsignal(sig));
    auto s = serve(spec_path("minhttp"), syntax());
    ASSERT_TRUE(s);
    Client c(s->port);
    ASSERT_TRUE(c.valid());
    int lp = c.local_port();
    ASSERT_TRUE(c.send(kKeepRequest));
    EXPECT_EQ(undate(c.read_response()).raw, s->expected_keep);
    sleep_ms(50);  // the server waits for the next request
    EXPECT_FALSE(s->proc->exited());
    auto t0 = Clock::now();
    ASSERT_TRUE(s->proc->signal(sig));
    auto st = s->proc->wait_exit(2000);
    ASSERT_TRUE(st) << "an idle keep-alive connection kept the server from stopping";
    EXPECT_EQ(*st, 0);
    EXPECT_LT(seconds_since(t0), 1.0) << "the idle connection is closed at once";
    ReadResult r = c.read_until_eof(1000);
    EXPECT_EQ(r.data, "") << "closed without a response";
    EXPECT_TRUE(r.eof || r.error);
    EXPECT_EQ(s->proc->out(), startup_line(s->spec, s->port) +
                                  conn_log_line(lp, kKeepRequest.size()));
    EXPECT_EQ(s->proc->err(), "");
  }
}

TEST_P(E2e, StopSignalDuringLargeWriteFinishesIt) {
  // A stop signal while write() blocks on a full socket: write returns EINTR
  // or a short count, and write_all must carry on to the last byte. (One
  // signal each time: a second one means "exit at once", see below.)
  std::string dir = temp_dir();
  std::string body(10u << 20, 'b');
  for (size_t i = 0; i < body.size(); i += 97) body[i] = static_cast<char>('a' + i % 26);
  write(dir + "/blob.txt", body);
  std::string spec = write_spec(
      R"({ "name": "bigsig", "mode": "iterative", "response": { "file": "blob.txt" } })", dir);
  for (int sig : {SIGTERM, SIGINT}) {
    SCOPED_TRACE(strsignal(sig));
    auto s = serve(spec, syntax());
    ASSERT_TRUE(s);
    Fd c = connect_to(s->port, 65536);
    ASSERT_TRUE(c.valid());
    ASSERT_TRUE(send_all(c.get(), kRequest));
    ASSERT_TRUE(s->proc->wait_sockets(2));
    sleep_ms(300);  // the server fills the socket buffers and blocks in write()
    ASSERT_EQ(socket_count(s->proc->pid()), 2) << "the server is not blocked in write()";
    ASSERT_TRUE(s->proc->signal(sig));
    sleep_ms(100);
    EXPECT_FALSE(s->proc->exited()) << "the server quit in the middle of a response";
    ReadResult r = read_until_eof(c.get(), 10000);
    r.data = undate(r.data);
    EXPECT_TRUE(r.eof);
    EXPECT_EQ(r.data.size(), s->expected.size());
    EXPECT_TRUE(r.data == s->expected) << "the response was cut or corrupted";
    auto st = s->proc->wait_exit(2000);
    ASSERT_TRUE(st);
    EXPECT_EQ(*st, 0);
  }
}

TEST_P(E2e, StopSignalDuringKeptAliveResponseClosesRightAfterIt) {
  // The same, on a kept-alive connection: the head went out before the
  // signal (no Connection header), and the response is finished as it
  // started. Then the connection is idle and the server is stopping: it
  // must close the connection and exit at once, not wait keepalive_timeout_ms
  // (5 s) for another request.
  std::string dir = temp_dir();
  write(dir + "/blob.txt", std::string(10u << 20, 'k'));
  std::string spec = write_spec(
      R"({ "name": "bigka", "mode": "iterative", "response": { "file": "blob.txt" } })", dir);
  auto s = serve(spec, syntax());
  ASSERT_TRUE(s);
  Client c(s->port, 65536);
  ASSERT_TRUE(c.valid());
  ASSERT_TRUE(c.send(kKeepRequest));
  ASSERT_TRUE(s->proc->wait_sockets(2));
  sleep_ms(300);  // the server fills the socket buffers and blocks in write()
  ASSERT_EQ(socket_count(s->proc->pid()), 2) << "the server is not blocked in write()";
  ASSERT_TRUE(s->proc->signal(SIGTERM));
  sleep_ms(100);
  EXPECT_FALSE(s->proc->exited()) << "the server quit in the middle of a response";
  Reply r = undate(c.read_response(false, 10000));
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.raw.size(), s->expected_keep.size());
  EXPECT_TRUE(r.raw == s->expected_keep) << "the response was cut or corrupted";
  auto t0 = Clock::now();
  std::string extra;
  EXPECT_TRUE(c.closed_within(7000, &extra));
  EXPECT_EQ(extra, "");
  double after = seconds_since(t0);
  EXPECT_LT(after, 1.0) << "the stopping server kept the idle connection open for " << after
                        << " s after the response";
  auto st = s->proc->wait_exit(2000);
  ASSERT_TRUE(st);
  EXPECT_EQ(*st, 0);
}

TEST_P(E2e, SecondStopSignalExitsAtOnce) {
  auto s = serve(spec_path("minhttp"), syntax());
  ASSERT_TRUE(s);
  Fd c = connect_to(s->port);
  ASSERT_TRUE(c.valid());
  ASSERT_TRUE(send_all(c.get(), "GET / HTTP/1.1\r\nHost: "));
  ASSERT_TRUE(s->proc->wait_sockets(2)) << "the server did not accept the client";
  sleep_ms(50);
  ASSERT_TRUE(s->proc->signal(SIGTERM));
  sleep_ms(200);
  EXPECT_FALSE(s->proc->exited()) << "the first signal waits for the request in progress";
  auto t0 = Clock::now();
  ASSERT_TRUE(s->proc->signal(SIGINT));
  auto st = s->proc->wait_exit(2000);
  ASSERT_TRUE(st) << "a second signal did not stop the server";
  EXPECT_EQ(*st, 0);
  EXPECT_LT(seconds_since(t0), 1.0);
  ReadResult r = read_until_eof(c.get(), 1000);
  EXPECT_EQ(r.data, "") << "no response: the request was never complete";
  EXPECT_TRUE(r.eof || r.error);
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
    auto s = serve(spec_path(name), syntax());
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
        ASSERT_EQ(received(*s, r.data), s->expected) << "round " << i;
      }
    }
    ReadResult r = exchange(s->port, kRequest);
    EXPECT_EQ(received(*s, r.data), s->expected);
    EXPECT_FALSE(s->proc->exited()) << "the server died";
  }
}

TEST_P(E2e, ClientLeavesDuringLargeResponse) {
  // The server is in the middle of a 10 MiB write when the client resets the
  // connection: write fails (ECONNRESET/EPIPE, no SIGPIPE death) and the
  // server goes on with the next client.
  std::string dir = temp_dir();
  write(dir + "/blob.bin", std::string(10u << 20, 'z'));
  std::string spec = write_spec(R"({ "name": "bigrst", "mode": "iterative", "response": { "file": "blob.bin" } })",
                                dir);
  auto s = serve(spec, syntax());
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
  r.data = undate(r.data);
  EXPECT_EQ(r.data.size(), s->expected.size());
  EXPECT_TRUE(r.data == s->expected);
  EXPECT_FALSE(s->proc->exited()) << "the server died (SIGPIPE?)";
}

TEST_P(E2e, RequestSplitIntoSingleBytes) {
  for (const std::string name : {"hello", "minhttp"}) {
    SCOPED_TRACE(name);
    auto s = serve(spec_path(name), syntax());
    ASSERT_TRUE(s);
    std::string req =
        "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\nConnection: close\r\n\r\n";
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
    EXPECT_EQ(received(*s, r.data), s->expected) << "answered exactly once, in full";
    if (name == "minhttp") {
      std::string want = startup_line(s->spec, s->port) + "connection from 127.0.0.1:" +
                         std::to_string(lp) + ", bytes read: " + std::to_string(req.size()) + "\n";
      auto deadline = Clock::now() + milliseconds(2000);
      while (s->proc->out() != want && Clock::now() < deadline) sleep_ms(10);
      EXPECT_EQ(s->proc->out(), want);
    }
    EXPECT_EQ(received(*s, exchange(s->port, kRequest).data), s->expected)
        << "and serves the next client";
  }
}

TEST_P(E2e, TerminatorSplitAcrossReads) {
  // CR LF | CR LF and CR | LF CR LF: the scan must look back across reads.
  auto s = serve(spec_path("minhttp"), syntax());
  ASSERT_TRUE(s);
  for (size_t cut : {size_t{1}, size_t{2}, size_t{3}}) {
    std::string head = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close";
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
    EXPECT_EQ(received(*s, r.data), s->expected) << "cut " << cut;
  }
}

TEST_P(E2e, OversizedHeaderIsAnsweredWhenBufferIsFull) {
  // A head over limits.request_bytes (16384) without CR LF CR LF: 431 when the
  // buffer holds a '\n' (the header section is too large), 414 when it does
  // not (the request line alone is too long). Both close the connection.
  for (const std::string name : {"hello", "minhttp"}) {
    SCOPED_TRACE(name);
    auto s = serve(spec_path(name), syntax());
    ASSERT_TRUE(s);
    std::string e431 = expected_error(s->spec, &::asmsrv::ResponseTable::headers_too_large);
    std::string e414 = expected_error(s->spec, &::asmsrv::ResponseTable::uri_too_long);
    if (name == "minhttp") {  // by hand: no global headers in minhttp
      EXPECT_EQ(e431,
                "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n"
                "Content-Length: 36\r\nConnection: close\r\n\r\n"
                "431 Request Header Fields Too Large\n");
      EXPECT_EQ(e414,
                "HTTP/1.1 414 URI Too Long\r\nContent-Type: text/plain\r\n"
                "Content-Length: 17\r\nConnection: close\r\n\r\n414 URI Too Long\n");
    }
    for (bool long_line : {false, true}) {
      for (size_t size : {size_t{16384}, size_t{20000}, size_t{40000}}) {
        SCOPED_TRACE((long_line ? "request line, " : "header, ") + std::to_string(size));
        std::string req = long_line ? "GET /" : "GET / HTTP/1.1\r\nX-Big: ";
        req += std::string(size - req.size(), 'a');  // no CRLF CRLF anywhere
        Fd c = connect_to(s->port);
        ASSERT_TRUE(c.valid());
        int lp = local_port(c.get());
        ASSERT_TRUE(send_all(c.get(), req));
        // The connection stays open for writing: the server must answer
        // because its buffer is full, not because of EOF.
        ReadResult r = read_until_eof(c.get(), 5000);
        EXPECT_EQ(undate(r.data), long_line ? e414 : e431);
        EXPECT_FALSE(r.timeout) << "no answer with a full buffer";
        if (name == "minhttp") {
          // The server lingers (it reads and drops what else comes) until the
          // client closes: then the log counts every byte the client sent.
          c.reset();
          std::string line = conn_log_line(lp, size);
          EXPECT_TRUE(s->proc->wait_out_contains(line))
              << "want " << line << " in " << s->proc->out();
        }
        EXPECT_EQ(received(*s, exchange(s->port, kRequest).data), s->expected)
            << "the next client is served";
      }
    }
    EXPECT_FALSE(s->proc->exited());
  }
}

TEST_P(E2e, AcceptErrorsDoNotKillOrSpin) {
  for (const std::string name : {"hello", "fork"}) {
    SCOPED_TRACE(name);
    // fds 0, 1, 2 and the listening socket 3: accept() fails with EMFILE.
    auto s = serve(name == "fork" ? spec_path(name) : iterative_spec(name), syntax(), rlim_t{4});
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
  auto s = serve(iterative_spec("hello"), syntax());
  ASSERT_TRUE(s);
  for (int i = 0; i < 200; ++i) {
    ReadResult r = exchange(s->port, kRequest);
    ASSERT_EQ(received(*s, r.data), s->expected) << "request " << i;
  }
}

TEST_P(E2e, ConcurrentClientsIterativeAllServed) {
  auto s = serve(iterative_spec("hello"), syntax());
  ASSERT_TRUE(s);
  // Connect 20 clients first (they queue in the backlog), then send the
  // requests in reverse order.
  std::vector<Fd> cs;
  for (int i = 0; i < 20; ++i) {
    cs.push_back(connect_to(s->port));
    ASSERT_TRUE(cs.back().valid());
  }
  for (int i = 19; i >= 0; --i) ASSERT_TRUE(send_all(cs[static_cast<size_t>(i)].get(), kRequest));
  for (auto& c : cs) EXPECT_EQ(received(*s, read_until_eof(c.get()).data), s->expected);
}

TEST_P(E2e, ForkModeLeavesNoZombies) {
  auto s = serve(spec_path("fork"), syntax());
  ASSERT_TRUE(s);
  pid_t pid = s->proc->pid();
  int max_zombies = 0;
  for (int i = 0; i < 500; ++i) {
    ReadResult r = exchange(s->port, kRequest);
    ASSERT_EQ(received(*s, r.data), s->expected) << "request " << i;
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
  auto s = serve(spec_path("fork"), syntax());
  ASSERT_TRUE(s);
  // A silent client holds one child; others are served at once.
  Fd silent = connect_to(s->port);
  ASSERT_TRUE(silent.valid());
  sleep_ms(50);
  auto t0 = Clock::now();
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(received(*s, exchange(s->port, kRequest, 3000).data), s->expected);
  EXPECT_LT(seconds_since(t0), 2.0) << "a silent client blocked the fork server";
  // The silent client's child is still waiting for it: a request now is
  // answered.
  ASSERT_TRUE(send_all(silent.get(), kRequest));
  EXPECT_EQ(received(*s, read_until_eof(silent.get(), 3000).data), s->expected);
}

TEST_P(E2e, ForkModeStopWhileChildServes) {
  // A client that has sent nothing yet: without TCP_DEFER_ACCEPT, so that
  // the parent accepts it and forks a child that waits for its request.
  auto s = serve(spec_copy("fork", {{"listen", {{"defer_accept_s", 0}}}}), syntax());
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
  EXPECT_EQ(received(*s, read_until_eof(c.get(), 3000).data), s->expected);
}

// ===========================================================================
// Slow: the 10 s read timeout

// "cors": a browser's preflight, as curl sends it, gets the path's methods
// and the configured Access-Control-* fields; the request that follows
// says who may read it.
TEST(E2eCors, PreflightAndRequestCarryTheirHeaders) {
  std::string curl = find_in_path("curl");
  ASSERT_FALSE(curl.empty()) << "curl is not installed: install it (scripts/deps) to run this test";
  std::string dir = temp_dir();
  std::string spec = write_spec(R"({"name": "mock", "mode": "iterative",
      "routes": [{"path": "/api/items", "method": "POST", "status": 201, "body": "{}"},
                 {"path": "/api/items", "body": "[]"}],
      "cors": {"allow_headers": "Content-Type, Authorization", "max_age_s": 120}})", dir);
  for (const char* syntax : {"nasm", "gas"}) {
    SCOPED_TRACE(syntax);
    std::optional<Running> s = start_server(spec, syntax);
    ASSERT_TRUE(s);
    std::string url = "http://127.0.0.1:" + std::to_string(s->port) + "/api/items";
    CmdResult pre = run({curl, "-s", "-i", "--max-time", "5", "-X", "OPTIONS", "-H", "Origin: http://app.example",
                         "-H", "Access-Control-Request-Method: POST", "-H",
                         "Access-Control-Request-Headers: content-type", url});
    ASSERT_EQ(pre.status, 0) << pre.err;
    EXPECT_TRUE(pre.out.starts_with("HTTP/1.1 204 No Content\r\n")) << pre.out;
    for (const char* field : {"Allow: GET, HEAD, POST, OPTIONS\r\n",
                              "Access-Control-Allow-Methods: GET, HEAD, POST, OPTIONS\r\n",
                              "Access-Control-Allow-Headers: Content-Type, Authorization\r\n",
                              "Access-Control-Max-Age: 120\r\n", "Access-Control-Allow-Origin: *\r\n"})
      EXPECT_NE(pre.out.find(field), std::string::npos) << field << " in\n" << pre.out;
    CmdResult post = run({curl, "-s", "-i", "--max-time", "5", "-H", "Origin: http://app.example", "-H",
                          "Content-Type: application/json", "--data", "{\"a\":1}", url});
    ASSERT_EQ(post.status, 0) << post.err;
    EXPECT_TRUE(post.out.starts_with("HTTP/1.1 201 Created\r\n")) << post.out;
    EXPECT_NE(post.out.find("Access-Control-Allow-Origin: *\r\n"), std::string::npos) << post.out;
    EXPECT_EQ(post.out.find("Access-Control-Max-Age"), std::string::npos) << "only on the preflight";
  }
}

TEST(E2eSlow, SilentClientIsDroppedAfter10sAndNextClientServed) {
  // Both syntaxes at once, so the test takes ~10 s, not 20.
  struct Case {
    std::string syntax;
    std::optional<Served> s;
    Fd silent, second;
    Clock::time_point t0;
    ReadResult silent_result, second_result;
    double served_after = 0, dropped_after = 0;
    double served_wall = 0;  // wall_clock() when the answer came: its Date's time
  };
  std::vector<Case> cases(kSyntaxes.size());
  for (size_t i = 0; i < kSyntaxes.size(); ++i) {
    Case& c = cases[i];
    c.syntax = kSyntaxes[i];
    c.s = serve(iterative_spec_no_defer("hello"), c.syntax);
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
        if (got[i].empty()) {
          cases[i].served_after = seconds_since(cases[i].t0);
          cases[i].served_wall = wall_clock();
        }
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
    EXPECT_EQ(undate(got[i], c.served_wall), c.s->expected);
    EXPECT_GT(c.served_after, 8.0) << "iterative: served only after the silent client's timeout";
    EXPECT_LT(c.served_after, 12.0) << "served after " << c.served_after << " s";
    // The silent client was closed without a response.
    ReadResult r = read_until_eof(c.silent.get(), 1000);
    EXPECT_EQ(r.data, "");
    EXPECT_TRUE(r.eof || r.error) << "the silent client is still connected";
    EXPECT_FALSE(c.s->proc->exited());
  }
}

TEST(E2eSlow, TricklingAndIdleKeepAliveClientsAreCutOff) {
  // header_timeout_ms (10 s) is a deadline for the whole head from accept(),
  // not per read: a client sending a byte every 500 ms is cut off at ~10 s.
  // An idle kept-alive connection closes after keepalive_timeout_ms (5 s).
  // Either way without a response; in iterative mode the next client waits
  // until then. Both syntaxes and both kinds at once: ~10 s in all.
  enum class Kind { trickle, idle };
  struct Case {
    std::string syntax;
    Kind kind;
    std::optional<Served> s;
    Client blocker;
    Fd second;
    Clock::time_point t0, next_byte;
    size_t sent = 0;
    std::string blocker_got, second_got;
    double blocker_closed_after = -1, served_after = -1;
    double served_wall = 0;  // wall_clock() when the answer came: its Date's time
    bool blocker_done = false, second_done = false;
  };
  const std::string trickle = "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(100, 'a');
  std::vector<Case> cases;
  for (const auto& syn : kSyntaxes)
    for (Kind k : {Kind::trickle, Kind::idle}) {
      cases.emplace_back();
      cases.back().syntax = syn;
      cases.back().kind = k;
    }
  for (Case& c : cases) {
    SCOPED_TRACE(c.syntax);
    c.s = serve(iterative_spec_no_defer("hello"), c.syntax);
    ASSERT_TRUE(c.s);
    c.blocker = Client(c.s->port);
    ASSERT_TRUE(c.blocker.valid());
    set_nodelay(c.blocker.fd());
    if (c.kind == Kind::idle) {
      ASSERT_TRUE(c.blocker.send(kKeepRequest));
      Reply r = c.blocker.read_response();
      ASSERT_EQ(undate(r).raw, c.s->expected_keep);
    } else {
      ASSERT_TRUE(c.s->proc->wait_sockets(2)) << "the trickling client was not accepted";
    }
    c.t0 = c.next_byte = Clock::now();
    c.second = connect_to(c.s->port);
    ASSERT_TRUE(c.second.valid());
    ASSERT_TRUE(send_all(c.second.get(), kRequest));
  }
  auto deadline = Clock::now() + milliseconds(14000);
  auto pending = [&] {
    for (const Case& c : cases)
      if (!c.blocker_done || !c.second_done) return true;
    return false;
  };
  // Reads what is there without blocking; true at EOF or on an error.
  auto drain = [](int fd, std::string& into) {
    char buf[4096];
    for (int i = 0; i < 100; ++i) {
      ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        into.append(buf, static_cast<size_t>(n));
        continue;
      }
      return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    }
    return false;
  };
  while (pending() && Clock::now() < deadline) {
    for (Case& c : cases) {
      if (c.kind == Kind::trickle && !c.blocker_done && c.sent < trickle.size() &&
          Clock::now() >= c.next_byte) {
        (void)send_all(c.blocker.fd(), trickle.substr(c.sent++, 1));  // fails once closed
        c.next_byte += milliseconds(500);
      }
      if (!c.blocker_done && drain(c.blocker.fd(), c.blocker_got)) {
        c.blocker_done = true;
        c.blocker_closed_after = seconds_since(c.t0);
      }
      size_t before = c.second_got.size();
      if (!c.second_done && drain(c.second.get(), c.second_got)) c.second_done = true;
      if (before == 0 && !c.second_got.empty()) {
        c.served_after = seconds_since(c.t0);
        c.served_wall = wall_clock();
      }
    }
    sleep_ms(10);
  }
  for (Case& c : cases) {
    bool trickling = c.kind == Kind::trickle;
    SCOPED_TRACE(c.syntax + (trickling ? " trickling client" : " idle keep-alive client"));
    double want = trickling ? 10.0 : 5.0;
    EXPECT_TRUE(c.blocker_done) << "the blocking client is still connected";
    EXPECT_EQ(c.blocker_got, "") << "cut off without a response";
    EXPECT_GT(c.blocker_closed_after, want - 1.5);
    EXPECT_LT(c.blocker_closed_after, want + 1.5) << "cut off only after " << c.blocker_closed_after << " s";
    if (trickling) {
      EXPECT_LT(c.sent, size_t{30}) << "the server went on reading the trickle";
    }
    EXPECT_TRUE(c.second_done) << "the next client was not served";
    EXPECT_EQ(undate(c.second_got, c.served_wall), c.s->expected);
    EXPECT_GT(c.served_after, want - 1.5) << "iterative: served only after the first client left";
    EXPECT_LT(c.served_after, want + 1.5) << "served after " << c.served_after << " s";
    EXPECT_FALSE(c.s->proc->exited());
  }
}

}  // namespace
