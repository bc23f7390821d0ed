// Routing, compiled from the spec: the request's path and method to the index
// of the response that answers it.
#pragma once

#include <vector>

#include "gen.h"
#include "http_parse.h"
#include "routes.h"

namespace asmsrv {

class HttpRoute : public Gen {
 public:
  HttpRoute(const Spec& spec, Builder& b, const ResponseTable& table, const RequestVars& req);
  /// parse_request's tail: eax = the response index, then ret.
  Label entry() const { return entry_; }
  /// The path as routing decoded and normalised it (norm_path, norm_len),
  /// for a response read from disk; ids -1 for a spec with one response.
  Label norm_path() const { return norm_buf_; }
  Label norm_len() const { return norm_len_; }
  void emit();

 private:
  void emit_normalise();
  const ResponseTable& t_;
  const RequestVars& req_;
  Label entry_, normalise_, norm_buf_, norm_len_, paths_, rows_, slots_label_;
  size_t slots_ = 0;  // a power of two, at least twice the paths
  std::vector<Label> fallback_paths_, fallback_rows_;
};

}  // namespace asmsrv
