#include "oci.h"

#include <archive.h>
#include <archive_entry.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <stdexcept>

namespace asmsrv {

namespace {

// Keys in the order written here: the same document, the same bytes. Not
// named `json`, which spec.cc also defines (a unity build joins the files).
using Json = nlohmann::ordered_json;

// libarchive's output callback: appends each block to the std::string.
la_ssize_t append_block(struct archive*, void* out, const void* buf, size_t n) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

[[noreturn]] void archive_failed(struct archive* a, const std::string& what) {
  const char* why = archive_error_string(a);
  throw std::runtime_error(fmt::format("tar: {}: {}", what, why ? why : "failed"));
}

Json descriptor(const Blob& blob) {
  return {{"mediaType", blob.media_type}, {"digest", blob.digest()}, {"size", blob.data.size()}};
}

// Element by element: GCC 12 warns (falsely) on nlohmann's conversion of
// a whole container.
Json string_array(const std::vector<std::string>& words) {
  Json out = Json::array();
  for (const std::string& w : words) out.push_back(w);
  return out;
}

Json platform() { return {{"architecture", "amd64"}, {"os", "linux"}}; }

}  // namespace

std::string tar_archive(std::vector<TarEntry> entries, int64_t mtime) {
  std::sort(entries.begin(), entries.end(),
            [](const TarEntry& a, const TarEntry& b) { return a.path < b.path; });
  std::unique_ptr<struct archive, decltype(&archive_write_free)> a(archive_write_new(),
                                                                   archive_write_free);
  std::unique_ptr<struct archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(),
                                                                         archive_entry_free);
  if (!a || !e) throw std::runtime_error("tar: out of memory");
  std::string out;
  if (archive_write_set_format_ustar(a.get()) != ARCHIVE_OK ||
      archive_write_add_filter_none(a.get()) != ARCHIVE_OK ||
      archive_write_open(a.get(), &out, nullptr, append_block, nullptr) != ARCHIVE_OK)
    archive_failed(a.get(), "cannot start the archive");
  for (const TarEntry& t : entries) {
    archive_entry_clear(e.get());
    archive_entry_set_pathname(e.get(), t.directory ? (t.path + "/").c_str() : t.path.c_str());
    archive_entry_set_filetype(e.get(), t.directory ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(e.get(), static_cast<mode_t>(t.mode));
    archive_entry_set_uid(e.get(), t.uid);
    archive_entry_set_gid(e.get(), t.gid);
    archive_entry_set_mtime(e.get(), static_cast<time_t>(mtime), 0);
    archive_entry_set_size(e.get(), t.directory ? 0 : static_cast<la_int64_t>(t.data.size()));
    if (archive_write_header(a.get(), e.get()) != ARCHIVE_OK) archive_failed(a.get(), t.path);
    if (!t.directory && !t.data.empty() &&
        archive_write_data(a.get(), t.data.data(), t.data.size()) !=
            static_cast<la_ssize_t>(t.data.size()))
      archive_failed(a.get(), t.path);
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK)
    archive_failed(a.get(), "cannot finish the archive");
  return out;
}

std::string gzip_compress(std::string_view data, int level) {
  z_stream z{};
  // windowBits 15 + 16: a gzip wrapper. Without deflateSetHeader, zlib writes
  // a header with no name, mtime 0 and a fixed OS byte (3, Unix).
  if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("gzip: cannot start zlib");
  std::string out(deflateBound(&z, static_cast<uLong>(data.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw std::runtime_error(fmt::format("gzip: deflate failed ({})", rc));
  return out;
}

std::string sha256_digest(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("sha256: libcrypto failed");
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
  return out;
}

std::string rfc3339_utc(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  if (!gmtime_r(&tt, &tm)) throw std::runtime_error(fmt::format("time {} out of range", t));
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int64_t source_date_epoch(const char* env) {
  if (!env || !*env) return 0;
  std::string_view s = env;
  int64_t t = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), t);
  // Up to the year 9999: RFC 3339 has four digits for it.
  if (ec != std::errc() || end != s.data() + s.size() || t < 0 || t > 253402300799)
    throw std::runtime_error(fmt::format(
        "SOURCE_DATE_EPOCH=\"{}\": expected a number of seconds since 1970-01-01 (0 to "
        "253402300799)", s));
  return t;
}

std::string image_config_json(const ImageConfig& c, const std::string& diff_id) {
  Json run = Json::object();
  if (!c.user.empty()) run["User"] = c.user;
  if (!c.tcp_ports.empty()) {
    Json ports = Json::object();
    for (int p : c.tcp_ports) ports[fmt::format("{}/tcp", p)] = Json::object();
    run["ExposedPorts"] = ports;
  }
  if (!c.entrypoint.empty()) run["Entrypoint"] = string_array(c.entrypoint);
  if (!c.working_dir.empty()) run["WorkingDir"] = c.working_dir;
  for (const auto& [key, value] : c.labels) run["Labels"][key] = value;
  if (!c.stop_signal.empty()) run["StopSignal"] = c.stop_signal;
  if (c.healthcheck) {
    // Docker's fields: durations in nanoseconds; Test starts with "CMD"
    // (exec form, no shell: a FROM scratch image has none).
    const Healthcheck& h = *c.healthcheck;
    Json test = string_array(h.command);
    test.insert(test.begin(), "CMD");
    constexpr int64_t ns_per_ms = 1000000;
    run["Healthcheck"] = {{"Test", test},
                          {"Interval", h.interval_ms * ns_per_ms},
                          {"Timeout", h.timeout_ms * ns_per_ms},
                          {"StartPeriod", h.start_period_ms * ns_per_ms},
                          {"Retries", h.retries}};
  }
  std::string created = rfc3339_utc(c.created);
  Json history = {{"created", created}, {"created_by", c.created_by}};
  Json config = {{"created", created},
                 {"architecture", "amd64"},
                 {"os", "linux"},
                 {"config", run},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", Json::array({diff_id})}}},
                 {"history", Json::array({history})}};
  return config.dump();
}

OciImage make_image(const std::vector<TarEntry>& files, const ImageConfig& config) {
  OciImage image;
  std::string tar = tar_archive(files, config.created);
  image.diff_id = sha256_digest(tar);
  image.layer = {kMediaLayerGzip, gzip_compress(tar)};
  image.config = {kMediaConfig, image_config_json(config, image.diff_id)};
  Json manifest = {{"schemaVersion", 2},
                   {"mediaType", kMediaManifest},
                   {"config", descriptor(image.config)},
                   {"layers", Json::array({descriptor(image.layer)})}};
  image.manifest = {kMediaManifest, manifest.dump()};
  return image;
}

std::string index_json(const OciImage& image, const std::string& ref_name) {
  Json entry = descriptor(image.manifest);
  entry["platform"] = platform();
  if (!ref_name.empty()) entry["annotations"] = {{"org.opencontainers.image.ref.name", ref_name}};
  Json index = {{"schemaVersion", 2},
                {"mediaType", kMediaIndex},
                {"manifests", Json::array({entry})}};
  return index.dump();
}

std::string oci_archive(const OciImage& image, const std::string& ref_name, int64_t mtime) {
  auto blob_path = [](const Blob& b) { return "blobs/sha256/" + b.digest().substr(7); };
  // Docker's own format (docker save): the config and the layers by path,
  // here the OCI blobs, so the same bytes serve both readers.
  Json tags = ref_name.empty() ? Json::array() : Json::array({ref_name});
  Json docker = Json::array({{{"Config", blob_path(image.config)},
                              {"RepoTags", tags},
                              {"Layers", Json::array({blob_path(image.layer)})}}});
  std::vector<TarEntry> entries = {
      {"oci-layout", Json{{"imageLayoutVersion", "1.0.0"}}.dump()},
      {"index.json", index_json(image, ref_name)},
      {"manifest.json", docker.dump()},
      {"blobs", "", 0755, 0, 0, true},
      {"blobs/sha256", "", 0755, 0, 0, true},
  };
  for (const Blob* b : {&image.layer, &image.config, &image.manifest})
    entries.push_back({blob_path(*b), b->data});
  return tar_archive(std::move(entries), mtime);
}

std::string check_image_ref(std::string_view ref) {
  // The grammar of distribution/reference: [host[:port]/]path[/path...]:tag,
  // path components in lowercase letters and digits joined by . _ __ or -.
  static const std::regex re(
      R"(^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)"         // host
      R"((?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)"       // .domain
      R"((?::[0-9]+)?/)?)"                                        // :port/
      R"([a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)"                  // path
      R"((?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"            // /path
      R"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$)");                  // :tag
  size_t colon = ref.rfind(':'), slash = ref.rfind('/');
  if (colon == std::string_view::npos || (slash != std::string_view::npos && colon < slash))
    return "expected NAME:TAG (e.g. hello:1.0)";
  if (ref.size() > 255 + 129) return "too long";
  if (!std::regex_match(ref.begin(), ref.end(), re))
    return "not an image name: NAME is lowercase letters, digits and . _ - separated by /, "
           "after an optional HOST[:PORT]/; TAG is letters, digits and _ . - (128 at most)";
  return "";
}

}  // namespace asmsrv
