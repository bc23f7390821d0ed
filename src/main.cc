// asmsrv: compiles a JSON server spec into an x86-64 Linux server in assembly.
// main() only wires the subcommands; each lives in its own cli_*.cc.
#include <fmt/format.h>

#include <string_view>
#include <vector>

#include "cli.h"
#include "suggest.h"

namespace {

// What CLI11 would say about a missing or unknown first word is "A
// subcommand is required" in every case; say what is wrong instead.
// Returns the message, or "" when argv[1] is fine.
std::string first_word_error(int argc, char** argv, const std::vector<std::string_view>& subcommands) {
  auto listed = [&](const char* last) {
    std::string out;
    for (size_t i = 0; i < subcommands.size(); ++i)
      out += std::string(i == 0 ? "" : i + 1 == subcommands.size() ? last : ", ") +
             std::string(subcommands[i]);
    return out;
  };
  std::string list = listed(" or ");
  if (argc < 2) return "asmsrv: a subcommand is required: " + list + " (asmsrv --help says more)";
  std::string_view word = argv[1];
  if (word == "-h" || word == "--help" || word == "--version") return "";
  for (std::string_view s : subcommands)
    if (word == s) return "";
  if (word.starts_with("-"))
    return fmt::format("asmsrv: unknown option {}; a subcommand comes first: {}", word, list);
  if (auto best = asmsrv::closest_word(word, subcommands))
    return fmt::format("asmsrv: unknown subcommand \"{}\"; did you mean \"{}\"?", word, *best);
  return fmt::format("asmsrv: unknown subcommand \"{}\"; the subcommands are {}", word,
                     listed(" and "));
}

}  // namespace

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
  ImageOptions image;
  CLI::App* gen_cmd = setup_gen(app, gen);
  CLI::App* build_cmd = setup_build(app, build);
  CLI::App* run_cmd = setup_run(app, run);
  CLI::App* check_cmd = setup_check(app, check);
  CLI::App* explain_cmd = setup_explain(app, explain);
  CLI::App* image_cmd = setup_image(app, image);
  CLI::App* schema_cmd = setup_schema(app);

  std::vector<std::string_view> names;
  for (const CLI::App* cmd : app.get_subcommands({})) names.push_back(cmd->get_name());
  if (std::string error = first_word_error(argc, argv, names); !error.empty()) {
    fmt::print(stderr, "{}\n", error);
    return 2;
  }
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
  if (image_cmd->parsed()) return run_image(image);
  if (schema_cmd->parsed()) return run_schema();
  return 2;
}
