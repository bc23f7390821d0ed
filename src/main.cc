// asmsrv: compiles a JSON server spec into an x86-64 Linux server in assembly.
// main() only wires the subcommands; each lives in its own cli_*.cc.
#include <fmt/format.h>

#include "cli.h"

int main(int argc, char** argv) {
  using namespace asmsrv;
  CLI::App app{"asmsrv: compile a JSON server spec into a static x86-64 Linux server in assembly"};
  app.set_version_flag("--version", std::string("asmsrv ") + ASMSRV_VERSION);
  app.require_subcommand(1);

  GenOptions gen;
  BuildOptions build;
  RunOptions run;
  CheckOptions check;
  ExplainOptions explain;
  CLI::App* gen_cmd = setup_gen(app, gen);
  CLI::App* build_cmd = setup_build(app, build);
  CLI::App* run_cmd = setup_run(app, run);
  CLI::App* check_cmd = setup_check(app, check);
  CLI::App* explain_cmd = setup_explain(app, explain);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);  // prints help, version or the usage error
    return code == 0 ? 0 : 2;
  }
  if (gen_cmd->parsed()) return run_gen(gen);
  if (build_cmd->parsed()) return run_build(build);
  if (run_cmd->parsed()) return run_run(run);
  if (check_cmd->parsed()) return run_check(check);
  if (explain_cmd->parsed()) return run_explain(explain);
  return 2;
}
