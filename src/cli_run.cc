#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "cli.h"
#include "fs.h"

namespace asmsrv {

namespace {

volatile sig_atomic_t g_child = 0;

void forward_signal(int sig) {
  if (g_child > 0) ::kill(g_child, sig);
}

}  // namespace

CLI::App* setup_run(CLI::App& app, RunOptions& opt) {
  CLI::App* cmd = app.add_subcommand("run", "Build the server in a temp dir and run it in the foreground");
  add_compile_options(*cmd, opt.compile);
  cmd->add_flag("-v,--verbose", opt.verbose, "Print each tool's command line");
  return cmd;
}

int run_run(const RunOptions& opt) {
  return guarded([&] {
    Program program;
    std::string text = compile_to_asm(opt.compile, &program);
    TempDir tmp;
    std::string exe = build_in(program, opt.compile.syntax, text, tmp.path(), opt.verbose);
    // SIGINT, SIGTERM and SIGHUP sent to asmsrv go on to the server.
    struct sigaction sa {};
    sa.sa_handler = forward_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(fmt::format("fork: {}", std::strerror(errno)));
    if (pid == 0) {
      // A process group of its own: a terminal's Ctrl-C reaches only asmsrv,
      // which passes it on once (a second signal makes the server exit at once).
      ::setpgid(0, 0);
      ::execl(exe.c_str(), exe.c_str(), static_cast<char*>(nullptr));
      fmt::print(stderr, "asmsrv: cannot run the server: {}\n", std::strerror(errno));
      ::_exit(127);
    }
    g_child = pid;
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) throw std::runtime_error(fmt::format("waitpid: {}", std::strerror(errno)));
    }
    g_child = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  });
}

}  // namespace asmsrv
