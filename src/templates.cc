#include "templates.h"

#include <cstdlib>
#include <stdexcept>

#include "fs.h"

namespace asmsrv {

std::string load_template(const std::string& name) {
  if (const char* dir = std::getenv("ASMSRV_TEMPLATES"); dir && *dir) {
    std::string path = std::string(dir) + "/" + name;
    try {
      return read_file(path);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string(e.what()) + " (ASMSRV_TEMPLATES is set to " + dir +
                               "; unset it to use the templates built into asmsrv)");
    }
  }
  for (const EmbeddedTemplate& t : embedded_templates())
    if (t.name == name) return std::string(t.text);
  throw std::runtime_error("no template named " + name + " is built into asmsrv");
}

std::string render(const std::string& text, const std::map<std::string, std::string>& vars) {
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t open = text.find("{{", pos);
    if (open == std::string::npos) break;
    size_t close = text.find("}}", open);
    if (close == std::string::npos) throw std::runtime_error("template: unclosed {{");
    out.append(text, pos, open - pos);
    std::string key = text.substr(open + 2, close - open - 2);
    auto it = vars.find(key);
    if (it == vars.end()) throw std::runtime_error("template: unknown key {{" + key + "}}");
    out += it->second;
    pos = close + 2;
  }
  out.append(text, pos);
  return out;
}

}  // namespace asmsrv
