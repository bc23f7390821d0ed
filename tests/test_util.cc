#include "test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace asmsrv::test {

namespace fsys = std::filesystem;

std::string asmsrv_bin() { return ASMSRV_BIN; }
std::string source_dir() { return ASMSRV_SOURCE_DIR; }

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out << data;
  if (!out) throw std::runtime_error("cannot write " + path);
}

bool exists(const std::string& path) { return fsys::exists(path); }

namespace {

struct Cleanup {
  std::vector<std::string> dirs;
  ~Cleanup() {
    std::error_code ec;
    for (const auto& d : dirs) fsys::remove_all(d, ec);
  }
};
Cleanup g_cleanup;

}  // namespace

std::string temp_dir() {
  std::string templ = (fsys::temp_directory_path() / "asmsrv-test.XXXXXX").string();
  if (!::mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  g_cleanup.dirs.push_back(templ);
  return templ;
}

CmdResult run(const std::vector<std::string>& argv, const std::string& cwd,
              const std::map<std::string, std::string>& env) {
  std::string dir = temp_dir();
  std::string out_path = dir + "/out", err_path = dir + "/err";
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    if (::chdir((cwd.empty() ? source_dir() : cwd).c_str()) != 0) ::_exit(126);
    // What would move a server the test starts (asmsrv run) to another port
    // or socket comes only from `env`, never from the tests' environment.
    for (const char* k : {"PORT", "LISTEN_PID", "LISTEN_FDS"}) ::unsetenv(k);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error("waitpid failed");
  }
  CmdResult r;
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read(out_path);
  r.err = read(err_path);
  return r;
}

CmdResult asmsrv(const std::vector<std::string>& args,
                 const std::map<std::string, std::string>& env) {
  std::vector<std::string> argv = {asmsrv_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, "", env);
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("cannot find a free port");
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::vector<std::string> spec_names() {
  std::vector<std::string> names;
  for (const auto& e : fsys::directory_iterator(source_dir() + "/specs"))
    if (e.path().extension() == ".json") names.push_back(e.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

long env_number(const char* name, long fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtol(v, nullptr, 10) : fallback;
}

}  // namespace asmsrv::test
