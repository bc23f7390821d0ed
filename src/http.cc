#include "http.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <sstream>
#include <utility>

#include "templates.h"

namespace asmsrv {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

constexpr std::pair<int, std::string_view> kReasons[] = {
    {100, "Continue"}, {101, "Switching Protocols"}, {102, "Processing"}, {103, "Early Hints"},
    {200, "OK"}, {201, "Created"}, {202, "Accepted"}, {203, "Non-Authoritative Information"},
    {204, "No Content"}, {205, "Reset Content"}, {206, "Partial Content"},
    {207, "Multi-Status"}, {208, "Already Reported"}, {226, "IM Used"},
    {300, "Multiple Choices"}, {301, "Moved Permanently"}, {302, "Found"}, {303, "See Other"},
    {304, "Not Modified"}, {305, "Use Proxy"}, {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"}, {401, "Unauthorized"}, {402, "Payment Required"}, {403, "Forbidden"},
    {404, "Not Found"}, {405, "Method Not Allowed"}, {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"}, {408, "Request Timeout"}, {409, "Conflict"},
    {410, "Gone"}, {411, "Length Required"}, {412, "Precondition Failed"},
    {413, "Content Too Large"}, {414, "URI Too Long"}, {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"}, {417, "Expectation Failed"}, {418, "I'm a teapot"},
    {421, "Misdirected Request"}, {422, "Unprocessable Content"}, {423, "Locked"},
    {424, "Failed Dependency"}, {425, "Too Early"}, {426, "Upgrade Required"},
    {428, "Precondition Required"}, {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"}, {451, "Unavailable For Legal Reasons"},
    {500, "Internal Server Error"}, {501, "Not Implemented"}, {502, "Bad Gateway"},
    {503, "Service Unavailable"}, {504, "Gateway Timeout"}, {505, "HTTP Version Not Supported"},
    {506, "Variant Also Negotiates"}, {507, "Insufficient Storage"}, {508, "Loop Detected"},
    {510, "Not Extended"}, {511, "Network Authentication Required"},
};

// templates/mime.types, read once: lower-case extension -> Content-Type,
// text/* with "; charset=utf-8" (the rule the file states).
std::map<std::string, std::string, std::less<>> parse_mime_types(const std::string& text) {
  std::map<std::string, std::string, std::less<>> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string type, ext;
    if (!(words >> type)) continue;
    if (type.starts_with("text/")) type += "; charset=utf-8";
    while (words >> ext) out.emplace(lower(ext), type);  // the first line naming an extension wins
  }
  return out;
}

}  // namespace

std::string_view standard_reason(int status) {
  for (const auto& [code, text] : kReasons)
    if (code == status) return text;
  return "";
}

const std::map<std::string, std::string, std::less<>>& media_types() {
  static const auto types = parse_mime_types(load_template("mime.types"));
  return types;
}

std::string_view media_type_for(std::string_view filename) {
  const auto& types = media_types();
  size_t slash = filename.rfind('/');
  std::string_view base = slash == std::string_view::npos ? filename : filename.substr(slash + 1);
  size_t dot = base.rfind('.');
  if (dot != std::string_view::npos) {
    if (auto it = types.find(lower(base.substr(dot + 1))); it != types.end()) return it->second;
  }
  return "application/octet-stream";
}

bool is_token(std::string_view s) {
  static constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || kExtra.find(static_cast<char>(c)) != std::string_view::npos;
  });
}

bool status_has_no_body(int status) {
  return status < 200 || status == 204 || status == 304;
}

bool same_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string percent_encode_path(std::string_view path) {
  static constexpr std::string_view kKeep = "-._~!$&'()*+,;=:@/";
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) || kKeep.find(static_cast<char>(c)) != std::string_view::npos)
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

std::optional<std::string> normalise_path(std::string_view path) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    c = static_cast<char>(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  std::string out = "/";
  size_t i = path.empty() ? 0 : 1;  // past the leading '/'
  while (true) {
    size_t start = out.size();
    bool slash = false;
    while (i < path.size()) {
      char c = path[i++];
      if (c == '/') {
        slash = true;
        break;
      }
      if (c == '%') {
        if (i + 2 > path.size() || hex(path[i]) < 0 || hex(path[i + 1]) < 0) return std::nullopt;
        c = static_cast<char>(hex(path[i]) * 16 + hex(path[i + 1]));
        i += 2;
        if (c == '\0' || c == '/') return std::nullopt;
      }
      out += c;
    }
    std::string_view seg = std::string_view(out).substr(start);
    if (seg == ".") {
      out.resize(start);
    } else if (seg == "..") {
      if (start == 1) return std::nullopt;
      out.resize(out.rfind('/', start - 2) + 1);
    } else if (!seg.empty() && slash) {
      out += '/';
    }
    if (!slash) return out;
  }
}

std::string_view connection_line(ConnHeader conn) {
  switch (conn) {
    case ConnHeader::close: return "Connection: close\r\n";
    case ConnHeader::keep_alive: return "";
    case ConnHeader::keep_alive_10: return "Connection: keep-alive\r\n";
  }
  return "";
}

bool is_entity(const HttpResponse& r) { return r.status == 200 && r.body_size() > 0; }

std::string shared_fields(const HttpResponse& r, const Headers& global) {
  std::string out;
  for (const auto& [name, value] : r.headers) out += fmt::format("{}: {}\r\n", name, value);
  for (const auto& [name, value] : global) {
    bool own = std::any_of(r.headers.begin(), r.headers.end(),
                           [&](const auto& h) { return same_name(h.first, name); });
    if (!own) out += fmt::format("{}: {}\r\n", name, value);
  }
  return out;
}

EntityFields entity_fields(const std::string& shared, const std::string& etag, const std::string& cache_control,
                           bool vary, std::string_view content_type, std::string_view coding, uint64_t size) {
  EntityFields f;
  f.text = shared;
  f.len_shared = f.text.size();
  f.text += fmt::format("ETag: {}\r\n", etag);
  if (!cache_control.empty()) f.text += fmt::format("Cache-Control: {}\r\n", cache_control);
  if (vary) f.text += "Vary: Accept-Encoding\r\n";
  f.len_304 = f.text.size();
  f.text += fmt::format("Content-Type: {}\r\n", content_type);
  if (!coding.empty()) f.text += fmt::format("Content-Encoding: {}\r\n", coding);
  f.text += "Accept-Ranges: bytes\r\n";
  f.len_ranged = f.text.size();
  f.text += fmt::format("Content-Length: {}\r\n", size);
  return f;
}

std::string fixed_head(const HttpResponse& r, const Headers& global) {
  std::string out = fmt::format("HTTP/1.1 {} {}\r\n", r.status, r.reason);
  if (!status_has_no_body(r.status)) {
    out += fmt::format("Content-Type: {}\r\n", r.content_type);
    out += fmt::format("Content-Length: {}\r\n", r.body_size());
  }
  return out + shared_fields(r, global);
}

std::string response_head(const HttpResponse& r, ConnHeader conn, const Headers& global) {
  std::string head;
  if (is_entity(r))
    head = fmt::format("HTTP/1.1 {} {}\r\n", r.status, r.reason) +
           entity_fields(shared_fields(r, global), r.etag, "", false, r.content_type, "", r.body_size()).text;
  else
    head = fixed_head(r, global);
  return head + std::string(connection_line(conn)) + "\r\n";
}

}  // namespace asmsrv
