#include "routes.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "templates.h"

namespace asmsrv {

namespace {

class TableBuilder {
 public:
  explicit TableBuilder(const Spec& spec)
      : spec_(spec), site_fields_(shared_fields(HttpResponse{}, spec.headers)), roots_(run_time_roots(spec)) {}

  int add(const std::string& what, const HttpResponse& r, bool always_close) {
    CompiledResponse c;
    c.what = what;
    c.status = r.status;
    c.always_close = always_close;
    if (is_entity(r)) {
      c.kind = ResponseKind::entity;
      c.head = fmt::format("HTTP/1.1 {} {}\r\n", r.status, r.reason);
      CompiledRep rep;
      rep.fields =
          entity_fields(shared_fields(r, spec_.headers), r.etag, "", false, r.content_type, "", r.body_size());
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
      for (const Route& route : spec_.routes)
        path_for(route.path).by_method[static_cast<int>(route.method)] =
            add(fmt::format("{} {}", kMethodNames[static_cast<int>(route.method)], route.path),
                route.response, false);
      // Longest prefix first: "/app/index.html" is the "/app/" site's, even
      // when the "/" site's directory holds it too.
      std::vector<const StaticSite*> sites;
      for (const StaticSite& site : spec_.sites) sites.push_back(&site);
      std::stable_sort(sites.begin(), sites.end(),
                       [](const StaticSite* a, const StaticSite* b) { return a->path.size() > b->path.size(); });
      for (const StaticSite* site : sites) {
        if (site->root.empty())
          add_site(*site);
        else
          add_disk_site(*site);
      }
      for (const Upload& up : spec_.uploads) add_upload(up);
      std::stable_sort(table_.fallbacks.begin(), table_.fallbacks.end(),
                       [](const PathRoutes& a, const PathRoutes& b) { return a.path.size() > b.path.size(); });
      inherit_reads();
      // Paths with the same methods share their 204 and 405 responses.
      for (PathRoutes& p : table_.paths) complete(p);
      for (PathRoutes& p : table_.fallbacks) complete(p);
      table_.not_found = add("not found", spec_.not_found, false);
    }
    table_.bad_request = error(400, "for a malformed request", true);
    table_.content_too_large = error(413, "for a body over limits.body_bytes", true);
    table_.uri_too_long = error(414, "for a request line over limits.request_bytes", true);
    table_.headers_too_large = error(431, "for a header section over limits.request_bytes", true);
    table_.not_implemented = error(501, "for an unknown method", true);
    table_.version_not_supported = error(505, "for HTTP/2 and above", true);
    table_.expectation_failed = error(417, "for an Expect other than 100-continue", true);
    if (!table_.upload_sites.empty()) {
      table_.conflict = error(409, "for an upload whose name exists", false);
      table_.insufficient_storage = error(507, "for an upload the file system has no room for", true);
      table_.upload_failed = error(500, "for an upload the file system fails to store", true);
    }
    if (!table_.disk_sites.empty() || !table_.upload_sites.empty()) {
      table_.forbidden = error(403, "for a file that may not be served", false);
      table_.unavailable = error(503, "for a file that cannot be opened now (EMFILE, ENFILE, ENOMEM)", false);
      table_.server_error = error(500, "for a file the system fails to read", false);
    }
    return std::move(table_);
  }

 private:
  PathRoutes& path_for(const std::string& path) {
    auto [it, fresh] = path_at_.try_emplace(path, table_.paths.size());
    if (fresh) {
      table_.paths.push_back(PathRoutes{path, {}, -1});
      table_.paths.back().by_method.fill(-1);
    }
    return table_.paths[it->second];
  }

  // The fallback of a prefix: a site's (GET) and an upload's (PUT, POST) share one.
  PathRoutes& fallback_for(const std::string& prefix) {
    auto it = std::find_if(table_.fallbacks.begin(), table_.fallbacks.end(),
                           [&](const PathRoutes& p) { return p.path == prefix; });
    if (it != table_.fallbacks.end()) return *it;
    table_.fallbacks.push_back(PathRoutes{prefix, {}, -1});
    table_.fallbacks.back().by_method.fill(-1);
    return table_.fallbacks.back();
  }

  // A root read at run time: its index in root_fds (run_time_roots).
  int root_index(const std::string& root) const {
    return static_cast<int>(std::find(roots_.begin(), roots_.end(), root) - roots_.begin());
  }

  // OPTIONS and 405 for a path whose own methods are set; a GET also
  // answers HEAD, with the same head and no body.
  void complete(PathRoutes& p) {
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
      auto [it, fresh] = options_for_.try_emplace(allow, -1);
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
      auto [it, fresh] = not_allowed_for_.try_emplace(allow, -1);
      if (fresh) it->second = error(405, "(Allow: " + allow + ")", false, {{"Allow", allow}});
      p.not_allowed = it->second;
    }
  }

  // A site read at run time: every path below its prefix (longer prefixes
  // and exact paths first) is a disk response; the prefix without its
  // slash redirects to it.
  void add_disk_site(const StaticSite& site) {
    DiskSite d;
    d.prefix = site.path;
    d.root = root_index(site.root);
    d.index = site.index;
    d.index_type = std::string(media_type_for(site.index));
    d.hidden = site.hidden;
    table_.disk_sites.push_back(d);
    disk_prefixes_.push_back(site.path);
    CompiledResponse c;
    c.kind = ResponseKind::disk;
    c.what = fmt::format("GET {}... from {}", site.path, site.root);
    c.head = site_fields_ + "Accept-Ranges: bytes\r\n";
    c.disk_site = static_cast<int>(table_.disk_sites.size()) - 1;
    table_.responses.push_back(std::move(c));
    fallback_for(site.path).by_method[static_cast<int>(Method::GET)] = static_cast<int>(table_.responses.size()) - 1;
    std::string bare = site.path.substr(0, site.path.size() - 1);
    if (!bare.empty() && !path_at_.count(bare))
      path_for(bare).by_method[static_cast<int>(Method::GET)] = add_redirect(bare, site.path);
  }

  // An upload: PUT and POST below its prefix store the body. They join the
  // fallback of a site with the same prefix (GET reads what PUT stored).
  void add_upload(const Upload& up) {
    UploadSite u;
    u.prefix = up.path;
    u.root = root_index(up.root);
    u.overwrite = up.overwrite;
    u.fsync = up.fsync;
    u.mode = up.mode;
    u.max_bytes = up.max_bytes;
    table_.upload_sites.push_back(u);
    CompiledResponse c;
    c.kind = ResponseKind::upload;
    c.what = fmt::format("PUT, POST {}... into {}", up.path, up.root);
    c.status = 201;
    c.head = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n" + site_fields_;
    c.disk_site = static_cast<int>(table_.upload_sites.size()) - 1;
    table_.responses.push_back(std::move(c));
    int index = static_cast<int>(table_.responses.size()) - 1;
    PathRoutes& f = fallback_for(up.path);
    if (up.put) f.by_method[static_cast<int>(Method::PUT)] = index;
    if (up.post) f.by_method[static_cast<int>(Method::POST)] = index;
  }

  // A prefix with uploads only (no GET) reads with the site whose prefix
  // holds it, if any: "/files/" under a "/" site read at run time.
  void inherit_reads() {
    auto& f = table_.fallbacks;
    for (size_t i = 0; i < f.size(); ++i) {
      int& get = f[i].by_method[static_cast<int>(Method::GET)];
      for (size_t j = i + 1; j < f.size() && get < 0; ++j)
        if (f[i].path.starts_with(f[j].path)) get = f[j].by_method[static_cast<int>(Method::GET)];
    }
  }

  // True when a longer site read at run time owns `url`.
  bool under_disk_site(const std::string& url) const {
    return std::any_of(disk_prefixes_.begin(), disk_prefixes_.end(),
                       [&](const std::string& p) { return url.compare(0, p.size(), p) == 0; });
  }

  // A static site: a path per file, per directory with an index ("/sub/"),
  // and a redirect for that directory without its slash ("/sub"). An exact
  // route of the same path wins.
  void add_site(const StaticSite& site) {
    std::map<std::string, int> by_file;
    for (const SiteFile& f : site.files) {
      std::string url = site.path + f.path;
      if (under_disk_site(url)) continue;
      int index = add_file(site, f, url);
      by_file[f.path] = index;
      if (!path_at_.count(url)) path_for(url).by_method[static_cast<int>(Method::GET)] = index;
    }
    for (const std::string& d : site.dirs) {
      auto it = by_file.find(d.empty() ? site.index : d + "/" + site.index);
      if (it == by_file.end()) continue;
      std::string dir_url = site.path + (d.empty() ? "" : d + "/");
      if (under_disk_site(dir_url)) continue;
      if (!path_at_.count(dir_url)) path_for(dir_url).by_method[static_cast<int>(Method::GET)] = it->second;
      std::string bare = dir_url.substr(0, dir_url.size() - 1);
      if (!bare.empty() && !path_at_.count(bare))
        path_for(bare).by_method[static_cast<int>(Method::GET)] = add_redirect(bare, dir_url);
    }
    if (!site.fallback.empty())
      fallback_for(site.path).by_method[static_cast<int>(Method::GET)] = by_file.at(site.fallback);
  }

  int add_file(const StaticSite& site, const SiteFile& f, const std::string& url) {
    CompiledResponse c;
    c.kind = ResponseKind::entity;
    c.what = "GET " + url + (site.fallback == f.path ? " (and the fallback)" : "");
    c.head = "HTTP/1.1 200 OK\r\n";
    std::vector<const SiteRepresentation*> reps;
    for (const SiteRepresentation& r : f.reps) reps.push_back(&r);
    std::sort(reps.begin(), reps.end(), [](auto* a, auto* b) { return a->coding < b->coding; });
    for (const SiteRepresentation* r : reps) {
      CompiledRep rep;
      rep.coding = r->coding;
      rep.fields = entity_fields(site_fields_, r->etag, f.cache_control, f.reps.size() > 1, f.content_type,
                                 r->coding == Coding::identity ? "" : kCodingNames[static_cast<int>(r->coding)],
                                 r->size);
      rep.etag = r->etag;
      rep.file = r->file;
      rep.body = r->data;
      rep.size = r->size;
      c.reps.push_back(std::move(rep));
    }
    table_.responses.push_back(std::move(c));
    return static_cast<int>(table_.responses.size()) - 1;
  }

  // 301 to the directory's path with its slash; the request's query follows
  // at run time.
  int add_redirect(const std::string& from, const std::string& to) {
    CompiledResponse c;
    c.kind = ResponseKind::redirect;
    c.what = fmt::format("GET {} -> 301 {}", from, to);
    c.status = 301;
    c.head = "HTTP/1.1 301 Moved Permanently\r\nContent-Length: 0\r\n" +
             site_fields_ + "Location: " + percent_encode_path(to);
    table_.responses.push_back(std::move(c));
    return static_cast<int>(table_.responses.size()) - 1;
  }

  const Spec& spec_;
  const std::string site_fields_;  // what a static file's answers share: the spec's headers
  ResponseTable table_;
  std::map<std::string, size_t> path_at_;              // path -> its index in table_.paths
  std::map<std::string, int> options_for_, not_allowed_for_;  // by Allow
  std::vector<std::string> disk_prefixes_;             // sites read at run time, so far
  const std::vector<std::string> roots_;               // run_time_roots: root_fds's order
};

}  // namespace

ResponseTable build_response_table(const Spec& spec) { return TableBuilder(spec).build(); }

std::vector<std::string> run_time_roots(const Spec& spec) {
  std::vector<std::string> roots;
  for (const StaticSite& site : spec.sites)
    if (!site.root.empty() && std::find(roots.begin(), roots.end(), site.root) == roots.end())
      roots.push_back(site.root);
  for (const Upload& up : spec.uploads)
    if (std::find(roots.begin(), roots.end(), up.root) == roots.end()) roots.push_back(up.root);
  return roots;
}

std::string full_head(const CompiledResponse& c, ConnHeader conn, const std::string& query) {
  std::string head = c.head;
  if (c.kind == ResponseKind::entity) head += c.reps.back().fields.text;
  if (c.kind == ResponseKind::redirect) head += query + "\r\n";
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
