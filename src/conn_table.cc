#include "conn_table.h"

#include <fmt/format.h>

namespace asmsrv {

ConnTable::ConnTable(const Spec& spec, Builder& b) : Gen(spec, b) {
  nconns_ = b_.bss("nconns", 4, "open connections", 4);
  free_top_ = b_.bss("free_top", 4, "free slots on the stack", 4);
  free_stack_ = b_.bss("free_stack", static_cast<uint64_t>(max()) * 4, "indices of free connection slots (a stack)", 4);
  conns_ = b_.bss("conns", static_cast<uint64_t>(max()) * kConnRecordBytes,
                  fmt::format("the connection table: {} records of {} bytes (limits.max_connections)",
                              max(), kConnRecordBytes),
                  64);
  bufs_ = b_.bss("conn_bufs", static_cast<uint64_t>(max()) * static_cast<uint64_t>(buf_bytes()),
                 fmt::format("a {}-byte request buffer per connection", buf_bytes()), 64);
}

void ConnTable::emit_init() {
  Label init = local("init_slot");
  note("Each record gets its buffer; the free stack holds every index, 0 on top.");
  lea(Reg::rdi, conns_);
  lea(Reg::rsi, bufs_);
  lea(Reg::rdx, free_stack_);
  set(Reg::rcx, max(), "rcx = slots left to set up");
  label(init);
  mov(conn(Reg::rdi, ConnField::buf), r64(Reg::rsi), "record.buf");
  op(Op::dec, r32(Reg::rcx));
  mov(mem32(Reg::rdx), r32(Reg::rcx), "free_stack[i] = max - 1 - i");
  op(Op::add, r64(Reg::rdi), dec(kConnRecordBytes));
  op(Op::add, r64(Reg::rsi), dec(buf_bytes()));
  op(Op::add, r64(Reg::rdx), imm(4));
  op(Op::test, r32(Reg::rcx), r32(Reg::rcx));
  jmp(Op::jnz, init);
  mov(var32(free_top_), dec(max()), "every slot is free");
}

void ConnTable::emit_alloc() {
  op(Op::dec, var32(free_top_), "pop a free slot");
  mov(r32(Reg::rcx), var32(free_top_));
  op(Op::shl, r64(Reg::rcx), imm(2));
  lea(Reg::rdx, free_stack_);
  mov(r32(Reg::rcx), mem_index(Width::b32, Reg::rdx, Reg::rcx), "its index");
  op(Op::shl, r64(Reg::rcx), imm(kConnLayout.shift), fmt::format("* {}", kConnRecordBytes));
  lea(kConn, conns_);
  op(Op::add, r64(kConn), r64(Reg::rcx), "rbx = &conns[index]");
  op(Op::inc, var32(nconns_));
}

void ConnTable::emit_release() {
  mov(conn(ConnField::state), imm(kConnFree), "the slot is free");
  mov(r64(Reg::rax), r64(kConn));
  lea(Reg::rcx, conns_);
  op(Op::sub, r64(Reg::rax), r64(Reg::rcx));
  op(Op::shr, r64(Reg::rax), imm(kConnLayout.shift), "its index");
  mov(r32(Reg::rcx), var32(free_top_));
  op(Op::shl, r64(Reg::rcx), imm(2));
  lea(Reg::rdx, free_stack_);
  mov(mem_index(Width::b32, Reg::rdx, Reg::rcx), r32(Reg::rax), "push it on the free stack");
  op(Op::inc, var32(free_top_));
  op(Op::dec, var32(nconns_));
}

void ConnTable::emit_for_each(const std::string& name, const std::function<void(Label)>& body) {
  Label loop = local(name);
  Label next = local(name + "_next");
  Label done = local(name + "_done");
  lea(kConn, conns_);
  label(loop);
  lea(Reg::rax, conns_);
  op(Op::add, r64(Reg::rax), dec(int64_t{max()} * kConnRecordBytes), "the table's end");
  op(Op::cmp, r64(kConn), r64(Reg::rax));
  jmp(Op::jae, done);
  body(next);
  label(next);
  op(Op::add, r64(kConn), dec(kConnRecordBytes));
  jmp(Op::jmp, loop);
  label(done);
}

}  // namespace asmsrv
