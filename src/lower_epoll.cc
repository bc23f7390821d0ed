// The epoll event loop: one non-blocking, single-threaded loop per worker,
// with the per-connection state in a table sized at compile time. It reuses
// the HTTP engine's parser, router and response table (lower_http.cc).
#include <fmt/format.h>

#include "lower.h"
#include "lowerer.h"

namespace asmsrv {

using namespace linux;

namespace {

// A connection record: 128 bytes in the `conns` table.
constexpr int kRecShift = 7;
constexpr int kRecBytes = 1 << kRecShift;
constexpr int kCFd = 0;          // dd: the socket
constexpr int kCState = 4;       // dd: 0 free, 1 reading, 2 writing, 3 discarding a body
constexpr int kCLen = 8;         // dq: bytes in the buffer
constexpr int kCScanned = 16;    // dq: bytes searched for the head's end
constexpr int kCServed = 24;     // dd: requests answered
constexpr int kCMode = 28;       // dd: after the response in flight: 0 close, 1/2 keep-alive
constexpr int kCDeadline = 32;   // dq: CLOCK_MONOTONIC ms when the connection times out
constexpr int kCIov = 40;        // struct iovec[2]: what is left to write of head and body
constexpr int kCHeadLeft = 48;
constexpr int kCBody = 56;
constexpr int kCBodyLeft = 64;
constexpr int kCDiscard = 72;    // dq: body bytes still to read and drop
constexpr int kCConsume = 80;    // dq: bytes to drop from the buffer after the response
constexpr int kCAddr = 88;       // dq: sin_family, sin_port, sin_addr of the client
constexpr int kCBytes = 96;      // dq: bytes read, for the connection log
constexpr int kCBuf = 104;       // dq: this connection's request buffer
constexpr int kCOut = 112;       // dd: 1 while waiting for EPOLLOUT

constexpr int kReading = 1, kWriting = 2, kDiscarding = 3;
constexpr int kEvents = 64;        // epoll_wait batch
constexpr int kEventBytes = 12;    // struct epoll_event is packed on x86-64
constexpr int kSweepMs = 100;      // how often deadlines are checked
constexpr int kEpollIn = 1, kEpollOut = 4, kEpollExclusive = 1 << 28;
constexpr int kCtlAdd = 1, kCtlDel = 2, kCtlMod = 3;
constexpr int kEagain = 11;
constexpr int kSockNonblock = 0x800;

}  // namespace

void Lowerer::declare_epoll_data() {
  const Limits& lim = spec_.limits;
  int buf_bytes = (http() ? lim.request_bytes : kRequestBufferBytes) + 16;
  epoll_loop_ = b_.new_label("event_loop");
  accept_all_ = b_.new_label("accept_all");
  conn_event_ = b_.new_label("connection_event");
  close_conn_ = b_.new_label("close_connection");
  flush_ = b_.new_label("flush");
  sweep_ = b_.new_label("sweep");
  listen_on_ = b_.new_label("listen_on");
  listen_off_ = b_.new_label("listen_off");
  conn_deadline_ = b_.new_label("conn_deadline");
  begin_shutdown_ = b_.new_label("begin_shutdown");
  epfd_ = b_.bss("epfd", 4, "the epoll instance", 4);

  nconns_ = b_.bss("nconns", 4, "open connections", 4);
  accepting_ = b_.bss("accepting", 4, "1 while the listener is in the epoll set", 4);
  shutting_down_ = b_.bss("shutting_down", 4, "1 once a stop signal came", 4);
  free_top_ = b_.bss("free_top", 4, "free slots on the stack", 4);
  ev_i_ = b_.bss("ev_i", 4, "the event being handled", 4);
  ev_n_ = b_.bss("ev_n", 4, "events returned by epoll_wait", 4);
  next_sweep_ = b_.bss("next_sweep", 8, "when deadlines are next checked (ms)");
  loop_now_ = b_.bss("loop_now", 8, "CLOCK_MONOTONIC ms, read once per loop iteration");
  shutdown_deadline_ = b_.bss("shutdown_deadline", 8, "when a graceful stop gives up (ms)");
  ev_ = b_.bss("ctl_event", 16, "struct epoll_event for epoll_ctl: events, data (packed)");
  events_ = b_.bss("events", kEvents * kEventBytes, "struct epoll_event[64] for epoll_wait");
  free_stack_ = b_.bss("free_stack", static_cast<uint64_t>(lim.max_connections) * 4,
                       "indices of free connection slots (a stack)", 4);
  conns_ = b_.bss("conns", static_cast<uint64_t>(lim.max_connections) * kRecBytes,
                  fmt::format("the connection table: {} records of {} bytes (limits.max_connections)",
                              lim.max_connections, kRecBytes), 64);
  bufs_ = b_.bss("conn_bufs", static_cast<uint64_t>(lim.max_connections) * buf_bytes,
                 fmt::format("a {} byte request buffer per connection", buf_bytes), 64);
}

// epoll_ctl(epfd, op, fd, &(struct epoll_event){ events, data }).
void Lowerer::epoll_ctl(int ctl, Operand fd, int events, Operand data, const std::string& why) {
  lea(Reg::r10, ev_, "event = &ctl_event");
  mov(mem32(Reg::r10), imm(events), why);
  mov(mem64(Reg::r10, 4), data,
      std::holds_alternative<ImmOp>(data) ? "data: 0, the listener" : "data: which connection");
  mov(r32(Reg::rdi), var32(epfd_), "epfd");
  b_.mov_imm(Reg::rsi, ctl, ctl == kCtlAdd ? "EPOLL_CTL_ADD" : ctl == kCtlDel ? "EPOLL_CTL_DEL" : "EPOLL_CTL_MOD");
  mov(r64(Reg::rdx), fd, "fd");
  sys(kEpollCtl);
}

void Lowerer::epoll_worker() {
  const Limits& lim = spec_.limits;
  int buf_bytes = (http() ? lim.request_bytes : kRequestBufferBytes) + 16;
  Label init = b_.new_label("init_slot");
  block(b_.new_label("epoll_start"), "create the epoll instance", &kEpollCreate1,
        "epfd = epoll_create1(EPOLL_CLOEXEC); every slot free; listen_on()",
        fmt::format("One loop serves up to {} connections (limits.max_connections) from\n"
                    "static memory: a table of {}-byte records and a {}-byte buffer each.",
                    lim.max_connections, kRecBytes, buf_bytes));
  b_.mov_imm(Reg::rdi, 0x80000, "EPOLL_CLOEXEC");
  sys(kEpollCreate1);
  die_if_failed(err_epoll_.first, err_epoll_.second);
  mov(var32(epfd_), r32(Reg::rax));
  mov(var32(busy_), imm(1), "stop signals are handled by the loop, not the handler");
  b_.note("SIGTERM and SIGINT stay blocked but inside epoll_pwait, which unblocks them");
  b_.note("atomically: a signal can never slip in between the stop check and the wait.");
  b_.mov_imm(Reg::rdi, kSigBlock, "SIG_BLOCK");
  lea(Reg::rsi, stop_sigs_, "{ SIGTERM, SIGINT }");
  b_.zero(Reg::rdx, "oldset = NULL");
  b_.mov_imm(Reg::r10, kSigsetBytes, "sizeof(sigset_t)");
  sys(kRtSigprocmask);
  b_.note("Each record gets its buffer; the free stack holds every index, 0 on top.");
  lea(Reg::rdi, conns_);
  lea(Reg::rsi, bufs_);
  lea(Reg::rdx, free_stack_);
  b_.mov_imm(Reg::rcx, lim.max_connections, "rcx = slots left to set up");
  b_.label(init);
  mov(mem64(Reg::rdi, kCBuf), r64(Reg::rsi), "record.buf");
  op(Op::dec, r32(Reg::rcx));
  mov(mem32(Reg::rdx), r32(Reg::rcx), "free_stack[i] = max - 1 - i");
  op(Op::add, r64(Reg::rdi), imm(kRecBytes));
  op(Op::add, r64(Reg::rsi), imm(buf_bytes));
  op(Op::add, r64(Reg::rdx), imm(4));
  op(Op::test, r32(Reg::rcx), r32(Reg::rcx));
  jmp(Op::jnz, init);
  mov(var32(free_top_), imm(lim.max_connections), "every slot is free");
  call(listen_on_);
  call(now_ms_);
  mov(var64(loop_now_), r64(Reg::rax));
  op(Op::add, r64(Reg::rax), imm(kSweepMs));
  mov(var64(next_sweep_), r64(Reg::rax));

  Label wait_ok = b_.new_label("wait_ok");
  Label next_event = b_.new_label("next_event");
  Label events_done = b_.new_label("events_done");
  Label is_conn = b_.new_label("is_connection");
  Label no_sweep = b_.new_label("no_sweep");
  Label wait = b_.new_label("wait_events");
  block(epoll_loop_, "the event loop", &kEpollPwait,
        fmt::format("n = epoll_pwait(epfd, events, {}, {}, &no_signals); handle each; sweep deadlines",
                    kEvents, kSweepMs),
        fmt::format("Level-triggered. The {} ms timeout drives the sweep that closes connections\n"
                    "past their deadline (header, keep-alive, send), so a slow or idle client\n"
                    "never delays another.", kSweepMs));
  op(Op::cmp, var32(stop_), imm(0), "a stop signal?");
  jmp(Op::je, wait);
  call(begin_shutdown_, "exits when done");
  b_.label(wait);
  mov(r32(Reg::rdi), var32(epfd_), "epfd");
  lea(Reg::rsi, events_, "events");
  b_.mov_imm(Reg::rdx, kEvents, "maxevents");
  b_.mov_imm(Reg::r10, kSweepMs, "timeout in ms");
  lea(Reg::r8, no_sigs_, "sigmask = {}: stop signals may arrive now");
  b_.mov_imm(Reg::r9, kSigsetBytes, "sizeof(sigset_t)");
  sys(kEpollPwait);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jns, wait_ok);
  b_.zero(Reg::rax, "-EINTR (a signal): no events");
  b_.label(wait_ok);
  mov(var32(ev_n_), r32(Reg::rax));
  mov(var32(ev_i_), imm(0));
  call(now_ms_, "the time, once for the whole batch");
  mov(var64(loop_now_), r64(Reg::rax));
  b_.label(next_event);
  mov(r32(Reg::rcx), var32(ev_i_));
  op(Op::cmp, r32(Reg::rcx), var32(ev_n_));
  jmp(Op::jae, events_done);
  op(Op::inc, var32(ev_i_));
  b_.emit(Op::imul, {r64(Reg::rcx), r64(Reg::rcx), imm(kEventBytes)}, "i * sizeof(struct epoll_event)");
  lea(Reg::rsi, events_);
  mov(r64(Reg::rbx), mem_index(Width::b64, Reg::rsi, Reg::rcx, 4), "data: the connection's record");
  op(Op::test, r64(Reg::rbx), r64(Reg::rbx));
  jmp(Op::jnz, is_conn);
  call(accept_all_, "0: the listener");
  jmp(Op::jmp, next_event);
  b_.label(is_conn);
  call(conn_event_);
  jmp(Op::jmp, next_event);
  b_.label(events_done);
  mov(r64(Reg::rax), var64(loop_now_));
  op(Op::cmp, r64(Reg::rax), var64(next_sweep_));
  jmp(Op::jl, no_sweep);
  op(Op::add, r64(Reg::rax), imm(kSweepMs));
  mov(var64(next_sweep_), r64(Reg::rax));
  call(sweep_);
  b_.label(no_sweep);
  jmp(Op::jmp, epoll_loop_);

  epoll_shutdown();
  epoll_accept();
  epoll_conn_event();
  epoll_flush();
  epoll_close();
  epoll_sweep();
  epoll_listen();
}

void Lowerer::epoll_shutdown() {
  const Limits& lim = spec_.limits;
  Label started = b_.new_label("shutdown_started");
  Label loop = b_.new_label("close_idle");
  Label next = b_.new_label("close_idle_next");
  Label done = b_.new_label("idle_closed");
  Label not_yet = b_.new_label("not_yet");
  block(begin_shutdown_, "subroutine begin_shutdown: a graceful stop", &kClose,
        "close(listen_fd); close idle connections; exit when none is left or at the deadline",
        fmt::format("Responses in flight are finished (with Connection: close); requests being\n"
                    "received are answered, then closed. After limits.shutdown_timeout_ms\n"
                    "({} ms) the worker exits anyway. A second signal exits at once (see the\n"
                    "handler).", lim.shutdown_timeout_ms));
  op(Op::cmp, var32(shutting_down_), imm(0));
  jmp(Op::jne, started, "already stopping");
  mov(var32(shutting_down_), imm(1));
  call(now_ms_);
  op(Op::add, r64(Reg::rax), imm(lim.shutdown_timeout_ms), "+ shutdown_timeout_ms");
  mov(var64(shutdown_deadline_), r64(Reg::rax));
  call(listen_off_);
  mov(r64(Reg::rdi), r64(kListenFd), "close the listener: no new connections");
  sys(kClose);
  b_.label(started);
  b_.note("On every pass: a connection may have become idle since the last one.");
  lea(Reg::rbx, conns_, "close every idle connection");
  b_.label(loop);
  lea(Reg::rax, conns_);
  op(Op::add, r64(Reg::rax), imm(int64_t{lim.max_connections} * kRecBytes));
  op(Op::cmp, r64(Reg::rbx), r64(Reg::rax));
  jmp(Op::jae, done);
  op(Op::cmp, mem32(Reg::rbx, kCState), imm(kReading), "waiting for a request...");
  jmp(Op::jne, next);
  op(Op::cmp, mem64(Reg::rbx, kCLen), imm(0), "...with nothing of it received");
  jmp(Op::jne, next);
  call(close_conn_);
  b_.label(next);
  op(Op::add, r64(Reg::rbx), imm(kRecBytes));
  jmp(Op::jmp, loop);
  b_.label(done);
  op(Op::cmp, var32(nconns_), imm(0));
  jmp(Op::je, exit_ok_, "nothing left: exit 0");
  call(now_ms_);
  op(Op::cmp, r64(Reg::rax), var64(shutdown_deadline_));
  jmp(Op::jl, not_yet);
  jmp(Op::jmp, exit_ok_, "out of time: exit 0");
  b_.label(not_yet);
  ret();
}

void Lowerer::epoll_accept() {
  const Limits& lim = spec_.limits;
  Label next = b_.new_label("accept_next");
  Label got = b_.new_label("accepted");
  Label full = b_.new_label("table_full");
  Label done = b_.new_label("accept_done");
  block(accept_all_, "subroutine accept_all: take every pending connection", &kAccept4,
        "while ((fd = accept4(listen_fd, &client_addr, &len, SOCK_NONBLOCK)) >= 0) add it",
        "Until -EAGAIN. With the table full, or on EMFILE/ENFILE/ENOBUFS/ENOMEM,\n"
        "the listener leaves the epoll set: pending clients wait in the kernel's\n"
        "queue instead of being accepted and dropped, and nothing spins. It comes\n"
        "back when a connection closes (or at the next sweep).");
  b_.label(next);
  op(Op::cmp, var32(nconns_), imm(lim.max_connections), "a free slot?");
  jmp(Op::jae, full);
  mov(var32(client_addrlen_), imm(16));
  mov(r64(Reg::rdi), r64(kListenFd), "fd = listen_fd");
  lea(Reg::rsi, client_addr_, "addr");
  lea(Reg::rdx, client_addrlen_, "addrlen");
  b_.mov_imm(Reg::r10, kSockNonblock, "SOCK_NONBLOCK");
  sys(kAccept4);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jns, got);
  op(Op::cmp, r64(Reg::rax), imm(-kEagain), "-EAGAIN: none left");
  jmp(Op::je, done);
  op(Op::cmp, r64(Reg::rax), imm(-kEintr));
  jmp(Op::je, next);
  op(Op::cmp, r64(Reg::rax), imm(-kEconnaborted), "the client gave up");
  jmp(Op::je, next);
  b_.label(full);
  call(listen_off_, "out of slots or descriptors: stop accepting for now");
  ret();
  b_.label(got);
  mov(r64(kClientFd), r64(Reg::rax), "r13 = the new socket");
  op(Op::dec, var32(free_top_), "pop a free slot");
  mov(r32(Reg::rcx), var32(free_top_));
  op(Op::shl, r64(Reg::rcx), imm(2));
  lea(Reg::rdx, free_stack_);
  mov(r32(Reg::rcx), mem_index(Width::b32, Reg::rdx, Reg::rcx), "its index");
  op(Op::shl, r64(Reg::rcx), imm(kRecShift));
  lea(Reg::rbx, conns_);
  op(Op::add, r64(Reg::rbx), r64(Reg::rcx), "rbx = &conns[index]");
  mov(mem32(Reg::rbx, kCFd), r32(kClientFd), "record.fd");
  mov(mem32(Reg::rbx, kCState), imm(kReading), "waiting for the first request");
  for (int off : {kCLen, kCScanned, kCDiscard, kCBytes}) mov(mem64(Reg::rbx, off), imm(0));
  mov(mem32(Reg::rbx, kCServed), imm(0));
  mov(mem32(Reg::rbx, kCOut), imm(0));
  lea(Reg::rsi, client_addr_);
  mov(r64(Reg::rax), mem64(Reg::rsi), "family, port and address: 8 bytes");
  mov(mem64(Reg::rbx, kCAddr), r64(Reg::rax), "kept for the logs");
  b_.mov_imm(Reg::rax, http() ? lim.header_timeout_ms : kIoTimeoutSeconds * 1000, "the first request's deadline");
  call(conn_deadline_);
  op(Op::inc, var32(nconns_));
  epoll_ctl(kCtlAdd, r64(kClientFd), kEpollIn, r64(Reg::rbx), "EPOLLIN");
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jns, next);
  call(close_conn_, "could not watch it (ENOMEM, ENOSPC): close it at once");
  jmp(Op::jmp, next);
  b_.label(done);
  ret();

  block(conn_deadline_, "subroutine conn_deadline(rax = ms)", nullptr,
        "record.deadline = loop_now + ms",
        "rbx = the record. The time is the one read once per loop iteration, as\n"
        "nginx does: no clock_gettime per request.");
  op(Op::add, r64(Reg::rax), var64(loop_now_));
  mov(mem64(Reg::rbx, kCDeadline), r64(Reg::rax));
  ret();
}

void Lowerer::epoll_conn_event() {
  const Limits& lim = spec_.limits;
  int rb = http() ? lim.request_bytes : kRequestBufferBytes;
  Label reading = b_.new_label("conn_reading");
  Label discarding = b_.new_label("conn_discarding");
  Label writing = b_.new_label("conn_writing");
  Label process = b_.new_label("process");
  Label save = b_.new_label("save_len");
  Label after_write = b_.new_label("after_write");
  Label closing = b_.new_label("conn_close");
  block(conn_event_, "subroutine connection_event(rbx = record)", &kRead,
        "switch (record.state) { reading: read, then answer what is complete;\n"
        "   writing: flush; discarding: read and drop the body }",
        "The record's buffer is rbp, its length r14, its socket r13, as in the\n"
        "blocking modes, so the parser and the response table are shared.");
  mov(r32(kClientFd), mem32(Reg::rbx, kCFd), "r13 = fd");
  mov(r64(kBuf), mem64(Reg::rbx, kCBuf), "rbp = its buffer");
  mov(r64(kBufLen), mem64(Reg::rbx, kCLen), "r14 = bytes in it");
  op(Op::cmp, mem32(Reg::rbx, kCState), imm(kWriting));
  jmp(Op::je, writing);
  op(Op::cmp, mem32(Reg::rbx, kCState), imm(kDiscarding));
  jmp(Op::je, discarding);
  b_.label(reading);
  b_.mov_imm(Reg::rdx, rb, "count = the room left");
  op(Op::sub, r64(Reg::rdx), r64(kBufLen));
  jmp(Op::jz, process, "full: the head cannot fit (414 or 431)");
  mov(r64(Reg::rsi), r64(kBuf));
  op(Op::add, r64(Reg::rsi), r64(kBufLen), "buf + len");
  mov(r64(Reg::rdi), r64(kClientFd));
  sys(kRead);
  op(Op::cmp, r64(Reg::rax), imm(-kEagain), "nothing after all");
  jmp(Op::je, save);
  op(Op::cmp, r64(Reg::rax), imm(-kEintr));
  jmp(Op::je, save, "level-triggered: it comes back");
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jle, closing, "end of file or error");
  op(Op::add, mem64(Reg::rbx, kCBytes), r64(Reg::rax));
  op(Op::add, r64(kBufLen), r64(Reg::rax), "len += n");
  if (http()) {
    b_.note("The first bytes of a keep-alive request start its header deadline.");
    op(Op::cmp, r64(kBufLen), r64(Reg::rax));
    jmp(Op::jne, process);
    op(Op::cmp, mem32(Reg::rbx, kCServed), imm(0));
    jmp(Op::je, process);
    b_.mov_imm(Reg::rax, lim.header_timeout_ms);
    call(conn_deadline_);
  }
  jmp(Op::jmp, process);

  Label count_ok = b_.new_label("discard_count_ok");
  b_.label(discarding);
  mov(r64(Reg::rdx), mem64(Reg::rbx, kCDiscard), "count = what is left of the body...");
  op(Op::cmp, r64(Reg::rdx), imm(rb));
  jmp(Op::jbe, count_ok);
  b_.mov_imm(Reg::rdx, rb, "...at most a buffer: the next request stays unread");
  b_.label(count_ok);
  mov(r64(Reg::rsi), r64(kBuf));
  mov(r64(Reg::rdi), r64(kClientFd));
  sys(kRead);
  op(Op::cmp, r64(Reg::rax), imm(-kEagain));
  jmp(Op::je, save);
  op(Op::cmp, r64(Reg::rax), imm(-kEintr));
  jmp(Op::je, save);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jle, closing);
  op(Op::add, mem64(Reg::rbx, kCBytes), r64(Reg::rax));
  op(Op::sub, mem64(Reg::rbx, kCDiscard), r64(Reg::rax));
  Label body_done = b_.new_label("body_dropped");
  jmp(Op::jz, body_done);
  b_.mov_imm(Reg::rax, http() ? lim.header_timeout_ms : 0, "more to come: header_timeout_ms from this read");
  call(conn_deadline_);
  jmp(Op::jmp, save);
  b_.label(body_done);
  mov(mem32(Reg::rbx, kCState), imm(kReading), "the body is gone: wait for the next request");
  b_.mov_imm(Reg::rax, http() ? lim.keepalive_timeout_ms : 0);
  call(conn_deadline_);
  jmp(Op::jmp, save);

  b_.label(writing);
  call(flush_);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, closing, "the client is gone");
  jmp(Op::jz, save, "still more to send");
  jmp(Op::jmp, after_write);

  // Answer every complete request in the buffer.
  Label have_head = b_.new_label("conn_have_head");
  Label respond = b_.new_label("conn_respond");
  Label queued = b_.new_label("conn_queued");
  Label body_here = b_.new_label("conn_body_here");
  block(process, "answer the complete requests in the buffer", nullptr,
        "while (head complete) { parse; route; queue the response; flush }",
        "Pipelined requests are answered in order. A response that does not fit\n"
        "in the socket buffer waits for EPOLLOUT; reading resumes after it.");
  if (http()) {
    mov(r64(Reg::rax), mem64(Reg::rbx, kCScanned));
    mov(var64(scanned_), r64(Reg::rax));
    call(find_head_end_);
    mov(r64(Reg::rcx), var64(scanned_));
    mov(mem64(Reg::rbx, kCScanned), r64(Reg::rcx));
    op(Op::test, r64(Reg::rax), r64(Reg::rax));
    jmp(Op::jnz, have_head);
    op(Op::cmp, r64(kBufLen), imm(rb));
    jmp(Op::jb, save, "incomplete: wait for more");
    call(too_large_, "414 or 431");
    jmp(Op::jmp, respond);
    b_.label(have_head);
    mov(var64(head_len_), r64(Reg::rax));
    call(parse_request_, "eax = the response");

    b_.label(respond);
    mov(r32(Reg::rcx), mem32(Reg::rbx, kCServed), "requests answered before this one");
    call(decide_mode_, "conn_mode = 0, 1 or 2; keeps eax");
    mov(r32(Reg::rdx), r32(Reg::rax), "edx = the response's index");
    mov(r32(Reg::rax), var32(conn_mode_));
    mov(mem32(Reg::rbx, kCMode), r32(Reg::rax));
    mov(r32(Reg::rax), r32(Reg::rdx));
    call(prepare_response_, "iov = head and body");
    if (spec_.log_requests) {
      mov(r64(Reg::rax), mem64(Reg::rbx, kCAddr));
      lea(Reg::rsi, client_addr_);
      mov(mem64(Reg::rsi), r64(Reg::rax), "client_addr = the record's, for the log");
      call(log_request_);
    }
    op(Op::inc, mem32(Reg::rbx, kCServed));
    b_.note("What to drop once the response is out: the head, and the body (read and");
    b_.note("thrown away later if it is not all here yet).");
    mov(r64(Reg::rax), var64(head_len_));
    mov(r64(Reg::rcx), r64(kBufLen));
    op(Op::sub, r64(Reg::rcx), r64(Reg::rax), "body bytes already here");
    mov(r64(Reg::rdx), var64(req_content_length_));
    op(Op::cmp, r64(Reg::rcx), r64(Reg::rdx));
    jmp(Op::jae, body_here);
    op(Op::sub, r64(Reg::rdx), r64(Reg::rcx));
    mov(mem64(Reg::rbx, kCDiscard), r64(Reg::rdx), "the rest is read and dropped later");
    mov(mem64(Reg::rbx, kCConsume), r64(kBufLen), "the whole buffer goes");
    jmp(Op::jmp, queued);
    b_.label(body_here);
    op(Op::add, r64(Reg::rax), r64(Reg::rdx));
    mov(mem64(Reg::rbx, kCConsume), r64(Reg::rax), "head + body");
    mov(mem64(Reg::rbx, kCDiscard), imm(0));
    b_.label(queued);
    lea(Reg::rsi, iov_);
    for (int i = 0; i < 4; ++i) {
      mov(r64(Reg::rax), mem64(Reg::rsi, 8 * i));
      mov(mem64(Reg::rbx, kCIov + 8 * i), r64(Reg::rax), i == 0 ? "record.iov = iov" : "");
    }
  } else {
    b_.note("raw_response: any bytes from the client are answered with the raw bytes.");
    op(Op::test, r64(kBufLen), r64(kBufLen));
    jmp(Op::jz, save);
    lea(Reg::rax, response_);
    mov(mem64(Reg::rbx, kCIov), r64(Reg::rax), "record.iov = { response, its length }, {}");
    mov(mem64(Reg::rbx, kCHeadLeft), imm(static_cast<int64_t>(response_len_)));
    mov(mem64(Reg::rbx, kCBody), imm(0));
    mov(mem64(Reg::rbx, kCBodyLeft), imm(0));
    mov(mem32(Reg::rbx, kCMode), imm(0), "then close");
    mov(mem64(Reg::rbx, kCConsume), r64(kBufLen));
    mov(mem64(Reg::rbx, kCDiscard), imm(0));
  }
  mov(mem32(Reg::rbx, kCState), imm(kWriting));
  b_.mov_imm(Reg::rax, kIoTimeoutSeconds * 1000, "a client must take the response within 10 s");
  call(conn_deadline_);
  call(flush_);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, closing);
  jmp(Op::jz, save, "the rest goes out on EPOLLOUT");

  Label keep = b_.new_label("conn_keep");
  Label no_discard = b_.new_label("conn_no_discard");
  Label idle = b_.new_label("conn_idle");
  block(after_write, "after a response", &kEpollCtl,
        "drop the request; close, or wait for the body's rest or the next request",
        "");
  op(Op::cmp, mem32(Reg::rbx, kCOut), imm(0), "was it waiting for EPOLLOUT?");
  Label in_again = b_.new_label("conn_in_again");
  jmp(Op::je, in_again);
  mov(mem32(Reg::rbx, kCOut), imm(0));
  epoll_ctl(kCtlMod, r64(kClientFd), kEpollIn, r64(Reg::rbx), "back to EPOLLIN");
  b_.label(in_again);
  op(Op::cmp, mem32(Reg::rbx, kCMode), imm(0), "Connection: close?");
  jmp(Op::je, closing);
  op(Op::cmp, var32(shutting_down_), imm(0), "stopping?");
  jmp(Op::jne, closing);
  b_.label(keep);
  mov(r64(Reg::rax), mem64(Reg::rbx, kCConsume), "memmove(buf, buf + consume, len - consume)");
  mov(r64(Reg::rdi), r64(kBuf));
  b_.emit(Op::lea, {r64(Reg::rsi), mem_index(Width::none, kBuf, Reg::rax)});
  mov(r64(Reg::rcx), r64(kBufLen));
  op(Op::sub, r64(Reg::rcx), r64(Reg::rax));
  op(Op::sub, r64(kBufLen), r64(Reg::rax));
  b_.emit(Op::rep_movsb, {});
  mov(mem64(Reg::rbx, kCScanned), imm(0));
  op(Op::cmp, mem64(Reg::rbx, kCDiscard), imm(0), "a body still to drop?");
  jmp(Op::je, no_discard);
  mov(mem32(Reg::rbx, kCState), imm(kDiscarding));
  b_.mov_imm(Reg::rax, http() ? lim.header_timeout_ms : 0);
  call(conn_deadline_);
  jmp(Op::jmp, save);
  b_.label(no_discard);
  mov(mem32(Reg::rbx, kCState), imm(kReading));
  op(Op::test, r64(kBufLen), r64(kBufLen), "the next request already here?");
  jmp(Op::jz, idle);
  b_.mov_imm(Reg::rax, http() ? lim.header_timeout_ms : 0, "yes: its head has header_timeout_ms");
  call(conn_deadline_);
  jmp(Op::jmp, process);
  b_.label(idle);
  b_.mov_imm(Reg::rax, http() ? lim.keepalive_timeout_ms : 0, "no: wait keepalive_timeout_ms");
  call(conn_deadline_);
  b_.label(save);
  mov(mem64(Reg::rbx, kCLen), r64(kBufLen), "record.len = r14");
  ret();
  b_.label(closing);
  jmp(Op::jmp, close_conn_, "close_connection returns for us");
}

void Lowerer::epoll_flush() {
  Label again = b_.new_label("flush_again");
  Label in_head = b_.new_label("flush_in_head");
  Label pending = b_.new_label("flush_pending");
  Label armed = b_.new_label("flush_armed");
  Label done = b_.new_label("flush_done");
  Label fail = b_.new_label("flush_fail");
  block(flush_, "subroutine flush(rbx = record)", &kWritev,
        "writev(fd, record.iov, 2) until all is sent or it would block",
        "rax = 1 when all is sent, 0 when the rest waits for EPOLLOUT, or -errno.");
  b_.label(again);
  mov(r64(Reg::rax), mem64(Reg::rbx, kCHeadLeft));
  op(Op::or_, r64(Reg::rax), mem64(Reg::rbx, kCBodyLeft), "anything left?");
  jmp(Op::jz, done);
  mov(r64(Reg::rdi), r64(kClientFd));
  b_.emit(Op::lea, {r64(Reg::rsi), mem(Width::none, Reg::rbx, kCIov)}, "iov = record.iov");
  b_.mov_imm(Reg::rdx, 2);
  sys(kWritev);
  op(Op::cmp, r64(Reg::rax), imm(-kEagain), "the socket buffer is full");
  jmp(Op::je, pending);
  op(Op::cmp, r64(Reg::rax), imm(-kEintr));
  jmp(Op::je, again);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, fail);
  mov(r64(Reg::rcx), mem64(Reg::rbx, kCHeadLeft));
  op(Op::cmp, r64(Reg::rax), r64(Reg::rcx));
  jmp(Op::jb, in_head);
  op(Op::sub, r64(Reg::rax), r64(Reg::rcx), "the head is out; rax = body bytes sent");
  op(Op::add, mem64(Reg::rbx, kCIov), r64(Reg::rcx));
  mov(mem64(Reg::rbx, kCHeadLeft), imm(0));
  op(Op::add, mem64(Reg::rbx, kCBody), r64(Reg::rax));
  op(Op::sub, mem64(Reg::rbx, kCBodyLeft), r64(Reg::rax));
  jmp(Op::jmp, again);
  b_.label(in_head);
  op(Op::add, mem64(Reg::rbx, kCIov), r64(Reg::rax));
  op(Op::sub, mem64(Reg::rbx, kCHeadLeft), r64(Reg::rax));
  jmp(Op::jmp, again);
  b_.label(pending);
  b_.mov_imm(Reg::rax, kIoTimeoutSeconds * 1000, "10 s for the client to read on");
  call(conn_deadline_);
  op(Op::cmp, mem32(Reg::rbx, kCOut), imm(0));
  jmp(Op::jne, armed);
  mov(mem32(Reg::rbx, kCOut), imm(1));
  epoll_ctl(kCtlMod, r64(kClientFd), kEpollOut, r64(Reg::rbx), "wait for EPOLLOUT");
  b_.label(armed);
  b_.zero(Reg::rax);
  ret();
  b_.label(done);
  b_.mov_imm(Reg::rax, 1);
  b_.label(fail);
  ret();
}

void Lowerer::epoll_close() {
  block(close_conn_, "subroutine close_connection(rbx = record)", &kClose,
        "drain_input(); log; close(fd); free the slot; listen_on()",
        "close() also takes the socket out of the epoll set.");
  mov(r32(kClientFd), mem32(Reg::rbx, kCFd));
  call(drain_);
  if (spec_.log_connections) {
    mov(r64(Reg::rax), mem64(Reg::rbx, kCAddr));
    lea(Reg::rsi, client_addr_);
    mov(mem64(Reg::rsi), r64(Reg::rax), "client_addr = the record's");
    mov(r64(Reg::rax), mem64(Reg::rbx, kCBytes));
    mov(var64(conn_bytes_), r64(Reg::rax));
    call(log_conn_);
  }
  mov(r64(Reg::rdi), r64(kClientFd));
  sys(kClose);
  mov(mem32(Reg::rbx, kCState), imm(0), "the slot is free");
  mov(r64(Reg::rax), r64(Reg::rbx));
  lea(Reg::rcx, conns_);
  op(Op::sub, r64(Reg::rax), r64(Reg::rcx));
  op(Op::shr, r64(Reg::rax), imm(kRecShift), "its index");
  mov(r32(Reg::rcx), var32(free_top_));
  op(Op::shl, r64(Reg::rcx), imm(2));
  lea(Reg::rdx, free_stack_);
  mov(mem_index(Width::b32, Reg::rdx, Reg::rcx), r32(Reg::rax), "push it on the free stack");
  op(Op::inc, var32(free_top_));
  op(Op::dec, var32(nconns_));
  call(listen_on_, "a slot is free: accept again if we had stopped");
  ret();
}

void Lowerer::epoll_sweep() {
  const Limits& lim = spec_.limits;
  Label loop = b_.new_label("sweep_loop");
  Label next = b_.new_label("sweep_next");
  Label done = b_.new_label("sweep_done");
  block(sweep_, "subroutine sweep: close connections past their deadline", nullptr,
        "for each open record: if (record.deadline <= now) close_connection(record)",
        "Header deadlines, idle keep-alive and send timeouts are all a deadline in\n"
        "the record; one pass over the table every 100 ms enforces them. Also\n"
        "retries accepting after EMFILE.");
  mov(r64(kBuf), var64(loop_now_), "rbp = now");
  lea(Reg::rbx, conns_);
  b_.label(loop);
  lea(Reg::rax, conns_);
  op(Op::add, r64(Reg::rax), imm(int64_t{lim.max_connections} * kRecBytes));
  op(Op::cmp, r64(Reg::rbx), r64(Reg::rax));
  jmp(Op::jae, done);
  op(Op::cmp, mem32(Reg::rbx, kCState), imm(0));
  jmp(Op::je, next, "free");
  op(Op::cmp, mem64(Reg::rbx, kCDeadline), r64(kBuf));
  jmp(Op::jg, next, "not yet");
  call(close_conn_);
  b_.label(next);
  op(Op::add, r64(Reg::rbx), imm(kRecBytes));
  jmp(Op::jmp, loop);
  b_.label(done);
  call(listen_on_);
  ret();
}

void Lowerer::epoll_listen() {
  Label skip = b_.new_label("listen_on_skip");
  block(listen_on_, "subroutine listen_on", &kEpollCtl,
        "if (!accepting && !shutting_down && nconns < max) epoll_ctl(ADD, listen_fd, EPOLLIN | EPOLLEXCLUSIVE)",
        "EPOLLEXCLUSIVE: with several workers on the shared listener, the kernel\n"
        "wakes one of them per connection, not all.");
  op(Op::cmp, var32(accepting_), imm(0));
  jmp(Op::jne, skip);
  op(Op::cmp, var32(shutting_down_), imm(0));
  jmp(Op::jne, skip);
  op(Op::cmp, var32(nconns_), imm(spec_.limits.max_connections));
  jmp(Op::jae, skip);
  epoll_ctl(kCtlAdd, r64(kListenFd), kEpollIn | kEpollExclusive, imm(0), "EPOLLIN | EPOLLEXCLUSIVE");
  mov(var32(accepting_), imm(1));
  b_.label(skip);
  ret();

  Label off_skip = b_.new_label("listen_off_skip");
  block(listen_off_, "subroutine listen_off", &kEpollCtl, "if (accepting) epoll_ctl(DEL, listen_fd)",
        "Pending connections wait in the kernel's queue (the listen backlog).");
  op(Op::cmp, var32(accepting_), imm(0));
  jmp(Op::je, off_skip);
  epoll_ctl(kCtlDel, r64(kListenFd), 0, imm(0), "no events");
  mov(var32(accepting_), imm(0));
  b_.label(off_skip);
  ret();
}

}  // namespace asmsrv
