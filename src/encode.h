// Instruction lengths and jump sizes, so that the IR decides every byte of
// the machine code: NASM and GAS each relax jumps their own way (NASM can
// settle on a near jump where a short one fits), so the IR chooses short or
// near for every jump and both dialects spell that choice out.
#pragma once

#include "ir.h"

namespace asmsrv {

/// An upper bound on the encoded length of `ins` in bytes (exact for most
/// forms; never less than either assembler's encoding). Jumps count as
/// their chosen size (short when not yet chosen).
int max_length(const Instr& ins);

/// Chooses short or near for every jmp and jcc: all start short, and a jump
/// whose target may be out of reach (distances measured with max_length)
/// becomes near, until nothing changes. A jump left short is therefore in
/// reach whatever the assembler's exact encodings.
void size_jumps(Program& p);

}  // namespace asmsrv
