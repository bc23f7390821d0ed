// Helpers shared by the tests: running commands, files, the source tree.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace asmsrv::test {

/// The asmsrv binary under test.
std::string asmsrv_bin();
/// The source tree (specs/, golden/, templates/).
std::string source_dir();

struct CmdResult {
  int status = -1;  // exit status, or 128 + signal
  std::string out;  // stdout
  std::string err;  // stderr
};

/// Runs argv (argv[0] looked up in PATH) in `cwd` (empty: the source dir),
/// with `env` added to the environment, and waits for it.
CmdResult run(const std::vector<std::string>& argv, const std::string& cwd = "",
              const std::map<std::string, std::string>& env = {});

/// asmsrv with these arguments, run in the source dir.
CmdResult asmsrv(const std::vector<std::string>& args,
                 const std::map<std::string, std::string>& env = {});

/// A fresh private directory, removed at exit of the test process.
std::string temp_dir();

std::string read(const std::string& path);
void write(const std::string& path, const std::string& data);
bool exists(const std::string& path);

/// A TCP port on 127.0.0.1 that was free a moment ago.
int free_port();

/// The environment variable `name` as a number, `fallback` when unset or empty.
long env_number(const char* name, long fallback);

/// The specs in specs/ (file stems: "hello", "minhttp", ...), sorted.
std::vector<std::string> spec_names();

}  // namespace asmsrv::test
