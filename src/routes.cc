#include "routes.h"

#include <fmt/format.h>

#include <map>

#include "templates.h"

namespace asmsrv {

namespace {

class TableBuilder {
 public:
  explicit TableBuilder(const Spec& spec) : spec_(spec) {}

  int add(const std::string& what, const HttpResponse& r, bool always_close) {
    CompiledResponse c;
    c.what = what;
    c.status = r.status;
    c.always_close = always_close;
    if (is_entity(r)) {
      c.kind = ResponseKind::entity;
      c.head = fmt::format("HTTP/1.1 {} {}\r\n", r.status, r.reason);
      EntityFields f =
          entity_fields(shared_fields(r, spec_.headers), r.etag, "", false, r.content_type, "", r.body_size());
      CompiledRep rep;
      rep.fields = f.text;
      rep.len_shared = f.len_shared;
      rep.len_304 = f.len_304;
      rep.len_ranged = f.len_ranged;
      rep.etag = r.etag;
      rep.body = r.body;
      rep.file = r.file;
      rep.size = r.body_size();
      c.reps.push_back(std::move(rep));
    } else {
      c.head = fixed_head(r, spec_.headers);
      if (r.file.empty())
        c.body = r.body;
      else
        c.file = r.file;
      c.body_size = status_has_no_body(r.status) ? 0 : r.body_size();
    }
    table_.responses.push_back(std::move(c));
    return static_cast<int>(table_.responses.size()) - 1;
  }

  // A response asmsrv makes itself: "<status> <reason>\n" as text/plain.
  int error(int status, const std::string& why, bool always_close, Headers extra = {}) {
    HttpResponse r;
    r.status = status;
    r.reason = std::string(standard_reason(status));
    r.content_type = "text/plain";
    r.headers = std::move(extra);
    r.body = render(load_template("error_body.txt"),
                    {{"status", std::to_string(status)}, {"reason", r.reason}});
    return add(fmt::format("{} {}", status, why), r, always_close);
  }

  ResponseTable build() {
    if (spec_.response) {
      table_.catch_all = add("every request", *spec_.response, false);
    } else {
      for (const Route& route : spec_.routes) {
        PathRoutes* p = find_path(route.path);
        if (!p) {
          table_.paths.push_back(PathRoutes{route.path, {}, -1});
          p = &table_.paths.back();
          p->by_method.fill(-1);
        }
        p->by_method[static_cast<int>(route.method)] =
            add(fmt::format("{} {}", kMethodNames[static_cast<int>(route.method)], route.path),
                route.response, false);
      }
      // Paths with the same methods share their 204 and 405 responses.
      std::map<std::string, int> options_for, not_allowed_for;
      for (PathRoutes& p : table_.paths) {
        // A GET route also answers HEAD, with the same head and no body.
        int get = p.by_method[static_cast<int>(Method::GET)];
        int& head = p.by_method[static_cast<int>(Method::HEAD)];
        if (head < 0 && get >= 0) head = get;
        // OPTIONS is answered on every known path (RFC 9110 9.3.7): 204 with
        // Allow, unless a route defines it.
        int& options = p.by_method[static_cast<int>(Method::OPTIONS)];
        std::string allow;
        bool missing = false;
        for (int m = 1; m <= kMethodCount; ++m) {
          if (p.by_method[m] >= 0 || m == static_cast<int>(Method::OPTIONS))
            allow += (allow.empty() ? "" : ", ") + std::string(kMethodNames[m]);
          else
            missing = true;
        }
        if (options < 0) {
          auto [it, fresh] = options_for.try_emplace(allow, -1);
          if (fresh) {
            HttpResponse r;
            r.status = 204;
            r.reason = std::string(standard_reason(204));
            r.headers = {{"Allow", allow}};
            if (spec_.cors) {  // a browser's preflight asks with OPTIONS
              r.headers.emplace_back("Access-Control-Allow-Methods", allow);
              r.headers.emplace_back("Access-Control-Allow-Headers", spec_.cors->allow_headers);
              r.headers.emplace_back("Access-Control-Max-Age", std::to_string(spec_.cors->max_age_s));
            }
            it->second = add("OPTIONS (Allow: " + allow + ")", r, false);
          }
          options = it->second;
        }
        if (missing) {
          auto [it, fresh] = not_allowed_for.try_emplace(allow, -1);
          if (fresh) it->second = error(405, "(Allow: " + allow + ")", false, {{"Allow", allow}});
          p.not_allowed = it->second;
        }
      }
      table_.not_found = add("not found", spec_.not_found, false);
    }
    table_.bad_request = error(400, "for a malformed request", true);
    table_.content_too_large = error(413, "for a body over limits.body_bytes", true);
    table_.uri_too_long = error(414, "for a request line over limits.request_bytes", true);
    table_.headers_too_large = error(431, "for a header section over limits.request_bytes", true);
    table_.not_implemented = error(501, "for an unknown method or a Transfer-Encoding", true);
    table_.version_not_supported = error(505, "for HTTP/2 and above", true);
    return std::move(table_);
  }

 private:
  PathRoutes* find_path(const std::string& path) {
    for (PathRoutes& p : table_.paths)
      if (p.path == path) return &p;
    return nullptr;
  }

  const Spec& spec_;
  ResponseTable table_;
};

}  // namespace

ResponseTable build_response_table(const Spec& spec) { return TableBuilder(spec).build(); }

std::string full_head(const CompiledResponse& c, ConnHeader conn) {
  std::string head = c.head;
  if (c.kind == ResponseKind::entity) head += c.reps.back().fields;
  return head + std::string(connection_line(conn)) + "\r\n";
}

const std::string& full_file(const CompiledResponse& c) {
  return c.kind == ResponseKind::entity ? c.reps.back().file : c.file;
}

bool embeds_files(const ResponseTable& t) {
  for (const CompiledResponse& r : t.responses) {
    if (!r.file.empty()) return true;
    for (const CompiledRep& p : r.reps)
      if (!p.file.empty()) return true;
  }
  return false;
}

const std::string& full_body(const CompiledResponse& c) {
  return c.kind == ResponseKind::entity ? c.reps.back().body : c.body;
}

}  // namespace asmsrv
