#include "ir.h"

#include "encode.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <iterator>
#include <map>
#include <span>
#include <unordered_map>
#include <unordered_set>

#include "printer.h"  // messages spell an instruction as the NASM listing does

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
constexpr size_t kOpCount = std::size(kOpNames);

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
    if (auto* s = std::get_if<Fields>(&piece))
      for (const Field& f : s->fields) n += static_cast<uint64_t>(f.width);
  }
  return n;
}

// --- Operand shapes ------------------------------------------------------------
//
// What each instruction accepts is data (as QBE's tables): a list of forms per
// Op, each a kind mask per operand. finish() matches every instruction against
// its forms; the first rule an instruction breaks becomes the message.

namespace {

// One bit per operand kind.
// The system calls that do not return (x86-64 Linux).
constexpr int kRtSigreturnNr = 15, kExitNr = 60, kExitGroupNr = 231;

constexpr uint16_t kR8 = 1 << 0, kR16 = 1 << 1, kR32 = 1 << 2, kR64 = 1 << 3;
constexpr uint16_t kM8 = 1 << 4, kM16 = 1 << 5, kM32 = 1 << 6, kM64 = 1 << 7;
constexpr uint16_t kMem = 1 << 8;  // memory without a width: what lea takes
constexpr uint16_t kImm = 1 << 9;
constexpr uint16_t kLab = 1 << 10;
constexpr uint16_t kR = kR8 | kR16 | kR32 | kR64;
constexpr uint16_t kM = kM8 | kM16 | kM32 | kM64;  // memory with a width
constexpr uint16_t kRM = kR | kM;
constexpr uint16_t kRw = kR16 | kR32 | kR64;  // no byte form (imul)
constexpr uint16_t kMw = kM16 | kM32 | kM64;

// How a form's immediate must fit.
enum class Fit : uint8_t {
  none,   // the form takes no immediate
  width,  // the first operand's width: imm8/16/32, a sign-extended imm32 for 64 bits
  count,  // a shift count: imm8
  any,    // movabs: all 64 bits
};

// One operand list an instruction accepts: a kind mask per operand, 0 past the end.
struct Form {
  uint16_t kinds[3] = {};
  bool same_width = false;  // its register and sized memory operands have one width
  Fit fit = Fit::none;
  size_t count() const { return kinds[0] == 0 ? 0 : kinds[1] == 0 ? 1 : kinds[2] == 0 ? 2 : 3; }
};

constexpr Form kNone[] = {{}};
// mov and the two-operand ALU ops: never two memory operands, and the
// register-or-memory operands agree on the width.
constexpr Form kTwo[] = {
    {{kR, kR}, true},
    {{kR, kM}, true},
    {{kM, kR}, true},
    {{kR, kImm}, false, Fit::width},
    {{kM, kImm}, false, Fit::width},
};
constexpr Form kMovabs[] = {{{kR64, kImm}, false, Fit::any}};
constexpr Form kMovzx[] = {{{kR32 | kR64, kR8 | kR16 | kM8 | kM16}}};
constexpr Form kLea[] = {{{kR64, kMem}}};
constexpr Form kUnary[] = {{{kRM}}};
constexpr Form kShift[] = {{{kRM, kImm}, false, Fit::count}};
constexpr Form kImul[] = {{{kRw, kRw | kMw}, true}, {{kRw, kRw | kMw, kImm}, true, Fit::width}};
constexpr Form kStack[] = {{{kR64}}};
constexpr Form kTarget[] = {{{kLab}}};

struct Shape {
  Op op;
  std::span<const Form> forms;
};

// In ASMSRV_OPS order, one row per Op (checked below).
constexpr Shape kShapes[] = {
    {Op::mov, kTwo},     {Op::movabs, kMovabs}, {Op::movzx, kMovzx}, {Op::lea, kLea},
    {Op::add, kTwo},     {Op::sub, kTwo},       {Op::xor_, kTwo},    {Op::and_, kTwo},
    {Op::or_, kTwo},     {Op::cmp, kTwo},       {Op::test, kTwo},    {Op::inc, kUnary},
    {Op::dec, kUnary},   {Op::neg, kUnary},     {Op::div, kUnary},   {Op::ror, kShift},
    {Op::shl, kShift},   {Op::shr, kShift},     {Op::push, kStack},  {Op::pop, kStack},
    {Op::call, kTarget}, {Op::ret, kNone},      {Op::jmp, kTarget},  {Op::je, kTarget},
    {Op::jne, kTarget},  {Op::jl, kTarget},     {Op::jle, kTarget},  {Op::jg, kTarget},
    {Op::jge, kTarget},  {Op::jb, kTarget},     {Op::jbe, kTarget},  {Op::ja, kTarget},
    {Op::jae, kTarget},  {Op::js, kTarget},     {Op::jns, kTarget},  {Op::jz, kTarget},
    {Op::jnz, kTarget},  {Op::syscall, kNone},  {Op::imul, kImul},   {Op::rep_movsb, kNone},
    {Op::repe_cmpsb, kNone},
};

constexpr bool shapes_follow_the_ops() {
  if (std::size(kShapes) != kOpCount) return false;
  for (size_t i = 0; i < kOpCount; ++i)
    if (static_cast<size_t>(kShapes[i].op) != i) return false;
  return true;
}
static_assert(shapes_follow_the_ops(), "kShapes has one row per Op, in ASMSRV_OPS order");

uint16_t kind_of(const Operand& o) {
  if (auto* r = std::get_if<RegOp>(&o))
    return r->width == Width::none ? 0 : kR8 << (static_cast<int>(r->width) - 1);
  if (auto* m = std::get_if<MemOp>(&o))
    return m->width == Width::none ? kMem : kM8 << (static_cast<int>(m->width) - 1);
  if (std::holds_alternative<ImmOp>(o) || std::holds_alternative<AddrOp>(o)) return kImm;
  return kLab;
}

bool is_memory(uint16_t kind) { return kind & (kM | kMem); }

// Bits of a register or sized memory kind; 0 for the others.
int bits_of(uint16_t kind) {
  for (int i = 0; i < 4; ++i)
    if (kind == (kR8 << i) || kind == (kM8 << i)) return 8 << i;
  return 0;
}

bool kinds_match(const Form& f, const uint16_t* kinds, size_t n) {
  if (f.count() != n) return false;
  for (size_t i = 0; i < n; ++i)
    if (!(f.kinds[i] & kinds[i])) return false;
  return true;
}

bool widths_agree(const uint16_t* kinds, size_t n) {
  int bits = 0;
  for (size_t i = 0; i < n; ++i) {
    int b = bits_of(kinds[i]);
    if (b && bits && b != bits) return false;
    if (b) bits = b;
  }
  return true;
}

bool imm_fits(int64_t v, Fit fit, int bits) {
  switch (fit) {
    case Fit::none:
    case Fit::any: return true;
    case Fit::count: return v >= 0 && v <= 255;
    case Fit::width:
      if (bits == 64) return v >= INT32_MIN && v <= INT32_MAX;  // sign-extended imm32
      return v >= -(int64_t{1} << (bits - 1)) && v < (int64_t{1} << bits);
  }
  return false;
}

std::string fit_text(Fit fit, int bits) {
  if (fit == Fit::count) return "an imm8 shift count";
  if (bits == 64) return "a sign-extended imm32";
  return fmt::format("an imm{}", bits);
}

// "r32|r64", "m" (every width), "r", "imm".
std::string kinds_text(uint16_t k) {
  static constexpr std::pair<uint16_t, const char*> kNames[] = {
      {kR, "r"},    {kR8, "r8"},   {kR16, "r16"}, {kR32, "r32"}, {kR64, "r64"},
      {kM, "m"},    {kM8, "m8"},   {kM16, "m16"}, {kM32, "m32"}, {kM64, "m64"},
      {kMem, "m"},  {kImm, "imm"}, {kLab, "label"},
  };
  std::string out;
  for (auto [mask, name] : kNames) {
    if ((k & mask) != mask) continue;
    out += (out.empty() ? "" : "|") + std::string(name);
    k &= ~mask;
  }
  return out;
}

// "push takes r64"; "mov takes r, r or r, m or ..."; "ret takes no operands".
std::string forms_text(std::span<const Form> forms) {
  std::string out;
  for (const Form& f : forms) {
    if (!out.empty()) out += " or ";
    for (size_t i = 0; i < f.count(); ++i) out += (i ? ", " : "") + kinds_text(f.kinds[i]);
  }
  return out.empty() ? "no operands" : out;
}

// Why `ins` has a shape its Op does not take; empty when it has one.
std::string shape_problem(const Instr& ins) {
  std::span<const Form> forms = kShapes[static_cast<size_t>(ins.op)].forms;
  std::string name = op_name(ins.op);
  size_t n = ins.operands.size();
  uint16_t kinds[3] = {};
  bool count_ok = n <= 3 && std::any_of(forms.begin(), forms.end(), [&](const Form& f) { return f.count() == n; });
  if (!count_ok) return name + " takes " + forms_text(forms);
  for (size_t i = 0; i < n; ++i) kinds[i] = kind_of(ins.operands[i]);
  if (std::count_if(kinds, kinds + n, is_memory) > 1) return name + " takes no two memory operands";

  std::vector<const Form*> matches;
  for (const Form& f : forms)
    if (kinds_match(f, kinds, n)) matches.push_back(&f);
  if (matches.empty()) {
    // The one thing wrong may be the memory operand's width: given or missing.
    for (size_t i = 0; i < n; ++i) {
      if (!is_memory(kinds[i])) continue;
      uint16_t saved = kinds[i];
      bool other = false;
      for (uint16_t alt : {kM8, kM16, kM32, kM64, kMem}) {
        if ((alt == kMem) == (saved == kMem)) continue;  // the other class only
        kinds[i] = alt;
        other = other || std::any_of(forms.begin(), forms.end(),
                                     [&](const Form& f) { return kinds_match(f, kinds, n); });
      }
      kinds[i] = saved;
      if (other)
        return saved == kMem ? name + " needs a width on its memory operand"
                             : name + " takes a memory operand without a width";
    }
    return name + " takes " + forms_text(forms);
  }
  std::erase_if(matches, [&](const Form* f) { return f->same_width && !widths_agree(kinds, n); });
  if (matches.empty()) return name + " takes operands of one width";
  for (const Form* f : matches) {
    bool ok = true;
    for (size_t i = 0; i < n; ++i)
      if (auto* v = std::get_if<ImmOp>(&ins.operands[i]))
        ok = ok && imm_fits(v->value, f->fit, bits_of(kinds[0]));
    if (ok) return "";
  }
  return "the immediate does not fit " + fit_text(matches[0]->fit, bits_of(kinds[0]));
}

// Why `o` cannot be encoded at all, whatever the instruction; empty when fine.
std::string operand_problem(const Operand& o) {
  if (auto* r = std::get_if<RegOp>(&o); r && r->width == Width::none) return "a register without a width";
  if (auto* m = std::get_if<MemOp>(&o)) {
    if (m->rip && m->has_index) return "a rip-relative operand has no index";
    if (m->has_index && m->index == Reg::rsp) return "rsp cannot be an index";
  }
  return "";
}

// --- Names ---------------------------------------------------------------------

// Words an assembler reads as a register, an instruction or a keyword wherever
// a label name stands: a block or data item so named would not assemble, or
// worse, would assemble as something else.
const std::unordered_set<std::string>& reserved_words() {
  static const std::unordered_set<std::string> words = [] {
    std::unordered_set<std::string> w = {
        "wait", "pause", "loop", "nop",   "hlt",    "int",    "in",      "out",   "lock",
        "rep",  "repe",  "repne", "byte", "word",   "dword",  "qword",   "tword", "oword",
        "rel",  "abs",   "ptr",   "strict", "near", "far",    "short",   "seg",   "wrt",
        "equ",  "times", "db",    "dw",   "dd",     "dq",     "dt",      "resb",  "resw",
        "resd", "resq",  "incbin", "align", "alignb", "section", "segment", "global", "extern",
        "bits", "default", "not", "offset", "flat", "rip",   "ah",      "bh",    "ch",
        "dh",   "cs",    "ds",    "es",   "fs",     "gs",     "ss",
    };
    for (const auto& names : kRegNames)
      for (const char* r : names)
        if (r) w.insert(r);
    for (const char* op : kOpNames) {
      std::string s = op;  // "rep movsb": both words
      for (size_t sp; (sp = s.find(' ')) != std::string::npos; s = s.substr(sp + 1)) w.insert(s.substr(0, sp));
      w.insert(s);
    }
    return w;
  }();
  return words;
}

bool is_reserved(std::string name) {
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return reserved_words().contains(name);
}

// A name both assemblers take as a plain symbol: letters, digits, '_'.
bool is_identifier(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(),
                     [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

// Where a label is placed, or a constant defined: what owns a name.
struct Place {
  enum Kind : uint8_t { none, block_label, label_line, data_item, constant } kind = none;
  size_t index = 0;  // into Program::blocks, Program::data or Program::constants
  size_t line = 0;   // into Block::lines, for a label line
};

std::string describe(const Program& p, const Place& at) {
  switch (at.kind) {
    case Place::block_label: return fmt::format("block \"{}\"", p.blocks[at.index].title);
    case Place::label_line: return fmt::format("block \"{}\", line {}", p.blocks[at.index].title, at.line + 1);
    case Place::data_item: return fmt::format("data item '{}'", p.info(p.data[at.index].label).name);
    case Place::constant: return fmt::format("constant '{}'", p.constants[at.index].name);
    case Place::none: break;
  }
  return "nowhere";
}

bool label_made(const Program& p, Label l) {
  return l.id >= 0 && static_cast<size_t>(l.id) < p.labels.size();
}

// The label an operand refers to (a jump target, [rel label]); nullptr for none.
const Label* referenced_label(const Operand& o) {
  if (auto* m = std::get_if<MemOp>(&o); m && m->rip) return &m->label;
  if (auto* t = std::get_if<LabelOp>(&o)) return &t->label;
  if (auto* a = std::get_if<AddrOp>(&o)) return &a->label;
  return nullptr;
}

// Checks a Program and names its labels: Builder::finish() in steps.
class Finisher {
 public:
  explicit Finisher(Program& p) : p_(p), places_(p.labels.size()) {}

  void run() {
    place_labels();
    name_labels();
    check_names();
    check_code();
    check_entry();
    check_data();
    check_flow();
  }

 private:
  // Every place a label is defined, each at most once.
  void place_labels() {
    for (size_t bi = 0; bi < p_.blocks.size(); ++bi) {
      const Block& b = p_.blocks[bi];
      place(b.label, {Place::block_label, bi, 0}, fmt::format("block \"{}\"", b.title));
      for (size_t li = 0; li < b.lines.size(); ++li)
        if (auto* d = std::get_if<LabelDef>(&b.lines[li]))
          place(d->label, {Place::label_line, bi, li}, fmt::format("block \"{}\", line {}", b.title, li + 1));
    }
    for (size_t di = 0; di < p_.data.size(); ++di)
      place(p_.data[di].label, {Place::data_item, di, 0}, fmt::format("data item #{}", di + 1));
  }

  void place(Label l, Place at, const std::string& where) {
    if (!label_made(p_, l)) throw IrError(where + ": a label that was never made");
    Place& old = places_[static_cast<size_t>(l.id)];
    if (old.kind != Place::none)
      throw IrError(fmt::format("label '{}' is placed twice: {} and {}", p_.info(l).name,
                                describe(p_, old), describe(p_, at)));
    old = at;
    placed_.push_back(static_cast<size_t>(l.id));
  }

  // Final names: a block's label is its hint, a label line in block B is
  // "B.hint" ("_2", "_3"... for a repeated hint), a symbol keeps its name. So
  // a change inside one block renames nothing outside it.
  void name_labels() {
    std::vector<std::string> names(p_.labels.size());
    for (size_t id = 0; id < p_.labels.size(); ++id) names[id] = p_.labels[id].name;
    for (size_t id : placed_) {
      bool scoped = places_[id].kind == Place::label_line && p_.labels[id].local;
      check_name(places_[id], p_.labels[id].name, !scoped);
    }
    for (const Block& b : p_.blocks) {
      std::map<std::string, int> seen;
      for (const Line& line : b.lines) {
        auto* d = std::get_if<LabelDef>(&line);
        if (!d || !p_.info(d->label).local) continue;
        const std::string& hint = p_.info(d->label).name;
        int n = ++seen[hint];
        names[static_cast<size_t>(d->label.id)] =
            p_.info(b.label).name + "." + hint + (n > 1 ? "_" + std::to_string(n) : "");
      }
    }
    for (size_t id = 0; id < names.size(); ++id) p_.labels[id].name = std::move(names[id]);
  }

  // A label's hint or a constant's name: an identifier, and no keyword where
  // it stands alone (`top_level`; "B.loop" is no keyword).
  void check_name(const Place& at, const std::string& name, bool top_level) const {
    if (!is_identifier(name))
      throw IrError(fmt::format("{}: the label '{}' is not a name (letters, digits, '_', not first a digit)",
                                describe(p_, at), name));
    if (top_level && is_reserved(name))
      throw IrError(fmt::format("{}: the name '{}' is an assembler reserved word", describe(p_, at), name));
  }

  // One name, one owner: labels (code and data alike) and constants share the
  // assembler's one symbol table.
  void check_names() {
    std::unordered_map<std::string, Place> owner;
    auto own = [&](const std::string& name, const Place& at) {
      auto [it, fresh] = owner.emplace(name, at);
      if (!fresh)
        throw IrError(fmt::format("the name '{}' is given twice: {} and {}", name, describe(p_, it->second),
                                  describe(p_, at)));
    };
    for (size_t id : placed_) own(p_.labels[id].name, places_[id]);
    for (size_t i = 0; i < p_.constants.size(); ++i) {
      Place at{Place::constant, i, 0};
      check_name(at, p_.constants[i].name, true);
      own(p_.constants[i].name, at);
      constants_.emplace(p_.constants[i].name, p_.constants[i].value);
    }
  }

  // Control never passes a block's last line: a jmp, a ret, or a system call
  // that does not return (Builder::syscall: mov eax, nr; syscall).
  static bool ends_flow(const Block& b) {
    size_t n = b.lines.size();
    const Instr* last = n ? std::get_if<Instr>(&b.lines[n - 1]) : nullptr;
    if (!last) return false;
    if (last->op == Op::jmp || last->op == Op::ret) return true;
    const Instr* nr = n > 1 ? std::get_if<Instr>(&b.lines[n - 2]) : nullptr;
    if (last->op != Op::syscall || !nr || nr->op != Op::mov || nr->operands.size() != 2) return false;
    const auto* reg = std::get_if<RegOp>(&nr->operands[0]);
    const auto* value = std::get_if<ImmOp>(&nr->operands[1]);
    return reg && reg->reg == Reg::rax && value &&
           (value->value == kExitGroupNr || value->value == kExitNr || value->value == kRtSigreturnNr);
  }

  // Last: a program made wrong on purpose, in a test, fails for its own fault.
  void check_flow() {
    for (const Block& b : p_.blocks)
      if (b.falls_into.id < 0 && !ends_flow(b))
        throw IrError(fmt::format("block \"{}\": it may run past its end, but it falls into no block", b.title));
  }

  void check_code() {
    for (size_t bi = 0; bi < p_.blocks.size(); ++bi) {
      const Block& b = p_.blocks[bi];
      for (const Line& line : b.lines)
        if (auto* ins = std::get_if<Instr>(&line))
          if (std::string why = instr_problem(*ins); !why.empty())
            throw IrError(fmt::format("block \"{}\": {}: {}", b.title, instr_text(p_, *ins), why));
      if (b.falls_into.id < 0) continue;
      std::string into = label_made(p_, b.falls_into) ? p_.info(b.falls_into).name : "?";
      if (bi + 1 == p_.blocks.size())
        throw IrError(fmt::format("block \"{}\": falls into '{}', but it is the last block", b.title, into));
      if (p_.blocks[bi + 1].label != b.falls_into)
        throw IrError(fmt::format("block \"{}\": falls into '{}', but the next block is \"{}\"", b.title, into,
                                  p_.blocks[bi + 1].title));
    }
  }

  // disp_name "conn_iov+16" spells disp: a constant, plus or minus a number.
  std::string disp_problem(const MemOp& m) const {
    const std::string& text = m.disp_name;
    size_t end = text.find_first_of("+-");
    std::string name = text.substr(0, end);
    int64_t extra = 0;
    if (end != std::string::npos) {
      std::string number = text.substr(end + 1);
      if (number.empty() || !std::all_of(number.begin(), number.end(), [](unsigned char c) { return std::isdigit(c); }) || number.size() > 9)
        return fmt::format("'{}' is not a constant plus a number", text);
      extra = std::stoll(number) * (text[end] == '-' ? -1 : 1);
    }
    auto it = constants_.find(name);
    if (it == constants_.end()) return fmt::format("'{}' is no constant", name);
    if (it->second + extra != m.disp)
      return fmt::format("{} is {}, not the displacement {}", text, it->second + extra, m.disp);
    return "";
  }

  std::string instr_problem(const Instr& ins) const {
    for (const Operand& o : ins.operands) {
      if (std::string why = operand_problem(o); !why.empty()) return why;
      if (auto* m = std::get_if<MemOp>(&o); m && !m->disp_name.empty())
        if (std::string why = disp_problem(*m); !why.empty()) return why;
      const Label* l = referenced_label(o);
      if (!l) continue;
      if (!label_made(p_, *l)) return "a label that was never made";
      if (places_[static_cast<size_t>(l->id)].kind == Place::none)
        return fmt::format("'{}' is a label never placed", p_.info(*l).name);
    }
    return shape_problem(ins);
  }

  // The entry is named by the `global` directive: a placed symbol.
  void check_entry() const {
    if (!label_made(p_, p_.entry)) throw IrError("the program has no entry symbol");
    const LabelInfo& info = p_.info(p_.entry);
    if (places_[static_cast<size_t>(p_.entry.id)].kind == Place::none)
      throw IrError(fmt::format("the entry symbol '{}' is a label never placed", info.name));
    if (info.local) throw IrError(fmt::format("the entry '{}' is a local label, not a symbol", info.name));
  }

  // Table rows and struct fields: every value fits its width.
  void check_data() const {
    for (const DataItem& item : p_.data) {
      std::string where = fmt::format("data item '{}'", p_.info(item.label).name);
      for (const Piece& piece : item.pieces) {
        if (auto* row = std::get_if<Ints>(&piece))
          for (uint64_t v : row->values) check_int(where + fmt::format(": row \"{}\"", row->comment), row->width, v);
        if (auto* s = std::get_if<Fields>(&piece))
          for (const Field& f : s->fields) check_int(where + fmt::format(": field '{}'", f.name), f.width, f.value);
      }
    }
  }

  static void check_int(const std::string& where, int width, uint64_t value) {
    if (width != 1 && width != 2 && width != 4 && width != 8)
      throw IrError(fmt::format("{}: width {} is not 1, 2, 4 or 8 bytes", where, width));
    if (width < 8 && value >> (8 * width) != 0)
      throw IrError(fmt::format("{}: {} does not fit {} byte{}", where, value, width, width > 1 ? "s" : ""));
  }

  Program& p_;
  std::vector<Place> places_;  // by label id
  std::vector<size_t> placed_;  // label ids in the order of the listing
  std::unordered_map<std::string, int64_t> constants_;  // by name
};

}  // namespace

// --- Builder -------------------------------------------------------------------

void Builder::check_open() const {
  if (p_.finished) throw std::logic_error("the program is finished: nothing can be added to it");
}

Label Builder::new_label(const std::string& hint) {
  check_open();
  p_.labels.push_back({hint, true});  // the hint, until finish() names it
  return {static_cast<int>(p_.labels.size()) - 1};
}

Label Builder::symbol(const std::string& name) {
  check_open();
  for (size_t i = 0; i < p_.labels.size(); ++i)
    if (!p_.labels[i].local && p_.labels[i].name == name)
      throw std::logic_error("symbol defined twice: " + name);
  p_.labels.push_back({name, false});
  return {static_cast<int>(p_.labels.size()) - 1};
}

Block& Builder::block(Label label, std::string title, std::string syscall, int syscall_nr,
                      std::string c_equiv, std::string why) {
  check_open();
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
  check_open();
  if (cur_ >= p_.blocks.size()) throw std::logic_error("no current block");
  return p_.blocks[cur_];
}

void Builder::label(Label l) { cur().lines.push_back(LabelDef{l}); }

void Builder::note(std::string text) { cur().lines.push_back(Note{std::move(text)}); }

void Builder::falls_into(Label next) { cur().falls_into = next; }

void Builder::emit(Op op, std::vector<Operand> ops, std::string comment) {
  // mov r64, imm: NASM shrinks it to the 32-bit form where GAS does not, so the
  // IR always spells the encoding it wants (see mov_imm).
  if (op == Op::mov && ops.size() == 2 && std::holds_alternative<ImmOp>(ops[1])) {
    if (auto* r = std::get_if<RegOp>(&ops[0]); r && r->width == Width::b64) {
      mov_imm(r->reg, std::get<ImmOp>(ops[1]), std::move(comment));
      return;
    }
  }
  // lea computes an address and reads nothing: a width on its memory operand
  // (a record field from a helper) means nothing, so it is dropped.
  if (op == Op::lea && ops.size() == 2)
    if (auto* m = std::get_if<MemOp>(&ops[1])) m->width = Width::none;
  for (size_t i = 0; i < ops.size(); ++i)
    if (std::holds_alternative<AddrOp>(ops[i]) &&
        !(op == Op::mov && i == 1 && std::holds_alternative<RegOp>(ops[0]) && std::get<RegOp>(ops[0]).width == Width::b32))
      throw std::logic_error("a label's address is an immediate of mov r32 only, in block \"" + cur().title + "\"");
  for (const Operand& o : ops) {
    const Label* l = referenced_label(o);
    if (l && !label_made(p_, *l))
      throw std::logic_error("a label that was never made, used in block \"" + cur().title + "\"");
  }
  cur().lines.push_back(Instr{op, std::move(ops), std::move(comment)});
}

void Builder::mov_imm(Reg dst, int64_t value, std::string comment) {
  mov_imm(dst, imm(value), std::move(comment));
}

void Builder::mov_imm(Reg dst, ImmOp value, std::string comment) {
  Instr ins{Op::mov, {r64(dst), value}, std::move(comment)};
  if (value.value >= 0 && value.value <= 0xffffffffLL)
    ins.operands[0] = r32(dst);  // zero-extends into the whole register
  else if (value.value < INT32_MIN || value.value > INT32_MAX)
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
  // Text and byte tables are read a byte, or an unaligned dword, at a time:
  // no padding before them.
  return data(name, Section::rodata, {Bytes{std::move(bytes)}}, std::move(comment), 1);
}

Label Builder::bss(const std::string& name, uint64_t size, std::string comment,
                   int align) {
  return data(name, Section::bss, {Zeros{size}}, std::move(comment), align);
}

void Builder::constant(std::string name, int64_t value, std::string comment) {
  check_open();
  p_.constants.push_back({std::move(name), value, std::move(comment)});
}

Label Builder::variables(Reg base) {
  if (vars_.id < 0) {
    vars_base_ = base;
    vars_ = bss("vars", 0,
                fmt::format("the small variables, one block: each is [{}+name] (see the named offsets)",
                            reg_name(base, Width::b64)));
  }
  return vars_;
}

void Builder::pack_variables() {
  if (vars_.id < 0) return;
  std::unordered_map<int, int> refs;
  for (const Block& b : p_.blocks)
    for (const Line& line : b.lines)
      if (auto* ins = std::get_if<Instr>(&line))
        for (const Operand& o : ins->operands) {
          if (auto* m = std::get_if<MemOp>(&o); m && m->rip) ++refs[m->label.id];
          if (auto* a = std::get_if<AddrOp>(&o)) ++refs[a->label.id];
        }
  auto rounded = [](const DataItem& d) { return (d.size() + d.align - 1) / d.align * d.align; };
  // The most used first (then in the order they were made), while they fit.
  std::vector<size_t> wanted;
  for (size_t i = 0; i < p_.data.size(); ++i) {
    const DataItem& d = p_.data[i];
    if (d.section == Section::bss && d.label != vars_ && d.size() > 0 && d.size() <= 8 && d.align <= 8 &&
        refs[d.label.id] > 0)
      wanted.push_back(i);
  }
  std::stable_sort(wanted.begin(), wanted.end(),
                   [&](size_t a, size_t b) { return refs[p_.data[a].label.id] > refs[p_.data[b].label.id]; });
  std::vector<size_t> chosen;
  uint64_t total = 0;
  for (size_t i : wanted)
    if (total + rounded(p_.data[i]) <= static_cast<uint64_t>(kVarsSpan)) {
      chosen.push_back(i);
      total += rounded(p_.data[i]);
    }
  // Laid out by alignment, the widest first: no padding between them.
  std::stable_sort(chosen.begin(), chosen.end(), [&](size_t a, size_t b) { return p_.data[a].align > p_.data[b].align; });
  std::unordered_map<int, std::pair<int32_t, std::string>> at;  // label id: offset from the base, name
  int32_t pos = -kVarsBias;
  for (size_t i : chosen) {
    const DataItem& d = p_.data[i];
    const std::string& name = p_.info(d.label).name;
    std::string what = d.comment;
    std::replace(what.begin(), what.end(), '\n', ' ');
    at[d.label.id] = {pos, name};
    p_.constants.push_back({name, pos, fmt::format("{} bytes: {}", d.size(), what)});
    pos += static_cast<int32_t>(rounded(d));
  }
  for (DataItem& d : p_.data)
    if (d.label == vars_) d.pieces = {Zeros{static_cast<uint64_t>(pos + kVarsBias)}};
  std::vector<DataItem> kept;
  for (size_t i = 0; i < p_.data.size(); ++i)
    if (!at.count(p_.data[i].label.id)) kept.push_back(std::move(p_.data[i]));
  p_.data = std::move(kept);
  auto based = [&](const std::pair<int32_t, std::string>& v, int32_t extra, Width w) {
    MemOp m = mem(w, vars_base_, v.first + extra);
    m.disp_name = v.second + (extra > 0 ? fmt::format("+{}", extra) : extra < 0 ? fmt::format("-{}", -extra) : "");
    return m;
  };
  for (Block& b : p_.blocks)
    for (Line& line : b.lines) {
      auto* ins = std::get_if<Instr>(&line);
      if (!ins) continue;
      for (Operand& o : ins->operands)
        if (auto* m = std::get_if<MemOp>(&o); m && m->rip)
          if (auto it = at.find(m->label.id); it != at.end()) o = based(it->second, m->disp, m->width);
      if (ins->operands.size() == 2)
        if (auto* a = std::get_if<AddrOp>(&ins->operands[1]))
          if (auto it = at.find(a->label.id); it != at.end()) {
            Reg r = std::get<RegOp>(ins->operands[0]).reg;
            ins->op = Op::lea;  // mov r32, v: lea r64, [base+v]
            ins->operands = {r64(r), based(it->second, a->addend, Width::none)};
          }
    }
}

void Builder::finish() {
  check_open();
  pack_variables();
  Finisher(p_).run();
  size_jumps(p_);
  p_.finished = true;
}

}  // namespace asmsrv
