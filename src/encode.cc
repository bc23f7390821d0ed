#include "encode.h"

#include <stdexcept>
#include <unordered_map>

namespace asmsrv {

namespace {

bool is_jump(Op op) {
  switch (op) {
    case Op::jmp: case Op::je: case Op::jne: case Op::jl: case Op::jle: case Op::jg:
    case Op::jge: case Op::jb: case Op::jbe: case Op::ja: case Op::jae: case Op::js:
    case Op::jns: case Op::jz: case Op::jnz:
      return true;
    default:
      return false;
  }
}

bool fits8(int64_t v) { return v >= -128 && v <= 127; }
bool high(Reg r) { return static_cast<int>(r) >= 8; }

// ModRM's memory part: SIB and displacement bytes (ModRM itself not counted).
int mem_bytes(const MemOp& m) {
  if (m.rip) return 4;
  int n = 0;
  bool rbp_like = m.base == Reg::rbp || m.base == Reg::r13;
  if (m.has_index || m.base == Reg::rsp || m.base == Reg::r12) n += 1;  // SIB
  if (m.disp == 0 && !rbp_like) return n;
  return n + (fits8(m.disp) ? 1 : 4);
}

// REX: a 64-bit operand size, an extended register anywhere, or spl..dil.
bool needs_rex(const Instr& ins, bool w_default_64) {
  for (const Operand& o : ins.operands) {
    if (auto* r = std::get_if<RegOp>(&o)) {
      if (high(r->reg)) return true;
      if (r->width == Width::b64 && !w_default_64) return true;
      if (r->width == Width::b8 && static_cast<int>(r->reg) >= 4) return true;
    }
    if (auto* m = std::get_if<MemOp>(&o)) {
      if (!m->rip && (high(m->base) || (m->has_index && high(m->index)))) return true;
      if (m->width == Width::b64 && !w_default_64 && ins.op != Op::movzx) return true;
    }
  }
  return false;
}

Width width_of(const Operand& o) {
  if (auto* r = std::get_if<RegOp>(&o)) return r->width;
  if (auto* m = std::get_if<MemOp>(&o)) return m->width;
  return Width::none;
}

int imm_bytes(Width w) { return w == Width::b8 ? 1 : w == Width::b16 ? 2 : 4; }

}  // namespace

int max_length(const Instr& ins) {
  const auto& ops = ins.operands;
  switch (ins.op) {
    case Op::ret: return 1;
    case Op::syscall: case Op::rep_movsb: case Op::repe_cmpsb: return 2;
    case Op::call: return 5;
    case Op::push: case Op::pop: return 1 + (high(std::get<RegOp>(ops[0]).reg) ? 1 : 0);
    case Op::movabs: return 10;
    default: break;
  }
  if (is_jump(ins.op)) {
    if (ins.jump == JumpSize::near_) return ins.op == Op::jmp ? 5 : 6;
    return 2;
  }
  int n = 0;
  Width w = ops.empty() ? Width::none : width_of(ops[0]);
  if (w == Width::b16 && ins.op != Op::movzx) n += 1;  // 66
  if (needs_rex(ins, false)) n += 1;
  int mem = 0;
  for (const Operand& o : ops)
    if (auto* m = std::get_if<MemOp>(&o)) mem = mem_bytes(*m);
  const ImmOp* imm = ops.size() >= 2 ? std::get_if<ImmOp>(&ops.back()) : nullptr;
  switch (ins.op) {
    case Op::mov:
      if (ops.size() == 2 && std::holds_alternative<AddrOp>(ops[1])) return n + 1 + 4;  // B8+r id
      if (imm && std::holds_alternative<RegOp>(ops[0])) return n + 1 + imm_bytes(w) + (w == Width::b64 ? 1 : 0);
      return n + 1 + 1 + mem + (imm ? imm_bytes(w) : 0);  // C6/C7 or 88-8B, ModRM
    case Op::movzx:
      return n + 2 + 1 + mem;  // 0F B6/B7, ModRM
    case Op::imul:
      if (imm) return n + 1 + 1 + mem + (fits8(imm->value) ? 1 : 4);  // 6B/69
      return n + 2 + 1 + mem;                                        // 0F AF
    case Op::shl: case Op::shr: case Op::ror:
      return n + 1 + 1 + mem + 1;  // C1 /x ib (D1 for 1 is shorter)
    case Op::test:
      return n + 1 + 1 + mem + (imm ? imm_bytes(w) : 0);  // F6/F7 or 84/85
    case Op::add: case Op::sub: case Op::xor_: case Op::and_: case Op::or_: case Op::cmp:
      if (imm) return n + 1 + 1 + mem + (w == Width::b8 || fits8(imm->value) ? 1 : imm_bytes(w));
      return n + 1 + 1 + mem;
    case Op::lea: case Op::inc: case Op::dec: case Op::neg: case Op::div:
      return n + 1 + 1 + mem;
    default:
      throw std::logic_error(std::string("no length for ") + op_name(ins.op));
  }
}

void size_jumps(Program& p) {
  // Every instruction and label in .text order.
  struct Item {
    Instr* ins;  // null for a label
    int label;
  };
  std::vector<Item> items;
  for (Block& b : p.blocks) {
    items.push_back({nullptr, b.label.id});
    for (Line& line : b.lines) {
      if (auto* ins = std::get_if<Instr>(&line)) items.push_back({ins, -1});
      if (auto* l = std::get_if<LabelDef>(&line)) items.push_back({nullptr, l->label.id});
    }
  }
  for (Item& it : items)
    if (it.ins && is_jump(it.ins->op)) it.ins->jump = JumpSize::short_;
  for (bool changed = true; changed;) {
    changed = false;
    std::unordered_map<int, int64_t> at;
    std::vector<int64_t> end(items.size());
    int64_t pc = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i].ins) pc += max_length(*items[i].ins);
      else at[items[i].label] = pc;
      end[i] = pc;
    }
    for (size_t i = 0; i < items.size(); ++i) {
      Instr* ins = items[i].ins;
      if (!ins || ins->jump != JumpSize::short_) continue;
      int64_t target = at.at(std::get<LabelOp>(ins->operands[0]).label.id);
      if (!fits8(target - end[i])) {
        ins->jump = JumpSize::near_;
        changed = true;
      }
    }
  }
}

}  // namespace asmsrv
