#include "spec.h"

#include "abi.h"

#include <fmt/format.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "fs.h"
#include "spec_keys.h"
#include "suggest.h"
#include "text.h"
#include "http.h"
#include "site.h"
#include "templates.h"

namespace asmsrv {

using json = nlohmann::ordered_json;

namespace {

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += (out.empty() ? "" : "\n") + l;
  return out;
}

// "/listen" + "port" -> "/listen/port", escaping ~ and / (RFC 6901).
std::string child(const std::string& ptr, std::string_view key) {
  std::string out = ptr + "/";
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

// A JSON value as shown in a message, cut short when long.
std::string shown(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

// Collects every error with its JSON pointer; the checks read like the spec.
class Checker {
 public:
  explicit Checker(std::string file) : file_(std::move(file)) {}

  void error(const std::string& ptr, const std::string& msg) {
    errors_.push_back(fmt::format("{}: {}: {}", file_, ptr.empty() ? "/" : ptr, msg));
  }
  const std::vector<std::string>& errors() const { return errors_; }

  // Reports keys of `obj` that `spec` does not have, suggesting the closest one.
  bool object(const json& obj, const std::string& ptr, const ObjectSpec& spec) {
    if (!obj.is_object()) {
      error(ptr, "expected an object, got " + shown(obj));
      return false;
    }
    const std::vector<std::string_view> allowed = spec.listed();
    for (const auto& [key, value] : obj.items()) {
      if (spec.accepts(key)) continue;
      if (auto best = closest_word(key, allowed)) {
        error(child(ptr, key), fmt::format("unknown key; did you mean {}?", json_quote(*best)));
        suggested_.insert(child(ptr, *best));
      } else {
        std::string all;
        for (std::string_view k : allowed) all += (all.empty() ? "" : ", ") + json_quote(k);
        error(child(ptr, key), "unknown key; valid keys here: " + all);
      }
    }
    return true;
  }

  // True when an unknown key was reported as a likely typo of the key at
  // `ptr`: a check for that key being missing then says nothing more, so
  // one mistake gives one error.
  bool suggested(const std::string& ptr) const { return suggested_.count(ptr) != 0; }

  // The integer key `key` of `obj`, in the key's range.
  std::optional<int64_t> integer(const json& obj, const std::string& ptr, const KeySpec& key) {
    return integer(obj.at(std::string(key.name)), child(ptr, key.name), key.min, key.max);
  }

  std::optional<int64_t> integer(const json& j, const std::string& ptr, int64_t lo, int64_t hi) {
    if (j.is_number_integer()) {
      auto v = j.get<int64_t>();
      if (v >= lo && v <= hi) return v;
    }
    error(ptr, fmt::format("expected an integer from {} to {}, got {}", lo, hi, shown(j)));
    return std::nullopt;
  }

  std::optional<std::string> string(const json& j, const std::string& ptr) {
    if (j.is_string()) return j.get<std::string>();
    error(ptr, "expected a string, got " + shown(j));
    return std::nullopt;
  }

  std::optional<bool> boolean(const json& j, const std::string& ptr) {
    if (j.is_boolean()) return j.get<bool>();
    error(ptr, "expected true or false, got " + shown(j));
    return std::nullopt;
  }

  std::optional<std::string> one_of(const json& j, const std::string& ptr,
                                    const std::vector<std::string_view>& choices) {
    if (j.is_string()) {
      auto s = j.get<std::string>();
      if (std::find(choices.begin(), choices.end(), s) != choices.end()) return s;
    }
    std::string all;
    for (std::string_view c : choices) all += (all.empty() ? "" : " or ") + json_quote(c);
    error(ptr, fmt::format("expected {}, got {}", all, shown(j)));
    return std::nullopt;
  }

  // A header value, reason phrase or content type: one line of visible text.
  bool field_text(const std::string& value, const std::string& ptr, std::string_view what) {
    if (value.find_first_of("\r\n") != std::string::npos) {
      error(ptr, fmt::format("{} must not contain CR or LF", what));
      return false;
    }
    for (unsigned char c : value) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) {
        error(ptr, fmt::format("{} must not contain control characters", what));
        return false;
      }
    }
    return true;
  }

 private:
  std::string file_;
  std::vector<std::string> errors_;
  std::set<std::string> suggested_;
};

std::optional<std::array<uint8_t, 4>> parse_ipv4(const std::string& s) {
  std::array<uint8_t, 4> out{};
  size_t pos = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (pos >= s.size() || s[pos] != '.') return std::nullopt;
      ++pos;
    }
    size_t start = pos;
    int v = 0;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos])) && pos - start < 3)
      v = v * 10 + (s[pos++] - '0');
    size_t len = pos - start;
    if (len == 0 || v > 255 || (len > 1 && s[start] == '0')) return std::nullopt;
    out[part] = static_cast<uint8_t>(v);
  }
  if (pos != s.size()) return std::nullopt;
  return out;
}

// An IPv6 literal (RFC 4291 2.2, no zone), as inet_pton reads it; the
// canonical text (RFC 5952: lower case, the longest run of zeros as "::")
// comes from inet_ntop.
std::optional<std::pair<std::array<uint8_t, 16>, std::string>> parse_ipv6(const std::string& s) {
  std::array<uint8_t, 16> out{};
  if (s.find(':') == std::string::npos || ::inet_pton(AF_INET6, s.c_str(), out.data()) != 1) return std::nullopt;
  char text[INET6_ADDRSTRLEN];
  if (!::inet_ntop(AF_INET6, out.data(), text, sizeof text)) return std::nullopt;
  return std::pair{out, std::string(text)};
}

// An environment variable's name as a shell writes it: a letter or _, then
// letters, digits and _.
bool env_name(const std::string& s) {
  if (s.empty() || s.size() > 64 || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

void check_listen(Checker& c, const json& j, Spec& spec) {
  const std::string ptr = "/listen";
  const ObjectSpec& keys = spec_object("listen");
  if (!c.object(j, ptr, keys)) return;
  if (j.contains("address")) {
    if (auto s = c.string(j["address"], ptr + "/address")) {
      if (auto bytes = parse_ipv4(*s)) {
        spec.address = *s;
        std::copy(bytes->begin(), bytes->end(), spec.address_bytes.begin());
      } else if (auto v6 = parse_ipv6(*s)) {
        spec.ipv6 = true;
        spec.address_bytes = v6->first;
        spec.address = v6->second;
      } else {
        c.error(ptr + "/address",
                "expected an IPv4 or IPv6 address like \"127.0.0.1\" or \"::\", got " + json_quote(*s));
      }
    }
  }
  if (j.contains("port"))
    if (auto v = c.integer(j, ptr, keys.key("port"))) spec.port = *v;
  if (j.contains("port_env")) {
    const json& e = j["port_env"];
    if (e.is_null() || (e.is_string() && e.get<std::string>().empty()))
      spec.port_env.clear();
    else if (e.is_string() && env_name(e.get<std::string>()))
      spec.port_env = e.get<std::string>();
    else
      c.error(ptr + "/port_env",
              "expected an environment variable name like \"PORT\" (letters, digits and _, at most 64), "
              "or null to turn it off, got " + shown(e));
  }
  if (j.contains("backlog"))
    if (auto v = c.integer(j, ptr, keys.key("backlog"))) spec.backlog = *v;
  if (j.contains("defer_accept_s"))
    if (auto v = c.integer(j, ptr, keys.key("defer_accept_s"))) spec.defer_accept_s = *v;
}

void check_probe(Checker& c, const json& j, Spec& spec) {
  const std::string ptr = "/probe";
  const ObjectSpec& keys = spec_object("probe");
  if (!c.object(j, ptr, keys)) return;
  Probe probe;
  if (j.contains("path")) {
    if (auto s = c.string(j["path"], ptr + "/path")) {
      bool visible = std::all_of(s->begin(), s->end(), [](unsigned char ch) { return ch > 0x20 && ch != 0x7f; });
      if (s->empty() || (*s)[0] != '/')
        c.error(ptr + "/path", "expected a path that starts with \"/\", got " + json_quote(*s));
      else if (s->size() > 1024)
        c.error(ptr + "/path", "a probe path has at most 1024 bytes");
      else if (!visible || s->find('#') != std::string::npos)
        c.error(ptr + "/path", "a probe path has no spaces, control characters or fragment");
      else
        probe.path = *s;
    }
  }
  if (j.contains("timeout_ms"))
    if (auto v = c.integer(j, ptr, keys.key("timeout_ms"))) probe.timeout_ms = static_cast<int>(*v);
  spec.probe = probe;
}

void check_body_size(Checker& c, uint64_t size, const std::string& ptr) {
  if (size > kMaxBodyBytes)
    c.error(ptr, fmt::format("{} bytes is over the limit of {} bytes (16 MiB)", size, kMaxBodyBytes));
}

void check_headers(Checker& c, const json& j, const std::string& ptr,
                   std::vector<std::pair<std::string, std::string>>& headers) {
  if (!j.is_object()) {
    c.error(ptr, "expected an object of header names to values, got " + shown(j));
    return;
  }
  for (const auto& [name, value] : j.items()) {
    std::string hptr = child(ptr, name);
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (!is_token(name)) {
      c.error(hptr, "header name is not a token (letters, digits and !#$%&'*+-.^_`|~)");
      continue;
    }
    if (lower == "content-length" || lower == "connection" || lower == "transfer-encoding") {
      c.error(hptr, "this header is set by asmsrv; remove it");
      continue;
    }
    if (lower == "content-type") {
      c.error(hptr, "use \"content_type\" for the Content-Type header");
      continue;
    }
    auto dup = std::find_if(headers.begin(), headers.end(), [&](const auto& h) { return same_name(h.first, name); });
    if (dup != headers.end()) {
      c.error(hptr, fmt::format("duplicate of header {}", json_quote(dup->first)));
      continue;
    }
    auto v = c.string(value, hptr);
    if (!v || !c.field_text(*v, hptr, "a header value")) continue;
    headers.emplace_back(name, *v);
  }
}

// A response object at `ptr`, or a route (`keys`: a response's and more).
void check_response(Checker& c, const json& j, const std::string& ptr, const Spec& spec,
                    HttpResponse& r, const ObjectSpec& keys = spec_object("response")) {
  if (!c.object(j, ptr, keys)) return;
  if (j.contains("status")) {
    const json& st = j["status"];
    const KeySpec& status = keys.key("status");
    if (st.is_number_integer() && st.get<int64_t>() >= 100 && st.get<int64_t>() <= 199)
      c.error(ptr + "/status", fmt::format("{} is informational (1xx): a client would wait for a final "
                                           "response; expected an integer from {} to {}",
                                           st.get<int64_t>(), status.min, status.max));
    else if (auto v = c.integer(j, ptr, status))
      r.status = *v;
  }
  r.reason = std::string(standard_reason(r.status));
  if (j.contains("reason")) {
    if (auto s = c.string(j["reason"], ptr + "/reason"); s && c.field_text(*s, ptr + "/reason", "a reason phrase"))
      r.reason = *s;
  } else if (r.reason.empty()) {
    r.reason = "Status";  // an unregistered code with no reason given
  }
  if (j.contains("headers")) check_headers(c, j["headers"], ptr + "/headers", r.headers);
  if (j.contains("body") && j.contains("file")) {
    c.error(ptr + "/file", "give either \"body\" or \"file\", not both");
    return;
  }
  if (j.contains("body")) {
    if (auto s = c.string(j["body"], ptr + "/body")) {
      r.body = *s;
      check_body_size(c, r.body.size(), ptr + "/body");
    }
  } else if (j.contains("file")) {
    if (auto s = c.string(j["file"], ptr + "/file")) {
      std::string path = std::filesystem::path(spec.dir) / *s;
      struct stat st;
      std::string why;
      if (::stat(path.c_str(), &st) != 0)
        why = std::strerror(errno);
      else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
      else if (::access(path.c_str(), R_OK) != 0)
        why = std::strerror(errno);
      if (s->empty()) {
        c.error(ptr + "/file", "expected a file path, got \"\"");
      } else if (std::any_of(s->begin(), s->end(),
                             [](unsigned char ch) { return ch == '"' || ch < 0x20 || ch == 0x7f; })) {
        c.error(ptr + "/file", "the path must not contain a double quote or a control character");
      } else if (!why.empty()) {
        c.error(ptr + "/file", fmt::format("cannot read {}: {}", json_quote(*s), why));
      } else {
        r.file = *s;
        r.file_size = static_cast<uint64_t>(st.st_size);
        check_body_size(c, r.file_size, ptr + "/file");
      }
    }
  } else if (!status_has_no_body(r.status)) {
    r.body = render(load_template("error_body.txt"),
                    {{"status", std::to_string(r.status)}, {"reason", r.reason}});
  }
  if (status_has_no_body(r.status) && r.body_size() > 0)
    c.error(ptr + (r.file.empty() ? "/body" : "/file"),
            fmt::format("a {} response has no body", r.status));
  if (j.contains("content_type")) {
    if (auto s = c.string(j["content_type"], ptr + "/content_type");
        s && c.field_text(*s, ptr + "/content_type", "a content type")) {
      if (s->empty()) c.error(ptr + "/content_type", "expected a media type like \"text/html\", got \"\"");
      r.content_type = *s;
    }
  } else {
    r.content_type = r.file.empty() ? "text/plain" : std::string(media_type_for(r.file));
  }
  if (is_entity(r)) r.etag = strong_etag(r.file.empty() ? r.body : read_file(std::filesystem::path(spec.dir) / r.file));
}

void check_log(Checker& c, const json& j, Spec& spec) {
  const std::string ptr = "/log";
  if (!c.object(j, ptr, spec_object("log"))) return;
  if (j.contains("connections"))
    if (auto b = c.boolean(j["connections"], ptr + "/connections")) spec.log_connections = *b;
  if (j.contains("requests"))
    if (auto b = c.boolean(j["requests"], ptr + "/requests")) spec.log_requests = *b;
  if (j.contains("format")) {
    if (auto f = c.one_of(j["format"], ptr + "/format", spec_object("log").key("format").choices)) {
      for (int k = 0; k < 4; ++k)
        if (*f == kLogFormatNames[k]) spec.log_format = static_cast<LogFormat>(k);
      if (!spec.log_requests) c.error(ptr + "/format", "only with \"requests\": true: it is the access log's format");
    }
  }
  if (j.contains("target")) {
    if (auto s = c.string(j["target"], ptr + "/target")) {
      if (*s == "stdout") {
        spec.log_target = LogTarget::stdout_;
      } else if (*s == "stderr") {
        spec.log_target = LogTarget::stderr_;
      } else if (s->empty() || s->find('\0') != std::string::npos || s->size() > 4000) {
        c.error(ptr + "/target", "expected \"stdout\", \"stderr\" or a file path, got " + shown(j["target"]));
      } else {
        spec.log_target = LogTarget::file;
        spec.log_path = *s;
      }
    }
  }
}

void check_limits(Checker& c, const json& j, Limits& l) {
  const std::string ptr = "/limits";
  const ObjectSpec& keys = spec_object("limits");
  if (!c.object(j, ptr, keys)) return;
  auto get = [&](const char* key, auto& field) {
    if (j.contains(key))
      if (auto v = c.integer(j, ptr, keys.key(key))) field = static_cast<std::decay_t<decltype(field)>>(*v);
  };
  get("request_bytes", l.request_bytes);
  get("body_bytes", l.body_bytes);
  get("header_timeout_ms", l.header_timeout_ms);
  get("body_timeout_ms", l.body_timeout_ms);
  get("keepalive_timeout_ms", l.keepalive_timeout_ms);
  get("keepalive_requests", l.keepalive_requests);
  get("max_connections", l.max_connections);
  get("shutdown_timeout_ms", l.shutdown_timeout_ms);
  get("send_timeout_ms", l.send_timeout_ms);
  get("linger_ms", l.linger_ms);
  get("linger_bytes", l.linger_bytes);
}

void check_route_path(Checker& c, const json& j, const std::string& ptr, std::string& path) {
  auto s = c.string(j, ptr);
  if (!s) return;
  if (s->empty() || (*s)[0] != '/') {
    c.error(ptr, "expected a path that starts with \"/\", got " + shown(j));
  } else if (s->find_first_of("?#") != std::string::npos) {
    c.error(ptr, "a route path has no query or fragment (the query is ignored when matching)");
  } else if (s->size() > 1024) {
    c.error(ptr, "a route path has at most 1024 bytes");
  } else if (std::any_of(s->begin(), s->end(), [](unsigned char ch) { return ch <= 0x20 || ch == 0x7f; })) {
    c.error(ptr, "a route path has no spaces or control characters");
  } else {
    path = *s;
  }
}

void check_routes(Checker& c, const json& j, Spec& spec) {
  if (!j.is_array() || j.empty()) {
    c.error("/routes", "expected a non-empty array of routes, got " + shown(j));
    return;
  }
  std::vector<std::pair<std::string, size_t>> seen;  // "GET /x" -> index
  for (size_t i = 0; i < j.size(); ++i) {
    std::string ptr = "/routes/" + std::to_string(i);
    Route route;
    const ObjectSpec& keys = spec_object("route");
    check_response(c, j[i], ptr, spec, route.response, keys);
    if (!j[i].is_object()) continue;
    if (j[i].contains("method")) {
      if (auto m = c.one_of(j[i]["method"], ptr + "/method", keys.key("method").choices)) {
        for (int k = 1; k <= kMethodCount; ++k)
          if (*m == kMethodNames[k]) route.method = static_cast<Method>(k);
      }
    }
    if (!j[i].contains("path")) {
      if (!c.suggested(ptr + "/path")) c.error(ptr, "missing \"path\"");
      continue;
    }
    check_route_path(c, j[i]["path"], ptr + "/path", route.path);
    if (route.path.empty()) continue;
    std::string key = std::string(kMethodNames[static_cast<int>(route.method)]) + " " + route.path;
    auto dup = std::find_if(seen.begin(), seen.end(), [&](const auto& p) { return p.first == key; });
    if (dup != seen.end()) {
      c.error(ptr, fmt::format("duplicate route {}: already /routes/{}", key, dup->second));
      continue;
    }
    seen.emplace_back(key, i);
    spec.routes.push_back(std::move(route));
  }
}

// A static path: a URL prefix, normalised as the server normalises a
// request's path before it matches (no empty, "." or ".." segment).
// `what`: "a static" or "an upload".
void check_prefix_path(Checker& c, const json& j, const std::string& ptr, std::string& path, const char* what) {
  std::string s;
  check_route_path(c, j, ptr, s);
  if (s.empty()) return;
  if (s.back() != '/')
    c.error(ptr, fmt::format("{} path is a prefix: it ends with \"/\", like \"{}/\"", what, s));
  else if (s.find("//") != std::string::npos || s.find("/./") != std::string::npos ||
           s.find("/../") != std::string::npos)
    c.error(ptr, fmt::format("{} path has no empty, \".\" or \"..\" segment (requests are normalised before "
                             "matching)",
                             what));
  else
    path = s;
}

// "cache_control": {"*.html": "no-cache", "assets/**": "public, max-age=31536000, immutable"}
void check_cache_control(Checker& c, const json& j, const std::string& ptr, StaticSite& site) {
  if (!j.is_object()) {
    c.error(ptr, "expected an object of patterns to Cache-Control values, got " + shown(j));
    return;
  }
  for (const auto& [glob, value] : j.items()) {
    std::string p = child(ptr, glob);
    if (glob.empty() || glob[0] == '/') {
      c.error(p, "expected a pattern relative to \"dir\", like \"*.html\" or \"assets/**\"");
      continue;
    }
    auto v = c.string(value, p);
    if (!v || !c.field_text(*v, p, "a header value")) continue;
    if (v->empty()) c.error(p, "expected a Cache-Control value like \"no-cache\", got \"\"");
    site.cache_control.emplace_back(glob, *v);
  }
}

// A directory the server opens at run time ("root" of static and uploads):
// any path but an empty one, or one with a NUL (open(2) could not take it).
// Whether it exists is the server's business, at start: it may be made
// after the build, or be a volume mounted into the container.
void check_root(Checker& c, const std::string& s, const std::string& ptr, std::string& out) {
  if (s.empty())
    c.error(ptr, "expected a directory, got \"\"");
  else if (s.find('\0') != std::string::npos)
    c.error(ptr, "expected a directory, got a name with a NUL byte");
  else
    out = s;
}

// Whether directory `inner` is `outer` or below it, as written: both are
// normalised lexically ("files/", "./files" and "files" are one), a
// relative one is never within an absolute one (the working directory is
// the server's, at run time), and links cannot be seen at build time.
bool root_within(const std::string& inner, const std::string& outer) {
  namespace fs = std::filesystem;
  fs::path in = fs::path(inner).lexically_normal(), out = fs::path(outer).lexically_normal();
  if (in.is_absolute() != out.is_absolute()) return false;
  fs::path rel = (in / "").lexically_relative(out / "");
  return !rel.empty() && *rel.begin() != "..";
}

// "static": [{"path": "/", "dir": "public", ...}]: each directory is walked,
// hashed and compressed now (site.cc); its problems are errors at its keys.
void check_static(Checker& c, const json& j, Spec& spec) {
  if (!j.is_array() || j.empty()) {
    c.error("/static", "expected a non-empty array of sites like {\"dir\": \"public\"}, got " + shown(j));
    return;
  }
  const ObjectSpec& keys = spec_object("static");
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string ptr = "/static/" + std::to_string(i);
    const json& entry = j[i];
    if (!c.object(entry, ptr, keys)) continue;
    StaticSite site;
    if (entry.contains("path")) check_prefix_path(c, entry["path"], ptr + "/path", site.path, "a static");
    for (size_t k = 0; k < spec.sites.size() && entry.contains("path"); ++k)
      if (spec.sites[k].path == site.path)
        c.error(ptr + "/path", fmt::format("duplicate static path {}: already /static/{}", json_quote(site.path), k));
    if (entry.contains("index")) {
      if (auto s = c.string(entry["index"], ptr + "/index")) {
        if (s->empty() || s->find('/') != std::string::npos || *s == "." || *s == "..")
          c.error(ptr + "/index", "expected a file name without \"/\", like \"index.html\", got " + json_quote(*s));
        else
          site.index = *s;
      }
    }
    if (entry.contains("fallback"))
      if (auto s = c.string(entry["fallback"], ptr + "/fallback")) site.fallback = *s;
    if (entry.contains("compress"))
      if (auto b = c.boolean(entry["compress"], ptr + "/compress")) site.compress = *b;
    if (entry.contains("hidden"))
      if (auto b = c.boolean(entry["hidden"], ptr + "/hidden")) site.hidden = *b;
    if (entry.contains("cache_control")) check_cache_control(c, entry["cache_control"], ptr + "/cache_control", site);
    if (entry.contains("root")) {
      if (entry.contains("dir"))
        c.error(ptr + "/root", "give \"dir\" (embedded at build time) or \"root\" (read at run time), not both");
      else if (auto s = c.string(entry["root"], ptr + "/root"))
        check_root(c, *s, ptr + "/root", site.root);
      for (const char* k : {"fallback", "compress", "cache_control"})
        if (entry.contains(k))
          c.error(ptr + "/" + k, "only with \"dir\": a \"root\" is read at run time, file by file");
    } else if (!entry.contains("dir")) {
      if (!c.suggested(ptr + "/dir") && !c.suggested(ptr + "/root")) c.error(ptr, "missing \"dir\" or \"root\"");
    } else if (auto s = c.string(entry["dir"], ptr + "/dir")) {
      site.dir = *s;
      if (s->empty())
        c.error(ptr + "/dir", "expected a directory, got \"\"");
      else
        for (const SiteProblem& p : load_site(site, spec.dir)) c.error(ptr + "/" + p.key, p.message);
    }
    spec.sites.push_back(std::move(site));
  }
}

// "uploads": [{"path": "/incoming/", "root": "/srv/incoming", "methods": ["PUT"], ...}]
void check_uploads(Checker& c, const json& j, Spec& spec) {
  if (!j.is_array() || j.empty()) {
    c.error("/uploads",
            "expected a non-empty array of uploads like {\"path\": \"/incoming/\", \"root\": \"incoming\"}, got " +
                shown(j));
    return;
  }
  const ObjectSpec& keys = spec_object("upload");
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string ptr = "/uploads/" + std::to_string(i);
    const json& entry = j[i];
    if (!c.object(entry, ptr, keys)) continue;
    Upload up;
    if (entry.contains("path")) check_prefix_path(c, entry["path"], ptr + "/path", up.path, "an upload");
    for (size_t k = 0; k < spec.uploads.size(); ++k)
      if (spec.uploads[k].path == up.path)
        c.error(ptr + "/path", fmt::format("duplicate upload path {}: already /uploads/{}", json_quote(up.path), k));
    if (!entry.contains("root")) {
      if (!c.suggested(ptr + "/root")) c.error(ptr, "missing \"root\"");
    } else if (auto s = c.string(entry["root"], ptr + "/root")) {
      check_root(c, *s, ptr + "/root", up.root);
      // The body is written to ".upload-PID-N" in the root before its
      // rename: a site serving hidden names there would serve it partial.
      for (size_t k = 0; k < spec.sites.size() && !up.root.empty(); ++k)
        if (spec.sites[k].hidden && !spec.sites[k].root.empty() && root_within(up.root, spec.sites[k].root))
          c.error(ptr + "/root",
                  fmt::format("{} is served by /static/{} with \"hidden\": true, which would serve a body "
                              "being stored (\".upload-PID-N\") before it is whole",
                              json_quote(up.root), k));
    }
    if (entry.contains("methods")) {
      const json& m = entry["methods"];
      const std::string mptr = ptr + "/methods";
      if (!m.is_array() || m.empty()) {
        c.error(mptr, "expected a non-empty array of \"PUT\" and \"POST\", got " + shown(m));
      } else {
        up.put = up.post = false;
        for (size_t k = 0; k < m.size(); ++k) {
          auto name = c.one_of(m[k], mptr + "/" + std::to_string(k), keys.key("methods").choices);
          if (!name) continue;
          bool& on = *name == "PUT" ? up.put : up.post;
          if (on) c.error(mptr + "/" + std::to_string(k), fmt::format("duplicate method \"{}\"", *name));
          on = true;
        }
      }
    }
    if (entry.contains("overwrite"))
      if (auto b = c.boolean(entry["overwrite"], ptr + "/overwrite")) up.overwrite = *b;
    if (entry.contains("fsync"))
      if (auto b = c.boolean(entry["fsync"], ptr + "/fsync")) up.fsync = *b;
    if (entry.contains("max_bytes"))
      if (auto v = c.integer(entry, ptr, keys.key("max_bytes"))) up.max_bytes = *v;
    if (entry.contains("mode")) {
      auto s = entry["mode"].is_string() ? entry["mode"].get<std::string>() : "";
      bool octal = (s.size() == 3 || (s.size() == 4 && s[0] == '0')) &&
                   std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '7'; });
      if (octal)
        up.mode = std::stoi(s, nullptr, 8);
      else
        c.error(ptr + "/mode",
                "expected permissions in octal from \"0000\" to \"0777\", like \"0644\", got " + shown(entry["mode"]));
    }
    spec.uploads.push_back(std::move(up));
  }
}

// "cors": {"allow_origin": "*", "allow_headers": "*", "max_age_s": 600}
void check_cors(Checker& c, const json& j, Spec& spec, bool routes) {
  const std::string ptr = "/cors";
  if (!routes) {
    c.error(ptr, "only with \"routes\": OPTIONS is answered per path");
    return;
  }
  const ObjectSpec& keys = spec_object("cors");
  if (!c.object(j, ptr, keys)) return;
  Cors cors;
  for (auto [key, field] : {std::pair{"allow_origin", &cors.allow_origin},
                            std::pair{"allow_headers", &cors.allow_headers}}) {
    if (!j.contains(key)) continue;
    std::string p = ptr + "/" + key;
    if (auto s = c.string(j[key], p); s && c.field_text(*s, p, "a header value")) {
      if (s->empty()) c.error(p, "expected a header value, got \"\"");
      *field = *s;
    }
  }
  if (j.contains("max_age_s"))
    if (auto v = c.integer(j, ptr, keys.key("max_age_s"))) cors.max_age_s = static_cast<int>(*v);
  // Every response says who may read it, unless "headers" already does.
  bool own = std::any_of(spec.headers.begin(), spec.headers.end(),
                         [](const auto& h) { return same_name(h.first, "Access-Control-Allow-Origin"); });
  if (!own) spec.headers.emplace_back("Access-Control-Allow-Origin", cors.allow_origin);
  spec.cors = cors;
}

void check_name(Checker& c, const json& j, Spec& spec) {
  auto s = c.string(j, "/name");
  if (!s) return;
  bool ok = !s->empty() && s->size() <= 64 &&
            std::all_of(s->begin(), s->end(), [](unsigned char ch) {
              return std::isalnum(ch) || ch == '.' || ch == '_' || ch == '-';
            });
  if (ok)
    spec.name = *s;
  else
    c.error("/name", "expected 1 to 64 characters from A-Z a-z 0-9 . _ -, got " + json_quote(*s));
}

// "FILE:LINE:COL" for the byte at offset `at` (0-based) of text.
std::string position(const std::string& file, const std::string& text, size_t at) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < std::min(at, text.size()); ++i) {
    if (text[i] == '\n') ++line, col = 1;
    else ++col;
  }
  return fmt::format("{}:{}:{}", file, line, col);
}

// "FILE:LINE:COL: message" for a JSON syntax error at byte offset `byte` (1-based).
std::string syntax_error(const std::string& file, const std::string& text,
                         const json::parse_error& e) {
  std::string msg = e.what();
  if (size_t p = msg.find(": "); p != std::string::npos && msg.find("parse error") < p) msg = msg.substr(p + 2);
  return fmt::format("{}: {}", position(file, text, e.byte == 0 ? 0 : e.byte - 1), msg);
}

// nlohmann reports a number too large for a double without a position:
// "FILE:LINE:COL: number out of range: 1e999", found by reading the text.
std::string overflow_error(const std::string& file, const std::string& text) {
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      while (j < text.size() && std::strchr("+-.eE0123456789", text[j]) && text[j] != '\0') ++j;
      std::string token = text.substr(i, j - i);
      errno = 0;
      double v = std::strtod(token.c_str(), nullptr);
      if (errno == ERANGE && std::isinf(v))
        return fmt::format("{}: number out of range: {}", position(file, text, i),
                           token.size() > 40 ? token.substr(0, 37) + "..." : token);
      i = j - 1;
    }
  }
  return file + ": a number is out of range";
}

// Duplicate keys, which JSON parsers resolve silently (here the last would
// win): each is an error at its pointer. Fed by the parser's callback.
class DuplicateKeys {
 public:
  explicit DuplicateKeys(Checker& c) : c_(c) {}
  bool operator()(int, json::parse_event_t event, json& parsed) {
    using E = json::parse_event_t;
    switch (event) {
      case E::object_start: stack_.emplace_back(); break;
      case E::array_start:
        stack_.emplace_back();
        stack_.back().array = true;
        break;
      case E::key: {
        Frame& top = stack_.back();
        top.key = parsed.get<std::string>();
        if (!top.keys.insert(top.key).second)
          c_.error(pointer(), "duplicate key: JSON objects need unique keys (this one would win)");
        break;
      }
      case E::value: next(); break;
      case E::object_end:
      case E::array_end:
        stack_.pop_back();
        next();
        break;
    }
    return true;
  }

 private:
  struct Frame {
    bool array = false;
    size_t index = 0;
    std::string key;
    std::set<std::string> keys;
  };
  void next() {
    if (!stack_.empty() && stack_.back().array) ++stack_.back().index;
  }
  std::string pointer() const {
    std::string p;
    for (const Frame& f : stack_) p = f.array ? p + "/" + std::to_string(f.index) : child(p, f.key);
    return p;
  }
  Checker& c_;
  std::vector<Frame> stack_;
};

// An error line is one line: a spec's CR, LF or NUL in a key or a value
// is shown escaped, as JSON writes it.
std::vector<std::string> one_line_each(std::vector<std::string> lines) {
  for (std::string& l : lines) l = escape_controls(l);
  return lines;
}

}  // namespace

SpecError::SpecError(std::vector<std::string> lines)
    : std::runtime_error(join_lines(one_line_each(lines))), lines_(one_line_each(std::move(lines))) {}

std::string address_text(const Spec& spec) { return spec.ipv6 ? "[" + spec.address + "]" : spec.address; }

std::string listen_text(const Spec& spec) { return fmt::format("{}:{}", address_text(spec), spec.port); }

Spec parse_spec(const std::string& text, const std::string& path) {
  Checker c(path);
  json root;
  try {
    root = json::parse(text, DuplicateKeys(c));  // a UTF-8 BOM is skipped
  } catch (const json::parse_error& e) {
    throw SpecError({syntax_error(path, text, e)});
  } catch (const json::out_of_range&) {
    throw SpecError({overflow_error(path, text)});
  }
  Spec spec;
  spec.file = path;
  std::string dir = std::filesystem::path(path).parent_path().string();
  spec.dir = dir.empty() ? "." : dir;

  const ObjectSpec& keys = spec_object("");
  if (c.object(root, "", keys)) {
    if (root.contains("$schema")) c.string(root["$schema"], "/$schema");  // for editors only
    if (root.contains("name")) check_name(c, root["name"], spec);
    if (root.contains("listen")) check_listen(c, root["listen"], spec);
    if (root.contains("mode")) {
      if (auto m = c.one_of(root["mode"], "/mode", keys.key("mode").choices))
        for (int k = 0; k < 3; ++k)
          if (*m == kModeNames[k]) spec.mode = static_cast<Mode>(k);
    }
    if (root.contains("workers"))
      if (auto v = c.integer(root, "", keys.key("workers"))) spec.workers = static_cast<int>(*v);
    // The alternatives given, each by its first key ("routes" and "static" are one).
    std::vector<std::string> given;
    for (const auto& alternative : keys.exactly_one) {
      auto k = std::find_if(alternative.begin(), alternative.end(),
                            [&](std::string_view k) { return root.contains(std::string(k)); });
      if (k != alternative.end()) given.emplace_back(*k);
    }
    if (given.size() > 1 && given[1] == "uploads") {
      c.error("/uploads",
              fmt::format("\"uploads\" goes alone or with \"routes\" and \"static\", not with \"{}\"", given[0]));
    } else if (given.size() > 1 && given[1] == "static") {
      c.error("/static", fmt::format("\"static\" goes alone or with \"routes\", not with \"{}\"", given[0]));
    } else if (given.size() > 1) {
      c.error("/" + given[1], fmt::format("give exactly one of \"raw_response\", \"response\" or "
                                          "\"routes\", not both \"{}\" and \"{}\"", given[0], given[1]));
    } else if (given.empty()) {
      if (!c.suggested("/raw_response") && !c.suggested("/response") && !c.suggested("/routes") &&
          !c.suggested("/static") && !c.suggested("/uploads"))
        c.error("", "missing the response: give \"response\", \"routes\", \"static\" or \"raw_response\"");
    } else if (given[0] == "raw_response") {
      if (auto s = c.string(root["raw_response"], "/raw_response")) {
        if (s->empty()) c.error("/raw_response", "expected at least one byte, got \"\"");
        check_body_size(c, s->size(), "/raw_response");
        spec.raw_response = *s;
      }
      for (const char* k : {"not_found", "headers"})
        if (root.contains(k)) c.error(std::string("/") + k, "only with \"response\" or \"routes\": a raw response is not HTTP");
      if (root.contains("log") && root["log"].is_object() && root["log"].contains("requests"))
        c.error("/log/requests", "only with \"response\" or \"routes\": a raw response is not HTTP");
    } else if (given[0] == "response") {
      HttpResponse r;
      check_response(c, root["response"], "/response", spec, r);
      spec.response = r;
      if (root.contains("not_found")) c.error("/not_found", "only with \"routes\": \"response\" answers every path");
    } else {
      if (root.contains("routes")) check_routes(c, root["routes"], spec);
      if (root.contains("static")) check_static(c, root["static"], spec);
      if (root.contains("uploads")) check_uploads(c, root["uploads"], spec);
    }
    spec.not_found.status = 404;
    spec.not_found.reason = "Not Found";
    spec.not_found.content_type = "text/plain";
    spec.not_found.body = "Not Found\n";
    if (root.contains("not_found") && spec.raw_response == std::nullopt && !spec.response) {
      HttpResponse nf;
      nf.status = 404;
      check_response(c, root["not_found"], "/not_found", spec, nf);
      spec.not_found = nf;
    }
    if (root.contains("headers") && !spec.raw_response) check_headers(c, root["headers"], "/headers", spec.headers);
    if (root.contains("cors")) check_cors(c, root["cors"], spec, root.contains("routes"));
    if (root.contains("limits")) check_limits(c, root["limits"], spec.limits);
    // epoll keeps a request buffer per connection slot in .bss.
    uint64_t table = static_cast<uint64_t>(spec.limits.max_connections) *
                     static_cast<uint64_t>(conn_buffer_bytes(spec.limits.request_bytes, spec.files_at_run_time()) + kConnRecordBytes);
    if (spec.mode == Mode::epoll && table > (uint64_t{1} << 30))
      c.error("/limits/max_connections",
              fmt::format("{} connections with {}-byte buffers need {} MiB of memory; the limit is "
                          "1024 MiB: lower max_connections or request_bytes",
                          spec.limits.max_connections, spec.limits.request_bytes, table >> 20));
    if (root.contains("log")) check_log(c, root["log"], spec);
    if (root.contains("probe")) {
      if (spec.raw_response)
        c.error("/probe", "only with \"response\" or \"routes\": the probe reads an HTTP status");
      else
        check_probe(c, root["probe"], spec);
    }
  }
  if (!c.errors().empty()) throw SpecError(c.errors());
  return spec;
}

Spec load_spec(const std::string& path) {
  if (path == "-") {
    if (::isatty(0)) fmt::print(stderr, "asmsrv: reading the spec from standard input (Ctrl-D ends it)\n");
    return parse_spec(read_stdin(), "<stdin>");
  }
  return parse_spec(read_file(path), path);
}

}  // namespace asmsrv
