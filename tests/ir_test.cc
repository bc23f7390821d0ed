// The IR builder: labels, immediate encodings, blocks, data.
#include "ir.h"

#include <gtest/gtest.h>

#include "lower.h"
#include "printer.h"
#include "routes.h"
#include "spec.h"

namespace asmsrv {
namespace {

TEST(Ir, RegisterNamesByWidth) {
  EXPECT_STREQ(reg_name(Reg::rax, Width::b64), "rax");
  EXPECT_STREQ(reg_name(Reg::rax, Width::b32), "eax");
  EXPECT_STREQ(reg_name(Reg::rdx, Width::b8), "dl");
  EXPECT_STREQ(reg_name(Reg::rsi, Width::b8), "sil");
  EXPECT_STREQ(reg_name(Reg::r12, Width::b32), "r12d");
  EXPECT_STREQ(reg_name(Reg::r15, Width::b16), "r15w");
  // Encoding order, as the hardware numbers them.
  EXPECT_EQ(static_cast<int>(Reg::rsp), 4);
  EXPECT_EQ(static_cast<int>(Reg::r8), 8);
}

TEST(Ir, OpNames) {
  EXPECT_STREQ(op_name(Op::mov), "mov");
  EXPECT_STREQ(op_name(Op::xor_), "xor");
  EXPECT_STREQ(op_name(Op::rep_movsb), "rep movsb");
  EXPECT_STREQ(op_name(Op::syscall), "syscall");
}

// A program with an entry block "start" (labeled _start), ready for more.
struct Prog {
  Program p;
  Builder b{p};
  Prog() {
    p.entry = b.symbol("_start");
    b.block(p.entry, "start", "", -1, "", "");
  }
  // finish()'s message, or "finished". A block that may run past its end
  // gets a ret first, unless a test checks that rule (end_blocks = false).
  bool end_blocks = true;
  std::string finish() {
    if (end_blocks)
      for (Block& blk : p.blocks) {
        const Instr* last = blk.lines.empty() ? nullptr : std::get_if<Instr>(&blk.lines.back());
        if (blk.falls_into.id < 0 && !(last && (last->op == Op::jmp || last->op == Op::ret)))
          blk.lines.push_back(Instr{Op::ret, {}});
      }
    try {
      b.finish();
    } catch (const IrError& e) {
      return e.what();
    }
    return "finished";
  }
  std::string name(Label l) const { return p.info(l).name; }
};

TEST(Ir, LabelsAreNamedWhereTheyArePlaced) {
  Prog t;
  Label s = t.b.symbol("response");
  Label d = t.b.bytes("reply", "hi", "c");
  Label accept = t.b.new_label("accept");
  Label retry = t.b.new_label("retry");
  Label again = t.b.new_label("again");
  Label again2 = t.b.new_label("again");
  Label again3 = t.b.new_label("again");
  Label unused = t.b.new_label("unused");
  Label start_ok = t.b.new_label("ok");
  t.b.label(start_ok);
  t.b.block(accept, "accept a connection", "", -1, "", "");
  t.b.label(retry);
  t.b.label(again);
  t.b.label(s);
  t.b.label(again2);
  t.b.label(again3);
  EXPECT_EQ(t.name(accept), "accept") << "until finish(), a label's name is its hint";
  ASSERT_EQ(t.finish(), "finished");
  EXPECT_TRUE(t.p.finished);
  EXPECT_EQ(t.name(accept), "accept") << "a block's label: its hint";
  EXPECT_EQ(t.name(retry), "accept.retry") << "a label line: scoped by its block";
  EXPECT_EQ(t.name(again), "accept.again");
  EXPECT_EQ(t.name(again2), "accept.again_2") << "a repeated hint, in order of placement";
  EXPECT_EQ(t.name(again3), "accept.again_3");
  EXPECT_EQ(t.name(start_ok), "_start.ok");
  EXPECT_EQ(t.name(s), "response") << "a symbol keeps its name wherever it is placed";
  EXPECT_EQ(t.name(d), "reply") << "so does a data item";
  EXPECT_EQ(t.name(unused), "unused") << "a label never placed nor used is fine";
  EXPECT_TRUE(t.p.info(retry).local);
  EXPECT_FALSE(t.p.info(s).local);
  EXPECT_FALSE(t.p.info(d).local);
  EXPECT_THROW(t.b.symbol("response"), std::logic_error);
}

// The names of block "b"'s labels, in a program whose block "a" has
// `a_labels` label lines before it.
std::vector<std::string> names_in_b(int a_labels) {
  Prog t;
  Label a = t.b.new_label("a"), b = t.b.new_label("b");
  t.b.block(a, "a", "", -1, "", "");
  for (int i = 0; i < a_labels; ++i) t.b.label(t.b.new_label("next"));
  t.b.block(b, "b", "", -1, "", "");
  Label x = t.b.new_label("next"), y = t.b.new_label("done");
  t.b.label(x);
  t.b.label(y);
  EXPECT_EQ(t.finish(), "finished");
  return {t.name(b), t.name(x), t.name(y)};
}

TEST(Ir, AChangeInOneBlockRenamesNothingInAnother) {
  std::vector<std::string> expected = {"b", "b.next", "b.done"};
  EXPECT_EQ(names_in_b(0), expected);
  EXPECT_EQ(names_in_b(3), expected);
}

TEST(Ir, FinishIsOnceAndLast) {
  Prog t;
  ASSERT_EQ(t.finish(), "finished");
  EXPECT_THROW(t.b.finish(), std::logic_error);
  EXPECT_THROW(t.b.emit(Op::ret, {}), std::logic_error);
  EXPECT_THROW(t.b.new_label("late"), std::logic_error);
}

// (a) Every label an instruction uses is placed.
TEST(IrCheck, AJumpToALabelNeverPlaced) {
  Prog t;
  Label retry = t.b.new_label("retry");
  t.b.block(t.b.new_label("respond"), "answer", "", -1, "", "");
  t.b.emit(Op::jmp, {LabelOp{retry}});
  EXPECT_EQ(t.finish(), "block \"answer\": jmp retry: 'retry' is a label never placed");
}

TEST(IrCheck, AnAddressOfALabelNeverPlaced) {
  Prog t;
  Label buf = t.b.new_label("buf");
  t.b.emit(Op::lea, {r64(Reg::rsi), rip(buf)});
  EXPECT_EQ(t.finish(), "block \"start\": lea rsi, [rel buf]: 'buf' is a label never placed");
}

TEST(IrCheck, AnAddressImmediateOfALabelNeverPlaced) {
  Prog t;
  Label buf = t.b.new_label("buf");
  t.b.emit(Op::mov, {r32(Reg::rsi), AddrOp{buf}});
  EXPECT_EQ(t.finish(), "block \"start\": mov esi, buf: 'buf' is a label never placed");
}

TEST(IrCheck, AnAddressImmediateIsLoadedWithMovR32Only) {
  Prog t;
  Label buf = t.b.symbol("buf");
  for (std::vector<Operand> ops : {std::vector<Operand>{r64(Reg::rsi), AddrOp{buf}},
                                   std::vector<Operand>{mem32(Reg::rsi), AddrOp{buf}},
                                   std::vector<Operand>{AddrOp{buf}, r32(Reg::rsi)}}) {
    try {
      t.b.emit(Op::mov, ops);
      ADD_FAILURE() << "accepted";
    } catch (const std::logic_error& e) {
      EXPECT_STREQ(e.what(), "a label's address is an immediate of mov r32 only, in block \"start\"");
    }
  }
  EXPECT_THROW(t.b.emit(Op::cmp, {r32(Reg::rsi), AddrOp{buf}}), std::logic_error);
}

TEST(IrCheck, TheEntryIsAPlacedSymbol) {
  Program p;
  Builder b(p);
  p.entry = b.symbol("_start");
  b.block(b.new_label("main"), "main", "", -1, "", "");
  try {
    b.finish();
    FAIL();
  } catch (const IrError& e) {
    EXPECT_STREQ(e.what(), "the entry symbol '_start' is a label never placed");
  }
  Program q;
  Builder c(q);
  c.block(c.new_label("main"), "main", "", -1, "", "");
  EXPECT_THROW(c.finish(), IrError) << "no entry at all";
}

// (b) No label is placed twice.
TEST(IrCheck, ALabelPlacedTwice) {
  {
    Prog t;
    Label l = t.b.new_label("loop");
    t.b.block(l, "first", "", -1, "", "");
    t.b.block(l, "second", "", -1, "", "");
    EXPECT_EQ(t.finish(), "label 'loop' is placed twice: block \"first\" and block \"second\"");
  }
  {
    Prog t;
    Label l = t.b.new_label("loop");
    t.b.block(l, "first", "", -1, "", "");
    t.b.note("a note");
    t.b.label(l);
    EXPECT_EQ(t.finish(), "label 'loop' is placed twice: block \"first\" and block \"first\", line 2");
  }
  {
    Prog t;
    Label l = t.b.new_label("loop");
    t.b.label(l);
    t.b.label(l);
    EXPECT_EQ(t.finish(), "label 'loop' is placed twice: block \"start\", line 1 and block \"start\", line 2");
  }
  {
    Prog t;
    Label d = t.b.bytes("msg", "hi", "c");
    t.b.label(d);
    EXPECT_EQ(t.finish(), "label 'msg' is placed twice: block \"start\", line 1 and data item 'msg'");
  }
}

// (c) Every instruction has a shape it takes.
std::string shape_error(Op op, std::vector<Operand> ops) {
  Prog t;
  t.b.emit(op, std::move(ops));
  return t.finish();
}

TEST(IrCheck, NoTwoMemoryOperands) {
  Prog t;
  t.b.block(t.b.new_label("read"), "read the request", "", -1, "", "");
  t.b.emit(Op::mov, {mem64(Reg::rax), mem64(Reg::rbx)});
  EXPECT_EQ(t.finish(), "block \"read the request\": mov qword [rax], qword [rbx]: mov takes no two memory operands");
  EXPECT_EQ(shape_error(Op::cmp, {mem8(Reg::rsi), mem8(Reg::rdi, 1)}),
            "block \"start\": cmp byte [rsi], byte [rdi+1]: cmp takes no two memory operands");
}

TEST(IrCheck, OperandsOfOneWidth) {
  EXPECT_EQ(shape_error(Op::mov, {r64(Reg::rax), r32(Reg::rcx)}),
            "block \"start\": mov rax, ecx: mov takes operands of one width");
  EXPECT_EQ(shape_error(Op::add, {mem32(Reg::rsp, 8), r64(Reg::rcx)}),
            "block \"start\": add dword [rsp+8], rcx: add takes operands of one width");
  EXPECT_EQ(shape_error(Op::imul, {r64(Reg::rax), r32(Reg::rcx), imm(10)}),
            "block \"start\": imul rax, ecx, 10: imul takes operands of one width");
}

TEST(IrCheck, MemoryNeedsAWidthExceptForLea) {
  EXPECT_EQ(shape_error(Op::inc, {mem(Width::none, Reg::rax)}),
            "block \"start\": inc [rax]: inc needs a width on its memory operand");
  EXPECT_EQ(shape_error(Op::mov, {r64(Reg::rax), mem(Width::none, Reg::rbx)}),
            "block \"start\": mov rax, [rbx]: mov needs a width on its memory operand");
  Prog t;  // Builder::emit drops the width a helper's field operand brings to lea
  t.b.emit(Op::lea, {r64(Reg::rax), mem64(Reg::rbx, 8)});
  EXPECT_EQ(std::get<MemOp>(std::get<Instr>(t.p.blocks[0].lines[0]).operands[1]).width, Width::none);
  t.p.blocks[0].lines.push_back(Instr{Op::lea, {r64(Reg::rax), mem64(Reg::rbx, 8)}});
  EXPECT_EQ(t.finish(), "block \"start\": lea rax, qword [rbx+8]: lea takes a memory operand without a width");
}

TEST(IrCheck, OperandKindsComeFromTheTable) {
  EXPECT_EQ(shape_error(Op::push, {r32(Reg::rbx)}), "block \"start\": push ebx: push takes r64");
  EXPECT_EQ(shape_error(Op::lea, {r32(Reg::rax), mem(Width::none, Reg::rbx)}),
            "block \"start\": lea eax, [rbx]: lea takes r64, m");
  EXPECT_EQ(shape_error(Op::movzx, {r16(Reg::rax), mem8(Reg::rbx)}),
            "block \"start\": movzx ax, byte [rbx]: movzx takes r32|r64, r8|r16|m8|m16");
  EXPECT_EQ(shape_error(Op::shl, {r64(Reg::rax), r8(Reg::rcx)}),
            "block \"start\": shl rax, cl: shl takes r|m, imm");
  EXPECT_EQ(shape_error(Op::mov, {imm(1), r64(Reg::rax)}),
            "block \"start\": mov 1, rax: mov takes r, r or r, m or m, r or r, imm or m, imm");
  EXPECT_EQ(shape_error(Op::imul, {r8(Reg::rax), r8(Reg::rcx)}),
            "block \"start\": imul al, cl: imul takes r16|r32|r64, r16|r32|r64|m16|m32|m64 "
            "or r16|r32|r64, r16|r32|r64|m16|m32|m64, imm");
  EXPECT_EQ(shape_error(Op::jmp, {r64(Reg::rax)}), "block \"start\": jmp rax: jmp takes label");
  EXPECT_EQ(shape_error(Op::ret, {imm(8)}), "block \"start\": ret 8: ret takes no operands");
  EXPECT_EQ(shape_error(Op::div, {}), "block \"start\": div: div takes r|m");
}

TEST(IrCheck, MemoryOperandsThatCannotBeEncoded) {
  Prog t;
  Label d = t.b.bss("buf", 8, "c");
  MemOp m = rip(d, Width::b8);
  m.has_index = true;
  t.b.emit(Op::mov, {r8(Reg::rax), m});
  EXPECT_EQ(t.finish(), "block \"start\": mov al, byte [rel buf+rax]: a rip-relative operand has no index");
  EXPECT_EQ(shape_error(Op::mov, {r8(Reg::rax), mem_index(Width::b8, Reg::rbx, Reg::rsp)}),
            "block \"start\": mov al, byte [rbx+rsp]: rsp cannot be an index");
}

TEST(IrCheck, ImmediatesFitTheirEncoding) {
  EXPECT_EQ(shape_error(Op::add, {r64(Reg::rax), imm(0x80000000LL)}),
            "block \"start\": add rax, 0x80000000: the immediate does not fit a sign-extended imm32");
  EXPECT_EQ(shape_error(Op::cmp, {mem64(Reg::rax), imm(0xffffffffLL)}),
            "block \"start\": cmp qword [rax], 0xffffffff: the immediate does not fit a sign-extended imm32");
  EXPECT_EQ(shape_error(Op::mov, {mem8(Reg::rax), imm(256)}),
            "block \"start\": mov byte [rax], 256: the immediate does not fit an imm8");
  EXPECT_EQ(shape_error(Op::cmp, {r16(Reg::rax), imm(-32769)}),
            "block \"start\": cmp ax, -0x8001: the immediate does not fit an imm16");
  EXPECT_EQ(shape_error(Op::shl, {r64(Reg::rax), imm(256)}),
            "block \"start\": shl rax, 256: the immediate does not fit an imm8 shift count");
  EXPECT_EQ(shape_error(Op::imul, {r64(Reg::rax), r64(Reg::rax), imm(1LL << 31)}),
            "block \"start\": imul rax, rax, 0x80000000: the immediate does not fit a sign-extended imm32");
  // Each at the edge of its encoding, so accepted.
  EXPECT_EQ(shape_error(Op::add, {r64(Reg::rax), imm(INT32_MIN)}), "finished");
  EXPECT_EQ(shape_error(Op::mov, {r32(Reg::rax), imm(0xffffffffLL)}), "finished") << "mov r32 zero-extends";
  EXPECT_EQ(shape_error(Op::movabs, {r64(Reg::rax), imm(INT64_MIN)}), "finished");
  EXPECT_EQ(shape_error(Op::cmp, {mem8(Reg::rsi), imm(-128)}), "finished");
  EXPECT_EQ(shape_error(Op::cmp, {mem8(Reg::rsi), imm(255)}), "finished");
}

// Every form the lowering emits (one of each), so that finish() accepts it.
TEST(IrCheck, TheFormsTheLoweringUses) {
  Prog t;
  Label l = t.b.new_label("l");
  Label v = t.b.bss("v", 8, "c");
  auto& b = t.b;
  b.label(l);
  b.emit(Op::mov, {r64(Reg::rdi), r64(Reg::r12)});
  b.emit(Op::mov, {r32(Reg::rax), mem32(Reg::rbx, 4)});
  b.emit(Op::mov, {rip(v, Width::b64), r64(Reg::rax)});
  b.emit(Op::mov, {mem8(Reg::rdi), chr('\n')});
  b.emit(Op::mov, {rip(v, Width::b32), imm(0)});
  b.emit(Op::mov, {r64(Reg::rax), imm(-4)});
  b.mov_imm(Reg::rax, 0x123456789LL);
  b.emit(Op::movzx, {r32(Reg::rax), mem16(Reg::r8, 2)});
  b.emit(Op::movzx, {r32(Reg::rax), mem_index(Width::b8, Reg::rsi, Reg::rcx)});
  b.emit(Op::lea, {r64(Reg::rsi), rip(v)});
  b.emit(Op::lea, {r64(Reg::rsi), mem(Width::none, Reg::rsi, 16)});
  for (Op op : {Op::add, Op::sub, Op::and_, Op::or_, Op::xor_, Op::cmp, Op::test}) {
    b.emit(op, {r64(Reg::rax), r64(Reg::rcx)});
    b.emit(op, {r32(Reg::rax), mem32(Reg::rcx)});
    b.emit(op, {mem64(Reg::rcx), r64(Reg::rax)});
    b.emit(op, {r64(Reg::rsp), imm(32)});
    b.emit(op, {rip(v, Width::b32), imm(1)});
    b.emit(op, {mem_index(Width::b8, Reg::r8, Reg::rax), imm(0x80)});
  }
  for (Op op : {Op::inc, Op::dec, Op::neg, Op::div}) {
    b.emit(op, {r64(Reg::rcx)});
    b.emit(op, {rip(v, Width::b64)});
  }
  b.emit(Op::ror, {r16(Reg::rax), imm(8)});
  b.emit(Op::shl, {r64(Reg::rcx), imm(5)});
  b.emit(Op::shr, {mem32(Reg::rax), imm(2)});
  b.emit(Op::imul, {r64(Reg::rcx), r64(Reg::rcx), imm(12)});
  b.emit(Op::imul, {r64(Reg::rcx), mem64(Reg::rsi), imm(1000)});
  b.emit(Op::imul, {r64(Reg::rax), r64(Reg::rcx)});
  b.emit(Op::push, {r64(Reg::rbx)});
  b.emit(Op::pop, {r64(Reg::rbx)});
  for (Op op : {Op::call, Op::jmp, Op::je, Op::jne, Op::jl, Op::jle, Op::jg, Op::jge, Op::jb, Op::jbe,
                Op::ja, Op::jae, Op::js, Op::jns, Op::jz, Op::jnz})
    b.emit(op, {LabelOp{l}});
  for (Op op : {Op::ret, Op::syscall, Op::rep_movsb, Op::repe_cmpsb}) b.emit(op, {});
  b.zero(Reg::rdx);
  b.syscall(60, "exit");
  EXPECT_EQ(t.finish(), "finished");
}

// (d) Final names are unique and are no assembler's keyword.
TEST(IrCheck, TwoLabelsWithOneName) {
  {
    Prog t;
    t.b.block(t.b.new_label("path"), "the methods of /", "", -1, "", "");
    t.b.block(t.b.new_label("path"), "the methods of /a", "", -1, "", "");
    EXPECT_EQ(t.finish(), "the name 'path' is given twice: block \"the methods of /\" and block \"the methods of /a\"");
  }
  {
    Prog t;
    t.b.bytes("path_0", "/", "c");
    t.b.block(t.b.new_label("path_0"), "the methods of /", "", -1, "", "");
    EXPECT_EQ(t.finish(), "the name 'path_0' is given twice: block \"the methods of /\" and data item 'path_0'");
  }
  {
    Prog t;
    t.b.label(t.b.new_label("ok"));
    t.b.label(t.b.new_label("ok"));
    t.b.label(t.b.new_label("ok_2"));
    EXPECT_EQ(t.finish(), "the name '_start.ok_2' is given twice: block \"start\", line 2 and block \"start\", line 3");
  }
}

TEST(IrCheck, NoBlockOrDataIsNamedAfterAKeyword) {
  {
    Prog t;
    t.b.block(t.b.new_label("wait"), "wait for the workers", "", -1, "", "");
    EXPECT_EQ(t.finish(), "block \"wait for the workers\": the name 'wait' is an assembler reserved word");
  }
  {
    Prog t;
    t.b.bss("byte", 1, "c");
    EXPECT_EQ(t.finish(), "data item 'byte': the name 'byte' is an assembler reserved word");
  }
  {
    Prog t;
    t.b.bss("R12D", 4, "c");
    EXPECT_EQ(t.finish(), "data item 'R12D': the name 'R12D' is an assembler reserved word");
  }
  for (const char* word : {"rax", "al", "r15w", "mov", "movsb", "xor", "jae", "syscall", "times", "rel"}) {
    Prog t;
    t.b.bss(word, 1, "c");
    EXPECT_NE(t.finish(), "finished") << word;
  }
  Prog scoped;
  scoped.b.label(scoped.b.new_label("loop"));
  EXPECT_EQ(scoped.finish(), "finished") << "_start.loop is no keyword";
}

TEST(IrCheck, NamesAreIdentifiers) {
  Prog t;
  t.b.label(t.b.new_label("not-host"));
  EXPECT_EQ(t.finish(),
            "block \"start\", line 1: the label 'not-host' is not a name (letters, digits, '_', not first a digit)");
}

TEST(IrCheck, ConstantsShareTheNamesOfLabels) {
  {
    Prog t;
    t.b.constant("conn_fd", 0, "the socket");
    t.b.bss("conn_fd", 4, "c");
    EXPECT_EQ(t.finish(), "the name 'conn_fd' is given twice: data item 'conn_fd' and constant 'conn_fd'");
  }
  {
    Prog t;
    t.b.constant("rel", 0, "c");
    EXPECT_EQ(t.finish(), "constant 'rel': the name 'rel' is an assembler reserved word");
  }
}

// A record field named in the listing is the displacement the IR holds.
TEST(IrCheck, NamedDisplacementsAgreeWithTheirConstant) {
  auto named = [](int32_t disp, const std::string& name) {
    Prog t;
    t.b.constant("conn_len", 16, "bytes in the buffer");
    t.b.constant("conn_iov", 24, "struct iovec[3]");
    MemOp m = mem32(Reg::rbx, disp);
    m.disp_name = name;
    t.b.emit(Op::mov, {r32(Reg::rax), m});
    return t.finish();
  };
  EXPECT_EQ(named(16, "conn_len"), "finished");
  EXPECT_EQ(named(40, "conn_iov+16"), "finished");
  EXPECT_EQ(named(20, "conn_len"), "block \"start\": mov eax, dword [rbx+conn_len]: conn_len is 16, not the displacement 20");
  EXPECT_EQ(named(24, "conn_iov+16"),
            "block \"start\": mov eax, dword [rbx+conn_iov+16]: conn_iov+16 is 40, not the displacement 24");
  EXPECT_EQ(named(8, "conn_fd"), "block \"start\": mov eax, dword [rbx+conn_fd]: 'conn_fd' is no constant");
  EXPECT_EQ(named(8, "conn_len*2"), "block \"start\": mov eax, dword [rbx+conn_len*2]: 'conn_len*2' is no constant");
}

TEST(IrCheck, ABlockFallsIntoTheNextOne) {
  Label a, b;
  {
    Prog t;
    a = t.b.new_label("accept");
    b = t.b.new_label("serve");
    t.b.falls_into(a);
    t.b.block(a, "accept a connection", "", -1, "", "");
    t.b.falls_into(b);
    t.b.block(b, "serve it", "", -1, "", "");
    t.b.emit(Op::ret, {});
    EXPECT_EQ(t.finish(), "finished");
  }
  {
    Prog t;
    a = t.b.new_label("accept");
    b = t.b.new_label("serve");
    t.b.falls_into(b);
    t.b.block(a, "accept a connection", "", -1, "", "");
    t.b.block(b, "serve it", "", -1, "", "");
    EXPECT_EQ(t.finish(), "block \"start\": falls into 'serve', but the next block is \"accept a connection\"");
  }
  {
    Prog t;
    a = t.b.new_label("accept");
    t.b.block(a, "accept a connection", "", -1, "", "");
    t.b.falls_into(a);
    EXPECT_EQ(t.finish(), "block \"accept a connection\": falls into 'accept', but it is the last block");
  }
}

TEST(IrCheck, ABlockEndsOrSaysWhereItFalls) {
  auto ended_by = [](auto&& end) {
    Prog t;
    t.end_blocks = false;
    end(t.b);
    return t.finish();
  };
  EXPECT_EQ(ended_by([](Builder& b) { b.emit(Op::ret, {}); }), "finished");
  EXPECT_EQ(ended_by([](Builder& b) { b.syscall(231, "exit_group"); }), "finished");
  EXPECT_EQ(ended_by([](Builder& b) { b.syscall(15, "rt_sigreturn"); }), "finished");
  EXPECT_EQ(ended_by([](Builder& b) {
              Label l = b.new_label("again");
              b.label(l);
              b.emit(Op::jmp, {LabelOp{l}});
            }),
            "finished");
  const std::string runs_on = "block \"start\": it may run past its end, but it falls into no block";
  EXPECT_EQ(ended_by([](Builder&) {}), runs_on);
  EXPECT_EQ(ended_by([](Builder& b) { b.syscall(1, "write"); }), runs_on) << "write returns";
  EXPECT_EQ(ended_by([](Builder& b) {
              Label l = b.new_label("out");
              b.emit(Op::je, {LabelOp{l}});
              b.emit(Op::ret, {});
              b.label(l);
            }),
            runs_on)
      << "a label at the end is reached and runs on";
  EXPECT_EQ(ended_by([](Builder& b) { b.emit(Op::call, {LabelOp{b.program().entry}}); }), runs_on);
}

// (e) Data fits its declared widths.
TEST(IrCheck, FieldsAndRowsFitTheirWidth) {
  {
    Prog t;
    t.b.data("addr", Section::rodata, {Fields{{{2, 2, "sin_family"}, {2, 0x10000, "sin_port"}}}}, "c");
    EXPECT_EQ(t.finish(), "data item 'addr': field 'sin_port': 65536 does not fit 2 bytes");
  }
  {
    Prog t;
    t.b.data("table", Section::rodata, {Ints{3, {1}, "row 0"}}, "c");
    EXPECT_EQ(t.finish(), "data item 'table': row \"row 0\": width 3 is not 1, 2, 4 or 8 bytes");
  }
}

// The instruction mov_imm chose for `value`.
Instr mov_imm(int64_t value) {
  Program p;
  Builder b(p);
  b.block(b.new_label("t"), "t", "", -1, "", "");
  b.mov_imm(Reg::rdx, value);
  return std::get<Instr>(p.blocks[0].lines[0]);
}

TEST(Ir, MovImmChoosesTheShortestExactEncoding) {
  Instr small = mov_imm(16);
  EXPECT_EQ(small.op, Op::mov);
  EXPECT_EQ(std::get<RegOp>(small.operands[0]), r32(Reg::rdx));  // zero-extends
  Instr zero = mov_imm(0);
  EXPECT_EQ(zero.op, Op::mov);  // not xor: mov_imm never touches the flags
  Instr u32 = mov_imm(0xffffffffLL);
  EXPECT_EQ(std::get<RegOp>(u32.operands[0]), r32(Reg::rdx));
  Instr neg = mov_imm(-4);
  EXPECT_EQ(neg.op, Op::mov);
  EXPECT_EQ(std::get<RegOp>(neg.operands[0]), r64(Reg::rdx));  // sign-extended imm32
  Instr big = mov_imm(0x123456789LL);
  EXPECT_EQ(big.op, Op::movabs);
}

TEST(Ir, EveryMovOfAnImmediateIntoA64BitRegisterIsCanonical) {
  Program p;
  Builder b(p);
  b.block(b.new_label("t"), "t", "", -1, "", "");
  b.emit(Op::mov, {r64(Reg::rcx), imm(0)}, "c");
  b.emit(Op::mov, {r64(Reg::rdx), dec(5000)});
  Instr ins = std::get<Instr>(p.blocks[0].lines[0]);
  EXPECT_EQ(std::get<RegOp>(ins.operands[0]), r32(Reg::rcx)) << "NASM would shrink mov rcx, 0; GAS would not";
  EXPECT_EQ(ins.comment, "c");
  Instr ms = std::get<Instr>(p.blocks[0].lines[1]);
  EXPECT_EQ(ms.operands[1], Operand(dec(5000))) << "the display style survives";
}

TEST(Ir, BlocksCarryTheirSyscall) {
  Program p;
  Builder b(p);
  b.block(b.new_label("bind"), "bind the address", "bind", 49, "bind(fd, &a, 16)", "why");
  b.syscall(49, "bind");
  ASSERT_EQ(p.blocks.size(), 1u);
  EXPECT_EQ(p.blocks[0].syscall, "bind");
  EXPECT_EQ(p.blocks[0].syscall_nr, 49);
  ASSERT_EQ(p.blocks[0].lines.size(), 2u);
  EXPECT_EQ(std::get<Instr>(p.blocks[0].lines[0]).operands[1], Operand(imm(49)));
  EXPECT_EQ(std::get<Instr>(p.blocks[0].lines[1]).op, Op::syscall);
}

// Builder::variables: the small .bss items as one block from a base register.
TEST(Ir, VariablesArePackedBehindABaseRegister) {
  Prog t;
  Label vars = t.b.variables(Reg::r15);
  Label flag = t.b.bss("flag", 4, "a flag", 4);
  Label count = t.b.bss("count", 8, "a count\nof things");
  Label unused = t.b.bss("unused", 8, "never read");
  Label big = t.b.bss("big", 16, "a struct");
  t.b.emit(Op::mov, {r32(Reg::r15), AddrOp{vars, Builder::kVarsBias}});
  t.b.emit(Op::cmp, {rip(flag, Width::b32), imm(0)});
  t.b.emit(Op::mov, {r64(Reg::rax), rip(count, Width::b64)});
  t.b.emit(Op::inc, {rip(count, Width::b64)});
  MemOp second = rip(count, Width::b32);
  second.disp = 4;
  t.b.emit(Op::mov, {r32(Reg::rax), second});
  t.b.emit(Op::mov, {r32(Reg::rsi), AddrOp{flag}});
  t.b.emit(Op::lea, {r64(Reg::rdi), rip(big)});
  ASSERT_EQ(t.finish(), "finished");
  std::vector<std::string> lines;
  for (const Line& line : t.p.blocks[0].lines)
    lines.push_back(format_instr(t.p, nasm_dialect(), std::get<Instr>(line)));
  // count (8 bytes, the most used) first, at -128; then flag; big stays where it is.
  EXPECT_EQ(lines, (std::vector<std::string>{"mov     r15d, vars+128", "cmp     dword [r15+flag], 0",
                                             "mov     rax, qword [r15+count]", "inc     qword [r15+count]",
                                             "mov     eax, dword [r15+count+4]", "lea     rsi, [r15+flag]",
                                             "lea     rdi, [rel big]", "ret"}));
  ASSERT_EQ(t.p.constants.size(), 2u);
  EXPECT_EQ(t.p.constants[0].name, "count");
  EXPECT_EQ(t.p.constants[0].value, -128);
  EXPECT_EQ(t.p.constants[0].comment, "8 bytes: a count of things");
  EXPECT_EQ(t.p.constants[1].name, "flag");
  EXPECT_EQ(t.p.constants[1].value, -120);
  std::vector<std::string> data;
  for (const DataItem& d : t.p.data) data.push_back(t.name(d.label) + " " + std::to_string(d.size()));
  EXPECT_EQ(data, (std::vector<std::string>{"vars 12", "unused 8", "big 16"}));
  (void)unused;
}

TEST(Ir, VariablesPastTheSpanStayRipRelative) {
  Prog t;
  t.b.emit(Op::mov, {r32(Reg::r15), AddrOp{t.b.variables(Reg::r15), Builder::kVarsBias}});
  std::vector<Label> v;
  for (int i = 0; i < 40; ++i) {
    v.push_back(t.b.bss("v" + std::to_string(i), 8, "a variable"));
    for (int n = 0; n <= i % 5; ++n) t.b.emit(Op::inc, {rip(v.back(), Width::b64)});  // used 1 to 5 times
  }
  ASSERT_EQ(t.finish(), "finished");
  // 32 of 40 fit 256 bytes: the most used first, in the order they were made.
  ASSERT_EQ(t.p.constants.size(), 32u);
  EXPECT_EQ(t.p.constants[0].name, "v4");
  EXPECT_EQ(t.p.constants[0].value, -128);
  EXPECT_EQ(t.p.constants[31].value, 120);
  size_t rip_left = 0;
  for (const Line& line : t.p.blocks[0].lines)
    if (auto* ins = std::get_if<Instr>(&line))
      for (const Operand& o : ins->operands)
        if (auto* m = std::get_if<MemOp>(&o); m && m->rip) ++rip_left;
  EXPECT_EQ(rip_left, 8u);  // v0, v5, ... v35: used once each, the last to fit
}

TEST(Ir, DataSizes) {
  Program p;
  Builder b(p);
  b.data("d", Section::rodata,
         {Bytes{"abc"}, Incbin{"f.png", 100}, Zeros{5}, Ints{4, {1, 2}, ""},
          Fields{{{8, 0, "tv_sec"}, {2, 0, "sin_port"}}}},
         "c");
  EXPECT_EQ(p.data[0].size(), 3u + 100 + 5 + 8 + 10);
}

// The bytes of a data item made of Bytes, Fields, Ints and Zeros.
std::string bytes_of(const DataItem& item) {
  std::string out;
  auto put = [&](uint64_t v, int width) {
    for (int i = 0; i < width; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  for (const Piece& piece : item.pieces) {
    if (auto* b = std::get_if<Bytes>(&piece)) out += b->bytes;
    if (auto* z = std::get_if<Zeros>(&piece)) out.append(z->size, '\0');
    if (auto* n = std::get_if<Ints>(&piece))
      for (uint64_t v : n->values) put(v, n->width);
    if (auto* s = std::get_if<Fields>(&piece))
      for (const Field& f : s->fields) put(f.value, f.width);
  }
  return out;
}

// Lowering: every number is resolved at compile time.
// die names an errno by its text only if one of the start-up calls the spec
// makes can fail with it: a server without a log file has no ENOENT.
TEST(Lower, DieNamesOnlyTheErrnosOfItsCalls) {
  auto texts = [](const std::string& spec) {
    Program p = lower(parse_spec(spec, "s.json"));
    auto it = std::find_if(p.data.begin(), p.data.end(),
                           [&](const DataItem& d) { return p.info(d.label).name == "errno_texts"; });
    return it == p.data.end() ? std::string() : bytes_of(*it);
  };
  std::string plain = texts(R"({"response": {}})");
  EXPECT_NE(plain.find("\x62\x16" "Address already in use"), std::string::npos) << "EADDRINUSE (98), 22 bytes";
  EXPECT_EQ(plain.find("No such file or directory"), std::string::npos);
  EXPECT_EQ(plain.back(), '\0') << "the end of the table";
  std::string logged = texts(R"({"response": {}, "log": {"requests": true, "target": "/var/log/x.log"}})");
  EXPECT_EQ(texts(R"({"response": {}, "log": {"target": "/var/log/x.log"}})"), plain)
      << "a log target with nothing to log opens no file";
  EXPECT_NE(logged.find("\x02\x19" "No such file or directory"), std::string::npos) << "ENOENT (2), 25 bytes";
}

TEST(Lower, OptionsIsAnsweredOnEveryKnownPath) {
  Spec s = parse_spec(R"({"routes": [{"path": "/a"}, {"path": "/b", "method": "POST"},
                                     {"path": "/c", "method": "OPTIONS", "status": 200}]})", "s.json");
  ResponseTable t = build_response_table(s);
  auto options = [&](size_t path) { return t.responses[t.paths[path].by_method[int(Method::OPTIONS)]]; };
  EXPECT_EQ(options(0).status, 204);
  EXPECT_EQ(full_head(options(0), ConnHeader::keep_alive), "HTTP/1.1 204 No Content\r\nAllow: GET, HEAD, OPTIONS\r\n\r\n");
  EXPECT_EQ(full_head(options(1), ConnHeader::keep_alive), "HTTP/1.1 204 No Content\r\nAllow: POST, OPTIONS\r\n\r\n");
  EXPECT_EQ(options(2).status, 200) << "a route for OPTIONS answers itself";
  EXPECT_EQ(full_head(t.responses[t.paths[2].not_allowed], ConnHeader::keep_alive).find("Allow: OPTIONS\r\n") != std::string::npos, true);
  // Paths with the same methods share their 204 and their 405.
  Spec many = parse_spec(R"({"routes": [{"path": "/a"}, {"path": "/b"}, {"path": "/c"}]})", "s.json");
  ResponseTable m = build_response_table(many);
  EXPECT_EQ(m.paths[0].by_method[int(Method::OPTIONS)], m.paths[2].by_method[int(Method::OPTIONS)]);
  EXPECT_EQ(m.paths[0].not_allowed, m.paths[2].not_allowed);
}

TEST(Lower, SockaddrHasThePortInNetworkOrder) {
  Spec s = parse_spec(R"({"response": {}, "listen": {"address": "10.1.2.3", "port": 8080}})", "s.json");
  Program p = lower(s);
  auto it = std::find_if(p.data.begin(), p.data.end(),
                         [&](const DataItem& d) { return p.info(d.label).name == "listen_addr"; });
  ASSERT_NE(it, p.data.end());
  EXPECT_EQ(bytes_of(*it), std::string("\x02\x00\x1f\x90\x0a\x01\x02\x03\0\0\0\0\0\0\0\0", 16));
}

TEST(Lower, RawResponseLengthIsAnImmediate) {
  Spec s = parse_spec(R"({"raw_response": "HTTP/1.0 200 OK\r\n\r\n", "mode": "iterative"})", "s.json");
  Program p = lower(s);
  bool found = false;
  for (const Block& blk : p.blocks)
    for (const Line& l : blk.lines)
      if (auto* ins = std::get_if<Instr>(&l))
        if (ins->op == Op::mov && ins->operands[1] == Operand(imm(19)) &&
            ins->comment.find("compile time") != std::string::npos)
          found = true;
  EXPECT_TRUE(found);
}

// The response table: one 32-byte record per response, every field a constant.
TEST(Lower, ResponseTableRecords) {
  Spec s = parse_spec(R"({"routes": [{"path": "/", "body": "hi"}, {"path": "/n", "status": 204}]})", "s.json");
  Program p = lower(s);
  auto it = std::find_if(p.data.begin(), p.data.end(),
                         [&](const DataItem& d) { return p.info(d.label).name == "responses"; });
  ASSERT_NE(it, p.data.end());
  const Ints& first = std::get<Ints>(it->pieces[0]);
  EXPECT_EQ(first.width, 4);
  EXPECT_EQ(first.comment, "0: GET / (entity)");
  // An entity: its 200 status line; no body of its own (its representation
  // has it); status, flags (kind 1, identity alone: bit 16 + 2), its first
  // representation, the spare dword.
  std::string status = "HTTP/1.1 200 OK\r\n";
  EXPECT_EQ(first.values, (std::vector<uint64_t>{0, status.size(), 0, 0, 200, 1 | (4 << 16), 0, 0}));
  const Ints& second = std::get<Ints>(it->pieces[1]);
  EXPECT_EQ(second.comment, "1: GET /n (fixed)");
  // A fixed response: its whole head, without the Connection line, follows.
  std::string head = "HTTP/1.1 204 No Content\r\n";
  std::string fields = "ETag: \"8f434346648f6b96\"\r\nContent-Type: text/plain\r\nAccept-Ranges: bytes\r\n"
                       "Content-Length: 2\r\n";
  EXPECT_EQ(second.values[0], status.size() + fields.size());
  EXPECT_EQ(second.values[1], head.size());
  EXPECT_EQ(second.values[4], 204u);
  EXPECT_EQ(second.values[5], 0u) << "kind 0: fixed";
  auto reps = std::find_if(p.data.begin(), p.data.end(),
                           [&](const DataItem& d) { return p.info(d.label).name == "representations"; });
  ASSERT_NE(reps, p.data.end());
  const Ints& rep = std::get<Ints>(reps->pieces[0]);
  // Field lines at 17: 0 shared, 416 up to the ETag, 304 up to the type,
  // 206 up to the length, 200 all; body 0, 2 bytes; the ETag's value at 17 + 6.
  EXPECT_EQ(rep.values, (std::vector<uint64_t>{17, 0, 26, 26 + 26 + 22, fields.size(), 0, 2, 23}));
  EXPECT_EQ(it->size(), 32u * (2 + 1 + 1 + 1 + 7))
      << "the routes, the OPTIONS 204 and the 405 they share, not_found, and seven protocol errors";
}

TEST(Lower, ModesDiffer) {
  Program it = lower(parse_spec(R"({"response": {}, "mode": "iterative"})", "s.json"));
  Program fk = lower(parse_spec(R"({"response": {}, "mode": "fork"})", "s.json"));
  auto has = [](const Program& p, const std::string& sys) {
    return std::any_of(p.blocks.begin(), p.blocks.end(), [&](const Block& b) { return b.syscall == sys; });
  };
  EXPECT_FALSE(has(it, "fork"));
  EXPECT_TRUE(has(fk, "fork"));
  auto titles = [](const Program& p) {
    std::vector<std::string> t;
    for (const Block& b : p.blocks) t.push_back(b.title);
    return t;
  };
  auto ft = titles(fk);
  EXPECT_NE(std::find(ft.begin(), ft.end(), "reap children automatically"), ft.end());
  Program ep = lower(parse_spec(R"({"response": {}})", "s.json"));
  EXPECT_TRUE(has(ep, "epoll_pwait")) << "epoll is the default mode";
  EXPECT_FALSE(has(ep, "fork"));
  Program workers = lower(parse_spec(R"({"response": {}, "workers": 3})", "s.json"));
  EXPECT_TRUE(has(workers, "wait4")) << "a supervisor";
  EXPECT_TRUE(has(workers, "prctl"));
}

TEST(Lower, IsDeterministic) {
  Spec s = parse_spec(R"({"response": {}, "log": {"connections": true}})", "s.json");
  Program a = lower(s), b = lower(s);
  ASSERT_EQ(a.blocks.size(), b.blocks.size());
  for (size_t i = 0; i < a.labels.size(); ++i) EXPECT_EQ(a.labels[i].name, b.labels[i].name);
}

}  // namespace
}  // namespace asmsrv
