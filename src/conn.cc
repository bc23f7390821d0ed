#include "conn.h"

#include <fmt/format.h>

namespace asmsrv {

using namespace linux;

Conn::Conn(const Spec& spec, Builder& b, Runtime& rt) : Gen(spec, b), rt_(rt) {
  read_window_ = local("read_window");
  flush_ = local("flush");
  deadline_ = local("set_deadline");
  idle_ = local("idle");
}

void Conn::reset_record() {
  mov(conn(ConnField::state), imm(kConnReading), "waiting for the first request");
  for (ConnField f : {ConnField::len, ConnField::scanned, ConnField::served, ConnField::mode, ConnField::said_close,
                      ConnField::discard})
    mov(conn(f), imm(0));
  if (spec_.log_connections) mov(conn(ConnField::bytes), imm(0), "counted for the connection log");
}

void Conn::set_deadline(int ms, const std::string& what) {
  b_.mov_imm(Reg::rax, dec(ms), what);
  call(deadline_);
}

void Conn::answer(ConnAction a) {
  const char* what[] = {"want to read", "send", "close", "close: the client sends no more"};
  set(Reg::rax, a, what[a]);
  ret();
}

void Conn::emit_shared() {
  int room = spec_.limits.request_bytes;
  Label dropping = local("dropping");
  Label capped = local("capped");
  block(read_window_, "subroutine read_window", nullptr,
        "reading: rsi = buf + len, rdx = room left;  dropping a body: rsi = buf, rdx = min(discard, room)",
        "Where the next read goes. A body that is dropped is read into the buffer,\n"
        "which is empty then, and never past its end: the next request stays unread.");
  mov(r64(Reg::rsi), conn(ConnField::buf));
  op(Op::cmp, conn(ConnField::state), imm(kConnDiscarding), "dropping a body?");
  jmp(Op::je, dropping);
  mov(r32(Reg::rax), conn(ConnField::len));
  op(Op::add, r64(Reg::rsi), r64(Reg::rax), "buf + len");
  set(Reg::rdx, room, "request_bytes - len");
  op(Op::sub, r64(Reg::rdx), r64(Reg::rax));
  ret();
  label(dropping);
  mov(r64(Reg::rdx), conn(ConnField::discard), "what is left of the body...");
  op(Op::cmp, r64(Reg::rdx), dec(room));
  jmp(Op::jbe, capped);
  set(Reg::rdx, room, "...at most a buffer");
  label(capped);
  ret();

  block(deadline_, "subroutine set_deadline(eax = ms)", nullptr, "record.deadline = clock_now + ms",
        "clock_now is read once per wake-up by the driver, as nginx does: no\n"
        "clock_gettime per request.");
  op(Op::add, r64(Reg::rax), var64(rt_.clock_now()));
  mov(conn(ConnField::deadline), r64(Reg::rax));
  ret();

  emit_flush();
  emit_idle();
}

void Conn::emit_idle() {
  Label no = local("no");
  block(idle_, "subroutine idle(rbx = record)", nullptr, "return state == reading && len == 0",
        "eax = 1 when the connection waits for a request and has none of it, so\n"
        "that a stop may close it at once; otherwise 0. A body being dropped is\n"
        "read to its end first: closing with input unread would send a reset,\n"
        "which can cost the client the end of the response it was sent.");
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
  Label pending = local("would_block");
  Label done = local("done");
  Label fail = local("return");
  std::array<Label, 3> partial = {local("partial"), local("partial"), local("partial")};
  const char* part[] = {"the head", "the Date line", "the body"};
  block(flush_, "subroutine flush(rbx = record)", &kWritev,
        "while (anything left) { n = writev(record.fd, record.iov, 3); advance record.iov by n }",
        "rax = 1 when all is sent, 0 when the socket would block (the rest waits for\n"
        "it to drain; a blocking socket says so only when its send timeout ran out),\n"
        "or -errno. Up to three parts go out in one system call.");
  label(again);
  mov(r64(Reg::rax), conn(ConnField::iov, 8));
  op(Op::or_, r64(Reg::rax), conn(ConnField::iov, 24));
  op(Op::or_, r64(Reg::rax), conn(ConnField::iov, 40), "anything left?");
  jmp(Op::jz, done);
  mov(r32(Reg::rdi), conn(ConnField::fd), "fd = record.fd");
  lea(Reg::rsi, [] { MemOp m = conn(ConnField::iov); m.width = Width::none; return m; }(), "iov = record.iov");
  set(Reg::rdx, 3, "iovcnt");
  sys(kWritev);
  op(Op::cmp, r64(Reg::rax), imm(-kEagain), "the socket buffer is full");
  jmp(Op::je, pending);
  op(Op::cmp, r64(Reg::rax), imm(-kEintr));
  jmp(Op::je, again);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, fail, "-errno: the client is gone");
  note("rax bytes went out: move the iov past them, part by part.");
  for (int i = 0; i < 3; ++i) {
    mov(r64(Reg::rcx), conn(ConnField::iov, 16 * i + 8), part[i]);
    op(Op::cmp, r64(Reg::rax), r64(Reg::rcx));
    jmp(Op::jb, partial[i]);
    op(Op::add, conn(ConnField::iov, 16 * i), r64(Reg::rcx), "all of it went");
    mov(conn(ConnField::iov, 16 * i + 8), imm(0));
    op(Op::sub, r64(Reg::rax), r64(Reg::rcx));
  }
  jmp(Op::jmp, again);
  // The exits come before the partial writes' tails, so that no forward jump
  // crosses a backward one: NASM and GAS then agree on every jump's size.
  label(pending);
  zero(Reg::rax, "0: would block");
  ret();
  label(done);
  set(Reg::rax, 1, "1: all sent");
  label(fail);
  ret();
  for (int i = 0; i < 3; ++i) {
    label(partial[i]);
    op(Op::add, conn(ConnField::iov, 16 * i), r64(Reg::rax), fmt::format("part of {} went", part[i]));
    op(Op::sub, conn(ConnField::iov, 16 * i + 8), r64(Reg::rax));
    jmp(Op::jmp, again);
  }
}

}  // namespace asmsrv
