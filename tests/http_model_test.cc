// The reference model of a generated server's answers (src/http_model.h):
// hand-written cases, each with the answer RFC 9112/9110 and the README ask
// for, written out here (status, head, body, keep or close).
#include "http_model.h"

#include <gtest/gtest.h>

#include <string>

#include "server_util.h"

namespace asmsrv::test {
namespace {

// "200 keep" / "404 keep-1.0" / "400 close" / "200 keep head" per answer,
// joined by "; ", then " | closes" or " | waits".
std::string summary(const ModelResult& r) {
  static const char* kHeads[] = {"close", "keep", "keep-1.0"};
  std::string s;
  for (const ModelAnswer& a : r.answers) {
    if (!s.empty()) s += "; ";
    s += std::to_string(a.status) + " " + kHeads[static_cast<int>(a.head)] + (a.body ? "" : " head");
    if (a.closes != (a.head == ConnHeader::close)) s += " (closes disagrees with its head)";
  }
  return s + (r.closes ? " | closes" : " | waits");
}

std::string get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n";
}

class Model : public testing::Test {
 protected:
  Model() : routes_(load_spec(spec_path("routes"))) {}
  std::string run(const std::string& bytes) const { return summary(routes_.run(bytes)); }
  const ModelAnswer& first(const std::string& bytes) {
    last_ = routes_.run(bytes);
    return last_.answers.at(0);
  }
  HttpModel routes_;
  ModelResult last_;
};

HttpModel with(const std::string& json) { return HttpModel(parse_spec(json, "inline.json")); }

TEST_F(Model, RoutesByPathAndMethod) {
  EXPECT_EQ(run(get("/health")), "200 keep | waits");
  EXPECT_EQ(first(get("/health?x=1")).why, "GET /health -> GET /health");
  EXPECT_EQ(run("POST /api/items HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"), "201 keep | waits");
  EXPECT_EQ(run("DELETE /api/items/1 HTTP/1.1\r\nHost: x\r\n\r\n"), "204 keep | waits");
  EXPECT_EQ(run(get("/nope")), "404 keep | waits");
  EXPECT_EQ(run(get("/health/")), "404 keep | waits");
  EXPECT_EQ(run("HEAD /teapot HTTP/1.1\r\nHost: x\r\n\r\n"), "418 keep head | waits");
  EXPECT_EQ(run("PUT /health HTTP/1.1\r\nHost: x\r\n\r\n"), "405 keep | waits");
  EXPECT_EQ(first("PUT /health HTTP/1.1\r\nHost: x\r\n\r\n").response, routes_.table().paths[1].not_allowed);
  EXPECT_EQ(run("OPTIONS /health HTTP/1.1\r\nHost: x\r\n\r\n"), "204 keep | waits");
  EXPECT_EQ(first("OPTIONS /health HTTP/1.1\r\nHost: x\r\n\r\n").why,
            "OPTIONS /health -> OPTIONS (Allow: GET, HEAD, OPTIONS)");
  EXPECT_EQ(run("OPTIONS /nope HTTP/1.1\r\nHost: x\r\n\r\n"), "404 keep | waits");
}

TEST_F(Model, AbsoluteFormTargets) {
  EXPECT_EQ(first("GET http://x/health HTTP/1.1\r\nHost: x\r\n\r\n").why, "GET /health -> GET /health");
  EXPECT_EQ(first("GET HTTP://x:80 HTTP/1.1\r\nHost: x\r\n\r\n").why, "GET / -> GET /");
  EXPECT_EQ(first("GET http://x?a=/health HTTP/1.1\r\nHost: x\r\n\r\n").why, "GET / -> GET /");
  EXPECT_EQ(run("GET https://x/ HTTP/1.1\r\nHost: x\r\n\r\n"), "400 close | closes");
  for (const char* empty : {"http:///health", "http://?a", "http://"})
    EXPECT_EQ(run(std::string("GET ") + empty + " HTTP/1.1\r\nHost: x\r\n\r\n"), "400 close | closes") << empty;
  EXPECT_EQ(run("GET * HTTP/1.1\r\nHost: x\r\n\r\n"), "400 close | closes");
}

TEST_F(Model, MalformedRequestsGet400AndClose) {
  for (const char* bad : {
           "GET /a#top HTTP/1.1\r\nHost: x\r\n\r\n",           // a fragment
           "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",               // two spaces
           "GET / HTTP/1.1\r\n\r\n",                           // no Host in 1.1
           "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",     // two Hosts
           "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",              // invalid Host
           "GET / HTTP/1.1\r\nHost: [1.2.3.4]\r\n\r\n",        // not IPv6
           "GET / HTTP/1.1\r\nHost: x:8o\r\n\r\n",             // a port with a letter
           "GET / HTTP/1.1\r\nHost : x\r\n\r\n",               // space before the colon
           "GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n",  // obs-fold
           "GET / HTTP/1.1\r\nHost: x\r\nA: b\rc\r\n\r\n",     // a bare CR
           "GET / HTTP/1.1\r\nHost: x\r\nA: \x01\r\n\r\n",     // a control character
           "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
           "GET / HTTP/1.x\r\nHost: x\r\n\r\n",
           "GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
       }) {
    EXPECT_EQ(run(std::string(bad) + get("/")), "400 close | closes") << testing::PrintToString(std::string(bad));
  }
  EXPECT_EQ(first("GET / HTTP/1.1\r\n\r\n").why, "400: HTTP/1.1 without Host");
}

TEST_F(Model, HeadRequestsGetNoBodyEvenForAnError) {
  EXPECT_EQ(run("HEAD / HTTP/1.1\r\n\r\n"), "400 close head | closes");
  EXPECT_EQ(run("HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999\r\n\r\n"), "413 close head | closes");
}

TEST_F(Model, BareLfAndHttp09AreAnsweredAtOnce) {
  // No CR LF CR LF yet: the first line already says what the answer is.
  EXPECT_EQ(run("GET / HTTP/1.1\nHost: x\n"), "400 close | closes");
  EXPECT_EQ(run("GET /\r\n"), "400 close | closes");
  EXPECT_EQ(run("BREW /pot\r\n"), "501 close | closes");
  // A request line that ends well is waited on.
  EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: x\r\n"), " | waits");
  EXPECT_EQ(run("GET / HTTP/1.1"), " | waits");
}

TEST_F(Model, MethodsAndVersions) {
  EXPECT_EQ(run("BREW / HTTP/1.1\r\nHost: x\r\n\r\n"), "501 close | closes");
  EXPECT_EQ(run("get / HTTP/1.1\r\nHost: x\r\n\r\n"), "501 close | closes");
  EXPECT_EQ(run("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), "505 close | closes");
  EXPECT_EQ(run("GET / HTTP/0.9\r\n\r\n"), "505 close | closes");
}

// RFC 9112 6.1, 6.3: chunked must be the last coding, once; not in HTTP/1.0.
TEST_F(Model, TransferEncoding) {
  auto te = [](const std::string& fields) { return "POST /api/items HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n0\r\n\r\n"; };
  for (const char* ok : {"Transfer-Encoding: chunked\r\n", "transfer-encoding: CHUNKED\r\n",
                         "Transfer-Encoding: gzip, chunked\r\n", "Transfer-Encoding: gzip,chunked , \r\n",
                         "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                         "Transfer-Encoding: chunked\r\nTransfer-Encoding:\r\n"})
    EXPECT_EQ(run(te(ok) + get("/health")), "201 keep; 200 keep | waits") << ok;
  for (const char* bad : {"Transfer-Encoding: gzip\r\n", "Transfer-Encoding: chunked, gzip\r\n",
                          "Transfer-Encoding: chunked, chunked\r\n", "Transfer-Encoding:\r\n",
                          "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
                          "Transfer-Encoding: chunked;x=1\r\n", "Transfer-Encoding: identity\r\n",
                          "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n"})
    EXPECT_EQ(run(te(bad)), "400 close | closes") << bad;
  EXPECT_EQ(first("POST /api/items HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").why,
            "400: Transfer-Encoding in HTTP/1.0");
}

TEST_F(Model, ChunkedBodies) {
  const std::string head = "POST /api/items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const char* body : {"0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", "5;a=b;c\r\nhello\r\n000\r\n\r\n",
                           "A \r\n0123456789\r\n1\r\nx\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n",
                           "a\t;x\r\nGET / HTTP\r\n0 ; y\r\n\r\n", "0000000000000001\r\nx\r\n0\r\n\r\n"})
    EXPECT_EQ(run(head + body + get("/teapot")), "201 keep; 418 keep | waits") << body;
  for (const char* part : {"", "5", "5\r", "5\r\nhel", "5\r\nhello\r", "5\r\nhello\r\n0\r\n",
                           "0\r\nX-T: 1\r\n", "0\r\n\r"}) {
    EXPECT_EQ(run(head + part), "201 keep | waits") << part;
    EXPECT_EQ(routes_.run(head + part).end, "waits for the rest of a chunked body");
  }
  // Malformed after the response: no more answers, the connection closes.
  for (const char* body : {"z\r\n", "\r\n", ";x\r\n", "5x\r\n", "5\rx", "5\nhello", "5\r\nhelloX\r\n",
                           "5\r\nhello\n", "0\r\nX-T\n", "0\r\nX\rY", "0\r\n\rx", "5;a\nb",
                           "00000000000000001\r\nx\r\n"})
    EXPECT_EQ(run(head + body + get("/teapot")), "201 keep | closes") << testing::PrintToString(std::string(body));
  EXPECT_EQ(routes_.run(head + "z\r\n").end, "closes after POST /api/items -> POST /api/items: no chunk size");
}

TEST_F(Model, ChunkedBodiesAreBoundedByBodyBytes) {
  HttpModel m = with(R"({"response": {"body": "x"}, "limits": {"body_bytes": 10}})");
  const std::string head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  EXPECT_EQ(summary(m.run(head + "a\r\n0123456789\r\n0\r\n\r\n" + get("/"))), "200 keep; 200 keep | waits");
  EXPECT_EQ(summary(m.run(head + "5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n" + get("/"))), "200 keep; 200 keep | waits");
  // Over: known from the size's digits, before any data.
  EXPECT_EQ(summary(m.run(head + "b")), "200 keep | closes");
  EXPECT_EQ(summary(m.run(head + "5\r\n01234\r\n6")), "200 keep | closes");
  EXPECT_EQ(m.run(head + "b").end, "closes after POST / -> every request: a chunk size over limits.body_bytes");
  // Extensions and trailers count too.
  EXPECT_EQ(summary(m.run(head + "5;abcd\r\n01234\r\n0\r\n\r\n" + get("/"))), "200 keep; 200 keep | waits");
  EXPECT_EQ(summary(m.run(head + "5;abcde\r\n")), "200 keep | closes");
  EXPECT_EQ(summary(m.run(head + "5\r\n01234\r\n0\r\nX: 12\r\n\r\n" + get("/"))), "200 keep; 200 keep | waits");
  EXPECT_EQ(summary(m.run(head + "5\r\n01234\r\n0\r\nX: 123\r\n")), "200 keep | closes");
}

// RFC 9110 10.1.1: the server answers at once instead of 100 Continue (no
// route reads bodies), so the client does not send the body: close.
TEST_F(Model, Expect) {
  const std::string post = "POST /api/items HTTP/1.1\r\nHost: x\r\n";
  EXPECT_EQ(run(post + "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"), "201 close | closes");
  EXPECT_EQ(run(post + "Expect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n"), "201 close | closes");
  EXPECT_EQ(run("PUT /nope HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"),
            "404 close | closes");
  EXPECT_EQ(run(post + "Content-Length: 5000000\r\nExpect: 100-continue\r\n\r\n"), "413 close | closes");
  // No body: nothing to wait for, the connection stays.
  EXPECT_EQ(run(get("/health", "Expect: 100-continue\r\n") + get("/")), "200 keep; 200 keep | waits");
  EXPECT_EQ(run(post + "Expect: 100-continue\r\nContent-Length: 0\r\n\r\n" + get("/")), "201 keep; 200 keep | waits");
  // Another expectation: 417, also next to 100-continue; HTTP/1.0 ignores Expect.
  for (const char* other : {"Expect: 100-continue, x\r\n", "Expect: x\r\n", "Expect:\r\n",
                            "Expect: 100-continue\r\nExpect: 200-ok\r\n"})
    EXPECT_EQ(run(get("/", other)), "417 close | closes") << other;
  EXPECT_EQ(run("GET / HTTP/1.0\r\nExpect: x\r\nConnection: keep-alive\r\n\r\n"), "200 keep-1.0 | waits");
}

TEST_F(Model, KeepAliveAndClose) {
  EXPECT_EQ(run("GET / HTTP/1.0\r\n\r\n"), "200 close | closes");
  EXPECT_EQ(run("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), "200 keep-1.0 | waits");
  EXPECT_EQ(run("GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n"), "200 close | closes");
  EXPECT_EQ(run(get("/", "Connection: TE, close\r\n")), "200 close | closes");
  EXPECT_EQ(run(get("/", "connection: keep-alive\r\n")), "200 keep | waits");
  EXPECT_EQ(run(get("/", "Connection: closed\r\n")), "200 keep | waits");
}

TEST_F(Model, PipeliningAndBodies) {
  EXPECT_EQ(run(get("/") + get("/nope") + get("/health", "Connection: close\r\n") + get("/")),
            "200 keep; 404 keep; 200 close | closes");
  std::string post = "POST /api/items HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";
  EXPECT_EQ(run(post + "GET /" + get("/teapot")), "201 keep; 418 keep | waits")
      << "the body's 5 bytes are \"GET /\", not a request";
  EXPECT_EQ(run(post + "ab"), "201 keep | waits");
  EXPECT_EQ(routes_.run(post + "ab").end, "waits for the rest of a body");
  // Empty lines before a request (the CR LF some clients send after a body).
  EXPECT_EQ(run("\r\n\r\n" + get("/") + "\r\n" + get("/health")), "200 keep; 200 keep | waits");
  EXPECT_EQ(run("\r\n\n\r"), " | waits");
}

TEST_F(Model, KeepaliveRequestsLimit) {
  HttpModel m = with(R"({"routes": [{"path": "/", "body": "x"}], "limits": {"keepalive_requests": 2}})");
  EXPECT_EQ(summary(m.run(get("/") + get("/") + get("/"))), "200 keep; 200 close | closes");
  HttpModel no_keep = with(R"({"response": {"body": "x"}, "limits": {"keepalive_timeout_ms": 0}})");
  EXPECT_EQ(summary(no_keep.run(get("/") + get("/"))), "200 close | closes");
}

TEST_F(Model, LimitsOnTheHeadAndTheBody) {
  HttpModel m = with(R"({"response": {"body": "x"}, "limits": {"request_bytes": 256, "body_bytes": 10}})");
  EXPECT_EQ(summary(m.run("GET /" + std::string(300, 'a'))), "414 close | closes");
  EXPECT_EQ(summary(m.run("GET /" + std::string(200, 'a'))), " | waits");
  EXPECT_EQ(summary(m.run("GET / HTTP/1.1\r\nHost: x\r\nA: " + std::string(300, 'a'))), "431 close | closes");
  // The head may end at the limit's last byte, not one past it.
  std::string exact = get("/", "A: \r\n");
  exact.insert(exact.size() - 4, std::string(256 - exact.size(), 'a'));
  ASSERT_EQ(exact.size(), 256u);
  EXPECT_EQ(summary(m.run(exact)), "200 keep | waits");
    EXPECT_EQ(summary(m.run(std::string(exact).insert(30, "a"))), "431 close | closes") << "one byte over";
  EXPECT_EQ(summary(m.run("\r\n" + exact)), "431 close | closes") << "empty lines count";
  EXPECT_EQ(summary(m.run(get("/", "Content-Length: 10\r\n"))), "200 keep | waits");
  EXPECT_EQ(summary(m.run(get("/", "Content-Length: 11\r\n"))), "413 close | closes");
  EXPECT_EQ(summary(m.run(get("/", "Content-Length: 99999999999999999999999\r\n"))), "413 close | closes");
}

TEST_F(Model, HostValues) {
  for (const char* host : {"", "x", "x:", "x:8080", "a.b-c_d~e", "%41b", "1.2.3.4:80", "[::1]", "[::1]:80",
                           "[2001:db8::1.2.3.4]", "!$&'()*+,;="})
    EXPECT_EQ(summary(routes_.run("GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n")), "200 keep | waits")
        << host;
  for (const char* host : {"user@x", "x/y", "%4", "%zz", "[]", "[1.2.3.4]", "[v1.x]", "[::1", "[::1]x", "x:1:2"})
    EXPECT_EQ(summary(routes_.run("GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n")),
              "400 close | closes")
        << host;
}

}  // namespace
}  // namespace asmsrv::test

namespace asmsrv {
namespace {

// The path the model (and the server) routes by: RFC 3986 6.2.2.
TEST(NormalisePath, DecodesAndRemovesDotSegments) {
  const std::pair<std::string, std::optional<std::string>> cases[] = {
      {"/", "/"},         {"/a/b", "/a/b"},     {"/a/", "/a/"},         {"//a//b/", "/a/b/"},
      {"/./a", "/a"},     {"/a/.", "/a/"},      {"/a/..", "/"},          {"/a/b/../c", "/a/c"},
      {"/%61", "/a"},     {"/%2e%2E/", std::nullopt}, {"/..", std::nullopt}, {"/a/../..", std::nullopt},
      {"/a%2Fb", std::nullopt}, {"/a%00", std::nullopt}, {"/a%2", std::nullopt}, {"/a%g0", std::nullopt},
      {"/my%20file.txt", "/my file.txt"}, {"/%C3%A9", "/\xc3\xa9"}, {"/a/%2e/b", "/a/b"},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(normalise_path(in), want) << in;
}

TEST(PercentEncodePath, KeepsWhatAPathMayHold) {
  EXPECT_EQ(percent_encode_path("/a b/\xc3\xa9?#%"), "/a%20b/%C3%A9%3F%23%25");
  EXPECT_EQ(percent_encode_path("/a-b_c.d~e!$&'()*+,;=:@"), "/a-b_c.d~e!$&'()*+,;=:@");
}

}  // namespace
}  // namespace asmsrv
