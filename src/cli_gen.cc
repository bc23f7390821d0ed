#include <fmt/format.h>

#include "cli.h"
#include "dialect.h"
#include "fs.h"
#include "lower.h"
#include "printer.h"

namespace asmsrv {

void add_compile_options(CLI::App& cmd, CompileOptions& opt) {
  cmd.add_option("SPEC", opt.spec, "The server spec (JSON)")->required();
  cmd.add_option("--syntax", opt.syntax, "Assembly syntax")
      ->check(CLI::IsMember({"nasm", "gas"}))
      ->default_str("nasm");
  cmd.add_option("--port", opt.port, "Listen on this port instead of listen.port")
      ->check(CLI::Range(1, 65535));
}

Spec load_for_compile(const std::string& spec_path, std::optional<int> port) {
  Spec spec = load_spec(spec_path);
  if (port) spec.port = *port;
  return spec;
}

std::string compile_to_asm(const CompileOptions& opt, Program* program) {
  Spec spec = load_for_compile(opt.spec, opt.port);
  Program p = lower(spec);
  std::string text = print_program(p, *find_dialect(opt.syntax));
  if (program) *program = std::move(p);
  return text;
}

int guarded(const std::function<int()>& body) {
  try {
    return body();
  } catch (const SpecError& e) {
    for (const std::string& line : e.lines()) fmt::print(stderr, "{}\n", line);
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "asmsrv: {}\n", e.what());
    return 1;
  }
}

CLI::App* setup_gen(CLI::App& app, GenOptions& opt) {
  CLI::App* cmd = app.add_subcommand("gen", "Print the server as assembly source");
  add_compile_options(*cmd, opt.compile);
  cmd->add_option("-o,--output", opt.output, "Write to FILE (atomically) instead of stdout");
  return cmd;
}

int run_gen(const GenOptions& opt) {
  return guarded([&] {
    std::string text = compile_to_asm(opt.compile);
    if (opt.output.empty() || opt.output == "-")
      fmt::print("{}", text);
    else
      write_file_atomic(opt.output, text);
    return 0;
  });
}

}  // namespace asmsrv
