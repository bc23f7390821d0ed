// "Did you mean": the closest of a few known words to a mistyped one, used
// for spec keys and for subcommands.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace asmsrv {

/// Edit distance (insert, delete, substitute; case-insensitive).
size_t edit_distance(std::string_view a, std::string_view b);

/// The word of `known` closest to `word`, when it is close enough to be a
/// likely typo (at most 2 edits, or a third of the word's length).
std::optional<std::string_view> closest_word(std::string_view word,
                                             const std::vector<std::string_view>& known);

}  // namespace asmsrv
