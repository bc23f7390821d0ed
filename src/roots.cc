#include "roots.h"

#include <fmt/format.h>

#include "routes.h"

namespace asmsrv {

using namespace linux;

namespace {

Fields open_how(uint64_t flags, const char* flags_text, uint64_t resolve, const char* resolve_text) {
  return Fields{{{8, flags, std::string("flags = ") + flags_text},
                 {8, 0, "mode: none, nothing is created"},
                 {8, resolve, std::string("resolve = ") + resolve_text}}};
}

}  // namespace

Roots::Roots(const Spec& spec, Builder& b, Runtime& rt) : Gen(spec, b), rt_(rt), dirs_(run_time_roots(spec)) {
  if (dirs_.empty()) return;
  for (size_t i = 0; i < dirs_.size(); ++i)
    errors_.push_back(rt_.error_prefix(fmt::format("error_root_{}", i), "open " + dirs_[i],
                                       {"ENOENT", "EACCES", "ENOTDIR", "ELOOP", "ENAMETOOLONG", "EMFILE", "ENOMEM"}));
  fds_ = b_.bss("root_fds", 4 * dirs_.size(), "each root directory's descriptor (O_PATH), opened at start", 4);
  how_read_ = b_.data("how_read", Section::rodata,
                      {open_how(kORdonly | kONonblock | kOCloexec, "O_RDONLY | O_NONBLOCK | O_CLOEXEC",
                                kResolveBeneath | kResolveNoMagiclinks, "RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS")},
                      "struct open_how: a file below a root, for reading. O_NONBLOCK: a FIFO does\n"
                      "not block the open (it is refused after fstat).", 8);
  how_probe_ = b_.data("how_probe", Section::rodata,
                       {open_how(kOPath | kOCloexec, "O_PATH | O_CLOEXEC", kResolveBeneath, "RESOLVE_BENEATH")},
                       "struct open_how: the start-up check that openat2 works", 8);
  dot_ = b_.bytes("dot_path", std::string(".\0", 2), "\".\": a root itself");
  for (size_t i = 0; i < dirs_.size(); ++i)
    paths_.push_back(
        b_.bytes(fmt::format("root_path_{}", i), dirs_[i] + '\0', "a root, NUL-terminated for openat(2)"));
}

void Roots::emit_open() {
  if (dirs_.empty()) return;
  for (size_t i = 0; i < dirs_.size(); ++i) {
    next_block(local(i == 0 ? std::string("open_root") : fmt::format("open_root_{}", i)),
               fmt::format("open the root {}", dirs_[i]), &kOpenat,
               fmt::format("root_fds[{}] = openat(AT_FDCWD, \"{}\", O_PATH | O_DIRECTORY | O_CLOEXEC)", i, dirs_[i]),
               i > 0 ? ""
                     : "Each directory served or written at run time is opened once, here: a\n"
                       "missing one stops the server now, not at its first request. O_PATH: the\n"
                       "descriptor only names the directory; files are opened below it.");
    set(Reg::rdi, kAtFdcwd, "AT_FDCWD: a relative root is the working directory's");
    lea(Reg::rsi, paths_[i], "pathname");
    set(Reg::rdx, kOPath | kODirectory | kOCloexec, "O_PATH | O_DIRECTORY | O_CLOEXEC");
    zero(Reg::r10, "mode: none");
    sys(kOpenat);
    rt_.die_if_failed(errors_[i]);
    lea(Reg::rdi, fds_);
    mov(mem32(Reg::rdi, static_cast<int32_t>(4 * i)), r32(Reg::rax), fmt::format("root_fds[{}]", i));
  }
  Label works = local("works");
  next_block(local("check_openat2"), "check that openat2 works", &kOpenat2,
             "fd = openat2(root_fds[0], \".\", &how_probe, sizeof how_probe); if (fd < 0) die; close(fd)",
             "Files are opened with openat2(2) and RESOLVE_BENEATH (Linux 5.6): without\n"
             "it, \"..\" and symbolic links could not be kept inside the roots, so the\n"
             "server refuses to start. ENOSYS: an older kernel; EPERM: a seccomp\n"
             "profile (an old container runtime's) that forbids it.");
  mov(r32(Reg::rdi), var32(fds_), "dirfd = root_fds[0]");
  lea(Reg::rsi, dot_, "\".\"");
  lea(Reg::rdx, how_probe_, "how");
  set(Reg::r10, kOpenHowBytes, "size: sizeof(struct open_how)");
  sys(kOpenat2);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jns, works);
  rt_.fail_with("error_openat2",
                "openat2 is not available (Linux 5.6 or later, and a seccomp profile that allows it); "
                "files are served only with it");
  label(works);
  mov(r64(Reg::rdi), r64(Reg::rax), "the probe's descriptor");
  sys(kClose);
}

}  // namespace asmsrv
