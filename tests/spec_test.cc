// Spec validation: every error message, verbatim.
#include "routes.h"
#include "spec.h"

#include <gtest/gtest.h>

#include <filesystem>

#include <unistd.h>

#include "test_util.h"

namespace asmsrv {
namespace {

// The error lines parse_spec reports for `text` (empty when valid).
std::vector<std::string> errors(const std::string& text, const std::string& path = "s.json") {
  try {
    parse_spec(text, path);
  } catch (const SpecError& e) {
    return e.lines();
  }
  return {};
}

std::string error(const std::string& text) {
  auto lines = errors(text);
  EXPECT_EQ(lines.size(), 1u) << "for " << text;
  return lines.empty() ? "" : lines[0];
}

TEST(Spec, Defaults) {
  Spec s = parse_spec(R"({"response": {}})", "dir/s.json");
  EXPECT_EQ(s.name, "asmsrv");
  EXPECT_EQ(s.address, "0.0.0.0");
  EXPECT_EQ(s.port, 8080);
  EXPECT_EQ(s.backlog, 511);
  EXPECT_EQ(s.defer_accept_s, 3);
  EXPECT_EQ(s.mode, Mode::epoll);
  EXPECT_EQ(s.workers, 1);
  EXPECT_EQ(s.limits.max_connections, 1024);
  EXPECT_EQ(s.limits.shutdown_timeout_ms, 5000);
  EXPECT_EQ(s.limits.send_timeout_ms, 10000);
  EXPECT_EQ(s.limits.linger_ms, 5000);
  EXPECT_EQ(s.limits.linger_bytes, 1048576);
  EXPECT_EQ(s.dir, "dir");
  ASSERT_TRUE(s.response);
  EXPECT_EQ(s.response->status, 200);
  EXPECT_EQ(s.response->reason, "OK");
  EXPECT_EQ(s.response->content_type, "text/plain");
  EXPECT_EQ(s.response->body, "200 OK\n");
  EXPECT_FALSE(s.log_connections);
  EXPECT_EQ(s.log_target, LogTarget::stdout_);
  EXPECT_EQ(s.port_env, "PORT");
  EXPECT_FALSE(s.ipv6);
  EXPECT_FALSE(s.probe);
}

TEST(Spec, Ipv6AddressIsKeptInRfc5952Form) {
  Spec s = parse_spec(R"({"response": {}, "listen": {"address": "2001:DB8:0:0:0:0:0:01"}})", "s.json");
  EXPECT_TRUE(s.ipv6);
  EXPECT_EQ(s.address, "2001:db8::1");
  EXPECT_EQ(listen_text(s), "[2001:db8::1]:8080");
  EXPECT_EQ(s.address_bytes, (std::array<uint8_t, 16>{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  s = parse_spec(R"({"response": {}, "listen": {"address": "::"}})", "s.json");
  EXPECT_EQ(listen_text(s), "[::]:8080");
  EXPECT_EQ(s.address_bytes, (std::array<uint8_t, 16>{}));
  s = parse_spec(R"({"response": {}, "listen": {"address": "::FFFF:127.0.0.1"}})", "s.json");
  EXPECT_EQ(s.address, "::ffff:127.0.0.1");
}

TEST(Spec, PortEnvAndProbe) {
  Spec s = parse_spec(R"({"response": {}, "listen": {"port_env": "HTTP_PORT"}, "probe": {}})", "s.json");
  EXPECT_EQ(s.port_env, "HTTP_PORT");
  ASSERT_TRUE(s.probe);
  EXPECT_EQ(s.probe->path, "/");
  EXPECT_EQ(s.probe->timeout_ms, 2000);
  s = parse_spec(R"({"response": {}, "listen": {"port_env": null}, "probe": {"path": "/healthz?full=1", "timeout_ms": 500}})",
                 "s.json");
  EXPECT_EQ(s.port_env, "");
  EXPECT_EQ(s.probe->path, "/healthz?full=1");
  EXPECT_EQ(s.probe->timeout_ms, 500);
  EXPECT_EQ(parse_spec(R"({"response": {}, "listen": {"port_env": ""}})", "s.json").port_env, "");
}

TEST(Spec, FullSpec) {
  Spec s = parse_spec(R"({
    "name": "svc-1.0", "listen": {"address": "127.0.0.1", "port": 9000, "backlog": 16},
    "mode": "fork", "workers": 4,
    "response": {"status": 503, "content_type": "text/html", "headers": {"Retry-After": "120", "X-A": "b"},
                 "body": "<p>later</p>"},
    "log": {"connections": true, "target": "/var/log/x.log"}})",
                      "s.json");
  EXPECT_EQ(s.name, "svc-1.0");
  EXPECT_EQ(s.address_bytes, (std::array<uint8_t, 16>{127, 0, 0, 1}));
  EXPECT_FALSE(s.ipv6);
  EXPECT_EQ(s.port, 9000);
  EXPECT_EQ(s.backlog, 16);
  EXPECT_EQ(s.mode, Mode::fork);
  EXPECT_EQ(s.workers, 4);
  EXPECT_EQ(s.response->reason, "Service Unavailable");
  EXPECT_EQ(s.response->headers,
            (std::vector<std::pair<std::string, std::string>>{{"Retry-After", "120"}, {"X-A", "b"}}));
  EXPECT_EQ(s.log_target, LogTarget::file);
  EXPECT_EQ(s.log_path, "/var/log/x.log");
  EXPECT_EQ(s.dir, ".");
}

TEST(Spec, RawResponse) {
  Spec s = parse_spec(R"({"raw_response": "HTTP/1.0 200 OK\r\n\r\n"})", "s.json");
  EXPECT_EQ(*s.raw_response, "HTTP/1.0 200 OK\r\n\r\n");
  EXPECT_FALSE(s.response);
}

TEST(SpecErrors, InvalidJson) {
  EXPECT_EQ(error("{\n  \"response\": {},\n  }"),
            "s.json:3:3: syntax error while parsing object key - unexpected '}'; expected string literal");
  EXPECT_EQ(error(R"({"response": {}, )"),
            "s.json:1:18: syntax error while parsing object key - unexpected end of input; expected string literal");
}

TEST(SpecErrors, RootAndUnknownKeys) {
  EXPECT_EQ(error("[1]"), "s.json: /: expected an object, got [1]");
  EXPECT_EQ(error(R"({"listen": {}})"),
            "s.json: /: missing the response: give \"response\", \"routes\", \"static\" or \"raw_response\"");
  EXPECT_EQ(error(R"({"response": {}, "lisen": {}})"), "s.json: /lisen: unknown key; did you mean \"listen\"?");
  EXPECT_EQ(error(R"({"response": {}, "zzzzzzzz": 1})"),
            "s.json: /zzzzzzzz: unknown key; valid keys here: \"name\", \"listen\", \"mode\", \"workers\", "
            "\"raw_response\", \"response\", \"routes\", \"static\", \"uploads\", \"not_found\", \"headers\", \"limits\", \"log\", "
            "\"cors\", \"probe\"");
  EXPECT_EQ(error(R"({"response": {"bdy": "x"}})"), "s.json: /response/bdy: unknown key; did you mean \"body\"?");
  EXPECT_EQ(error(R"({"response": {}, "listen": {"prot": 1}})"),
            "s.json: /listen/prot: unknown key; did you mean \"port\"?");
  EXPECT_EQ(error(R"({"response": {}, "log": {"a/b~c": 1}})"),
            "s.json: /log/a~1b~0c: unknown key; valid keys here: \"connections\", \"requests\", \"format\", \"target\"");
}

TEST(SpecErrors, JsonEdgeCases) {
  // A number too large for a double is a spec error with its position.
  EXPECT_EQ(error("{\"response\": {},\n \"listen\": {\"port\": 1e999}}"),
            "s.json:2:21: number out of range: 1e999");
  EXPECT_EQ(error(R"({"response": {"body": "1e999"}, "workers": -1e999})"),
            "s.json:1:44: number out of range: -1e999") << "not the one in a string";
  // Duplicate keys, at any depth, each at its pointer.
  EXPECT_EQ(errors(R"({"name": "a", "name": "b", "routes": [{"path": "/"}, {"path": "/b", "path": "/c"}]})"),
            (std::vector<std::string>{
                "s.json: /name: duplicate key: JSON objects need unique keys (this one would win)",
                "s.json: /routes/1/path: duplicate key: JSON objects need unique keys (this one would win)"}));
  EXPECT_EQ(errors(R"({"response": {}, "log": {"a/b": true, "a/b": true}})").front(),
            "s.json: /log/a~1b: duplicate key: JSON objects need unique keys (this one would win)")
      << "then: unknown key";
  // A UTF-8 byte order mark is skipped.
  EXPECT_TRUE(errors("\xEF\xBB\xBF{\"response\": {}}").empty());
  // Control characters from the spec are shown escaped: one error, one line.
  EXPECT_EQ(error(R"({"response": {}, "a\nb\u0000": 1})"),
            "s.json: /a\\nb\\u0000: unknown key; valid keys here: \"name\", \"listen\", \"mode\", "
            "\"workers\", \"raw_response\", \"response\", \"routes\", \"static\", \"uploads\", \"not_found\", \"headers\", "
            "\"limits\", \"log\", \"cors\", \"probe\"");
  EXPECT_EQ(error(R"({"response": {"headers": {"X\r\nY": "1"}}})"),
            "s.json: /response/headers/X\\r\\nY: header name is not a token (letters, digits and "
            "!#$%&'*+-.^_`|~)");
  EXPECT_EQ(error("{\"response\": {\"body\": \"a\nb\"}}").substr(0, 44),
            "s.json:1:25: syntax error while parsing valu") << "raw LF in a string";
  for (const std::string& line : errors("{\"response\": {\"body\": \"a\nb\"}}"))
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
}

TEST(Spec, Cors) {
  Spec s = parse_spec(R"({"routes": [{"path": "/"}], "cors": {}})", "s.json");
  ASSERT_TRUE(s.cors);
  EXPECT_EQ(s.cors->allow_origin, "*");
  EXPECT_EQ(s.cors->allow_headers, "*");
  EXPECT_EQ(s.cors->max_age_s, 600);
  EXPECT_EQ(s.headers, (std::vector<std::pair<std::string, std::string>>{{"Access-Control-Allow-Origin", "*"}}));
  s = parse_spec(R"({"routes": [{"path": "/"}], "headers": {"access-control-allow-origin": "https://a.example"},
                     "cors": {"allow_headers": "Content-Type", "max_age_s": 0}})", "s.json");
  EXPECT_EQ(s.headers.size(), 1u) << "the spec's own header wins";
  EXPECT_EQ(s.cors->allow_headers, "Content-Type");
  EXPECT_EQ(error(R"({"response": {}, "cors": {}})"), "s.json: /cors: only with \"routes\": OPTIONS is answered per path");
  EXPECT_EQ(error(R"({"routes": [{"path": "/"}], "cors": {"max_age_s": 86401}})"),
            "s.json: /cors/max_age_s: expected an integer from 0 to 86400, got 86401");
  EXPECT_EQ(error(R"({"routes": [{"path": "/"}], "cors": {"allow_origin": "a\r\nb"}})"),
            "s.json: /cors/allow_origin: a header value must not contain CR or LF");
  EXPECT_EQ(error(R"({"routes": [{"path": "/"}], "cors": {"allow_headers": ""}})"),
            "s.json: /cors/allow_headers: expected a header value, got \"\"");
  EXPECT_EQ(error(R"({"routes": [{"path": "/"}], "cors": {"origin": "*"}})"),
            "s.json: /cors/origin: unknown key; valid keys here: \"allow_origin\", \"allow_headers\", \"max_age_s\"");
}

TEST(SpecErrors, AMistypedRequiredKeyIsOneError) {
  // The typo is the cause; "missing" would only repeat it.
  EXPECT_EQ(errors(R"({"respnse": {"body": "x"}})"),
            std::vector<std::string>{"s.json: /respnse: unknown key; did you mean \"response\"?"});
  EXPECT_EQ(errors(R"({"rotes": []})"),
            std::vector<std::string>{"s.json: /rotes: unknown key; did you mean \"routes\"?"});
  EXPECT_EQ(errors(R"({"routes": [{"pth": "/"}]})"),
            std::vector<std::string>{"s.json: /routes/0/pth: unknown key; did you mean \"path\"?"});
  // An unrelated unknown key still leaves the response missing.
  EXPECT_EQ(errors(R"({"zzzzzzzz": 1})").size(), 2u);
}

TEST(SpecErrors, ExactlyOneResponse) {
  EXPECT_EQ(error(R"({"raw_response": "x", "response": {}})"),
            "s.json: /response: give exactly one of \"raw_response\", \"response\" or \"routes\", "
            "not both \"raw_response\" and \"response\"");
  EXPECT_EQ(error(R"({"response": {}, "routes": [{"path": "/"}]})"),
            "s.json: /routes: give exactly one of \"raw_response\", \"response\" or \"routes\", "
            "not both \"response\" and \"routes\"");
  EXPECT_EQ(error(R"({"raw_response": ""})"), "s.json: /raw_response: expected at least one byte, got \"\"");
  EXPECT_EQ(error(R"({"raw_response": 5})"), "s.json: /raw_response: expected a string, got 5");
}

TEST(SpecErrors, WrongTypes) {
  EXPECT_EQ(error(R"({"response": {}, "name": 5})"), "s.json: /name: expected a string, got 5");
  EXPECT_EQ(error(R"({"response": {}, "listen": 8080})"), "s.json: /listen: expected an object, got 8080");
  EXPECT_EQ(error(R"({"response": {}, "listen": {"port": "80"}})"),
            "s.json: /listen/port: expected an integer from 1 to 65535, got \"80\"");
  EXPECT_EQ(error(R"({"response": {}, "listen": {"port": 80.5}})"),
            "s.json: /listen/port: expected an integer from 1 to 65535, got 80.5");
  EXPECT_EQ(error(R"({"response": {}, "log": {"connections": 1}})"),
            "s.json: /log/connections: expected true or false, got 1");
  EXPECT_EQ(error(R"({"response": {"headers": ["X"]}})"),
            "s.json: /response/headers: expected an object of header names to values, got [\"X\"]");
  EXPECT_EQ(error(R"({"response": {"headers": {"X-A": 1}}})"),
            "s.json: /response/headers/X-A: expected a string, got 1");
  EXPECT_EQ(error(R"({"response": {"body": ["a very long array that is cut short in the message"]}})"),
            "s.json: /response/body: expected a string, got [\"a very long array that is cut short...");
}

TEST(SpecErrors, OutOfRange) {
  EXPECT_EQ(error(R"({"response": {}, "listen": {"port": 0}})"),
            "s.json: /listen/port: expected an integer from 1 to 65535, got 0");
  EXPECT_EQ(error(R"({"response": {}, "listen": {"port": 70000}})"),
            "s.json: /listen/port: expected an integer from 1 to 65535, got 70000");
  EXPECT_EQ(error(R"({"response": {}, "listen": {"backlog": 0}})"),
            "s.json: /listen/backlog: expected an integer from 1 to 65535, got 0");
  EXPECT_EQ(error(R"({"response": {}, "listen": {"defer_accept_s": 61}})"),
            "s.json: /listen/defer_accept_s: expected an integer from 0 to 60, got 61");
  EXPECT_EQ(error(R"({"response": {"status": 99}})"),
            "s.json: /response/status: expected an integer from 200 to 599, got 99");
  EXPECT_EQ(error(R"({"response": {"status": 600}})"),
            "s.json: /response/status: expected an integer from 200 to 599, got 600");
  EXPECT_EQ(error(R"({"routes": [{"path": "/", "status": 101}]})"),
            "s.json: /routes/0/status: 101 is informational (1xx): a client would wait for a final "
            "response; expected an integer from 200 to 599");
  EXPECT_EQ(error(R"({"response": {}, "mode": "forks"})"),
            "s.json: /mode: expected \"epoll\" or \"iterative\" or \"fork\", got \"forks\"");
  EXPECT_EQ(error(R"({"response": {}, "workers": 0})"),
            "s.json: /workers: expected an integer from 1 to 64, got 0");
  EXPECT_EQ(error(R"({"response": {}, "workers": 65})"),
            "s.json: /workers: expected an integer from 1 to 64, got 65");
  EXPECT_EQ(error(R"({"response": {}, "limits": {"max_connections": 0}})"),
            "s.json: /limits/max_connections: expected an integer from 1 to 65536, got 0");
  EXPECT_EQ(error(R"({"response": {}, "limits": {"max_connections": 65536, "request_bytes": 65536}})"),
            "s.json: /limits/max_connections: 65536 connections with 65536-byte buffers need 4121 MiB "
            "of memory; the limit is 1024 MiB: lower max_connections or request_bytes");
  EXPECT_TRUE(errors(R"({"response": {}, "mode": "fork", "limits": {"max_connections": 65536, "request_bytes": 65536}})").empty());
  EXPECT_EQ(error(R"({"response": {}, "limits": {"shutdown_timeout_ms": -1}})"),
            "s.json: /limits/shutdown_timeout_ms: expected an integer from 0 to 3600000, got -1");
  EXPECT_EQ(error(R"({"response": {}, "limits": {"send_timeout_ms": 0}})"),
            "s.json: /limits/send_timeout_ms: expected an integer from 1 to 3600000, got 0");
  EXPECT_EQ(error(R"({"response": {}, "limits": {"linger_ms": -1}})"),
            "s.json: /limits/linger_ms: expected an integer from 0 to 3600000, got -1");
  EXPECT_EQ(error(R"({"response": {}, "limits": {"linger_bytes": 0}})"),
            "s.json: /limits/linger_bytes: expected an integer from 1 to 1099511627776, got 0");
}

TEST(SpecErrors, Address) {
  for (const char* bad : {"1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "a.b.c.d", "1.2.3.4 ", "", ":::",
                          "1::2::3", "[::1]", "fe80::1%eth0", "12345::", "1:2:3:4:5:6:7:8:9", "::g"}) {
    EXPECT_EQ(error(std::string(R"({"response": {}, "listen": {"address": ")") + bad + "\"}}"),
              std::string("s.json: /listen/address: expected an IPv4 or IPv6 address like \"127.0.0.1\" or "
                          "\"::\", got \"") + bad + "\"");
  }
  EXPECT_TRUE(errors(R"({"response": {}, "listen": {"address": "255.255.255.255"}})").empty());
  EXPECT_TRUE(errors(R"({"response": {}, "listen": {"address": "::1"}})").empty());
}

TEST(SpecErrors, PortEnv) {
  for (const char* bad : {R"("1PORT")", R"("MY-PORT")", R"("PORT=")", R"(8080)", R"(true)"})
    EXPECT_EQ(error(std::string(R"({"response": {}, "listen": {"port_env": )") + bad + "}}"),
              std::string("s.json: /listen/port_env: expected an environment variable name like \"PORT\" "
                          "(letters, digits and _, at most 64), or null to turn it off, got ") + bad);
}

TEST(SpecErrors, Probe) {
  EXPECT_EQ(error(R"({"response": {}, "probe": {"path": "healthz"}})"),
            "s.json: /probe/path: expected a path that starts with \"/\", got \"healthz\"");
  EXPECT_EQ(error(R"({"response": {}, "probe": {"path": "/a b"}})"),
            "s.json: /probe/path: a probe path has no spaces, control characters or fragment");
  EXPECT_EQ(error(R"({"response": {}, "probe": {"path": "/a#b"}})"),
            "s.json: /probe/path: a probe path has no spaces, control characters or fragment");
  EXPECT_EQ(error(R"({"response": {}, "probe": {"timeout_ms": 0}})"),
            "s.json: /probe/timeout_ms: expected an integer from 1 to 600000, got 0");
  EXPECT_EQ(error(R"({"response": {}, "probe": {"timeot_ms": 10}})"),
            "s.json: /probe/timeot_ms: unknown key; did you mean \"timeout_ms\"?");
  EXPECT_EQ(error(R"({"response": {}, "probe": true})"), "s.json: /probe: expected an object, got true");
  EXPECT_EQ(error(R"({"raw_response": "x", "probe": {}})"),
            "s.json: /probe: only with \"response\" or \"routes\": the probe reads an HTTP status");
}

TEST(SpecErrors, HeadersAndReason) {
  EXPECT_EQ(error(R"({"response": {"headers": {"Bad Name": "x"}}})"),
            "s.json: /response/headers/Bad Name: header name is not a token (letters, digits and !#$%&'*+-.^_`|~)");
  EXPECT_EQ(error(R"({"response": {"headers": {"": "x"}}})"),
            "s.json: /response/headers/: header name is not a token (letters, digits and !#$%&'*+-.^_`|~)");
  EXPECT_EQ(error(R"({"response": {"headers": {"X-A": "a\r\nSet-Cookie: x"}}})"),
            "s.json: /response/headers/X-A: a header value must not contain CR or LF");
  EXPECT_EQ(error(R"({"response": {"headers": {"X-A": "a\u0000b"}}})"),
            "s.json: /response/headers/X-A: a header value must not contain control characters");
  EXPECT_EQ(error(R"({"response": {"reason": "O\nK"}})"),
            "s.json: /response/reason: a reason phrase must not contain CR or LF");
  EXPECT_EQ(error(R"({"response": {"content_type": "text/html\r\nX: y"}})"),
            "s.json: /response/content_type: a content type must not contain CR or LF");
  EXPECT_EQ(error(R"({"response": {"headers": {"Content-Length": "3"}}})"),
            "s.json: /response/headers/Content-Length: this header is set by asmsrv; remove it");
  EXPECT_EQ(error(R"({"response": {"headers": {"connection": "keep-alive"}}})"),
            "s.json: /response/headers/connection: this header is set by asmsrv; remove it");
  EXPECT_EQ(error(R"({"response": {"headers": {"Content-Type": "text/html"}}})"),
            "s.json: /response/headers/Content-Type: use \"content_type\" for the Content-Type header");
  EXPECT_EQ(error(R"({"response": {"headers": {"X-Dup": "1", "x-dup": "2"}}})"),
            "s.json: /response/headers/x-dup: duplicate of header \"X-Dup\"");
}

TEST(SpecErrors, Bodies) {
  EXPECT_EQ(error(R"({"response": {"body": "x", "file": "y"}})"),
            "s.json: /response/file: give either \"body\" or \"file\", not both");
  EXPECT_EQ(error(R"({"response": {"status": 204, "body": "x"}})"),
            "s.json: /response/body: a 204 response has no body");
  std::string big(kMaxBodyBytes + 1, 'x');
  EXPECT_EQ(error(R"({"response": {"body": ")" + big + "\"}}"),
            "s.json: /response/body: 16777217 bytes is over the limit of 16777216 bytes (16 MiB)");
  EXPECT_EQ(error(R"({"raw_response": ")" + big + "\"}"),
            "s.json: /raw_response: 16777217 bytes is over the limit of 16777216 bytes (16 MiB)");
  std::string max(kMaxBodyBytes, 'x');
  EXPECT_TRUE(errors(R"({"response": {"body": ")" + max + "\"}}").empty());
}

TEST(SpecErrors, Files) {
  std::string dir = test::temp_dir();
  test::write(dir + "/page.html", "<h1>hi</h1>\n");
  std::filesystem::create_directory(dir + "/sub");
  Spec s = parse_spec(R"({"response": {"file": "page.html"}})", dir + "/s.json");
  EXPECT_EQ(s.response->file, "page.html");
  EXPECT_EQ(s.response->file_size, 12u);
  EXPECT_EQ(s.response->content_type, "text/html; charset=utf-8");
  EXPECT_EQ(errors(R"({"response": {"file": "missing.html"}})", dir + "/s.json"),
            std::vector<std::string>{dir + "/s.json: /response/file: cannot read \"missing.html\": No such file or directory"});
  EXPECT_EQ(errors(R"({"response": {"file": "sub"}})", dir + "/s.json"),
            std::vector<std::string>{dir + "/s.json: /response/file: cannot read \"sub\": not a regular file"});
  EXPECT_EQ(errors(R"({"response": {"file": ""}})", dir + "/s.json"),
            std::vector<std::string>{dir + "/s.json: /response/file: expected a file path, got \"\""});
  // A file over 16 MiB: a sparse file costs no disk.
  std::string huge = dir + "/huge.bin";
  test::write(huge, "");
  std::filesystem::resize_file(huge, kMaxBodyBytes + 1);
  EXPECT_EQ(errors(R"({"response": {"file": "huge.bin"}})", dir + "/s.json"),
            std::vector<std::string>{dir + "/s.json: /response/file: 16777217 bytes is over the limit of 16777216 bytes (16 MiB)"});
}

TEST(SpecErrors, NameAndLog) {
  EXPECT_EQ(error(R"({"response": {}, "name": "my server"})"),
            "s.json: /name: expected 1 to 64 characters from A-Z a-z 0-9 . _ -, got \"my server\"");
  EXPECT_EQ(error(R"({"response": {}, "log": {"target": ""}})"),
            "s.json: /log/target: expected \"stdout\", \"stderr\" or a file path, got \"\"");
  EXPECT_EQ(parse_spec(R"({"response": {}, "log": {"target": "stderr"}})", "s.json").log_target, LogTarget::stderr_);
}

TEST(Spec, Routes) {
  Spec s = parse_spec(R"({
    "headers": {"Server": "asmsrv"},
    "routes": [
      {"path": "/", "body": "home"},
      {"method": "POST", "path": "/api", "status": 201, "body": "made"},
      {"method": "HEAD", "path": "/x", "status": 204}],
    "not_found": {"body": "nope"},
    "limits": {"request_bytes": 4096, "body_bytes": 0, "header_timeout_ms": 500, "body_timeout_ms": 2500,
               "keepalive_timeout_ms": 0, "keepalive_requests": 7},
    "log": {"requests": true}})",
                      "s.json");
  ASSERT_EQ(s.routes.size(), 3u);
  EXPECT_EQ(s.routes[0].method, Method::GET);
  EXPECT_EQ(s.routes[0].path, "/");
  EXPECT_EQ(s.routes[1].method, Method::POST);
  EXPECT_EQ(s.routes[1].response.status, 201);
  EXPECT_EQ(s.routes[1].response.reason, "Created");
  EXPECT_EQ(s.routes[2].method, Method::HEAD);
  EXPECT_EQ(s.not_found.status, 404);
  EXPECT_EQ(s.not_found.body, "nope");
  EXPECT_EQ(s.headers, (std::vector<std::pair<std::string, std::string>>{{"Server", "asmsrv"}}));
  EXPECT_EQ(s.limits.request_bytes, 4096);
  EXPECT_EQ(s.limits.body_bytes, 0);
  EXPECT_EQ(s.limits.header_timeout_ms, 500);
  EXPECT_EQ(s.limits.body_timeout_ms, 2500);
  EXPECT_EQ(s.limits.keepalive_timeout_ms, 0);
  EXPECT_EQ(s.limits.keepalive_requests, 7);
  EXPECT_TRUE(s.log_requests);
}

TEST(Spec, LogFormat) {
  EXPECT_EQ(parse_spec(R"({"response": {}, "log": {"requests": true}})", "s.json").log_format, LogFormat::asmsrv);
  for (int k = 0; k < 4; ++k) {
    std::string text = std::string(R"({"response": {}, "log": {"requests": true, "format": ")") +
                       kLogFormatNames[k] + "\"}}";
    EXPECT_EQ(parse_spec(text, "s.json").log_format, static_cast<LogFormat>(k)) << text;
  }
}

TEST(SpecErrors, LogFormat) {
  EXPECT_EQ(error(R"({"response": {}, "log": {"requests": true, "format": "clf"}})"),
            "s.json: /log/format: expected \"asmsrv\" or \"common\" or \"combined\" or \"json\", got \"clf\"");
  EXPECT_EQ(error(R"({"response": {}, "log": {"format": "json"}})"),
            "s.json: /log/format: only with \"requests\": true: it is the access log's format");
  EXPECT_EQ(error(R"({"response": {}, "log": {"requests": false, "format": "common"}})"),
            "s.json: /log/format: only with \"requests\": true: it is the access log's format");
}

TEST(Spec, DefaultNotFoundAndLimits) {
  Spec s = parse_spec(R"({"routes": [{"path": "/"}]})", "s.json");
  EXPECT_EQ(s.not_found.status, 404);
  EXPECT_EQ(s.not_found.content_type, "text/plain");
  EXPECT_EQ(s.not_found.body, "Not Found\n");
  EXPECT_EQ(s.limits.request_bytes, 16384);
  EXPECT_EQ(s.limits.body_bytes, 1048576);
  EXPECT_EQ(s.limits.header_timeout_ms, 10000);
  EXPECT_EQ(s.limits.body_timeout_ms, 60000);
  EXPECT_EQ(s.limits.keepalive_timeout_ms, 5000);
  EXPECT_EQ(s.limits.keepalive_requests, 1000);
}

TEST(SpecErrors, Routes) {
  EXPECT_EQ(error(R"({"routes": []})"), "s.json: /routes: expected a non-empty array of routes, got []");
  EXPECT_EQ(error(R"({"routes": [{"body": "x"}]})"), "s.json: /routes/0: missing \"path\"");
  EXPECT_EQ(error(R"({"routes": [{"path": "x"}]})"),
            "s.json: /routes/0/path: expected a path that starts with \"/\", got \"x\"");
  EXPECT_EQ(error(R"({"routes": [{"path": "/a?b=1"}]})"),
            "s.json: /routes/0/path: a route path has no query or fragment (the query is ignored when matching)");
  EXPECT_EQ(error(R"({"routes": [{"path": "/a b"}]})"),
            "s.json: /routes/0/path: a route path has no spaces or control characters");
  EXPECT_EQ(error(R"({"routes": [{"path": "/", "method": "TRACE"}]})"),
            "s.json: /routes/0/method: expected \"GET\" or \"HEAD\" or \"POST\" or \"PUT\" or \"DELETE\" "
            "or \"PATCH\" or \"OPTIONS\", got \"TRACE\"");
  EXPECT_EQ(error(R"({"routes": [{"path": "/a"}, {"path": "/b"}, {"path": "/a", "method": "GET"}]})"),
            "s.json: /routes/2: duplicate route GET /a: already /routes/0");
  EXPECT_EQ(error(R"({"routes": [{"path": "/", "bdy": "x"}]})"),
            "s.json: /routes/0/bdy: unknown key; did you mean \"body\"?");
  EXPECT_TRUE(errors(R"({"routes": [{"path": "/a"}, {"path": "/a", "method": "POST"}]})").empty());
}

TEST(SpecErrors, HttpOnlyKeys) {
  EXPECT_EQ(error(R"({"raw_response": "x", "headers": {"A": "b"}})"),
            "s.json: /headers: only with \"response\" or \"routes\": a raw response is not HTTP");
  EXPECT_EQ(error(R"({"raw_response": "x", "log": {"requests": true}})"),
            "s.json: /log/requests: only with \"response\" or \"routes\": a raw response is not HTTP");
  EXPECT_EQ(error(R"({"response": {}, "not_found": {}})"),
            "s.json: /not_found: only with \"routes\": \"response\" answers every path");
  EXPECT_EQ(error(R"({"response": {}, "headers": {"Content-Length": "1"}})"),
            "s.json: /headers/Content-Length: this header is set by asmsrv; remove it");
}

TEST(SpecErrors, Limits) {
  EXPECT_EQ(error(R"({"response": {}, "limits": {"request_bytes": 100}})"),
            "s.json: /limits/request_bytes: expected an integer from 256 to 1048576, got 100");
  EXPECT_EQ(error(R"({"response": {}, "limits": {"header_timeout_ms": 0}})"),
            "s.json: /limits/header_timeout_ms: expected an integer from 1 to 3600000, got 0");
  EXPECT_EQ(error(R"({"response": {}, "limits": {"body_timeout_ms": 0}})"),
            "s.json: /limits/body_timeout_ms: expected an integer from 1 to 3600000, got 0");
  EXPECT_EQ(error(R"({"response": {}, "limits": {"keepalive_requests": 0}})"),
            "s.json: /limits/keepalive_requests: expected an integer from 1 to 1000000000, got 0");
  EXPECT_EQ(error(R"({"response": {}, "limits": {"body_bytes": -1}})"),
            "s.json: /limits/body_bytes: expected an integer from 0 to 1099511627776, got -1");
  EXPECT_EQ(error(R"({"response": {}, "limits": {"keepalive": 1}})"),
            "s.json: /limits/keepalive: unknown key; valid keys here: \"request_bytes\", \"body_bytes\", "
            "\"header_timeout_ms\", \"body_timeout_ms\", \"keepalive_timeout_ms\", \"keepalive_requests\", "
            "\"max_connections\", "
            "\"shutdown_timeout_ms\", \"send_timeout_ms\", \"linger_ms\", \"linger_bytes\"");
}

TEST(SpecErrors, EveryErrorIsReported) {
  EXPECT_EQ(errors(R"({"response": {"status": 1}, "listen": {"port": 0, "backlog": -1}, "mode": 1})"),
            (std::vector<std::string>{
                "s.json: /listen/port: expected an integer from 1 to 65535, got 0",
                "s.json: /listen/backlog: expected an integer from 1 to 65535, got -1",
                "s.json: /mode: expected \"epoll\" or \"iterative\" or \"fork\", got 1",
                "s.json: /response/status: expected an integer from 200 to 599, got 1",
            }));
}

TEST(Spec, EveryShippedSpecIsValid) {
  for (const std::string& name : test::spec_names())
    EXPECT_NO_THROW(load_spec(test::source_dir() + "/specs/" + name + ".json")) << name;
}

// A spec in a fresh directory with a small site: public/index.html,
// public/app.js, public/docs/index.html.
std::string site_dir() {
  std::string dir = test::temp_dir();
  std::filesystem::create_directories(dir + "/public/docs");
  test::write(dir + "/public/index.html", "<h1>home</h1>\n");
  test::write(dir + "/public/app.js", "console.log('hi');\n");
  test::write(dir + "/public/docs/index.html", "<h1>docs</h1>\n");
  test::write(dir + "/notes.txt", "not a directory\n");
  return dir;
}

TEST(Spec, StaticSites) {
  std::string dir = site_dir();
  Spec s = parse_spec(R"({"static": [{"dir": "public"}]})", dir + "/s.json");
  ASSERT_EQ(s.sites.size(), 1u);
  const StaticSite& site = s.sites[0];
  EXPECT_EQ(site.path, "/");
  EXPECT_EQ(site.dir, "public");
  EXPECT_EQ(site.index, "index.html");
  EXPECT_EQ(site.fallback, "");
  EXPECT_TRUE(site.compress);
  EXPECT_FALSE(site.hidden);
  ASSERT_EQ(site.files.size(), 3u);
  EXPECT_EQ(site.files[0].path, "app.js");
  EXPECT_EQ(site.files[0].reps[0].file, "public/app.js");
  EXPECT_EQ(site.dirs, (std::vector<std::string>{"", "docs"}));
  EXPECT_TRUE(s.routes.empty());

  s = parse_spec(R"({"routes": [{"path": "/api", "body": "{}"}], "not_found": {"body": "no\n"},
      "static": [{"path": "/", "dir": "public", "index": "index.html", "fallback": "index.html",
                  "compress": false, "hidden": true,
                  "cache_control": {"*.html": "no-cache", "**": "public, max-age=60"}},
                 {"path": "/docs/", "dir": "public/docs"}]})",
                 dir + "/s.json");
  ASSERT_EQ(s.sites.size(), 2u);
  EXPECT_EQ(s.routes.size(), 1u);
  EXPECT_EQ(s.not_found.body, "no\n");
  EXPECT_EQ(s.sites[0].fallback, "index.html");
  EXPECT_FALSE(s.sites[0].compress);
  EXPECT_TRUE(s.sites[0].hidden);
  EXPECT_EQ(s.sites[0].files[0].cache_control, "public, max-age=60");
  EXPECT_EQ(s.sites[0].files[2].cache_control, "no-cache");
  EXPECT_EQ(s.sites[1].path, "/docs/");
  EXPECT_EQ(s.sites[1].files[0].reps[0].file, "public/docs/index.html");
}

TEST(Spec, StaticRootIsReadAtRunTime) {
  // A root need not exist when the spec is checked: the server opens it at start.
  Spec s = parse_spec(R"({"static": [{"path": "/media/", "root": "/no/such/dir", "hidden": true}]})", "s.json");
  ASSERT_EQ(s.sites.size(), 1u);
  EXPECT_EQ(s.sites[0].root, "/no/such/dir");
  EXPECT_TRUE(s.sites[0].dir.empty());
  EXPECT_TRUE(s.sites[0].files.empty());
  EXPECT_TRUE(s.sites[0].hidden);
  EXPECT_TRUE(s.files_at_run_time());
  EXPECT_FALSE(parse_spec(R"({"response": {}})", "s.json").files_at_run_time());
}

TEST(Spec, Uploads) {
  Spec s = parse_spec(R"({"static": [{"path": "/f/", "root": "files"}],
                          "uploads": [{"path": "/f/", "root": "files", "methods": ["PUT"], "overwrite": true,
                                       "max_bytes": 5, "mode": "0600", "fsync": true},
                                      {"path": "/in/", "root": "/srv/in"}]})",
                      "s.json");
  ASSERT_EQ(s.uploads.size(), 2u);
  EXPECT_TRUE(s.uploads[0].put);
  EXPECT_FALSE(s.uploads[0].post);
  EXPECT_TRUE(s.uploads[0].overwrite);
  EXPECT_TRUE(s.uploads[0].fsync);
  EXPECT_EQ(s.uploads[0].max_bytes, 5);
  EXPECT_EQ(s.uploads[0].mode, 0600);
  EXPECT_TRUE(s.uploads[1].put && s.uploads[1].post);
  EXPECT_EQ(s.uploads[1].max_bytes, 104857600);
  EXPECT_EQ(s.uploads[1].mode, 0644);
  EXPECT_TRUE(s.files_at_run_time());
  EXPECT_EQ(run_time_roots(s), (std::vector<std::string>{"files", "/srv/in"}));  // one descriptor for "files"
}

TEST(SpecErrors, Uploads) {
  auto one = [&](const std::string& text) {
    std::vector<std::string> lines = errors(text, "s.json");
    EXPECT_EQ(lines.size(), 1u) << text;
    return lines.empty() ? "" : lines[0].substr(8);
  };
  EXPECT_EQ(one(R"({"response": {}, "uploads": [{"root": "r"}]})"),
            "/uploads: \"uploads\" goes alone or with \"routes\" and \"static\", not with \"response\"");
  EXPECT_EQ(one(R"({"uploads": []})"),
            "/uploads: expected a non-empty array of uploads like {\"path\": \"/incoming/\", \"root\": \"incoming\"}, got []");
  EXPECT_EQ(one(R"({"uploads": [{"path": "/in/"}]})"), "/uploads/0: missing \"root\"");
  EXPECT_EQ(one(R"({"uploads": [{"root": "r", "path": "/in"}]})"),
            "/uploads/0/path: an upload path is a prefix: it ends with \"/\", like \"/in/\"");
  EXPECT_EQ(one(R"({"uploads": [{"root": "r"}, {"root": "s"}]})"),
            "/uploads/1/path: duplicate upload path \"/\": already /uploads/0");
  EXPECT_EQ(one(R"({"uploads": [{"root": "r", "methods": ["GET"]}]})"),
            "/uploads/0/methods/0: expected \"PUT\" or \"POST\", got \"GET\"");
  EXPECT_EQ(one(R"({"uploads": [{"root": "r", "methods": ["PUT", "PUT"]}]})"),
            "/uploads/0/methods/1: duplicate method \"PUT\"");
  EXPECT_EQ(one(R"({"uploads": [{"root": "r", "methods": []}]})"),
            "/uploads/0/methods: expected a non-empty array of \"PUT\" and \"POST\", got []");
  EXPECT_EQ(one(R"({"uploads": [{"root": "r", "mode": "0800"}]})"),
            "/uploads/0/mode: expected permissions in octal from \"0000\" to \"0777\", like \"0644\", got \"0800\"");
  EXPECT_EQ(one(R"({"uploads": [{"root": "r", "mode": 644}]})"),
            "/uploads/0/mode: expected permissions in octal from \"0000\" to \"0777\", like \"0644\", got 644");
  EXPECT_EQ(one(R"({"uploads": [{"root": ""}]})"), "/uploads/0/root: expected a directory, got \"\"");
  // A site that serves hidden names would serve the temporary file, partial.
  const std::string hidden_error =
      " is served by /static/0 with \"hidden\": true, which would serve a body being stored "
      "(\".upload-PID-N\") before it is whole";
  EXPECT_EQ(one(R"({"static": [{"path": "/f/", "root": "files", "hidden": true}],
                    "uploads": [{"path": "/f/", "root": "./files/"}]})"),
            "/uploads/0/root: \"./files/\"" + hidden_error);
  EXPECT_EQ(one(R"({"static": [{"path": "/", "root": "/srv", "hidden": true}],
                    "uploads": [{"path": "/in/", "root": "/srv/x/../in"}]})"),
            "/uploads/0/root: \"/srv/x/../in\"" + hidden_error);
  for (const char* ok : {R"({"static": [{"path": "/f/", "root": "files"}], "uploads": [{"root": "files"}]})",
                         R"({"static": [{"path": "/f/", "root": "files", "hidden": true}], "uploads": [{"root": "in"}]})",
                         R"({"static": [{"path": "/f/", "root": "files", "hidden": true}], "uploads": [{"root": "files2"}]})",
                         R"({"static": [{"path": "/f/", "root": "files/in", "hidden": true}], "uploads": [{"root": "files"}]})"})
    EXPECT_TRUE(errors(ok, "s.json").empty()) << ok;
}

TEST(SpecErrors, Static) {
  std::string dir = site_dir();
  std::string f = dir + "/s.json";
  auto one = [&](const std::string& text) {
    std::vector<std::string> lines = errors(text, f);
    EXPECT_EQ(lines.size(), 1u) << text;
    return lines.empty() ? "" : lines[0].substr(f.size() + 2);
  };
  EXPECT_EQ(one(R"({"response": {}, "static": [{"dir": "public"}]})"),
            "/static: \"static\" goes alone or with \"routes\", not with \"response\"");
  EXPECT_EQ(one(R"({"raw_response": "x", "static": [{"dir": "public"}]})"),
            "/static: \"static\" goes alone or with \"routes\", not with \"raw_response\"");
  EXPECT_EQ(one(R"({"static": []})"), "/static: expected a non-empty array of sites like {\"dir\": \"public\"}, got []");
  EXPECT_EQ(one(R"({"static": [{}]})"), "/static/0: missing \"dir\" or \"root\"");
  EXPECT_EQ(one(R"({"static": [{"dri": "public"}]})"), "/static/0/dri: unknown key; did you mean \"dir\"?");
  EXPECT_EQ(one(R"({"static": [{"root": "/srv/www", "dir": "public"}]})"),
            "/static/0/root: give \"dir\" (embedded at build time) or \"root\" (read at run time), not both");
  EXPECT_EQ(one(R"({"static": [{"root": ""}]})"), "/static/0/root: expected a directory, got \"\"");
  EXPECT_EQ(one(R"({"static": [{"root": "/srv/www", "fallback": "index.html"}]})"),
            "/static/0/fallback: only with \"dir\": a \"root\" is read at run time, file by file");
  EXPECT_EQ(one(R"({"static": [{"root": "/srv/www", "cache_control": {"*": "no-cache"}}]})"),
            "/static/0/cache_control: only with \"dir\": a \"root\" is read at run time, file by file");
  EXPECT_EQ(one(R"({"static": [{"root": "/srv/www", "compress": false}]})"),
            "/static/0/compress: only with \"dir\": a \"root\" is read at run time, file by file");
  EXPECT_EQ(one(R"({"static": [{"root": "/srv\u0000x"}]})"),
            "/static/0/root: expected a directory, got a name with a NUL byte");
  EXPECT_EQ(one(R"({"static": [{"root": 5}]})"), "/static/0/root: expected a string, got 5");
  EXPECT_EQ(one(R"({"static": [{"root": "/srv", "index": "a/b"}]})"),
            "/static/0/index: expected a file name without \"/\", like \"index.html\", got \"a/b\"");
  EXPECT_EQ(one(R"({"static": [{"path": "/m/", "root": "/srv"}, {"path": "/m/", "root": "/srv/m"}]})"),
            "/static/1/path: duplicate static path \"/m/\": already /static/0");
  EXPECT_EQ(one(R"({"static": [{"path": "docs/", "dir": "public"}]})"),
            "/static/0/path: expected a path that starts with \"/\", got \"docs/\"");
  EXPECT_EQ(one(R"({"static": [{"path": "/docs", "dir": "public"}]})"),
            "/static/0/path: a static path is a prefix: it ends with \"/\", like \"/docs/\"");
  EXPECT_EQ(one(R"({"static": [{"path": "/a//b/", "dir": "public"}]})"),
            "/static/0/path: a static path has no empty, \".\" or \"..\" segment (requests are normalised before "
            "matching)");
  EXPECT_EQ(one(R"({"static": [{"path": "/a/../", "dir": "public"}]})"),
            "/static/0/path: a static path has no empty, \".\" or \"..\" segment (requests are normalised before "
            "matching)");
  EXPECT_EQ(one(R"({"static": [{"dir": "public"}, {"path": "/", "dir": "public/docs"}]})"),
            "/static/1/path: duplicate static path \"/\": already /static/0");
  EXPECT_EQ(one(R"({"static": [{"dir": "missing"}]})"),
            "/static/0/dir: cannot read \"missing\": No such file or directory");
  EXPECT_EQ(one(R"({"static": [{"dir": "notes.txt"}]})"), "/static/0/dir: \"notes.txt\" is not a directory");
  EXPECT_EQ(one(R"({"static": [{"dir": ""}]})"), "/static/0/dir: expected a directory, got \"\"");
  std::filesystem::create_directories(dir + "/empty");
  EXPECT_EQ(one(R"({"static": [{"dir": "empty"}]})"), "/static/0/dir: \"empty\" has no files to serve");
  EXPECT_EQ(one(R"({"static": [{"dir": "public", "fallback": "app.html"}]})"),
            "/static/0/fallback: \"app.html\" is not a file of \"public\"");
  EXPECT_EQ(one(R"({"static": [{"dir": "public", "index": "docs/index.html"}]})"),
            "/static/0/index: expected a file name without \"/\", like \"index.html\", got \"docs/index.html\"");
  EXPECT_EQ(one(R"({"static": [{"dir": "public", "compress": "yes"}]})"),
            "/static/0/compress: expected true or false, got \"yes\"");
  EXPECT_EQ(one(R"({"static": [{"dir": "public", "cache_control": ["no-cache"]}]})"),
            "/static/0/cache_control: expected an object of patterns to Cache-Control values, got [\"no-cache\"]");
  EXPECT_EQ(one(R"({"static": [{"dir": "public", "cache_control": {"*.html": "no-cache\r\nX: y"}}]})"),
            "/static/0/cache_control/*.html: a header value must not contain CR or LF");
  EXPECT_EQ(one(R"({"static": [{"dir": "public", "cache_control": {"*.html": ""}}]})"),
            "/static/0/cache_control/*.html: expected a Cache-Control value like \"no-cache\", got \"\"");
  EXPECT_EQ(one(R"({"static": [{"dir": "public", "cache_control": {"/assets/*": "no-cache"}}]})"),
            "/static/0/cache_control/~1assets~1*: expected a pattern relative to \"dir\", like \"*.html\" or "
            "\"assets/**\"");
  ASSERT_EQ(::symlink("../notes.txt", (dir + "/public/notes.txt").c_str()), 0);
  EXPECT_EQ(one(R"({"static": [{"dir": "public"}]})"),
            "/static/0/dir: \"public/notes.txt\" is a symlink to \"../notes.txt\", outside \"public\": only links "
            "that stay inside are followed");
}

}  // namespace
}  // namespace asmsrv
