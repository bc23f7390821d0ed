// The access-log formats (log.format "common", "combined", "json"): a server
// per format in every mode, listening on "::", real requests from curl (with
// -A and -e, over 127.0.0.1 and ::1) and from raw sockets (no headers, '"',
// '\' and 0xff bytes, a control character, HEAD, 400, 431, 8,000-byte
// fields), and every line of the log parsed strictly: the Common and
// Combined formats by a regex, JSON by nlohmann::json::parse.
#include <gtest/gtest.h>

#include <ctime>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "access_log.h"
#include "server_util.h"
#include "test_util.h"

namespace asmsrv::test {
namespace {

using json = nlohmann::ordered_json;

constexpr int kRequestBytes = 20000;  // limits.request_bytes of the servers here
const std::string kBody = "Hello from asmsrv!\n";  // specs/hello.json's

struct Case {
  const char* mode;
  int workers;
  const char* format;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.mode << " x" << c.workers << " " << c.format; }

std::string case_name(const testing::TestParamInfo<Case>& info) {
  return std::string(info.param.mode) + (info.param.workers > 1 ? "Workers" : "") + "_" + info.param.format;
}

/// What one request must log.
struct Sent {
  std::string client;      // "127.0.0.1" or "::1"
  std::string line;        // the request line as sent, without CR LF
  std::optional<std::string> referer, user_agent;  // nullopt: the request had none
  int status = 0;          // as the client received it
  size_t bytes = 0;        // body bytes received
};

/// The README's rule: '"' and '\' get a backslash; bytes outside 0x20-0x7e
/// become \xHH (CLF) or \u00HH (JSON); a field stops before the escape that
/// would make it longer than `cap`. Returns the text and how many bytes of
/// `s` it holds.
std::pair<std::string, size_t> escaped(std::string_view s, bool json, size_t cap) {
  std::string out;
  size_t used = 0;
  for (unsigned char c : s) {
    std::string e;
    if (c == '"' || c == '\\') e = std::string{'\\', static_cast<char>(c)};
    else if (c < 0x20 || c > 0x7e) e = (json ? "\\u00" : "\\x") + fmt::format("{:02X}", c);
    else e = std::string(1, static_cast<char>(c));
    if (out.size() + e.size() > cap) break;
    out += e;
    ++used;
  }
  return {out, used};
}

/// What a JSON parser makes of `s` escaped as above: each byte is the code
/// point U+00XX, in UTF-8.
std::string json_value(std::string_view s, size_t cap) {
  std::string out;
  for (unsigned char c : s.substr(0, escaped(s, true, cap).second)) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      out += static_cast<char>(0xc0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3f));
    }
  }
  return out;
}

/// Seconds since the epoch of a UTC calendar time, -1 when it is not one.
time_t utc(const std::string& text, const char* format) {
  std::tm tm{};
  const char* end = ::strptime(text.c_str(), format, &tm);
  if (!end || *end) return -1;
  return ::timegm(&tm);
}

class AccessLogFormats : public testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    curl_ = find_in_path("curl");
    ASSERT_FALSE(curl_.empty()) << "curl is not installed (scripts/deps installs it)";
    port_ = free_port();
    dir_ = temp_dir();
    json patch = {{"mode", GetParam().mode},
                  {"workers", GetParam().workers},
                  {"listen", {{"address", "::"}}},
                  {"limits", {{"request_bytes", kRequestBytes}}},
                  {"log", {{"requests", true}, {"format", GetParam().format}}}};
    std::string bin = build_server(spec_copy("hello", patch), "nasm", port_, dir_);
    ASSERT_FALSE(bin.empty());
    server_ = std::make_unique<ServerProcess>(bin, dir_);
    ASSERT_TRUE(server_->wait_ready()) << server_->err();
  }

  /// A raw request over 127.0.0.1: what it must log, from what came back.
  Sent raw(const std::string& request, std::optional<std::string> referer = {},
           std::optional<std::string> user_agent = {}) {
    ReadResult r = exchange(port_, request);
    std::string pending = r.data;
    Sent s{"127.0.0.1", request.substr(0, request.find_first_of("\r\n")), std::move(referer),
           std::move(user_agent)};
    Reply reply = read_response(-1, pending, request.rfind("HEAD ", 0) == 0, 0);
    EXPECT_TRUE(reply.complete) << r.data.substr(0, 200);
    s.status = reply.status;
    s.bytes = reply.body.size();
    return s;
  }

  /// A GET from curl to `host` ("127.0.0.1" or "[::1]") with -A and -e when given.
  Sent curl(const std::string& host, const std::string& target, std::optional<std::string> referer,
            std::optional<std::string> user_agent) {
    std::vector<std::string> argv = {curl_, "-s", "-g", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}"};
    if (referer) argv.insert(argv.end(), {"-e", *referer});
    argv.insert(argv.end(), {"-A", user_agent.value_or("")});  // -A "": no User-Agent at all
    argv.push_back(fmt::format("http://{}:{}{}", host, port_, target));
    CmdResult r = run(argv);
    EXPECT_EQ(r.status, 0) << "curl failed: " << r.err;
    Sent s{host == "[::1]" ? "::1" : host, "GET " + target + " HTTP/1.1", referer, user_agent};
    s.status = std::atoi(r.out.c_str());
    s.bytes = s.status == 200 ? kBody.size() : 0;
    return s;
  }

  /// The log lines (stdout after the "listening on" line), once there are `n`.
  std::vector<std::string> log_lines(size_t n) {
    std::vector<std::string> lines;
    auto read_lines = [&] {
      lines.clear();
      std::string out = server_->out();
      size_t at = out.find('\n');
      while (at != std::string::npos && at + 1 < out.size()) {
        size_t end = out.find('\n', at + 1);
        if (end == std::string::npos) break;  // a line still being written
        lines.push_back(out.substr(at + 1, end - at - 1));
        at = end;
      }
      return lines.size() >= n;
    };
    EXPECT_TRUE(eventually(read_lines, 3000)) << "want " << n << " lines, have " << lines.size() << ":\n"
                                              << server_->out().substr(0, 2000);
    return lines;
  }

  /// Checks `line` against `s`, strictly; the time within [t0 - 2, t1 + 2].
  void check_line(const std::string& line, const Sent& s, double t0, double t1) {
    SCOPED_TRACE(line.substr(0, 300));
    const std::string format = GetParam().format;
    ASSERT_LE(line.size(), static_cast<size_t>(kRequestBytes + 2 * AccessLog::kHeaderBytes + 256));
    time_t t = -1;
    if (format == "json") {
      for (unsigned char c : line) ASSERT_LT(c, 0x80) << "a JSON line is ASCII";
      json j;
      ASSERT_NO_THROW(j = json::parse(line));
      std::vector<std::string> keys;
      for (auto& [k, v] : j.items()) keys.push_back(k);
      EXPECT_EQ(keys, (std::vector<std::string>{"time", "client", "method", "target", "protocol", "status",
                                                  "bytes", "user_agent"}));
      t = utc(j.at("time").get<std::string>(), "%Y-%m-%dT%H:%M:%SZ");
      EXPECT_EQ(j.at("time").get<std::string>().size(), 20u);
      EXPECT_EQ(j.at("client"), s.client);
      size_t sp1 = s.line.find(' '), sp2 = s.line.find(' ', sp1 + 1);
      EXPECT_EQ(j.at("method"), json_value(s.line.substr(0, sp1), AccessLog::kWordBytes));
      EXPECT_EQ(j.at("target"), json_value(s.line.substr(sp1 + 1, sp2 - sp1 - 1), kRequestBytes));
      EXPECT_EQ(j.at("protocol"), json_value(s.line.substr(sp2 + 1), AccessLog::kWordBytes));
      EXPECT_EQ(j.at("status"), s.status);
      EXPECT_EQ(j.at("bytes"), s.bytes);
      if (s.user_agent) EXPECT_EQ(j.at("user_agent"), json_value(*s.user_agent, AccessLog::kHeaderBytes));
      else EXPECT_TRUE(j.at("user_agent").is_null());
    } else {
      static const std::regex clf(
          R"re(([0-9a-f.:]+) - - \[(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d) \+0000\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+))re"
          R"re(( "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)")?)re");
      std::smatch m;
      ASSERT_TRUE(std::regex_match(line, m, clf));
      for (unsigned char c : line) ASSERT_TRUE(c >= 0x20 && c <= 0x7e) << "a CLF line is printable ASCII";
      EXPECT_EQ(m[1], s.client);
      t = utc(m[2], "%d/%b/%Y:%H:%M:%S");
      EXPECT_EQ(m[3], escaped(s.line, false, kRequestBytes).first);
      EXPECT_EQ(m[4], std::to_string(s.status));
      EXPECT_EQ(m[5], std::to_string(s.bytes));
      EXPECT_EQ(m[6].matched, format == "combined");
      auto header = [](const std::optional<std::string>& v) {
        return v ? escaped(*v, false, AccessLog::kHeaderBytes).first : "-";
      };
      if (format == "combined") {
        EXPECT_EQ(m[7], header(s.referer));
        EXPECT_EQ(m[8], header(s.user_agent));
      }
    }
    EXPECT_GE(static_cast<double>(t), t0 - 2);
    EXPECT_LE(static_cast<double>(t), t1 + 2);
  }

  std::string curl_, dir_;
  int port_ = 0;
  std::unique_ptr<ServerProcess> server_;
};

INSTANTIATE_TEST_SUITE_P(Modes, AccessLogFormats,
                         testing::Values(Case{"epoll", 1, "common"}, Case{"epoll", 1, "combined"},
                                         Case{"epoll", 1, "json"}, Case{"iterative", 1, "common"},
                                         Case{"iterative", 1, "combined"}, Case{"iterative", 1, "json"},
                                         Case{"fork", 1, "common"}, Case{"fork", 1, "combined"},
                                         Case{"fork", 1, "json"}, Case{"epoll", 2, "common"},
                                         Case{"epoll", 2, "combined"}, Case{"epoll", 2, "json"}),
                         case_name);

TEST_P(AccessLogFormats, EveryLineParsesAndSaysWhatWasSent) {
  double t0 = wall_clock();
  std::vector<Sent> sent;
  sent.push_back(curl("127.0.0.1", "/a?b=1", "http://ref.example/?q=\"x\"", "agent \"quoted\" \\ back"));
  sent.push_back(curl("[::1]", "/over-ipv6", std::nullopt, "v6 client"));
  sent.push_back(raw("HEAD /h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  std::string odd_ua = "a\"b\\c\xff" "d";  // obs-text is allowed in a field value
  sent.push_back(raw("GET /q\"\\\xff" "z HTTP/1.1\r\nHost: x\r\nUser-Agent: " + odd_ua +
                         "\r\nReferer: /r\xfe\r\nConnection: close\r\n\r\n",
                     "/r\xfe", odd_ua));
  sent.push_back(raw("GET /tab\there HTTP/1.1\r\nHost: x\r\n\r\n"));     // 400: a control byte
  sent.push_back(raw("GET /two HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"));  // 400: Host twice
  sent.push_back(raw("GET / HTTP/1.1\r\nX: " + std::string(kRequestBytes, 'a')));  // 431
  std::string long_target = "/" + std::string(7999, 't'), long_ua(8000, 'u');
  sent.push_back(raw("GET " + long_target + " HTTP/1.1\r\nHost: x\r\nUser-Agent: " + long_ua +
                         "\r\nConnection: close\r\n\r\n",
                     std::nullopt, long_ua));
  sent.push_back(raw("GET /" + std::string(7999, '\xff') + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  double t1 = wall_clock();

  EXPECT_EQ(sent[0].status, 200);
  EXPECT_EQ(sent[2].status, 200);
  EXPECT_EQ(sent[2].bytes, 0u) << "HEAD";
  EXPECT_EQ(sent[3].status, 200);
  EXPECT_EQ(sent[4].status, 400);
  EXPECT_EQ(sent[5].status, 400);
  EXPECT_EQ(sent[6].status, 431);
  EXPECT_EQ(sent[7].status, 200);
  std::vector<std::string> lines = log_lines(sent.size());
  ASSERT_EQ(lines.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    check_line(lines[i], sent[i], t0, t1);
  }
  // The 8,000-byte fields: the target whole, the User-Agent cut, 0xff x 7999 cut.
  EXPECT_NE(lines[7].find(long_target), std::string::npos);
  if (std::string(GetParam().format) != "common") {
    EXPECT_EQ(lines[7].find(long_ua), std::string::npos);
    EXPECT_NE(lines[7].find(std::string(AccessLog::kHeaderBytes, 'u')), std::string::npos);
  }
  EXPECT_LT(lines[8].size(), static_cast<size_t>(kRequestBytes + 256));
}

// The specs in specs/ log in asmsrv's format: the other formats' code is
// checked here, as binary_test checks theirs. Both assemblers must give the
// same .text for each format (with workers and IPv6, the most code).
TEST(AccessLogSyntax, NasmAndGasGiveByteIdenticalText) {
  for (const char* format : {"common", "combined", "json"}) {
    SCOPED_TRACE(format);
    json patch = {{"workers", 2},
                  {"listen", {{"address", "::"}}},
                  {"log", {{"requests", true}, {"connections", true}, {"format", format}}}};
    std::string spec = spec_copy("hello", patch);
    std::string text[2];
    for (int i = 0; i < 2; ++i) {
      const char* syntax = i ? "gas" : "nasm";
      std::string bin = build_server(spec, syntax, 8080, temp_dir());
      ASSERT_FALSE(bin.empty());
      CmdResult r = run({"objcopy", "-O", "binary", "-j", ".text", bin, bin + ".text"});
      ASSERT_EQ(r.status, 0) << r.err;
      text[i] = read(bin + ".text");
    }
    EXPECT_GT(text[0].size(), 1000u);
    EXPECT_TRUE(text[0] == text[1]) << ".text differs between NASM and GAS output";
  }
}

}  // namespace
}  // namespace asmsrv::test
