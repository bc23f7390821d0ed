#include "suggest.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

namespace asmsrv {

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diag + (std::tolower(a[i - 1]) == std::tolower(b[j - 1]) ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::optional<std::string_view> closest_word(std::string_view word,
                                             const std::vector<std::string_view>& known) {
  std::string_view best;
  size_t best_d = SIZE_MAX;
  for (std::string_view k : known) {
    size_t d = edit_distance(word, k);
    if (d < best_d) best_d = d, best = k;
  }
  // Not when every letter would change ("r" is not a typo of "run").
  if (best_d <= std::max<size_t>(2, word.size() / 3) && best_d < word.size()) return best;
  return std::nullopt;
}

}  // namespace asmsrv
