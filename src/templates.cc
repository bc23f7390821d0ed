#include "templates.h"

#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <vector>

#include "fs.h"

namespace asmsrv {

namespace fsys = std::filesystem;

std::string templates_dir() {
  std::vector<fsys::path> tried;
  if (const char* env = std::getenv("ASMSRV_TEMPLATES")) tried.emplace_back(env);
  std::error_code ec;
  fsys::path exe = fsys::read_symlink("/proc/self/exe", ec);
  if (!ec) tried.push_back(exe.parent_path() / ASMSRV_INSTALL_TEMPLATES_REL);
  tried.emplace_back(ASMSRV_SOURCE_TEMPLATES);
  for (const fsys::path& dir : tried) {
    if (fsys::is_regular_file(dir / "header.txt", ec))
      return fsys::weakly_canonical(dir).string();
  }
  std::string where;
  for (const fsys::path& dir : tried) where += "\n  " + dir.lexically_normal().string();
  throw std::runtime_error("cannot find the templates directory; looked in:" + where);
}

std::string load_template(const std::string& name) {
  return read_file(templates_dir() + "/" + name);
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
