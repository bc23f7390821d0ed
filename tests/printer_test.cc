// The two printers: one Program, two spellings.
#include "printer.h"

#include <gtest/gtest.h>

namespace asmsrv {
namespace {

struct Fixture {
  Program p;
  Builder b{p};
  Label data = b.symbol("response");
  Label loop = b.new_label("loop");
  Fixture() { b.block(loop, "t", "", -1, "", ""); }
  std::string both(const Instr& ins) {
    return format_instr(p, nasm_dialect(), ins) + " | " + format_instr(p, gas_dialect(), ins);
  }
};

TEST(Printer, Instructions) {
  Fixture f;
  EXPECT_EQ(f.both({Op::mov, {r64(Reg::rdi), r64(Reg::r12)}}), "mov     rdi, r12 | mov     rdi, r12");
  EXPECT_EQ(f.both({Op::lea, {r64(Reg::rsi), rip(f.data)}}),
            "lea     rsi, [rel response] | lea     rsi, [rip + response]");
  EXPECT_EQ(f.both({Op::mov, {rip(f.data, Width::b32), imm(0)}}),
            "mov     dword [rel response], 0 | mov     DWORD PTR [rip + response], 0");
  EXPECT_EQ(f.both({Op::cmp, {mem_index(Width::b32, Reg::rsi, Reg::rbx), imm(0x0A0D0A0D)}}),
            "cmp     dword [rsi+rbx], 0xa0d0a0d | cmp     DWORD PTR [rsi+rbx], 0xa0d0a0d");
  EXPECT_EQ(f.both({Op::movzx, {r32(Reg::rax), mem8(Reg::rbx, 4)}}),
            "movzx   eax, byte [rbx+4] | movzx   eax, BYTE PTR [rbx+4]");
  EXPECT_EQ(f.both({Op::mov, {mem64(Reg::rsp, -8), imm(-4)}}),
            "mov     qword [rsp-8], -4 | mov     QWORD PTR [rsp-8], -4");
  EXPECT_EQ(f.both({Op::movabs, {r64(Reg::rax), imm(0x123456789LL)}}),
            "mov     rax, 0x123456789 | movabs  rax, 0x123456789");
  EXPECT_EQ(f.both({Op::jne, {LabelOp{f.loop}}}), "jne     loop_1 | jne     .Lloop_1");
  EXPECT_EQ(f.both({Op::rep_movsb, {}}), "rep movsb | rep movsb");
  EXPECT_EQ(f.both({Op::syscall, {}}), "syscall | syscall");
}

// The data section of a one-item program in `d`.
std::string data_text(const std::string& bytes, const Dialect& d) {
  Program p;
  Builder b(p);
  p.entry = b.symbol("_start");
  b.block(p.entry, "t", "", -1, "", "");
  b.bytes("msg", bytes, "a message");
  b.bss("buf", 64, "a buffer", 64);
  std::string out = print_program(p, d);
  size_t start = out.find(d.comment + " a message");
  size_t end = out.find("a buffer");
  return out.substr(start, end - start);
}

TEST(Printer, TextData) {
  EXPECT_EQ(data_text("HTTP/1.1 200 OK\r\n\"q\"\n", nasm_dialect()),
            "; a message (21 bytes)\n"
            "        align 8, db 0\n"
            "msg:\n"
            "        db \"HTTP/1.1 200 OK\", 13, 10\n"
            "        db 34, \"q\", 34, 10\n"
            "\n"
            "        section .bss\n"
            "\n; ");
  EXPECT_EQ(data_text("HTTP/1.1 200 OK\r\n\"q\"\n", gas_dialect()),
            "# a message (21 bytes)\n"
            "        .balign 8, 0\n"
            "msg:\n"
            "        .ascii \"HTTP/1.1 200 OK\\r\\n\"\n"
            "        .ascii \"\\\"q\\\"\\n\"\n"
            "\n"
            "        .bss\n"
            "\n# ");
}

TEST(Printer, BinaryData) {
  std::string bytes("\x02\x00\x1f\x90", 4);
  EXPECT_NE(data_text(bytes, nasm_dialect()).find("        db 2, 0, 31, 144\n"), std::string::npos);
  EXPECT_NE(data_text(bytes, gas_dialect()).find("        .byte 2, 0, 31, 144\n"), std::string::npos);
}

TEST(Printer, BssAndIncbin) {
  Program p;
  Builder b(p);
  p.entry = b.symbol("_start");
  b.block(p.entry, "t", "", -1, "", "");
  b.data("page", Section::rodata, {Bytes{"H\n"}, Incbin{"index.html", 42}}, "page");
  b.bss("buf", 8192, "buffer", 64);
  std::string n = print_program(p, nasm_dialect()), g = print_program(p, gas_dialect());
  EXPECT_NE(n.find("        incbin \"index.html\"                     ; 42 bytes, read by the assembler\n"),
            std::string::npos) << n;
  EXPECT_NE(g.find("        .incbin \"index.html\"                    # 42 bytes, read by the assembler\n"),
            std::string::npos) << g;
  EXPECT_NE(n.find("        alignb 64\nbuf:\n        resb 8192\n"), std::string::npos);
  EXPECT_NE(g.find("        .balign 64\nbuf:\n        .skip 8192\n"), std::string::npos);
}

TEST(Printer, BlocksHaveAHeading) {
  Program p;
  Builder b(p);
  p.entry = b.symbol("_start");
  b.block(p.entry, "bind the address", "bind", 49, "bind(fd, &addr, 16)", "Give it an address.");
  b.emit(Op::mov, {r64(Reg::rdi), r64(Reg::r12)}, "fd");
  std::string n = print_program(p, nasm_dialect());
  EXPECT_NE(n.find(";; bind the address: bind(2), syscall 49\n"
                   ";; C: bind(fd, &addr, 16)\n"
                   ";; Give it an address.\n"
                   "_start:\n"
                   "        mov     rdi, r12                        ; fd\n"),
            std::string::npos) << n;
  std::string e = explain_program(p);
  EXPECT_NE(e.find("[1] bind the address\n    label    _start\n    syscall  bind (49)\n"
                   "    C        bind(fd, &addr, 16)\n"),
            std::string::npos) << e;
}

TEST(Printer, CommandsInTheHeader) {
  Program p;
  Builder b(p);
  p.entry = b.symbol("_start");
  p.name = "x";
  p.spec_file = "x.json";
  p.include_dirs = {"specs"};
  b.block(p.entry, "t", "", -1, "", "");
  EXPECT_NE(print_program(p, nasm_dialect()).find(";   nasm -f elf64 -i specs/ -o server.o server.s\n"),
            std::string::npos);
  EXPECT_NE(print_program(p, gas_dialect()).find("#   as --64 -I specs -o server.o server.s\n"),
            std::string::npos);
}

}  // namespace
}  // namespace asmsrv
