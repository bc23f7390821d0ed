#include <fmt/format.h>

#include "cli.h"

namespace asmsrv {

CLI::App* setup_check(CLI::App& app, CheckOptions& opt) {
  CLI::App* cmd = app.add_subcommand("check", "Validate a spec and report every error");
  cmd->add_option("SPEC", opt.spec, "The server spec (JSON); - reads standard input")->required();
  return cmd;
}

int run_check(const CheckOptions& opt) {
  return guarded([&] {
    Spec spec = load_spec(opt.spec);
    fmt::print("{}: ok ({}, {} mode, {} worker{})\n", spec.file, listen_text(spec),
               kModeNames[static_cast<int>(spec.mode)], spec.workers, spec.workers == 1 ? "" : "s");
    return 0;
  });
}

}  // namespace asmsrv
