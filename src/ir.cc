#include "ir.h"

#include <stdexcept>

namespace asmsrv {

namespace {

// Indexed by [width][reg]; Width::none has no names.
constexpr const char* kRegNames[5][16] = {
    {},
    {"al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil", "r8b", "r9b", "r10b",
     "r11b", "r12b", "r13b", "r14b", "r15b"},
    {"ax", "cx", "dx", "bx", "sp", "bp", "si", "di", "r8w", "r9w", "r10w",
     "r11w", "r12w", "r13w", "r14w", "r15w"},
    {"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "r8d", "r9d",
     "r10d", "r11d", "r12d", "r13d", "r14d", "r15d"},
    {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10",
     "r11", "r12", "r13", "r14", "r15"},
};

#define ASMSRV_OP_NAME_1(name) #name
#define ASMSRV_OP_NAME_2(name, text) text
#define ASMSRV_OP_PICK(_1, _2, F, ...) F
#define ASMSRV_OP_NAME(...) \
  ASMSRV_OP_PICK(__VA_ARGS__, ASMSRV_OP_NAME_2, ASMSRV_OP_NAME_1)(__VA_ARGS__),
constexpr const char* kOpNames[] = {ASMSRV_OPS(ASMSRV_OP_NAME)};
#undef ASMSRV_OP_NAME

}  // namespace

const char* reg_name(Reg reg, Width width) {
  if (width == Width::none) throw std::logic_error("register without a width");
  return kRegNames[static_cast<int>(width)][static_cast<int>(reg)];
}

const char* op_name(Op op) { return kOpNames[static_cast<int>(op)]; }

uint64_t DataItem::size() const {
  uint64_t n = 0;
  for (const Piece& piece : pieces) {
    if (auto* b = std::get_if<Bytes>(&piece)) n += b->bytes.size();
    if (auto* f = std::get_if<Incbin>(&piece)) n += f->size;
    if (auto* z = std::get_if<Zeros>(&piece)) n += z->size;
    if (auto* i = std::get_if<Ints>(&piece)) n += i->values.size() * static_cast<uint64_t>(i->width);
  }
  return n;
}

Label Builder::new_label(const std::string& hint) {
  p_.labels.push_back({hint + "_" + std::to_string(++counter_), true});
  return {static_cast<int>(p_.labels.size()) - 1};
}

Label Builder::symbol(const std::string& name) {
  for (size_t i = 0; i < p_.labels.size(); ++i)
    if (!p_.labels[i].local && p_.labels[i].name == name)
      throw std::logic_error("symbol defined twice: " + name);
  p_.labels.push_back({name, false});
  return {static_cast<int>(p_.labels.size()) - 1};
}

Block& Builder::block(Label label, std::string title, std::string syscall, int syscall_nr,
                      std::string c_equiv, std::string why) {
  Block b;
  b.label = label;
  b.title = std::move(title);
  b.syscall = std::move(syscall);
  b.syscall_nr = syscall_nr;
  b.c_equiv = std::move(c_equiv);
  b.why = std::move(why);
  p_.blocks.push_back(std::move(b));
  cur_ = p_.blocks.size() - 1;
  return p_.blocks.back();
}

Block& Builder::cur() {
  if (cur_ >= p_.blocks.size()) throw std::logic_error("no current block");
  return p_.blocks[cur_];
}

void Builder::label(Label l) { cur().lines.push_back(LabelDef{l}); }

void Builder::note(std::string text) { cur().lines.push_back(Note{std::move(text)}); }

void Builder::emit(Op op, std::vector<Operand> ops, std::string comment) {
  // mov r64, imm: NASM shrinks it to the 32-bit form where GAS does not, so the
  // IR always spells the encoding it wants (see mov_imm).
  if (op == Op::mov && ops.size() == 2 && std::holds_alternative<ImmOp>(ops[1])) {
    if (auto* r = std::get_if<RegOp>(&ops[0]); r && r->width == Width::b64) {
      mov_imm(r->reg, std::get<ImmOp>(ops[1]).value, std::move(comment));
      return;
    }
  }
  for (const Operand& o : ops) {
    const Label* l = nullptr;
    if (auto* m = std::get_if<MemOp>(&o); m && m->rip) l = &m->label;
    if (auto* t = std::get_if<LabelOp>(&o)) l = &t->label;
    if (l && (l->id < 0 || static_cast<size_t>(l->id) >= p_.labels.size()))
      throw std::logic_error("a label that was never made, used in block \"" + cur().title + "\"");
  }
  cur().lines.push_back(Instr{op, std::move(ops), std::move(comment)});
}

void Builder::mov_imm(Reg dst, int64_t value, std::string comment) {
  Instr ins{Op::mov, {r64(dst), imm(value)}, std::move(comment)};
  if (value >= 0 && value <= 0xffffffffLL)
    ins.operands[0] = r32(dst);  // zero-extends into the whole register
  else if (value < INT32_MIN || value > INT32_MAX)
    ins.op = Op::movabs;
  cur().lines.push_back(std::move(ins));
}

void Builder::zero(Reg dst, std::string comment) {
  emit(Op::xor_, {r32(dst), r32(dst)}, std::move(comment));
}

void Builder::syscall(int nr, const std::string& name) {
  mov_imm(Reg::rax, nr, "syscall number: " + name);
  emit(Op::syscall, {});
}

Label Builder::data(const std::string& name, Section s, std::vector<Piece> pieces,
                    std::string comment, int align) {
  DataItem d;
  d.label = symbol(name);
  d.section = s;
  d.align = align;
  d.comment = std::move(comment);
  d.pieces = std::move(pieces);
  p_.data.push_back(std::move(d));
  return p_.data.back().label;
}

Label Builder::bytes(const std::string& name, std::string bytes, std::string comment) {
  return data(name, Section::rodata, {Bytes{std::move(bytes)}}, std::move(comment), 8);
}

Label Builder::bss(const std::string& name, uint64_t size, std::string comment,
                   int align) {
  return data(name, Section::bss, {Zeros{size}}, std::move(comment), align);
}

}  // namespace asmsrv
