// asmsrv image, as the tools that read images see it: skopeo inspects the
// archive, umoci and plain tar unpack it, and the unpacked /server runs as
// PID 1 of a fresh PID namespace, chrooted into the image's root file
// system as the image's user, answers over 127.0.0.1 and stops with 0 on
// SIGTERM. Two builds give the same digest. Where a Docker engine answers,
// docker load and docker run too.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "server_util.h"
#include "test_util.h"

namespace asmsrv::test {
namespace {

using json = nlohmann::ordered_json;  // (nlohmann::json draws GCC 12 -Warray-bounds false positives here)

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// A JSON value as text: a string's value, else its JSON.
std::string text(const json& j) { return j.is_string() ? j.get<std::string>() : j.dump(); }

struct Image {
  std::string archive;  // the .tar
  std::string digest;   // the manifest's, as asmsrv printed it
};

/// asmsrv image SPEC -o DIR/image.tar --port PORT [--tag TAG], with `env`.
/// Records a failure and returns an empty archive path when it fails.
Image make_image(const std::string& spec, const std::string& dir, int port,
                 const std::string& tag = "", const std::map<std::string, std::string>& env = {}) {
  std::vector<std::string> args = {"image", spec, "-o", dir + "/image.tar", "--port", std::to_string(port)};
  if (!tag.empty()) args.insert(args.end(), {"--tag", tag});
  CmdResult r = asmsrv(args, env);
  EXPECT_EQ(r.status, 0) << r.err;
  std::string prefix = dir + "/image.tar: ";
  EXPECT_TRUE(r.out.starts_with(prefix + "sha256:")) << r.out;
  if (r.status != 0 || !r.out.starts_with(prefix)) return {};
  return {dir + "/image.tar", r.out.substr(prefix.size(), r.out.size() - prefix.size() - 1)};
}

/// One file of a tar archive, read with tar.
std::string member(const std::string& archive, const std::string& path) {
  CmdResult r = run({"tar", "-xOf", archive, path});
  EXPECT_EQ(r.status, 0) << r.err;
  return r.out;
}

/// The image's root file system, unpacked with plain tar as an engine does:
/// index.json names the manifest, which names the layer. Owners are kept
/// (tar as root). Returns the rootfs path, or "" after a failure.
std::string unpack_with_tar(const Image& image, const std::string& dir) {
  std::string layout = dir + "/layout", rootfs = dir + "/rootfs";
  std::filesystem::create_directories(layout);
  std::filesystem::create_directories(rootfs);
  if (run({"tar", "-xf", image.archive, "-C", layout}).status != 0) return "";
  json index = json::parse(read(layout + "/index.json"));
  std::string manifest_digest = index["manifests"][0]["digest"];
  EXPECT_EQ(manifest_digest, image.digest);
  json manifest = json::parse(read(layout + "/blobs/sha256/" + manifest_digest.substr(7)));
  std::string layer = manifest["layers"][0]["digest"];
  CmdResult r = run({"tar", "-xzf", layout + "/blobs/sha256/" + layer.substr(7), "-C", rootfs});
  EXPECT_EQ(r.status, 0) << r.err;
  return r.status == 0 ? rootfs : "";
}

TEST(Image, SkopeoInspectsIt) {
  if (find_in_path("skopeo").empty()) GTEST_SKIP() << "skopeo is not installed (scripts/deps installs it)";
  std::string dir = temp_dir();
  Image image = make_image(spec_path("hello"), dir, 9123, "hello:1.0");
  ASSERT_FALSE(image.archive.empty());
  for (const std::string& ref : {"oci-archive:" + image.archive, "oci-archive:" + image.archive + ":hello:1.0"}) {
    CmdResult r = run({"skopeo", "inspect", ref});
    ASSERT_EQ(r.status, 0) << ref << ": " << r.err;
    json info = json::parse(r.out);
    EXPECT_EQ(text(info["Digest"]), image.digest) << ref;
    EXPECT_EQ(text(info["Architecture"]), "amd64");
    EXPECT_EQ(text(info["Os"]), "linux");
    EXPECT_EQ(text(info["Created"]), "1970-01-01T00:00:00Z") << "no SOURCE_DATE_EPOCH: time 0";
    EXPECT_EQ(info["Layers"].size(), 1u);
    EXPECT_EQ(text(info["Labels"]["org.opencontainers.image.title"]), "hello");
  }
  CmdResult r = run({"skopeo", "inspect", "--config", "oci-archive:" + image.archive});
  ASSERT_EQ(r.status, 0) << r.err;
  json config = json::parse(r.out)["config"];
  EXPECT_EQ(config["Entrypoint"], json::array({"/server"}));
  EXPECT_EQ(config["ExposedPorts"], json::parse(R"({"9123/tcp": {}})")) << "the --port given";
  EXPECT_EQ(text(config["User"]), "65534:65534");
  EXPECT_EQ(text(config["StopSignal"]), "SIGTERM");
  EXPECT_FALSE(config.contains("Healthcheck")) << "hello.json has no probe";
  // A name the archive does not hold is an error: skopeo really reads it.
  EXPECT_NE(run({"skopeo", "inspect", "oci-archive:" + image.archive + ":other:1"}).status, 0);
}

TEST(Image, UmociUnpacksTheServer) {
  if (find_in_path("umoci").empty()) GTEST_SKIP() << "umoci is not installed (scripts/deps installs it)";
  std::string dir = temp_dir();
  Image image = make_image(spec_path("hello"), dir, 9124, "hello:1.0");
  ASSERT_FALSE(image.archive.empty());
  ASSERT_EQ(run({"tar", "-xf", image.archive, "-C", dir}).status, 0);
  std::vector<std::string> unpack = {"umoci", "unpack", "--image", dir + ":hello:1.0", dir + "/bundle"};
  if (::geteuid() != 0) unpack.insert(unpack.begin() + 2, "--rootless");
  CmdResult r = run(unpack);
  ASSERT_EQ(r.status, 0) << r.err;
  std::string server = dir + "/bundle/rootfs/server";
  struct stat st {};
  ASSERT_EQ(::stat(server.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  // The same bytes asmsrv build makes.
  ASSERT_EQ(asmsrv({"build", spec_path("hello"), "-o", dir + "/built", "--port", "9124"}).status, 0);
  EXPECT_EQ(read(server), read(dir + "/built"));
  // umoci's runtime config carries the image's.
  json runtime = json::parse(read(dir + "/bundle/config.json"));
  EXPECT_EQ(runtime["process"]["args"], json::array({"/server"}));
  EXPECT_EQ(runtime["process"]["user"]["uid"], 65534);
}

/// The server of `image`, run from its unpacked rootfs as PID 1 of a new PID
/// namespace (with its own /proc), chrooted and as user 65534, the way an
/// engine runs the image. Skips when this sandbox cannot do that.
class Pid1Server {
 public:
  Pid1Server(const std::string& rootfs, const std::string& dir) {
    std::string unshare = find_in_path("unshare"), chroot = find_in_path("chroot");
    if (unshare.empty() || chroot.empty()) {
      skip_ = "unshare or chroot (util-linux, coreutils) is not installed";
      return;
    }
    if (::geteuid() != 0) {
      skip_ = "chroot and a PID namespace need root";
      return;
    }
    std::string wrapper = dir + "/in-container";
    write(wrapper, "#!/bin/sh\nexec " + unshare + " --pid --fork --mount-proc " + chroot +
                       " --userspec=65534:65534 " + rootfs + " /server\n");
    ::chmod(wrapper.c_str(), 0755);
    proc_ = std::make_unique<ServerProcess>(wrapper, dir);
    if (!proc_->wait_ready(5000) && proc_->exited() && contains(proc_->err(), "Operation not permitted"))
      skip_ = "cannot create a PID namespace here: " + proc_->err();
  }
  const std::string& skip() const { return skip_; }
  ServerProcess& proc() { return *proc_; }
  /// unshare's one child: the server, as the host sees it.
  pid_t server() const {
    pid_t pid = -1;
    eventually([&] {
      std::string p = std::to_string(proc_->pid());
      std::istringstream in(read("/proc/" + p + "/task/" + p + "/children"));
      return static_cast<bool>(in >> pid);
    });
    return pid;
  }

 private:
  std::string skip_;
  std::unique_ptr<ServerProcess> proc_;
};

std::string status_line(const std::string& status, const std::string& key) {
  size_t pos = status.find("\n" + key + ":");
  return pos == std::string::npos ? "" : status.substr(pos + 1, status.find('\n', pos + 1) - pos - 1);
}

TEST(Image, ServerRunsAsPid1InItsRootfs) {
  std::string dir = temp_dir();
  int port = free_port();
  Image image = make_image(spec_path("hello"), dir, port, "hello:1.0");
  ASSERT_FALSE(image.archive.empty());
  std::string rootfs = unpack_with_tar(image, dir);
  ASSERT_FALSE(rootfs.empty());
  Pid1Server c(rootfs, dir);
  if (!c.skip().empty()) GTEST_SKIP() << c.skip();
  ASSERT_TRUE(c.proc().wait_ready(5000)) << c.proc().out() << c.proc().err();
  pid_t server = c.server();
  ASSERT_GT(server, 0);
  std::string status = read("/proc/" + std::to_string(server) + "/status");
  EXPECT_TRUE(status_line(status, "NSpid").ends_with("\t1")) << status_line(status, "NSpid");
  EXPECT_TRUE(status_line(status, "Uid").starts_with("Uid:\t65534\t")) << status_line(status, "Uid");

  ReadResult res = exchange(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 3000);
  EXPECT_TRUE(res.data.starts_with("HTTP/1.1 200 OK\r\n")) << res.data;
  EXPECT_TRUE(res.data.ends_with("\r\n\r\n" + load_spec(spec_path("hello")).response->body))
      << res.data;
  ASSERT_EQ(::kill(server, SIGTERM), 0);
  EXPECT_EQ(c.proc().wait_exit(3000), std::optional<int>(0)) << c.proc().err();
}

// A spec with a probe: the image's Healthcheck runs `/server --probe`, and
// that command, run in the image's rootfs as its user (as an engine runs a
// health check), says healthy while the server answers and unhealthy once it
// is gone.
TEST(Image, TheHealthcheckRunsTheProbe) {
  std::string dir = temp_dir();
  int port = free_port();
  Image image = make_image(spec_path("health"), dir, port, "health:1.0");
  ASSERT_FALSE(image.archive.empty());
  // The raw config blob: skopeo's parsed view leaves Healthcheck out (the OCI
  // spec has no such field; Docker's config does, and engines read it).
  CmdResult r = run({"skopeo", "inspect", "--config", "--raw", "oci-archive:" + image.archive});
  ASSERT_EQ(r.status, 0) << r.err;
  json hc = json::parse(r.out)["config"]["Healthcheck"];
  EXPECT_EQ(hc["Test"], json::array({"CMD", "/server", "--probe"})) << r.out;
  EXPECT_EQ(hc["Timeout"].get<int64_t>(), int64_t{3000} * 1000 * 1000) << "the probe's 2000 ms + 1 s, in ns";
  std::string rootfs = unpack_with_tar(image, dir);
  ASSERT_FALSE(rootfs.empty());
  Pid1Server c(rootfs, dir);
  if (!c.skip().empty()) GTEST_SKIP() << c.skip();
  ASSERT_TRUE(c.proc().wait_ready(5000)) << c.proc().out() << c.proc().err();
  std::vector<std::string> probe = {"chroot", "--userspec=65534:65534", rootfs, "/server", "--probe"};
  CmdResult healthy = run(probe);
  EXPECT_EQ(healthy.status, 0) << healthy.err;
  ASSERT_EQ(::kill(c.server(), SIGTERM), 0);
  EXPECT_EQ(c.proc().wait_exit(3000), std::optional<int>(0)) << c.proc().err();
  CmdResult gone = run(probe);
  EXPECT_EQ(gone.status, 1);
  EXPECT_TRUE(contains(gone.err, "Connection refused")) << gone.err;
}

TEST(Image, ALogFileIsWritableByTheImagesUser) {
  std::string dir = temp_dir();
  std::string spec =
      spec_copy("hello", {{"log", {{"requests", true}, {"target", "/var/log/asmsrv/access.log"}}}});
  int port = free_port();
  Image image = make_image(spec, dir, port);
  ASSERT_FALSE(image.archive.empty());
  std::string rootfs = unpack_with_tar(image, dir);
  ASSERT_FALSE(rootfs.empty());
  std::string log = rootfs + "/var/log/asmsrv/access.log";
  struct stat st {};
  ASSERT_EQ(::stat(log.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_size, 0);
  Pid1Server c(rootfs, dir);
  if (!c.skip().empty()) GTEST_SKIP() << c.skip();
  ASSERT_TRUE(c.proc().wait_ready(5000)) << c.proc().out() << c.proc().err();
  ReadResult res = exchange(port, "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 3000);
  EXPECT_TRUE(res.data.starts_with("HTTP/1.1 ")) << res.data;
  EXPECT_TRUE(eventually([&] { return contains(read(log), "GET /x"); })) << read(log);
  ASSERT_EQ(::kill(c.server(), SIGTERM), 0);
  EXPECT_EQ(c.proc().wait_exit(3000), std::optional<int>(0)) << c.proc().err();
}

TEST(Image, TwoBuildsGiveTheSameDigest) {
  std::string a = temp_dir(), b = temp_dir(), later = temp_dir();
  Image first = make_image(spec_path("site"), a, 9125, "site:1");
  Image second = make_image(spec_path("site"), b, 9125, "site:1");
  ASSERT_FALSE(first.archive.empty());
  ASSERT_FALSE(second.archive.empty());
  EXPECT_EQ(first.digest, second.digest);
  EXPECT_TRUE(read(first.archive) == read(second.archive)) << "the archives differ";
  // SOURCE_DATE_EPOCH sets the time: in the config, the labels, the tars.
  Image dated = make_image(spec_path("site"), later, 9125, "site:1", {{"SOURCE_DATE_EPOCH", "1700000000"}});
  ASSERT_FALSE(dated.archive.empty());
  EXPECT_NE(dated.digest, first.digest);
  json index = json::parse(member(dated.archive, "index.json"));
  json manifest = json::parse(member(dated.archive, "blobs/sha256/" + dated.digest.substr(7)));
  std::string config_digest = manifest["config"]["digest"];
  json config = json::parse(member(dated.archive, "blobs/sha256/" + config_digest.substr(7)));
  EXPECT_EQ(text(config["created"]), "2023-11-14T22:13:20Z");
  EXPECT_EQ(text(config["config"]["Labels"]["org.opencontainers.image.created"]), "2023-11-14T22:13:20Z");
  CmdResult listing = run({"tar", "--utc", "-tvf", dated.archive});
  EXPECT_TRUE(contains(listing.out, "2023-11-14 22:13 index.json")) << listing.out;
  EXPECT_EQ(text(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]), "site:1");
}

TEST(Image, Errors) {
  std::string dir = temp_dir();
  CmdResult r = asmsrv({"image", "specs/hello.json", "-o", dir + "/x.tar", "--tag", "Hello"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "--tag: Hello: expected NAME:TAG (e.g. hello:1.0)\nRun with --help for more information.\n");
  r = asmsrv({"image", "specs/hello.json", "-o", dir + "/x.tar"}, {{"SOURCE_DATE_EPOCH", "yesterday"}});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "asmsrv: SOURCE_DATE_EPOCH=\"yesterday\": expected a number of seconds since "
                   "1970-01-01 (0 to 253402300799)\n");
  r = asmsrv({"image", "specs/hello.json", "-o", "-"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "asmsrv: image writes a file: -o - is not allowed\n");
  write(dir + "/bad.json", R"({"listen": {"port": 0}})");
  r = asmsrv({"image", dir + "/bad.json", "-o", dir + "/x.tar"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_FALSE(exists(dir + "/x.tar")) << "nothing is written on an error";
}

TEST(Image, WarnsAboutAPrivilegedPortAndADirectoryOutput) {
  std::string dir = temp_dir();
  CmdResult r = asmsrv({"image", "specs/hello.json", "-o", dir + "/", "--port", "80"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "asmsrv: warning: port 80 is below 1024: as user 65534 the server can bind it "
                   "only with CAP_NET_BIND_SERVICE or net.ipv4.ip_unprivileged_port_start <= 80 "
                   "(Docker sets 0; in Kubernetes set it in the pod's securityContext.sysctls)\n");
  EXPECT_TRUE(r.out.starts_with(dir + "/hello.tar: sha256:")) << r.out;
  EXPECT_TRUE(exists(dir + "/hello.tar"));
}

// ---------------------------------------------------------------------------
// Docker, where an engine answers

TEST(Image, DockerLoadsAndRunsIt) {
  if (find_in_path("docker").empty()) GTEST_SKIP() << "docker is not installed";
  CmdResult info = run({"docker", "info"});
  if (info.status != 0) GTEST_SKIP() << "no Docker engine answers: " << info.err;
  std::string dir = temp_dir();
  int port = free_port();
  std::string tag = "asmsrv-image-test:" + std::to_string(port);
  Image image = make_image(spec_path("hello"), dir, port, tag);
  ASSERT_FALSE(image.archive.empty());
  CmdResult load = run({"docker", "load", "-i", image.archive});
  ASSERT_EQ(load.status, 0) << load.err;
  EXPECT_TRUE(contains(load.out, tag)) << load.out;
  std::string name = "asmsrv-image-test-" + std::to_string(port);
  CmdResult started = run({"docker", "run", "-d", "--rm", "--name", name, "-p",
                           "127.0.0.1:" + std::to_string(port) + ":" + std::to_string(port), tag});
  ASSERT_EQ(started.status, 0) << started.err;
  EXPECT_TRUE(eventually([&] {
    return exchange(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 1000)
        .data.starts_with("HTTP/1.1 200 OK\r\n");
  }, 10000, 100));
  CmdResult health = run({"docker", "inspect", "--format", "{{json .Config.Healthcheck}}", name});
  if (health.out != "null\n") {
    EXPECT_TRUE(eventually([&] {
      return run({"docker", "inspect", "--format", "{{.State.Health.Status}}", name}).out == "healthy\n";
    }, 60000, 500)) << "the HEALTHCHECK never turned healthy";
  }
  CmdResult stopped = run({"docker", "stop", "-t", "10", name});
  EXPECT_EQ(stopped.status, 0) << stopped.err;
  run({"docker", "rmi", tag});
}

}  // namespace
}  // namespace asmsrv::test
