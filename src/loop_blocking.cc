// The blocking driver, for the iterative and fork modes: accept one
// connection, serve it to the end with blocking calls (each wait bounded by
// the record's deadline), then accept the next — in this process (iterative)
// or in a child of its own (fork). One static connection record.
#include <fmt/format.h>

#include "client_addr.h"
#include "driver.h"

namespace asmsrv {

using namespace linux;

namespace {

class BlockingDriver : public Driver, Gen {
 public:
  explicit BlockingDriver(const DriverDeps& d)
      : Gen(d.spec, d.b), rt_(d.rt), conn_(d.conn), log_(d.log), fork_(d.spec.mode == Mode::fork) {
    entry_ = local("send_timeout");
    err_sndtimeo_ = rt_.setsockopt_error("error_sndtimeo", "SO_SNDTIMEO");
    accept_ = local("accept");
  }
  bool nonblocking_listener() const override { return false; }
  Label entry() const override { return entry_; }
  void emit() override;

 private:
  void emit_accept();
  void emit_fork();
  void emit_serve();
  void emit_read_timed();

  Runtime& rt_;
  ErrorPrefix err_sndtimeo_;
  Conn& conn_;
  AccessLog& log_;
  ClientAddress peer_{spec_, b_};
  bool fork_;
  Label entry_, accept_, fork_label_, serve_, dispatch_, want_read_, got_, send_, close_, read_timed_;
  Label record_, buf_, pollfd_, poll_ts_, io_timeout_, stop_deadline_;
};

void BlockingDriver::emit() {
  serve_ = local("serve");
  dispatch_ = local("next_action");
  want_read_ = local("wait_for_input");
  send_ = local("send");
  got_ = local("got");
  close_ = local("close_connection");
  read_timed_ = local("read_timed");
  if (fork_) fork_label_ = local("fork");
  int buf_bytes = conn_buffer_bytes(spec_.limits.request_bytes, spec_.files_at_run_time());
  record_ = b_.bss("conn", kConnRecordBytes, "the connection record (see conn_* above)", 64);
  buf_ = b_.bss("request_buf", static_cast<uint64_t>(buf_bytes), "the request is read here", 64);
  pollfd_ = b_.bss("client_pollfd", kPollfdBytes, "struct pollfd { client_fd, POLLIN, revents }");
  poll_ts_ = b_.bss("poll_timeout", kTimespecBytes, "struct timespec for ppoll");
  stop_deadline_ = b_.bss("stop_deadline", 8, "when a stop gives up on the connection (ms); 0 before one");
  io_timeout_ = b_.data("io_timeout", Section::rodata,
                        {Fields{{{8, static_cast<uint64_t>(spec_.limits.send_timeout_ms / 1000), "tv_sec"},
                                 {8, static_cast<uint64_t>(spec_.limits.send_timeout_ms % 1000 * 1000), "tv_usec"}}}},
                        "struct timeval: how long a write may block");
  Label after = accept_;
  if (fork_) after = local("reap_children");
  block(entry_, "a send timeout for every connection", &kSetsockopt,
        "setsockopt(listen_fd, SOL_SOCKET, SO_SNDTIMEO, &io_timeout, sizeof io_timeout)",
        fmt::format("Set once, on the listener: every socket accept() returns inherits it. A\n"
                    "write that makes no progress for limits.send_timeout_ms ({} ms) fails with\n"
                    "-EAGAIN, and the client gives up its slot.",
                    spec_.limits.send_timeout_ms));
  rt_.setsockopt(kListenFd, "listen_fd",
                 {kSolSocket, "SOL_SOCKET", kSoSndtimeo, "SO_SNDTIMEO", kTimevalBytes, "sizeof(struct timeval)"},
                 io_timeout_, "io_timeout");
  rt_.die_if_failed(err_sndtimeo_);
  falls_into(after);
  if (fork_) {
    Label sa = b_.data("sigaction_nocldwait", Section::rodata,
                       {Fields{{{8, static_cast<uint64_t>(kSigIgn), "sa_handler = SIG_IGN"},
                                {8, static_cast<uint64_t>(kSaNocldwait), "sa_flags = SA_NOCLDWAIT"},
                                {8, 0, "sa_restorer"},
                                {8, 0, "sa_mask"}}}},
                       "struct sigaction: the kernel reaps children itself");
    block(after, "reap children automatically", &kRtSigaction,
          "sigaction(SIGCHLD, &(struct sigaction){ .sa_handler = SIG_IGN, .sa_flags = SA_NOCLDWAIT }, NULL)",
          "With SIGCHLD ignored and SA_NOCLDWAIT, a child that exits is reaped by the\n"
          "kernel at once: no zombie ever stays, and no wait4() loop is needed.");
    rt_.sigaction(kSigchld, "SIGCHLD", rip(sa), "act = SIG_IGN + SA_NOCLDWAIT");
    falls_into(accept_);
  }
  emit_accept();
  if (fork_) emit_fork();
  emit_serve();
  emit_read_timed();
}

void BlockingDriver::emit_accept() {
  Label failed = local("accept_failed");
  block(accept_, "wait for the next connection", &kAccept,
        peer_.wanted() ? "client_fd = accept(listen_fd, (struct sockaddr *)&client_addr, &client_addrlen)"
                        : "client_fd = accept(listen_fd, NULL, NULL)",
        "Blocks until a client connects. busy = 0 first: a SIGTERM that arrives\n"
        "while we wait here ends the server at once.");
  mov(var32(rt_.busy()), imm(0), "busy = 0");
  note("Stop signals are blocked while a connection is served (they arrive only in");
  note("ppoll, see read_timed); one that came meanwhile is delivered right here.");
  rt_.mask_stop_signals(kSigUnblock, "");
  op(Op::cmp, var32(rt_.stop_requested()), imm(0), "a stop signal came while busy?");
  jmp(Op::jne, rt_.exit_ok(), "then exit now, between connections");
  mov(r64(Reg::rdi), r64(kListenFd), "fd = listen_fd");
  peer_.accept_args();
  sys(kAccept);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, failed);
  mov(r64(kClientFd), r64(Reg::rax), "r13 = client_fd");
  mov(var32(rt_.busy()), imm(1), "busy = 1: a stop signal now waits for this connection");
  rt_.mask_stop_signals(kSigBlock, "");
  jmp(Op::jmp, fork_ ? fork_label_ : serve_);

  block(failed, "survive a failed accept", &kNanosleep,
        "if (errno != EINTR && errno != ECONNABORTED) nanosleep(&(struct timespec){ 0, 100000000 }, NULL)",
        "EINTR (a signal) and ECONNABORTED (the client gave up) are retried at once.\n"
        "EMFILE, ENFILE, ENOBUFS, ENOMEM and the rest would fail again at once:\n"
        "pausing 100 ms keeps the server alive without spinning the CPU.");
  op(Op::cmp, r64(Reg::rax), imm(-kEintr), "-EINTR");
  jmp(Op::je, accept_);
  op(Op::cmp, r64(Reg::rax), imm(-kEconnaborted), "-ECONNABORTED");
  jmp(Op::je, accept_);
  rt_.pause_100ms("req = 100 ms");
  jmp(Op::jmp, accept_);
}

void BlockingDriver::emit_fork() {
  Label child = local("child");
  Label failed = local("fork_failed");
  block(fork_label_, "hand the connection to a child process", &kFork, "pid = fork()",
        "The child serves the connection and exits; the parent goes straight back\n"
        "to accept(). The kernel reaps the children (SA_NOCLDWAIT, above).");
  sys(kFork);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, failed, "fork failed (EAGAIN, ENOMEM)");
  jmp(Op::je, child, "0 in the child");
  note("the parent: the child has its own copy of client_fd");
  mov(r64(Reg::rdi), r64(kClientFd), "fd = client_fd");
  sys(kClose);
  jmp(Op::jmp, accept_);

  block(failed, "survive a failed fork", &kClose,
        "close(client_fd); nanosleep(&(struct timespec){ 0, 100000000 }, NULL)",
        "Too many processes or no memory: drop this connection, pause 100 ms.");
  mov(r64(Reg::rdi), r64(kClientFd), "fd = client_fd");
  sys(kClose);
  rt_.pause_100ms("req = 100 ms");
  jmp(Op::jmp, accept_);

  block(child, "the child lets go of the listening socket", &kClose, "close(listen_fd)",
        "Only the parent accepts; the child keeps just its client.");
  mov(r64(Reg::rdi), r64(kListenFd), "fd = listen_fd");
  sys(kClose);
  mov(var32(rt_.stop_requested()), imm(0), "a stop meant for the parent: this connection is served in full");
  falls_into(serve_);
}

void BlockingDriver::emit_serve() {
  block(serve_, "serve a connection", nullptr,
        fmt::format("record = {{ client_fd, request_buf{} }}; {}_open(&record)",
                    peer_.wanted() ? ", client_addr" : "", conn_.protocol()),
        "A write waits at most send_timeout_ms for progress (SO_SNDTIMEO, from the\n"
        "listener); reads wait in ppoll until the record's deadline.");
  lea(kConn, record_, "rbx = the connection record");
  mov(conn(ConnField::fd), r32(kClientFd));
  lea(Reg::rax, buf_);
  mov(conn(ConnField::buf), r64(Reg::rax));
  peer_.keep();
  call(rt_.now_ms(), "clock_now, for the first deadline");
  call(conn_.open());
  if (spec_.defer_accept_s > 0) {
    note("TCP_DEFER_ACCEPT: the request is usually here already. Read it without");
    note("waiting (MSG_DONTWAIT); only if it is not, wait for it in ppoll.");
    call(conn_.read_window(), "rsi = where, rdx = how much");
    mov(r64(Reg::rdi), r64(kClientFd), "fd = client_fd");
    set(Reg::r10, kMsgDontwait, "flags = MSG_DONTWAIT");
    zero(Reg::r8, "src_addr = NULL");
    zero(Reg::r9, "addrlen = NULL");
    sys(kRecvfrom);
    op(Op::test, r64(Reg::rax), r64(Reg::rax));
    jmp(Op::jg, got_, "n > 0 bytes: the request, or its start");
  }
  jmp(Op::jmp, want_read_);

  block(dispatch_, "do what the connection asks (eax = action)", nullptr,
        "switch (action) { case send: ...; case close: ...; case want_read: ... }", "");
  op(Op::cmp, r32(Reg::rax), imm(kActSend), "send");
  jmp(Op::je, send_);
  op(Op::cmp, r32(Reg::rax), imm(kActClose), "close");
  jmp(Op::je, close_);
  falls_into(want_read_);

  Label again = local("again");
  Label wait = local("wait");
  Label bounded = local("bounded");
  int grace = spec_.limits.shutdown_timeout_ms;
  block(want_read_, "wait for input", &kRead, "n = read_timed(read_window()); action = received(n)",
        fmt::format("Until the record's deadline at most. End of file, a timeout or an error\n"
                    "closes the connection. A stop signal ends an idle connection at once; a\n"
                    "request under way is answered first, and a body being dropped is read to\n"
                    "its end, then the connection closes: all within shutdown_timeout_ms\n"
                    "({} ms) of the stop, however slowly the client sends.",
                    grace));
  label(again);
  op(Op::cmp, var32(rt_.stop_requested()), imm(0), "asked to stop?");
  jmp(Op::je, wait);
  call(conn_.idle(), "waiting for a request, with none of it here?");
  op(Op::test, r32(Reg::rax), r32(Reg::rax));
  jmp(Op::jnz, close_, "then close now rather than wait for one");
  op(Op::cmp, var64(stop_deadline_), imm(0), "the stop's deadline, set once");
  jmp(Op::jne, bounded);
  call(rt_.now_ms());
  op(Op::add, r64(Reg::rax), dec(grace), "+ shutdown_timeout_ms");
  mov(var64(stop_deadline_), r64(Reg::rax));
  label(bounded);
  mov(r64(Reg::rax), var64(stop_deadline_));
  op(Op::cmp, conn(ConnField::deadline), r64(Reg::rax), "no read waits past it");
  jmp(Op::jle, wait);
  mov(conn(ConnField::deadline), r64(Reg::rax));
  label(wait);
  call(conn_.read_window(), "rsi = where, rdx = how much");
  call(read_timed_);
  op(Op::cmp, r64(Reg::rax), imm(-kEintr), "-EINTR: a stop signal came");
  jmp(Op::je, again);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jg, got_);
  jmp(Op::jmp, close_, "end of file, timeout or error: close");
  label(got_);
  op(Op::push, r64(Reg::rax), "keep n");
  call(rt_.now_ms(), "clock_now, for the deadlines it sets");
  op(Op::pop, r64(Reg::rax));
  call(conn_.received());
  jmp(Op::jmp, dispatch_);

  block(send_, "send the response", &kWritev, "flush(record); action = sent(record)",
        "Blocking writes: flush returns once all is out, or when the send timeout\n"
        "ran out (0) or the client is gone (< 0): then the connection closes.");
  call(conn_.flush());
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jle, close_, "timed out, or the client is gone");
  if (spec_.files_at_run_time()) {
    op(Op::cmp, r64(Reg::rax), imm(2), "a slice of a file went: no one else waits here");
    jmp(Op::je, send_, "send more");
  }
  call(rt_.now_ms(), "clock_now: the write may have taken a while");
  call(conn_.sent());
  jmp(Op::jmp, dispatch_);

  block(close_, "close the connection", &kClose,
        spec_.log_connections ? "log_connection(); close(client_fd)" : "close(client_fd)",
        fork_ ? "The child's work is done: it exits, and the kernel reaps it."
              : "Then back to accept() for the next client.");
  if (spec_.log_connections) call(log_.connection());
  if (conn_.release().id >= 0) call(conn_.release(), "its response's file, if one is open");
  mov(r64(Reg::rdi), r64(kClientFd), "fd = client_fd");
  sys(kClose);
  jmp(Op::jmp, fork_ ? rt_.exit_ok() : accept_);
}

void BlockingDriver::emit_read_timed() {
  Label wait = local("wait");
  Label timeout = local("timed_out");
  Label out = local("done");
  block(read_timed_, "subroutine read_timed(rsi = buf, rdx = count)", &kPpoll,
        "if (ppoll(&(struct pollfd){ client_fd, POLLIN }, 1, &(record.deadline - now_ms()), &no_signals) <= 0)\n"
        "   return -ETIMEDOUT (or -errno); return read(client_fd, buf, count);",
        "Waits for input until the record's deadline, then reads it: rax = bytes\n"
        "read, 0 at end of file, -ETIMEDOUT, -EINTR when a stop signal came, or\n"
        "-errno. Stop signals are blocked while serving; ppoll unblocks them for the\n"
        "wait only, atomically, so one cannot slip in between the check and the wait.");
  op(Op::push, r64(Reg::rsi), "keep buf");
  op(Op::push, r64(Reg::rdx), "keep count");
  call(rt_.now_ms());
  mov(r64(Reg::rcx), conn(ConnField::deadline));
  op(Op::sub, r64(Reg::rcx), r64(Reg::rax), "ms left = deadline - now");
  jmp(Op::jg, wait);
  label(timeout);
  set(Reg::rax, -kEtimedout, "-ETIMEDOUT");
  jmp(Op::jmp, out);
  label(wait);
  mov(r64(Reg::rax), r64(Reg::rcx));
  zero(Reg::rdx);
  set(Reg::rcx, 1000);
  op(Op::div, r64(Reg::rcx), "rax = seconds, rdx = the rest in ms");
  lea(Reg::rsi, poll_ts_);
  mov(mem64(Reg::rsi), r64(Reg::rax), "tv_sec");
  b_.emit(Op::imul, {r64(Reg::rdx), r64(Reg::rdx), dec(1000000)}, "ns");
  mov(mem64(Reg::rsi, 8), r64(Reg::rdx), "tv_nsec");
  lea(Reg::rdi, pollfd_, "fds = &client_pollfd");
  mov(mem32(Reg::rdi), r32(kClientFd), "fd = client_fd");
  mov(mem32(Reg::rdi, 4), imm(kPollin), "events = POLLIN, revents = 0");
  mov(r64(Reg::rdx), r64(Reg::rsi), "tmo_p = &poll_timeout");
  set(Reg::rsi, 1, "nfds = 1");
  lea(Reg::r10, rt_.no_signals(), "sigmask = {}: stop signals may arrive now");
  set(Reg::r8, kSigsetBytes, "sizeof(sigset_t)");
  sys(kPpoll);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jz, timeout, "0: nothing came in time");
  jmp(Op::js, out, "-EINTR or -errno");
  mov(r64(Reg::rdi), r64(kClientFd), "fd = client_fd");
  mov(r64(Reg::rdx), mem64(Reg::rsp), "count");
  mov(r64(Reg::rsi), mem64(Reg::rsp, 8), "buf");
  sys(kRead);
  label(out);
  op(Op::add, r64(Reg::rsp), imm(16), "drop buf and count");
  ret();
}

}  // namespace

std::unique_ptr<Driver> make_blocking_driver(const DriverDeps& deps) {
  return std::make_unique<BlockingDriver>(deps);
}

}  // namespace asmsrv
