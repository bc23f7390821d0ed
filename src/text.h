// Making untrusted text safe to print: a spec's strings reach error lines
// and the listing's comments, where a CR, a NUL or a ^Z would end the line,
// break the terminal, or (NASM) end the file.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace asmsrv {

/// `s` with every control character (U+0000-U+001F, U+007F) written as an
/// escape: \n, \r, \t, else \u00XX, as JSON writes them. Other bytes stay.
std::string escape_controls(std::string_view s);

/// `s` as a JSON string, with its quotes: "a \"b\"". Bytes that are not
/// UTF-8 (a file name can hold any) become U+FFFD.
std::string json_quote(std::string_view s);

/// 1234567 -> "1,234,567".
std::string group_digits(uint64_t n);

}  // namespace asmsrv
