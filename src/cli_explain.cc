#include <fmt/format.h>

#include "cli.h"
#include "lower.h"
#include "printer.h"

namespace asmsrv {

CLI::App* setup_explain(CLI::App& app, ExplainOptions& opt) {
  CLI::App* cmd = app.add_subcommand("explain", "List the IR: each block, its syscall and C equivalent");
  cmd->add_option("SPEC", opt.spec, "The server spec (JSON); - reads standard input")->required();
  cmd->add_option("--port", opt.port, "Listen on this port instead of listen.port")
      ->check(CLI::Range(1, 65535));
  cmd->add_flag("--teach", opt.teach, "The blocks of gen --teach's listing");
  return cmd;
}

int run_explain(const ExplainOptions& opt) {
  return guarded([&] {
    fmt::print("{}", explain_program(lower(load_for_compile(opt.spec, opt.port, opt.teach))));
    return 0;
  });
}

}  // namespace asmsrv
