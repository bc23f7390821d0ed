// The subcommands: each has an Options struct, setup_x() that declares it on
// the CLI11 app, and run_x() that does the work and returns the exit code
// (0 ok, 1 tool or I/O failure, 2 spec or usage error).
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "ir.h"
#include "oci.h"
#include "spec.h"

namespace asmsrv {

/// What every compiling subcommand shares: the spec ("-": standard input),
/// the syntax, --port, --teach.
struct CompileOptions {
  std::string spec;
  std::string syntax = "nasm";
  std::optional<int> port;
  bool teach = false;  // leave out what a first reading does not need
};

struct GenOptions {
  CompileOptions compile;
  std::string output;  // empty: stdout
};
CLI::App* setup_gen(CLI::App& app, GenOptions& opt);
int run_gen(const GenOptions& opt);

struct BuildOptions {
  CompileOptions compile;
  std::string output;
  std::string keep_asm;
  bool verbose = false;
};
CLI::App* setup_build(CLI::App& app, BuildOptions& opt);
int run_build(const BuildOptions& opt);

struct RunOptions {
  CompileOptions compile;
  bool verbose = false;
};
CLI::App* setup_run(CLI::App& app, RunOptions& opt);
int run_run(const RunOptions& opt);

struct CheckOptions {
  std::string spec;
};
CLI::App* setup_check(CLI::App& app, CheckOptions& opt);
int run_check(const CheckOptions& opt);

struct ExplainOptions {
  std::string spec;
  std::optional<int> port;
  bool teach = false;
};
CLI::App* setup_explain(CLI::App& app, ExplainOptions& opt);
int run_explain(const ExplainOptions& opt);

struct ImageOptions {
  CompileOptions compile;
  std::string output;
  std::string tag;  // NAME:TAG; empty: an unnamed image
  bool verbose = false;
};
CLI::App* setup_image(CLI::App& app, ImageOptions& opt);
int run_image(const ImageOptions& opt);
/// The image config of `spec`'s server (cli_image.cc): /server as the
/// entrypoint, its port, user 65534, SIGTERM, the OCI labels; `created`
/// is the build time (SOURCE_DATE_EPOCH).
ImageConfig server_image_config(const Spec& spec, int64_t created);
/// The files of `spec`'s image besides /server: what the server needs at
/// run time (a log file it may create as user 65534).
std::vector<TarEntry> server_runtime_files(const Spec& spec);
/// The health check that runs `/server --probe`, whose own deadline is
/// `probe_timeout_ms`: the engine's timeout leaves it a second more.
Healthcheck probe_healthcheck(int probe_timeout_ms);

/// `asmsrv schema` prints the spec's JSON Schema; it takes no options.
CLI::App* setup_schema(CLI::App& app);
int run_schema();

// Shared by the subcommands (cli_gen.cc).

/// Declares SPEC, --syntax, --port and --teach on a subcommand.
void add_compile_options(CLI::App& cmd, CompileOptions& opt);
/// Loads the spec ("-": standard input) and applies --port and --teach.
Spec load_for_compile(const std::string& spec_path, std::optional<int> port, bool teach);
/// The spec compiled to assembly text in the chosen syntax; `listing` is
/// where the text will be saved, for the header's build commands.
std::string compile_to_asm(const CompileOptions& opt, Program* program = nullptr,
                           const std::string& listing = "");
/// The same for a spec already loaded with load_for_compile (e.g. to read
/// it first: a spec on standard input can be read only once).
std::string compile_spec(const Spec& spec, const CompileOptions& opt, Program* program = nullptr,
                         const std::string& listing = "");
/// The file -o names: `output` itself, or for an existing directory or a
/// path ending in '/', DIR/<spec name><ext> (the spec's file name without
/// .json; "server" for standard input). Throws when such a DIR is missing.
std::string output_path(const std::string& output, const std::string& spec_path,
                        const std::string& ext);
/// Assembles and links `asm_text` (the output of `program`) in `workdir`;
/// returns the path of the binary there (cli_build.cc).
std::string build_in(const Program& program, const std::string& syntax, const std::string& asm_text,
                     const std::string& workdir, bool verbose);
/// Runs `body`, turning SpecError into exit 2 and other errors into exit 1,
/// each reported on stderr.
int guarded(const std::function<int()>& body);

}  // namespace asmsrv
