#include "startup.h"

#include <fmt/format.h>

namespace asmsrv {

using namespace linux;

namespace {
/// TCP_NOTSENT_LOWAT on the listener, inherited by every connection.
constexpr int kNotsentLowat = 128 * 1024;
}  // namespace

Startup::Startup(const Spec& spec, Builder& b, Runtime& rt, bool nonblocking)
    : Gen(spec, b), rt_(rt), nonblocking_(nonblocking) {
  std::string at = listen_text(spec_);
  err_socket_ = rt_.error_prefix("error_socket", "socket",
                                {"EACCES", "EAFNOSUPPORT", "EINVAL", "EMFILE", "ENFILE", "ENOBUFS", "ENOMEM",
                                 "EPROTONOSUPPORT"});
  err_reuse_ = rt_.setsockopt_error("error_setsockopt", "SO_REUSEADDR");
  if (spec_.defer_accept_s > 0) err_defer_ = rt_.setsockopt_error("error_defer", "TCP_DEFER_ACCEPT");
  err_bind_ = rt_.error_prefix("error_bind", "bind " + at, {"EACCES", "EADDRINUSE", "EADDRNOTAVAIL", "EINVAL", "ENOMEM"});
  if (spec_.port < 1024)  // the one cause of EACCES from bind a user can fix
    rt_.add_hint(err_bind_, "hint_bind", "EACCES",
                 " (ports below 1024 need root or CAP_NET_BIND_SERVICE)");
  err_listen_ = rt_.error_prefix("error_listen", "listen " + at, {"EADDRINUSE", "EINVAL", "ENOMEM"});
  if (nonblocking_) err_fcntl_ = rt_.error_prefix("error_fcntl", "fcntl O_NONBLOCK", {"EBADF", "EINVAL"});
  if ((spec_.log_connections || spec_.log_requests) && spec_.log_target == LogTarget::file)
    err_open_ = rt_.error_prefix("error_open_log", "open " + spec_.log_path,
                                 {"EACCES", "EISDIR", "ELOOP", "EMFILE", "ENAMETOOLONG", "ENFILE",
                                  "ENOENT", "ENOMEM", "ENOSPC", "ENOTDIR", "EPERM", "EROFS"});
}

void Startup::emit(Label next) {
  std::string at = listen_text(spec_);
  Label sa_ignore = b_.data("sigaction_ignore", Section::rodata,
                            {Fields{{{8, static_cast<uint64_t>(kSigIgn), "sa_handler = SIG_IGN"},
                                     {8, 0, "sa_flags"},
                                     {8, 0, "sa_restorer"},
                                     {8, 0, "sa_mask"}}}},
                            "struct sigaction: ignore the signal");
  Label start = b_.symbol("_start");
  b_.program().entry = start;
  block(start, "start: ignore SIGPIPE", &kRtSigaction,
        "sigaction(SIGPIPE, &(struct sigaction){ .sa_handler = SIG_IGN }, NULL)",
        "A client that closes early must not kill the server: with SIGPIPE ignored,\n"
        "write() to a closed socket returns -EPIPE instead.");
  rt_.sigaction(kSigpipe, "SIGPIPE", rip(sa_ignore), "act = SIG_IGN");

  next_block(local("catch_stop_signals"), "catch SIGTERM and SIGINT", &kRtSigaction,
        "sigaction(SIGTERM, &sa, NULL); sigaction(SIGINT, &sa, NULL)  "
        "with sa = { on_signal, SA_RESTORER, signal_restorer }",
        "SIGTERM (docker stop, kill) and SIGINT (Ctrl-C) end the server with status 0,\n"
        "also as PID 1, where signals without a handler are ignored. The handler\n"
        "exits at once when idle, else it lets the connections in progress finish.\n"
        "No SA_RESTART: a blocked accept() or read() returns -EINTR.\n"
        "x86-64 requires SA_RESTORER: the restorer calls rt_sigreturn.");
  op(Op::sub, r64(Reg::rsp), imm(kSigactionBytes), "struct sigaction on the stack");
  lea(Reg::rax, rt_.on_signal());
  mov(mem64(Reg::rsp, 0), r64(Reg::rax), "sa_handler = on_signal");
  mov(mem64(Reg::rsp, 8), imm(kSaRestorer), "sa_flags = SA_RESTORER");
  lea(Reg::rax, rt_.restorer());
  mov(mem64(Reg::rsp, 16), r64(Reg::rax), "sa_restorer = signal_restorer");
  mov(mem64(Reg::rsp, 24), imm(0), "sa_mask = {} (the signal itself is masked anyway)");
  rt_.sigaction(kSigterm, "SIGTERM", r64(Reg::rsp), "act = the struct above");
  rt_.sigaction(kSigint, "SIGINT", r64(Reg::rsp), "act = the struct above");
  op(Op::add, r64(Reg::rsp), imm(kSigactionBytes), "drop the struct");

  bool logs = spec_.log_connections || spec_.log_requests;
  if (logs && spec_.log_target == LogTarget::file) {
    Label path = b_.bytes("log_path", spec_.log_path + '\0', "the log file's path, NUL-terminated for open(2)");
    next_block(local("open_log"), "open the log file", &kOpen,
          fmt::format("log_fd = open(\"{}\", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)",
                      spec_.log_path),
          "Opened once at start. O_APPEND makes each line one atomic append, so\n"
          "lines from several processes never interleave.");
    lea(Reg::rdi, path, "pathname");
    set(Reg::rsi, kOWronly | kOCreat | kOAppend | kOCloexec, "O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC");
    set(Reg::rdx, 0644, "mode 0644 (octal)");
    sys(kOpen);
    rt_.die_if_failed(err_open_);
    mov(r64(kLogFd), r64(Reg::rax), "r15 = log_fd");
  } else if (logs) {
    bool err = spec_.log_target == LogTarget::stderr_;
    next_block(local("choose_log"), "choose the log's file descriptor", nullptr,
          err ? "log_fd = STDERR_FILENO" : "log_fd = STDOUT_FILENO", "");
    set(kLogFd, err ? kStderr : kStdout, "r15 = log_fd");
  }

  next_block(local("socket"), "create the listening socket", &kSocket,
        "listen_fd = socket(AF_INET, SOCK_STREAM, 0)", "A TCP socket over IPv4.");
  set(Reg::rdi, kAfInet, "domain = AF_INET");
  set(Reg::rsi, kSockStream, "type = SOCK_STREAM");
  zero(Reg::rdx, "protocol = 0: TCP");
  sys(kSocket);
  rt_.die_if_failed(err_socket_);
  mov(r64(kListenFd), r64(Reg::rax), "r12 = listen_fd");

  Label one = b_.data("int_one", Section::rodata, {Fields{{{4, 1, "int 1"}}}},
                      "the value that turns a socket option on");
  next_block(local("reuseaddr"), "allow a quick restart", &kSetsockopt,
        "setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one)",
        "Without SO_REUSEADDR a restart fails with EADDRINUSE while old connections\n"
        "sit in TIME_WAIT.");
  rt_.setsockopt(kListenFd, "listen_fd", {kSolSocket, "SOL_SOCKET", kSoReuseaddr, "SO_REUSEADDR", kIntBytes, "sizeof(int)"},
                 one, "one");
  rt_.die_if_failed(err_reuse_);

  if (spec_.defer_accept_s > 0) {
    Label secs = b_.data("defer_seconds", Section::rodata, {Fields{{{4, static_cast<uint64_t>(spec_.defer_accept_s),
                                                                       "int: seconds"}}}},
                         "listen.defer_accept_s, for TCP_DEFER_ACCEPT");
    next_block(local("defer_accept"), "accept only once the request comes", &kSetsockopt,
               fmt::format("setsockopt(listen_fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &(int){{ {} }}, sizeof(int))",
                           spec_.defer_accept_s),
               fmt::format("accept() returns a connection once its first bytes have arrived (or after\n"
                           "about {} s of silence), so the request is read at once, with no wait for\n"
                           "readiness, and a client that only connects costs no slot meanwhile.",
                           spec_.defer_accept_s));
    rt_.setsockopt(kListenFd, "listen_fd",
                   {kIpprotoTcp, "IPPROTO_TCP", kTcpDeferAccept, "TCP_DEFER_ACCEPT", kIntBytes, "sizeof(int)"}, secs,
                   "defer_seconds");
    rt_.die_if_failed(err_defer_);
  }

  Label lowat = b_.data("lowat_bytes", Section::rodata, {Fields{{{4, kNotsentLowat, "int: bytes"}}}},
                        "TCP_NOTSENT_LOWAT: the unsent bytes a socket may hold");
  next_block(local("notsent_lowat"), "bound what each connection keeps unsent", &kSetsockopt,
             fmt::format("setsockopt(listen_fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &(int){{ {} }}, sizeof(int))",
                         kNotsentLowat),
             fmt::format("Every accepted socket inherits it: a write takes at most about {} KiB more\n"
                         "than the client has yet been sent, and the socket is writable again only\n"
                         "when less is left. Without it the kernel lets each socket queue megabytes\n"
                         "of a large response: a thousand slow readers then pin gigabytes, the\n"
                         "kernel's TCP memory runs into pressure, and every write of every client\n"
                         "slows down. An old kernel without the option refuses it: that is harmless,\n"
                         "so the result is not checked.",
                         kNotsentLowat / 1024));
  rt_.setsockopt(kListenFd, "listen_fd",
                 {kIpprotoTcp, "IPPROTO_TCP", kTcpNotsentLowat, "TCP_NOTSENT_LOWAT", kIntBytes, "sizeof(int)"}, lowat,
                 "lowat_bytes");

  uint64_t addr = 0;
  for (int i = 0; i < 4; ++i) addr |= uint64_t{spec_.address_bytes[i]} << (8 * i);
  uint64_t port_be = ((spec_.port & 0xff) << 8) | (spec_.port >> 8);
  Label listen_addr = b_.data(
      "listen_addr", Section::rodata,
      {Fields{{{2, static_cast<uint64_t>(kAfInet), "sin_family = AF_INET"},
               {2, port_be, fmt::format("sin_port = {}, in network byte order", spec_.port)},
               {4, addr, fmt::format("sin_addr = {}, in network byte order", spec_.address)},
               {8, 0, "sin_zero"}}}},
      fmt::format("struct sockaddr_in for {}", at));
  next_block(local("bind"), "bind the address", &kBind,
        "bind(listen_fd, (struct sockaddr *)&listen_addr, sizeof listen_addr)",
        fmt::format("Give the socket its address, {}.", at));
  mov(r64(Reg::rdi), r64(kListenFd), "fd = listen_fd");
  lea(Reg::rsi, listen_addr, "addr = &listen_addr");
  set(Reg::rdx, kSockaddrInBytes, "addrlen = sizeof(struct sockaddr_in)");
  sys(kBind);
  rt_.die_if_failed(err_bind_);

  next_block(local("listen"), "start listening", &kListen, fmt::format("listen(listen_fd, {})", spec_.backlog),
        "The kernel now completes handshakes and queues connections for accept().");
  mov(r64(Reg::rdi), r64(kListenFd), "fd = listen_fd");
  set(Reg::rsi, spec_.backlog, "backlog");
  sys(kListen);
  rt_.die_if_failed(err_listen_);

  if (nonblocking_) {
    next_block(local("nonblocking"), "make the listener non-blocking", &kFcntl,
          "fcntl(listen_fd, F_SETFL, O_NONBLOCK)",
          "The event loop accepts until -EAGAIN instead of blocking in accept().");
    mov(r64(Reg::rdi), r64(kListenFd), "fd = listen_fd");
    set(Reg::rsi, kFSetfl, "F_SETFL");
    set(Reg::rdx, kONonblock, "O_NONBLOCK");
    sys(kFcntl);
    rt_.die_if_failed(err_fcntl_);
  }

  std::string line = fmt::format("{} listening on {}\n", spec_.name, at);
  Label startup = b_.bytes("startup_line", line, "printed once the socket listens");
  next_block(local("announce"), "say that the server is up", &kWrite,
        fmt::format("write_all(STDOUT_FILENO, \"{} listening on {}\\n\", {})", spec_.name, at, line.size()),
        "Printed only once listen() succeeded, so a script can wait for this line.");
  set(Reg::rdi, kStdout, "fd = STDOUT_FILENO");
  lea(Reg::rsi, startup, "buf");
  set(Reg::rdx, static_cast<int64_t>(line.size()), "count");
  call(rt_.write_all(), "a closed stdout is not fatal: the result is ignored");
  jmp(Op::jmp, next);
}

}  // namespace asmsrv
