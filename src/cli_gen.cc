#include <fmt/format.h>

#include <filesystem>

#include "cli.h"
#include "dialect.h"
#include "fs.h"
#include "lower.h"
#include "printer.h"

namespace asmsrv {

void add_compile_options(CLI::App& cmd, CompileOptions& opt) {
  cmd.add_option("SPEC", opt.spec, "The server spec (JSON); - reads standard input")->required();
  cmd.add_option("--syntax", opt.syntax, "Assembly syntax")
      ->check(CLI::IsMember({"nasm", "gas"}))
      ->default_str("nasm");
  cmd.add_option("--port", opt.port, "Listen on this port instead of listen.port")
      ->check(CLI::Range(1, 65535));
  cmd.add_flag("--teach", opt.teach,
               "A listing for a first reading: no workers, no logs, no TCP_DEFER_ACCEPT");
}

namespace {

// --teach: the spec's server with what a first reading does not need left
// out. Every part it drops is optional and works the same when present.
void simplify_for_teaching(Spec& spec) {
  spec.workers = 1;
  spec.log_connections = spec.log_requests = false;
  spec.defer_accept_s = 0;
  spec.teach = true;
}

}  // namespace

Spec load_for_compile(const std::string& spec_path, std::optional<int> port, bool teach) {
  Spec spec = load_spec(spec_path);
  if (port) spec.port = *port;
  if (teach) simplify_for_teaching(spec);
  return spec;
}

std::string compile_to_asm(const CompileOptions& opt, Program* program, const std::string& listing) {
  return compile_spec(load_for_compile(opt.spec, opt.port, opt.teach), opt, program, listing);
}

std::string compile_spec(const Spec& spec, const CompileOptions& opt, Program* program,
                         const std::string& listing) {
  Program p = lower(spec);
  if (opt.teach)
    p.notes += "\nMade with --teach: one process, no logs, no TCP_DEFER_ACCEPT, and die names\n"
               "only EADDRINUSE and EACCES. The README's \"Reading the listing\" follows a\n"
               "request through it, block by block.\n";
  std::string text = print_program(p, *find_dialect(opt.syntax), listing);
  if (program) *program = std::move(p);
  return text;
}

std::string output_path(const std::string& output, const std::string& spec_path,
                        const std::string& ext) {
  namespace fsys = std::filesystem;
  if (output.empty()) throw std::runtime_error("-o \"\": give a file name or a directory");
  std::error_code ec;
  bool dir = fsys::is_directory(output, ec);
  if (!dir && output.back() != '/') return output;
  if (!dir) {
    bool exists = fsys::exists(output.substr(0, output.find_last_not_of('/') + 1), ec);
    throw std::runtime_error(fmt::format("cannot write {}: {}", output,
                                         exists ? "not a directory"
                                                : "no such directory (give a file name, or a "
                                                  "directory that exists)"));
  }
  std::string name = spec_path == "-" ? "server" : fsys::path(spec_path).filename().string();
  if (name.size() > 5 && name.ends_with(".json")) name.resize(name.size() - 5);
  std::string path = (fsys::path(output) / (name + ext)).string();
  if (fsys::is_directory(path, ec))
    throw std::runtime_error(fmt::format("cannot write {}: it is a directory (give a file name)", path));
  return path;
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
  cmd->add_option("-o,--output", opt.output,
                  "Write to FILE (atomically) instead of stdout; DIR/ writes DIR/<spec name>.s");
  return cmd;
}

int run_gen(const GenOptions& opt) {
  return guarded([&] {
    if (opt.output.empty() || opt.output == "-") {
      fmt::print("{}", compile_to_asm(opt.compile));
    } else {
      std::string out = output_path(opt.output, opt.compile.spec, ".s");
      write_file_atomic(out, compile_to_asm(opt.compile, nullptr, out));
    }
    return 0;
  });
}

}  // namespace asmsrv
