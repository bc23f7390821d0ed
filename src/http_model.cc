#include "http_model.h"

#include <fmt/format.h>

#include <limits>

namespace asmsrv {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
bool is_tchar(char c) { return is_token(std::string_view(&c, 1)); }
bool is_ows(char c) { return c == ' ' || c == '\t'; }
bool is_line_end(char c) { return c == '\r' || c == '\n'; }

// VCHAR and obs-text: what a request target is made of (RFC 9112 3.2), but
// '#': a fragment is never sent, and the server answers it with 400.
bool is_target_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return ((u > 0x20 && u < 0x7f) || u >= 0x80) && c != '#';
}

// field-vchar, SP and HTAB (RFC 9110 5.5).
bool is_value_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return (u > 0x20 && u < 0x7f) || u >= 0x80 || is_ows(c);
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && same_name(s.substr(0, prefix.size()), prefix);
}

// uri-host [ ":" port ] (RFC 9112 3.2, RFC 3986 3.2.2): a reg-name of
// unreserved, sub-delims and %XX, or an IPv6 literal in brackets (its
// characters and at least two colons, as the README says); empty is allowed.
bool valid_host(std::string_view v) {
  size_t i = 0;
  if (!v.empty() && v[0] == '[') {
    size_t close = v.find(']');
    if (close == std::string_view::npos) return false;
    int colons = 0;
    for (char c : v.substr(1, close - 1)) {
      if (!is_hex(c) && c != ':' && c != '.') return false;
      colons += c == ':';
    }
    if (colons < 2) return false;
    i = close + 1;
  } else {
    static constexpr std::string_view kSubDelimsAndMarks = "-._~!$&'()*+,;=";
    while (i < v.size() && v[i] != ':') {
      char c = v[i];
      if (c == '%') {
        if (i + 2 >= v.size() || !is_hex(v[i + 1]) || !is_hex(v[i + 2])) return false;
        i += 3;
        continue;
      }
      bool alnum = is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
      if (!alnum && kSubDelimsAndMarks.find(c) == std::string_view::npos) return false;
      ++i;
    }
  }
  if (i == v.size()) return true;
  if (v[i] != ':') return false;
  for (char c : v.substr(i + 1))
    if (!is_digit(c)) return false;
  return true;
}

// Where the request that starts `in` has its head (RFC 9112 2.2): empty lines
// before the request line are skipped, lines end in CR LF, an empty line ends
// the head. A bare LF ends it too (the request is malformed: 400 at once),
// and so does a whole request line that does not end in " HTTP/x.y" (HTTP/0.9
// or garbage: 400, or 501 for an unknown method, without waiting for a head
// that will not come). Only the first `limit` bytes can hold it.
struct Framing {
  enum Kind { whole, incomplete, too_large } kind;
  size_t len = 0;          // whole: the head's length
  bool line_fits = false;  // too_large: the request line ended within the limit
};

Framing frame_head(std::string_view in, size_t limit) {
  std::string_view w = in.substr(0, limit);
  size_t start = 0;
  while (start < w.size() && is_line_end(w[start])) ++start;
  size_t first_lf = w.find('\n', start);
  for (size_t at = start, lf; (lf = w.find('\n', at)) != std::string_view::npos; at = lf + 1) {
    if (w[lf - 1] != '\r') return {Framing::whole, lf + 1};           // a bare LF
    if (at > start && lf == at + 1) return {Framing::whole, lf + 1};  // the empty line
  }
  if (first_lf != std::string_view::npos) {
    std::string_view line = w.substr(start, first_lf - 1 - start);  // without CR LF
    bool versioned = line.size() >= 9 && line.substr(line.size() - 9, 6) == " HTTP/";
    if (!versioned) return {Framing::whole, first_lf + 1};
  }
  if (in.size() < limit) return {Framing::incomplete};
  return {Framing::too_large, 0, first_lf != std::string_view::npos};
}

}  // namespace

struct HttpModel::Request {
  int response = -1;
  int method = 0;  // 0: none known
  int minor = 1;
  bool close = false;
  bool keep_alive = false;
  uint64_t content_length = 0;
  std::string why;
  std::string query;
};

HttpModel::HttpModel(const Spec& spec) : spec_(spec), table_(build_response_table(spec)) {}

int HttpModel::route(int method, std::string_view raw) const {
  if (table_.catch_all >= 0) return table_.catch_all;
  std::optional<std::string> path = normalise_path(raw);
  if (!path) return table_.bad_request;
  auto answer = [&](const PathRoutes& p) {
    if (p.by_method[method] >= 0) return p.by_method[method];
    return p.not_allowed >= 0 ? p.not_allowed : table_.not_found;
  };
  for (const PathRoutes& p : table_.paths)
    if (p.path == *path) return answer(p);
  for (const PathRoutes& p : table_.fallbacks)  // longest first
    if (path->compare(0, p.path.size(), p.path) == 0) return answer(p);
  return table_.not_found;
}

HttpModel::Request HttpModel::parse(std::string_view head) const {
  Request r;
  auto fail = [&](int response, std::string why) {
    r.response = response;
    r.why = std::move(why);
    return r;
  };
  auto bad = [&](std::string why) { return fail(table_.bad_request, "400: " + why); };
  size_t p = 0;
  while (p < head.size() && is_line_end(head[p])) ++p;

  // method SP request-target SP HTTP-version CRLF (RFC 9112 3)
  size_t tok = p;
  while (p < head.size() && is_tchar(head[p])) ++p;
  std::string_view method = head.substr(tok, p - tok);
  if (method.empty() || p >= head.size() || head[p] != ' ') return bad("no method and one space");
  for (int m = 1; m <= kMethodCount; ++m)
    if (method == kMethodNames[m]) r.method = m;
  if (r.method == 0) return fail(table_.not_implemented, "501: unknown method " + std::string(method));
  ++p;

  size_t t = p;
  while (p < head.size() && is_target_char(head[p])) ++p;
  std::string_view target = head.substr(t, p - t);
  if (p >= head.size() || head[p] != ' ') return bad("the target is not followed by a space");
  std::string_view path = target.substr(0, target.find('?'));
  if (target.find('?') != std::string_view::npos) r.query = std::string(target.substr(target.find('?')));
  if (target.empty()) return bad("no target");
  if (target[0] != '/') {
    // absolute-form (RFC 9112 3.2.2): the path follows the authority, "/" if none.
    if (!starts_with_nocase(target, "http://")) return bad("a target neither /path nor http://");
    std::string_view rest = target.substr(7);
    // An http URI needs a host (RFC 9110 4.2.1).
    if (rest.empty() || rest[0] == '/' || rest[0] == '?') return bad("an empty authority");
    size_t end = rest.find_first_of("/?");
    path = end == std::string_view::npos || rest[end] == '?' ? "/" : rest.substr(end, rest.find('?') - end);
  }

  std::string_view version = head.substr(p, 11);
  if (version.size() < 11 || version.substr(0, 6) != " HTTP/" || !is_digit(version[6]) || version[7] != '.' ||
      !is_digit(version[8]) || version.substr(9) != "\r\n")
    return bad("no \" HTTP/d.d\" CR LF after the target");
  if (version[6] != '1') return fail(table_.version_not_supported, "505: HTTP major " + std::string(1, version[6]));
  r.minor = version[8] - '0';
  p += 11;

  // field-line = field-name ":" OWS field-value OWS, CR LF (RFC 9112 5)
  int hosts = 0, lengths = 0;
  bool chunked = false;
  while (!head.substr(p).starts_with("\r\n")) {
    size_t n = p;
    while (p < head.size() && is_tchar(head[p])) ++p;
    std::string_view name = head.substr(n, p - n);
    if (name.empty()) return bad("a field line without a name (obs-fold, or a leading ':')");
    if (p >= head.size() || head[p] != ':') return bad("no colon right after the field name");
    ++p;
    while (p < head.size() && is_ows(head[p])) ++p;
    size_t v = p;
    while (p < head.size() && head[p] != '\r') {
      if (!is_value_char(head[p])) return bad("a control character or bare LF in a field value");
      ++p;
    }
    if (p + 1 >= head.size() || head[p + 1] != '\n') return bad("a bare CR");
    size_t end = p;
    while (end > v && is_ows(head[end - 1])) --end;
    std::string_view value = head.substr(v, end - v);
    p += 2;
    if (same_name(name, "Host")) {
      ++hosts;
      if (!valid_host(value)) return bad("an invalid Host");
    } else if (same_name(name, "Content-Length")) {
      ++lengths;
      if (value.empty()) return bad("an empty Content-Length");
      r.content_length = 0;
      for (char c : value) {
        if (!is_digit(c)) return bad("a Content-Length that is not digits");
        uint64_t d = static_cast<uint64_t>(c - '0');
        r.content_length = r.content_length > (std::numeric_limits<uint64_t>::max() - d) / 10
                               ? std::numeric_limits<uint64_t>::max()
                               : r.content_length * 10 + d;
      }
    } else if (same_name(name, "Transfer-Encoding")) {
      chunked = true;
    } else if (same_name(name, "Connection")) {
      // #connection-option: tokens between commas and whitespace
      for (size_t i = 0; i < value.size();) {
        size_t j = value.find_first_of(", \t", i);
        if (j == std::string_view::npos) j = value.size();
        std::string_view option = value.substr(i, j - i);
        if (same_name(option, "close")) r.close = true;
        if (same_name(option, "keep-alive")) r.keep_alive = true;
        i = j + 1;
      }
    }
  }

  // The rules across fields (RFC 9112 6.1, 6.3; RFC 9110 7.2).
  if (chunked && lengths > 0) return bad("Transfer-Encoding with Content-Length");
  if (chunked) return fail(table_.not_implemented, "501: Transfer-Encoding");
  if (lengths > 1) return bad("two Content-Length fields");
  if (hosts > 1) return bad("two Host fields");
  if (hosts == 0 && r.minor >= 1) return bad("HTTP/1.1 without Host");
  if (r.content_length > static_cast<uint64_t>(spec_.limits.body_bytes))
    return fail(table_.content_too_large, "413: a body over limits.body_bytes");
  r.response = route(r.method, path);
  r.why = r.response == table_.bad_request
              ? "400: a path with a bad escape, a NUL or '/' escaped, or .. above /"
              : fmt::format("{} {} -> {}", kMethodNames[r.method], path, table_.responses[r.response].what);
  return r;
}

ModelResult HttpModel::run(std::string_view bytes) const {
  ModelResult out;
  size_t pos = 0;
  const auto limit = static_cast<size_t>(spec_.limits.request_bytes);
  while (true) {
    std::string_view rest = bytes.substr(pos);
    if (rest.empty()) {
      out.end = "waits for the next request";
      return out;
    }
    Framing f = frame_head(rest, limit);
    if (f.kind == Framing::incomplete) {
      out.end = "waits for the rest of a head";
      return out;
    }
    Request r;
    if (f.kind == Framing::too_large) {
      r.response = f.line_fits ? table_.headers_too_large : table_.uri_too_long;
      r.why = f.line_fits ? "431: the head is over limits.request_bytes"
                          : "414: the request line is over limits.request_bytes";
    } else {
      r = parse(rest.substr(0, f.len));
    }
    ModelAnswer a;
    a.response = r.response;
    a.query = r.query;
    a.status = table_.responses[r.response].status;
    a.body = r.method != static_cast<int>(Method::HEAD);
    a.why = r.why;
    // Keep-alive (RFC 9112 9.3): the default in HTTP/1.1, in HTTP/1.0 only
    // when asked; errors, Connection: close and the last request allowed close.
    if (table_.responses[r.response].always_close) {
      a.closes = true;
    } else if (r.close || (r.minor == 0 && !r.keep_alive)) {
      a.closes = true;
    } else if (spec_.limits.keepalive_timeout_ms == 0 ||
               static_cast<int>(out.answers.size()) + 1 >= spec_.limits.keepalive_requests) {
      a.closes = true;
      a.why += " (the last request allowed)";
    } else {
      a.head = r.minor == 0 ? ConnHeader::keep_alive_10 : ConnHeader::keep_alive;
    }
    out.answers.push_back(a);
    if (a.closes) {
      out.closes = true;
      out.end = "closes after " + a.why;
      return out;
    }
    uint64_t used = f.len + r.content_length;
    if (rest.size() < used) {
      out.end = "waits for the rest of a body";
      return out;
    }
    pos += used;
  }
}

}  // namespace asmsrv
