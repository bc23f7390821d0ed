// Static sites at build time (src/site.cc): the walk, the media types and
// Cache-Control, the ETags and the compressed representations, checked
// against the real tools (sha256sum, gzip -d, brotli -d).
#include "site.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "http.h"
#include "spec.h"
#include "test_util.h"

namespace asmsrv::test {
namespace {

namespace fsys = std::filesystem;

// Writes `path` below `root`, making its directories.
void put(const std::string& root, const std::string& path, const std::string& data) {
  fsys::create_directories(fsys::path(root + "/" + path).parent_path());
  write(root + "/" + path, data);
}

// Text that compresses about as well as real HTML, CSS or JS (3 to 4
// times): pseudo-words of a 4,000-word vocabulary, the common ones more
// often, in lines with some markup.
std::string text(size_t size, unsigned seed = 1) {
  static const std::vector<std::string> kWords = [] {
    std::mt19937 rng(42);
    std::vector<std::string> words;
    for (int i = 0; i < 4000; ++i) {
      std::string w;
      for (size_t n = 2 + rng() % 9; n > 0; --n) w += static_cast<char>('a' + rng() % 26);
      words.push_back(w);
    }
    return words;
  }();
  static const char* kMarkup[] = {"<div class=\"", "\">", "</div>\n", "{ ", " }\n", "(", ")", ";\n", ", ", ". "};
  std::mt19937 rng(seed);
  std::string out;
  while (out.size() < size) {
    out += kWords[rng() % (1 + rng() % kWords.size())];
    out += rng() % 4 == 0 ? kMarkup[rng() % std::size(kMarkup)] : " ";
  }
  out.resize(size);
  return out;
}

// Bytes that do not compress (like a PNG's).
std::string noise(size_t size, unsigned seed = 1) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

StaticSite site_at(const std::string& dir) {
  StaticSite s;
  s.dir = dir;
  return s;
}

// load_site on `site` (dir relative to `spec_dir`): its problems, one a line.
std::string problems(StaticSite& site, const std::string& spec_dir) {
  std::string out;
  for (const SiteProblem& p : load_site(site, spec_dir)) out += p.key + ": " + p.message + "\n";
  return out;
}

std::vector<std::string> paths(const StaticSite& s) {
  std::vector<std::string> out;
  for (const SiteFile& f : s.files) out.push_back(f.path);
  return out;
}

const SiteFile& file(const StaticSite& s, const std::string& path) {
  for (const SiteFile& f : s.files)
    if (f.path == path) return f;
  throw std::runtime_error("no file " + path);
}

TEST(Site, WalksSortedSkipsHiddenAndListsDirectories) {
  std::string spec = temp_dir();
  for (const char* p : {"public/index.html", "public/b.css", "public/a.txt", "public/a/z.js", "public/a/b/c.json",
                        "public/.env", "public/.git/config", "public/a/.hidden.txt"})
    put(spec, p, "x");
  StaticSite s = site_at("public");
  ASSERT_EQ(problems(s, spec), "");
  EXPECT_EQ(paths(s), (std::vector<std::string>{"a.txt", "a/b/c.json", "a/z.js", "b.css", "index.html"}))
      << "sorted by whole path, byte order; dot-names skipped";
  EXPECT_EQ(s.dirs, (std::vector<std::string>{"", "a", "a/b"}));
  EXPECT_EQ(file(s, "a/z.js").reps[0].file, "public/a/z.js") << "relative to the spec's directory";
  EXPECT_EQ(file(s, "a/z.js").content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(file(s, "a/b/c.json").content_type, "application/json");

  StaticSite h = site_at("public");
  h.hidden = true;
  ASSERT_EQ(problems(h, spec), "");
  EXPECT_EQ(paths(h), (std::vector<std::string>{".env", ".git/config", "a.txt", "a/.hidden.txt", "a/b/c.json",
                                                "a/z.js", "b.css", "index.html"}));
  StaticSite dot = site_at("./public/");
  ASSERT_EQ(problems(dot, spec), "");
  EXPECT_EQ(file(dot, "a.txt").reps[0].file, "public/a.txt");
}

TEST(Site, Symlinks) {
  std::string spec = temp_dir();
  put(spec, "public/real/a.txt", "a");
  put(spec, "public/.secret/key", "k");
  put(spec, "outside.txt", "o");
  ASSERT_EQ(::symlink("real/a.txt", (spec + "/public/link.txt").c_str()), 0);
  ASSERT_EQ(::symlink("real", (spec + "/public/alias").c_str()), 0);
  StaticSite s = site_at("public");
  ASSERT_EQ(problems(s, spec), "");
  EXPECT_EQ(paths(s), (std::vector<std::string>{"alias/a.txt", "link.txt", "real/a.txt"}));
  EXPECT_EQ(file(s, "link.txt").reps[0].file, "public/link.txt");
  EXPECT_EQ(s.bytes, 3u);
  EXPECT_EQ(s.stored_bytes, 1u) << "three names, one content";

  ASSERT_EQ(::symlink("../outside.txt", (spec + "/public/out.txt").c_str()), 0);
  ASSERT_EQ(::symlink(".secret/key", (spec + "/public/key").c_str()), 0);
  ASSERT_EQ(::symlink("..", (spec + "/public/real/up").c_str()), 0);
  ASSERT_EQ(::symlink("nowhere", (spec + "/public/broken").c_str()), 0);
  StaticSite bad = site_at("public");
  EXPECT_EQ(problems(bad, spec),
            "dir: \"public/alias/up\" is a symlink to a directory that holds it (a loop)\n"
            "dir: cannot read \"public/broken\": No such file or directory\n"
            "dir: \"public/key\" is a symlink to \".secret/key\", a hidden name (\"hidden\" is false)\n"
            "dir: \"public/out.txt\" is a symlink to \"../outside.txt\", outside \"public\": only links that "
            "stay inside are followed\n"
            "dir: \"public/real/up\" is a symlink to a directory that holds it (a loop)\n");
}

TEST(Site, DirProblems) {
  std::string spec = temp_dir();
  put(spec, "file.txt", "x");
  put(spec, "empty/.only-hidden", "x");
  fsys::create_directories(spec + "/none");
  StaticSite s = site_at("missing");
  EXPECT_EQ(problems(s, spec), "dir: cannot read \"missing\": No such file or directory\n");
  s = site_at("file.txt");
  EXPECT_EQ(problems(s, spec), "dir: \"file.txt\" is not a directory\n");
  s = site_at("none");
  EXPECT_EQ(problems(s, spec), "dir: \"none\" has no files to serve\n");
  s = site_at("empty");
  EXPECT_EQ(problems(s, spec),
            "dir: \"empty\" has no files to serve (names starting with \".\" are skipped unless \"hidden\" is true)\n");

  put(spec, "names/ok.txt", "x");
  put(spec, "names/say \"hi\".txt", "x");
  put(spec, "names/tab\there", "x");
  s = site_at("names");
  EXPECT_EQ(problems(s, spec),
            "dir: \"names/say \\\"hi\\\".txt\" cannot be embedded: its name has a double quote or a control character\n"
            "dir: \"names/tab\\there\" cannot be embedded: its name has a double quote or a control character\n");

  put(spec, "big/small.txt", "x");
  put(spec, "big/huge.bin", "");
  ASSERT_EQ(::truncate((spec + "/big/huge.bin").c_str(), kMaxBodyBytes + 1), 0);
  s = site_at("big");
  EXPECT_EQ(problems(s, spec),
            "dir: \"big/huge.bin\": 16777217 bytes is over the limit of 16777216 bytes (16 MiB)\n");

  put(spec, "app/index.html", "x");
  s = site_at("app");
  s.fallback = "app.html";
  EXPECT_EQ(problems(s, spec), "fallback: \"app.html\" is not a file of \"app\"\n");
  s = site_at("app");
  s.fallback = "index.html";
  EXPECT_EQ(problems(s, spec), "");
}

TEST(Site, Globs) {
  EXPECT_TRUE(glob_match("*.html", "index.html"));
  EXPECT_FALSE(glob_match("*.html", "docs/index.html")) << "* stays within a segment";
  EXPECT_TRUE(glob_match("**/*.html", "index.html")) << "**/ may match no directory";
  EXPECT_TRUE(glob_match("**/*.html", "docs/a/index.html"));
  EXPECT_TRUE(glob_match("assets/*", "assets/app.js"));
  EXPECT_FALSE(glob_match("assets/*", "assets/img/logo.png"));
  EXPECT_TRUE(glob_match("assets/**", "assets/img/logo.png"));
  EXPECT_TRUE(glob_match("a?c.txt", "abc.txt"));
  EXPECT_FALSE(glob_match("a?c.txt", "a/c.txt")) << "? is not /";
  EXPECT_FALSE(glob_match("a?c.txt", "ac.txt"));
  EXPECT_TRUE(glob_match("**", "x/y/z"));
  EXPECT_TRUE(glob_match("*", "x"));
  EXPECT_FALSE(glob_match("*", "x/y"));
  EXPECT_TRUE(glob_match("img/**/*.png", "img/a.png"));
  EXPECT_FALSE(glob_match("index.html", "index.htm"));

  std::vector<std::pair<std::string, std::string>> cc = {
      {"*.html", "no-cache"}, {"assets/*", "public, max-age=31536000, immutable"}, {"**", "public, max-age=60"}};
  EXPECT_EQ(first_match(cc, "index.html"), "no-cache");
  EXPECT_EQ(first_match(cc, "assets/app.js"), "public, max-age=31536000, immutable");
  EXPECT_EQ(first_match(cc, "docs/a.html"), "public, max-age=60") << "first match wins, in spec order";
  EXPECT_EQ(first_match({{"*.css", "x"}}, "a.js"), "");

  std::string spec = temp_dir();
  put(spec, "p/index.html", "x");
  put(spec, "p/assets/app.js", "x");
  StaticSite s = site_at("p");
  s.cache_control = cc;
  ASSERT_EQ(problems(s, spec), "");
  EXPECT_EQ(file(s, "index.html").cache_control, "no-cache");
  EXPECT_EQ(file(s, "assets/app.js").cache_control, "public, max-age=31536000, immutable");
}

TEST(Site, MediaTypesAndCompressible) {
  for (auto [name, type] : std::initializer_list<std::pair<const char*, const char*>>{
           {"a/INDEX.HTML", "text/html; charset=utf-8"},  // without case
           {"app.mjs", "text/javascript; charset=utf-8"},
           {"app.js.map", "application/json"},           // JSON: no charset
           {"site.webmanifest", "application/manifest+json"},
           {"notes.md", "text/markdown; charset=utf-8"},
           {"logo.svg", "image/svg+xml"},
           {"f.woff2", "font/woff2"},
           {"clip.webm", "video/webm"},
           {"README", "application/octet-stream"},
           {"a.unknown", "application/octet-stream"}})
    EXPECT_EQ(media_type_for(name), type) << name;
  for (const char* ext : {"html", "htm", "css", "js", "mjs", "json", "map", "xml", "txt", "csv", "md", "svg", "png",
                          "jpg", "jpeg", "gif", "webp", "avif", "ico", "woff", "woff2", "ttf", "otf", "wasm", "pdf",
                          "zip", "gz", "mp4", "webm", "ogg", "mp3", "wav", "webmanifest"})
    EXPECT_NE(media_type_for(std::string("x.") + ext), "application/octet-stream") << ext;

  for (const char* t : {"text/html; charset=utf-8", "text/css", "application/json", "image/svg+xml",
                        "application/manifest+json", "application/wasm", "application/xml", "font/ttf",
                        "Text/Plain ; charset=utf-8"})
    EXPECT_TRUE(compressible(t)) << t;
  for (const char* t : {"image/png", "image/jpeg", "font/woff2", "application/zip", "application/gzip", "video/mp4",
                        "application/octet-stream", "application/pdf"})
    EXPECT_FALSE(compressible(t)) << t;
}

// The tool's stdout for `argv` + a file holding `data`.
std::string through(std::vector<std::string> argv, const std::string& data) {
  std::string path = temp_dir() + "/in";
  write(path, data);
  argv.push_back(path);
  CmdResult r = run(argv);
  EXPECT_EQ(r.status, 0) << argv[0] << ": " << r.err;
  return r.out;
}

TEST(Site, EtagsAndRepresentationsMatchTheTools) {
  EXPECT_EQ(strong_etag("hello\n"), "\"5891b5b522d5df08\"")
      << "sha256sum of hello\\n: 5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
  std::string known = through({"sha256sum"}, "some bytes");
  EXPECT_EQ(strong_etag("some bytes"), "\"" + known.substr(0, 16) + "\"");

  std::string spec = temp_dir();
  const std::string page = text(20000), css = text(3000, 2), png = noise(5000), small = "tiny";
  put(spec, "p/index.html", page);
  put(spec, "p/style.css", css);
  put(spec, "p/logo.png", text(5000, 3));  // compressible bytes, but a PNG: never compressed
  put(spec, "p/noise.txt", png);           // a text type whose bytes do not compress
  put(spec, "p/tiny.txt", small);
  StaticSite s = site_at("p");
  ASSERT_EQ(problems(s, spec), "");

  const SiteFile& html = file(s, "index.html");
  ASSERT_EQ(html.reps.size(), 3u);
  EXPECT_EQ(html.reps[0].coding, Coding::identity);
  EXPECT_EQ(html.reps[0].size, page.size());
  EXPECT_EQ(html.reps[0].etag, strong_etag(page));
  EXPECT_EQ(html.reps[0].data, "") << "identity is embedded from the file";
  EXPECT_EQ(html.reps[1].coding, Coding::br);
  EXPECT_EQ(html.reps[2].coding, Coding::gzip);
  for (const SiteRepresentation& r : {html.reps[1], html.reps[2]}) {
    EXPECT_EQ(r.size, r.data.size());
    EXPECT_LT(r.size * 100, page.size() * 95);
    EXPECT_EQ(r.etag, strong_etag(r.data));
    EXPECT_NE(r.etag, html.reps[0].etag);
  }
  EXPECT_EQ(through({"brotli", "-dc"}, html.reps[1].data), page);
  EXPECT_EQ(through({"gzip", "-dc"}, html.reps[2].data), page);
  // RFC 1952: no name, mtime 0, OS 3 (Unix).
  EXPECT_EQ(html.reps[2].data.substr(0, 4), std::string("\x1f\x8b\x08\x00", 4));
  EXPECT_EQ(html.reps[2].data.substr(4, 4), std::string(4, '\0'));
  EXPECT_EQ(html.reps[2].data[9], 3);
  EXPECT_EQ(through({"gzip", "-dc"}, file(s, "style.css").reps[2].data), css);

  EXPECT_EQ(file(s, "logo.png").reps.size(), 1u) << "image/png is not compressible";
  EXPECT_EQ(file(s, "noise.txt").reps.size(), 1u) << "neither saves 5% on noise";
  EXPECT_EQ(file(s, "tiny.txt").reps.size(), 1u) << "4 bytes do not shrink";

  StaticSite off = site_at("p");
  off.compress = false;
  ASSERT_EQ(problems(off, spec), "");
  EXPECT_EQ(file(off, "index.html").reps.size(), 1u);
  EXPECT_EQ(off.stored_bytes, off.bytes);
}

TEST(Site, CountsIdenticalContentsOnce) {
  std::string spec = temp_dir();
  const std::string page = text(10000);
  put(spec, "p/a.html", page);
  put(spec, "p/copy/a.html", page);
  put(spec, "p/b.bin", noise(1000));
  StaticSite s = site_at("p");
  ASSERT_EQ(problems(s, spec), "");
  EXPECT_EQ(s.bytes, 21000u);
  const SiteFile& a = file(s, "a.html");
  ASSERT_EQ(a.reps.size(), 3u);
  EXPECT_EQ(file(s, "copy/a.html").reps[1].data, a.reps[1].data);
  EXPECT_EQ(s.stored_bytes, 10000u + 1000u + a.reps[1].size + a.reps[2].size);
}

TEST(Site, SameBytesOnEveryLoadWhateverTheThreads) {
  std::string spec = temp_dir();
  for (int i = 0; i < 40; ++i) put(spec, "p/f" + std::to_string(i) + ".js", text(1000 + 997 * i, i));
  put(spec, "p/big.css", text(3 << 20, 99));  // past the best effort's budget
  StaticSite a = site_at("p"), b = site_at("p");
  ASSERT_EQ(problems(a, spec), "");
  ASSERT_TRUE(load_site(b, spec, 1).empty());
  ASSERT_EQ(a.files.size(), b.files.size());
  for (size_t i = 0; i < a.files.size(); ++i) {
    ASSERT_EQ(a.files[i].reps.size(), b.files[i].reps.size()) << a.files[i].path;
    for (size_t r = 0; r < a.files[i].reps.size(); ++r) {
      EXPECT_EQ(a.files[i].reps[r].data, b.files[i].reps[r].data) << a.files[i].path;
      EXPECT_EQ(a.files[i].reps[r].etag, b.files[i].reps[r].etag) << a.files[i].path;
    }
  }
  EXPECT_EQ(a.stored_bytes, b.stored_bytes);
  EXPECT_EQ(through({"brotli", "-dc"}, file(a, "big.css").reps[1].data), text(3 << 20, 99));
}

// The speed target: a site of 1,000 files and 50 MB loads (walk, hash,
// compress) in well under 10 s on 2 cores. Asserted loosely, to catch a
// blow-up, not a slow machine; the figure is printed.
TEST(Site, ThousandFilesFiftyMegabytes) {
  std::string spec = temp_dir();
  const char* kExts[] = {".html", ".css", ".js", ".json", ".svg", ".png", ".jpg", ".woff2"};
  uint64_t total = 0;
  std::mt19937 rng(7);
  for (int i = 0; i < 1000; ++i) {
    size_t size = i % 50 == 0 ? 400000 + rng() % 400000 : 10000 + rng() % 70000;
    const char* ext = kExts[i % std::size(kExts)];
    bool binary = std::string_view(ext) == ".png" || std::string_view(ext) == ".jpg" || std::string_view(ext) == ".woff2";
    put(spec, fmt::format("p/d{}/f{}{}", i % 17, i, ext), binary ? noise(size, i) : text(size, i));
    total += size;
  }
  StaticSite s = site_at("p");
  auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(problems(s, spec), "");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(s.files.size(), 1000u);
  EXPECT_EQ(s.bytes, total);
  std::printf("site of 1,000 files, %.1f MB: loaded in %.2f s (%u threads), %.1f MB stored\n", total / 1e6, seconds,
              std::thread::hardware_concurrency(), s.stored_bytes / 1e6);
  EXPECT_LT(seconds, 60.0);
}

}  // namespace
}  // namespace asmsrv::test
