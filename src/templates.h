// templates/: what is text rather than code (file header, per-dialect
// skeletons, default bodies). Found next to the installed binary, in the
// source tree, or where $ASMSRV_TEMPLATES points.
#pragma once

#include <map>
#include <string>

namespace asmsrv {

/// The templates directory; throws std::runtime_error naming where it looked.
std::string templates_dir();

/// The text of templates/<name>; throws std::runtime_error when unreadable.
std::string load_template(const std::string& name);

/// Replaces every {{key}} in `text` with vars[key]; an unknown key throws.
std::string render(const std::string& text, const std::map<std::string, std::string>& vars);

}  // namespace asmsrv
