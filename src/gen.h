// The emit helpers every component of the lowering shares: one IR line each,
// as chibicc's codegen has one helper per instruction line.
#pragma once

#include <initializer_list>
#include <string>
#include <utility>

#include "abi.h"
#include "ir.h"
#include "spec.h"

namespace asmsrv {

/// Little-endian bytes of an integer, for data laid out in .rodata.
std::string le(uint64_t v, int n);

/// A component of the generated server: it owns its labels and data and
/// writes its blocks through these helpers.
class Gen {
 public:
  Gen(const Spec& spec, Builder& b) : spec_(spec), b_(b) {}

 protected:
  using Sys = linux::Sys;
  /// r = the address of l: `mov r32, label`, which zero-extends (see AddrOp).
  void lea(Reg r, Label l, std::string c = "") { b_.emit(Op::mov, {r32(r), AddrOp{l}}, std::move(c)); }
  void lea(Reg r, MemOp m, std::string c = "") { b_.emit(Op::lea, {r64(r), m}, std::move(c)); }
  void mov(Operand d, Operand s, std::string c = "") { b_.emit(Op::mov, {d, s}, std::move(c)); }
  void op(Op o, Operand d, Operand s, std::string c = "") { b_.emit(o, {d, s}, std::move(c)); }
  void op(Op o, Operand d, std::string c = "") { b_.emit(o, {d}, std::move(c)); }
  void plain(Op o, std::string c = "") { b_.emit(o, {}, std::move(c)); }
  void jmp(Op o, Label l, std::string c = "") { b_.emit(o, {LabelOp{l}}, std::move(c)); }
  void call(Label l, std::string c = "") { b_.emit(Op::call, {LabelOp{l}}, std::move(c)); }
  void ret(std::string c = "") { b_.emit(Op::ret, {}, std::move(c)); }
  void sys(const Sys& s) { b_.syscall(s.nr, s.name); }
  void set(Reg r, int64_t v, std::string c = "") { b_.mov_imm(r, v, std::move(c)); }
  void zero(Reg r, std::string c = "") { b_.zero(r, std::move(c)); }
  void label(Label l) { b_.label(l); }
  void note(std::string text) { b_.note(std::move(text)); }
  Label local(const std::string& hint) { return b_.new_label(hint); }
  /// The current block ends by falling into the block `next`, which must be
  /// the very next one (checked when the program is finished).
  void falls_into(Label next) { b_.falls_into(next); }
  /// A 32- or 64-bit variable in .bss: dword [rel label].
  static MemOp var32(Label l) { return rip(l, Width::b32); }
  static MemOp var64(Label l) { return rip(l, Width::b64); }
  /// Starts a block that makes the system call `s` (nullptr: none).
  void block(Label l, std::string title, const Sys* s, std::string c_equiv, std::string why) {
    b_.block(l, std::move(title), s ? s->name : "", s ? s->nr : -1, std::move(c_equiv),
             std::move(why));
  }

  /// Ends the current block by falling into a new one, started here.
  void next_block(Label l, std::string title, const Sys* s, std::string c_equiv, std::string why) {
    falls_into(l);
    block(l, std::move(title), s, std::move(c_equiv), std::move(why));
  }

  /// Compares the bytes of `text` at [base+disp] with immediates (case-folded
  /// when `fold`); jumps to `fail` on a difference. Uses eax when folding.
  void match_text(Reg base, int disp, const std::string& text, bool fold, Label fail);
  /// Inline: to `to` when rax is -e for one of `errnos`.
  void jmp_on_errno(std::initializer_list<int> errnos, Label to) {
    for (int e : errnos) {
      b_.emit(Op::cmp, {r64(Reg::rax), imm(-e)});
      b_.emit(Op::je, {LabelOp{to}});
    }
  }
  /// One answer to a failed call: when rax is -e for one of `errnos`,
  /// eax = `response` (`what` names it in the listing).
  struct ErrnoAnswer {
    const char* label;
    std::initializer_list<int> errnos;
    int response;
    const char* what;
  };
  /// Inline: eax = the response for the errno in rax (`otherwise` for any
  /// other), then a jump to `then`.
  void answer_errno(std::initializer_list<ErrnoAnswer> cases, int otherwise, const char* otherwise_what, Label then);
  /// Inline: the character in r's low 32 bits becomes its value as a hex
  /// digit (0-9, a-f, A-F), or a jump to `not_hex` (r is clobbered then).
  void hex_value(Reg r, Label not_hex);

 public:
  /// "ab" as a little-endian immediate of text.size() bytes, with each
  /// letter's 0x20 bit in the second value when folding case.
  static std::pair<int64_t, int64_t> text_imm(const std::string& text, bool fold);

 protected:
  const Spec& spec_;
  Builder& b_;
};

}  // namespace asmsrv
