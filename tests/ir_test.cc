// The IR builder: labels, immediate encodings, blocks, data.
#include "ir.h"

#include <gtest/gtest.h>

#include "lower.h"
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

TEST(Ir, LabelsComeFromOneCounter) {
  Program p;
  Builder b(p);
  Label a = b.new_label("accept");
  Label s = b.symbol("response");
  Label c = b.new_label("accept");
  EXPECT_EQ(p.info(a).name, "accept_1");
  EXPECT_TRUE(p.info(a).local);
  EXPECT_EQ(p.info(s).name, "response");
  EXPECT_FALSE(p.info(s).local);
  EXPECT_EQ(p.info(c).name, "accept_2");
  EXPECT_THROW(b.symbol("response"), std::logic_error);
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
  Instr ins = std::get<Instr>(p.blocks[0].lines[0]);
  EXPECT_EQ(std::get<RegOp>(ins.operands[0]), r32(Reg::rcx)) << "NASM would shrink mov rcx, 0; GAS would not";
  EXPECT_EQ(ins.comment, "c");
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

TEST(Ir, DataSizes) {
  Program p;
  Builder b(p);
  b.data("d", Section::rodata, {Bytes{"abc"}, Incbin{"f.png", 100}, Zeros{5}}, "c");
  EXPECT_EQ(p.data[0].size(), 108u);
}

// Lowering: every number is resolved at compile time.
TEST(Lower, SockaddrHasThePortInNetworkOrder) {
  Spec s = parse_spec(R"({"response": {}, "listen": {"address": "10.1.2.3", "port": 8080}})", "s.json");
  Program p = lower(s);
  auto it = std::find_if(p.data.begin(), p.data.end(),
                         [&](const DataItem& d) { return p.info(d.label).name == "listen_addr"; });
  ASSERT_NE(it, p.data.end());
  EXPECT_EQ(std::get<Bytes>(it->pieces[0]).bytes,
            std::string("\x02\x00\x1f\x90\x0a\x01\x02\x03\0\0\0\0\0\0\0\0", 16));
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
  Spec s = parse_spec(R"({"routes": [{"path": "/", "body": "hi"}]})", "s.json");
  Program p = lower(s);
  auto it = std::find_if(p.data.begin(), p.data.end(),
                         [&](const DataItem& d) { return p.info(d.label).name == "responses"; });
  ASSERT_NE(it, p.data.end());
  const Ints& first = std::get<Ints>(it->pieces[0]);
  EXPECT_EQ(first.width, 4);
  EXPECT_EQ(first.comment, "0: GET /");
  std::string close = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n";
  std::string keep = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n";
  std::string keep10 = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n";
  EXPECT_EQ(first.values, (std::vector<uint64_t>{0, close.size(), keep.size(), keep10.size(), 0, 200, 2, 0}));
  EXPECT_EQ(it->size(), 32u * (1 + 1 + 1 + 6)) << "the route, its 405, not_found, and six protocol errors";
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
