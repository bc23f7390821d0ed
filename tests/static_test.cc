// Static sites (issue 8): specs/static.json serves the fixture
// specs/static-site/ ("/") and its single-page app (static-site/app at
// "/app/", with a fallback). Each test builds it in one mode (epoll,
// iterative, fork, epoll with 2 workers; NASM and GAS alternate, each twice)
// and asks it what a user's client would: curl for what curl can say, raw
// sockets over 127.0.0.1 where the bytes matter (304 without a body, HEAD,
// fields given twice), each raw exchange ending with one more request on
// the same connection so that a stray body byte shows. Expected bytes come
// from the fixture's files, expected ETags from their SHA-256, compressed
// bodies are checked with gzip -d and brotli -d. Then a browser (headless
// chromium) loads the site twice in one profile: the page's module must run,
// and the second load must revalidate the no-cache page with a 304.
#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "oci.h"
#include "server_util.h"
#include "test_util.h"

namespace asmsrv::test {
namespace {

using json = nlohmann::ordered_json;

std::string site_dir() { return source_dir() + "/specs/static-site"; }
std::string site_file(const std::string& rel) { return read(site_dir() + "/" + rel); }

/// The contract's strong ETag for these bytes: 16 hex digits of their SHA-256.
std::string etag_of(std::string_view bytes) { return "\"" + sha256_digest(bytes).substr(7, 16) + "\""; }

const std::string kHtml = "text/html; charset=utf-8";
const std::string kNoCache = "no-cache";
const std::string kImmutable = "public, max-age=31536000, immutable";
const std::string kAllow = "GET, HEAD, OPTIONS";
const std::string kBig = "media/big.bin";     // 1.2 MiB, not compressible
const std::string kLorem = "lorem.html";      // 10 KB of prose: br and gzip both kept

/// Every file of the fixture that "/" serves: its URL, media type and
/// Cache-Control ("" when no pattern matches: "*.html" does not cross '/').
struct FixtureFile {
  std::string path;  // below specs/static-site/
  std::string url;
  std::string type;
  std::string cache;
};

const std::vector<FixtureFile>& fixture_files() {
  static const std::vector<FixtureFile> files = {
      {"index.html", "/index.html", kHtml, kNoCache},
      {"lorem.html", "/lorem.html", kHtml, kNoCache},
      {"sub/index.html", "/sub/index.html", kHtml, ""},
      {"sub/deeper/index.html", "/sub/deeper/index.html", kHtml, ""},
      {"assets/css/site.css", "/assets/css/site.css", "text/css; charset=utf-8", kImmutable},
      {"assets/js/main.mjs", "/assets/js/main.mjs", "text/javascript; charset=utf-8", kImmutable},
      {"assets/js/greet.mjs", "/assets/js/greet.mjs", "text/javascript; charset=utf-8", kImmutable},
      {"assets/img/logo.svg", "/assets/img/logo.svg", "image/svg+xml", kImmutable},
      {"assets/img/pixel.png", "/assets/img/pixel.png", "image/png", kImmutable},
      {"assets/img/photo.jpg", "/assets/img/photo.jpg", "image/jpeg", kImmutable},
      {"assets/img/photo.webp", "/assets/img/photo.webp", "image/webp", kImmutable},
      {"assets/img/photo.avif", "/assets/img/photo.avif", "image/avif", kImmutable},
      {"data.json", "/data.json", "application/json", ""},
      {"site.webmanifest", "/site.webmanifest", "application/manifest+json", ""},
      {"my file.txt", "/my%20file.txt", "text/plain; charset=utf-8", ""},
      {kBig, "/" + kBig, "application/octet-stream", ""},
  };
  return files;
}

const FixtureFile& fixture_file(const std::string& path) {
  for (const FixtureFile& f : fixture_files())
    if (f.path == path) return f;
  throw std::logic_error("not in fixture_files(): " + path);
}

// ---------------------------------------------------------------------------
// curl

/// A field's value, "<none>" when the response has no such field.
std::string field(const Reply& r, std::string_view name) { return r.header(name).value_or("<none>"); }

/// One response as curl got it: the final head's status and fields, and the
/// body's bytes as they came (curl decodes nothing without --compressed).
struct Got : Reply {
  std::string what;  // the request, for messages
  std::string h(std::string_view name) const { return field(*this, name); }
};

/// curl GET `target` (sent as is: --path-as-is, -g) with `args` before the URL.
Got curl(int port, const std::string& target, const std::vector<std::string>& args = {}) {
  std::string dir = temp_dir();
  std::vector<std::string> argv = {"curl", "-s", "-g", "--path-as-is", "--max-time", "10",
                                   "-D", dir + "/head", "-o", dir + "/body"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("http://127.0.0.1:" + std::to_string(port) + target);
  Got g;
  g.what = target;
  for (const std::string& a : args) g.what += " " + a;
  CmdResult r = run(argv);
  EXPECT_EQ(r.status, 0) << "curl " << g.what << " failed: " << r.err;
  if (r.status != 0) return g;
  g.head = read(dir + "/head");
  g.body = exists(dir + "/body") ? read(dir + "/body") : "";
  g.complete = parse_head(g);
  EXPECT_TRUE(g.complete) << "curl " << g.what << ": not an HTTP head: " << testing::PrintToString(g.head);
  return g;
}

/// `data` through `argv` (gzip -dc, brotli -dc); nullopt when it fails.
std::optional<std::string> filter(const std::vector<std::string>& argv, const std::string& data) {
  std::string dir = temp_dir();
  write(dir + "/in", data);
  std::vector<std::string> a = argv;
  a.push_back(dir + "/in");
  CmdResult r = run(a);
  if (r.status != 0) return std::nullopt;
  return r.out;
}

// ---------------------------------------------------------------------------
// Raw HTTP over one connection

struct Req {
  std::string method = "GET";
  std::string target;
  std::string fields;  // "Name: value\r\n" lines
};

/// Sends every request on one keep-alive connection (pipelined), then one
/// more GET of /data.json with Connection: close, and reads the answers.
/// That last answer must be there, whole, and be the file: a byte too many
/// in an earlier response (a body after a 304 or a HEAD) would show there.
/// Returns the answers to `reqs`, Date checked and stripped.
std::vector<Reply> pipeline(int port, const std::vector<Req>& reqs) {
  Client c(port);
  EXPECT_TRUE(c.valid()) << "cannot connect to port " << port;
  std::string bytes;
  for (const Req& r : reqs)
    bytes += r.method + " " + r.target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + r.fields + "\r\n";
  bytes += "GET /data.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  EXPECT_TRUE(c.send(bytes));
  std::vector<Reply> out;
  for (const Req& r : reqs) {
    Reply reply = c.read_response(r.method == "HEAD");
    EXPECT_TRUE(reply.complete) << r.method << " " << r.target << ": " << testing::PrintToString(reply.raw);
    out.push_back(undate(std::move(reply)));
  }
  Reply last = c.read_response();
  std::string trail = c.read_until_eof(3000).data;
  EXPECT_TRUE(last.complete && last.status == 200 && last.body == site_file("data.json"))
      << "the request after them was not answered as it should be (a stray byte before it?): "
      << testing::PrintToString(last.raw.substr(0, 300));
  EXPECT_EQ(trail, "") << "bytes after the last response";
  return out;
}

Reply one(int port, const Req& r) {
  std::vector<Reply> v = pipeline(port, {r});
  return v.empty() ? Reply{} : v[0];
}

/// The status line and every field but Date (undate() took it), in order,
/// one "name: value" line each.
std::string fields_of(const Reply& r) {
  std::string s = r.status_line + "\n";
  for (const auto& [k, v] : r.headers) s += k + ": " + v + "\n";
  return s;
}

// ---------------------------------------------------------------------------
// The servers

class StaticTest : public testing::TestWithParam<ModeVariant> {
 protected:
  void SetUp() override {
    ASSERT_FALSE(find_in_path("curl").empty()) << "curl is not installed (scripts/deps installs it)";
    const ModeVariant& v = GetParam();
    std::string spec = spec_copy("static", json{{"mode", v.mode}, {"workers", v.workers}});
    server_ = start_server(spec, v.syntax);
    ASSERT_TRUE(server_) << "specs/static.json did not start in " << v.label;
    port_ = server_->port;
  }

  /// A 200 of the whole file `f` (identity), with every field the contract gives it.
  void expect_file(const Got& g, const FixtureFile& f) {
    SCOPED_TRACE("GET " + g.what);
    std::string want = site_file(f.path);
    EXPECT_EQ(g.status, 200);
    EXPECT_EQ(g.h("Content-Type"), f.type);
    EXPECT_EQ(g.h("Content-Length"), std::to_string(want.size()));
    EXPECT_EQ(g.h("ETag"), etag_of(want));
    EXPECT_EQ(g.h("Accept-Ranges"), "bytes");
    EXPECT_EQ(g.h("Cache-Control"), f.cache.empty() ? "<none>" : f.cache);
    EXPECT_EQ(g.header("Content-Encoding"), std::nullopt);
    EXPECT_TRUE(g.body == want) << "the body is not " << f.path << " (" << g.body.size() << " bytes, want "
                                << want.size() << ")";
  }

  void expect_status(const std::string& target, int status) {
    Got g = curl(port_, target);
    EXPECT_EQ(g.status, status) << "GET " << target;
  }

  std::optional<Running> server_;
  int port_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Modes, StaticTest, testing::ValuesIn(kModeVariants), mode_variant_name);

// ---------------------------------------------------------------------------
// Routing: indexes, redirects, the fallback, hidden names, normalisation

TEST_P(StaticTest, PathsIndexesRedirectsAndNormalisation) {
  const FixtureFile index{"index.html", "/", kHtml, kNoCache};
  const FixtureFile sub{"sub/index.html", "/sub/", kHtml, ""};
  const FixtureFile deeper{"sub/deeper/index.html", "/sub/deeper/", kHtml, ""};
  expect_file(curl(port_, "/"), index);
  expect_file(curl(port_, "/sub/"), sub);
  expect_file(curl(port_, "/sub/deeper/"), deeper);
  expect_file(curl(port_, "/lorem.html?v=1"), fixture_file(kLorem));  // a query does not change the file

  // A directory without its slash: 301 to it, the query kept, no body.
  for (auto [target, location] : std::vector<std::pair<std::string, std::string>>{
           {"/sub", "/sub/"}, {"/sub?x=1", "/sub/?x=1"}, {"/sub/deeper", "/sub/deeper/"}, {"/app", "/app/"}}) {
    Got g = curl(port_, target);
    EXPECT_EQ(g.status, 301) << target;
    EXPECT_EQ(g.h("Location"), location) << target;
    EXPECT_EQ(g.h("Content-Length"), "0") << target;
    EXPECT_EQ(g.body, "") << target;
  }

  // "/app/": the single-page app; any path below it that is not a file gets
  // its fallback, app/index.html, with 200.
  const FixtureFile app{"app/index.html", "/app/", kHtml, kNoCache};
  for (const char* target : {"/app/", "/app/index.html", "/app/settings", "/app/users/42/edit", "/app/x.png"})
    expect_file(curl(port_, target), app);

  // No fallback under "/": 404.
  for (const char* target : {"/nope", "/sub/nope", "/nope/", "/lorem.html/", "/index.htm", "/favicon.ico"})
    expect_status(target, 404);

  // Hidden names are not served, however they are spelled.
  for (const char* target : {"/.secret", "/%2esecret", "/sub/../.secret", "/.private/notes.txt", "/.private/"})
    expect_status(target, 404);

  // Percent-decoding and normalisation before matching.
  const FixtureFile& spaced = fixture_file("my file.txt");
  expect_file(curl(port_, "/my%20file.txt"), spaced);
  expect_file(curl(port_, "/%6Dy%20file.txt"), spaced);
  expect_file(curl(port_, "/./sub/"), sub);
  expect_file(curl(port_, "/a/../sub/"), sub);
  expect_file(curl(port_, "/sub/deeper/../"), sub);
  expect_file(curl(port_, "//sub//"), sub);
  expect_file(curl(port_, "/sub/%2e/"), sub);
  for (const char* target : {"/..", "/../", "/%2e%2e/", "/sub/../../index.html", "/a%2Fb", "/sub%2findex.html",
                             "/x%00", "/%zz", "/%2"})
    expect_status(target, 400);
}

TEST_P(StaticTest, MethodsOnFiles) {
  std::vector<Reply> r = pipeline(port_, {{"OPTIONS", "/lorem.html", ""},
                                          {"POST", "/lorem.html", "Content-Length: 0\r\n"},
                                          {"DELETE", "/sub/", ""}});
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].status, 204);
  EXPECT_EQ(field(r[0], "Allow"), kAllow);
  EXPECT_EQ(r[1].status, 405);
  EXPECT_EQ(field(r[1], "Allow"), kAllow);
  EXPECT_EQ(r[2].status, 405);
  EXPECT_EQ(field(r[2], "Allow"), kAllow);
}

// ---------------------------------------------------------------------------
// Every file: its media type, length, ETag and Cache-Control

TEST_P(StaticTest, EveryFileWithItsTypeEtagAndCacheControl) {
  for (const FixtureFile& f : fixture_files()) {
    Got a = curl(port_, f.url);
    expect_file(a, f);
    Got b = curl(port_, f.url);
    EXPECT_EQ(b.h("ETag"), a.h("ETag")) << f.url << ": the ETag changed between two requests";
  }
  // The large file, whole, through curl and through a raw socket.
  std::string big = site_file(kBig);
  ASSERT_GT(big.size(), 1u << 20);
  EXPECT_EQ(sha256_digest(curl(port_, "/" + kBig).body), sha256_digest(big));
  Reply raw = one(port_, {"GET", "/" + kBig, ""});
  EXPECT_EQ(sha256_digest(raw.body), sha256_digest(big));
  EXPECT_EQ(field(raw, "Content-Length"), std::to_string(big.size()));
  // Not compressible: one representation, so no Vary even when asked for gzip.
  Got png = curl(port_, "/assets/img/pixel.png", {"-H", "Accept-Encoding: br, gzip"});
  EXPECT_EQ(png.header("Content-Encoding"), std::nullopt);
  EXPECT_EQ(png.header("Vary"), std::nullopt);
}

// ---------------------------------------------------------------------------
// If-None-Match: 304 with the validator and the cache fields, no body

TEST_P(StaticTest, IfNoneMatchAnswers304WithoutBody) {
  const std::string tag = etag_of(site_file("index.html"));
  const std::string inner = tag.substr(1, tag.size() - 2);
  struct Case {
    std::string fields;
    int status;
  };
  const std::vector<Case> cases = {
      {"If-None-Match: " + tag + "\r\n", 304},
      {"If-None-Match: \"0000000000000000\", " + tag + "\r\n", 304},
      {"If-None-Match: \"0000000000000000\",\t" + tag + " , \"1\"\r\n", 304},
      {"If-None-Match: *\r\n", 304},
      {"If-None-Match: W/\"" + inner + "\"\r\n", 304},  // weak comparison
      {"If-None-Match: \"0000000000000000\"\r\n", 200},
      {"If-None-Match: \"" + inner + "x\"\r\n", 200},
      // A field given twice: the last line counts.
      {"If-None-Match: \"0000000000000000\"\r\nIf-None-Match: " + tag + "\r\n", 304},
      {"If-None-Match: " + tag + "\r\nIf-None-Match: \"0000000000000000\"\r\n", 200},
  };
  std::vector<Req> reqs;
  for (const Case& c : cases) reqs.push_back({"GET", "/", c.fields});
  reqs.push_back({"HEAD", "/", "If-None-Match: " + tag + "\r\n"});
  std::vector<Reply> r = pipeline(port_, reqs);
  ASSERT_EQ(r.size(), reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    SCOPED_TRACE(reqs[i].method + " / with " + testing::PrintToString(reqs[i].fields));
    int want = i < cases.size() ? cases[i].status : 304;
    EXPECT_EQ(r[i].status, want);
    EXPECT_EQ(field(r[i], "ETag"), tag);
    EXPECT_EQ(field(r[i], "Cache-Control"), kNoCache);
    if (want == 304) {
      EXPECT_EQ(r[i].status_line, "HTTP/1.1 304 Not Modified");
      EXPECT_EQ(r[i].header("Content-Length"), std::nullopt);
      EXPECT_EQ(r[i].header("Content-Type"), std::nullopt);
      EXPECT_EQ(r[i].body, "");
      // index.html has a compressed representation: Vary in every response.
      EXPECT_EQ(field(r[i], "Vary"), "Accept-Encoding");
    } else if (reqs[i].method == "GET") {
      EXPECT_TRUE(r[i].body == site_file("index.html"));
    }
  }
  // The 304 of an immutable asset keeps its Cache-Control.
  std::string css = etag_of(site_file("assets/css/site.css"));
  Reply a = one(port_, {"GET", "/assets/css/site.css", "If-None-Match: " + css + "\r\n"});
  EXPECT_EQ(a.status, 304);
  EXPECT_EQ(field(a, "Cache-Control"), kImmutable);
  EXPECT_EQ(field(a, "ETag"), css);
}

// ---------------------------------------------------------------------------
// Accept-Encoding: the chosen representation, and that it is the file

TEST_P(StaticTest, AcceptEncodingChoosesTheRepresentation) {
  const std::string original = site_file(kLorem);
  struct Case {
    std::optional<std::string> accept;  // nullopt: no Accept-Encoding at all
    std::string coding;                 // "" for identity
  };
  const std::vector<Case> cases = {
      {std::nullopt, ""},
      {"br, gzip", "br"},
      {"gzip", "gzip"},
      {"gzip, deflate", "gzip"},
      {"x-gzip", "gzip"},
      {"gzip;q=0", ""},
      {"gzip;q=0, br;q=0", ""},
      {"br;q=0.5, gzip", "gzip"},
      {"br;q=0.5, gzip;q=0.5", "br"},  // a tie: br first
      {"gzip;q=1, br;q=1, identity;q=1", "br"},
      {"identity", ""},
      {"*", "br"},
      {"br;q=0, *", "gzip"},
      {"*;q=0", ""},  // nothing acceptable: the contract says nothing; identity as nginx does
      {"deflate", ""},
      {"", ""},
  };
  std::vector<std::string> tags;
  for (const Case& c : cases) {
    std::vector<std::string> args;
    // "Name;" is how curl sends a field with an empty value ("Name:" would remove it).
    if (c.accept) args = {"-H", c.accept->empty() ? "Accept-Encoding;" : "Accept-Encoding: " + *c.accept};
    Got g = curl(port_, "/" + kLorem, args);
    SCOPED_TRACE("Accept-Encoding: " + (c.accept ? testing::PrintToString(*c.accept) : std::string("(none)")));
    EXPECT_EQ(g.status, 200);
    EXPECT_EQ(g.h("Content-Encoding"), c.coding.empty() ? "<none>" : c.coding);
    EXPECT_EQ(g.h("Vary"), "Accept-Encoding");
    EXPECT_EQ(g.h("Content-Type"), kHtml);
    EXPECT_EQ(g.h("Content-Length"), std::to_string(g.body.size()));
    EXPECT_EQ(g.h("ETag"), etag_of(g.body));
    EXPECT_EQ(g.h("Cache-Control"), kNoCache);
    std::optional<std::string> plain =
        c.coding == "br"     ? filter({"brotli", "-dc"}, g.body)
        : c.coding == "gzip" ? filter({"gzip", "-dc"}, g.body)
                             : std::optional<std::string>(g.body);
    ASSERT_TRUE(plain) << "the " << c.coding << " body does not decompress";
    EXPECT_TRUE(*plain == original) << "the decoded body is not " << kLorem;
    if (!c.coding.empty()) {
      EXPECT_LT(g.body.size(), original.size() * 95 / 100);
    }
    if (std::find(tags.begin(), tags.end(), g.h("ETag")) == tags.end()) tags.push_back(g.h("ETag"));
  }
  EXPECT_EQ(tags.size(), 3u) << "three representations, three ETags";

  // A 304 is for the chosen representation only.
  Got gz = curl(port_, "/" + kLorem, {"-H", "Accept-Encoding: gzip"});
  const std::string gz_tag = gz.h("ETag");
  std::vector<Reply> r = pipeline(port_, {{"GET", "/" + kLorem, "Accept-Encoding: gzip\r\nIf-None-Match: " + gz_tag + "\r\n"},
                                          {"GET", "/" + kLorem, "If-None-Match: " + gz_tag + "\r\n"},
                                          {"GET", "/" + kLorem, "Accept-Encoding: br\r\nIf-None-Match: " + gz_tag + "\r\n"}});
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].status, 304);
  EXPECT_EQ(field(r[0], "ETag"), gz_tag);
  EXPECT_EQ(field(r[0], "Vary"), "Accept-Encoding");
  EXPECT_EQ(r[1].status, 200) << "identity was chosen: the gzip tag does not match it";
  EXPECT_TRUE(r[1].body == original);
  EXPECT_EQ(r[2].status, 200) << "br was chosen: the gzip tag does not match it";
  EXPECT_EQ(field(r[2], "Content-Encoding"), "br");

  // The last Accept-Encoding line counts.
  Reply twice = one(port_, {"GET", "/" + kLorem, "Accept-Encoding: br\r\nAccept-Encoding: gzip\r\n"});
  EXPECT_EQ(field(twice, "Content-Encoding"), "gzip");
}

// ---------------------------------------------------------------------------
// Range, If-Range

TEST_P(StaticTest, RangesOfTheLargeFile) {
  const std::string big = site_file(kBig);
  const size_t len = big.size();
  const std::string total = "/" + std::to_string(len);
  const std::string tag = etag_of(big);
  struct Case {
    std::string fields;
    int status;
    size_t from = 0, to = 0;  // 206: the bytes [from, to]
  };
  const std::vector<Case> cases = {
      {"Range: bytes=0-99\r\n", 206, 0, 99},
      {"Range: bytes=1000-\r\n", 206, 1000, len - 1},
      {"Range: bytes=-500\r\n", 206, len - 500, len - 1},
      {"Range: bytes=" + std::to_string(len - 10) + "-" + std::to_string(len + 1000) + "\r\n", 206, len - 10, len - 1},
      {"Range: bytes=0-0\r\n", 206, 0, 0},
      {"Range: bytes=-" + std::to_string(len + 5) + "\r\n", 206, 0, len - 1},  // more than there is: all of it
      {"Range: bytes=" + std::to_string(len) + "-\r\n", 416},
      {"Range: bytes=" + std::to_string(len + 7) + "-" + std::to_string(len + 9) + "\r\n", 416},
      {"Range: bytes=-0\r\n", 416},
      {"Range: bytes=0-1,5-6\r\n", 200},  // several ranges: the whole body
      {"Range: bytes=0-1, 5-\r\n", 200},
      {"Range: items=0-5\r\n", 200},
      {"Range: bytes=5-2\r\n", 200},
      {"Range: bytes=x-y\r\n", 200},
      {"Range: bytes=10-19\r\nIf-Range: " + tag + "\r\n", 206, 10, 19},
      {"Range: bytes=10-19\r\nIf-Range: \"0000000000000000\"\r\n", 200},
      {"Range: bytes=10-19\r\nIf-Range: W/" + tag + "\r\n", 200},  // If-Range compares strongly
      {"Range: bytes=10-19\r\nIf-Range: Sun, 06 Nov 1994 08:49:37 GMT\r\n", 200},
      {"Range: bytes=0-1\r\nRange: bytes=20-29\r\n", 206, 20, 29},  // the last line counts
  };
  std::vector<Req> reqs;
  for (const Case& c : cases) reqs.push_back({"GET", "/" + kBig, c.fields});
  std::vector<Reply> r = pipeline(port_, reqs);
  ASSERT_EQ(r.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(testing::PrintToString(c.fields));
    EXPECT_EQ(r[i].status, c.status);
    if (c.status == 206) {
      EXPECT_EQ(r[i].status_line, "HTTP/1.1 206 Partial Content");
      EXPECT_EQ(field(r[i], "Content-Range"),
                "bytes " + std::to_string(c.from) + "-" + std::to_string(c.to) + total);
      EXPECT_EQ(field(r[i], "Content-Length"), std::to_string(c.to - c.from + 1));
      EXPECT_TRUE(r[i].body == big.substr(c.from, c.to - c.from + 1)) << "not the bytes asked for";
      EXPECT_EQ(field(r[i], "ETag"), tag);
    } else if (c.status == 416) {
      EXPECT_EQ(r[i].status_line, "HTTP/1.1 416 Range Not Satisfiable");
      EXPECT_EQ(field(r[i], "Content-Range"), "bytes */" + std::to_string(len));
      EXPECT_EQ(field(r[i], "Content-Length"), "0");
    } else {
      EXPECT_EQ(r[i].header("Content-Range"), std::nullopt);
      EXPECT_EQ(field(r[i], "Content-Length"), std::to_string(len));
      EXPECT_TRUE(r[i].body == big) << "not the whole file";
    }
  }
  // curl's own ranges.
  Got g = curl(port_, "/" + kBig, {"-r", "100-199"});
  EXPECT_EQ(g.status, 206);
  EXPECT_TRUE(g.body == big.substr(100, 100));
  // A range of a compressed representation is a slice of its bytes.
  Got gz = curl(port_, "/" + kLorem, {"-H", "Accept-Encoding: gzip"});
  ASSERT_EQ(gz.h("Content-Encoding"), "gzip");
  Got part = curl(port_, "/" + kLorem, {"-H", "Accept-Encoding: gzip", "-r", "10-"});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.h("Content-Encoding"), "gzip");
  EXPECT_EQ(part.h("Vary"), "Accept-Encoding");
  EXPECT_EQ(part.h("Content-Range"), "bytes 10-" + std::to_string(gz.body.size() - 1) + "/" +
                                         std::to_string(gz.body.size()));
  EXPECT_TRUE(part.body == gz.body.substr(10));
}

// ---------------------------------------------------------------------------
// HEAD: the head GET would get, without the body

TEST_P(StaticTest, HeadIsGetWithoutTheBody) {
  const std::vector<Req> gets = {
      {"GET", "/", ""},
      {"GET", "/" + kLorem, "Accept-Encoding: gzip\r\n"},
      {"GET", "/" + kLorem, "Accept-Encoding: br\r\n"},
      {"GET", "/" + kBig, ""},
      {"GET", "/sub?x=1", ""},
      {"GET", "/app/deep/link", ""},
      {"GET", "/nope", ""},
      {"GET", "/", "If-None-Match: " + etag_of(site_file("index.html")) + "\r\n"},
  };
  std::vector<Req> both;
  for (const Req& g : gets) {
    both.push_back(g);
    both.push_back({"HEAD", g.target, g.fields});
  }
  both.push_back({"HEAD", "/" + kBig, "Range: bytes=0-9\r\n"});  // HEAD ignores Range
  std::vector<Reply> r = pipeline(port_, both);
  ASSERT_EQ(r.size(), both.size());
  for (size_t i = 0; i + 1 < both.size(); i += 2) {
    SCOPED_TRACE(both[i].target + " " + testing::PrintToString(both[i].fields));
    EXPECT_EQ(fields_of(r[i + 1]), fields_of(r[i]));
    EXPECT_EQ(r[i + 1].body, "");
  }
  EXPECT_EQ(fields_of(r.back()), fields_of(r[6]));
}

// ---------------------------------------------------------------------------
// A browser: the module runs, and a second visit revalidates

/// chromium --headless --dump-dom of `url` with the profile `profile`;
/// returns the DOM it printed, or "" after recording why.
std::string dump_dom(const std::string& chromium, const std::string& profile, const std::string& url) {
  // As root in a container: no sandbox (it needs user namespaces or a setuid
  // helper), no GPU, /dev/shm may be tiny. The virtual time budget makes
  // --dump-dom wait until the page's network and timers are idle (the module,
  // its import, the fetch, the image decodes), up to 10 s of page time.
  std::vector<std::string> argv = {"timeout", "-k", "5", "90", chromium,
                                   "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                   "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                                   "--disable-background-networking", "--disable-component-update",
                                   "--disable-sync", "--user-data-dir=" + profile,
                                   "--virtual-time-budget=10000", "--dump-dom", url};
  CmdResult r = run(argv, "", {{"HOME", profile}});
  EXPECT_EQ(r.status, 0) << "chromium failed:\n" << r.err.substr(0, 4000);
  return r.status == 0 ? r.out : "";
}

TEST(StaticBrowser, ModuleRunsAndTheSecondVisitRevalidates) {
  std::string chromium = find_in_path("chromium");
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (scripts/deps installs it)";
  std::optional<Running> s = start_server(spec_path("static"), "nasm");
  ASSERT_TRUE(s);
  const std::string url = "http://127.0.0.1:" + std::to_string(s->port) + "/";
  const std::string profile = temp_dir();

  std::string dom = dump_dom(chromium, profile, url);
  EXPECT_NE(dom.find("<p id=\"out\">module ran</p>"), std::string::npos) << dom;
  EXPECT_NE(dom.find("<p id=\"data\">data: hello from data.json</p>"), std::string::npos) << dom;
  EXPECT_NE(dom.find("<p id=\"images\">images decoded: 5/5</p>"), std::string::npos) << dom;
  const std::string first_log = s->proc->out();
  for (const char* line : {"\"GET / HTTP/1.1\" 200", "\"GET /assets/js/main.mjs HTTP/1.1\" 200",
                           "\"GET /assets/js/greet.mjs HTTP/1.1\" 200", "\"GET /assets/img/photo.avif HTTP/1.1\" 200"})
    EXPECT_NE(first_log.find(line), std::string::npos) << line << " is not in the access log:\n" << first_log;

  // The same profile again: the page is no-cache, so the browser asks with
  // If-None-Match and gets a 304; the immutable assets come from its cache.
  dom = dump_dom(chromium, profile, url);
  EXPECT_NE(dom.find("<p id=\"out\">module ran</p>"), std::string::npos) << dom;
  EXPECT_TRUE(eventually([&] { return s->proc->out().find("\"GET / HTTP/1.1\" 304", first_log.size()) != std::string::npos; }))
      << "no 304 for / on the second visit; the access log:\n" << s->proc->out();
  std::string second = s->proc->out().substr(first_log.size());
  EXPECT_EQ(second.find("/assets/"), std::string::npos)
      << "an immutable asset was asked for again on the second visit:\n" << second;
}

}  // namespace
}  // namespace asmsrv::test
