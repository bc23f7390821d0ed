// asmsrv image: the server built as `build` builds it, packed into an OCI
// image archive (oci.h) of one layer, without a container engine or root.
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>

#include "cli.h"
#include "fs.h"

namespace asmsrv {

namespace {

// The user the image runs as: nobody, so the server never runs as root.
constexpr int kNobody = 65534;

// Where the server sits in the image, and so its entrypoint.
constexpr const char* kServerPath = "server";

// Warnings about a spec that builds but would not serve as an image.
void warn_about(const Spec& spec) {
  if (spec.port < 1024)
    fmt::print(stderr,
               "asmsrv: warning: port {} is below 1024: as user {} the server can bind it only "
               "with CAP_NET_BIND_SERVICE or net.ipv4.ip_unprivileged_port_start <= {} (Docker "
               "sets 0; in Kubernetes set it in the pod's securityContext.sysctls)\n",
               spec.port, kNobody, spec.port);
  if (spec.address.starts_with("127."))
    fmt::print(stderr,
               "asmsrv: warning: the server listens on {}: in a container only the container "
               "itself can reach it (0.0.0.0 listens on every address)\n",
               spec.address);
}

}  // namespace

CLI::App* setup_image(CLI::App& app, ImageOptions& opt) {
  CLI::App* cmd = app.add_subcommand(
      "image", "Build the server into an OCI image archive (docker load, podman load, skopeo)");
  add_compile_options(*cmd, opt.compile);
  cmd->add_option("-o,--output", opt.output,
                  "The image archive to write; DIR/ writes DIR/<spec name>.tar")->required();
  cmd->add_option("--tag", opt.tag, "Name the image NAME:TAG")
      ->type_name("NAME:TAG")
      ->check([](const std::string& ref) {
        std::string why = check_image_ref(ref);
        return why.empty() ? why : fmt::format("{}: {}", ref, why);
      });
  cmd->add_flag("-v,--verbose", opt.verbose, "Print each tool's command line");
  return cmd;
}

Healthcheck probe_healthcheck(int probe_timeout_ms) {
  Healthcheck h;
  h.command = {std::string("/") + kServerPath, "--probe"};
  h.timeout_ms = probe_timeout_ms + 1000;
  return h;
}

ImageConfig server_image_config(const Spec& spec, int64_t created) {
  ImageConfig c;
  c.entrypoint = {std::string("/") + kServerPath};
  c.tcp_ports = {spec.port};
  c.user = fmt::format("{}:{}", kNobody, kNobody);
  c.working_dir = "/";
  c.stop_signal = "SIGTERM";
  c.created = created;
  std::string from = std::filesystem::path(spec.file).filename().string();
  c.created_by = fmt::format("asmsrv image {} (asmsrv {})", from, ASMSRV_VERSION);
  c.labels = {
      {"org.opencontainers.image.title", spec.name},
      {"org.opencontainers.image.description",
       fmt::format("{}: a static x86-64 server in assembly, built by asmsrv {} from {}; listens "
                   "on {}", spec.name, ASMSRV_VERSION, from, listen_text(spec))},
      {"org.opencontainers.image.created", rfc3339_utc(created)},
  };
  if (spec.probe) c.healthcheck = probe_healthcheck(spec.probe->timeout_ms);
  return c;
}

std::vector<TarEntry> server_runtime_files(const Spec& spec) {
  std::vector<TarEntry> files;
  bool logs = spec.log_connections || spec.log_requests;
  if (!logs || spec.log_target != LogTarget::file) return files;
  // The log file, empty and owned by the server's user, so that it can open
  // it with O_CREAT|O_APPEND in a root-owned directory. A relative path is
  // relative to the working directory, "/". Paths the engine mounts (/dev,
  // /proc, /sys) are left to it.
  namespace fsys = std::filesystem;
  fsys::path log = (fsys::path("/") / spec.log_path).lexically_normal().relative_path();
  std::string first = log.empty() ? "" : log.begin()->string();
  if (log.empty() || !log.has_filename() || first == "dev" || first == "proc" || first == "sys")
    return files;
  for (fsys::path dir = log.parent_path(); !dir.empty(); dir = dir.parent_path())
    files.push_back({dir.string(), "", 0755, 0, 0, true});
  files.push_back({log.string(), "", 0644, kNobody, kNobody, false});
  return files;
}

int run_image(const ImageOptions& opt) {
  return guarded([&] {
    if (opt.output == "-")
      throw std::runtime_error("image writes a file: -o - is not allowed");
    std::string out = output_path(opt.output, opt.compile.spec, ".tar");
    int64_t created = source_date_epoch(std::getenv("SOURCE_DATE_EPOCH"));
    Spec spec = load_for_compile(opt.compile.spec, opt.compile.port, opt.compile.teach);
    Program program;
    std::string text = compile_spec(spec, opt.compile, &program);
    warn_about(spec);
    TempDir tmp;
    std::string exe = build_in(program, opt.compile.syntax, text, tmp.path(), opt.verbose);
    std::vector<TarEntry> files = server_runtime_files(spec);
    files.push_back({kServerPath, read_file(exe), 0755});
    OciImage image = make_image(files, server_image_config(spec, created));
    write_file_atomic(out, oci_archive(image, opt.tag, created));
    fmt::print("{}: {}\n", out, image.manifest.digest());
    return 0;
  });
}

}  // namespace asmsrv
