// Making untrusted text safe to print: a spec's strings reach error lines
// and the listing's comments, where a CR, a NUL or a ^Z would end the line,
// break the terminal, or (NASM) end the file.
#pragma once

#include <string>
#include <string_view>

namespace asmsrv {

/// `s` with every control character (U+0000-U+001F, U+007F) written as an
/// escape: \n, \r, \t, else \u00XX, as JSON writes them. Other bytes stay.
std::string escape_controls(std::string_view s);

}  // namespace asmsrv
