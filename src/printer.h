// Prints a Program as assembly source in one dialect, or as an explain listing.
#pragma once

#include <string>

#include "dialect.h"
#include "ir.h"

namespace asmsrv {

/// One instruction as text: "mov     rdi, r12" (no indentation, no comment).
std::string format_instr(const Program& p, const Dialect& d, const Instr& ins);

/// One instruction as NASM spells it, single-spaced, for messages:
/// "mov qword [rax], qword [rbx]".
std::string instr_text(const Program& p, const Instr& ins);

/// The complete source file: header, skeleton, text, data. `p` must be
/// finished (Builder::finish); std::logic_error otherwise. `listing` is
/// where the text will be saved (empty: not known, taken to be server.s in
/// the current directory): the header's build commands name it, and name
/// the directories of embedded files relative to its directory, so that
/// they work as printed when run there.
std::string print_program(const Program& p, const Dialect& d, const std::string& listing = "");

/// The explain listing: each block with its syscall, C equivalent and code.
/// `p` must be finished, as for print_program.
std::string explain_program(const Program& p);

}  // namespace asmsrv
