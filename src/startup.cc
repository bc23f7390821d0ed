#include "startup.h"

#include <fmt/format.h>

namespace asmsrv {

using namespace linux;

Fields sockaddr_fields(const Spec& spec, const std::array<uint8_t, 16>& addr, const std::string& addr_text) {
  uint64_t port_be = ((spec.port & 0xff) << 8) | (spec.port >> 8);
  auto le_bytes = [&](int from, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t{addr[from + i]} << (8 * i);
    return v;
  };
  std::string port_text = fmt::format("port = {}, in network byte order", spec.port);
  if (!spec.port_env.empty()) port_text += fmt::format(" (${} when set)", spec.port_env);
  if (spec.ipv6)
    return Fields{{{2, static_cast<uint64_t>(kAfInet6), "sin6_family = AF_INET6"},
                   {2, port_be, "sin6_" + port_text},
                   {4, 0, "sin6_flowinfo"},
                   {8, le_bytes(0, 8), fmt::format("sin6_addr = {}, bytes 0-7", addr_text)},
                   {8, le_bytes(8, 8), "sin6_addr, bytes 8-15"},
                   {4, 0, "sin6_scope_id"}}};
  return Fields{{{2, static_cast<uint64_t>(kAfInet), "sin_family = AF_INET"},
                 {2, port_be, "sin_" + port_text},
                 {4, le_bytes(0, 4), fmt::format("sin_addr = {}, in network byte order", addr_text)},
                 {8, 0, "sin_zero"}}};
}

namespace {
/// TCP_NOTSENT_LOWAT on the listener, inherited by every connection.
constexpr int kNotsentLowat = 128 * 1024;
const std::string kBadPortTail = ": expected a port number from 1 to 65535";
constexpr size_t kValueShown = 32;  // bytes of a bad $PORT the error shows

// "::" listens on every address, IPv4 too (dual-stack): IPV6_V6ONLY off.
bool dual_stack(const Spec& spec) { return spec.ipv6 && spec.address == "::"; }
}  // namespace

Startup::Startup(const Spec& spec, Builder& b, Runtime& rt, Roots& roots, bool nonblocking, Label probe)
    : Gen(spec, b), rt_(rt), roots_(roots), nonblocking_(nonblocking), probe_(probe) {
  std::string addr = address_text(spec_);
  err_socket_ = rt_.error_prefix("error_socket", "socket",
                                {"EACCES", "EAFNOSUPPORT", "EINVAL", "EMFILE", "ENFILE", "ENOBUFS", "ENOMEM",
                                 "EPROTONOSUPPORT"});
  err_reuse_ = rt_.setsockopt_error("error_setsockopt", "SO_REUSEADDR");
  if (dual_stack(spec_)) err_v6only_ = rt_.setsockopt_error("error_v6only", "IPV6_V6ONLY");
  if (spec_.defer_accept_s > 0) err_defer_ = rt_.setsockopt_error("error_defer", "TCP_DEFER_ACCEPT");
  err_bind_ = rt_.error_prefix_at("error_bind", "bind", addr, {"EACCES", "EADDRINUSE", "EADDRNOTAVAIL", "EINVAL", "ENOMEM"});
  if (spec_.port < 1024 || !spec_.port_env.empty())  // the one cause of EACCES from bind a user can fix
    rt_.add_hint(err_bind_, "hint_bind", "EACCES",
                 " (ports below 1024 need root or CAP_NET_BIND_SERVICE)");
  err_listen_ = rt_.error_prefix_at("error_listen", "listen", addr, {"EADDRINUSE", "EINVAL", "ENOMEM"});
  if (nonblocking_) err_fcntl_ = rt_.error_prefix("error_fcntl", "fcntl O_NONBLOCK", {"EBADF", "EINVAL"});
  if ((spec_.log_connections || spec_.log_requests) && spec_.log_target == LogTarget::file)
    err_open_ = rt_.error_prefix("error_open_log", "open " + spec_.log_path,
                                 {"EACCES", "EISDIR", "ELOOP", "EMFILE", "ENAMETOOLONG", "ENFILE",
                                  "ENOENT", "ENOMEM", "ENOSPC", "ENOTDIR", "EPERM", "EROFS"});
  err_fd3_ = rt_.error_prefix("error_fd3", "fd 3 from systemd (LISTEN_FDS)", {"EBADF", "ENOTSOCK"});
  if (!spec_.port_env.empty())  // "name: PORT=" + the value, cut + kBadPortTail
    rt_.need_line(spec_.name.size() + spec_.port_env.size() + 3 + kValueShown + kBadPortTail.size());
  environ_ = b_.bss("environ", 8, "char **environ: the environment, after argv on the initial stack");
  find_env_ = local("find_env");
  parse_decimal_ = local("parse_decimal");
  Section sec = spec_.port_env.empty() ? Section::rodata : Section::data;
  listen_addr_ = b_.data("listen_addr", sec, {sockaddr_fields(spec_, spec_.address_bytes, spec_.address)},
                         fmt::format("struct sockaddr_in{} for {}", spec_.ipv6 ? "6" : "", listen_text(spec_)));
}

void Startup::find_env(const std::string& name, const std::string& data_name) {
  std::string key = name + "=";
  Label text = b_.bytes(data_name, key, fmt::format("\"{}\": the start of the variable", key));
  lea(Reg::rsi, text, "name");
  set(Reg::rcx, static_cast<int64_t>(key.size()), "its length");
  call(find_env_, fmt::format("rax = getenv(\"{}\")", name));
}

void Startup::read_port() {
  Label unset = local("port_set");
  Label bad = local("bad_port");
  Label copy = local("copy_value");
  Label copied = local("copied");
  const std::string& var = spec_.port_env;
  next_block(local("port_from_env"), "the port from $" + var, nullptr,
             fmt::format("if ((s = getenv(\"{0}\"))) {{ port = atoi(s); if (port < 1 || port > 65535) die; }}", var),
             fmt::format("Cloud Run, Heroku, Render and Fly say which port to listen on in ${};\n"
                         "when it is set it replaces listen.port ({}), so one binary serves every\n"
                         "environment. A value that is not a port stops the server.", var, spec_.port));
  find_env(var, "env_port");
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jz, unset, "not set: listen.port");
  mov(r64(Reg::rsi), r64(Reg::rax), "the value");
  call(parse_decimal_);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jle, bad, "not a number, or 0");
  op(Op::cmp, r64(Reg::rax), imm(65535));
  jmp(Op::ja, bad);
  mov(var32(rt_.listen_port()), r32(Reg::rax), "listen_port = the port");
  op(Op::ror, r16(Reg::rax), imm(8), "htons");
  lea(Reg::rdi, listen_addr_);
  mov(mem16(Reg::rdi, 2), r16(Reg::rax), "listen_addr.sin_port");
  jmp(Op::jmp, unset);
  label(bad);
  const std::string head = fmt::format("{}: {}=", spec_.name, var);
  const std::string& tail = kBadPortTail;
  Label head_text = b_.bytes("bad_port_head", head, "the error's start");
  Label tail_text = b_.bytes("bad_port_tail", tail, "and its end");
  mov(r64(Reg::rdx), r64(Reg::rsi), "the value");
  lea(Reg::rdi, rt_.line_buf());
  lea(Reg::rsi, head_text);
  set(Reg::rcx, static_cast<int64_t>(head.size()));
  plain(Op::rep_movsb, fmt::format("\"{}\"", head));
  mov(r64(Reg::rsi), r64(Reg::rdx));
  set(Reg::rcx, kValueShown, "at most 32 bytes of the value");
  label(copy);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::test, r32(Reg::rax), r32(Reg::rax));
  jmp(Op::jz, copied, "its end");
  mov(mem8(Reg::rdi), r8(Reg::rax));
  op(Op::inc, r64(Reg::rsi));
  op(Op::inc, r64(Reg::rdi));
  op(Op::dec, r64(Reg::rcx));
  jmp(Op::jnz, copy);
  label(copied);
  lea(Reg::rsi, tail_text);
  set(Reg::rcx, static_cast<int64_t>(tail.size()));
  plain(Op::rep_movsb, fmt::format("\"{}\"", tail));
  jmp(Op::jmp, rt_.fail_line(), "write it, exit 1");
  label(unset);
}

void Startup::check_arguments() {
  Label none = local("no_arguments");
  bool probe = probe_.id >= 0;
  next_block(local("arguments"), probe ? "--probe, or serve" : "no arguments", nullptr,
             probe ? "if (argc > 1) { if (!strcmp(argv[1], \"--probe\")) probe(); else die; }"
                   : "if (argc > 1) die",
             probe ? "\"server --probe\" checks a running server, as a HEALTHCHECK; anything\n"
                     "else is refused, rather than starting a second server."
                   : "The server takes no arguments: refused, rather than starting a second\n"
                     "server (\"probe\" in the spec adds --probe).");
  op(Op::cmp, mem64(Reg::rsp), imm(1), "argc, at the top of the initial stack");
  jmp(Op::jbe, none);
  if (probe) {
    mov(r64(Reg::rsi), mem64(Reg::rsp, 16), "argv[1]");
    b_.emit(Op::movabs, {r64(Reg::rax), imm(0x0065626f72702d2d)}, "\"--probe\\0\", 8 bytes");
    op(Op::cmp, mem64(Reg::rsi), r64(Reg::rax));
    jmp(Op::je, probe_);
    rt_.fail_with("usage", "unknown argument: the only one is --probe");
  } else {
    rt_.fail_with("usage", "takes no arguments (\"probe\" in the spec adds --probe)");
  }
  label(none);
}

void Startup::socket_activation(Label bind, Label configure) {
  Label count = local("count");
  Label check = local("check");
  Label wrong = local("wrong");
  Label got = local("listening");
  next_block(local("socket_activation"), "socket activation?", &kGetpid,
             "if ((s = getenv(\"LISTEN_PID\")) && atoi(s) == getpid()) listen_fd = 3",
             "systemd (or systemd-socket-activate) may have bound the socket already and\n"
             "passed it as fd 3, saying so with LISTEN_PID (this process) and LISTEN_FDS.\n"
             "A LISTEN_PID of another process was meant for it: then bind as usual.");
  find_env("LISTEN_PID", "env_listen_pid");
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jz, bind, "not set: bind");
  mov(r64(Reg::rsi), r64(Reg::rax));
  call(parse_decimal_);
  mov(r64(Reg::rbx), r64(Reg::rax), "LISTEN_PID");
  sys(kGetpid);
  op(Op::cmp, r64(Reg::rax), r64(Reg::rbx));
  jmp(Op::jne, bind, "not ours: bind");

  const char* family = spec_.ipv6 ? "IPv6" : "IPv4";
  Label checks = b_.data("fd3_checks", Section::rodata,
                         {Fields{{{4, static_cast<uint64_t>(kSoAcceptconn), "SO_ACCEPTCONN"},
                                  {4, 1, "= 1: listening"},
                                  {4, static_cast<uint64_t>(kSoDomain), "SO_DOMAIN"},
                                  {4, static_cast<uint64_t>(spec_.ipv6 ? kAfInet6 : kAfInet), family},
                                  {4, static_cast<uint64_t>(kSoProtocol), "SO_PROTOCOL"},
                                  {4, static_cast<uint64_t>(kIpprotoTcp), "IPPROTO_TCP"},
                                  {4, 0, "the end"}}}},
                         "the socket options fd 3 must have: option, value", 4);
  next_block(local("check_fd3"), "check fd 3", &kGetsockopt,
             "for (c = fd3_checks; c->opt; c++) { getsockopt(3, SOL_SOCKET, c->opt, &v, &len); if (v != c->value) die; }",
             fmt::format("LISTEN_FDS must be 1, and fd 3 a listening TCP socket over {} (the\n"
                         "family of listen.address, which the logs print), else the server stops.",
                         family));
  find_env("LISTEN_FDS", "env_listen_fds");
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jz, count);
  mov(r64(Reg::rsi), r64(Reg::rax));
  call(parse_decimal_);
  op(Op::cmp, r64(Reg::rax), imm(1));
  jmp(Op::jne, count);
  lea(Reg::rbx, checks, "rbx walks the checks");
  op(Op::sub, r64(Reg::rsp), imm(16), "int v at [rsp], socklen_t len at [rsp+8]");
  label(check);
  mov(r32(Reg::rdx), mem32(Reg::rbx), "optname");
  op(Op::test, r32(Reg::rdx), r32(Reg::rdx));
  jmp(Op::jz, got, "all done");
  set(Reg::rdi, 3, "fd = 3");
  set(Reg::rsi, kSolSocket, "level = SOL_SOCKET");
  lea(Reg::r10, mem(Width::none, Reg::rsp), "optval = &v");
  mov(mem32(Reg::rsp, 8), imm(kIntBytes), "len = sizeof(int)");
  lea(Reg::r8, mem(Width::none, Reg::rsp, 8), "optlen = &len");
  sys(kGetsockopt);
  rt_.die_if_failed(err_fd3_);
  mov(r32(Reg::rax), mem32(Reg::rsp), "v");
  op(Op::cmp, r32(Reg::rax), mem32(Reg::rbx, 4), "what it must be");
  jmp(Op::jne, wrong);
  op(Op::add, r64(Reg::rbx), imm(8), "the next check");
  jmp(Op::jmp, check);
  label(count);
  rt_.fail_with("error_fds", "LISTEN_FDS: expected 1 socket from systemd");
  label(wrong);
  rt_.fail_with("error_fd3_kind", fmt::format("fd 3 from systemd is not a listening TCP socket over {} "
                                              "(the family of listen.address)", family));
  label(got);
  op(Op::add, r64(Reg::rsp), imm(16));
  set(kListenFd, 3, "r12 = listen_fd = 3");
  std::string line = fmt::format("{} listening on fd 3 from systemd\n", spec_.name);
  Label text = b_.bytes("activated_line", line, "printed once the socket from systemd is checked");
  lea(Reg::rbx, text, "the start-up line, for announce");
  set(Reg::rbp, static_cast<int64_t>(line.size()), "its length");
  jmp(Op::jmp, configure);
}

void Startup::emit_find_env(Label l) {
  Label next = local("next");
  Label none = local("none");
  block(l, "subroutine find_env(rsi = \"NAME=\", rcx = its length)", nullptr,
        "for (e = environ; *e; e++) if (!strncmp(*e, name, len)) return *e + len; return NULL",
        "getenv(): rax = the value, or 0. Clobbers rcx, rdx, rdi.");
  mov(r64(Reg::rdx), var64(environ_));
  label(next);
  mov(r64(Reg::rdi), mem64(Reg::rdx), "the next \"NAME=value\"");
  op(Op::test, r64(Reg::rdi), r64(Reg::rdi));
  jmp(Op::jz, none, "the end: not set");
  op(Op::add, r64(Reg::rdx), imm(8));
  op(Op::push, r64(Reg::rsi));
  op(Op::push, r64(Reg::rcx));
  plain(Op::repe_cmpsb, "compare; a shorter string stops at its NUL");
  op(Op::pop, r64(Reg::rcx));
  op(Op::pop, r64(Reg::rsi));
  jmp(Op::jne, next);
  mov(r64(Reg::rax), r64(Reg::rdi), "rdi is past \"NAME=\": the value");
  ret();
  label(none);
  zero(Reg::rax);
  ret();
}

void Startup::emit_parse_decimal(Label l) {
  Label digit = local("digit");
  Label bad = local("bad");
  Label end = local("end");
  block(l, "subroutine parse_decimal(rsi = a NUL-terminated string)", nullptr,
        "rax = 1 to 10 decimal digits ? their value : -1",
        "For $PORT, LISTEN_PID and LISTEN_FDS: digits only, no sign, no space.\n"
        "Keeps rsi. Clobbers rcx, rdx.");
  zero(Reg::rax);
  zero(Reg::rcx);
  label(digit);
  b_.emit(Op::movzx, {r32(Reg::rdx), mem_index(Width::b8, Reg::rsi, Reg::rcx)});
  op(Op::test, r32(Reg::rdx), r32(Reg::rdx));
  jmp(Op::jz, end);
  op(Op::sub, r32(Reg::rdx), chr('0'));
  op(Op::cmp, r32(Reg::rdx), imm(9));
  jmp(Op::ja, bad, "not a digit");
  b_.emit(Op::imul, {r64(Reg::rax), r64(Reg::rax), imm(10)});
  op(Op::add, r64(Reg::rax), r64(Reg::rdx));
  op(Op::inc, r32(Reg::rcx));
  op(Op::cmp, r32(Reg::rcx), imm(10));
  jmp(Op::jbe, digit, "11 digits are too many");
  label(bad);
  set(Reg::rax, -1);
  ret();
  label(end);
  op(Op::test, r32(Reg::rcx), r32(Reg::rcx));
  jmp(Op::jz, bad, "no digit");
  ret();
}

void Startup::emit(Label next) {
  Label sa_ignore = b_.data("sigaction_ignore", Section::rodata,
                            {Fields{{{8, static_cast<uint64_t>(kSigIgn), "sa_handler = SIG_IGN"},
                                     {8, 0, "sa_flags"},
                                     {8, 0, "sa_restorer"},
                                     {8, 0, "sa_mask"}}}},
                            "struct sigaction: ignore the signal");
  Label start = b_.symbol("_start");
  b_.program().entry = start;
  block(start, "start: find the variables", nullptr, "r15 = vars + 128",
        "Every small variable is [r15+name], within a signed byte of r15: one byte\n"
        "of displacement where [rel name] takes four. r15 never changes after this.");
  mov(r32(kVars), AddrOp{b_.variables(kVars), Builder::kVarsBias}, "r15 = the variables");
  next_block(local("ignore_sigpipe"), "start: ignore SIGPIPE", &kRtSigaction,
        "sigaction(SIGPIPE, &(struct sigaction){ .sa_handler = SIG_IGN }, NULL)",
        "A client that closes early must not kill the server: with SIGPIPE ignored,\n"
        "write() to a closed socket returns -EPIPE instead.");
  rt_.sigaction(kSigpipe, "SIGPIPE", rip(sa_ignore), "act = SIG_IGN");
  if (!spec_.uploads.empty()) {
    next_block(local("ignore_sigxfsz"), "start: ignore SIGXFSZ", &kRtSigaction,
               "sigaction(SIGXFSZ, &(struct sigaction){ .sa_handler = SIG_IGN }, NULL)",
               "An upload past RLIMIT_FSIZE must not kill the server: with SIGXFSZ\n"
               "ignored, write() returns -EFBIG instead, and the upload is answered 413.");
    rt_.sigaction(kSigxfsz, "SIGXFSZ", rip(sa_ignore), "act = SIG_IGN");
  }

  next_block(local("environment"), "find the environment", nullptr,
             "environ = &argv[argc + 1]",
             "The kernel starts the process with argc at [rsp], then argv[], a NULL,\n"
             "then the environment's \"NAME=value\" strings and a NULL.");
  mov(r64(Reg::rax), mem64(Reg::rsp), "argc");
  op(Op::shl, r64(Reg::rax), imm(3), "* 8");
  lea(Reg::rax, mem_index(Width::none, Reg::rsp, Reg::rax, 16), "past argc, argv[] and its NULL");
  mov(var64(environ_), r64(Reg::rax));
  if (!spec_.port_env.empty()) read_port();
  check_arguments();

  next_block(local("catch_stop_signals"), "catch SIGTERM and SIGINT", &kRtSigaction,
        "sigaction(SIGTERM, &sa, NULL); sigaction(SIGINT, &sa, NULL)  "
        "with sa = { on_signal, SA_RESTORER, signal_restorer }",
        "SIGTERM (docker stop, kill) and SIGINT (Ctrl-C) end the server with status 0,\n"
        "also as PID 1, where signals without a handler are ignored. The handler\n"
        "exits at once when idle, else it lets the connections in progress finish.\n"
        "No SA_RESTART: a blocked accept() or read() returns -EINTR.\n"
        "x86-64 requires SA_RESTORER: the restorer calls rt_sigreturn.");
  rt_.catch_signals({{kSigterm, "SIGTERM"}, {kSigint, "SIGINT"}}, rt_.on_signal(), "on_signal");

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
    mov(rt_.log_fd(), r32(Reg::rax), "log_fd");
  }

  roots_.emit_open();

  Label bind = local("socket");
  Label configure = local("configure");
  socket_activation(bind, configure);
  bind_and_listen(bind, configure);

  Label lowat = b_.data("lowat_bytes", Section::rodata, {Fields{{{4, kNotsentLowat, "int: bytes"}}}},
                        "TCP_NOTSENT_LOWAT: the unsent bytes a socket may hold");
  next_block(configure, "bound what each connection keeps unsent", &kSetsockopt,
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

  next_block(local("announce"), "say that the server is up", &kWrite,
        fmt::format("write_all(STDOUT_FILENO, \"{} listening on {}\\n\", ...)", spec_.name, listen_text(spec_)),
        "Printed only once listen() succeeded (or fd 3 passed its checks), so a\n"
        "script can wait for this line. rbx and rbp: the line and its length.");
  set(Reg::rdi, kStdout, "fd = STDOUT_FILENO");
  mov(r64(Reg::rsi), r64(Reg::rbx), "buf");
  mov(r64(Reg::rdx), r64(Reg::rbp), "count");
  call(rt_.write_all(), "a closed stdout is not fatal: the result is ignored");
  jmp(Op::jmp, next);

  emit_find_env(find_env_);
  emit_parse_decimal(parse_decimal_);
}

void Startup::bind_and_listen(Label bind, Label configure) {
  const char* af = spec_.ipv6 ? "AF_INET6" : "AF_INET";
  block(bind, "create the listening socket", &kSocket,
        fmt::format("listen_fd = socket({}, SOCK_STREAM, 0)", af),
        spec_.ipv6 ? "A TCP socket over IPv6." : "A TCP socket over IPv4.");
  set(Reg::rdi, spec_.ipv6 ? kAfInet6 : kAfInet, fmt::format("domain = {}", af));
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

  if (dual_stack(spec_)) {
    Label zero_int = b_.data("int_zero", Section::rodata, {Fields{{{4, 0, "int 0"}}}},
                             "the value that turns a socket option off");
    next_block(local("dual_stack"), "IPv4 too", &kSetsockopt,
               "setsockopt(listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){ 0 }, sizeof(int))",
               "\"::\" then takes IPv4 connections as well, their clients seen as\n"
               "::ffff:a.b.c.d. The default (net.ipv6.bindv6only) is a host's choice,\n"
               "so it is set here.");
    rt_.setsockopt(kListenFd, "listen_fd",
                   {kIpprotoIpv6, "IPPROTO_IPV6", kIpv6V6only, "IPV6_V6ONLY", kIntBytes, "sizeof(int)"}, zero_int,
                   "zero");
    rt_.die_if_failed(err_v6only_);
  }

  std::string at = listen_text(spec_);
  next_block(local("bind"), "bind the address", &kBind,
        "bind(listen_fd, (struct sockaddr *)&listen_addr, sizeof listen_addr)",
        fmt::format("Give the socket its address, {}.", at));
  mov(r64(Reg::rdi), r64(kListenFd), "fd = listen_fd");
  lea(Reg::rsi, listen_addr_, "addr = &listen_addr");
  if (spec_.ipv6)
    set(Reg::rdx, kSockaddrIn6Bytes, "addrlen = sizeof(struct sockaddr_in6)");
  else
    set(Reg::rdx, kSockaddrInBytes, "addrlen = sizeof(struct sockaddr_in)");
  sys(kBind);
  rt_.die_if_failed(err_bind_);

  next_block(local("listen"), "start listening", &kListen, fmt::format("listen(listen_fd, {})", spec_.backlog),
        "The kernel now completes handshakes and queues connections for accept().");
  mov(r64(Reg::rdi), r64(kListenFd), "fd = listen_fd");
  set(Reg::rsi, spec_.backlog, "backlog");
  sys(kListen);
  rt_.die_if_failed(err_listen_);

  if (spec_.port_env.empty()) {
    std::string line = fmt::format("{} listening on {}\n", spec_.name, at);
    Label startup = b_.bytes("startup_line", line, "printed once the socket listens");
    lea(Reg::rbx, startup, "the start-up line, for announce");
    set(Reg::rbp, static_cast<int64_t>(line.size()), "its length");
    falls_into(configure);
    return;
  }
  std::string head = fmt::format("{} listening on {}:", spec_.name, address_text(spec_));
  Label text = b_.bytes("startup_line", head, "printed once the socket listens, with the port");
  next_block(local("make_startup_line"), "the start-up line, with the port", nullptr,
             fmt::format("sprintf(line_buf, \"{}%u\\n\", listen_port)", head),
             "The port may have come from the environment.");
  lea(Reg::rdi, rt_.line_buf());
  lea(Reg::rsi, text);
  set(Reg::rcx, static_cast<int64_t>(head.size()));
  plain(Op::rep_movsb);
  mov(r32(Reg::rax), var32(rt_.listen_port()), "the port");
  call(rt_.append_u64());
  mov(mem8(Reg::rdi), chr('\n'));
  op(Op::inc, r64(Reg::rdi));
  lea(Reg::rbx, rt_.line_buf(), "the start-up line, for announce");
  mov(r64(Reg::rbp), r64(Reg::rdi));
  op(Op::sub, r64(Reg::rbp), r64(Reg::rbx), "its length");
  falls_into(configure);
}

}  // namespace asmsrv
