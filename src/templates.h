// templates/: what is text rather than code (file header, per-dialect
// skeletons, default bodies). They are compiled into asmsrv at build time
// (cmake/embed_templates.cmake), so a copied binary works anywhere;
// $ASMSRV_TEMPLATES names a directory to read them from instead, for
// trying an edit without rebuilding asmsrv.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace asmsrv {

struct EmbeddedTemplate {
  std::string_view name;
  std::string_view text;
};

/// Every file of templates/ as it was when asmsrv was built (templates_data.cc).
const std::vector<EmbeddedTemplate>& embedded_templates();

/// The text of template `name`: from $ASMSRV_TEMPLATES/<name> when that
/// variable is set, else the compiled-in copy. Throws std::runtime_error
/// when there is no such template.
std::string load_template(const std::string& name);

/// Replaces every {{key}} in `text` with vars[key]; an unknown key throws.
std::string render(const std::string& text, const std::map<std::string, std::string>& vars);

}  // namespace asmsrv
