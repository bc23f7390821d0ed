// Deploying a server as the platforms run it: the port from $PORT, IPv6
// (and dual-stack "::"), systemd socket activation, and `server --probe`.
// Real servers, real clients over 127.0.0.1 and ::1, every wait bounded.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "server_util.h"
#include "test_util.h"

namespace asmsrv::test {
namespace {

using json = nlohmann::ordered_json;

// A GET over `address` (IPv4 or IPv6 literal) with Connection: close: the
// whole answer, or "" when the connection fails. At most 3 s.
std::string get(const std::string& address, int port, const std::string& path = "/") {
  bool v6 = address.find(':') != std::string::npos;
  sockaddr_storage ss{};
  socklen_t len;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET6, address.c_str(), &a->sin6_addr) != 1) return "";
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET, address.c_str(), &a->sin_addr) != 1) return "";
    len = sizeof *a;
  }
  Fd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0));
  timeval tv{3, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (!fd.valid() || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return "";
  if (!send_all(fd.get(), "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) return "";
  return read_until_eof(fd.get(), 3000).data;
}

bool ok(const std::string& answer) { return answer.rfind("HTTP/1.1 200 OK\r\n", 0) == 0; }

struct ModeCase {
  const char* mode;
  int workers;
};

std::string case_name(const testing::TestParamInfo<ModeCase>& info) {
  return std::string(info.param.mode) + (info.param.workers > 1 ? "Workers" : "");
}

class DeployModes : public testing::TestWithParam<ModeCase> {
 protected:
  // specs/hello.json in this mode, with `patch` merged in, built for `port`
  // into a new temp dir (dir_).
  std::string build(json patch, int port) {
    patch["mode"] = GetParam().mode;
    patch["workers"] = GetParam().workers;
    dir_ = temp_dir();
    return build_server(spec_copy("hello", patch), "nasm", port, dir_);
  }
  std::string dir_;
};

INSTANTIATE_TEST_SUITE_P(Modes, DeployModes,
                         testing::Values(ModeCase{"epoll", 1}, ModeCase{"iterative", 1}, ModeCase{"fork", 1},
                                         ModeCase{"epoll", 2}),
                         case_name);

TEST_P(DeployModes, PortFromTheEnvironmentReplacesListenPort) {
  int compiled = free_port(), port = free_port();
  ASSERT_NE(compiled, port);
  std::string bin = build({}, compiled);
  ASSERT_FALSE(bin.empty());
  ServerProcess p(bin, dir_, std::nullopt, {}, {"PORT=" + std::to_string(port)});
  ASSERT_TRUE(p.wait_ready()) << p.err();
  EXPECT_EQ(p.out(), "hello listening on 0.0.0.0:" + std::to_string(port) + "\n");
  EXPECT_TRUE(ok(get("127.0.0.1", port)));
  EXPECT_FALSE(connect_to(compiled).valid()) << "listen.port is not used when PORT is set";
}

TEST_P(DeployModes, DualStackAnswersIpv4AndIpv6AndLogsBoth) {
  int port = free_port();
  std::string bin = build({{"listen", {{"address", "::"}}}, {"log", {{"requests", true}, {"connections", true}}}}, port);
  ASSERT_FALSE(bin.empty());
  ServerProcess p(bin, dir_);
  ASSERT_TRUE(p.wait_ready()) << p.err();
  EXPECT_EQ(p.out().substr(0, p.out().find('\n') + 1), "hello listening on [::]:" + std::to_string(port) + "\n");
  EXPECT_TRUE(ok(get("127.0.0.1", port)));
  EXPECT_TRUE(ok(get("::1", port)));
  // An IPv4 client of "::" comes as ::ffff:127.0.0.1 and is logged as IPv4.
  EXPECT_TRUE(p.wait_out_contains("\n127.0.0.1 \"GET / HTTP/1.1\" 200 19\n")) << p.out();
  EXPECT_TRUE(p.wait_out_contains("\n::1 \"GET / HTTP/1.1\" 200 19\n")) << p.out();
  EXPECT_TRUE(p.wait_out_contains("connection from 127.0.0.1:")) << p.out();
  EXPECT_TRUE(p.wait_out_contains("connection from [::1]:")) << p.out();
}

TEST_P(DeployModes, SocketActivationServesOnFd3) {
  std::string tool = find_in_path("systemd-socket-activate");
  if (tool.empty()) GTEST_SKIP() << "systemd-socket-activate is not installed (Debian package systemd)";
  int compiled = free_port(), port = free_port();
  std::string bin = build({}, compiled);
  ASSERT_FALSE(bin.empty());
  ServerProcess p(tool, dir_, std::nullopt, {"-l", "127.0.0.1:" + std::to_string(port), bin});
  // The tool listens, and starts the server with the socket as fd 3 once a
  // client connects: the first client is answered by the server.
  ASSERT_TRUE(eventually([&] { return connect_to(port).valid(); }, 3000)) << p.err();
  EXPECT_TRUE(ok(get("127.0.0.1", port))) << p.err();
  EXPECT_TRUE(ok(get("127.0.0.1", port))) << p.err();
  EXPECT_TRUE(p.wait_out_contains("hello listening on fd 3 from systemd\n")) << p.out() << p.err();
  EXPECT_FALSE(connect_to(compiled).valid()) << "nothing was bound";
}

TEST_P(DeployModes, ProbeHealthyThenStopped) {
  int port = free_port();
  std::string bin = build({{"probe", {{"path", "/"}}}}, port);
  ASSERT_FALSE(bin.empty());
  auto p = std::make_unique<ServerProcess>(bin, dir_);
  ASSERT_TRUE(p->wait_ready()) << p->err();
  CmdResult r = run({bin, "--probe"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out + r.err, "");
  p.reset();
  r = run({bin, "--probe"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "hello: probe GET / on 127.0.0.1:" + std::to_string(port) + ": Connection refused\n");
}

// --- one mode is enough below: start-up is the same code in every mode ---------

std::string build_hello(const json& patch, int port, const std::string& dir) {
  return build_server(spec_copy("hello", patch), "nasm", port, dir);
}

// Runs `bin` with `env` (and `args`) and waits for its exit: status, stderr.
std::pair<std::optional<int>, std::string> run_to_exit(const std::string& bin, const std::string& dir,
                                                       std::vector<std::string> env,
                                                       std::vector<std::string> args = {}) {
  ServerProcess p(bin, dir, std::nullopt, std::move(args), std::move(env));
  auto status = p.wait_exit(5000);
  return {status, p.err()};
}

TEST(Deploy, InvalidPortInTheEnvironmentStopsTheServer) {
  std::string dir = temp_dir();
  std::string bin = build_hello(json::object(), free_port(), dir);
  ASSERT_FALSE(bin.empty());
  for (std::string v : {"0", "65536", "abc", "", "80a", "-1", " 80", "+80", "99999999999"}) {
    auto [status, err] = run_to_exit(bin, dir, {"PORT=" + v});
    EXPECT_EQ(status, 1) << "PORT=" << v;
    EXPECT_EQ(err, "hello: PORT=" + v + ": expected a port number from 1 to 65535\n");
  }
  auto [status, err] = run_to_exit(bin, dir, {"PORT=" + std::string(40, '7')});
  EXPECT_EQ(status, 1);
  EXPECT_EQ(err, "hello: PORT=" + std::string(32, '7') + ": expected a port number from 1 to 65535\n")
      << "the value is cut at 32 bytes";
}

TEST(Deploy, PortEnvNamesTheVariableOrIsOff) {
  int compiled = free_port(), port = free_port();
  std::string dir = temp_dir();
  std::string bin = build_hello({{"listen", {{"port_env", "HTTP_PORT"}}}}, compiled, dir);
  ASSERT_FALSE(bin.empty());
  {
    ServerProcess p(bin, dir, std::nullopt, {}, {"PORT=nonsense", "HTTP_PORT=" + std::to_string(port)});
    ASSERT_TRUE(p.wait_ready()) << p.err();
    EXPECT_TRUE(ok(get("127.0.0.1", port)));
  }
  dir = temp_dir();
  bin = build_hello({{"listen", {{"port_env", ""}}}}, compiled, dir);  // as null: off
  ASSERT_FALSE(bin.empty());
  ServerProcess p(bin, dir, std::nullopt, {}, {"PORT=" + std::to_string(port)});
  ASSERT_TRUE(p.wait_ready()) << p.err();
  EXPECT_EQ(p.out(), "hello listening on 0.0.0.0:" + std::to_string(compiled) + "\n");
  EXPECT_TRUE(ok(get("127.0.0.1", compiled)));
}

TEST(Deploy, BindErrorNamesThePortFromTheEnvironment) {
  int port = free_port();
  Fd busy = listen_on_any(port);
  ASSERT_TRUE(busy.valid());
  std::string dir = temp_dir();
  std::string bin = build_hello(json::object(), free_port(), dir);
  ASSERT_FALSE(bin.empty());
  auto [status, err] = run_to_exit(bin, dir, {"PORT=" + std::to_string(port)});
  EXPECT_EQ(status, 1);
  EXPECT_EQ(err, "hello: bind 0.0.0.0:" + std::to_string(port) + ": Address already in use\n");
}

TEST(Deploy, Ipv6LoopbackOnly) {
  int port = free_port();
  std::string dir = temp_dir();
  std::string bin = build_hello({{"listen", {{"address", "::1"}}}}, port, dir);
  ASSERT_FALSE(bin.empty());
  ServerProcess p(bin, dir);
  ASSERT_TRUE(p.wait_ready()) << p.err();
  EXPECT_EQ(p.out(), "hello listening on [::1]:" + std::to_string(port) + "\n");
  EXPECT_TRUE(ok(get("::1", port)));
  EXPECT_EQ(get("127.0.0.1", port), "") << "::1 is not dual-stack";
}

// Clients from other IPv6 addresses exist only in a network namespace of the
// test's own (root), where they are added to lo; the server there logs them.
TEST(Deploy, Ipv6ClientsAreLoggedInRfc5952Form) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace";
  if (find_in_path("curl").empty() || find_in_path("ip").empty()) GTEST_SKIP() << "needs curl and ip";
  std::string dir = temp_dir();
  std::string bin = build_hello({{"listen", {{"address", "::"}}}, {"log", {{"requests", true}}}}, 8080, dir);
  ASSERT_FALSE(bin.empty());
  // address added to lo -> how the log must print it
  std::vector<std::pair<std::string, std::string>> cases = {
      {"2001:db8::1:0:0:1", "2001:db8::1:0:0:1"},            // two runs of two: the first
      {"2001:0db8:0:0:1:0:0:0", "2001:db8:0:0:1::"},         // the longer run, not the first
      {"2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"},           // one zero group stays 0
      {"2001:db8:aaaa:bbbb:cccc:dddd:eeee:1", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:1"},
      {"fd00:a:b:c:d:e:f:0", "fd00:a:b:c:d:e:f:0"},
      {"1::", "1::"},
      {"fd00:0:0:0:0:0:0:ABCD", "fd00::abcd"},
  };
  std::string script = "set -e; ip link set lo up\n";
  for (auto& [a, _] : cases) script += "ip -6 addr add " + a + "/128 dev lo nodad\n";
  script += "./server > out 2> err & pid=$!\n"
            "i=0; until grep -q listening out || [ $i -ge 100 ]; do sleep 0.05; i=$((i+1)); done\n";
  for (auto& [a, _] : cases) script += "curl -s -o /dev/null --max-time 5 'http://[" + a + "]:8080/'\n";
  script += "curl -s -o /dev/null --max-time 5 http://127.0.0.1:8080/\n"
            "kill $pid; wait $pid || true; cat out err\n";
  CmdResult r = run({"timeout", "60", "unshare", "-n", "sh", "-c", script}, dir);
  ASSERT_EQ(r.status, 0) << r.err << r.out;
  std::string want = "hello listening on [::]:8080\n";
  for (auto& [_, text] : cases) want += text + " \"GET / HTTP/1.1\" 200 19\n";
  want += "127.0.0.1 \"GET / HTTP/1.1\" 200 19\n";
  EXPECT_EQ(r.out, want);
}

TEST(Deploy, SocketActivationChecksWhatItIsGiven) {
  std::string tool = find_in_path("systemd-socket-activate");
  if (tool.empty()) GTEST_SKIP() << "systemd-socket-activate is not installed (Debian package systemd)";
  std::string dir = temp_dir();
  std::string v4 = build_hello(json::object(), free_port(), dir);
  std::string dir6 = temp_dir();
  std::string v6 = build_hello({{"listen", {{"address", "::"}}}}, free_port(), dir6);
  ASSERT_FALSE(v4.empty() || v6.empty());
  auto activated = [&](const std::string& bin, const std::string& d, std::vector<std::string> listen) {
    int port = free_port();
    std::vector<std::string> args;
    for (std::string& l : listen) {
      args.push_back("-l");
      args.push_back(l == "PORT" ? std::to_string(port) : l == "PORT+v4" ? "127.0.0.1:" + std::to_string(port) : l);
    }
    args.push_back(bin);
    auto p = std::make_unique<ServerProcess>(tool, d, std::nullopt, args);
    EXPECT_TRUE(eventually([&] { return connect_to(port).valid(); }, 3000)) << p->err();
    return std::pair{std::move(p), port};
  };
  {
    // "-l PORT" binds [::]:PORT, dual-stack: right for "::".
    auto [p, port] = activated(v6, dir6, {"PORT"});
    EXPECT_TRUE(ok(get("::1", port))) << p->err();
    EXPECT_TRUE(ok(get("127.0.0.1", port))) << p->err();
  }
  {
    // ... and of the wrong family for an IPv4 spec: refused.
    auto [p, port] = activated(v4, dir, {"PORT"});
    EXPECT_EQ(p->wait_exit(3000), 1);
    EXPECT_NE(p->err().find("hello: fd 3 from systemd is not a listening TCP socket over IPv4 (the family of "
                            "listen.address)\n"),
              std::string::npos)
        << p->err();
  }
  {
    auto [p, port] = activated(v4, dir, {"PORT+v4", "127.0.0.1:" + std::to_string(free_port())});
    EXPECT_EQ(p->wait_exit(3000), 1);
    EXPECT_NE(p->err().find("hello: LISTEN_FDS: expected 1 socket from systemd\n"), std::string::npos) << p->err();
  }
  // LISTEN_PID names another process: not for us, bind as usual.
  ServerProcess p(v4, dir, std::nullopt, {}, {"LISTEN_PID=1", "LISTEN_FDS=1"});
  ASSERT_TRUE(p.wait_ready()) << p.err();
  EXPECT_NE(p.out().find(" listening on 0.0.0.0:"), std::string::npos);
}

TEST(Deploy, ProbeFailsOnAnErrorStatusAndSaysWhy) {
  json patch = {{"response", nullptr},
                {"routes", {{{"path", "/"}, {"body", "up\n"}}, {{"path", "/healthz"}, {"status", 503}}}},
                {"probe", {{"path", "/healthz"}}}};
  auto s = start_server(spec_copy("hello", patch), "nasm");
  ASSERT_TRUE(s);
  std::string bin = s->dir + "/server";
  CmdResult r = run({bin, "--probe"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "hello: probe GET /healthz on 127.0.0.1:" + std::to_string(s->port) +
                       ": HTTP/1.1 503 Service Unavailable\n");
}

TEST(Deploy, ProbeGivesUpAtItsDeadline) {
  // A listener that never accepts: connect succeeds (the backlog), no answer.
  int port = free_port();
  Fd silent = listen_on_any(port);
  ASSERT_TRUE(silent.valid());
  std::string dir = temp_dir();
  std::string bin = build_hello({{"probe", {{"timeout_ms", 300}}}}, port, dir);
  ASSERT_FALSE(bin.empty());
  auto t0 = Clock::now();
  CmdResult r = run({bin, "--probe"});
  double took = seconds_since(t0);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "hello: probe GET / on 127.0.0.1:" + std::to_string(port) + ": no answer within 300 ms\n");
  EXPECT_GE(took, 0.29);
  EXPECT_LT(took, 2.5);
}

TEST(Deploy, ProbeHonoursPortAndTheListenersFamily) {
  int compiled = free_port(), port = free_port();
  std::string dir = temp_dir();
  std::string bin = build_hello({{"listen", {{"address", "::"}}}, {"probe", json::object()}}, compiled, dir);
  ASSERT_FALSE(bin.empty());
  ServerProcess p(bin, dir, std::nullopt, {}, {"PORT=" + std::to_string(port)});
  ASSERT_TRUE(p.wait_ready()) << p.err();
  CmdResult r = run({bin, "--probe"}, "", {{"PORT", std::to_string(port)}});
  EXPECT_EQ(r.status, 0) << r.err;
  r = run({bin, "--probe"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "hello: probe GET / on [::1]:" + std::to_string(compiled) + ": Connection refused\n")
      << "\"::\" is probed on ::1";
}

TEST(Deploy, ArgumentsAreRefused) {
  std::string dir = temp_dir();
  std::string bin = build_hello(json::object(), free_port(), dir);
  ASSERT_FALSE(bin.empty());
  auto [status, err] = run_to_exit(bin, dir, {}, {"--probe"});
  EXPECT_EQ(status, 1);
  EXPECT_EQ(err, "hello: takes no arguments (\"probe\" in the spec adds --probe)\n");
  std::string dir2 = temp_dir();
  bin = build_hello({{"probe", json::object()}}, free_port(), dir2);
  ASSERT_FALSE(bin.empty());
  std::tie(status, err) = run_to_exit(bin, dir2, {}, {"--prob"});
  EXPECT_EQ(status, 1);
  EXPECT_EQ(err, "hello: unknown argument: the only one is --probe\n");
}

}  // namespace
}  // namespace asmsrv::test
