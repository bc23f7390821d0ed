// The OCI image writer (src/oci.h) and what asmsrv puts in an image
// (cli_image.cc): digests, gzip, tar, the JSON documents, determinism.
// The image as docker, skopeo and umoci read it: image_test.cc.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "cli.h"
#include "oci.h"
#include "spec.h"

namespace asmsrv {
namespace {

using json = nlohmann::ordered_json;  // as oci.cc writes: keys in order

// One entry as libarchive reads it back.
struct ReadEntry {
  std::string path;
  std::string data;
  int mode = 0;
  int type = 0;  // AE_IFREG, AE_IFDIR
  int64_t uid = -1, gid = -1, mtime = -1;
  std::string uname, gname;
};

std::vector<ReadEntry> untar(const std::string& tar) {
  std::vector<ReadEntry> out;
  struct archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  archive_read_support_filter_gzip(a);
  EXPECT_EQ(archive_read_open_memory(a, tar.data(), tar.size()), ARCHIVE_OK);
  struct archive_entry* e = nullptr;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    ReadEntry r;
    r.path = archive_entry_pathname(e);
    r.mode = archive_entry_perm(e);
    r.type = archive_entry_filetype(e);
    r.uid = archive_entry_uid(e);
    r.gid = archive_entry_gid(e);
    r.mtime = archive_entry_mtime(e);
    r.uname = archive_entry_uname(e) ? archive_entry_uname(e) : "";
    r.gname = archive_entry_gname(e) ? archive_entry_gname(e) : "";
    char buf[4096];
    la_ssize_t n;
    while ((n = archive_read_data(a, buf, sizeof buf)) > 0) r.data.append(buf, n);
    out.push_back(r);
  }
  archive_read_free(a);
  return out;
}

std::string gunzip(const std::string& gz) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    char buf[4096];
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  }
  EXPECT_EQ(rc, Z_STREAM_END);
  inflateEnd(&z);
  return out;
}

TEST(Oci, Sha256KnownAnswers) {
  // FIPS 180-2's examples.
  EXPECT_EQ(sha256_digest(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_digest("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Oci, GzipHasNoNameNorTime) {
  std::string data(100000, 'x');
  for (size_t i = 0; i < data.size(); i += 7) data[i] = static_cast<char>('a' + i % 26);
  std::string gz = gzip_compress(data);
  ASSERT_GE(gz.size(), 18u);
  EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(gz[1]), 0x8b);
  EXPECT_EQ(gz[2], 8) << "deflate";
  EXPECT_EQ(gz[3], 0) << "FLG: no name, no comment, no extra field";
  EXPECT_EQ(gz.substr(4, 4), std::string(4, '\0')) << "MTIME 0";
  EXPECT_LT(gz.size(), data.size() / 4);
  EXPECT_EQ(gunzip(gz), data);
  EXPECT_EQ(gzip_compress(data), gz);
  EXPECT_EQ(gunzip(gzip_compress("")), "");
}

TEST(Oci, TarIsSortedWithFixedTimesAndOwners) {
  std::vector<TarEntry> entries = {
      {"server", "\x7f" "ELF...", 0755},
      {"var/log/access.log", "", 0644, 65534, 65534},
      {"var/log", "", 0755, 0, 0, true},
      {"var", "", 0755, 0, 0, true},
  };
  std::string tar = tar_archive(entries, 1700000000);
  EXPECT_EQ(tar.size() % 512, 0u);
  std::vector<ReadEntry> read = untar(tar);
  ASSERT_EQ(read.size(), 4u);
  EXPECT_EQ(read[0].path, "server");
  EXPECT_EQ(read[0].data, "\x7f" "ELF...");
  EXPECT_EQ(read[0].mode, 0755);
  EXPECT_EQ(read[0].type, AE_IFREG);
  EXPECT_EQ(read[1].path, "var/");
  EXPECT_EQ(read[1].type, AE_IFDIR);
  EXPECT_EQ(read[2].path, "var/log/");
  EXPECT_EQ(read[3].path, "var/log/access.log");
  EXPECT_EQ(read[3].uid, 65534);
  EXPECT_EQ(read[3].gid, 65534);
  EXPECT_EQ(read[3].mode, 0644);
  for (const ReadEntry& r : read) {
    EXPECT_EQ(r.mtime, 1700000000) << r.path;
    EXPECT_EQ(r.uname, "") << r.path << ": no owner names, only numbers";
    EXPECT_EQ(r.gname, "") << r.path;
  }
  EXPECT_EQ(read[0].uid, 0);
  // The order given does not matter; the time does.
  std::vector<TarEntry> reversed(entries.rbegin(), entries.rend());
  EXPECT_EQ(tar_archive(reversed, 1700000000), tar);
  EXPECT_NE(tar_archive(entries, 0), tar);
}

TEST(Oci, TarRefusesWhatUstarCannotHold) {
  try {
    tar_archive({{std::string(300, 'a'), "x"}}, 0);
    FAIL() << "a 300-byte name was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("tar: " + std::string(300, 'a') + ": ", 0), 0u) << e.what();
  }
}

TEST(Oci, Rfc3339) {
  EXPECT_EQ(rfc3339_utc(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(rfc3339_utc(1700000000), "2023-11-14T22:13:20Z");
  EXPECT_EQ(rfc3339_utc(253402300799), "9999-12-31T23:59:59Z");
}

TEST(Oci, SourceDateEpoch) {
  EXPECT_EQ(source_date_epoch(nullptr), 0);
  EXPECT_EQ(source_date_epoch(""), 0);
  EXPECT_EQ(source_date_epoch("1700000000"), 1700000000);
  for (const char* bad : {"-1", "abc", "17e8", " 5", "5 ", "253402300800"}) {
    try {
      source_date_epoch(bad);
      FAIL() << bad << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()),
                std::string("SOURCE_DATE_EPOCH=\"") + bad +
                    "\": expected a number of seconds since 1970-01-01 (0 to 253402300799)");
    }
  }
}

ImageConfig sample_config() {
  ImageConfig c;
  c.entrypoint = {"/server"};
  c.tcp_ports = {8080};
  c.user = "65534:65534";
  c.working_dir = "/";
  c.stop_signal = "SIGTERM";
  c.labels = {{"org.opencontainers.image.title", "hello"}};
  c.created = 1700000000;
  c.created_by = "asmsrv image hello.json";
  return c;
}

const char* kDiffId = "sha256:59a2f7ec6c26f761a0756ece729459b76d450314f2c8796145e964b135501db9";

TEST(Oci, ConfigWithoutHealthcheck) {
  EXPECT_EQ(image_config_json(sample_config(), kDiffId),
            R"({"created":"2023-11-14T22:13:20Z","architecture":"amd64","os":"linux",)"
            R"("config":{"User":"65534:65534","ExposedPorts":{"8080/tcp":{}},)"
            R"("Entrypoint":["/server"],"WorkingDir":"/",)"
            R"("Labels":{"org.opencontainers.image.title":"hello"},"StopSignal":"SIGTERM"},)"
            R"("rootfs":{"type":"layers","diff_ids":)"
            R"(["sha256:59a2f7ec6c26f761a0756ece729459b76d450314f2c8796145e964b135501db9"]},)"
            R"("history":[{"created":"2023-11-14T22:13:20Z","created_by":"asmsrv image hello.json"}]})");
}

TEST(Oci, ConfigWithHealthcheck) {
  ImageConfig c = sample_config();
  c.healthcheck = probe_healthcheck(2000);
  json config = json::parse(image_config_json(c, kDiffId));
  EXPECT_EQ(config["config"]["Healthcheck"],
            json::parse(R"({"Test":["CMD","/server","--probe"],"Interval":10000000000,)"
                        R"("Timeout":3000000000,"StartPeriod":0,"Retries":3})"));
  // The rest is as without it.
  config["config"].erase("Healthcheck");
  EXPECT_EQ(config, json::parse(image_config_json(sample_config(), kDiffId)));
}

Spec spec_from(const std::string& text) { return parse_spec(text, "specs/x.json"); }

TEST(Oci, ServerImageConfig) {
  Spec spec = spec_from(R"({"name": "hello", "listen": {"port": 9000},
                            "response": {"body": "hi"}})");
  ImageConfig c = server_image_config(spec, 0);
  EXPECT_EQ(c.entrypoint, std::vector<std::string>{"/server"});
  EXPECT_EQ(c.tcp_ports, std::vector<int>{9000});
  EXPECT_EQ(c.user, "65534:65534");
  EXPECT_EQ(c.stop_signal, "SIGTERM");
  EXPECT_FALSE(c.healthcheck) << "no probe in the spec";
  EXPECT_EQ(c.labels["org.opencontainers.image.title"], "hello");
  EXPECT_EQ(c.labels["org.opencontainers.image.created"], "1970-01-01T00:00:00Z");
  EXPECT_EQ(c.labels["org.opencontainers.image.description"],
            std::string("hello: a static x86-64 server in assembly, built by asmsrv ") +
                ASMSRV_VERSION + " from x.json; listens on 0.0.0.0:9000");
  EXPECT_EQ(server_image_config(spec, 1700000000).labels["org.opencontainers.image.created"],
            "2023-11-14T22:13:20Z");
}

TEST(Oci, RuntimeFilesForALogFile) {
  const std::string response = R"(, "response": {"body": "hi"}})";
  EXPECT_TRUE(server_runtime_files(spec_from(R"({"log": {"requests": true})" + response)).empty());
  EXPECT_TRUE(server_runtime_files(spec_from(R"({"log": {"target": "x.log"})" + response)).empty())
      << "no log line is written, so no file is opened";
  std::vector<TarEntry> files =
      server_runtime_files(spec_from(R"({"log": {"requests": true, "target": "/var/log/../log/a.log"})" + response));
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].path, "var/log");
  EXPECT_TRUE(files[0].directory);
  EXPECT_EQ(files[0].uid, 0);
  EXPECT_EQ(files[1].path, "var");
  EXPECT_EQ(files[2].path, "var/log/a.log");
  EXPECT_FALSE(files[2].directory);
  EXPECT_EQ(files[2].uid, 65534) << "the server, as nobody, opens it for appending";
  EXPECT_EQ(files[2].data, "");
  files = server_runtime_files(spec_from(R"({"log": {"connections": true, "target": "access.log"})" + response));
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].path, "access.log") << "relative to the working directory, /";
  EXPECT_TRUE(server_runtime_files(spec_from(R"({"log": {"requests": true, "target": "/dev/stdout"})" + response)).empty())
      << "the engine provides /dev";
}

TEST(Oci, ImageDocumentsReferToEachOther) {
  std::vector<TarEntry> files = {{"server", "binary", 0755}};
  OciImage image = make_image(files, sample_config());
  std::string tar = gunzip(image.layer.data);
  EXPECT_EQ(image.diff_id, sha256_digest(tar));
  std::vector<ReadEntry> layer = untar(tar);
  ASSERT_EQ(layer.size(), 1u);
  EXPECT_EQ(layer[0].mtime, 1700000000) << "the layer's time is the image's";
  json config = json::parse(image.config.data);
  EXPECT_EQ(config["rootfs"]["diff_ids"], json::array({image.diff_id}));
  EXPECT_EQ(image.manifest.data,
            json({{"schemaVersion", 2},
                  {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                  {"config", {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                              {"digest", image.config.digest()},
                              {"size", image.config.data.size()}}},
                  {"layers", json::array({{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                                           {"digest", image.layer.digest()},
                                           {"size", image.layer.data.size()}}})}})
                .dump());
  // The same inputs, the same image; another time, another one.
  EXPECT_EQ(make_image(files, sample_config()).manifest.digest(), image.manifest.digest());
  ImageConfig later = sample_config();
  later.created += 1;
  EXPECT_NE(make_image(files, later).manifest.digest(), image.manifest.digest());
}

TEST(Oci, IndexNamesTheManifest) {
  OciImage image = make_image({{"server", "binary", 0755}}, sample_config());
  json entry = {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                {"digest", image.manifest.digest()},
                {"size", image.manifest.data.size()},
                {"platform", {{"architecture", "amd64"}, {"os", "linux"}}}};
  json index = {{"schemaVersion", 2},
                {"mediaType", "application/vnd.oci.image.index.v1+json"},
                {"manifests", json::array({entry})}};
  EXPECT_EQ(index_json(image, ""), index.dump());
  index["manifests"][0]["annotations"] = {{"org.opencontainers.image.ref.name", "hello:1.0"}};
  EXPECT_EQ(index_json(image, "hello:1.0"), index.dump());
}

TEST(Oci, ArchiveHoldsTheLayoutAndDockersManifest) {
  OciImage image = make_image({{"server", "binary", 0755}}, sample_config());
  std::string archive = oci_archive(image, "hello:1.0", 1700000000);
  std::vector<ReadEntry> entries = untar(archive);
  std::vector<std::string> paths;
  std::map<std::string, std::string> files;
  for (const ReadEntry& e : entries) {
    paths.push_back(e.path);
    files[e.path] = e.data;
    EXPECT_EQ(e.mtime, 1700000000) << e.path;
  }
  auto blob = [](const Blob& b) { return "blobs/sha256/" + b.digest().substr(7); };
  std::vector<std::string> want = {"blobs/", "blobs/sha256/", blob(image.layer), blob(image.config),
                                   blob(image.manifest)};
  std::sort(want.begin() + 2, want.end());
  for (const char* f : {"index.json", "manifest.json", "oci-layout"}) want.push_back(f);
  EXPECT_EQ(paths, want);
  for (const Blob* b : {&image.layer, &image.config, &image.manifest})
    EXPECT_EQ(files[blob(*b)], b->data) << "a blob is named by its digest";
  EXPECT_EQ(files["oci-layout"], R"({"imageLayoutVersion":"1.0.0"})");
  EXPECT_EQ(files["index.json"], index_json(image, "hello:1.0"));
  EXPECT_EQ(json::parse(files["manifest.json"]),
            json::parse(R"([{"Config":")" + blob(image.config) + R"(","RepoTags":["hello:1.0"],)" +
                        R"("Layers":[")" + blob(image.layer) + R"("]}])"));
  EXPECT_EQ(oci_archive(image, "hello:1.0", 1700000000), archive);
  EXPECT_EQ(json::parse(untar(oci_archive(image, "", 0))[6].data)[0]["RepoTags"], json::array());
}

TEST(Oci, ImageRefs) {
  for (const char* good : {"hello:1.0", "hello:latest", "my-org/hello_world:v1.2.3",
                           "localhost:5000/hello:dev", "ghcr.io/a.b/c__d:X_y-1"})
    EXPECT_EQ(check_image_ref(good), "") << good;
  EXPECT_EQ(check_image_ref("hello"), "expected NAME:TAG (e.g. hello:1.0)");
  EXPECT_EQ(check_image_ref("localhost:5000/hello"), "expected NAME:TAG (e.g. hello:1.0)");
  for (const char* bad : {"Hello:1", "hello:", "a//b:1", "hello:-x", ":1", "hello:1:2", "-a:1",
                          "a b:1"})
    EXPECT_NE(check_image_ref(bad), "") << bad;
}

}  // namespace
}  // namespace asmsrv
