#include "cli.h"
#include "dialect.h"
#include "fs.h"
#include "toolchain.h"

#include <filesystem>

namespace asmsrv {

CLI::App* setup_build(CLI::App& app, BuildOptions& opt) {
  CLI::App* cmd = app.add_subcommand("build", "Assemble and link the server into a static binary");
  add_compile_options(*cmd, opt.compile);
  cmd->add_option("-o,--output", opt.output,
                  "The executable to write; DIR/ writes DIR/<spec name>")->required();
  cmd->add_option("--keep-asm", opt.keep_asm, "Also write the assembly source to FILE");
  cmd->add_flag("-v,--verbose", opt.verbose, "Print each tool's command line");
  return cmd;
}

/// Assembles and links `asm_text`, the output of `program`, in `workdir`;
/// returns the binary's path. Files embedded with incbin are found in the
/// program's include dirs, made absolute since the source sits in workdir.
std::string build_in(const Program& program, const std::string& syntax, const std::string& asm_text,
                     const std::string& workdir, bool verbose) {
  std::vector<std::string> includes;
  for (const std::string& dir : program.include_dirs)
    includes.push_back(std::filesystem::absolute(dir).lexically_normal().string());
  std::string exe = workdir + "/server";
  assemble_and_link(*find_dialect(syntax), asm_text, includes, workdir, exe, verbose);
  return exe;
}

int run_build(const BuildOptions& opt) {
  return guarded([&] {
    for (const std::string* o : {&opt.output, &opt.keep_asm})
      if (*o == "-") throw std::runtime_error("build writes files: -o - and --keep-asm - are not "
                                              "allowed (asmsrv gen prints the assembly)");
    std::string out = output_path(opt.output, opt.compile.spec, "");
    std::string keep_asm = opt.keep_asm.empty() ? "" : output_path(opt.keep_asm, opt.compile.spec, ".s");
    Program program;
    std::string text = compile_to_asm(opt.compile, &program, keep_asm);
    TempDir tmp;
    std::string exe = build_in(program, opt.compile.syntax, text, tmp.path(), opt.verbose);
    if (!keep_asm.empty()) write_file_atomic(keep_asm, text);
    copy_file_atomic(exe, out, 0755);
    return 0;
  });
}

}  // namespace asmsrv
