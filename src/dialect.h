// A dialect is a record of data (QBE style): how one assembler spells the IR.
// Nothing outside this record differs between NASM and GAS output.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace asmsrv {

struct Dialect {
  std::string name;            // "nasm" or "gas"
  std::string comment;         // line comment: ";" or "#"
  std::string local_prefix;    // prefix for code labels: "" or ".L"
  std::string size_kw[5];      // by Width: "", "byte ", ... or "BYTE PTR "
  std::string rip_open;        // "[rel " or "[rip + "
  std::string address_of;      // before a label whose address is an immediate: "" or "OFFSET "
  std::string movabs;          // mnemonic for a 64-bit immediate load
  std::string db;              // list of bytes: "db" or ".byte"
  std::string ints[4];         // by log2(width): dw/dd/dq or .short/.long/.quad (and db)
  std::string ascii;           // text directive with C escapes; empty: quote runs in db
  std::string align;           // pad data with zeros to a multiple of {}: "align {}, db 0"
  std::string align_bss;       // the same in .bss: "alignb {}" or ".balign {}"
  std::string skip;            // reserve zeroed bytes: "resb" or ".skip"
  std::string incbin;          // "incbin" or ".incbin"
  bool quoted_escapes;         // a backslash in "..." starts an escape (GAS; NASM's are literal)
  std::string near_prefix;     // before a near jump's mnemonic: "" or "{disp32} "
  std::string near_keyword;    // before a near jump's target: "near " or ""
  std::string short_keyword;   // before a short jump's target: "short "
  std::string equ;             // a named constant: "{} equ {}" or ".set {}, {}"
  std::string sections[3];     // by Section: the directive that opens it
  std::string skeleton;        // template file: the section layout
  // The toolchain.
  std::string assembler;       // program name
  std::string package;         // Debian package that provides it
  std::vector<std::string> assembler_flags;
  std::string include_flag;    // "-i" (dir must end in /) or "-I"
  bool include_needs_slash;
};

/// The NASM and GNU as (Intel syntax) dialects.
const Dialect& nasm_dialect();
const Dialect& gas_dialect();
/// "nasm" or "gas"; nullopt for anything else.
const Dialect* find_dialect(std::string_view name);

/// argv to assemble `src` into `obj` with this dialect's assembler.
std::vector<std::string> assemble_command(const Dialect& d, const std::string& src,
                                          const std::string& obj,
                                          const std::vector<std::string>& include_dirs);
/// argv to link `obj` into a static, stripped executable `exe`.
std::vector<std::string> link_command(const std::string& obj, const std::string& exe);

}  // namespace asmsrv
