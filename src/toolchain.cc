#include "toolchain.h"

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "fs.h"

namespace asmsrv {

std::optional<std::string> find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t colon = dirs.find(':', start);
    std::string dir = dirs.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(candidate))
      return candidate;
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return std::nullopt;
}

std::string shell_words(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty() && a.find_first_not_of(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:+,@%") == std::string::npos;
    if (plain) {
      out += a;
    } else {
      out += '\'';
      for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
  }
  return out;
}

int run_command(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(fmt::format("cannot start {}: {}", argv[0], std::strerror(errno)));
  if (pid == 0) {
    ::execvp(args[0], args.data());
    fmt::print(stderr, "asmsrv: cannot run {}: {}\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error(fmt::format("waitpid: {}", std::strerror(errno)));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

namespace {

void require_program(const std::string& name, const std::string& package) {
  if (!find_program(name))
    throw std::runtime_error(fmt::format(
        "{} not found in PATH; install it with: apt-get install {}", name, package));
}

void run_step(const std::vector<std::string>& argv, bool verbose) {
  if (verbose) fmt::print(stderr, "{}\n", shell_words(argv));
  int status = run_command(argv);
  if (status != 0) throw std::runtime_error(fmt::format("{} failed with status {}", argv[0], status));
}

}  // namespace

void assemble_and_link(const Dialect& d, const std::string& asm_text,
                       const std::vector<std::string>& include_dirs,
                       const std::string& workdir, const std::string& exe, bool verbose) {
  require_program(d.assembler, d.package);
  require_program("ld", "binutils");
  std::string src = workdir + "/server.s", obj = workdir + "/server.o";
  write_file_atomic(src, asm_text);
  run_step(assemble_command(d, src, obj, include_dirs), verbose);
  run_step(link_command(obj, exe), verbose);
}

}  // namespace asmsrv
