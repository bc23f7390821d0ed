#include "spec_keys.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace asmsrv {

namespace {

constexpr int64_t kHour = 3'600'000;  // ms
constexpr int64_t kTiB = int64_t{1} << 40;

// One row each; the argument order reads like the README's table.
KeySpec str(std::string_view name, std::string_view description, std::string_view pattern = {}) {
  return {name, KeyType::string, description, 0, 0, {}, {}, false, pattern};
}
KeySpec num(std::string_view name, int64_t min, int64_t max, std::string_view description) {
  return {name, KeyType::integer, description, min, max};
}
KeySpec flag(std::string_view name, std::string_view description) { return {name, KeyType::boolean, description}; }
KeySpec choice(std::string_view name, std::vector<std::string_view> choices, std::string_view description) {
  return {name, KeyType::choice, description, 0, 0, std::move(choices)};
}
KeySpec choices(std::string_view name, std::vector<std::string_view> choices, std::string_view description) {
  return {name, KeyType::choices, description, 0, 0, std::move(choices)};
}
KeySpec obj(std::string_view name, std::string_view object, std::string_view description) {
  return {name, KeyType::object, description, 0, 0, {}, object};
}
KeySpec list(std::string_view name, std::string_view object, std::string_view description) {
  return {name, KeyType::array, description, 0, 0, {}, object};
}
KeySpec headers(std::string_view name, std::string_view description) { return {name, KeyType::headers, description}; }
KeySpec text_map(std::string_view name, std::string_view description) { return {name, KeyType::text_map, description}; }

std::vector<ObjectSpec> make_objects() {
  return {
      {.name = "",
       .description = "An asmsrv server spec: one HTTP response for every request, routes by exact path "
                      "and/or static sites, or raw TCP with raw_response (exactly one of the three).",
       .keys = {
           str("name", "1 to 64 characters from A-Z a-z 0-9 . _ -: names the listing and the server",
               "^[A-Za-z0-9._-]{1,64}$"),
           obj("listen", "listen", "Where the server listens"),
           choice("mode", {"epoll", "iterative", "fork"},
                  "epoll: an event loop; iterative: one connection at a time; fork: a child per connection"),
           num("workers", 1, 64, "Server processes; more than 1 adds a supervisor"),
           str("raw_response", "Raw TCP: written verbatim to each connection, which is then closed (at most 16 MiB)"),
           obj("response", "response", "One HTTP response for every path and method"),
           list("routes", "route", "Routes by exact path and method"),
           list("static", "static", "Directories embedded at build time, served under URL prefixes (alone or with routes)"),
           list("uploads", "upload",
                "Directories that PUT and POST store request bodies in, under URL prefixes (alone or with routes, static)"),
           obj("not_found", "response",
               "With routes or static: the answer for unknown paths (status defaults to 404)"),
           headers("headers", "Headers added to every HTTP response"),
           obj("limits", "limits", "Bounds on every request and connection"),
           obj("log", "log", "Connection and access logs"),
           obj("cors", "cors", "Routes only: cross-origin requests and preflights"),
           obj("probe", "probe", "server --probe: a health check the server binary runs against itself"),
           {"$schema", KeyType::annotation, "The JSON Schema this spec follows, for editors; asmsrv ignores it"},
       },
       .exactly_one = {{"raw_response"}, {"response"}, {"routes", "static", "uploads"}}},
      {.name = "listen",
       .description = "Where the server listens.",
       .keys = {
           str("address", "An IPv4 dotted quad or an IPv6 literal without brackets (\"::\" is dual-stack)"),
           num("port", 1, 65535, "The TCP port; --port and the variable port_env names override it"),
           {"port_env", KeyType::string,
            "An environment variable whose value, when set, is the port; null or \"\": off", 0, 0, {}, {}, true,
            "^([A-Za-z_][A-Za-z0-9_]{0,63})?$"},
           num("backlog", 1, 65535, "The listen() backlog (the kernel caps it at somaxconn)"),
           num("defer_accept_s", 0, 60,
               "TCP_DEFER_ACCEPT: accept() once the first bytes come, or after this many seconds; 0: off"),
       }},
      {.name = "response",
       .description = "A complete HTTP response, fixed at compile time.",
       .keys = {
           num("status", 200, 599, "The status code (1xx is informational, never a final response)"),
           str("reason", "The reason phrase; default: the standard one"),
           str("content_type", "The Content-Type; default text/plain, or from the file's extension"),
           headers("headers", "Extra headers, in the order given"),
           str("body", "The body (at most 16 MiB); default \"<status> <reason>\\n\""),
           str("file", "Instead of body: a file relative to the spec's directory, embedded in the binary"),
       },
       .at_most_one = {"body", "file"}},
      {.name = "route",
       .description = "A response for one method on one exact path.",
       .keys = {
           choice("method", {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"},
                  "The method (a GET route also answers HEAD)"),
           str("path", "Starts with /; no query, fragment, space or control character; matched exactly",
               "^/[^?#]*$"),
       },
       .base = "response",
       .required = {"path"}},
      {.name = "static",
       .description = "A directory served under a URL prefix: embedded at build time (dir) or read at run time (root).",
       .keys = {
           str("path", "The URL prefix: starts and ends with /; default \"/\"", "^/([^?#]*/)?$"),
           str("dir", "A directory relative to the spec's directory: every regular file below it is embedded"),
           str("root",
               "A directory read at run time, absolute or relative to the server's working directory; opened at start"),
           str("index", "The file that answers for its directory's URL; default \"index.html\"", "^[^/]+$"),
           str("fallback", "A file of dir that answers paths that match nothing (a single-page app's index.html)"),
           flag("compress", "Brotli and gzip variants of compressible files, made at build time; default true"),
           flag("hidden", "Also serve names that start with \".\"; default false"),
           text_map("cache_control",
                    "Glob relative to dir (* and ? within a segment, ** across) -> Cache-Control; the first match wins"),
       },
       .exactly_one = {{"dir"}, {"root"}}},
      {.name = "upload",
       .description = "A directory that PUT and POST store request bodies in, under a URL prefix, at run time.",
       .keys = {
           str("path", "The URL prefix: starts and ends with /; default \"/\"", "^/([^?#]*/)?$"),
           str("root",
               "The directory, absolute or relative to the server's working directory; opened at start"),
           choices("methods", {"PUT", "POST"},
                   "PUT stores under the name the path gives, POST under a new name; default both"),
           flag("overwrite", "PUT replaces an existing file; default false (409 Conflict)"),
           num("max_bytes", 0, kTiB, "The largest body stored (chunked: data, extensions and trailers); more is 413"),
           str("mode", "The new files' permissions, in octal, before the umask; default \"0644\"",
               "^0?[0-7]{3}$"),
           flag("fsync", "fsync(2) each file before it is renamed into place; default false"),
       },
       .required = {"root"}},
      {.name = "limits",
       .description = "Bounds on every request and connection.",
       .keys = {
           num("request_bytes", 256, 1 << 20,
               "The request line and header section together; also the read buffer's size"),
           num("body_bytes", 0, kTiB, "The largest request body (read and discarded; chunked: data, extensions and trailers); more is 413"),
           num("header_timeout_ms", 1, kHour, "A deadline for the whole request head, from its first byte"),
           num("body_timeout_ms", 1, kHour,
               "A deadline for the whole request body being read and dropped, from the response's end"),
           num("keepalive_timeout_ms", 0, kHour, "How long an idle keep-alive connection waits; 0: no keep-alive"),
           num("keepalive_requests", 1, 1'000'000'000, "Requests per connection"),
           num("max_connections", 1, 65536, "epoll: the size of each worker's connection table"),
           num("shutdown_timeout_ms", 0, kHour, "How long a graceful stop may take"),
           num("send_timeout_ms", 1, kHour, "How long a client may take none of a response"),
           num("linger_ms", 0, kHour,
               "Lingering close: how long to read and drop what a client still sends; 0: close at once"),
           num("linger_bytes", 1, kTiB, "How much a lingering connection reads and drops at most"),
       }},
      {.name = "log",
       .description = "Connection and access logs.",
       .keys = {
           flag("connections", "One line per connection when it closes"),
           flag("requests", "One access-log line per request"),
           choice("format", {"asmsrv", "common", "combined", "json"},
                  "The access log's lines (with requests): asmsrv (the default), NCSA common or combined, or json"),
           str("target", "\"stdout\", \"stderr\", or a file path, opened with O_APPEND"),
       }},
      {.name = "cors",
       .description = "Cross-origin requests (routes only).",
       .keys = {
           str("allow_origin", "Access-Control-Allow-Origin on every response"),
           str("allow_headers", "Access-Control-Allow-Headers in the answer to a preflight"),
           num("max_age_s", 0, 86400, "Access-Control-Max-Age in the answer to a preflight"),
       }},
      {.name = "probe",
       .description = "server --probe: a health check the server binary runs against itself.",
       .keys = {
           str("path", "The path to GET over loopback (a query is allowed)", "^/"),
           num("timeout_ms", 1, 600000, "The whole probe: connect, send, the status line"),
       }},
  };
}

}  // namespace

const KeySpec& ObjectSpec::key(std::string_view name) const {
  for (const KeySpec* k : all_keys())
    if (k->name == name) return *k;
  throw std::logic_error("spec_keys: no key \"" + std::string(name) + "\" in object \"" +
                         std::string(this->name) + "\"");
}

std::vector<const KeySpec*> ObjectSpec::all_keys() const {
  std::vector<const KeySpec*> out;
  for (const KeySpec& k : keys) out.push_back(&k);
  if (!base.empty())
    for (const KeySpec* k : spec_object(base).all_keys()) out.push_back(k);
  return out;
}

std::vector<std::string_view> ObjectSpec::listed() const {
  std::vector<std::string_view> out;
  for (const KeySpec* k : all_keys())
    if (k->type != KeyType::annotation) out.push_back(k->name);
  return out;
}

bool ObjectSpec::accepts(std::string_view name) const {
  auto all = all_keys();
  return std::any_of(all.begin(), all.end(), [&](const KeySpec* k) { return k->name == name; });
}

bool ObjectSpec::alternative(std::string_view name) const {
  return std::any_of(exactly_one.begin(), exactly_one.end(), [&](const auto& keys) {
    return std::find(keys.begin(), keys.end(), name) != keys.end();
  });
}

const std::vector<ObjectSpec>& spec_objects() {
  static const std::vector<ObjectSpec> objects = make_objects();
  return objects;
}

const ObjectSpec& spec_object(std::string_view name) {
  for (const ObjectSpec& o : spec_objects())
    if (o.name == name) return o;
  throw std::logic_error("spec_keys: no object \"" + std::string(name) + "\"");
}

}  // namespace asmsrv
