// Static sites embedded at build time ("static" entries with "dir"): the
// directory is walked when the spec is checked, and every file becomes a
// SiteFile with its media type, Cache-Control, strong ETag and the
// representations (identity, and brotli and gzip when they save at least
// 5%) that the generated server chooses from at run time. Everything here
// is computed once, at compile time; the server only looks it up.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace asmsrv {

/// A content coding (RFC 9110 8.4.1), in the server's order of preference.
enum class Coding { br, gzip, identity };
inline constexpr const char* kCodingNames[] = {"br", "gzip", "identity"};

/// One representation of a file: its bytes and their validator.
struct SiteRepresentation {
  Coding coding = Coding::identity;
  std::string file;  // identity: the file, relative to the spec's directory (embedded with incbin)
  std::string data;  // br, gzip: the compressed bytes, made at build time
  uint64_t size = 0;
  std::string etag;  // strong, with its quotes: strong_etag() of these bytes
};

/// One regular file of the site.
struct SiteFile {
  std::string path;           // below the entry's dir, '/'-separated, not encoded: "a/my file.txt"
  std::string content_type;   // from templates/mime.types
  std::string cache_control;  // the first matching pattern's value; "" when none matches
  std::vector<SiteRepresentation> reps;  // identity first, then br and gzip when kept
};

/// A "static" entry: with "dir", read at build time; with "root", a
/// directory the server opens at start and reads at run time (then only
/// path, root, index and hidden apply).
struct StaticSite {
  std::string path = "/";          // the URL prefix, starting and ending with '/'
  std::string dir;                 // as written in the spec, relative to the spec's directory
  std::string root;                // as written in the spec: absolute, or relative to the server's cwd
  std::string index = "index.html";  // a file name, no '/'
  std::string fallback;            // "" for none; else a path of `files`
  bool compress = true;
  bool hidden = false;
  std::vector<std::pair<std::string, std::string>> cache_control;  // glob -> value, in spec order
  std::vector<SiteFile> files;     // sorted by path
  std::vector<std::string> dirs;   // every directory that holds files: "" (dir itself), "sub", "sub/deeper"
                                   // (sorted; a directory's ancestors are listed too)
  uint64_t bytes = 0;              // the files' identity bytes
  uint64_t stored_bytes = 0;       // what the binary holds: identical contents once, compressed variants too
};

/// A strong entity-tag for these bytes: "\"" + 16 hex digits of their
/// SHA-256 + "\"" (RFC 9110 8.8.3), so equal bytes get equal tags.
std::string strong_etag(std::string_view bytes);

/// True for a Content-Type worth compressing (parameters ignored): text/*,
/// JSON and XML types (+json, +xml too), JavaScript, WebAssembly, SVG,
/// uncompressed fonts (ttf, otf) and icons. Images, audio, video, archives
/// and woff/woff2 are compressed already.
bool compressible(std::string_view content_type);

/// What is wrong with a site, as the checker reports it: the key of the
/// "static" entry it is about ("dir", "fallback") and the message.
struct SiteProblem {
  std::string key;
  std::string message;
};

/// Walks site.dir (relative to `spec_dir`) and fills site.files, dirs,
/// bytes and stored_bytes; the other fields are the spec's, set before.
/// The walk is sorted (byte order), so the result is the same on every
/// run; names starting with "." are skipped unless site.hidden; a symlink
/// is followed only when its target stays inside the directory. Returns
/// every problem found (empty: the site is good). Compression uses up to
/// `threads` threads (0: one per core); the output does not depend on it.
std::vector<SiteProblem> load_site(StaticSite& site, const std::string& spec_dir, unsigned threads = 0);

/// The first value of `patterns` whose glob matches `path` ('/'-separated,
/// relative to the site's dir), "" when none does: "*" and "?" match within
/// a segment, "**" across segments ("**/" also matches no directory, so
/// "**/*.css" matches "a.css" and "x/y/a.css").
std::string first_match(const std::vector<std::pair<std::string, std::string>>& patterns, std::string_view path);

/// One glob against one path, as first_match matches them.
bool glob_match(std::string_view glob, std::string_view path);

}  // namespace asmsrv
