// The two printers: one Program, two spellings.
#include "printer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>

#include "test_util.h"

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
  EXPECT_EQ(f.both({Op::mov, {r32(Reg::rsi), AddrOp{f.data}}}),
            "mov     esi, response | mov     esi, OFFSET response");
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
  EXPECT_EQ(f.both({Op::jne, {LabelOp{f.loop}}}), "jne     loop | jne     .Lloop");
  EXPECT_EQ(f.both({Op::rep_movsb, {}}), "rep movsb | rep movsb");
  EXPECT_EQ(f.both({Op::syscall, {}}), "syscall | syscall");
  MemOp field = rip(f.data, Width::b16);
  field.disp = 2;
  EXPECT_EQ(f.both({Op::mov, {r16(Reg::rax), field}}),
            "mov     ax, word [rel response+2] | mov     ax, WORD PTR [rip + response+2]");
}

TEST(Printer, ImmediatesInTheirStyle) {
  Fixture f;
  EXPECT_EQ(f.both({Op::cmp, {r8(Reg::rax), chr('/')}}), "cmp     al, '/' | cmp     al, '/'");
  EXPECT_EQ(f.both({Op::mov, {mem8(Reg::rdi), chr(' ')}}),
            "mov     byte [rdi], ' ' | mov     BYTE PTR [rdi], ' '");
  // The assemblers disagree on escapes: CR, LF and TAB by number, and the
  // quote and backslash, which would need escaping, too.
  EXPECT_EQ(f.both({Op::cmp, {r32(Reg::rax), chr('\r')}}), "cmp     eax, 13 | cmp     eax, 13");
  EXPECT_EQ(f.both({Op::cmp, {r32(Reg::rax), chr('\n')}}), "cmp     eax, 10 | cmp     eax, 10");
  EXPECT_EQ(f.both({Op::cmp, {r32(Reg::rax), chr('\t')}}), "cmp     eax, 9 | cmp     eax, 9");
  EXPECT_EQ(f.both({Op::cmp, {r32(Reg::rax), chr('\'')}}), "cmp     eax, 39 | cmp     eax, 39");
  EXPECT_EQ(f.both({Op::cmp, {r32(Reg::rax), chr('\\')}}), "cmp     eax, 92 | cmp     eax, 92");
  // Decimal at any size, where plain turns to hex above 4096.
  EXPECT_EQ(f.both({Op::mov, {r32(Reg::rdx), dec(5000)}}), "mov     edx, 5000 | mov     edx, 5000");
  EXPECT_EQ(f.both({Op::mov, {r32(Reg::rdx), imm(5000)}}), "mov     edx, 0x1388 | mov     edx, 0x1388");
  EXPECT_EQ(f.both({Op::add, {r64(Reg::rax), dec(-100000)}}), "add     rax, -100000 | add     rax, -100000");
  EXPECT_EQ(f.both({Op::imul, {r64(Reg::rdx), r64(Reg::rdx), dec(1000000)}}),
            "imul    rdx, rdx, 1000000 | imul    rdx, rdx, 1000000");
}

TEST(Printer, MessagesSpellAnInstructionAsNasmDoes) {
  Fixture f;
  EXPECT_EQ(instr_text(f.p, {Op::mov, {mem64(Reg::rax), mem64(Reg::rbx)}}), "mov qword [rax], qword [rbx]");
  EXPECT_EQ(instr_text(f.p, {Op::movabs, {r64(Reg::rax), imm(-1)}}), "mov rax, -1");
  EXPECT_EQ(instr_text(f.p, {Op::ret, {}}), "ret");
}

TEST(Printer, OnlyAFinishedProgram) {
  Program p;
  Builder b(p);
  p.entry = b.symbol("_start");
  b.block(p.entry, "t", "", -1, "", "");
  try {
    print_program(p, nasm_dialect());
    FAIL();
  } catch (const std::logic_error& e) {
    EXPECT_STREQ(e.what(), "print_program: the program is not finished (Builder::finish)");
  }
  EXPECT_THROW(explain_program(p), std::logic_error);
  b.emit(Op::ret, {});  // every block ends
  b.finish();
  EXPECT_NO_THROW(print_program(p, nasm_dialect()));
}

// The data section of a one-item program in `d`.
std::string data_text(const std::string& bytes, const Dialect& d) {
  Program p;
  Builder b(p);
  p.entry = b.symbol("_start");
  b.block(p.entry, "t", "", -1, "", "");
  b.bytes("msg", bytes, "a message");
  b.bss("buf", 64, "a buffer", 64);
  b.emit(Op::ret, {});  // every block ends
  b.finish();
  std::string out = print_program(p, d);
  size_t start = out.find(d.comment + " a message");
  size_t end = out.find("a buffer");
  return out.substr(start, end - start);
}

TEST(Printer, TextData) {
  EXPECT_EQ(data_text("HTTP/1.1 200 OK\r\n\"q\"\n", nasm_dialect()),
            "; a message (21 bytes)\n"
            "msg:\n"
            "        db \"HTTP/1.1 200 OK\", 13, 10\n"
            "        db 34, \"q\", 34, 10\n"
            "\n"
            "        section .bss\n"
            "\n; ");
  EXPECT_EQ(data_text("HTTP/1.1 200 OK\r\n\"q\"\n", gas_dialect()),
            "# a message (21 bytes)\n"
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

// "db 0, 1, 2, ..." for bytes [from, to).
std::string numbers(const Dialect& d, int from, int to) {
  std::string out = "        " + d.db + " ";
  for (int i = from; i < to; ++i) out += (i > from ? ", " : "") + std::to_string(i);
  return out + "\n";
}

TEST(Printer, BinaryDataGoes64BytesALineWhateverItsNewlines) {
  std::string bytes;
  for (int i = 0; i < 100; ++i) bytes += static_cast<char>(i);  // 0x0A at 10, all below 0x20 binary
  for (const Dialect* d : {&nasm_dialect(), &gas_dialect()}) {
    std::string text = data_text(bytes, *d);
    EXPECT_NE(text.find("msg:\n" + numbers(*d, 0, 64) + numbers(*d, 64, 100) + "\n"), std::string::npos)
        << text;
  }
  // Text bytes inside binary data are numbers too: a PNG header is no text.
  std::string png("\x89PNG\r\n\x1a\n", 8);
  EXPECT_NE(data_text(png, nasm_dialect()).find("        db 137, 80, 78, 71, 13, 10, 26, 10\n"),
            std::string::npos);
}

TEST(Printer, HugeBinaryDataPrintsInLinearTime) {
  Program p;
  Builder b(p);
  p.entry = b.symbol("_start");
  b.block(p.entry, "t", "", -1, "", "");
  std::string body(16 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7 % 251);
  b.data("body", Section::rodata, {Bytes{std::move(body)}}, "16 MiB");
  b.emit(Op::ret, {});  // every block ends
  b.finish();
  auto t0 = std::chrono::steady_clock::now();
  std::string out = print_program(p, nasm_dialect());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(seconds, 10.0) << "quadratic in the data size?";
  EXPECT_GT(std::count(out.begin(), out.end(), '\n'), (16 << 20) / 64);
}

TEST(Printer, FieldsOneALineWithTheirNames) {
  Program p;
  Builder b(p);
  p.entry = b.symbol("_start");
  b.block(p.entry, "t", "", -1, "", "");
  b.data("backoff", Section::rodata, {Fields{{{8, 0, "tv_sec"}, {8, 100'000'000, "tv_nsec: 100 ms"}}}},
         "struct timespec");
  b.emit(Op::ret, {});  // every block ends
  b.finish();
  std::string n = print_program(p, nasm_dialect()), g = print_program(p, gas_dialect());
  EXPECT_NE(n.find("; struct timespec (16 bytes)\n"
                   "        align 8, db 0\n"
                   "backoff:\n"
                   "        dq 0                                    ; tv_sec\n"
                   "        dq 0x5f5e100                            ; tv_nsec: 100 ms\n"),
            std::string::npos) << n;
  EXPECT_NE(g.find("backoff:\n"
                   "        .quad 0                                 # tv_sec\n"
                   "        .quad 0x5f5e100                         # tv_nsec: 100 ms\n"),
            std::string::npos) << g;
  EXPECT_NE(explain_program(p).find("    .rodata  backoff                    16 bytes  struct timespec\n"),
            std::string::npos);
}

// .rodata of `source` as assembled by the dialect's assembler.
std::string assembled_rodata(const Dialect& d, const std::string& source) {
  std::string dir = test::temp_dir();
  test::write(dir + "/x.s", source);
  test::CmdResult r = test::run(assemble_command(d, "x.s", "x.o", {}), dir);
  EXPECT_EQ(r.status, 0) << r.err;
  r = test::run({"objcopy", "-O", "binary", "-j", ".rodata", "x.o", "x.bin"}, dir);
  EXPECT_EQ(r.status, 0) << r.err;
  return test::read(dir + "/x.bin");
}

TEST(Printer, FieldsAssembleToTheirBytes) {
  for (const Dialect* d : {&nasm_dialect(), &gas_dialect()}) {
    if (test::run({d->assembler, "--version"}).status != 0 && test::run({d->assembler, "-v"}).status != 0)
      GTEST_SKIP() << d->assembler << " is not installed";
    Program p;
    Builder b(p);
    p.entry = b.symbol("_start");
    b.block(p.entry, "t", "", -1, "", "");
    b.emit(Op::ret, {});
    std::vector<Field> fields = {{2, 2, "sin_family = AF_INET"},      {2, 0x901f, "sin_port = htons(8080)"},
                                 {4, 0x0100007f, "sin_addr = 127.0.0.1"}, {1, 0xff, "a byte"},
                                 {1, 0, "a byte"},                      {2, 0xffff, "a short"},
                                 {8, ~0ull, "all ones"}};
    std::string bytes;
    for (const Field& f : fields)
      for (int i = 0; i < f.width; ++i) bytes += static_cast<char>((f.value >> (8 * i)) & 0xff);
    ASSERT_EQ(bytes.size(), 20u);
    b.data("fields", Section::rodata, {Fields{fields}}, "as fields", 4);
    b.data("bytes", Section::rodata, {Bytes{bytes}}, "as bytes", 4);
    b.finish();
    EXPECT_EQ(assembled_rodata(*d, print_program(p, *d)), bytes + bytes) << d->name;
  }
}

TEST(Printer, BssAndIncbin) {
  Program p;
  Builder b(p);
  p.entry = b.symbol("_start");
  b.block(p.entry, "t", "", -1, "", "");
  b.data("page", Section::rodata, {Bytes{"H\n"}, Incbin{"index.html", 42}}, "page");
  b.bss("buf", 8192, "buffer", 64);
  b.emit(Op::ret, {});  // every block ends
  b.finish();
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
  b.emit(Op::ret, {});  // every block ends
  b.finish();
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
  b.emit(Op::ret, {});  // every block ends
  b.finish();
  EXPECT_NE(print_program(p, nasm_dialect()).find(";   nasm -f elf64 -i specs/ -o server.o server.s\n"),
            std::string::npos);
  EXPECT_NE(print_program(p, gas_dialect()).find("#   as --64 -I specs -o server.o server.s\n"),
            std::string::npos);
}

TEST(Printer, ExplainAlignsContinuationLines) {
  Program p;
  Builder b(p);
  p.entry = b.symbol("_start");
  b.block(p.entry, "wait", "ppoll", 271, "ppoll(&pfd, 1,\n      &timeout, NULL)",
          "Waits until the deadline at most.\nA timeout closes the connection.");
  b.note("two lines\nof note");
  b.emit(Op::ret, {});
  b.emit(Op::ret, {});  // every block ends
  b.finish();
  std::string e = explain_program(p);
  EXPECT_NE(e.find("    C        ppoll(&pfd, 1,\n"
                   "                   &timeout, NULL)\n"
                   "    why      Waits until the deadline at most.\n"
                   "             A timeout closes the connection.\n"
                   "        ; two lines\n"
                   "        ; of note\n"
                   "        ret\n"),
            std::string::npos) << e;
}

// Text from a spec (a log path, a probe path) can reach a title, a C line or
// a data comment: explain escapes its control characters, as the listing
// does, so that it cannot move the terminal's cursor or split a line.
TEST(Printer, ExplainEscapesControlCharacters) {
  Program p;
  Builder b(p);
  p.entry = b.symbol("_start");
  b.block(p.entry, "open \x1b[2J", "open", 2, "open(\"log\r.txt\")\nthen\tmore", "why");
  b.bytes("path", std::string("a\rb\0", 4), "the path \x1b]0;x\x07");
  b.emit(Op::ret, {});
  b.finish();
  std::string e = explain_program(p);
  EXPECT_NE(e.find("[1] open \\u001b[2J\n"), std::string::npos) << e;
  EXPECT_NE(e.find("    C        open(\"log\\r.txt\")\n"
                   "             then\\tmore\n"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("the path \\u001b]0;x\\u0007\n"), std::string::npos) << e;
  for (char c : e) EXPECT_TRUE(c == '\n' || (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f)) << e;
}

}  // namespace
}  // namespace asmsrv
