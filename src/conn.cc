#include "conn.h"

#include <fmt/format.h>

namespace asmsrv {

using namespace linux;

Conn::Conn(const Spec& spec, Builder& b, Runtime& rt) : Gen(spec, b), rt_(rt) {
  received_ = local("received");
  linger_ = local("linger");
  read_window_ = local("read_window");
  flush_ = local("flush");
  deadline_ = local("set_deadline");
  idle_ = local("idle");
  files_ = spec.files_at_run_time();
  if (files_) release_ = local("release_file");
}

void Conn::reset_record() {
  mov(conn(ConnField::state), imm(kConnReading), "waiting for the first request");
  for (ConnField f : {ConnField::len, ConnField::scanned, ConnField::served, ConnField::mode, ConnField::said_close,
                      ConnField::discard, ConnField::chunk})
    mov(conn(f), imm(0));
  if (spec_.log_connections) mov(conn(ConnField::bytes), imm(0), "counted for the connection log");
  if (files_) {
    mov(conn(ConnField::file), imm(-1), "no file open");
    mov(conn(ConnField::file_left), imm(0));
    mov(conn(ConnField::file_lowat), imm(0), "the listener's TCP_NOTSENT_LOWAT");
  }
  if (!spec_.uploads.empty()) mov(conn(ConnField::upload_id), imm(0), "no upload's temporary file");
}

void Conn::set_deadline(int ms, const std::string& what) {
  b_.mov_imm(Reg::rax, dec(ms), what);
  call(deadline_);
}

void Conn::answer(ConnAction a) {
  const char* what[] = {"want to read", "send", "close now"};
  set(Reg::rax, a, what[a]);
  ret();
}

void Conn::emit_shared() {
  int room = spec_.limits.request_bytes;
  Label dropping = local("dropping");
  Label capped = local("capped");
  Label bounded = local("bounded");
  block(read_window_, "subroutine read_window", nullptr,
        "reading: rsi = buf + len, rdx = room left;\n"
        "   dropping a body or lingering: rsi = buf, rdx = min(discard, room);\n"
        "   dropping a chunked body: rsi = buf, rdx = room",
        "Where the next read goes. What is dropped is read into the buffer, which\n"
        "is empty then, and never past its end: the next request stays unread.\n"
        "A chunked body's end is known only once its last chunk is read, so it is\n"
        "read a buffer at a time; what follows it stays in the buffer.");
  mov(r64(Reg::rsi), conn(ConnField::buf));
  static_assert(kConnLingering == kConnDiscarding + 1 && kConnUploading < kConnDiscarding);
  op(Op::cmp, conn(ConnField::state), imm(kConnDiscarding), "dropping a body, or lingering?");
  jmp(Op::jae, dropping);
  mov(r32(Reg::rax), conn(ConnField::len));
  op(Op::add, r64(Reg::rsi), r64(Reg::rax), "buf + len");
  if (!spec_.uploads.empty()) {
    Label reading = local("reading");
    op(Op::cmp, conn(ConnField::state), imm(kConnUploading), "storing a body?");
    jmp(Op::jne, reading);
    note("An upload's body goes after its head (kept until the end), up to the");
    note("slack: the scratch stays free for the answer. A sized body is read no");
    note("further than its end.");
    set(Reg::rdx, room + kRequestBufferSlack, "request_bytes + slack - len");
    op(Op::sub, r64(Reg::rdx), r64(Reg::rax));
    op(Op::cmp, conn(ConnField::chunk), imm(kChunkNone), "a chunked one?");
    jmp(Op::jne, capped);
    jmp(Op::jmp, bounded);
    label(reading);
  }
  set(Reg::rdx, room, "request_bytes - len");
  op(Op::sub, r64(Reg::rdx), r64(Reg::rax));
  ret();
  label(dropping);
  set(Reg::rdx, room, "a buffer, or...");
  op(Op::cmp, conn(ConnField::state), imm(kConnLingering));
  jmp(Op::je, bounded);
  op(Op::cmp, conn(ConnField::chunk), imm(kChunkNone), "a chunked body: its framing is read too");
  jmp(Op::je, bounded);
  ret();
  label(bounded);
  op(Op::cmp, r64(Reg::rdx), conn(ConnField::discard), "what is left of the body...");
  jmp(Op::jbe, capped);
  mov(r64(Reg::rdx), conn(ConnField::discard), "...at most the room");
  label(capped);
  ret();

  block(deadline_, "subroutine set_deadline(eax = ms)", nullptr, "record.deadline = clock_now + ms",
        "clock_now is read once per wake-up by the driver, as nginx does: no\n"
        "clock_gettime per request.");
  op(Op::add, r64(Reg::rax), var64(rt_.clock_now()));
  mov(conn(ConnField::deadline), r64(Reg::rax));
  ret();

  emit_received();
  emit_linger();
  emit_flush();
  emit_idle();
  if (files_) emit_release();
}

void Conn::emit_received() {
  Label more = local("more");
  block(received_, "subroutine received(rbx = record, rax = n bytes read)", nullptr,
        fmt::format("lingering: discard -= n; return discard > 0 ? want_read : close;\n"
                    "   else {}_received(n)",
                    protocol()),
        "A lingering connection's input is read only to be dropped, up to\n"
        "limits.linger_bytes; the rest is the protocol's.");
  if (spec_.log_connections) op(Op::add, conn(ConnField::bytes), r64(Reg::rax), "for the connection log");
  op(Op::cmp, conn(ConnField::state), imm(kConnLingering), "lingering?");
  jmp(Op::jne, protocol_received(), "no: a request (or its body) for the protocol");
  op(Op::sub, conn(ConnField::discard), r64(Reg::rax), "dropped");
  jmp(Op::jg, more);
  answer(kActClose);
  label(more);
  answer(kActRead);
}

void Conn::emit_linger() {
  const Limits& lim = spec_.limits;
  if (lim.linger_ms == 0) {
    block(linger_, "subroutine linger(rbx = record)", nullptr, "return close",
          "limits.linger_ms is 0: the connection closes as soon as its last response\n"
          "is out, even with input unread (which resets it).");
    answer(kActClose);
    return;
  }
  Label gone = local("gone");
  block(linger_, "subroutine linger(rbx = record)", &kShutdown,
        "shutdown(record.fd, SHUT_WR); state = lingering; discard = linger_bytes;\n"
        "   record.deadline = now + linger_ms; return want_read",
        fmt::format("The last response is out, but the client may still be sending (pipelined\n"
                    "requests, a body we refused). Closing now, with input unread, would make\n"
                    "the kernel reset the connection, and a reset can destroy answers the\n"
                    "client has not read yet. So: end of file after the response (the write\n"
                    "side is shut down), then read and drop what comes until the client\n"
                    "closes, for at most limits.linger_ms ({} ms) and limits.linger_bytes\n"
                    "({} bytes); then close. nginx calls this a lingering close.",
                    lim.linger_ms, lim.linger_bytes));
  mov(r32(Reg::rdi), conn(ConnField::fd), "fd = record.fd");
  set(Reg::rsi, kShutWr, "SHUT_WR: FIN after the response; reading goes on");
  sys(kShutdown);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, gone, "ENOTCONN: the client is gone already");
  mov(conn(ConnField::state), imm(kConnLingering), "lingering");
  b_.mov_imm(Reg::rax, dec(lim.linger_bytes), "linger_bytes");
  mov(conn(ConnField::discard), r64(Reg::rax), "at most this much is read and dropped");
  set_deadline(lim.linger_ms, "linger_ms, for all of it");
  answer(kActRead);
  label(gone);
  answer(kActClose);
}

void Conn::emit_idle() {
  Label no = local("no");
  block(idle_, "subroutine idle(rbx = record)", nullptr, "return state == reading && len == 0",
        "eax = 1 when the connection waits for a request and has none of it, so\n"
        "that a stop may close it at once; otherwise 0. A body being dropped is\n"
        "read to its end first, and a lingering connection lingers: closing with\n"
        "input unread would send a reset, which can cost the client the end of\n"
        "the response it was sent.");
  op(Op::cmp, conn(ConnField::state), imm(kConnReading), "waiting for a request...");
  jmp(Op::jne, no);
  op(Op::cmp, conn(ConnField::len), imm(0), "...with nothing of it received?");
  jmp(Op::jne, no);
  set(Reg::rax, 1, "idle");
  ret();
  label(no);
  zero(Reg::rax, "busy");
  ret();
}

void Conn::emit_flush() {
  Label again = local("again");
  Label sum = local("sum");
  Label pending = local("would_block");
  Label done = local("done");
  Label fail = local("return");
  Label advance = local("advance");
  Label partial = local("partial");
  MemOp base = mem64(Reg::rsi, 0);
  MemOp len = mem64(Reg::rsi, 8);
  base.disp_name = "iov_base";
  len.disp_name = "iov_len";
  b_.constant("iov_base", 0, "struct iovec: where a part starts");
  b_.constant("iov_len", 8, "... and how many of its bytes are left");
  block(flush_, "subroutine flush(rbx = record)", &kWritev,
        fmt::format("while (anything left) {{ n = writev(record.fd, record.iov, {}); advance record.iov by n }}",
                    kIovParts),
        fmt::format("rax = 1 when all is sent, 0 when the socket would block (the rest waits for\n"
                    "it to drain; a blocking socket says so only when its send timeout ran out),\n"
                    "or -errno. The {} parts of the response (status, runtime, fields, conn,\n"
                    "date, body; empty ones cost nothing) go out in one system call.",
                    kIovParts));
  label(again);
  lea(Reg::rsi, [] { MemOp m = conn(ConnField::iov); m.width = Width::none; return m; }(), "rsi = record.iov");
  zero(Reg::rax);
  set(Reg::rcx, kIovParts);
  label(sum);
  op(Op::or_, r64(Reg::rax), len, "anything left of this part?");
  op(Op::add, r64(Reg::rsi), imm(16));
  op(Op::dec, r32(Reg::rcx));
  jmp(Op::jnz, sum);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jz, done);
  mov(r32(Reg::rdi), conn(ConnField::fd), "fd = record.fd");
  lea(Reg::rsi, [] { MemOp m = conn(ConnField::iov); m.width = Width::none; return m; }(), "iov = record.iov");
  set(Reg::rdx, kIovParts, "iovcnt");
  sys(kWritev);
  op(Op::cmp, r64(Reg::rax), imm(-kEagain), "the socket buffer is full");
  jmp(Op::je, pending);
  op(Op::cmp, r64(Reg::rax), imm(-kEintr));
  jmp(Op::je, again);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, fail, "-errno: the client is gone");
  note("rax bytes went out: move the iov past them, part by part.");
  lea(Reg::rsi, [] { MemOp m = conn(ConnField::iov); m.width = Width::none; return m; }(), "rsi = the first part");
  label(advance);
  mov(r64(Reg::rcx), len, "what was left of this part");
  op(Op::cmp, r64(Reg::rax), r64(Reg::rcx));
  jmp(Op::jb, partial, "only some of it went");
  op(Op::add, base, r64(Reg::rcx), "all of it went");
  mov(len, imm(0));
  op(Op::sub, r64(Reg::rax), r64(Reg::rcx));
  op(Op::add, r64(Reg::rsi), imm(16), "the next part");
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jnz, advance, "more of n to account for");
  jmp(Op::jmp, again);
  label(partial);
  op(Op::add, base, r64(Reg::rax));
  op(Op::sub, len, r64(Reg::rax));
  jmp(Op::jmp, again);
  label(pending);
  zero(Reg::rax, "0: would block");
  ret();
  label(done);
  Label send_file = files_ ? local("send_file") : Label{};
  if (files_) {
    op(Op::cmp, conn(ConnField::file_left), imm(0), "a file to send after the parts?");
    jmp(Op::jne, send_file);
  }
  set(Reg::rax, 1, "1: all sent");
  label(fail);
  ret();
  if (files_) emit_send_file(send_file);
}

void Conn::emit_send_file(Label l) {
  Label again = local("again");
  Label sized = local("sized");
  Label more = local("more");
  Label pending = local("would_block");
  Label shrank = local("shrank");
  Label out = local("return");
  block(l, "flush: the file, with sendfile", &kSendfile,
        fmt::format("while (file_left) {{ n = sendfile(record.fd, record.file, &record.file_off, min(file_left, {0})); "
                    "file_left -= n; if (sent {0} this time) return 2 }}\n   release_file(); return 1",
                    kSendFileSlice),
        fmt::format("The file goes from the page cache to the socket without a copy through\n"
                    "user space. At most {} KiB per flush: then rax = 2, and an event loop\n"
                    "serves the other connections before it sends more (a blocking one just\n"
                    "calls flush again). sendfile returning 0 before the end means the file\n"
                    "shrank while it was sent: the response cannot be finished, so -EIO ends\n"
                    "the connection. r8 = the bytes sent in this call.",
                    kSendFileSlice / 1024));
  zero(Reg::r8);
  label(again);
  mov(r64(Reg::r10), conn(ConnField::file_left));
  op(Op::cmp, r64(Reg::r10), dec(kSendFileSlice));
  jmp(Op::jbe, sized);
  set(Reg::r10, kSendFileSlice, "count: at most a slice");
  label(sized);
  mov(r32(Reg::rdi), conn(ConnField::fd), "out_fd = the socket");
  mov(r32(Reg::rsi), conn(ConnField::file), "in_fd = the file");
  lea(Reg::rdx, [] { MemOp m = conn(ConnField::file_off); m.width = Width::none; return m; }(),
      "offset = &record.file_off: the kernel advances it");
  sys(kSendfile);
  op(Op::cmp, r64(Reg::rax), imm(-kEagain), "the socket buffer is full");
  jmp(Op::je, pending);
  op(Op::cmp, r64(Reg::rax), imm(-kEintr));
  jmp(Op::je, again);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, out, "-errno: the client is gone, or the file cannot be read");
  jmp(Op::jz, shrank, "end of file before the end: it shrank");
  op(Op::sub, conn(ConnField::file_left), r64(Reg::rax));
  jmp(Op::jz, more, "all of it sent");
  op(Op::add, r64(Reg::r8), r64(Reg::rax));
  op(Op::cmp, r64(Reg::r8), dec(kSendFileSlice));
  jmp(Op::jb, again);
  set(Reg::rax, 2, "2: more to send; the others first");
  ret();
  label(more);
  call(release_, "the file is sent: close it");
  set(Reg::rax, 1, "1: all sent");
  ret();
  label(pending);
  zero(Reg::rax, "0: would block");
  ret();
  label(shrank);
  set(Reg::rax, -kEio, "-EIO: the file shrank");
  label(out);
  ret();
}

void Conn::emit_release() {
  Label none = local("none");
  block(release_, "subroutine release_file(rbx = record)", &kClose,
        "if (record.file >= 0) { close(record.file); record.file = -1; } record.file_left = 0",
        "A response's file is closed when it is sent, when its answer needs no body\n"
        "(HEAD, 304, 416), and when the connection ends before: no descriptor\n"
        "outlives its response. Clobbers rax, rcx, rdi, r11.");
  if (discard_upload_.id >= 0) {
    Label no_upload = local("no_upload");
    op(Op::cmp, conn(ConnField::upload_id), imm(0), "a body being stored?");
    jmp(Op::je, no_upload);
    call(discard_upload_, "ended before it was stored: its temporary file goes");
    label(no_upload);
  }
  op(Op::cmp, conn(ConnField::file), imm(0), "a file open?");
  jmp(Op::jl, none);
  mov(r32(Reg::rdi), conn(ConnField::file));
  sys(kClose);
  mov(conn(ConnField::file), imm(-1));
  label(none);
  mov(conn(ConnField::file_left), imm(0));
  ret();
}

}  // namespace asmsrv
