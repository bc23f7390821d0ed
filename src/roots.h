// Directories the server reads or writes at run time (a static site's
// "root"): each is opened once at start, with O_PATH, and every file below
// it is then opened relative to that descriptor with openat2 and
// RESOLVE_BENEATH, so that neither ".." nor a symbolic link can leave it.
#pragma once

#include <string>
#include <vector>

#include "gen.h"
#include "runtime.h"

namespace asmsrv {

class Roots : public Gen {
 public:
  Roots(const Spec& spec, Builder& b, Runtime& rt);
  bool empty() const { return dirs_.empty(); }
  /// dd[]: the descriptor of each directory of run_time_roots(spec).
  Label fds() const { return fds_; }
  /// The struct open_how for reading a file below a root: O_RDONLY |
  /// O_NONBLOCK | O_CLOEXEC, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS.
  Label how_read() const { return how_read_; }
  /// Start-up code: open every root, then check that openat2 works; either
  /// failing prints why and exits 1.
  void emit_open();

 private:
  Runtime& rt_;
  std::vector<std::string> dirs_;
  std::vector<ErrorPrefix> errors_;
  std::vector<Label> paths_;
  Label fds_, how_read_, how_probe_, dot_;
};

}  // namespace asmsrv
