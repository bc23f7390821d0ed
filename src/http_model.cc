#include "http_model.h"

#include <fmt/format.h>

#include <limits>
#include <optional>

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

// Where a chunked body that starts `in` ends (RFC 9112 7.1): chunk-size in
// 1 to 16 hex digits, an optional extension (after ';', SP or HTAB, up to
// CR), CR LF, the data, CR LF; after the size-0 chunk, trailer lines up to
// an empty line. Extension and trailer bytes count with the data against
// `limit`, a size as soon as its digits say it is over.
struct ChunkedBody {
  enum Kind { whole, incomplete, malformed } kind;
  size_t len = 0;  // whole: its length, the final CR LF included
  std::string why;
};

ChunkedBody frame_chunked(std::string_view in, uint64_t limit) {
  uint64_t total = 0;
  size_t p = 0;
  auto bad = [](std::string why) { return ChunkedBody{ChunkedBody::malformed, 0, std::move(why)}; };
  const ChunkedBody more{ChunkedBody::incomplete, 0, ""};
  // A line that is dropped (an extension, a trailer field): up to CR LF.
  auto drop_line = [&](uint64_t size) -> std::optional<ChunkedBody> {
    for (; p < in.size() && in[p] != '\r'; ++p) {
      if (in[p] == '\n') return bad("a bare LF in a chunk extension or trailer");
      if (++total + size > limit) return bad("a chunked body over limits.body_bytes");
    }
    if (p == in.size()) return more;
    return std::nullopt;
  };
  while (true) {
    uint64_t size = 0;
    int digits = 0;
    for (; p < in.size() && is_hex(in[p]); ++p) {
      if (++digits > 16) return bad("a chunk size of more than 16 digits");
      char c = static_cast<char>(in[p] | 0x20);
      size = size * 16 + static_cast<uint64_t>(is_digit(in[p]) ? in[p] - '0' : c - 'a' + 10);
      if (total + size > limit) return bad("a chunk size over limits.body_bytes");
    }
    if (p == in.size()) return more;
    if (digits == 0) return bad("no chunk size");
    if (in[p] == ';' || is_ows(in[p]))
      if (auto r = drop_line(size)) return *r;
    if (in[p] != '\r') return bad("a chunk size followed by neither an extension nor CR LF");
    if (++p == in.size()) return more;
    if (in[p++] != '\n') return bad("a bare CR after a chunk size");
    if (size == 0) break;
    total += size;
    if (in.size() - p < size) return more;
    p += size;
    if (p == in.size()) return more;
    if (in[p++] != '\r') return bad("chunk data longer than its size, or no CR LF after it");
    if (p == in.size()) return more;
    if (in[p++] != '\n') return bad("no LF after chunk data");
  }
  while (true) {  // trailer lines, then the final CR LF
    if (p == in.size()) return more;
    if (in[p] == '\n') return bad("a bare LF in the trailer section");
    bool empty = in[p] == '\r';  // the empty line that ends the body
    if (!empty)
      if (auto r = drop_line(0)) return *r;
    if (++p == in.size()) return more;
    if (in[p++] != '\n') return bad("a bare CR in the trailer section");
    if (empty) return {ChunkedBody::whole, p, ""};
  }
}

}  // namespace

struct HttpModel::Request {
  int response = -1;
  int method = 0;  // 0: none known
  int minor = 1;
  bool close = false;
  bool keep_alive = false;
  uint64_t content_length = 0;
  bool chunked = false;      // a chunked body follows
  bool expects_100 = false;  // Expect: 100-continue (HTTP/1.1)
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
  // Transfer-Encoding: its codings over every field, in order (RFC 9112 6.1).
  enum { no_te, last_not_chunked, last_chunked, chunked_not_last } te = no_te;
  enum { no_expect, continue_100, other_expectation } expect = no_expect;
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
      if (te == no_te) te = last_not_chunked;
      for (size_t i = 0; i <= value.size();) {
        size_t j = std::min(value.find(',', i), value.size());
        std::string_view coding = value.substr(i, j - i);
        while (!coding.empty() && is_ows(coding.front())) coding.remove_prefix(1);
        while (!coding.empty() && is_ows(coding.back())) coding.remove_suffix(1);
        i = j + 1;
        if (coding.empty()) continue;
        if (te == last_chunked || te == chunked_not_last) te = chunked_not_last;
        else te = same_name(coding, "chunked") ? last_chunked : last_not_chunked;
      }
    } else if (same_name(name, "Expect")) {
      // RFC 9110 10.1.1: 100-continue is the only expectation there is.
      if (expect != other_expectation) expect = same_name(value, "100-continue") ? continue_100 : other_expectation;
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
  if (te != no_te) {
    if (lengths > 0) return bad("Transfer-Encoding with Content-Length");
    if (r.minor == 0) return bad("Transfer-Encoding in HTTP/1.0");
    if (te != last_chunked) return bad("a Transfer-Encoding whose last coding is not chunked");
    r.chunked = true;
  }
  if (lengths > 1) return bad("two Content-Length fields");
  if (hosts > 1) return bad("two Host fields");
  if (hosts == 0 && r.minor >= 1) return bad("HTTP/1.1 without Host");
  if (r.minor >= 1 && expect == other_expectation)  // HTTP/1.0: Expect is ignored
    return fail(table_.expectation_failed, "417: an expectation other than 100-continue");
  r.expects_100 = r.minor >= 1 && expect == continue_100;
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
    } else if (r.expects_100 && (r.content_length > 0 || r.chunked)) {
      // RFC 9110 10.1.1: the final response goes at once, and then the
      // client does not send the body, so the connection cannot go on.
      a.closes = true;
      a.why += " (Expect: 100-continue: the body is not sent)";
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
    if (r.chunked) {
      // Dropped after the response: a malformed body ends the connection then.
      ChunkedBody body = frame_chunked(rest.substr(f.len), static_cast<uint64_t>(spec_.limits.body_bytes));
      if (body.kind == ChunkedBody::incomplete) {
        out.end = "waits for the rest of a chunked body";
        return out;
      }
      if (body.kind == ChunkedBody::malformed) {
        out.closes = true;
        out.end = "closes after " + a.why + ": " + body.why;
        return out;
      }
      used = f.len + body.len;
    }
    if (rest.size() < used) {
      out.end = "waits for the rest of a body";
      return out;
    }
    pos += used;
  }
}

}  // namespace asmsrv
