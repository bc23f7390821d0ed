// A differential fuzzer: real servers, built from specs in every mode, get
// mutated, pipelined and split requests over 127.0.0.1, and every answer is
// compared with the reference model (src/http_model.h): the status, which
// response (its bytes, Date aside, against the compiler's table), keep or
// close, and that the server closes when the model says it does. Every
// response must also parse as strict HTTP/1.1, and the server must stay up.
//
// Bounded in CI: ASMSRV_DIFF_REQUESTS requests (default 20,000) spread over
// the servers. ASMSRV_DIFF_SECONDS=N runs for about N seconds instead;
// ASMSRV_DIFF_SEED picks the seed. A disagreement prints a reproducer: the
// spec, mode, syntax, the exact bytes and how they were split, expected and
// got. The last line of output is a summary the README quotes.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "http.h"
#include "http_model.h"
#include "server_util.h"
#include "test_util.h"

namespace asmsrv::test {
namespace {

using json = nlohmann::ordered_json;

std::string escaped(std::string_view s) { return testing::PrintToString(std::string(s)); }

// ---------------------------------------------------------------------------
// Requests: valid ones for the spec's routes, then mutated

class RequestGen {
 public:
  RequestGen(const HttpModel& model, std::mt19937& rng) : m_(model), rng_(rng) {
    for (const PathRoutes& p : m_.table().paths) paths_.push_back(p.path);
    if (paths_.empty()) paths_ = {"/", "/index.html", "/a/b"};
    paths_.push_back("/nope");
  }

  /// 1 to 5 requests, pipelined; sometimes cut short. `*count` = how many.
  std::string connection(int* count) {
    *count = 1 + static_cast<int>(pick(5));
    std::string bytes;
    for (int i = 0; i < *count; ++i) bytes += mutate(valid());
    if (chance(10)) bytes.resize(1 + pick(bytes.size()));
    return bytes;
  }

 private:
  size_t pick(size_t n) { return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  bool chance(int percent) { return static_cast<int>(pick(100)) < percent; }
  template <typename T>
  const T& one_of(const std::vector<T>& v) { return v[pick(v.size())]; }

  std::string method_for(const std::string& path) {
    for (const PathRoutes& p : m_.table().paths) {
      if (p.path != path || chance(25)) continue;
      std::vector<std::string> known;
      for (int k = 1; k <= kMethodCount; ++k)
        if (p.by_method[k] >= 0) known.push_back(kMethodNames[k]);
      return one_of(known);
    }
    return one_of<std::string>({"GET", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"});
  }

  /// The same path as a client may spell it, or one that climbs or escapes
  /// badly: the server matches paths decoded and normalised.
  std::string respelled(std::string path) {
    size_t at = 1 + pick(path.size());
    switch (pick(9)) {
      case 0:  // one byte percent-encoded, in either case
        if (at - 1 < path.size() && path[at - 1] != '/')
          path.replace(at - 1, 1, chance(50) ? fmt::format("%{:02X}", static_cast<unsigned char>(path[at - 1]))
                                             : fmt::format("%{:02x}", static_cast<unsigned char>(path[at - 1])));
        return path;
      case 1: return "/." + path;
      case 2: return "/zz/.." + path;
      case 3: return "/" + path;
      case 4: return path + (path.back() == '/' ? ".." : "/..");
      case 5: return "/.." + path;
      case 6: return path.insert(std::min(at, path.size()), one_of<std::string>({"%2F", "%00", "%zz", "%2", "%"}));
      case 7: return path + "/.";
      default: return "/%2e%2E" + path;
    }
  }

  /// A request as a client sends it: request line, fields, body.
  std::string valid() {
    std::string path = one_of(paths_);
    if (chance(15)) path = respelled(path);
    std::string method = method_for(path);
    std::string target = path + (chance(15) ? "?q=1&x=%20y/z" : "");
    if (chance(10)) target = "http://x:80" + target;
    if (chance(2)) target = "http://x?to=" + path;  // no path: "/", whatever the query says
    bool http10 = chance(15);
    std::string r = method + " " + target + (http10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
    if (!http10 || chance(50)) r += one_of<std::string>({"Host: x\r\n", "Host: 127.0.0.1:8080\r\n", "host: [::1]\r\n"});
    if (chance(30)) r += "User-Agent: fuzz/1.0\r\n";
    if (chance(30)) r += "Accept: */*\r\n";
    if (chance(10)) r += "Connection: close\r\n";
    if (chance(10)) r += "Connection: keep-alive\r\n";
    if (chance(5)) r += one_of<std::string>({"Expect: 100-continue\r\n", "expect: 100-Continue\r\n", "Expect: nope\r\n"});
    std::string body;
    if (method == "POST" || method == "PUT" || method == "PATCH" || chance(5)) {
      if (!http10 && chance(40)) {
        r += chance(80) ? "Transfer-Encoding: chunked\r\n" : "Transfer-Encoding: gzip, chunked\r\n";
        body = chunked_body();
      } else {
        body.assign(pick(std::min<size_t>(200, static_cast<size_t>(m_.spec().limits.body_bytes)) + 1), 'b');
        r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
      }
    }
    return r + "\r\n" + body;
  }

  /// A chunked body (RFC 9112 7.1): 0 to 3 chunks, sizes in either case and
  /// sometimes with leading zeros, extensions, trailer fields.
  std::string chunked_body() {
    const size_t most = std::min<size_t>(100, static_cast<size_t>(m_.spec().limits.body_bytes));
    std::string b;
    for (int n = static_cast<int>(pick(4)); n > 0; --n) {
      size_t size = 1 + pick(most + 1);
      std::string hex = chance(50) ? fmt::format("{:x}", size) : fmt::format("{:X}", size);
      if (chance(10)) hex = "00" + hex;
      b += hex + (chance(15) ? one_of<std::string>({";a=b", " ;x", ";q=\"1\""}) : "") + "\r\n" +
           std::string(size, 'c') + "\r\n";
    }
    b += chance(10) ? "0;end\r\n" : "0\r\n";
    if (chance(15)) b += one_of<std::string>({"X-Trailer: 1\r\n", "A: b\r\nC: d\r\n"});
    return b + "\r\n";
  }

  char interesting_byte() {
    static const std::string kBytes = std::string("\r\n \t:#?%/[]@,;=.\x7f\x80\xff", 20) + std::string(1, '\0');
    return chance(70) ? kBytes[pick(kBytes.size())] : static_cast<char>(pick(256));
  }

  // The start of each line of the head (after the request line), and the
  // offset of the blank line that ends it (or the size, when there is none).
  std::vector<size_t> field_lines(const std::string& r, size_t* head_end) {
    size_t end = r.find("\r\n\r\n");
    *head_end = end == std::string::npos ? r.size() : end + 2;
    std::vector<size_t> starts;
    for (size_t at = r.find("\r\n"); at != std::string::npos && at + 2 < *head_end; at = r.find("\r\n", at + 2))
      starts.push_back(at + 2);
    return starts;
  }

  std::string mutate(std::string r) {
    int n = chance(30) ? 0 : 1 + static_cast<int>(pick(3));
    for (int i = 0; i < n && !r.empty(); ++i) r = mutate_once(std::move(r));
    return r;
  }

  std::string mutate_once(std::string r) {
    size_t head_end = 0;
    std::vector<size_t> lines = field_lines(r, &head_end);
    const size_t limit = static_cast<size_t>(m_.spec().limits.request_bytes);
    switch (pick(15)) {
      case 0: r[pick(r.size())] = interesting_byte(); break;
      case 1: r.insert(r.begin() + static_cast<long>(pick(r.size() + 1)), interesting_byte()); break;
      case 2: r.erase(pick(r.size()), 1 + pick(3)); break;
      case 3:  // a field line twice, or dropped
        if (!lines.empty()) {
          size_t at = one_of(lines);
          size_t end = r.find("\r\n", at);
          std::string line = r.substr(at, end == std::string::npos ? std::string::npos : end + 2 - at);
          if (chance(50)) r.insert(at, line);
          else r.erase(at, line.size());
        }
        break;
      case 4: {  // CR LF games: a bare LF or CR, CR CR LF, a folded line
        size_t at = r.find("\r\n", pick(head_end));
        if (at == std::string::npos) break;
        r.replace(at, 2, one_of<std::string>({"\n", "\r", "\r\r\n", "\r\n\r\n", "\r\n  folded\r\n", "\r\n\t"}));
        break;
      }
      case 5: {  // a head near limits.request_bytes: a long target or a long field
        long delta = static_cast<long>(pick(7)) - 3;
        long pad = static_cast<long>(limit) - static_cast<long>(head_end + 2) + delta;
        if (pad <= 12) break;
        size_t sp = r.find(' ');
        if (chance(50) && sp != std::string::npos && sp + 1 < r.size() && r[sp + 1] == '/')
          r.insert(sp + 2, std::string(static_cast<size_t>(pad), 'a'));
        else if (!lines.empty())
          r.insert(lines[0], "X-Pad: " + std::string(static_cast<size_t>(pad - 9), 'p') + "\r\n");
        break;
      }
      case 6: {  // Content-Length games
        const long body_bytes = static_cast<long>(m_.spec().limits.body_bytes);
        std::string v = one_of<std::string>({"0", "5", std::to_string(body_bytes), std::to_string(body_bytes + 1),
                                             "99999999999999999999", "-1", " 7", "7 ", "5,5", "0x10", ""});
        std::string body = v.find_first_not_of("0123456789 ") == std::string::npos && !v.empty() && v.size() < 5
                               ? std::string(std::stoul(v), 'c')
                               : "";
        if (lines.empty()) break;
        r.insert(one_of(lines), "Content-Length: " + v + "\r\n");
        if (chance(70)) r += body;
        break;
      }
      case 7:  // chunked: codings, and bodies well and badly framed
        if (!lines.empty())
          r.insert(one_of(lines), one_of<std::string>({"Transfer-Encoding: chunked\r\n", "transfer-encoding: gzip, chunked\r\n",
                                                       "Transfer-Encoding: chunked, gzip\r\n", "Transfer-Encoding: identity\r\n",
                                                       "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"}));
        r += one_of<std::string>({"5\r\nhello\r\n0\r\n\r\n", "5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n", "5\r\nhelloX\r\n0\r\n\r\n",
                                  "z\r\n", "FFFFFFFFFF\r\n", "00000000000000005\r\nhello\r\n", "40\r\n" + std::string(64, 'd') + "\r\n0\r\n\r\n",
                                  "41\r\n", "5\nhello\n0\n\n", "0\r\n\r\n"});
        break;
      case 8: {  // the version
        size_t at = r.find(" HTTP/1.");
        if (at != std::string::npos)
          r.replace(at, 9, one_of<std::string>({" HTTP/1.0", " HTTP/1.1", " HTTP/2.0", " HTTP/0.9", " HTTP/1.9",
                                                " http/1.1", " HTTP/11", "  HTTP/1.1", " HTTP/1.1 ", ""}));
        break;
      }
      case 9: {  // the method
        size_t sp = r.find(' ');
        if (sp != std::string::npos)
          r.replace(0, sp, one_of<std::string>({"GET", "HEAD", "POST", "OPTIONS", "get", "PUT", "DELETE", "PATCH",
                                                "CONNECT", "TRACE", "G\x01T", "", "GETGET"}));
        break;
      }
      case 10:  // Connection
        if (!lines.empty())
          r.insert(one_of(lines), one_of<std::string>({"Connection: close\r\n", "Connection: keep-alive\r\n",
                                                       "connection: Keep-Alive, Upgrade\r\n", "Connection: closed\r\n",
                                                       "Connection: te,close\r\n", "Connection:\r\n"}));
        break;
      case 11:  // empty lines before the request line
        r.insert(0, one_of<std::string>({"\r\n", "\n", "\r\n\r\n", "\r"}));
        break;
      case 12:  // Host values
        if (!lines.empty())
          r.insert(one_of(lines), "Host: " + one_of<std::string>({"", "a b", "user@x", "[::1]:80", "[1.2.3.4]",
                                                                   "%41", "%4", "x:8o", "x:", "[v1.x]", "ex.com"}) + "\r\n");
        break;
      case 13:  // Expect
        if (!lines.empty())
          r.insert(one_of(lines), one_of<std::string>({"Expect: 100-continue\r\n", "Expect: 100-CONTINUE \r\n",
                                                       "Expect: 100-continue, x\r\n", "Expect:\r\n", "Expect: 101-continue\r\n"}));
        break;
      default: {  // a field with an odd name or value
        if (lines.empty()) break;
        r.insert(one_of(lines), one_of<std::string>({"X-A : b\r\n", ": b\r\n", "X-A:b\r\n", "X-A: \x01\r\n",
                                                     "X-A: caf\xc3\xa9\r\n", "X-A:\t \r\n", "X\x80: b\r\n"}));
        break;
      }
    }
    return r;
  }

  const HttpModel& m_;
  std::mt19937& rng_;
  std::vector<std::string> paths_;
};

// ---------------------------------------------------------------------------
// Responses, parsed strictly

struct Response {
  std::string bytes;  // as received, Date line removed
  int status = 0;
};

enum class Parse { whole, incomplete, malformed };

/// One response at the start of `in`: "HTTP/1.1 DDD reason" CR LF, fields
/// "name: value" CR LF (tokens, no control characters), Content-Length
/// exactly once (none for 1xx, 204, 304), Date exactly once as the last
/// field and a valid IMF-fixdate, then Content-Length body bytes unless
/// `body` is false (a response to HEAD). `*used` = its length.
Parse parse_response(std::string_view in, bool body, Response* out, size_t* used, std::string* why) {
  size_t end = in.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (in.size() > 65536 || (!in.empty() && !std::string_view("HTTP/1.1 ").starts_with(in.substr(0, 9))))
      return *why = "no response head", Parse::malformed;
    return Parse::incomplete;
  }
  std::string_view head = in.substr(0, end + 2);  // lines, each with CR LF
  std::vector<std::string_view> lines;
  for (size_t at = 0; at < head.size();) {
    size_t crlf = head.find("\r\n", at);
    lines.push_back(head.substr(at, crlf - at));
    at = crlf + 2;
  }
  for (std::string_view line : lines)
    for (char c : line)
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f)
        return *why = "a control character in " + escaped(line), Parse::malformed;
  std::string_view sl = lines[0];
  if (sl.size() < 13 || !sl.starts_with("HTTP/1.1 ") || !std::all_of(sl.begin() + 9, sl.begin() + 12, ::isdigit) ||
      sl[12] != ' ')
    return *why = "bad status line " + escaped(sl), Parse::malformed;
  out->status = std::stoi(std::string(sl.substr(9, 3)));
  int lengths = 0, dates = 0;
  uint64_t length = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == std::string_view::npos || !is_token(lines[i].substr(0, colon)) ||
        lines[i].substr(colon + 1, 1) != " ")
      return *why = "bad field line " + escaped(lines[i]), Parse::malformed;
    std::string_view name = lines[i].substr(0, colon), value = lines[i].substr(colon + 2);
    if (same_name(name, "Content-Length")) {
      ++lengths;
      if (value.empty() || value.size() > 12 || !std::all_of(value.begin(), value.end(), ::isdigit))
        return *why = "bad Content-Length " + escaped(value), Parse::malformed;
      length = std::stoull(std::string(value));
    }
    if (same_name(name, "Date")) {
      ++dates;
      if (i + 1 != lines.size() || !parse_imf_fixdate(value))
        return *why = "Date not last, or not an IMF-fixdate: " + escaped(value), Parse::malformed;
    }
  }
  bool no_body = status_has_no_body(out->status);
  if (lengths != (no_body ? 0 : 1) || dates != 1)
    return *why = "Content-Length or Date missing or repeated", Parse::malformed;
  size_t total = end + 4 + (body && !no_body ? length : 0);
  if (in.size() < total) return Parse::incomplete;
  std::string_view date_line = lines.back();
  size_t date_at = end + 2 - date_line.size() - 2;  // the Date line, last before the blank line
  out->bytes = std::string(in.substr(0, date_at)) + "\r\n" + std::string(in.substr(end + 4, total - end - 4));
  *used = total;
  return Parse::whole;
}

// ---------------------------------------------------------------------------
// One connection

struct Exchange {
  std::vector<Response> responses;
  std::string rest;        // bytes after the last whole response
  bool malformed = false;
  std::string why;         // what was malformed
  bool closed = false;     // EOF (or a reset) after the responses
  bool closed_early = false;  // EOF already there before we said we were done
  bool timeout = false;
};

// Reads what is there within `ms` into *buf; false on EOF, an error or the timeout.
bool read_some(int fd, std::string* buf, int ms, Exchange* x) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, ms) <= 0) return x->timeout = ms > 0, false;
  char chunk[65536];
  ssize_t n = recv(fd, chunk, sizeof chunk, 0);
  if (n <= 0) return x->closed = true, false;
  buf->append(chunk, static_cast<size_t>(n));
  return true;
}

/// Sends `bytes` in pieces (cut at `cuts`, a short pause between them), then
/// reads the answers the model expects. When the model says the server
/// closes, waits for EOF; else checks that the server has not closed, says
/// it sends no more (shutdown) and waits for EOF.
Exchange talk(int port, const std::string& bytes, const std::vector<size_t>& cuts, const ModelResult& want,
              std::mt19937& rng) {
  Exchange x;
  Fd fd = connect_to(port);
  if (!fd.valid()) return x.why = "cannot connect", x.malformed = true, x;
  set_nodelay(fd.get());
  size_t from = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    size_t to = i < cuts.size() ? cuts[i] : bytes.size();
    if (i > 0) usleep(static_cast<useconds_t>(std::uniform_int_distribution<int>(100, 2000)(rng)));
    if (!send_all(fd.get(), bytes.substr(from, to - from))) break;  // it may have answered and closed
    from = to;
  }
  auto parse_all = [&]() {
    while (!x.malformed) {
      size_t k = x.responses.size(), used = 0;
      bool body = k < want.answers.size() ? want.answers[k].body : true;
      Response r;
      Parse p = parse_response(x.rest, body, &r, &used, &x.why);
      if (p == Parse::malformed) x.malformed = true;
      if (p != Parse::whole) return;
      x.responses.push_back(std::move(r));
      x.rest.erase(0, used);
    }
  };
  auto deadline = Clock::now() + std::chrono::milliseconds(3000);
  auto left = [&] {
    return static_cast<int>(std::max<long>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()));
  };
  if (!want.closes) {
    while (x.responses.size() < want.answers.size() && !x.malformed && read_some(fd.get(), &x.rest, left(), &x))
      parse_all();
    if (x.closed || x.timeout || x.malformed) return x;
    // All expected answers are here: the server must not have closed.
    while (read_some(fd.get(), &x.rest, 0, &x)) parse_all();
    if (x.closed) return x.closed_early = true, x;
    shutdown(fd.get(), SHUT_WR);
  }
  while (!x.malformed && read_some(fd.get(), &x.rest, left(), &x)) parse_all();
  parse_all();
  return x;
}

// ---------------------------------------------------------------------------
// The servers

struct Target {
  std::string spec;  // in specs/
  std::string label;
  json patch;        // merged into it
};

std::vector<Target> targets() {
  return {
      {"routes", "routes", json::object()},
      {"routes", "routes-small",  // small limits, so that the fuzzer reaches them; and cors
       {{"limits", {{"request_bytes", 512}, {"body_bytes", 64}, {"keepalive_requests", 4}}}, {"cors", json::object()}}},
      {"minhttp", "minhttp", json::object()},
      {"hello", "hello", json::object()},
      {"static", "static", json::object()},  // directories, a fallback, redirects
  };
}

struct ModeVariant {
  std::string label;
  json patch;
};

std::vector<ModeVariant> modes() {
  return {{"epoll", {{"mode", "epoll"}}},
          {"iterative", {{"mode", "iterative"}}},
          {"fork", {{"mode", "fork"}}},
          {"epoll-2-workers", {{"mode", "epoll"}, {"workers", 2}}}};
}

struct Totals {
  long requests = 0, connections = 0, answers = 0, deaths = 0, disagreements = 0, malformed = 0;
};

// What the server must send for answer `a`, Date aside: the table's head and body.
std::string expected_bytes(const HttpModel& m, const ModelAnswer& a) {
  const CompiledResponse& c = m.table().responses.at(static_cast<size_t>(a.response));
  std::string out = full_head(c, a.head, a.query);
  if (a.body && !status_has_no_body(c.status)) out += full_file(c).empty() ? full_body(c) : read(m.spec().dir + "/" + full_file(c));
  return out;
}

std::string describe(const ModelResult& r) {
  std::string s;
  for (const ModelAnswer& a : r.answers) s += "    " + std::to_string(a.status) + " " + a.why + "\n";
  return s + "    then " + r.end + "\n";
}

std::string describe(const Exchange& x) {
  std::string s;
  for (const Response& r : x.responses) s += "    " + escaped(r.bytes.substr(0, r.bytes.find("\r\n"))) + "\n";
  if (!x.rest.empty()) s += "    and " + escaped(x.rest.substr(0, 300)) + "\n";
  if (x.malformed) s += "    malformed: " + x.why + "\n";
  s += x.closed_early ? "    closed before the client was done\n"
       : x.closed     ? "    then closed\n"
       : x.timeout    ? "    then nothing for 3 s\n"
                      : "";
  return s;
}

// What differs between the model's answers and the server's, or "".
std::string compare(const HttpModel& m, const ModelResult& want, const Exchange& got) {
  if (got.malformed) return "a malformed response";
  for (size_t i = 0; i < std::min(want.answers.size(), got.responses.size()); ++i) {
    std::string e = expected_bytes(m, want.answers[i]);
    if (got.responses[i].bytes != e)
      return "answer " + std::to_string(i + 1) + " differs: expected " + escaped(e.substr(0, 400)) + ", got " +
             escaped(got.responses[i].bytes.substr(0, 400));
  }
  if (got.responses.size() != want.answers.size())
    return std::to_string(want.answers.size()) + " answers expected, " + std::to_string(got.responses.size()) +
           " received";
  if (!got.rest.empty()) return "bytes after the last answer";
  if (got.closed_early) return "the server closed the connection where the model keeps it";
  if (!got.closed) return "the server did not close the connection";
  return "";
}

TEST(DiffFuzz, ServersAnswerAsTheModelSays) {
  const long seconds = env_number("ASMSRV_DIFF_SECONDS", 0);
  const long requests = env_number("ASMSRV_DIFF_REQUESTS", 20000);
  const auto seed = static_cast<uint32_t>(env_number("ASMSRV_DIFF_SEED", 20261124));
  std::mt19937 rng(seed);
  const std::vector<Target> specs = targets();
  const std::vector<ModeVariant> mode_list = modes();
  const long servers = static_cast<long>(specs.size() * mode_list.size());
  Totals t;
  auto t0 = Clock::now();
  int reported = 0;
  for (size_t s = 0; s < specs.size(); ++s) {
    for (size_t k = 0; k < mode_list.size(); ++k) {
      const std::string syntax = (s + k) % 2 ? "gas" : "nasm";
      json patch = specs[s].patch;
      patch.update(mode_list[k].patch);
      std::string file = spec_copy(specs[s].spec, patch);
      std::optional<Running> server = start_server(file, syntax);
      ASSERT_TRUE(server) << specs[s].label << " " << mode_list[k].label;
      HttpModel model(server->spec);
      RequestGen gen(model, rng);
      const std::string where = specs[s].label + " (" + mode_list[k].label + ", " + syntax + ")";
      long done = 0;
      auto slot_start = Clock::now();
      auto slot_over = [&] {
        if (seconds <= 0) return done >= requests / servers;
        return seconds_since(slot_start) >= static_cast<double>(seconds) / static_cast<double>(servers);
      };
      while (!slot_over()) {
        int count = 0;
        std::string bytes = gen.connection(&count);
        std::vector<size_t> cuts;
        if (std::uniform_int_distribution<int>(0, 99)(rng) < 30)
          for (int c = std::uniform_int_distribution<int>(1, 3)(rng); c > 0; --c)
            cuts.push_back(std::uniform_int_distribution<size_t>(1, bytes.size())(rng));
        std::sort(cuts.begin(), cuts.end());
        ModelResult want = model.run(bytes);
        Exchange got = talk(server->port, bytes, cuts, want, rng);
        done += count;
        ++t.connections;
        t.requests += count;
        t.answers += static_cast<long>(got.responses.size());
        bool dead = server->proc->exited();
        std::string diff = dead ? "the server died" : compare(model, want, got);
        if (diff.empty()) continue;
        (dead ? t.deaths : got.malformed ? t.malformed : t.disagreements)++;
        if (++reported <= 20) {
          // ASMSRV_DIFF_DUMP=DIR keeps each failing connection's bytes whole, to replay.
          if (const char* dump = std::getenv("ASMSRV_DIFF_DUMP"))
            write(fmt::format("{}/{}-{}.bin", dump, specs[s].label, reported), bytes);
          std::string cut_text;
          for (size_t c : cuts) cut_text += " " + std::to_string(c);
          ADD_FAILURE() << where << ": " << diff << "\n  spec: specs/" << specs[s].spec << ".json + " << patch.dump()
                        << "\n  bytes (" << bytes.size() << ", cut at" << (cut_text.empty() ? " none" : cut_text)
                        << "): " << escaped(bytes.substr(0, 2000)) << (bytes.size() > 2000 ? "..." : "")
                        << "\n  the model:\n" << describe(want) << "  the server:\n" << describe(got);
        }
        if (dead) break;
      }
      EXPECT_EQ(server->proc->err(), "") << where << ": stderr (a worker that died is replaced and says so)";
    }
  }
  std::cout << "diff fuzz: seed " << seed << ", " << t.requests << " requests in " << t.connections
            << " connections (" << t.answers << " answers), " << specs.size() << " specs x " << mode_list.size()
            << " modes, " << static_cast<int>(seconds_since(t0)) << " s: " << t.deaths << " deaths, "
            << t.disagreements << " disagreements, " << t.malformed << " malformed\n";
}

}  // namespace
}  // namespace asmsrv::test
