#include "client_addr.h"

#include <fmt/format.h>

namespace asmsrv {

using namespace linux;

namespace {
// What accept() fills in, by the listener's family.
int sockaddr_bytes(const Spec& spec) { return spec.ipv6 ? kSockaddrIn6Bytes : kSockaddrInBytes; }
const char* sockaddr_name(const Spec& spec) { return spec.ipv6 ? "struct sockaddr_in6" : "struct sockaddr_in"; }
}  // namespace

ClientAddress::ClientAddress(const Spec& spec, Builder& b)
    : Gen(spec, b), wanted_(spec.log_requests || spec.log_connections) {
  if (!wanted_) return;
  addr_ = b_.bss("client_addr", sockaddr_bytes(spec_), fmt::format("{}: the client, filled by accept", sockaddr_name(spec_)));
  addrlen_ = b_.bss("client_addrlen", kIntBytes, "socklen_t: in: the buffer's size, out: the address's", 4);
}

void ClientAddress::accept_args() {
  if (!wanted_) {
    zero(Reg::rsi, "addr = NULL: no log prints the client's address");
    zero(Reg::rdx, "addrlen = NULL");
    return;
  }
  mov(var32(addrlen_), imm(sockaddr_bytes(spec_)), fmt::format("client_addrlen = sizeof({})", sockaddr_name(spec_)));
  lea(Reg::rsi, addr_, "addr = &client_addr");
  lea(Reg::rdx, addrlen_, "addrlen = &client_addrlen");
}

void ClientAddress::keep() {
  if (!wanted_) return;
  if (!spec_.ipv6) {
    mov(r64(Reg::rax), var64(addr_), "family, port and address: 8 bytes");
    mov(conn(ConnField::addr), r64(Reg::rax), "kept for the logs");
    return;
  }
  // family, port, flowinfo, then the 16 bytes of sin6_addr; not scope_id.
  for (int i = 0; i < 24; i += 8) {
    MemOp from = var64(addr_);
    from.disp = i;
    mov(r64(Reg::rax), from, i == 0 ? "family, port, flowinfo, the address: 24 bytes" : "");
    mov(conn(ConnField::addr, i), r64(Reg::rax), i == 0 ? "kept for the logs" : "");
  }
}

Label AddressText::append() {
  if (append_.id < 0) append_ = local("append_client");
  return append_;
}

Label AddressText::append_with_port() {
  append();
  if (with_port_.id < 0) with_port_ = local("append_client_port");
  return with_port_;
}

void AddressText::emit() {
  if (with_port_.id >= 0) emit_with_port(with_port_);
  if (append_.id < 0) return;
  if (spec_.ipv6)
    emit_ipv6(append_);
  else
    emit_ipv4(append_);
}

void AddressText::unless_mapped(Reg base, Label not_mapped) {
  mov(r64(Reg::rax), mem64(base, 8), "the first 8 bytes of sin6_addr");
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jnz, not_mapped);
  op(Op::cmp, mem32(base, 16), imm(0xffff0000), "then 0000:ffff: IPv4-mapped?");
  jmp(Op::jne, not_mapped);
}

void AddressText::emit_with_port(Label l) {
  Label port = local("port");
  Label bracket = local("bracket");
  block(l, "subroutine append_client_port(rbx = record, rdi = dst)", nullptr,
        spec_.ipv6 ? "dst += sprintf(dst, mapped ? \"%s:%u\" : \"[%s]:%u\", ip, port)"
                   : "dst += sprintf(dst, \"%s:%u\", ip, port)",
        spec_.ipv6 ? "An IPv6 address goes in brackets before its port (RFC 5952 6), so the\n"
                     "last colon is not read as one of its own."
                   : "The client's address and port, for the connection log.");
  lea(Reg::rsi, conn(ConnField::addr), "the client's address");
  if (spec_.ipv6) {
    unless_mapped(Reg::rsi, bracket);
    call(append_, "IPv4-mapped: plain a.b.c.d");
    jmp(Op::jmp, port);
    label(bracket);
    mov(mem8(Reg::rdi), chr('['));
    op(Op::inc, r64(Reg::rdi));
    call(append_);
    mov(mem8(Reg::rdi), chr(']'));
    op(Op::inc, r64(Reg::rdi));
  } else {
    call(append_, "\"127.0.0.1\"");
  }
  label(port);
  mov(mem8(Reg::rdi), chr(':'));
  op(Op::inc, r64(Reg::rdi));
  MemOp p = conn(ConnField::addr, 2);
  p.width = Width::b16;
  b_.emit(Op::movzx, {r32(Reg::rax), p}, "the port, network byte order");
  op(Op::ror, r16(Reg::rax), imm(8), "ntohs: swap the two bytes");
  jmp(Op::jmp, rt_.append_u64(), "append_u64 returns to our caller");
}

void AddressText::emit_ipv4(Label l) {
  block(l, "subroutine append_client(rsi = address, rdi = dst)", nullptr,
        "dst += sprintf(dst, \"%u.%u.%u.%u\", ip[0], ip[1], ip[2], ip[3])",
        "The client's address as text, from the first 8 bytes of a sockaddr_in;\n"
        "advances rdi. Clobbers rax, rcx, rdx, rsi, r8.");
  mov(r64(Reg::r8), r64(Reg::rsi), "r8 = the address");
  append_dotted(4, "address byte");
  ret();
}

void AddressText::append_dotted(int offset, const char* what) {
  for (int i = 0; i < 4; ++i) {
    b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::r8, offset + i)}, fmt::format("{} {}", what, i + 1));
    call(rt_.append_u64());
    if (i == 3) break;
    mov(mem8(Reg::rdi), chr('.'));
    op(Op::inc, r64(Reg::rdi));
  }
}

void AddressText::emit_ipv6(Label l) {
  Label v6 = local("v6"), scan = local("scan"), nonzero = local("nonzero"), step = local("step"),
        group = local("group"), sep = local("separator"), hex = local("hex"), nibble = local("nibble"),
        digit = local("digit"), number = local("number"), next_nibble = local("next_nibble"), done = local("done");
  block(l, "subroutine append_client(rsi = address, rdi = dst)", nullptr,
        "dst += strlen(inet_ntop(AF_INET6, &sin6->sin6_addr, dst, INET6_ADDRSTRLEN))",
        "The client's address in RFC 5952 form: groups in lower-case hex without\n"
        "leading zeros, the longest run of two or more zero groups as \"::\" (the\n"
        "first on a tie). An IPv4 client of a dual-stack socket comes as\n"
        "::ffff:a.b.c.d (IPv4-mapped) and is printed as plain IPv4. rsi: the\n"
        "record's copy of the sockaddr_in6 (sin6_addr at +8); advances rdi.\n"
        "Clobbers rax, rcx, rdx, rsi, r8-r11.");
  mov(r64(Reg::r8), r64(Reg::rsi), "r8 = the address");
  unless_mapped(Reg::r8, v6);
  note("IPv4-mapped: the last 4 bytes, dotted");
  append_dotted(20, "IPv4 byte");
  ret();

  label(v6);
  note("Find the longest run of zero groups, in bytes: rcx walks the 8 groups\n"
       "(0, 2, ... 14), rdx is the current run, r10 the best (it must beat 2 bytes:\n"
       "one zero group is printed as 0), r9 where it starts (16: none).");
  zero(Reg::rcx);
  zero(Reg::rdx);
  set(Reg::r10, 2, "a run must be longer than one group");
  set(Reg::r9, 16, "no run yet");
  label(scan);
  op(Op::cmp, mem_index(Width::b16, Reg::r8, Reg::rcx, 8), imm(0), "a zero group?");
  jmp(Op::jne, nonzero);
  op(Op::add, r32(Reg::rdx), imm(2), "the run grows");
  op(Op::cmp, r32(Reg::rdx), r32(Reg::r10));
  jmp(Op::jbe, step, "not longer than the best: the first run wins a tie");
  mov(r32(Reg::r10), r32(Reg::rdx), "the best run so far");
  lea(Reg::r9, mem(Width::none, Reg::rcx, 2), "it starts at rcx + 2 - rdx");
  op(Op::sub, r64(Reg::r9), r64(Reg::rdx));
  jmp(Op::jmp, step);
  label(nonzero);
  zero(Reg::rdx, "the run ends");
  label(step);
  op(Op::add, r32(Reg::rcx), imm(2));
  op(Op::cmp, r32(Reg::rcx), imm(16));
  jmp(Op::jb, scan);

  note("Print the groups; at r9, \"::\" stands for r10 bytes of zeros.");
  zero(Reg::rcx);
  label(group);
  op(Op::cmp, r32(Reg::rcx), r32(Reg::r9), "the zero run?");
  jmp(Op::jne, sep);
  mov(mem16(Reg::rdi), imm(0x3a3a), "\"::\"");
  op(Op::add, r64(Reg::rdi), imm(2));
  op(Op::add, r32(Reg::rcx), r32(Reg::r10), "skip the run");
  op(Op::cmp, r32(Reg::rcx), imm(16));
  jmp(Op::jae, done, "the run was the end");
  jmp(Op::jmp, hex, "no ':' right after \"::\"");
  label(sep);
  op(Op::test, r32(Reg::rcx), r32(Reg::rcx), "the first group has no ':' before it");
  jmp(Op::jz, hex);
  mov(mem8(Reg::rdi), chr(':'));
  op(Op::inc, r64(Reg::rdi));
  label(hex);
  b_.emit(Op::movzx, {r32(Reg::rax), mem_index(Width::b16, Reg::r8, Reg::rcx, 8)}, "the group, network byte order");
  op(Op::ror, r16(Reg::rax), imm(8), "ntohs");
  set(Reg::r11, 4, "4 hex digits, the leading zeros left out");
  zero(Reg::rsi, "rsi = 1 once a digit is printed");
  label(nibble);
  op(Op::ror, r16(Reg::rax), imm(12), "the next digit, highest first, into the low 4 bits");
  mov(r32(Reg::rdx), r32(Reg::rax));
  op(Op::and_, r32(Reg::rdx), imm(15));
  jmp(Op::jnz, digit);
  op(Op::test, r32(Reg::rsi), r32(Reg::rsi), "a 0 after a digit is printed");
  jmp(Op::jnz, digit);
  op(Op::cmp, r32(Reg::r11), imm(1), "and the last one always");
  jmp(Op::jne, next_nibble);
  label(digit);
  set(Reg::rsi, 1);
  op(Op::cmp, r32(Reg::rdx), imm(10));
  jmp(Op::jb, number);
  op(Op::add, r32(Reg::rdx), imm('a' - '0' - 10), "10-15: 'a'-'f'");
  label(number);
  op(Op::add, r32(Reg::rdx), chr('0'));
  mov(mem8(Reg::rdi), r8(Reg::rdx));
  op(Op::inc, r64(Reg::rdi));
  label(next_nibble);
  op(Op::dec, r32(Reg::r11));
  jmp(Op::jnz, nibble);
  op(Op::add, r32(Reg::rcx), imm(2), "the next group");
  op(Op::cmp, r32(Reg::rcx), imm(16));
  jmp(Op::jb, group);
  label(done);
  ret();
}

}  // namespace asmsrv
