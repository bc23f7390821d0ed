// Many routes: a spec with 1,000 GET routes (/r/0 ... /r/999, each with a
// body of its own), generated here in a temp dir, builds with both syntaxes
// (with NASM it once failed at ~108 routes: "label `path_107' inconsistently
// redefined"), passes `asmsrv check`, and the server answers a sample of the
// routes, and 404 for paths that are not routes, in every mode.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
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
using json = nlohmann::ordered_json;

constexpr int kRoutes = 1000;

std::string body_of_route(int i) { return "route " + std::to_string(i) + " of many\n"; }

/// Writes the spec into a new temp dir; returns its path.
std::string many_routes_spec(const std::string& mode) {
  json j = json::object();
  j["name"] = "many";
  j["listen"] = {{"address", "127.0.0.1"}, {"port", 8080}};
  j["mode"] = mode;
  json routes = json::array();
  for (int i = 0; i < kRoutes; ++i)
    routes.push_back({{"path", "/r/" + std::to_string(i)}, {"body", body_of_route(i)}});
  j["routes"] = routes;
  return write_spec(j.dump(1), temp_dir());
}

/// The bytes that answer METHOD PATH (keep-alive head), from the table.
std::string expected(const ::asmsrv::ResponseTable& t, const std::string& method,
                     const std::string& path) {
  int m = -1;
  for (int k = 1; k <= ::asmsrv::kMethodCount; ++k)
    if (method == ::asmsrv::kMethodNames[k]) m = k;
  int idx = t.not_found;
  for (const auto& p : t.paths) {
    if (p.path != path) continue;
    idx = m >= 0 && p.by_method[static_cast<size_t>(m)] >= 0 ? p.by_method[static_cast<size_t>(m)]
                                                              : p.not_allowed;
  }
  const auto& c = t.responses.at(static_cast<size_t>(idx));
  std::string out = full_head(c, ConnHeader::keep_alive);
  if (method != "HEAD" && !::asmsrv::status_has_no_body(c.status)) out += full_body(c);
  return out;
}

struct Variant {
  std::string syntax, mode;
};

void PrintTo(const Variant& v, std::ostream* os) { *os << v.syntax << " " << v.mode; }

class ManyRoutes : public testing::TestWithParam<Variant> {};

TEST_P(ManyRoutes, BuildAndAnswer) {
  const Variant& v = GetParam();
  std::string spec = many_routes_spec(v.mode);
  CmdResult check = ::asmsrv::test::asmsrv({"check", spec});
  EXPECT_EQ(check.status, 0) << check.err;
  EXPECT_EQ(check.out, spec + ": ok (127.0.0.1:8080, " + v.mode + " mode, 1 worker)\n");
  EXPECT_EQ(check.err, "");

  std::optional<Running> r = start_server(spec, v.syntax);  // builds it: asmsrv build --syntax
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->spec.routes.size(), static_cast<size_t>(kRoutes));
  ::asmsrv::ResponseTable t = ::asmsrv::build_response_table(r->spec);
  // The table agrees with the spec (and by hand for one).
  EXPECT_EQ(expected(t, "GET", "/r/999"),
            "HTTP/1.1 200 OK\r\nETag: " + ::asmsrv::strong_etag(body_of_route(999)) +
                "\r\nContent-Type: text/plain\r\nAccept-Ranges: bytes\r\nContent-Length: 18\r\n\r\n" +
                body_of_route(999));

  struct Ask {
    std::string method, path;
    int status;
  };
  std::vector<Ask> asks;
  for (int i : {0, 1, 2, 9, 10, 11, 99, 100, 106, 107, 108, 109, 255, 256, 499, 500, 511, 512, 777,
                900, 997, 998, 999})
    asks.push_back({"GET", "/r/" + std::to_string(i), 200});
  for (const std::string p : {"/r/1000", "/r/", "/r", "/r/01", "/r/-1", "/r/9999", "/r/99a",
                              "/", "/r/0/", "/R/0"})
    asks.push_back({"GET", p, 404});
  asks.push_back({"HEAD", "/r/999", 200});
  asks.push_back({"HEAD", "/r/0", 200});
  asks.push_back({"POST", "/r/500", 405});
  asks.push_back({"DELETE", "/r/0", 405});
  asks.push_back({"GET", "/r/0?x=1", 200});

  // One at a time, then all of them pipelined on a second connection.
  Client c(r->port);
  ASSERT_TRUE(c.valid());
  std::string all;
  for (const Ask& a : asks) {
    SCOPED_TRACE(a.method + " " + a.path);
    std::string req = a.method + " " + a.path + " HTTP/1.1\r\nHost: x\r\n" +
                      (a.method == "POST" ? "Content-Length: 0\r\n" : "") + "\r\n";
    all += req;
    ASSERT_TRUE(c.send(req));
    Reply rep = undate(c.read_response(a.method == "HEAD", 3000));
    ASSERT_TRUE(rep.complete) << "no response";
    EXPECT_EQ(rep.status, a.status);
    std::string path = a.path.substr(0, a.path.find('?'));
    EXPECT_EQ(rep.raw, expected(t, a.method, path));
  }
  c.close();  // iterative mode serves one connection at a time
  Client p(r->port);
  ASSERT_TRUE(p.valid());
  ASSERT_TRUE(p.send(all));
  for (const Ask& a : asks) {
    SCOPED_TRACE("pipelined " + a.method + " " + a.path);
    Reply rep = undate(p.read_response(a.method == "HEAD", 3000));
    ASSERT_TRUE(rep.complete) << "no response";
    EXPECT_EQ(rep.raw, expected(t, a.method, a.path.substr(0, a.path.find('?'))));
  }
  EXPECT_FALSE(r->proc->exited());
  EXPECT_EQ(r->proc->err(), "");
}

std::vector<Variant> variants() {
  std::vector<Variant> v;
  for (const char* syn : {"nasm", "gas"})
    for (const char* mode : {"epoll", "iterative", "fork"}) v.push_back({syn, mode});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Variants, ManyRoutes, testing::ValuesIn(variants()),
                         [](const testing::TestParamInfo<Variant>& i) {
                           return i.param.syntax + "_" + i.param.mode;
                         });

}  // namespace
