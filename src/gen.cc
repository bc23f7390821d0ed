// The emit helpers that are more than one line (gen.h).
#include "gen.h"

#include <vector>

#include <fmt/format.h>

namespace asmsrv {

std::pair<int64_t, int64_t> Gen::text_imm(const std::string& text, bool fold) {
  int64_t v = 0, mask = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    bool letter = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    if (fold && letter) {
      c |= 0x20;
      mask |= int64_t{0x20} << (8 * i);
    }
    v |= int64_t{c} << (8 * i);
  }
  return {v, mask};
}

void Gen::match_text(Reg base, int disp, const std::string& text, bool fold, Label fail) {
  size_t i = 0;
  while (i < text.size()) {
    size_t left = text.size() - i;
    // Whole dwords; the tail as an overlapping dword when the text has 4 bytes.
    size_t at = i, n = 4;
    if (left < 4) {
      if (text.size() >= 4) at = text.size() - 4;
      else n = left >= 2 ? 2 : 1;
    }
    std::string chunk = text.substr(at, n);
    auto [value, mask] = text_imm(chunk, fold);
    Width w = n == 4 ? Width::b32 : n == 2 ? Width::b16 : Width::b8;
    std::string what = fmt::format("\"{}\"", chunk);  // the printer escapes CR and LF in comments
    MemOp m = mem(w, base, disp + static_cast<int>(at));
    if (fold && mask) {
      if (n == 4) mov(r32(Reg::rax), m);
      else b_.emit(Op::movzx, {r32(Reg::rax), m});
      op(Op::or_, r32(Reg::rax), imm(mask), "to lower case");
      op(Op::cmp, r32(Reg::rax), imm(value), what);
    } else {
      op(Op::cmp, m, n == 1 ? chr(static_cast<char>(value)) : imm(value), what);
    }
    jmp(Op::jne, fail);
    i = at + n;
  }
}

void Gen::answer_errno(std::initializer_list<ErrnoAnswer> cases, int otherwise, const char* otherwise_what,
                       Label then) {
  std::vector<Label> at;
  for (const ErrnoAnswer& c : cases) {
    at.push_back(local(c.label));
    jmp_on_errno(c.errnos, at.back());
  }
  set(Reg::rax, otherwise, otherwise_what);
  jmp(Op::jmp, then);
  size_t i = 0;
  for (const ErrnoAnswer& c : cases) {
    label(at[i++]);
    set(Reg::rax, c.response, c.what);
    jmp(Op::jmp, then);
  }
}

void Gen::hex_value(Reg r, Label not_hex) {
  Label done = local("hex_done");
  op(Op::sub, r32(r), chr('0'));
  op(Op::cmp, r32(r), imm(9));
  jmp(Op::jbe, done, "0-9");
  op(Op::or_, r32(r), imm(0x20), "to lower case: 'A' - '0' becomes 'a' - '0'");
  op(Op::sub, r32(r), imm('a' - '0'));
  op(Op::cmp, r32(r), imm(5));
  jmp(Op::ja, not_hex, "not a hex digit");
  op(Op::add, r32(r), imm(10), "a-f, A-F");
  label(done);
}

}  // namespace asmsrv
