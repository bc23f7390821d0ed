#include "dialect.h"

namespace asmsrv {

const Dialect& nasm_dialect() {
  static const Dialect d = {
      .name = "nasm",
      .comment = ";",
      .local_prefix = "",
      .size_kw = {"", "byte ", "word ", "dword ", "qword "},
      .rip_open = "[rel ",
      .address_of = "",
      .movabs = "mov",
      .db = "db",
      .ints = {"db", "dw", "dd", "dq"},
      .ascii = "",
      .align = "align {}, db 0",  // plain align pads with NOPs (0x90)
      .align_bss = "alignb {}",
      .skip = "resb",
      .incbin = "incbin",
      .quoted_escapes = false,
      .near_prefix = "",
      .near_keyword = "near ",
      .short_keyword = "short ",
      .equ = "{} equ {}",
      .sections = {"section .rodata", "section .data", "section .bss"},
      .skeleton = "nasm.s",
      .assembler = "nasm",
      .package = "nasm",
      .assembler_flags = {"-f", "elf64"},
      .include_flag = "-i",
      .include_needs_slash = true,
  };
  return d;
}

const Dialect& gas_dialect() {
  static const Dialect d = {
      .name = "gas",
      .comment = "#",
      .local_prefix = ".L",
      .size_kw = {"", "BYTE PTR ", "WORD PTR ", "DWORD PTR ", "QWORD PTR "},
      .rip_open = "[rip + ",
      .address_of = "OFFSET ",
      .movabs = "movabs",
      .db = ".byte",
      .ints = {".byte", ".short", ".long", ".quad"},
      .ascii = ".ascii",
      .align = ".balign {}, 0",
      .align_bss = ".balign {}",
      .skip = ".skip",
      .incbin = ".incbin",
      .quoted_escapes = true,
      .near_prefix = "{disp32} ",
      .near_keyword = "",
      .short_keyword = "short ",
      .equ = ".set {}, {}",
      .sections = {".section .rodata", ".data", ".bss"},
      .skeleton = "gas.s",
      .assembler = "as",
      .package = "binutils",
      .assembler_flags = {"--64"},
      .include_flag = "-I",
      .include_needs_slash = false,
  };
  return d;
}

const Dialect* find_dialect(std::string_view name) {
  if (name == "nasm") return &nasm_dialect();
  if (name == "gas") return &gas_dialect();
  return nullptr;
}

std::vector<std::string> assemble_command(const Dialect& d, const std::string& src,
                                          const std::string& obj,
                                          const std::vector<std::string>& include_dirs) {
  std::vector<std::string> argv = {d.assembler};
  argv.insert(argv.end(), d.assembler_flags.begin(), d.assembler_flags.end());
  for (std::string dir : include_dirs) {
    if (dir.empty()) dir = ".";
    if (d.include_needs_slash && dir.back() != '/') dir += '/';
    argv.push_back(d.include_flag);
    argv.push_back(dir);
  }
  argv.insert(argv.end(), {"-o", obj, src});
  return argv;
}

std::vector<std::string> link_command(const std::string& obj, const std::string& exe) {
  // -static: no dynamic loader; -s: strip symbols; noexecstack: PT_GNU_STACK RW;
  // noseparate-code: the ELF headers, .text and .rodata share one read-and-
  // execute segment instead of a page each (15 KiB -> 9 KiB for hello); the
  // data stays in its own read-write segment, so none is both W and X.
  // common-page-size=64: the data segment continues in the file where the
  // code ends (its address is one page further) instead of on a new page.
  return {"ld", "-static", "-s", "-z", "noexecstack", "-z", "noseparate-code", "-z", "common-page-size=64",
          "-o", exe, obj};
}

}  // namespace asmsrv
