#include "site.h"

#include <brotli/encode.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <set>
#include <stdexcept>
#include <thread>

#include "fs.h"
#include "http.h"
#include "oci.h"
#include "spec.h"
#include "text.h"

namespace asmsrv {

namespace {

namespace fsys = std::filesystem;

// How hard to compress. Brotli's quality 11 is some 40 times slower than
// quality 5 (about 0.5 MB/s against 20 MB/s here), and what it saves over
// 5 (about 10%) matters most for the small files a page loads first. So a
// site's smallest compressible files get the best effort, up to a budget
// of bytes, the next ones a good effort, and the rest of a big site a fast
// one. The budget is counted over the site's files sorted by size, so a
// file's bytes depend only on the site, never on timing or threads.
struct Effort {
  int brotli;  // quality 0-11
  int gzip;    // zlib level 1-9
};
struct Tier {
  uint64_t budget;  // bytes of input at this effort, at most
  Effort effort;
};
constexpr Tier kTiers[] = {
    {uint64_t{1} << 20, {11, 9}},  // the first MiB: the best both can do
    {uint64_t{4} << 20, {8, 9}},   // the next 4 MiB
};
constexpr Effort kBulk = {5, 6};   // the rest

// A compressed variant is kept only when it saves at least 5%: less is not
// worth a second copy in the binary and a Vary header.
bool worth_keeping(size_t compressed, size_t original) { return compressed * 100 <= original * 95; }

std::string brotli_compress(std::string_view data, int quality, bool text) {
  size_t size = BrotliEncoderMaxCompressedSize(data.size());
  std::string out(size, '\0');
  if (!BrotliEncoderCompress(quality, BROTLI_DEFAULT_WINDOW, text ? BROTLI_MODE_TEXT : BROTLI_MODE_GENERIC,
                             data.size(), reinterpret_cast<const uint8_t*>(data.data()), &size,
                             reinterpret_cast<uint8_t*>(out.data())))
    throw std::runtime_error("brotli: compression failed");
  out.resize(size);
  return out;
}

// A name incbin cannot take: the assembler's string has no escape for a
// double quote or a control character.
bool unembeddable(std::string_view name) {
  return std::any_of(name.begin(), name.end(), [](unsigned char c) { return c == '"' || c < 0x20 || c == 0x7f; });
}

bool hidden_name(std::string_view rel) {
  return rel.starts_with('.') || rel.find("/.") != std::string_view::npos;
}

// The regular files below a site's dir, found by a sorted, recursive walk.
class Walker {
 public:
  struct Found {
    std::string path;  // relative to the dir
    uint64_t size;
  };

  Walker(const StaticSite& site, std::string root, std::string real_root, std::vector<SiteProblem>& problems)
      : site_(site), root_(std::move(root)), real_root_(std::move(real_root)), problems_(problems) {}

  // Walks the directory `rel` (relative to the dir; "" is the dir itself),
  // whose stat is `st`.
  void walk(const std::string& rel, const struct stat& st) {
    open_.emplace_back(st.st_dev, st.st_ino);
    std::vector<std::string> names;
    std::error_code ec;
    for (fsys::directory_iterator it(join(root_, rel), ec), end; !ec && it != end; it.increment(ec))
      names.push_back(it->path().filename().string());
    if (ec) problem(fmt::format("cannot read {}: {}", shown(rel), ec.message()));
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) entry(join(rel, name), name);
    open_.pop_back();
  }

  std::vector<Found>& found() { return found_; }
  bool skipped_hidden() const { return skipped_hidden_; }

 private:
  static std::string join(const std::string& a, const std::string& b) {
    return a.empty() ? b : b.empty() ? a : a + "/" + b;
  }
  // A path as the spec's author sees it: relative to the spec's directory.
  std::string shown(const std::string& rel) const {
    return json_quote((fsys::path(site_.dir) / rel).lexically_normal().generic_string());
  }
  void problem(std::string message) { problems_.push_back({"dir", std::move(message)}); }

  void entry(const std::string& rel, const std::string& name) {
    if (name.starts_with('.') && !site_.hidden) {
      skipped_hidden_ = true;
      return;
    }
    if (unembeddable(name)) {
      problem(fmt::format("{} cannot be embedded: its name has a double quote or a control character", shown(rel)));
      return;
    }
    const std::string path = join(root_, rel);
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      problem(fmt::format("cannot read {}: {}", shown(rel), std::strerror(errno)));
      return;
    }
    if (S_ISLNK(st.st_mode)) {
      if (!link_stays_inside(rel, path)) return;
      if (::stat(path.c_str(), &st) != 0) {
        problem(fmt::format("cannot read {}: {}", shown(rel), std::strerror(errno)));
        return;
      }
    }
    if (S_ISDIR(st.st_mode)) {
      if (std::find(open_.begin(), open_.end(), std::pair{st.st_dev, st.st_ino}) != open_.end())
        problem(fmt::format("{} is a symlink to a directory that holds it (a loop)", shown(rel)));
      else
        walk(rel, st);
    } else if (S_ISREG(st.st_mode)) {
      uint64_t size = static_cast<uint64_t>(st.st_size);
      if (size > kMaxBodyBytes)
        problem(fmt::format("{}: {} bytes is over the limit of {} bytes (16 MiB)", shown(rel), size, kMaxBodyBytes));
      else
        found_.push_back({rel, size});
    }
    // Sockets, FIFOs and devices are not files to serve: skipped.
  }

  // A symlink is followed only when its target, all links resolved, is
  // inside the dir, and (unless "hidden") under no hidden name.
  bool link_stays_inside(const std::string& rel, const std::string& path) {
    std::error_code ec;
    fsys::path target = fsys::canonical(path, ec);
    if (ec) {
      problem(fmt::format("cannot read {}: {}", shown(rel), ec.message()));
      return false;
    }
    std::string t = target.string();
    std::string link = fsys::read_symlink(path, ec).string();
    if (t != real_root_ && !t.starts_with(real_root_ + "/")) {
      problem(fmt::format("{} is a symlink to {}, outside {}: only links that stay inside are followed", shown(rel),
                          json_quote(link), json_quote(site_.dir)));
      return false;
    }
    if (!site_.hidden && hidden_name(t.substr(std::min(t.size(), real_root_.size() + 1)))) {
      problem(fmt::format("{} is a symlink to {}, a hidden name (\"hidden\" is false)", shown(rel), json_quote(link)));
      return false;
    }
    return true;
  }

  const StaticSite& site_;
  const std::string root_, real_root_;
  std::vector<SiteProblem>& problems_;
  std::vector<std::pair<dev_t, ino_t>> open_;  // the directories being walked: a link back is a loop
  std::vector<Found> found_;
  bool skipped_hidden_ = false;
};

// One file's representations, made by a worker thread.
struct Job {
  SiteFile* file;
  std::string read_path;  // from the current directory
  bool compress = false;
  Effort effort = kBulk;
  std::vector<std::pair<std::string, uint64_t>> digests;  // per representation: SHA-256, size
  std::string error;
};

// "sha256:<64 hex digits>" -> "\"<the first 16>\"".
std::string etag_of(const std::string& digest) { return "\"" + digest.substr(7, 16) + "\""; }

// A representation of `bytes`, without them: coding, size and ETag. Its
// SHA-256 goes to `digests`, to count identical contents once.
SiteRepresentation measure(Coding coding, std::string_view bytes,
                           std::vector<std::pair<std::string, uint64_t>>& digests) {
  SiteRepresentation r;
  r.coding = coding;
  r.size = bytes.size();
  std::string digest = sha256_digest(bytes);
  r.etag = etag_of(digest);
  digests.emplace_back(std::move(digest), r.size);
  return r;
}

void encode(Job& job) {
  std::string bytes = read_file(job.read_path);
  SiteFile& f = *job.file;
  SiteRepresentation identity = measure(Coding::identity, bytes, job.digests);
  identity.file = std::move(f.reps.at(0).file);
  f.reps.assign(1, std::move(identity));
  if (!job.compress) return;
  auto keep = [&](Coding coding, std::string data) {
    if (!worth_keeping(data.size(), bytes.size())) return;
    f.reps.push_back(measure(coding, data, job.digests));
    f.reps.back().data = std::move(data);
  };
  keep(Coding::br, brotli_compress(bytes, job.effort.brotli, f.content_type.starts_with("text/")));
  keep(Coding::gzip, gzip_compress(bytes, job.effort.gzip));
}

// Runs every job on up to `threads` threads, the largest files first so
// that the threads finish together. Each job writes only its own file.
void run_jobs(std::vector<Job>& jobs, const std::vector<uint64_t>& sizes, unsigned threads) {
  std::vector<size_t> order(jobs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return sizes[a] > sizes[b]; });
  std::atomic<size_t> next = 0;
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < order.size();) {
      Job& job = jobs[order[i]];
      try {
        encode(job);
      } catch (const std::exception& e) {
        job.error = e.what();
      }
    }
  };
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(std::min<size_t>(threads, jobs.size()));
  std::vector<std::jthread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
}

}  // namespace

std::string strong_etag(std::string_view bytes) { return etag_of(sha256_digest(bytes)); }

bool compressible(std::string_view content_type) {
  std::string type(content_type.substr(0, content_type.find(';')));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return std::tolower(c); });
  static constexpr std::string_view kTypes[] = {
      "application/json",  "application/javascript", "application/xml", "application/wasm",
      "font/ttf",          "font/otf",               "image/x-icon",    "image/vnd.microsoft.icon",
      "image/bmp",
  };
  return type.starts_with("text/") || type.ends_with("+json") || type.ends_with("+xml") ||
         std::find(std::begin(kTypes), std::end(kTypes), type) != std::end(kTypes);
}

bool glob_match(std::string_view glob, std::string_view path) {
  while (!glob.empty()) {
    if (glob.starts_with("**/")) {  // no directory, or any number of them
      std::string_view rest = glob.substr(3);
      if (glob_match(rest, path)) return true;
      for (size_t i = 0; i < path.size(); ++i)
        if (path[i] == '/' && glob_match(rest, path.substr(i + 1))) return true;
      return false;
    }
    if (glob.starts_with("**")) {  // anything, '/' too
      for (size_t i = 0; i <= path.size(); ++i)
        if (glob_match(glob.substr(2), path.substr(i))) return true;
      return false;
    }
    if (glob[0] == '*') {  // anything within the segment
      for (size_t i = 0;; ++i) {
        if (glob_match(glob.substr(1), path.substr(i))) return true;
        if (i == path.size() || path[i] == '/') return false;
      }
    }
    if (path.empty() || (glob[0] == '?' ? path[0] == '/' : glob[0] != path[0])) return false;
    glob.remove_prefix(1);
    path.remove_prefix(1);
  }
  return path.empty();
}

std::string first_match(const std::vector<std::pair<std::string, std::string>>& patterns, std::string_view path) {
  for (const auto& [glob, value] : patterns)
    if (glob_match(glob, path)) return value;
  return "";
}

std::vector<SiteProblem> load_site(StaticSite& site, const std::string& spec_dir, unsigned threads) {
  std::vector<SiteProblem> problems;
  const std::string root = (fsys::path(spec_dir) / site.dir).string();
  struct stat st;
  if (::stat(root.c_str(), &st) != 0)
    return {{"dir", fmt::format("cannot read {}: {}", json_quote(site.dir), std::strerror(errno))}};
  if (!S_ISDIR(st.st_mode)) return {{"dir", fmt::format("{} is not a directory", json_quote(site.dir))}};
  std::error_code ec;
  std::string real_root = fsys::canonical(root, ec).string();
  if (ec) return {{"dir", fmt::format("cannot read {}: {}", json_quote(site.dir), ec.message())}};

  Walker walker(site, root, real_root, problems);
  walker.walk("", st);
  if (!problems.empty()) return problems;
  std::vector<Walker::Found>& found = walker.found();
  if (found.empty())
    return {{"dir", fmt::format("{} has no files to serve{}", json_quote(site.dir),
                                walker.skipped_hidden() ? " (names starting with \".\" are skipped unless \"hidden\" is true)"
                                                        : "")}};
  // The walk sorts each directory's names, but "a.txt" < "a/b" in byte
  // order: the files are sorted by their whole path.
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.path < b.path; });

  site.files.clear();
  site.files.reserve(found.size());
  std::set<std::string> dirs;
  for (const Walker::Found& f : found) {
    SiteFile file;
    file.path = f.path;
    file.content_type = std::string(media_type_for(f.path));
    file.cache_control = first_match(site.cache_control, f.path);
    SiteRepresentation identity;
    identity.file = (fsys::path(site.dir) / f.path).lexically_normal().generic_string();
    identity.size = f.size;
    file.reps.push_back(std::move(identity));
    site.files.push_back(std::move(file));
    // Its directory and theirs, up to the dir itself ("").
    for (std::string_view d = f.path;;) {
      size_t slash = d.rfind('/');
      d = slash == std::string_view::npos ? "" : d.substr(0, slash);
      if (!dirs.insert(std::string(d)).second || d.empty()) break;
    }
  }
  site.dirs.assign(dirs.begin(), dirs.end());
  if (!site.fallback.empty() && std::none_of(site.files.begin(), site.files.end(),
                                             [&](const SiteFile& f) { return f.path == site.fallback; }))
    problems.push_back({"fallback", fmt::format("{} is not a file of {}", json_quote(site.fallback), json_quote(site.dir))});

  // The effort for each compressible file: by size, smallest first.
  std::vector<Job> jobs(found.size());
  std::vector<uint64_t> sizes(found.size());
  std::vector<size_t> by_size;
  for (size_t i = 0; i < found.size(); ++i) {
    jobs[i].file = &site.files[i];
    jobs[i].read_path = (fsys::path(spec_dir) / site.files[i].reps[0].file).string();
    jobs[i].compress = site.compress && compressible(site.files[i].content_type);
    sizes[i] = found[i].size;
    if (jobs[i].compress) by_size.push_back(i);
  }
  std::stable_sort(by_size.begin(), by_size.end(), [&](size_t a, size_t b) { return sizes[a] < sizes[b]; });
  uint64_t before = 0;
  for (size_t i : by_size) {
    uint64_t limit = 0;
    jobs[i].effort = kBulk;
    for (const Tier& tier : kTiers) {
      limit += tier.budget;
      if (before + sizes[i] <= limit) {
        jobs[i].effort = tier.effort;
        break;
      }
    }
    before += sizes[i];
  }
  run_jobs(jobs, sizes, threads);

  site.bytes = site.stored_bytes = 0;
  std::set<std::string> stored;
  for (const Job& job : jobs) {
    if (!job.error.empty()) problems.push_back({"dir", job.error});
    site.bytes += job.file->reps[0].size;
    for (const auto& [digest, size] : job.digests)
      if (stored.insert(digest).second) site.stored_bytes += size;
  }
  return problems;
}

}  // namespace asmsrv
