#include <fmt/format.h>

#include "cli.h"
#include "schema.h"

namespace asmsrv {

CLI::App* setup_schema(CLI::App& app) {
  return app.add_subcommand("schema", "Print a JSON Schema (2020-12) of the spec, for editors and validators");
}

int run_schema() {
  fmt::print("{}", spec_schema());
  return 0;
}

}  // namespace asmsrv
