#include "lower.h"

#include "lowerer.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "errno_text.h"
#include "http.h"
#include "linux.h"

namespace asmsrv {

using namespace linux;

std::string le(uint64_t v, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

namespace {

constexpr const char* kRegisterMap =
    "Registers that live across the whole program:\n"
    "  r12  the listening socket's file descriptor\n"
    "  r13  the client socket's file descriptor\n"
    "  r14  bytes in the request buffer\n"
    "  rbp  the request buffer (HTTP)\n"
    "  r15  the log's file descriptor\n"
    "Subroutines may clobber rax, rcx, rdx, rsi, rdi and r8-r11; they keep\n"
    "rbx, rbp and r12-r15.";

}  // namespace

Lowerer::Lowerer(const Spec& spec) : spec_(spec), b_(p_) {}

Program Lowerer::run() {
  p_.name = spec_.name;
  p_.spec_file = std::filesystem::path(spec_.file).filename().string();
  p_.notes = kRegisterMap;
  if (http()) table_ = build_response_table(spec_);
  for (const CompiledResponse& r : table_.responses)
    if (!r.file.empty() && p_.include_dirs.empty()) p_.include_dirs.push_back(spec_.dir);
  declare_labels();
  declare_data();
  start();
  if (spec_.workers > 1) supervisor();
  worker_start();
  if (spec_.mode == Mode::epoll) {
    epoll_worker();
  } else {
    accept_loop();
    if (spec_.mode == Mode::fork) fork_connection();
    if (http()) {
      http_connection();
      http_after_response();
    } else {
      serve_raw();
    }
    finish_connection();
  }
  drain_input();
  if (spec_.log_connections) log_connection();
  exit_ok();
  write_all();
  append_u64();
  if (spec_.log_connections || spec_.log_requests) append_ip();
  die();
  signal_handler();
  if (http() || spec_.mode == Mode::epoll) now_ms();
  if (http()) {
    if (spec_.mode != Mode::epoll) read_timed();
    find_head_end();
    parse_request();
    decide_mode();
    too_large();
    prepare_response();
    if (spec_.mode != Mode::epoll) send_response();
    if (spec_.log_requests) log_request();
  }
  return std::move(p_);
}

void Lowerer::block(Label l, std::string title, const Sys* s, std::string c_equiv, std::string why) {
  b_.block(l, std::move(title), s ? s->name : "", s ? s->nr : -1, std::move(c_equiv), std::move(why));
}

void Lowerer::sigaction(int sig, const std::string& sig_name, Operand act, const std::string& act_comment) {
  b_.mov_imm(Reg::rdi, sig, "signum = " + sig_name);
  if (std::holds_alternative<MemOp>(act))
    b_.emit(Op::lea, {r64(Reg::rsi), act}, act_comment);
  else
    mov(r64(Reg::rsi), act, act_comment);
  b_.zero(Reg::rdx, "oldact = NULL");
  b_.mov_imm(Reg::r10, kSigsetBytes, "sizeof(sigset_t) as the kernel counts it");
  sys(kRtSigaction);
}

void Lowerer::pause_100ms(const std::string& why) {
  lea(Reg::rdi, backoff_, why);
  b_.zero(Reg::rsi, "rem = NULL");
  sys(kNanosleep);
}

void Lowerer::die_if_failed(Label prefix, size_t prefix_len) {
  Label ok = b_.new_label("ok");
  b_.emit(Op::test, {r64(Reg::rax), r64(Reg::rax)}, "rax < 0 means -errno");
  jmp(Op::jns, ok);
  lea(Reg::rsi, prefix, "the start of the error message");
  b_.mov_imm(Reg::rdx, static_cast<int64_t>(prefix_len), "its length");
  jmp(Op::jmp, die_, "print it with the errno's text and exit 1");
  b_.label(ok);
}

void Lowerer::declare_labels() {
  start_ = b_.symbol("_start");
  p_.entry = start_;
  accept_ = b_.new_label("accept");
  accept_failed_ = b_.new_label("accept_failed");
  serve_ = b_.new_label("serve");
  finish_ = b_.new_label("finish_connection");
  exit_ok_ = b_.new_label("exit_ok");
  write_all_ = b_.new_label("write_all");
  append_u64_ = b_.new_label("append_u64");
  append_ip_ = b_.new_label("append_ip");
  drain_ = b_.new_label("drain_input");
  log_conn_ = b_.new_label("log_connection");
  die_ = b_.new_label("die");
  on_signal_ = b_.new_label("on_signal");
  restorer_ = b_.new_label("signal_restorer");
  if (spec_.mode == Mode::fork) fork_ = b_.new_label("fork");
  worker_main_ = b_.new_label("worker_main");
  now_ms_ = b_.new_label("now_ms");
  spawn_ = b_.new_label("spawn_worker");
}

void Lowerer::declare_data() {
  std::string at = listen_text(spec_);
  // struct sigaction { handler, flags, restorer, mask } as the kernel reads it.
  sa_ignore_ = b_.bytes("sigaction_ignore", le(kSigIgn, 8) + le(0, 8) + le(0, 8) + le(0, 8),
                        "struct sigaction: sa_handler = SIG_IGN, no flags");
  if (spec_.mode == Mode::fork)
    sa_nocldwait_ = b_.bytes(
        "sigaction_nocldwait", le(kSigIgn, 8) + le(kSaNocldwait, 8) + le(0, 8) + le(0, 8),
        "struct sigaction: SIG_IGN with SA_NOCLDWAIT: the kernel reaps children itself");
  std::string addr = le(kAfInet, 2);
  addr += static_cast<char>(spec_.port >> 8);
  addr += static_cast<char>(spec_.port & 0xff);
  for (uint8_t octet : spec_.address_bytes) addr += static_cast<char>(octet);
  addr += le(0, 8);
  listen_addr_ = b_.bytes("listen_addr", addr,
                          fmt::format("struct sockaddr_in for {}: family AF_INET, port {} in "
                                      "network byte order, address, zero padding",
                                      at, spec_.port));
  one_ = b_.bytes("int_one", le(1, 4), "int 1: the value that turns a socket option on");
  io_timeout_ = b_.bytes("io_timeout", le(kIoTimeoutSeconds, 8) + le(0, 8),
                         fmt::format("struct timeval {{ {} s, 0 us }}: client socket timeout",
                                     kIoTimeoutSeconds));
  backoff_ = b_.bytes("accept_backoff", le(0, 8) + le(100'000'000, 8),
                      "struct timespec { 0 s, 100 ms }: pause after a failed accept");
  startup_ = b_.bytes("startup_line", fmt::format("{} listening on {}\n", spec_.name, at),
                      "printed once the socket listens");
  auto prefix = [&](const std::string& name, const std::string& what) {
    std::string s = fmt::format("{}: {}: ", spec_.name, what);
    longest_line_ = std::max(longest_line_, s.size());
    return std::pair{b_.bytes(name, s, "error message start"), s.size()};
  };
  err_socket_ = prefix("error_socket", "socket");
  err_reuse_ = prefix("error_setsockopt", "setsockopt SO_REUSEADDR");
  err_bind_ = prefix("error_bind", "bind " + at);
  err_listen_ = prefix("error_listen", "listen " + at);
  if (spec_.mode == Mode::epoll) {
    err_epoll_ = prefix("error_epoll", "epoll_create1");
    err_fcntl_ = prefix("error_fcntl", "fcntl O_NONBLOCK");
  }
  if (spec_.workers > 1) {
    std::string msg = fmt::format("{}: a worker exited; starting another\n", spec_.name);
    restart_msg_ = b_.bytes("restart_msg", msg, "printed when a worker is replaced");
    restart_msg_len_ = msg.size();
    pids_ = b_.bss("pids", 4 * static_cast<uint64_t>(spec_.workers), "the workers' process ids", 4);
    is_supervisor_ = b_.bss("is_supervisor", 4, "1 in the supervisor, 0 in workers", 4);
    wstatus_ = b_.bss("wstatus", 4, "status from wait4", 4);
    supervisor_pid_ = b_.bss("supervisor_pid", 4, "the supervisor's pid, for the workers", 4);
  }
  if (spec_.log_target == LogTarget::file) {
    err_open_ = prefix("error_open_log", "open " + spec_.log_path);
    log_path_ = b_.bytes("log_path", spec_.log_path + '\0',
                         "the log file's path, NUL-terminated for open(2)");
  }
  std::string texts;
  for (const ErrnoText& e : common_errnos()) {
    errno_offsets_.push_back(texts.size());
    texts += e.text;
  }
  errno_texts_ = b_.bytes("errno_texts", texts, "strerror() texts of the errnos named by die");
  errno_word_ = b_.bytes("errno_word", "errno ", "for an errno without a text");
  if (spec_.log_connections) {
    log_from_ = b_.bytes("log_from", "connection from ", "connection log, part 1");
    log_bytes_ = b_.bytes("log_bytes", ", bytes read: ", "connection log, part 2");
  }
  if (spec_.raw_response) {
    response_ = b_.bytes("response", *spec_.raw_response, "the raw response, sent verbatim");
    response_len_ = spec_.raw_response->size();
  } else {
    declare_http_data();
  }
  int buf_bytes = http() ? spec_.limits.request_bytes : kRequestBufferBytes;
  request_buf_ = b_.bss("request_buf", static_cast<uint64_t>(buf_bytes), "the request is read here", 64);
  conn_bytes_ = b_.bss("conn_bytes", 8, "bytes read from this connection, for the connection log");
  client_addr_ = b_.bss("client_addr", 16, "struct sockaddr_in: the client, filled by accept");
  client_addrlen_ = b_.bss("client_addrlen", 4, "socklen_t: in: the buffer size, out: the address size", 4);
  busy_ = b_.bss("busy", 4, "1 while a connection is being served", 4);
  stop_ = b_.bss("stop_requested", 4, "set by the signal handler when busy", 4);
  // The longest line built in line_buf: an error prefix plus an errno text
  // (at most 40 bytes), a connection log line (at most 72 bytes), or an access
  // log line (a request line of up to request_bytes, plus at most 60 bytes).
  if (spec_.log_requests) longest_line_ = std::max<size_t>(longest_line_, buf_bytes);
  line_buf_ = b_.bss("line_buf", longest_line_ + 128, "log and error lines are built here");
  if (http() || spec_.mode == Mode::epoll)
    now_ts_ = b_.bss("now_ts", 16, "struct timespec, filled by clock_gettime");
  stop_sigs_ = b_.bytes("stop_signals", le((1u << (kSigterm - 1)) | (1u << (kSigint - 1)), 8),
                        "sigset_t { SIGTERM, SIGINT }");
  no_sigs_ = b_.bytes("no_signals", le(0, 8), "the empty sigset_t");
  if (http() && spec_.mode != Mode::epoll)
    poll_ts_ = b_.bss("poll_timeout", 16, "struct timespec for ppoll");
  if (spec_.mode == Mode::epoll) declare_epoll_data();
}

void Lowerer::start() {
  block(start_, "start: ignore SIGPIPE", &kRtSigaction,
           "sigaction(SIGPIPE, &(struct sigaction){ .sa_handler = SIG_IGN }, NULL)",
           "A client that closes early must not kill the server: with SIGPIPE ignored,\n"
           "write() to a closed socket returns -EPIPE instead.");
  sigaction(kSigpipe, "SIGPIPE", rip(sa_ignore_), "act = SIG_IGN");

  block(b_.new_label("catch_stop_signals"), "catch SIGTERM and SIGINT", &kRtSigaction,
           "sigaction(SIGTERM, &sa, NULL); sigaction(SIGINT, &sa, NULL)  "
           "with sa = { on_signal, SA_RESTORER, signal_restorer }",
           "SIGTERM (docker stop, kill) and SIGINT (Ctrl-C) end the server with status 0,\n"
           "also as PID 1, where signals without a handler are ignored. The handler\n"
           "exits at once when idle, else it lets the current connection finish.\n"
           "No SA_RESTART: a blocked accept() or read() returns -EINTR.\n"
           "x86-64 requires SA_RESTORER: the restorer calls rt_sigreturn.");
  b_.emit(Op::sub, {r64(Reg::rsp), imm(32)}, "struct sigaction on the stack");
  lea(Reg::rax, on_signal_);
  mov(mem64(Reg::rsp, 0), r64(Reg::rax), "sa_handler = on_signal");
  mov(mem64(Reg::rsp, 8), imm(kSaRestorer), "sa_flags = SA_RESTORER");
  lea(Reg::rax, restorer_);
  mov(mem64(Reg::rsp, 16), r64(Reg::rax), "sa_restorer = signal_restorer");
  mov(mem64(Reg::rsp, 24), imm(0), "sa_mask = {} (the signal itself is masked anyway)");
  sigaction(kSigterm, "SIGTERM", r64(Reg::rsp), "act = the struct above");
  sigaction(kSigint, "SIGINT", r64(Reg::rsp), "act = the struct above");
  b_.emit(Op::add, {r64(Reg::rsp), imm(32)}, "drop the struct");

  if (spec_.log_target == LogTarget::file) {
    block(b_.new_label("open_log"), "open the log file", &kOpen,
             fmt::format("log_fd = open(\"{}\", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)",
                         spec_.log_path),
             "Opened once at start. O_APPEND makes each line one atomic append, so\n"
             "lines from several processes never interleave.");
    lea(Reg::rdi, log_path_, "pathname");
    b_.mov_imm(Reg::rsi, kOWronly | kOCreat | kOAppend | kOCloexec,
               "O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC");
    b_.mov_imm(Reg::rdx, 0644, "mode 0644 (octal)");
    sys(kOpen);
    die_if_failed(err_open_->first, err_open_->second);
    mov(r64(kLogFd), r64(Reg::rax), "r15 = log_fd");
  } else {
    block(b_.new_label("choose_log"), "choose the log's file descriptor", nullptr,
             spec_.log_target == LogTarget::stderr_ ? "log_fd = STDERR_FILENO" : "log_fd = STDOUT_FILENO",
             "");
    b_.mov_imm(kLogFd, spec_.log_target == LogTarget::stderr_ ? 2 : 1, "r15 = log_fd");
  }

  block(b_.new_label("socket"), "create the listening socket", &kSocket,
           "listen_fd = socket(AF_INET, SOCK_STREAM, 0)", "A TCP socket over IPv4.");
  b_.mov_imm(Reg::rdi, kAfInet, "domain = AF_INET");
  b_.mov_imm(Reg::rsi, kSockStream, "type = SOCK_STREAM");
  b_.zero(Reg::rdx, "protocol = 0: TCP");
  sys(kSocket);
  die_if_failed(err_socket_.first, err_socket_.second);
  mov(r64(kListenFd), r64(Reg::rax), "r12 = listen_fd");

  block(b_.new_label("reuseaddr"), "allow a quick restart", &kSetsockopt,
           "setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one)",
           "Without SO_REUSEADDR a restart fails with EADDRINUSE while old connections\n"
           "sit in TIME_WAIT.");
  mov(r64(Reg::rdi), r64(kListenFd), "fd = listen_fd");
  b_.mov_imm(Reg::rsi, kSolSocket, "level = SOL_SOCKET");
  b_.mov_imm(Reg::rdx, kSoReuseaddr, "optname = SO_REUSEADDR");
  lea(Reg::r10, one_, "optval = &one");
  b_.mov_imm(Reg::r8, 4, "optlen = sizeof(int)");
  sys(kSetsockopt);
  die_if_failed(err_reuse_.first, err_reuse_.second);

  block(b_.new_label("bind"), "bind the address", &kBind,
           "bind(listen_fd, (struct sockaddr *)&listen_addr, sizeof listen_addr)",
           fmt::format("Give the socket its address, {}.", listen_text(spec_)));
  mov(r64(Reg::rdi), r64(kListenFd), "fd = listen_fd");
  lea(Reg::rsi, listen_addr_, "addr = &listen_addr");
  b_.mov_imm(Reg::rdx, 16, "addrlen = sizeof(struct sockaddr_in)");
  sys(kBind);
  die_if_failed(err_bind_.first, err_bind_.second);

  block(b_.new_label("listen"), "start listening", &kListen,
           fmt::format("listen(listen_fd, {})", spec_.backlog),
           "The kernel now completes handshakes and queues connections for accept().");
  mov(r64(Reg::rdi), r64(kListenFd), "fd = listen_fd");
  b_.mov_imm(Reg::rsi, spec_.backlog, "backlog");
  sys(kListen);
  die_if_failed(err_listen_.first, err_listen_.second);

  if (spec_.mode == Mode::epoll) {
    block(b_.new_label("nonblocking"), "make the listener non-blocking", &kFcntl,
          "fcntl(listen_fd, F_SETFL, O_NONBLOCK)",
          "The event loop accepts until -EAGAIN instead of blocking in accept().");
    mov(r64(Reg::rdi), r64(kListenFd), "fd = listen_fd");
    b_.mov_imm(Reg::rsi, kFSetfl, "F_SETFL");
    b_.mov_imm(Reg::rdx, kONonblock, "O_NONBLOCK");
    sys(kFcntl);
    die_if_failed(err_fcntl_.first, err_fcntl_.second);
  }

  block(b_.new_label("announce"), "say that the server is up", &kWrite,
           fmt::format("write_all(STDOUT_FILENO, \"{} listening on {}\\n\", {})", spec_.name,
                       listen_text(spec_), spec_.name.size() + 15 + listen_text(spec_).size()),
           "Printed only once listen() succeeded, so a script can wait for this line.");
  b_.mov_imm(Reg::rdi, 1, "fd = STDOUT_FILENO");
  lea(Reg::rsi, startup_, "buf");
  b_.mov_imm(Reg::rdx, static_cast<int64_t>(spec_.name.size() + 15 + listen_text(spec_).size()), "count");
  call(write_all_, "a closed stdout is not fatal: the result is ignored");
}

void Lowerer::worker_start() {
  block(worker_main_, "a worker starts", spec_.workers > 1 ? &kPrctl : nullptr,
        spec_.workers > 1 ? "prctl(PR_SET_PDEATHSIG, SIGTERM)" : "",
        spec_.workers > 1 ? "Should the supervisor die, the kernel sends this worker SIGTERM." : "");
  if (spec_.workers > 1) {
    b_.mov_imm(Reg::rdi, kPrSetPdeathsig, "PR_SET_PDEATHSIG");
    b_.mov_imm(Reg::rsi, kSigterm, "SIGTERM");
    sys(kPrctl);
    b_.note("The supervisor may have died before prctl: then no signal will come.");
    sys(kGetppid);
    op(Op::cmp, r32(Reg::rax), var32(supervisor_pid_), "still its child?");
    jmp(Op::jne, exit_ok_, "orphaned already: exit");
  }
  if (spec_.mode == Mode::fork) {
    block(b_.new_label("reap_children"), "reap children automatically", &kRtSigaction,
             "sigaction(SIGCHLD, &(struct sigaction){ .sa_handler = SIG_IGN, "
             ".sa_flags = SA_NOCLDWAIT }, NULL)",
             "With SIGCHLD ignored and SA_NOCLDWAIT, a child that exits is reaped by the\n"
             "kernel at once: no zombie ever stays, and no wait4() loop is needed.");
    sigaction(kSigchld, "SIGCHLD", rip(sa_nocldwait_), "act = SIG_IGN + SA_NOCLDWAIT");
  }

}

void Lowerer::supervisor() {
  const int n = spec_.workers;
  Label spawn_all = b_.new_label("spawn_all");
  Label reap = b_.new_label("reap");
  Label find = b_.new_label("find_worker");
  Label found = b_.new_label("worker_found");
  block(b_.new_label("supervise"), fmt::format("start {} workers", n), &kFork,
        fmt::format("for (i = 0; i < {}; i++) spawn_worker(i)", n),
        "This process only supervises: the workers share the listening socket\n"
        "and each accepts from it. A worker that dies is replaced; SIGTERM and\n"
        "SIGINT are passed on to every worker (see the signal handler).");
  mov(var32(is_supervisor_), imm(1));
  sys(kGetpid);
  mov(var32(supervisor_pid_), r32(Reg::rax), "for the workers' check");
  b_.zero(Reg::rbx, "i = 0");
  b_.label(spawn_all);
  call(spawn_);
  op(Op::inc, r32(Reg::rbx));
  op(Op::cmp, r32(Reg::rbx), imm(n));
  jmp(Op::jb, spawn_all);

  Label wait = b_.new_label("wait_worker");
  block(reap, "wait for a worker to exit", &kWait4, "pid = wait4(-1, &status, 0, NULL)",
        "Replace it unless we are stopping; exit 0 once every worker is gone.\n"
        "Once stopping, the supervisor closes its copy of the listening socket, so\n"
        "the socket closes (new connects are refused) as soon as the workers close\n"
        "theirs.");
  op(Op::cmp, var32(stop_), imm(0), "stopping?");
  jmp(Op::je, wait);
  op(Op::cmp, r32(kListenFd), imm(0), "listener still open? (-1 once closed)");
  jmp(Op::jl, wait);
  mov(r64(Reg::rdi), r64(kListenFd));
  sys(kClose);
  b_.mov_imm(kListenFd, -1, "closed");
  b_.label(wait);
  b_.mov_imm(Reg::rdi, -1, "any child");
  lea(Reg::rsi, wstatus_);
  b_.zero(Reg::rdx, "options = 0");
  b_.zero(Reg::r10, "rusage = NULL");
  sys(kWait4);
  op(Op::cmp, r64(Reg::rax), imm(-kEintr), "a signal: the handler passed it on");
  jmp(Op::je, reap);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, exit_ok_, "-ECHILD: no worker left");
  lea(Reg::rsi, pids_);
  b_.zero(Reg::r8, "byte offset in pids");
  b_.label(find);
  op(Op::cmp, mem_index(Width::b32, Reg::rsi, Reg::r8), r32(Reg::rax));
  jmp(Op::je, found);
  op(Op::add, r64(Reg::r8), imm(4));
  op(Op::cmp, r64(Reg::r8), imm(4 * n));
  jmp(Op::jb, find);
  jmp(Op::jmp, reap, "not a worker of ours");
  b_.label(found);
  mov(mem_index(Width::b32, Reg::rsi, Reg::r8), imm(0), "the slot is empty");
  op(Op::cmp, var32(stop_), imm(0), "stopping?");
  jmp(Op::jne, reap, "then do not replace it");
  mov(r64(Reg::rbx), r64(Reg::r8));
  op(Op::shr, r64(Reg::rbx), imm(2), "rbx = the slot");
  b_.mov_imm(Reg::rdi, 2, "fd = STDERR_FILENO");
  lea(Reg::rsi, restart_msg_);
  b_.mov_imm(Reg::rdx, static_cast<int64_t>(restart_msg_len_));
  call(write_all_);
  pause_100ms("pause 100 ms: a crashing worker must not make us spin");
  call(spawn_);
  jmp(Op::jmp, reap);

  Label child = b_.new_label("worker_child");
  Label retry = b_.new_label("fork_retry");
  Label forked = b_.new_label("forked");
  Label done = b_.new_label("spawned");
  block(spawn_, "subroutine spawn_worker(rbx = slot)", &kFork, "pids[slot] = fork()",
        "The child becomes a worker. A stop signal that came meanwhile reaches it too.");
  b_.label(retry);
  sys(kFork);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jns, forked);
  pause_100ms("fork failed: pause 100 ms, try again");
  op(Op::cmp, var32(stop_), imm(0), "unless we are stopping");
  jmp(Op::jne, done);
  jmp(Op::jmp, retry);
  b_.label(forked);
  jmp(Op::jz, child);
  mov(r32(Reg::rcx), r32(Reg::rbx));
  op(Op::shl, r64(Reg::rcx), imm(2));
  lea(Reg::rsi, pids_);
  mov(mem_index(Width::b32, Reg::rsi, Reg::rcx), r32(Reg::rax), "pids[slot] = pid");
  op(Op::cmp, var32(stop_), imm(0));
  jmp(Op::je, done);
  mov(r32(Reg::rdi), r32(Reg::rax), "stopping already: pass it on");
  b_.mov_imm(Reg::rsi, kSigterm, "SIGTERM");
  sys(kKill);
  b_.label(done);
  ret();
  b_.label(child);
  mov(var32(is_supervisor_), imm(0), "a worker");
  b_.note("setpgid(0, 0): a process group of its own, so a terminal's Ctrl-C reaches only");
  b_.note("the supervisor, which passes it on once (twice would mean: exit at once).");
  b_.zero(Reg::rdi, "pid = 0: this process");
  b_.zero(Reg::rsi, "pgid = 0: its own pid");
  sys(kSetpgid);
  jmp(Op::jmp, worker_main_);
}

void Lowerer::accept_loop() {
  block(accept_, "wait for the next connection", &kAccept,
           "client_fd = accept(listen_fd, (struct sockaddr *)&client_addr, &client_addrlen)",
           "Blocks until a client connects. busy = 0 first: a SIGTERM that arrives\n"
           "while we wait here ends the server at once.");
  mov(rip(busy_, Width::b32), imm(0), "busy = 0");
  b_.note("Stop signals are blocked while a connection is served (they arrive only in");
  b_.note("ppoll, see read_timed); one that came meanwhile is delivered right here.");
  b_.mov_imm(Reg::rdi, kSigUnblock, "SIG_UNBLOCK");
  lea(Reg::rsi, stop_sigs_, "{ SIGTERM, SIGINT }");
  b_.zero(Reg::rdx, "oldset = NULL");
  b_.mov_imm(Reg::r10, kSigsetBytes, "sizeof(sigset_t)");
  sys(kRtSigprocmask);
  b_.emit(Op::cmp, {rip(stop_, Width::b32), imm(0)}, "a stop signal came while busy?");
  jmp(Op::jne, exit_ok_, "then exit now, between connections");
  mov(rip(client_addrlen_, Width::b32), imm(16), "client_addrlen = sizeof(struct sockaddr_in)");
  mov(r64(Reg::rdi), r64(kListenFd), "fd = listen_fd");
  lea(Reg::rsi, client_addr_, "addr = &client_addr");
  lea(Reg::rdx, client_addrlen_, "addrlen = &client_addrlen");
  sys(kAccept);
  b_.emit(Op::test, {r64(Reg::rax), r64(Reg::rax)});
  jmp(Op::js, accept_failed_);
  mov(r64(kClientFd), r64(Reg::rax), "r13 = client_fd");
  mov(rip(busy_, Width::b32), imm(1), "busy = 1: a stop signal now waits for this connection");
  b_.mov_imm(Reg::rdi, kSigBlock, "SIG_BLOCK");
  lea(Reg::rsi, stop_sigs_, "{ SIGTERM, SIGINT }");
  b_.zero(Reg::rdx, "oldset = NULL");
  b_.mov_imm(Reg::r10, kSigsetBytes, "sizeof(sigset_t)");
  sys(kRtSigprocmask);
  jmp(Op::jmp, spec_.mode == Mode::fork ? fork_ : serve_);

  block(accept_failed_, "survive a failed accept", &kNanosleep,
           "if (errno != EINTR && errno != ECONNABORTED) nanosleep(&(struct timespec){ 0, 100000000 }, NULL)",
           "EINTR (a signal) and ECONNABORTED (the client gave up) are retried at once.\n"
           "EMFILE, ENFILE, ENOBUFS, ENOMEM and the rest would fail again at once:\n"
           "pausing 100 ms keeps the server alive without spinning the CPU.");
  b_.emit(Op::cmp, {r64(Reg::rax), imm(-kEintr)}, "-EINTR");
  jmp(Op::je, accept_);
  b_.emit(Op::cmp, {r64(Reg::rax), imm(-kEconnaborted)}, "-ECONNABORTED");
  jmp(Op::je, accept_);
  pause_100ms("req = 100 ms");
  jmp(Op::jmp, accept_);
}

void Lowerer::fork_connection() {
  Label child = b_.new_label("child");
  Label failed = b_.new_label("fork_failed");
  block(fork_, "hand the connection to a child process", &kFork,
           "pid = fork()",
           "The child serves the connection and exits; the parent goes straight back\n"
           "to accept(). The kernel reaps the children (SA_NOCLDWAIT, above).");
  sys(kFork);
  b_.emit(Op::test, {r64(Reg::rax), r64(Reg::rax)});
  jmp(Op::js, failed, "fork failed (EAGAIN, ENOMEM)");
  jmp(Op::je, child, "0 in the child");
  b_.note("the parent: the child has its own copy of client_fd");
  mov(r64(Reg::rdi), r64(kClientFd), "fd = client_fd");
  sys(kClose);
  jmp(Op::jmp, accept_);

  block(failed, "survive a failed fork", &kClose,
           "close(client_fd); nanosleep(&(struct timespec){ 0, 100000000 }, NULL)",
           "Too many processes or no memory: drop this connection, pause 100 ms.");
  mov(r64(Reg::rdi), r64(kClientFd), "fd = client_fd");
  sys(kClose);
  pause_100ms("req = 100 ms");
  jmp(Op::jmp, accept_);

  block(child, "the child lets go of the listening socket", &kClose,
           "close(listen_fd)",
           "Only the parent accepts; the child keeps just its client.");
  mov(r64(Reg::rdi), r64(kListenFd), "fd = listen_fd");
  sys(kClose);
  mov(var32(stop_), imm(0), "a stop meant for the parent: this connection is served in full");
  jmp(Op::jmp, serve_);
}

void Lowerer::serve_raw() {
  block(serve_, "bound the time a client may take", &kSetsockopt,
        "setsockopt(client_fd, SOL_SOCKET, SO_RCVTIMEO, &io_timeout, sizeof io_timeout);\n"
        "setsockopt(client_fd, SOL_SOCKET, SO_SNDTIMEO, &io_timeout, sizeof io_timeout)",
        fmt::format("A silent client, or one that never reads, gives up its slot after {} s:\n"
                    "read() and write() then fail with -EAGAIN.", kIoTimeoutSeconds));
  for (int opt : {kSoRcvtimeo, kSoSndtimeo}) {
    mov(r64(Reg::rdi), r64(kClientFd), "fd = client_fd");
    b_.mov_imm(Reg::rsi, kSolSocket, "level = SOL_SOCKET");
    b_.mov_imm(Reg::rdx, opt, opt == kSoRcvtimeo ? "optname = SO_RCVTIMEO" : "optname = SO_SNDTIMEO");
    lea(Reg::r10, io_timeout_, "optval = &io_timeout");
    b_.mov_imm(Reg::r8, 16, "optlen = sizeof(struct timeval)");
    sys(kSetsockopt);
  }
  read_once();
  block(b_.new_label("respond"), "send the response", &kWrite,
        fmt::format("write_all(client_fd, response, {})", response_len_),
        "Every byte of the raw response; write_all loops on short writes and EINTR.\n"
        "A failed write (the client left) just ends the connection.");
  mov(r64(Reg::rdi), r64(kClientFd), "fd = client_fd");
  lea(Reg::rsi, response_, "buf = response");
  b_.mov_imm(Reg::rdx, static_cast<int64_t>(response_len_), "count: computed at compile time");
  call(write_all_);
  jmp(Op::jmp, finish_);
}

void Lowerer::read_once() {
  Label again = b_.new_label("read_again");
  block(b_.new_label("read_request"), "read the request once", &kRead,
        fmt::format("n = read(client_fd, request_buf, {})", kRequestBufferBytes),
        "One read, as the raw server answers after the first bytes arrive.\n"
        "End of file, a timeout or an error closes the connection unanswered.");
  mov(var64(conn_bytes_), imm(0), "no bytes read yet");
  b_.label(again);
  mov(r64(Reg::rdi), r64(kClientFd), "fd = client_fd");
  lea(Reg::rsi, request_buf_, "buf = request_buf");
  b_.mov_imm(Reg::rdx, kRequestBufferBytes, "count = the buffer's size");
  sys(kRead);
  b_.emit(Op::cmp, {r64(Reg::rax), imm(-kEintr)}, "-EINTR: a signal came, read again");
  jmp(Op::je, again);
  b_.emit(Op::test, {r64(Reg::rax), r64(Reg::rax)});
  jmp(Op::jle, finish_, "0: end of file; < 0: timeout or error");
  mov(var64(conn_bytes_), r64(Reg::rax), "bytes read, for the log");
}

void Lowerer::finish_connection() {
  block(finish_, "close the connection", &kClose, "drain_input(); log_connection(); close(client_fd)",
        spec_.mode == Mode::fork ? "The child's work is done: it exits, and the kernel reaps it."
                                 : "Then back to accept() for the next client.");
  call(drain_);
  if (spec_.log_connections) call(log_conn_);
  mov(r64(Reg::rdi), r64(kClientFd), "fd = client_fd");
  sys(kClose);
  jmp(Op::jmp, spec_.mode == Mode::fork ? exit_ok_ : accept_);
}

void Lowerer::drain_input() {
  Label drain = b_.new_label("drain");
  Label drained = b_.new_label("drained");
  block(drain_, "subroutine drain_input", &kRecvfrom,
        "while (recv(client_fd, request_buf, sizeof request_buf, MSG_DONTWAIT) > 0 && ++n < 16) {}",
        "Closing a socket with unread input makes the kernel send RST, which can\n"
        "destroy the response before the client reads it. Take what has already\n"
        "arrived, without waiting (at most 16 buffers), so close() sends FIN.");
  b_.mov_imm(Reg::r10, 16, "at most 16 reads");
  b_.label(drain);
  mov(r64(Reg::rdi), r64(kClientFd), "fd = client_fd");
  lea(Reg::rsi, request_buf_, "buf = request_buf, as scratch");
  b_.mov_imm(Reg::rdx, http() ? spec_.limits.request_bytes : kRequestBufferBytes, "len");
  mov(r64(Reg::r8), r64(Reg::r10), "keep the count");
  b_.mov_imm(Reg::r10, kMsgDontwait, "flags = MSG_DONTWAIT");
  op(Op::push, r64(Reg::r8));
  b_.zero(Reg::r8, "src_addr = NULL");
  b_.zero(Reg::r9, "addrlen = NULL");
  sys(kRecvfrom);
  op(Op::pop, r64(Reg::r10), "the count");
  b_.emit(Op::test, {r64(Reg::rax), r64(Reg::rax)});
  jmp(Op::jle, drained, "nothing more (-EAGAIN), end of file, or error");
  b_.emit(Op::dec, {r64(Reg::r10)});
  jmp(Op::jnz, drain);
  b_.label(drained);
  ret();
}

void Lowerer::log_connection() {
  block(log_conn_, "subroutine log_connection", &kWrite,
           "dprintf(log_fd, \"connection from %s:%u, bytes read: %zu\\n\", ip, port, len)",
           "Built in line_buf and written with one write(), so lines from several\n"
           "processes do not interleave.");
  lea(Reg::rdi, line_buf_, "rdi = where the line is built");
  lea(Reg::rsi, log_from_);
  b_.mov_imm(Reg::rcx, 16);
  b_.emit(Op::rep_movsb, {}, "copy \"connection from \"");
  call(append_ip_, "\"127.0.0.1\"");
  mov(mem8(Reg::rdi), imm(':'), "':'");
  b_.emit(Op::inc, {r64(Reg::rdi)});
  lea(Reg::r8, client_addr_);
  b_.emit(Op::movzx, {r32(Reg::rax), mem16(Reg::r8, 2)}, "sin_port, network byte order");
  b_.emit(Op::ror, {r16(Reg::rax), imm(8)}, "ntohs: swap the two bytes");
  call(append_u64_);
  lea(Reg::rsi, log_bytes_);
  b_.mov_imm(Reg::rcx, 14);
  b_.emit(Op::rep_movsb, {}, "copy \", bytes read: \"");
  mov(r64(Reg::rax), var64(conn_bytes_));
  call(append_u64_);
  mov(mem8(Reg::rdi), imm('\n'), "'\\n'");
  b_.emit(Op::inc, {r64(Reg::rdi)});
  mov(r64(Reg::rdx), r64(Reg::rdi), "count = end - start");
  lea(Reg::rsi, line_buf_, "buf = line_buf");
  b_.emit(Op::sub, {r64(Reg::rdx), r64(Reg::rsi)});
  mov(r64(Reg::rdi), r64(kLogFd), "fd = log_fd");
  call(write_all_, "a failed log write is not fatal");
  ret();
}

void Lowerer::append_ip() {
  block(append_ip_, "subroutine append_ip(rdi = dst)", nullptr,
        "dst += sprintf(dst, \"%u.%u.%u.%u\", ip[0], ip[1], ip[2], ip[3])",
        "The client's address from client_addr, as text; advances rdi.\n"
        "Clobbers rax, rcx, rdx, rsi, r8.");
  lea(Reg::r8, client_addr_, "r8 = &client_addr");
  for (int i = 0; i < 4; ++i) {
    b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::r8, 4 + i)}, fmt::format("address byte {}", i + 1));
    call(append_u64_);
    if (i == 3) break;
    mov(mem8(Reg::rdi), imm('.'), "'.'");
    b_.emit(Op::inc, {r64(Reg::rdi)});
  }
  ret();
}

void Lowerer::exit_ok() {
  block(exit_ok_, "exit", &kExitGroup, "exit_group(0)", "");
  b_.zero(Reg::rdi, "status = 0");
  sys(kExitGroup);
}

void Lowerer::write_all() {
  Label loop = b_.new_label("write_more");
  Label done = b_.new_label("write_done");
  Label eio = b_.new_label("write_eio");
  Label ret = b_.new_label("write_return");
  block(write_all_, "subroutine write_all(rdi = fd, rsi = buf, rdx = count)", &kWrite,
           "while (count > 0) { n = write(fd, buf, count); if (n == -EINTR) continue;\n"
           "  if (n <= 0) return n ? n : -EIO; buf += n; count -= n; } return 0;",
           "write() may write fewer bytes than asked (a full socket buffer, a signal):\n"
           "loop until every byte is out. Returns rax = 0, or -errno.");
  b_.label(loop);
  b_.emit(Op::test, {r64(Reg::rdx), r64(Reg::rdx)}, "anything left?");
  jmp(Op::jz, done);
  sys(kWrite);
  b_.emit(Op::cmp, {r64(Reg::rax), imm(-kEintr)}, "-EINTR: try again");
  jmp(Op::je, loop);
  b_.emit(Op::test, {r64(Reg::rax), r64(Reg::rax)});
  jmp(Op::js, ret, "-errno: give up");
  jmp(Op::jz, eio, "no progress: give up");
  b_.emit(Op::add, {r64(Reg::rsi), r64(Reg::rax)}, "buf += n");
  b_.emit(Op::sub, {r64(Reg::rdx), r64(Reg::rax)}, "count -= n");
  jmp(Op::jmp, loop);
  b_.label(eio);
  b_.mov_imm(Reg::rax, -kEio, "-EIO");
  b_.emit(Op::ret, {});
  b_.label(done);
  b_.zero(Reg::rax, "0: all written");
  b_.label(ret);
  b_.emit(Op::ret, {});
}

void Lowerer::append_u64() {
  Label digit = b_.new_label("digit");
  block(append_u64_, "subroutine append_u64(rax = value, rdi = dst)", nullptr,
           "dst += sprintf(dst, \"%lu\", value)",
           "Writes the decimal digits of rax at rdi and advances rdi past them.\n"
           "Digits come out last first, so they are built backwards on the stack.\n"
           "Clobbers rax, rcx, rdx, rsi.");
  b_.emit(Op::sub, {r64(Reg::rsp), imm(32)}, "room for 20 digits");
  b_.emit(Op::lea, {r64(Reg::rsi), mem(Width::none, Reg::rsp, 32)}, "rsi = end of the room");
  b_.mov_imm(Reg::rcx, 10, "divisor");
  b_.label(digit);
  b_.zero(Reg::rdx, "rdx:rax / 10");
  b_.emit(Op::div, {r64(Reg::rcx)}, "rax = quotient, rdx = last digit");
  b_.emit(Op::add, {r8(Reg::rdx), imm('0')}, "to ASCII");
  b_.emit(Op::dec, {r64(Reg::rsi)});
  mov(mem8(Reg::rsi), r8(Reg::rdx));
  b_.emit(Op::test, {r64(Reg::rax), r64(Reg::rax)});
  jmp(Op::jnz, digit);
  b_.emit(Op::lea, {r64(Reg::rcx), mem(Width::none, Reg::rsp, 32)});
  b_.emit(Op::sub, {r64(Reg::rcx), r64(Reg::rsi)}, "rcx = number of digits");
  b_.emit(Op::rep_movsb, {}, "copy them to dst");
  b_.emit(Op::add, {r64(Reg::rsp), imm(32)});
  b_.emit(Op::ret, {});
}

void Lowerer::die() {
  Label copy = b_.new_label("copy_text");
  Label unknown = b_.new_label("unknown_errno");
  Label newline = b_.new_label("newline");
  block(die_, "fatal start-up error (rax = -errno, rsi/rdx = message start)", &kWrite,
           "fprintf(stderr, \"%s%s\\n\", message, strerror(errno)); exit(1)",
           "Names the call, the address and the reason, e.g.\n"
           "\"server: bind 0.0.0.0:8080: Address already in use\"; an errno without a\n"
           "text here is printed as its number.");
  b_.emit(Op::neg, {r64(Reg::rax)});
  mov(r64(Reg::rbx), r64(Reg::rax), "rbx = errno");
  lea(Reg::rdi, line_buf_, "the line is built in line_buf");
  mov(r64(Reg::rcx), r64(Reg::rdx));
  b_.emit(Op::rep_movsb, {}, "copy the message start");
  lea(Reg::rsi, errno_texts_, "rsi = all the texts, one after another");
  size_t i = 0;
  std::vector<std::pair<Label, size_t>> cases;
  for (const ErrnoText& e : common_errnos()) {
    Label l = b_.new_label(std::string("is_") + e.name);
    b_.emit(Op::cmp, {r32(Reg::rbx), imm(e.number)}, e.name);
    jmp(Op::je, l);
    cases.emplace_back(l, i++);
  }
  jmp(Op::jmp, unknown);
  for (const auto& [l, idx] : cases) {
    const ErrnoText& e = common_errnos()[idx];
    b_.label(l);
    b_.emit(Op::add, {r64(Reg::rsi), imm(static_cast<int64_t>(errno_offsets_[idx]))},
            fmt::format("\"{}\"", e.text));
    b_.mov_imm(Reg::rcx, static_cast<int64_t>(std::string_view(e.text).size()));
    jmp(Op::jmp, copy);
  }
  b_.label(unknown);
  lea(Reg::rsi, errno_word_);
  b_.mov_imm(Reg::rcx, 6);
  b_.emit(Op::rep_movsb, {}, "\"errno \"");
  mov(r64(Reg::rax), r64(Reg::rbx));
  call(append_u64_);
  jmp(Op::jmp, newline);
  b_.label(copy);
  b_.emit(Op::rep_movsb, {}, "copy the errno's text");
  b_.label(newline);
  mov(mem8(Reg::rdi), imm('\n'), "'\\n'");
  b_.emit(Op::inc, {r64(Reg::rdi)});
  mov(r64(Reg::rdx), r64(Reg::rdi), "count = end - start");
  lea(Reg::rsi, line_buf_, "buf = line_buf");
  b_.emit(Op::sub, {r64(Reg::rdx), r64(Reg::rsi)});
  b_.mov_imm(Reg::rdi, 2, "fd = STDERR_FILENO");
  call(write_all_);
  b_.mov_imm(Reg::rdi, 1, "status = 1");
  sys(kExitGroup);
}

void Lowerer::signal_handler() {
  Label worker = b_.new_label("signal_in_worker");
  Label now = b_.new_label("exit_now");
  block(on_signal_, "signal handler for SIGTERM and SIGINT", &kExitGroup,
        "if (stop_requested || !busy) _exit(0); stop_requested = 1;",
        spec_.mode == Mode::epoll
            ? "The first signal asks the event loop for a graceful stop; a second one\n"
              "exits at once."
            : "Idle (blocked in accept): exit now. Busy: note the request; the accept\n"
              "loop exits once the current connection is done. A second signal exits\n"
              "at once.");
  if (spec_.workers > 1) {
    Label next = b_.new_label("next_pid");
    Label loop = b_.new_label("pass_on");
    op(Op::cmp, var32(is_supervisor_), imm(0));
    jmp(Op::je, worker);
    b_.note("The supervisor passes the signal on to every worker (as SIGTERM).");
    mov(var32(stop_), imm(1), "stop_requested = 1: no more restarts");
    b_.zero(Reg::r8, "byte offset in pids");
    b_.label(loop);
    lea(Reg::rsi, pids_);
    mov(r32(Reg::rdi), mem_index(Width::b32, Reg::rsi, Reg::r8), "pid");
    op(Op::test, r32(Reg::rdi), r32(Reg::rdi));
    jmp(Op::jz, next, "an empty slot");
    b_.mov_imm(Reg::rsi, kSigterm, "SIGTERM");
    sys(kKill);
    b_.label(next);
    op(Op::add, r64(Reg::r8), imm(4));
    op(Op::cmp, r64(Reg::r8), imm(4 * spec_.workers));
    jmp(Op::jb, loop);
    ret("returns into signal_restorer");
  }
  b_.label(worker);
  op(Op::cmp, var32(stop_), imm(0), "a second signal?");
  jmp(Op::jne, now);
  op(Op::cmp, var32(busy_), imm(0), "serving a connection?");
  jmp(Op::je, now);
  mov(var32(stop_), imm(1), "stop_requested = 1");
  ret("returns into signal_restorer");
  b_.label(now);
  b_.zero(Reg::rdi, "status = 0");
  sys(kExitGroup);

  block(restorer_, "signal return trampoline", &kRtSigreturn, "rt_sigreturn()",
           "The kernel pushed this address as the handler's return address\n"
           "(SA_RESTORER); rt_sigreturn restores the interrupted registers.");
  sys(kRtSigreturn);
}

Program lower(const Spec& spec) { return Lowerer(spec).run(); }

}  // namespace asmsrv
