#include "http_route.h"

#include <fmt/format.h>

namespace asmsrv {

HttpRoute::HttpRoute(const Spec& spec, Builder& b, const ResponseTable& table, const RequestVars& req)
    : Gen(spec, b), t_(table), req_(req) {
  entry_ = local("route");
  for (size_t i = 0; i < t_.paths.size(); ++i)
    path_data_.push_back(b_.bytes(fmt::format("route_path_{}", i), t_.paths[i].path,
                                  fmt::format("route path {}", i)));
}

void HttpRoute::emit() {
  if (t_.catch_all >= 0) {
    block(entry_, "route: one response", nullptr, "return the response",
          "\"response\" answers every path with every known method (HEAD without a body).");
    set(Reg::rax, t_.catch_all, "the response");
    ret();
    return;
  }
  block(entry_, "route by exact path", nullptr,
        "for each route path: if (len == strlen(p) && memcmp(path, p, len) == 0) ...",
        "A compare chain generated from the spec: the length first, then the bytes.\n"
        "Unknown paths get not_found.");
  mov(r64(Reg::r9), var64(req_.path), "r9 = the path");
  mov(r64(Reg::r10), var64(req_.path_len), "r10 = its length");
  std::vector<Label> by_path;
  for (size_t i = 0; i < t_.paths.size(); ++i) {
    const PathRoutes& pr = t_.paths[i];
    Label next = local("not_" + std::to_string(i));
    by_path.push_back(local(fmt::format("route_{}", i)));
    op(Op::cmp, r64(Reg::r10), dec(static_cast<int64_t>(pr.path.size())), "\"" + pr.path + "\"");
    jmp(Op::jne, next);
    mov(r64(Reg::rsi), r64(Reg::r9));
    lea(Reg::rdi, path_data_[i]);
    set(Reg::rcx, static_cast<int64_t>(pr.path.size()));
    plain(Op::repe_cmpsb, "compare while equal");
    jmp(Op::je, by_path.back());
    label(next);
  }
  set(Reg::rax, t_.not_found, "404: not_found");
  ret();
  for (size_t i = 0; i < t_.paths.size(); ++i) {
    const PathRoutes& pr = t_.paths[i];
    block(by_path[i], "route: the methods of " + pr.path, nullptr, "switch (method)",
          pr.not_allowed >= 0 ? "Other methods: 405 with Allow." : "");
    mov(r32(Reg::rcx), var32(req_.method));
    for (int m = 1; m <= kMethodCount; ++m) {
      if (pr.by_method[m] < 0) continue;
      Label no = local(std::string("not_") + kMethodNames[m]);
      op(Op::cmp, r32(Reg::rcx), imm(m), kMethodNames[m]);
      jmp(Op::jne, no);
      set(Reg::rax, pr.by_method[m], t_.responses[pr.by_method[m]].what);
      ret();
      label(no);
    }
    if (pr.not_allowed >= 0) {
      set(Reg::rax, pr.not_allowed, "405 Method Not Allowed");
    } else {
      set(Reg::rax, t_.not_found, "never: every method has a route here");
    }
    ret();
  }
}

}  // namespace asmsrv
