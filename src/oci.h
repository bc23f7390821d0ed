// OCI image archives, written without a container engine: a layer (a tar,
// gzipped), the image config, the manifest, and the image layout (oci-layout,
// index.json, blobs/sha256/...) packed into one tar that `docker load`,
// `podman load` and `skopeo ... oci-archive:FILE` read.
//
// Every byte is a function of the inputs: entries sorted, one fixed mtime,
// numeric owners without names, a gzip header without time or name, JSON
// with sorted keys. The same inputs give the same image digest.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace asmsrv {

/// One entry of a tar archive: a regular file or (directory) a directory.
/// `path` is relative ("server", "var/log"), without a leading "/".
struct TarEntry {
  std::string path;
  std::string data;  // a file's bytes
  int mode = 0644;   // permission bits
  int uid = 0, gid = 0;
  bool directory = false;
};

/// A ustar archive of `entries`, sorted by path, each with mtime `mtime`
/// (seconds since the epoch) and no owner names (libarchive). Throws
/// std::runtime_error on a path or size ustar cannot hold.
std::string tar_archive(std::vector<TarEntry> entries, int64_t mtime);

/// `data` in gzip format (RFC 1952, zlib, at `level` 1-9) with no file
/// name and a zero mtime in the header: the same bytes on every run.
std::string gzip_compress(std::string_view data, int level = 9);

/// "sha256:<64 lowercase hex digits>" (OpenSSL's libcrypto).
std::string sha256_digest(std::string_view data);

/// "1970-01-01T00:00:00Z" (RFC 3339, UTC) for `t` seconds since the epoch.
std::string rfc3339_utc(int64_t t);

/// The build time of a reproducible build: SOURCE_DATE_EPOCH's value
/// (`env`, a decimal count of seconds), or 0 when it is unset or empty.
/// Throws std::runtime_error on anything else.
int64_t source_date_epoch(const char* env);

/// A container engine's health check (Docker's image config extension):
/// runs `command` in the container every `interval_ms`; `retries` failures
/// in a row make the container unhealthy.
struct Healthcheck {
  std::vector<std::string> command;  // exec form, without the "CMD" word
  int interval_ms = 10000;
  int timeout_ms = 3000;
  int start_period_ms = 0;
  int retries = 3;
};

/// What the image config says about running the image.
struct ImageConfig {
  std::vector<std::string> entrypoint;
  std::vector<int> tcp_ports;  // ExposedPorts "N/tcp"
  std::string user;            // "65534:65534"
  std::string working_dir;
  std::string stop_signal;     // "SIGTERM"
  std::map<std::string, std::string> labels;
  std::optional<Healthcheck> healthcheck;
  int64_t created = 0;         // seconds since the epoch
  std::string created_by;      // the history entry of the one layer
};

/// A content-addressed blob: its bytes and their media type.
struct Blob {
  std::string media_type;
  std::string data;
  std::string digest() const { return sha256_digest(data); }
};

/// The media types of the OCI image spec v1.
inline constexpr const char* kMediaIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kMediaManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kMediaConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr const char* kMediaLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The image config JSON (linux/amd64) for a single layer whose
/// uncompressed tar has the digest `diff_id`.
std::string image_config_json(const ImageConfig& config, const std::string& diff_id);

/// An image of one layer: the layer (tar+gzip), its config and the manifest
/// that names both.
struct OciImage {
  Blob layer, config, manifest;
  std::string diff_id;  // the digest of the uncompressed layer
};

/// Packs `files` into the layer (with mtime config.created) and writes the
/// config and the manifest.
OciImage make_image(const std::vector<TarEntry>& files, const ImageConfig& config);

/// The image layout's index.json: one manifest, for linux/amd64, named
/// `ref_name` (org.opencontainers.image.ref.name) when not empty.
std::string index_json(const OciImage& image, const std::string& ref_name);

/// The OCI archive: a tar holding oci-layout, index.json, the blobs under
/// blobs/sha256/, and Docker's manifest.json (for engines that load only
/// that format) with `ref_name` as its RepoTags entry. mtime: `mtime`.
std::string oci_archive(const OciImage& image, const std::string& ref_name, int64_t mtime);

/// An empty string when `ref` is a usable image name with a tag
/// ("name:tag", "registry:5000/path/name:tag"), else what is wrong with it.
std::string check_image_ref(std::string_view ref);

}  // namespace asmsrv
