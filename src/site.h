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

/// A "static" entry with "dir", read at build time.
struct StaticSite {
  std::string path = "/";          // the URL prefix, starting and ending with '/'
  std::string dir;                 // as written in the spec, relative to the spec's directory
  std::string index = "index.html";  // a file name, no '/'
  std::string fallback;            // "" for none; else a path of `files`
  bool compress = true;
  bool hidden = false;
  std::vector<std::pair<std::string, std::string>> cache_control;  // glob -> value, in spec order
  std::vector<SiteFile> files;     // sorted by path
  std::vector<std::string> dirs;   // every directory that holds files: "" (dir itself), "sub", "sub/deeper"
  uint64_t bytes = 0;              // the files' identity bytes
  uint64_t stored_bytes = 0;       // what the binary holds: identical contents once, compressed variants too
};

/// A strong entity-tag for these bytes: "\"" + 16 hex digits of their
/// SHA-256 + "\"" (RFC 9110 8.8.3), so equal bytes get equal tags.
std::string strong_etag(std::string_view bytes);

}  // namespace asmsrv
