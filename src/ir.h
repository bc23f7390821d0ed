// The IR: what the generated server does, as blocks of x86-64 instructions.
//
// The IR is the single source of truth for the machine code. Every number in
// it (lengths, offsets, the byte-swapped port) is resolved here, at compile
// time, so a printer only spells it; the two dialects differ in spelling only.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace asmsrv {

/// General-purpose registers in hardware encoding order (as xbyak/asmjit).
enum class Reg : uint8_t {
  rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi,
  r8, r9, r10, r11, r12, r13, r14, r15,
};

/// Operand width in bits; also the size of a memory access.
enum class Width : uint8_t { none, b8, b16, b32, b64 };

/// The name of `reg` at `width` ("rax", "eax", "ax", "al", "r12d", ...).
const char* reg_name(Reg reg, Width width);

/// A label: an index into Program::labels.
struct Label {
  int id = -1;
  bool operator==(const Label&) const = default;
};

struct RegOp {
  Reg reg;
  Width width;
  bool operator==(const RegOp&) const = default;
};

/// How the listing spells an immediate; the value is the same in every style.
enum class ImmStyle : uint8_t {
  plain,  // decimal up to 4096, hex above (flags, addresses, masks)
  dec,    // always decimal: times in ms, counts, sizes
  chr,    // a character literal: '/', '\r' (printable ASCII and CR, LF, TAB only)
};

struct ImmOp {
  int64_t value;
  ImmStyle style = ImmStyle::plain;
  bool operator==(const ImmOp&) const = default;
};

/// A memory operand: [base + index + disp], or [rip + label] when `rip` is set.
struct MemOp {
  Width width = Width::none;  // access size; none for lea
  Reg base = Reg::rax;
  bool has_index = false;
  Reg index = Reg::rax;
  int32_t disp = 0;
  /// When set, the listing spells disp as this named constant (a record field,
  /// "conn_deadline", defined in Program::constants), maybe plus a number
  /// ("conn_iov+16"); disp stays the truth, and finish() checks they agree.
  std::string disp_name;
  bool rip = false;
  Label label;
  bool operator==(const MemOp&) const = default;
};

/// A jump or call target.
struct LabelOp {
  Label label;
  bool operator==(const LabelOp&) const = default;
};

/// The address of a label as a 32-bit immediate: `mov esi, label` (GAS: `OFFSET
/// label`). A server is linked static at a fixed address below 2 GiB (ld's
/// 0x400000, not position-independent), so five bytes load an address where
/// `lea rsi, [rel label]` takes seven.
struct AddrOp {
  Label label;
  int32_t addend = 0;  // label+addend
  bool operator==(const AddrOp&) const = default;
};

using Operand = std::variant<RegOp, ImmOp, MemOp, LabelOp, AddrOp>;

// Typed operand helpers: r64(Reg::rdi), imm(16), mem32(Reg::rsp, 8), rip(label).
inline RegOp r64(Reg r) { return {r, Width::b64}; }
inline RegOp r32(Reg r) { return {r, Width::b32}; }
inline RegOp r16(Reg r) { return {r, Width::b16}; }
inline RegOp r8(Reg r) { return {r, Width::b8}; }
inline ImmOp imm(int64_t v) { return {v}; }
/// An immediate printed in decimal: a time in ms, a count, a size.
inline ImmOp dec(int64_t v) { return {v, ImmStyle::dec}; }
/// An immediate printed as a character literal: chr('/').
inline ImmOp chr(char c) { return {static_cast<unsigned char>(c), ImmStyle::chr}; }
inline MemOp mem(Width w, Reg base, int32_t disp = 0) {
  MemOp m;
  m.width = w;
  m.base = base;
  m.disp = disp;
  return m;
}
inline MemOp mem8(Reg base, int32_t disp = 0) { return mem(Width::b8, base, disp); }
inline MemOp mem16(Reg base, int32_t disp = 0) { return mem(Width::b16, base, disp); }
inline MemOp mem32(Reg base, int32_t disp = 0) { return mem(Width::b32, base, disp); }
inline MemOp mem64(Reg base, int32_t disp = 0) { return mem(Width::b64, base, disp); }
/// [base + index], an indexed access of width w.
inline MemOp mem_index(Width w, Reg base, Reg index, int32_t disp = 0) {
  MemOp m = mem(w, base, disp);
  m.has_index = true;
  m.index = index;
  return m;
}
/// [rip + label]: the address of a data label (for lea), or an access of width w.
inline MemOp rip(Label l, Width w = Width::none) {
  MemOp m;
  m.width = w;
  m.rip = true;
  m.label = l;
  return m;
}

/// Every instruction asmsrv emits. One list generates the enum and the names.
#define ASMSRV_OPS(X)                                                        \
  X(mov) X(movabs) X(movzx) X(lea) X(add) X(sub) X(xor_, "xor") X(and_, "and") \
  X(or_, "or") X(cmp) X(test) X(inc) X(dec) X(neg) X(div) X(ror) X(shl)      \
  X(shr) X(push) X(pop) X(call) X(ret) X(jmp) X(je) X(jne) X(jl) X(jle)      \
  X(jg) X(jge) X(jb) X(jbe) X(ja) X(jae) X(js) X(jns) X(jz) X(jnz)          \
  X(syscall) X(imul)                                                         \
  X(rep_movsb, "rep movsb") X(repe_cmpsb, "repe cmpsb")

#define ASMSRV_OP_ENUM(name, ...) name,
enum class Op : uint8_t { ASMSRV_OPS(ASMSRV_OP_ENUM) };
#undef ASMSRV_OP_ENUM

/// The mnemonic of `op`, the same in NASM and GAS Intel syntax.
const char* op_name(Op op);

/// The encoding of a jmp or jcc, chosen by the IR (encode.h), not by the
/// assembler; `any` for every other instruction.
enum class JumpSize : uint8_t { any, short_, near_ };

struct Instr {
  Op op;
  std::vector<Operand> operands;
  std::string comment = {};  // may be left out: {Op::ret, {}}
  JumpSize jump = JumpSize::any;  // set by finish() for jumps
};

/// A label definition inside a block.
struct LabelDef {
  Label label;
};

/// A comment line inside a block (explains the next instructions).
struct Note {
  std::string text;
};

using Line = std::variant<Instr, LabelDef, Note>;

/// A named block: one step of the server, usually one system call.
struct Block {
  Label label;            // defined at the top of the block
  std::string title;      // "bind the listening socket"
  std::string syscall;    // "bind" (empty when the block makes none)
  int syscall_nr = -1;    // 49
  std::string c_equiv;    // "bind(listen_fd, &listen_addr, sizeof listen_addr)"
  std::string why;        // one or two sentences for the reader
  std::vector<Line> lines;
  Label falls_into;       // the block its end runs into (the next one); id -1: none
};

/// A piece of data: literal bytes, a file embedded by the assembler, or zeros.
struct Bytes {
  std::string bytes;
};
struct Incbin {
  std::string path;  // as the assembler will look it up (relative to -i/-I)
  uint64_t size;     // checked at compile time
};
struct Zeros {
  uint64_t size;
};
/// Little-endian integers of one width (1, 2, 4 or 8 bytes): a table row.
struct Ints {
  int width;
  std::vector<uint64_t> values;
  std::string comment;
};
/// One named field of a struct in data: 1, 2, 4 or 8 bytes, little-endian.
struct Field {
  int width;
  uint64_t value;
  std::string name;  // "tv_sec", "sin_port (8080, network order)"
};
/// A struct laid out field by field (timespec, sigaction, sockaddr_in): the
/// listing prints one field a line with its name, where Bytes would print the
/// same bytes as a row of numbers.
struct Fields {
  std::vector<Field> fields;
};
using Piece = std::variant<Bytes, Incbin, Zeros, Ints, Fields>;

enum class Section : uint8_t { rodata, data, bss };

struct DataItem {
  Label label;
  Section section;
  int align = 8;
  std::string comment;
  std::vector<Piece> pieces;
  uint64_t size() const;
};

/// A named assembly-time constant, printed once at the top of the listing
/// ("conn_deadline equ 32" / ".set conn_deadline, 32"), so that memory
/// operands can name record fields. Never used for label arithmetic.
struct Constant {
  std::string name;
  int64_t value;
  std::string comment;
};

/// A label's name is final once Builder::finish() has run: a block's label is
/// named its hint ("accept"), a label placed inside block B is "B.hint"
/// ("parse_request.not_host"), a symbol keeps its name. Before that, `name`
/// holds the hint, so that one block's labels never depend on another's.
struct LabelInfo {
  std::string name;
  bool local;  // code label: printed with the dialect's local prefix
};

/// The whole generated program.
struct Program {
  std::string name;                // server name, for the header
  std::string spec_file;           // spec file name, for the header
  std::vector<std::string> include_dirs;  // where incbin files live
  std::string notes;               // header text: the register map and such
  std::vector<LabelInfo> labels;   // indexed by Label::id
  Label entry;                     // _start
  std::vector<Block> blocks;       // in output order
  std::vector<DataItem> data;      // in output order within each section
  std::vector<Constant> constants; // named displacements, in definition order
  /// Set by Builder::finish(): the IR passed its checks and every label has its
  /// final name. print_program and explain_program refuse anything else.
  bool finished = false;

  const LabelInfo& info(Label l) const { return labels.at(l.id); }
};

/// A broken rule of the IR, found by Builder::finish(): always a bug in the
/// lowering, never in the user's spec. The message names the block (by its
/// title) and the instruction as the NASM listing spells it:
///   block "read the request": mov qword [rax], qword [rbx]: mov takes no two memory operands
class IrError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// Builds a Program. chibicc-style: one helper per instruction line.
class Builder {
 public:
  explicit Builder(Program& p) : p_(p) {}

  /// The program being built.
  Program& program() { return p_; }

  /// A new code label. Its final name comes from where it is placed (see
  /// LabelInfo), decided by finish(): `hint` for a block's label, "B.hint"
  /// inside block B, with "_2", "_3"... for a hint repeated in one block.
  Label new_label(const std::string& hint);
  /// A global (non-local) symbol, named exactly `name`.
  Label symbol(const std::string& name);

  /// Starts a new block; the following instructions go into it.
  Block& block(Label label, std::string title, std::string syscall, int syscall_nr,
               std::string c_equiv, std::string why);
  /// Defines `l` at this point of the current block.
  void label(Label l);
  /// A comment line in the current block.
  void note(std::string text);
  /// The current block ends by running into the block labeled `next`, which
  /// finish() checks is the very next block.
  void falls_into(Label next);

  /// An instruction in the current block; its operands are checked by finish().
  void emit(Op op, std::vector<Operand> ops, std::string comment = "");

  /// mov into a 64-bit register, choosing the shortest exact encoding:
  /// mov r32, imm32 (zero-extends) or mov r64, simm32 or movabs.
  void mov_imm(Reg dst, int64_t value, std::string comment = "");
  /// The same, keeping the immediate's display style: mov_imm(rdx, dec(1000)).
  void mov_imm(Reg dst, ImmOp value, std::string comment = "");
  /// xor r32, r32: dst = 0 (clobbers the flags).
  void zero(Reg dst, std::string comment = "");
  /// rax = syscall number, then `syscall`.
  void syscall(int nr, const std::string& name);

  /// Adds a data item and returns its label.
  Label data(const std::string& name, Section s, std::vector<Piece> pieces,
             std::string comment, int align = 8);
  Label bytes(const std::string& name, std::string bytes, std::string comment);
  Label bss(const std::string& name, uint64_t size, std::string comment,
            int align = 8);
  /// A named constant (a record field's offset) for memory operands to name
  /// in MemOp::disp_name.
  void constant(std::string name, int64_t value, std::string comment);

  /// Ends the program: checks it and gives every label its final name; the
  /// lowering calls it once, last. print_program and explain_program take
  /// only a finished program (std::logic_error otherwise). Throws IrError when
  ///  - a label that an instruction jumps to, calls or addresses (rip), or
  ///    the entry symbol, is not placed (a block's label, a label line, a
  ///    data item);
  ///  - a label is placed twice;
  ///  - two labels or constants end up with one name, or a block, data item
  ///    or constant is named after a register, a mnemonic or another
  ///    assembler keyword;
  ///  - a block that falls into another is not right before it, or a block
  ///    may run past its end (its last line is no jmp, ret or exit system
  ///    call) without saying which block it falls into;
  ///  - a memory operand's disp_name is not a constant (plus a number) whose
  ///    value is its disp;
  ///  - an instruction's operands have a shape it does not take (see
  ///    kShapes in ir.cc), or an immediate does not fit its encoding;
  ///  - a data field or table entry does not fit its width.
  void finish();

  /// The program's small variables, .bss items of at most 8 bytes, as one
  /// block (the label returned) addressed from `base`, which the lowering
  /// sets to the block's address + kVarsBias before any variable is used,
  /// and never changes: finish() lays out the most used variables that fit
  /// kVarsSpan bytes, each a constant of its own name (an offset from base,
  /// from -kVarsBias), and rewrites [rel v] into [base+v] and `mov r32, v`
  /// into `lea r64, [base+v]`. A byte of displacement where rip-relative
  /// addressing takes four. The others stay where they are.
  Label variables(Reg base);
  static constexpr int32_t kVarsBias = 128, kVarsSpan = 256;

 private:
  Program& p_;
  Block& cur();
  void check_open() const;
  void pack_variables();
  size_t cur_ = SIZE_MAX;  // index into p_.blocks
  Label vars_;
  Reg vars_base_ = Reg::rax;
};

}  // namespace asmsrv
