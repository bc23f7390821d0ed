#include <fmt/format.h>

#include "cli.h"
#include "text.h"

namespace asmsrv {

CLI::App* setup_check(CLI::App& app, CheckOptions& opt) {
  CLI::App* cmd = app.add_subcommand("check", "Validate a spec and report every error");
  cmd->add_option("SPEC", opt.spec, "The server spec (JSON); - reads standard input")->required();
  return cmd;
}

namespace {

// "static /: public: 12 files, 1,234,567 bytes, 456,789 bytes stored (brotli and gzip)",
// "static /media/: /srv/media: read at run time"
std::string site_line(const StaticSite& site) {
  if (!site.root.empty()) return fmt::format("static {}: {}: read at run time\n", site.path, site.root);
  bool codings[2] = {};
  for (const SiteFile& f : site.files)
    for (const SiteRepresentation& r : f.reps)
      if (r.coding != Coding::identity) codings[static_cast<int>(r.coding)] = true;
  std::string how = codings[0] && codings[1] ? "brotli and gzip"
                    : codings[0]             ? "brotli"
                    : codings[1]             ? "gzip"
                    : site.compress          ? "nothing compresses by 5%"
                                             : "not compressed";
  return fmt::format("static {}: {}: {} file{}, {} bytes, {} bytes stored ({})\n", site.path, site.dir,
                     group_digits(site.files.size()), site.files.size() == 1 ? "" : "s", group_digits(site.bytes),
                     group_digits(site.stored_bytes), how);
}

}  // namespace

int run_check(const CheckOptions& opt) {
  return guarded([&] {
    Spec spec = load_spec(opt.spec);
    fmt::print("{}: ok ({}, {} mode, {} worker{})\n", spec.file, listen_text(spec),
               kModeNames[static_cast<int>(spec.mode)], spec.workers, spec.workers == 1 ? "" : "s");
    for (const StaticSite& site : spec.sites) fmt::print("{}", site_line(site));
    return 0;
  });
}

}  // namespace asmsrv
