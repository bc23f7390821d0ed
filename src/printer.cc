#include "printer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "templates.h"
#include "text.h"
#include "toolchain.h"

namespace asmsrv {

namespace {

constexpr int kInstrIndent = 8;
constexpr int kMnemonicWidth = 8;
constexpr int kCommentColumn = 48;
constexpr size_t kDataLineBytes = 64;

std::string label_name(const Program& p, const Dialect& d, Label l) {
  if (l.id < 0 || static_cast<size_t>(l.id) >= p.labels.size()) return "?";  // in a message only
  const LabelInfo& info = p.info(l);
  return info.local ? d.local_prefix + info.name : info.name;
}

std::string format_imm(const ImmOp& i) {
  int64_t v = i.value;
  if (i.style == ImmStyle::chr) {
    switch (v) {
      case '\r': return "13";  // the two assemblers disagree on escapes: CR, LF, TAB by number
      case '\n': return "10";
      case '\t': return "9";
      case '\'': case '\\': break;
      default:
        if (v >= 0x20 && v < 0x7f) return fmt::format("'{}'", static_cast<char>(v));
    }
    return std::to_string(v);
  }
  if (i.style == ImmStyle::dec || (v >= -4096 && v <= 4096)) return std::to_string(v);
  if (v < 0) return fmt::format("-0x{:x}", -static_cast<uint64_t>(v));
  return fmt::format("0x{:x}", v);
}

// A field value in data: as a plain immediate, but all 64 bits unsigned.
std::string format_uint(uint64_t v) {
  return v <= 4096 ? std::to_string(v) : fmt::format("0x{:x}", v);
}

std::string format_mem(const Program& p, const Dialect& d, const MemOp& m) {
  std::string out = d.size_kw[static_cast<int>(m.width)];
  if (m.rip) {
    out += d.rip_open + label_name(p, d, m.label);  // [rel label+8] / [rip + label+8]
  } else {
    out += "[";
    out += reg_name(m.base, Width::b64);
  }
  if (m.has_index) {
    out += "+";
    out += reg_name(m.index, Width::b64);
  }
  if (!m.disp_name.empty()) out += "+" + m.disp_name;
  else if (m.disp > 0) out += fmt::format("+{}", m.disp);
  else if (m.disp < 0) out += fmt::format("-{}", -static_cast<int64_t>(m.disp));
  return out + "]";
}

std::string format_operand(const Program& p, const Dialect& d, const Operand& op) {
  if (auto* r = std::get_if<RegOp>(&op)) return reg_name(r->reg, r->width);
  if (auto* i = std::get_if<ImmOp>(&op)) return format_imm(*i);
  if (auto* m = std::get_if<MemOp>(&op)) return format_mem(p, d, *m);
  if (auto* a = std::get_if<AddrOp>(&op))
    return d.address_of + label_name(p, d, a->label) + (a->addend ? fmt::format("+{}", a->addend) : "");
  return label_name(p, d, std::get<LabelOp>(op).label);
}

// A comment's text as it may stand in the listing: control characters
// escaped (a CR or ^Z would end NASM's line or file), and a backslash that
// would end the line escaped too (NASM joins a line ending in one to the
// next, which would comment out code).
std::string comment_text(std::string_view s) {
  std::string out = escape_controls(s);
  size_t end = out.find_last_not_of(' ');
  if (end != std::string::npos && out[end] == '\\') out.replace(end, 1, "\\u005c");
  return out;
}

// A file name inside "...": the spec checker rules out '"' and control
// characters, so only a backslash can need escaping, where the dialect
// reads escapes in strings.
std::string quoted_path(const Dialect& d, const std::string& path) {
  if (!d.quoted_escapes) return path;
  std::string out;
  for (char c : path) out += c == '\\' ? std::string("\\\\") : std::string(1, c);
  return out;
}

// One line of output: text, then the comment at kCommentColumn.
void emit_line(std::string& out, const Dialect& d, const std::string& text,
               const std::string& comment) {
  out += text;
  if (!comment.empty()) {
    size_t pad = text.size() < kCommentColumn ? kCommentColumn - text.size() : 1;
    out.append(pad, ' ');
    out += d.comment + " " + comment_text(comment);
  }
  out += '\n';
}

std::string indent(const std::string& text) {
  return std::string(kInstrIndent, ' ') + text;
}

// A comment paragraph: every line of `text` behind the comment marker.
void emit_comment(std::string& out, const Dialect& d, const std::string& marker,
                  const std::string& text) {
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    std::string line = comment_text(text.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
    out += line.empty() ? marker + "\n" : marker + " " + line + "\n";
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  (void)d;
}

bool is_text_byte(unsigned char c) { return (c >= 0x20 && c < 0x7f) || c == '\r' || c == '\n' || c == '\t'; }
bool is_plain_byte(unsigned char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; }

// GAS: .ascii "HTTP/1.1 200 OK\r\n"
std::string ascii_line(const Dialect& d, std::string_view s) {
  std::string out = d.ascii + " \"";
  for (unsigned char c : s) {
    switch (c) {
      case '\r': out += "\\r"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      default: out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// NASM: db "HTTP/1.1 200 OK", 13, 10  (quoted runs of plain bytes, numbers otherwise)
// Also every dialect's form for binary data: db 2, 0, 31, 144
std::string db_line(const Dialect& d, std::string_view s, bool quote_runs) {
  std::string out = d.db + " ";
  bool first = true;
  size_t i = 0;
  while (i < s.size()) {
    if (!first) out += ", ";
    first = false;
    if (quote_runs && is_plain_byte(s[i])) {
      size_t j = i;
      while (j < s.size() && is_plain_byte(s[j])) ++j;
      out += "\"" + std::string(s.substr(i, j - i)) + "\"";
      i = j;
    } else {
      out += std::to_string(static_cast<unsigned char>(s[i]));
      ++i;
    }
  }
  return out;
}

// Text (every byte is_text_byte) goes a line per line of text, at most
// kDataLineBytes; anything else is binary, kDataLineBytes a line, since a
// 0x0A in a PNG is no line end. Linear: each line looks at its own bytes only.
void emit_bytes(std::string& out, const Dialect& d, const std::string& bytes) {
  bool text = std::all_of(bytes.begin(), bytes.end(), [](char c) { return is_text_byte(c); });
  size_t i = 0;
  while (i < bytes.size()) {
    size_t end = std::min(bytes.size(), i + kDataLineBytes);
    if (text) {
      const void* nl = std::memchr(bytes.data() + i, '\n', end - i);
      if (nl) end = static_cast<size_t>(static_cast<const char*>(nl) - bytes.data()) + 1;
    }
    std::string_view chunk(bytes.data() + i, end - i);
    if (text && !d.ascii.empty())
      out += indent(ascii_line(d, chunk)) + "\n";
    else
      out += indent(db_line(d, chunk, text)) + "\n";
    i = end;
  }
}

// dq / .quad for 8 bytes, and so on.
const std::string& ints_directive(const Dialect& d, int width) {
  return d.ints[width == 8 ? 3 : width == 4 ? 2 : width == 2 ? 1 : 0];
}

// The section's directive and items; nothing when it has no items.
std::string section_text(const Program& p, const Dialect& d, Section s) {
  std::string out;
  for (const DataItem& item : p.data) {
    if (item.section != s) continue;
    out += "\n";
    emit_comment(out, d, d.comment, fmt::format("{} ({} bytes)", item.comment, item.size()));
    if (item.align > 1)  // text needs none
      out += indent(fmt::format(fmt::runtime(s == Section::bss ? d.align_bss : d.align), item.align)) + "\n";
    out += label_name(p, d, item.label) + ":\n";
    for (const Piece& piece : item.pieces) {
      if (auto* b = std::get_if<Bytes>(&piece)) emit_bytes(out, d, b->bytes);
      if (auto* f = std::get_if<Incbin>(&piece))
        emit_line(out, d, indent(fmt::format("{} \"{}\"", d.incbin, quoted_path(d, f->path))),
                  fmt::format("{} bytes, read by the assembler", f->size));
      if (auto* z = std::get_if<Zeros>(&piece))
        out += indent(fmt::format("{} {}", d.skip, z->size)) + "\n";
      if (auto* n = std::get_if<Ints>(&piece)) {
        std::string text = ints_directive(d, n->width) + " ";
        for (size_t i = 0; i < n->values.size(); ++i)
          text += (i ? ", " : "") + std::to_string(n->values[i]);
        emit_line(out, d, indent(text), n->comment);
      }
      if (auto* s = std::get_if<Fields>(&piece))  // a struct: one named field a line
        for (const Field& f : s->fields)
          emit_line(out, d, indent(ints_directive(d, f.width) + " " + format_uint(f.value)), f.name);
    }
  }
  if (out.empty()) return out;
  return "\n" + indent(d.sections[static_cast<int>(s)]) + "\n" + out;
}

std::string block_heading(const Block& b) {
  std::string head = b.title;
  if (!b.syscall.empty())
    head += fmt::format(": {}(2), syscall {}", b.syscall, b.syscall_nr);
  return head;
}

void emit_block(std::string& out, const Program& p, const Dialect& d, const Block& b) {
  std::string marker = d.comment + d.comment;
  out += "\n" + marker + " " + std::string(74, '-') + "\n";
  emit_comment(out, d, marker, block_heading(b));
  if (!b.c_equiv.empty()) emit_comment(out, d, marker, "C: " + b.c_equiv);
  if (!b.why.empty()) emit_comment(out, d, marker, b.why);
  out += label_name(p, d, b.label) + ":\n";
  for (const Line& line : b.lines) {
    if (auto* ins = std::get_if<Instr>(&line))
      emit_line(out, d, indent(format_instr(p, d, *ins)), ins->comment);
    else if (auto* l = std::get_if<LabelDef>(&line))
      out += label_name(p, d, l->label) + ":\n";
    else
      emit_comment(out, d, indent(d.comment), std::get<Note>(line).text);
  }
}

// "    why      " and the text, its continuation lines aligned under its first.
// "    key      text", its further lines aligned under the first; control
// characters from a spec (a log path, a probe path) escaped, as in the listing.
std::string explain_field(const std::string& key, const std::string& text) {
  std::string head = fmt::format("    {:<8} ", key);
  std::string out = head;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    out += escape_controls(std::string_view(text).substr(start, nl - start)) + "\n" +
           std::string(head.size(), ' ');
  return out + escape_controls(std::string_view(text).substr(start)) + "\n";
}

void require_finished(const Program& p, const char* what) {
  if (!p.finished)
    throw std::logic_error(std::string(what) + ": the program is not finished (Builder::finish)");
}

}  // namespace

std::string format_instr(const Program& p, const Dialect& d, const Instr& ins) {
  std::string mnemonic = ins.op == Op::movabs ? d.movabs : op_name(ins.op);
  if (ins.operands.empty()) return mnemonic;
  std::string out = mnemonic;
  out.append(mnemonic.size() < kMnemonicWidth ? kMnemonicWidth - mnemonic.size() : 1, ' ');
  // The IR chose the jump's size: both assemblers are told, so neither relaxes.
  if (ins.jump == JumpSize::short_) out += d.short_keyword;
  if (ins.jump == JumpSize::near_) out = d.near_prefix + out + d.near_keyword;
  for (size_t i = 0; i < ins.operands.size(); ++i) {
    if (i) out += ", ";
    out += format_operand(p, d, ins.operands[i]);
  }
  return out;
}

std::string instr_text(const Program& p, const Instr& ins) {
  const Dialect& d = nasm_dialect();
  std::string out = ins.op == Op::movabs ? d.movabs : op_name(ins.op);
  for (size_t i = 0; i < ins.operands.size(); ++i)
    out += (i ? ", " : " ") + format_operand(p, d, ins.operands[i]);
  return out;
}

namespace {

// The header's two build commands for a listing saved at `listing`.
std::pair<std::string, std::string> build_commands(const Program& p, const Dialect& d,
                                                   const std::string& listing) {
  namespace fsys = std::filesystem;
  std::string src = "server.s", obj = "server.o", exe = "server";
  std::vector<std::string> includes = p.include_dirs;
  if (!listing.empty()) {
    fsys::path path(listing);
    src = path.filename().string();
    // Resolved on disk (symlinks too), so that ".." in the result climbs
    // where the shell will.
    fsys::path from = fsys::weakly_canonical(fsys::absolute(path).parent_path());
    // site.s -> site; a name without an extension must not be overwritten,
    // nor may the program take the name of a directory (site/ of site.json).
    exe = path.has_extension() ? path.stem().string() : src + ".out";
    obj = exe + ".o";
    if (fsys::is_directory(from / exe)) exe += ".out";
    for (std::string& dir : includes) {
      std::string rel = fsys::weakly_canonical(fsys::absolute(dir)).lexically_relative(from).string();
      dir = rel.empty() ? "." : rel;
    }
  }
  return {shell_words(assemble_command(d, src, obj, includes)),
          shell_words(link_command(obj, exe))};
}

}  // namespace

std::string print_program(const Program& p, const Dialect& d, const std::string& listing) {
  require_finished(p, "print_program");
  auto [assemble, link] = build_commands(p, d, listing);
  std::string header_text = render(
      load_template("header.txt"),
      {{"name", p.name},
       {"dialect", d.name == "nasm" ? "NASM" : "GNU as, Intel syntax"},
       {"version", ASMSRV_VERSION},
       {"spec", p.spec_file},
       {"assemble", assemble},
       {"link", link}});
  if (!p.notes.empty()) header_text += "\n" + p.notes;
  std::string header;
  emit_comment(header, d, d.comment, header_text);

  std::string text;
  if (!p.constants.empty()) {
    text += "\n";
    emit_comment(text, d, d.comment + d.comment,
                 "Named offsets: the fields of the records the code reads and writes, and\n"
                 "the variables' places in vars, from vars+128 (the register map says which\n"
                 "register holds that).");
    for (const Constant& c : p.constants)
      emit_line(text, d, indent(fmt::format(fmt::runtime(d.equ), c.name, c.value)), c.comment);
  }
  for (const Block& b : p.blocks) emit_block(text, p, d, b);

  return render(load_template(d.skeleton),
                {{"header", header},
                 {"entry", label_name(p, d, p.entry)},
                 {"text", text},
                 {"rodata", section_text(p, d, Section::rodata)},
                 {"data", section_text(p, d, Section::data)},
                 {"bss", section_text(p, d, Section::bss)}});
}

std::string explain_program(const Program& p) {
  require_finished(p, "explain_program");
  const Dialect& d = nasm_dialect();
  std::string out = fmt::format("{}: {} blocks, {} data items\n", p.name, p.blocks.size(), p.data.size());
  if (!p.notes.empty()) out += "\n" + p.notes + "\n";
  int n = 0;
  for (const Block& b : p.blocks) {
    out += fmt::format("\n[{}] {}\n", ++n, escape_controls(b.title));
    out += explain_field("label", label_name(p, d, b.label));
    if (!b.syscall.empty()) out += explain_field("syscall", fmt::format("{} ({})", b.syscall, b.syscall_nr));
    if (!b.c_equiv.empty()) out += explain_field("C", b.c_equiv);
    if (!b.why.empty()) out += explain_field("why", b.why);
    for (const Line& line : b.lines) {
      if (auto* ins = std::get_if<Instr>(&line)) {
        emit_line(out, d, indent(format_instr(p, d, *ins)), ins->comment);
      } else if (auto* l = std::get_if<LabelDef>(&line)) {
        out += "      " + label_name(p, d, l->label) + ":\n";
      } else {
        emit_comment(out, d, indent(d.comment), std::get<Note>(line).text);
      }
    }
  }
  out += "\ndata:\n";
  for (const DataItem& item : p.data) {
    static const char* kSection[] = {".rodata", ".data", ".bss"};
    out += fmt::format("    {:<8} {:<20} {:>8} bytes  {}\n", kSection[static_cast<int>(item.section)],
                       p.info(item.label).name, item.size(), escape_controls(item.comment));
  }
  return out;
}

}  // namespace asmsrv
