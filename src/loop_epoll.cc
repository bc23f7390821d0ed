// The epoll driver: one non-blocking, single-threaded, level-triggered loop
// per worker over a table of connection records (conn_table.h). Readiness
// only: what a connection does is decided by the Conn (conn.h).
#include <fmt/format.h>

#include "conn_table.h"
#include "client_addr.h"
#include "driver.h"

namespace asmsrv {

using namespace linux;

namespace {

constexpr int kEvents = 64;    // epoll_wait batch
constexpr int kSweepMs = 100;  // how often deadlines are checked

class EpollDriver : public Driver, Gen {
 public:
  explicit EpollDriver(const DriverDeps& d)
      : Gen(d.spec, d.b), rt_(d.rt), conn_(d.conn), log_(d.log), table_(d.spec, d.b) {
    entry_ = local("epoll_start");
    err_epoll_ = rt_.error_prefix("error_epoll", "epoll_create1", {"EINVAL", "EMFILE", "ENFILE", "ENOMEM"});
  }
  bool nonblocking_listener() const override { return true; }
  Label entry() const override { return entry_; }
  void emit() override;

 private:
  void emit_loop();
  void emit_shutdown();
  void emit_accept();
  void emit_event();
  void emit_close();
  void emit_sweep();
  void emit_listen();
  /// ioctl(fd, SIOCOUTQ, &to): the bytes still in the socket's send queue.
  void outq(Operand fd, MemOp to, const std::string& to_name);
  /// epoll_ctl(epfd, op, fd, &(struct epoll_event){ events, data }).
  void epoll_ctl(int ctl, Operand fd, int events, Operand data, const std::string& why);
  /// call watch: epoll_ctl(epfd, ctl, r13, { events, rbx }) for the connection.
  void watch(int ctl, int events, const std::string& why);
  void emit_watch();

  Runtime& rt_;
  Conn& conn_;
  AccessLog& log_;
  ConnTable table_;
  ClientAddress peer_{spec_, b_};
  ErrorPrefix err_epoll_;
  Label entry_, loop_, accept_all_, event_, close_, sweep_, listen_on_, listen_off_, shutdown_;
  Label epfd_, accepting_, shutting_down_, ev_i_, ev_n_, accepted_, outq_now_, next_sweep_, shutdown_deadline_;
  Label ctl_event_, events_, watch_;
};

const char* epoll_ctl_name(int ctl) {
  return ctl == kEpollCtlAdd ? "EPOLL_CTL_ADD" : ctl == kEpollCtlDel ? "EPOLL_CTL_DEL" : "EPOLL_CTL_MOD";
}

void EpollDriver::epoll_ctl(int ctl, Operand fd, int events, Operand data, const std::string& why) {
  lea(Reg::r10, ctl_event_, "event = &ctl_event");
  mov(mem32(Reg::r10), imm(events), why);
  mov(mem64(Reg::r10, 4), data, std::holds_alternative<ImmOp>(data) ? "data: 0, the listener" : "data: the record");
  mov(r32(Reg::rdi), var32(epfd_), "epfd");
  set(Reg::rsi, ctl, epoll_ctl_name(ctl));
  mov(r64(Reg::rdx), fd, "fd");
  sys(kEpollCtl);
}

void EpollDriver::watch(int ctl, int events, const std::string& why) {
  set(Reg::rsi, ctl, epoll_ctl_name(ctl));
  set(Reg::rcx, events, why);
  call(watch_);
}

void EpollDriver::emit_watch() {
  block(watch_, "subroutine watch(rbx = record, esi = op, ecx = events)", &kEpollCtl,
        "epoll_ctl(epfd, op, record.fd, &(struct epoll_event){ events, .data = record })",
        "Puts a connection in the epoll set (EPOLL_CTL_ADD) or changes what it waits\n"
        "for (EPOLL_CTL_MOD): EPOLLIN for a request, EPOLLOUT for room to send.\n"
        "The event's data is the record, which epoll_pwait hands back. r13 = fd.");
  lea(Reg::r10, ctl_event_, "event = &ctl_event");
  mov(mem32(Reg::r10), r32(Reg::rcx), "events");
  mov(mem64(Reg::r10, 4), r64(kConn), "data: the record");
  mov(r32(Reg::rdi), var32(epfd_), "epfd");
  mov(r64(Reg::rdx), r64(kClientFd), "fd");
  sys(kEpollCtl);
  ret();
}

void EpollDriver::outq(Operand fd, MemOp to, const std::string& to_name) {
  mov(r64(Reg::rdi), fd, "fd");
  set(Reg::rsi, kSiocoutq, "SIOCOUTQ");
  to.width = Width::none;
  lea(Reg::rdx, to, "&" + to_name);
  sys(kIoctl);
}

void EpollDriver::emit() {
  loop_ = local("event_loop");
  accept_all_ = local("accept_all");
  event_ = local("connection_event");
  watch_ = local("watch");
  close_ = local("close_connection");
  sweep_ = local("sweep");
  listen_on_ = local("listen_on");
  listen_off_ = local("listen_off");
  shutdown_ = local("begin_shutdown");
  epfd_ = b_.bss("epfd", 4, "the epoll instance", 4);
  accepting_ = b_.bss("accepting", 4, "1 while the listener is in the epoll set", 4);
  shutting_down_ = b_.bss("shutting_down", 4, "1 once a stop signal came", 4);
  ev_i_ = b_.bss("ev_i", 4, "the event being handled", 4);
  ev_n_ = b_.bss("ev_n", 4, "events returned by epoll_wait", 4);
  accepted_ = b_.bss("accepted", 4, "accept4 calls in this turn of accept_all", 4);
  outq_now_ = b_.bss("outq_now", 4, "int: SIOCOUTQ of the record being swept", 4);
  next_sweep_ = b_.bss("next_sweep", 8, "when deadlines are next checked (ms)");
  shutdown_deadline_ = b_.bss("shutdown_deadline", 8, "when a graceful stop gives up (ms)");
  ctl_event_ = b_.bss("ctl_event", 16, "struct epoll_event for epoll_ctl: events, data (packed)");
  events_ = b_.bss("events", kEvents * kEpollEventBytes, fmt::format("struct epoll_event[{}] for epoll_wait", kEvents));
  emit_loop();
  emit_shutdown();
  emit_accept();
  emit_event();
  emit_watch();
  emit_close();
  emit_sweep();
  emit_listen();
}

void EpollDriver::emit_loop() {
  const Limits& lim = spec_.limits;
  block(entry_, "create the epoll instance", &kEpollCreate1,
        "epfd = epoll_create1(EPOLL_CLOEXEC); every slot free; listen_on()",
        fmt::format("One loop serves up to {} connections (limits.max_connections) from\n"
                    "static memory: a table of {}-byte records and a {}-byte buffer each.",
                    lim.max_connections, kConnRecordBytes, table_.buf_bytes()));
  set(Reg::rdi, kEpollCloexec, "EPOLL_CLOEXEC");
  sys(kEpollCreate1);
  rt_.die_if_failed(err_epoll_);
  mov(var32(epfd_), r32(Reg::rax));
  mov(var32(rt_.busy()), imm(1), "stop signals are handled by the loop, not the handler");
  note("SIGTERM and SIGINT stay blocked but inside epoll_pwait, which unblocks them");
  note("atomically: a signal can never slip in between the stop check and the wait.");
  rt_.mask_stop_signals(kSigBlock, "");
  table_.emit_init();
  call(listen_on_);
  call(rt_.now_ms());
  op(Op::add, r64(Reg::rax), dec(kSweepMs));
  mov(var64(next_sweep_), r64(Reg::rax));
  falls_into(loop_);

  Label wait_ok = local("wait_ok");
  Label next_event = local("next_event");
  Label events_done = local("events_done");
  Label is_conn = local("is_connection");
  Label no_sweep = local("no_sweep");
  Label wait = local("wait");
  block(loop_, "the event loop", &kEpollPwait,
        fmt::format("n = epoll_pwait(epfd, events, {}, {}, &no_signals); handle each; sweep deadlines",
                    kEvents, kSweepMs),
        fmt::format("Level-triggered. The {} ms timeout drives the sweep that closes connections\n"
                    "past their deadline (header, keep-alive, send), so a slow or idle client\n"
                    "never delays another. The clock is read once per wake-up.",
                    kSweepMs));
  op(Op::cmp, var32(rt_.stop_requested()), imm(0), "a stop signal?");
  jmp(Op::je, wait);
  call(shutdown_, "exits when done");
  label(wait);
  mov(r32(Reg::rdi), var32(epfd_), "epfd");
  lea(Reg::rsi, events_, "events");
  set(Reg::rdx, kEvents, "maxevents");
  set(Reg::r10, kSweepMs, "timeout in ms");
  lea(Reg::r8, rt_.no_signals(), "sigmask = {}: stop signals may arrive now");
  set(Reg::r9, kSigsetBytes, "sizeof(sigset_t)");
  sys(kEpollPwait);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jns, wait_ok);
  zero(Reg::rax, "-EINTR (a signal): no events");
  label(wait_ok);
  mov(var32(ev_n_), r32(Reg::rax));
  mov(var32(ev_i_), imm(0));
  call(rt_.now_ms(), "clock_now, once for the whole batch");
  label(next_event);
  mov(r32(Reg::rcx), var32(ev_i_));
  op(Op::cmp, r32(Reg::rcx), var32(ev_n_));
  jmp(Op::jae, events_done);
  op(Op::inc, var32(ev_i_));
  b_.emit(Op::imul, {r64(Reg::rcx), r64(Reg::rcx), imm(kEpollEventBytes)}, "i * sizeof(struct epoll_event)");
  lea(Reg::rsi, events_);
  mov(r64(kConn), mem_index(Width::b64, Reg::rsi, Reg::rcx, 4), "data: the connection's record");
  op(Op::test, r64(kConn), r64(kConn));
  jmp(Op::jnz, is_conn);
  call(accept_all_, "0: the listener");
  jmp(Op::jmp, next_event);
  label(is_conn);
  call(event_);
  jmp(Op::jmp, next_event);
  label(events_done);
  mov(r64(Reg::rax), var64(rt_.clock_now()));
  op(Op::cmp, r64(Reg::rax), var64(next_sweep_));
  jmp(Op::jl, no_sweep);
  op(Op::add, r64(Reg::rax), dec(kSweepMs));
  mov(var64(next_sweep_), r64(Reg::rax));
  call(sweep_);
  label(no_sweep);
  jmp(Op::jmp, loop_);
}

void EpollDriver::emit_shutdown() {
  const Limits& lim = spec_.limits;
  Label started = local("started");
  Label not_yet = local("not_yet");
  block(shutdown_, "subroutine begin_shutdown: a graceful stop", &kClose,
        "close(listen_fd); close idle connections; exit when none is left or at the deadline",
        fmt::format("Responses in flight are finished, then their connections close; requests\n"
                    "under way are answered, then closed. After limits.shutdown_timeout_ms\n"
                    "({} ms) the worker exits anyway. A second signal exits at once (see the\n"
                    "handler).",
                    lim.shutdown_timeout_ms));
  op(Op::cmp, var32(shutting_down_), imm(0));
  jmp(Op::jne, started, "already stopping");
  mov(var32(shutting_down_), imm(1));
  mov(r64(Reg::rax), var64(rt_.clock_now()));
  op(Op::add, r64(Reg::rax), dec(lim.shutdown_timeout_ms), "+ shutdown_timeout_ms");
  mov(var64(shutdown_deadline_), r64(Reg::rax));
  call(listen_off_);
  mov(r64(Reg::rdi), r64(kListenFd), "close the listener: no new connections");
  sys(kClose);
  label(started);
  note("On every pass: a connection may have become idle since the last one.");
  table_.emit_for_each("close_idle", [&](Label next) {
    call(conn_.idle(), "waiting for a request, with none of it here?");
    op(Op::test, r32(Reg::rax), r32(Reg::rax));
    jmp(Op::jz, next);
    call(close_);
  });
  op(Op::cmp, var32(table_.count()), imm(0));
  jmp(Op::je, rt_.exit_ok(), "nothing left: exit 0");
  mov(r64(Reg::rax), var64(rt_.clock_now()));
  op(Op::cmp, r64(Reg::rax), var64(shutdown_deadline_));
  jmp(Op::jl, not_yet);
  jmp(Op::jmp, rt_.exit_ok(), "out of time: exit 0");
  label(not_yet);
  ret();
}

void EpollDriver::emit_accept() {
  Label next = local("next");
  Label got = local("accepted");
  Label full = local("table_full");
  Label done = local("done");
  block(accept_all_, "subroutine accept_all: take the pending connections", &kAccept4,
        fmt::format("for (n = 0; n < {} && (fd = accept4(listen_fd, {}, SOCK_NONBLOCK)) >= 0; n++) serve it",
                    kEvents, peer_.wanted() ? "&client_addr, &len" : "NULL, NULL"),
        fmt::format("Until -EAGAIN, or {} connections: then back to the loop (the listener is\n"
                    "level-triggered, it comes again), so a flood of new connections, each\n"
                    "served and closed at once, cannot starve the others, the sweep or a stop.\n"
                    "With the table full, or on EMFILE/ENFILE/ENOBUFS/ENOMEM, the listener\n"
                    "leaves the epoll set: pending clients wait in the kernel's queue instead\n"
                    "of being accepted and dropped, and nothing spins. It comes back when a\n"
                    "connection closes (or at the next sweep).",
                    kEvents));
  mov(var32(accepted_), imm(0), "n = 0");
  label(next);
  op(Op::cmp, var32(accepted_), dec(kEvents), "enough for one turn of the loop?");
  jmp(Op::jae, done);
  op(Op::inc, var32(accepted_));
  op(Op::cmp, var32(table_.count()), dec(table_.max()), "a free slot?");
  jmp(Op::jae, full);
  mov(r64(Reg::rdi), r64(kListenFd), "fd = listen_fd");
  peer_.accept_args();
  set(Reg::r10, kSockNonblock, "SOCK_NONBLOCK");
  sys(kAccept4);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jns, got);
  op(Op::cmp, r64(Reg::rax), imm(-kEagain), "-EAGAIN: none left");
  jmp(Op::je, done);
  op(Op::cmp, r64(Reg::rax), imm(-kEintr));
  jmp(Op::je, next);
  op(Op::cmp, r64(Reg::rax), imm(-kEconnaborted), "the client gave up");
  jmp(Op::je, next);
  label(full);
  call(listen_off_, "out of slots or descriptors: stop accepting for now");
  ret();
  label(got);
  mov(r64(kClientFd), r64(Reg::rax), "r13 = the new socket");
  table_.emit_alloc();
  mov(conn(ConnField::fd), r32(kClientFd), "record.fd");
  peer_.keep();
  mov(conn(ConnField::watch), imm(kWatchNone), "not in the epoll set yet");
  call(conn_.open(), "the record starts reading, with its first deadline");
  note("Serve it at once: the request is usually here already (TCP_DEFER_ACCEPT).");
  note("connection_event reads it, answers it, and puts the socket in the epoll");
  note("set only if it must wait; a connection done at once never enters it.");
  call(event_);
  jmp(Op::jmp, next);
  label(done);
  ret();
}

void EpollDriver::emit_event() {
  Label writing = local("writing");
  Label act = local("act");
  Label send = local("send");
  Label in_again = local("in_again");
  Label pending = local("pending");
  Label armed = local("armed");
  Label add_out = local("add_out");
  Label watched = local("watched");
  Label closing = local("close");
  Label quiet = local("quiet");
  block(event_, "subroutine connection_event(rbx = record)", &kRead,
        "writing: flush;  else: n = read(fd, read_window()); action = received(n)",
        "Then do what the connection asks: send (flush, then sent), close, or wait\n"
        "for more input. A response that does not fit in the socket buffer waits\n"
        "for EPOLLOUT; reading resumes after it. A new connection comes here from\n"
        "accept_all before it is in the epoll set (watch = 2): it is added when it\n"
        "first has to wait.");
  mov(r32(kClientFd), conn(ConnField::fd), "r13 = fd");
  op(Op::cmp, conn(ConnField::state), imm(kConnWriting), "writing?");
  jmp(Op::je, writing);
  call(conn_.read_window(), "rsi = where, rdx = how much");
  mov(r64(Reg::rdi), r64(kClientFd));
  sys(kRead);
  op(Op::cmp, r64(Reg::rax), imm(-kEagain), "nothing after all");
  jmp(Op::je, quiet);
  op(Op::cmp, r64(Reg::rax), imm(-kEintr));
  jmp(Op::je, quiet, "level-triggered: it comes back");
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jle, closing, "end of file or error");
  call(conn_.received());
  label(act);
  op(Op::cmp, r32(Reg::rax), imm(kActSend), "send?");
  jmp(Op::je, send);
  op(Op::cmp, r32(Reg::rax), imm(kActClose), "close?");
  jmp(Op::je, closing);
  label(quiet);
  note("Want to read: wait for EPOLLIN.");
  op(Op::cmp, conn(ConnField::watch), imm(kWatchNone), "not in the epoll set yet?");
  jmp(Op::jne, watched);
  mov(conn(ConnField::watch), imm(kWatchIn));
  watch(kEpollCtlAdd, kEpollIn, "EPOLLIN");
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, closing, "could not watch it (ENOMEM, ENOSPC): close it");
  label(watched);
  ret();
  label(writing);
  label(send);
  call(conn_.flush());
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, closing, "the client is gone");
  jmp(Op::jz, pending, "the rest goes out on EPOLLOUT");
  if (spec_.files_at_run_time()) {
    op(Op::cmp, r64(Reg::rax), imm(2), "a slice of a file went: the others' turn");
    jmp(Op::je, pending, "EPOLLOUT comes back at once if there is room");
  }
  op(Op::cmp, conn(ConnField::watch), imm(kWatchOut), "was it waiting for EPOLLOUT?");
  jmp(Op::jne, in_again);
  mov(conn(ConnField::watch), imm(kWatchIn));
  watch(kEpollCtlMod, kEpollIn, "back to EPOLLIN");
  label(in_again);
  call(conn_.sent(), "what next: the next pipelined response, more input, or close");
  jmp(Op::jmp, act);
  label(pending);
  b_.mov_imm(Reg::rax, dec(spec_.limits.send_timeout_ms), "send_timeout_ms for the client to take some of it");
  call(conn_.deadline());
  outq(r64(kClientFd), conn(ConnField::outq), "record.outq");
  op(Op::cmp, conn(ConnField::watch), imm(kWatchOut));
  jmp(Op::je, armed);
  op(Op::cmp, conn(ConnField::watch), imm(kWatchNone), "not in the epoll set yet?");
  mov(conn(ConnField::watch), imm(kWatchOut));
  jmp(Op::je, add_out);
  watch(kEpollCtlMod, kEpollOut, "wait for EPOLLOUT");
  label(armed);
  ret();
  label(add_out);
  watch(kEpollCtlAdd, kEpollOut, "wait for EPOLLOUT");
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jns, armed);
  label(closing);
  jmp(Op::jmp, close_, "close_connection returns for us");
}

void EpollDriver::emit_close() {
  block(close_, "subroutine close_connection(rbx = record)", &kClose,
        "log; close(record.fd); free the slot; listen_on()",
        "close() also takes the socket out of the epoll set. A connection that ends\n"
        "after a response while the client may still send lingers first (see\n"
        "linger): it comes here at end of file, or at its deadline.");
  if (spec_.log_connections) call(log_.connection());
  if (conn_.release().id >= 0) call(conn_.release(), "its response's file, if one is open");
  mov(r32(Reg::rdi), conn(ConnField::fd), "fd = record.fd");
  sys(kClose);
  table_.emit_release();
  call(listen_on_, "a slot is free: accept again if we had stopped");
  ret();
}

void EpollDriver::emit_sweep() {
  block(sweep_, "subroutine sweep: close connections past their deadline", &kIoctl,
        "for each open record: if (record.deadline <= clock_now && !(writing && took_some(record)))\n"
        "   close_connection(record)",
        "Header deadlines, idle keep-alive and send timeouts are all a deadline in\n"
        "the record; one pass over the table every 100 ms enforces them. A client\n"
        "that is taking a response, however slowly, keeps its connection: the\n"
        "kernel's send queue (ioctl SIOCOUTQ) shrank since the deadline was set,\n"
        "although it may still be too full to report EPOLLOUT. Also retries\n"
        "accepting after EMFILE.");
  table_.emit_for_each("check", [&](Label next) {
    Label expire = local("expire");
    op(Op::cmp, conn(ConnField::state), imm(kConnFree), "free?");
    jmp(Op::je, next, "free");
    mov(r64(Reg::rax), var64(rt_.clock_now()));
    op(Op::cmp, conn(ConnField::deadline), r64(Reg::rax));
    jmp(Op::jg, next, "not yet");
    op(Op::cmp, conn(ConnField::state), imm(kConnWriting), "sending a response?");
    jmp(Op::jne, expire);
    mov(r32(kClientFd), conn(ConnField::fd), "r13 = fd");
    outq(r64(kClientFd), var32(outq_now_), "outq_now");
    op(Op::test, r64(Reg::rax), r64(Reg::rax));
    jmp(Op::js, expire);
    mov(r32(Reg::rax), var32(outq_now_));
    op(Op::cmp, r32(Reg::rax), conn(ConnField::outq), "less than when the deadline was set?");
    jmp(Op::jae, expire, "no: the client took nothing");
    mov(conn(ConnField::outq), r32(Reg::rax));
    b_.mov_imm(Reg::rax, dec(spec_.limits.send_timeout_ms), "yes: send_timeout_ms more");
    call(conn_.deadline());
    jmp(Op::jmp, next);
    label(expire);
    call(close_);
  });
  call(listen_on_);
  ret();
}

void EpollDriver::emit_listen() {
  Label skip = local("skip");
  block(listen_on_, "subroutine listen_on", &kEpollCtl,
        "if (!accepting && !shutting_down && nconns < max) epoll_ctl(ADD, listen_fd, EPOLLIN | EPOLLEXCLUSIVE)",
        "EPOLLEXCLUSIVE: with several workers on the shared listener, the kernel\n"
        "wakes one of them per connection, not all.");
  op(Op::cmp, var32(accepting_), imm(0));
  jmp(Op::jne, skip);
  op(Op::cmp, var32(shutting_down_), imm(0));
  jmp(Op::jne, skip);
  op(Op::cmp, var32(table_.count()), dec(table_.max()));
  jmp(Op::jae, skip);
  epoll_ctl(kEpollCtlAdd, r64(kListenFd), kEpollIn | kEpollExclusive, imm(0), "EPOLLIN | EPOLLEXCLUSIVE");
  mov(var32(accepting_), imm(1));
  label(skip);
  ret();

  Label off_skip = local("skip");
  block(listen_off_, "subroutine listen_off", &kEpollCtl, "if (accepting) epoll_ctl(DEL, listen_fd)",
        "Pending connections wait in the kernel's queue (the listen backlog).");
  op(Op::cmp, var32(accepting_), imm(0));
  jmp(Op::je, off_skip);
  epoll_ctl(kEpollCtlDel, r64(kListenFd), 0, imm(0), "no events");
  mov(var32(accepting_), imm(0));
  label(off_skip);
  ret();
}

}  // namespace

std::unique_ptr<Driver> make_epoll_driver(const DriverDeps& deps) { return std::make_unique<EpollDriver>(deps); }

}  // namespace asmsrv
