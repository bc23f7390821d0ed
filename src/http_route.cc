#include "http_route.h"

#include <fmt/format.h>

#include <algorithm>

namespace asmsrv {

namespace {

// FNV-1a, 32 bits: the hash the generated server computes of a path.
constexpr uint32_t kFnvBasis = 2166136261u;
constexpr uint32_t kFnvPrime = 16777619u;

uint32_t fnv1a(std::string_view s) {
  uint32_t h = kFnvBasis;
  for (unsigned char c : s) {
    h ^= c;
    h *= kFnvPrime;
  }
  return h;
}

}  // namespace

HttpRoute::HttpRoute(const Spec& spec, Builder& b, const ResponseTable& table, const RequestVars& req)
    : Gen(spec, b), t_(table), req_(req) {
  entry_ = local("route");
  if (t_.catch_all >= 0) return;
  normalise_ = local("normalise_path");
  size_t index = 0;  // a directory's path gets its index's name appended
  for (const DiskSite& d : t_.disk_sites) index = std::max(index, d.index.size() + 1);
  norm_buf_ = b_.bss("norm_path", static_cast<uint64_t>(spec_.limits.request_bytes) + 16 + index,
                     "the request's path, decoded and normalised (never longer than it was), and\n"
                     "room for a NUL after it (and a directory's index name)", 16);
  if (!t_.disk_sites.empty() || !t_.upload_sites.empty())
    norm_len_ = b_.bss("norm_len", 8, "its length, for a file read from disk or stored");
  // The methods of every path: a row of 8 response indexes, by method
  // number; [0] and the methods a path lacks: its 405 (or not_found).
  auto row_of = [&](const PathRoutes& p) {
    int other = p.not_allowed >= 0 ? p.not_allowed : t_.not_found;
    std::vector<uint64_t> row(8, static_cast<uint64_t>(other));
    for (int m = 1; m <= kMethodCount; ++m)
      if (p.by_method[m] >= 0) row[m] = static_cast<uint64_t>(p.by_method[m]);
    return row;
  };
  std::vector<Piece> rows;
  std::string paths;
  slots_ = 16;
  while (slots_ < 2 * t_.paths.size()) slots_ *= 2;
  // Open addressing, linear probing; an empty slot has length 0.
  std::vector<std::array<uint64_t, 4>> slot(slots_, {0, 0, 0, 0});
  for (size_t i = 0; i < t_.paths.size(); ++i) {
    const PathRoutes& p = t_.paths[i];
    rows.push_back(Ints{4, row_of(p), fmt::format("{}: {}", i, p.path)});
    uint32_t h = fnv1a(p.path);
    size_t at = h & (slots_ - 1);
    while (slot[at][1] != 0) at = (at + 1) & (slots_ - 1);
    slot[at] = {paths.size(), p.path.size(), i, h};
    paths += p.path;
  }
  std::vector<Piece> slot_pieces;
  for (size_t i = 0; i < slots_; ++i)
    slot_pieces.push_back(Ints{4, {slot[i][0], slot[i][1], slot[i][2], slot[i][3]},
                               slot[i][1] ? t_.paths[slot[i][2]].path : std::string("empty")});
  paths_ = b_.bytes("route_paths", paths, "every exact path, back to back");
  rows_ = b_.data("route_methods", Section::rodata, std::move(rows),
                  "per path, the response for each method (0 and the missing ones: 405)", 32);
  slots_label_ = b_.data("route_slots", Section::rodata, std::move(slot_pieces),
                         fmt::format("the paths by hash: {} slots of {{ offset in route_paths, length (0: empty),\n"
                                     "row in route_methods, FNV-1a hash }}",
                                     slots_),
                         16);
  for (size_t i = 0; i < t_.fallbacks.size(); ++i) {
    const PathRoutes& p = t_.fallbacks[i];
    fallback_paths_.push_back(b_.bytes(fmt::format("fallback_path_{}", i), p.path, "a static site's prefix"));
    fallback_rows_.push_back(b_.data(fmt::format("fallback_methods_{}", i), Section::rodata,
                                     {Ints{4, row_of(p), p.path + " and below: its fallback"}}, "", 32));
  }
}

void HttpRoute::emit() {
  if (t_.catch_all >= 0) {
    block(entry_, "route: one response", nullptr, "return the response",
          "\"response\" answers every path with every known method (HEAD without a body).");
    set(Reg::rax, t_.catch_all, "the response");
    ret();
    return;
  }
  Label bad = local("bad_path");
  Label hash = local("hash");
  Label hashed = local("hashed");
  Label probe = local("probe");
  Label next = local("next_slot");
  Label found = local("found");
  Label miss = local("miss");
  block(entry_, "route by exact path", nullptr,
        "path = normalise(path); h = fnv1a(path); for (i = h; slots[i].len; i++) if (match) return row[method]",
        fmt::format("The paths are laid out at compile time in a hash table of {} slots,\n"
                    "so a lookup costs one pass over the path and, almost always, one\n"
                    "compare. Unknown paths: a static site's fallback, or not_found.",
                    slots_));
  call(normalise_, "r9 = the path, r10 = its length; eax != 0: a bad path");
  op(Op::test, r32(Reg::rax), r32(Reg::rax));
  jmp(Op::jnz, bad);
  if (norm_len_.id >= 0) mov(var64(norm_len_), r64(Reg::r10), "for a file read from disk");
  set(Reg::rax, static_cast<int32_t>(kFnvBasis), "FNV-1a: the offset basis");
  zero(Reg::rcx);
  label(hash);
  op(Op::cmp, r64(Reg::rcx), r64(Reg::r10));
  jmp(Op::jae, hashed);
  b_.emit(Op::movzx, {r32(Reg::rdx), mem_index(Width::b8, Reg::r9, Reg::rcx)});
  op(Op::xor_, r32(Reg::rax), r32(Reg::rdx), "h ^= byte");
  b_.emit(Op::imul, {r32(Reg::rax), r32(Reg::rax), imm(kFnvPrime)}, "h *= 16777619");
  op(Op::inc, r64(Reg::rcx));
  jmp(Op::jmp, hash);
  label(hashed);
  mov(r32(Reg::r11), r32(Reg::rax), "r11d = h");
  op(Op::and_, r32(Reg::rax), imm(static_cast<int64_t>(slots_ - 1)), "eax = the slot: h % slots");
  label(probe);
  mov(r32(Reg::rdx), r32(Reg::rax));
  op(Op::shl, r64(Reg::rdx), imm(4), "16 bytes a slot");
  lea(Reg::r8, slots_label_);
  op(Op::add, r64(Reg::r8), r64(Reg::rdx), "r8 = the slot");
  mov(r32(Reg::rcx), mem32(Reg::r8, 4), "its path's length");
  op(Op::test, r32(Reg::rcx), r32(Reg::rcx));
  jmp(Op::jz, miss, "an empty slot: no such path");
  op(Op::cmp, r64(Reg::rcx), r64(Reg::r10));
  jmp(Op::jne, next);
  op(Op::cmp, mem32(Reg::r8, 12), r32(Reg::r11), "the same hash?");
  jmp(Op::jne, next);
  mov(r32(Reg::rsi), mem32(Reg::r8), "offset in route_paths");
  lea(Reg::rdx, paths_);
  op(Op::add, r64(Reg::rsi), r64(Reg::rdx));
  mov(r64(Reg::rdi), r64(Reg::r9));
  plain(Op::repe_cmpsb, "compare while equal");
  jmp(Op::je, found);
  label(next);
  op(Op::inc, r32(Reg::rax));
  op(Op::and_, r32(Reg::rax), imm(static_cast<int64_t>(slots_ - 1)), "the next slot, round");
  jmp(Op::jmp, probe);
  label(found);
  mov(r32(Reg::rax), mem32(Reg::r8, 8), "its row");
  op(Op::shl, r64(Reg::rax), imm(5), "32 bytes a row");
  lea(Reg::rdx, rows_);
  op(Op::add, r64(Reg::rdx), r64(Reg::rax));
  Label by_method = local("by_method");
  label(by_method);
  mov(r32(Reg::rax), var32(req_.method));
  op(Op::shl, r64(Reg::rax), imm(2), "4 bytes a method");
  op(Op::add, r64(Reg::rdx), r64(Reg::rax));
  mov(r32(Reg::rax), mem32(Reg::rdx), "the response for this method");
  ret();
  label(bad);
  set(Reg::rax, t_.bad_request, "400: a bad escape, an escaped NUL or '/', .. above /");
  ret();

  block(miss, "route: no exact path", nullptr,
        t_.fallbacks.empty() ? "return not_found"
                             : "for each site prefix with a fallback, longest first: if (path starts with it) "
                               "return its row[method];\n   return not_found",
        t_.fallbacks.empty() ? "" : "A single-page app's routes all get its fallback file.");
  for (size_t i = 0; i < t_.fallbacks.size(); ++i) {
    const std::string& prefix = t_.fallbacks[i].path;
    Label no = local("not_under");
    op(Op::cmp, r64(Reg::r10), dec(static_cast<int64_t>(prefix.size())), "\"" + prefix + "\"");
    jmp(Op::jb, no);
    mov(r64(Reg::rdi), r64(Reg::r9));
    lea(Reg::rsi, fallback_paths_[i]);
    set(Reg::rcx, static_cast<int64_t>(prefix.size()));
    plain(Op::repe_cmpsb, "compare while equal");
    jmp(Op::jne, no);
    lea(Reg::rdx, fallback_rows_[i]);
    jmp(Op::jmp, by_method);
    label(no);
  }
  set(Reg::rax, t_.not_found, "404: not_found");
  ret();
  emit_normalise();
}

void HttpRoute::emit_normalise() {
  Label segment = local("segment");
  Label seg_char = local("segment_char");
  Label store = local("store");
  Label slash_end = local("slash");
  Label seg_end = local("segment_end");
  Label not_dot = local("not_dot");
  Label keep = local("keep");
  Label back = local("back");
  Label after = local("after");
  Label done = local("done");
  Label bad = local("bad");
  block(normalise_, "subroutine normalise_path", nullptr,
        "r9 = norm_path = remove_dot_segments(percent_decode(req_path)), r10 = its length; eax = 0, or 1: bad",
        "RFC 3986 6.2.2: routes match the path as its bytes are meant, however\n"
        "escaped: %XX decoded; a bad escape, a decoded NUL or '/' are bad (400). Segment\n"
        "by segment: \".\" is dropped, \"..\" drops the segment before it (above / is\n"
        "bad), an empty one (\"//\") is merged. rsi walks the path to r8, rdi writes,\n"
        "r11 = where the current segment starts in norm_path. Clobbers rax-rdx,\n"
        "rsi, rdi, r8-r11.");
  mov(r64(Reg::rsi), var64(req_.path));
  mov(r64(Reg::r8), r64(Reg::rsi));
  op(Op::add, r64(Reg::r8), var64(req_.path_len), "r8 = its end");
  lea(Reg::r9, norm_buf_);
  mov(r64(Reg::rdi), r64(Reg::r9));
  mov(mem8(Reg::rdi), chr('/'), "every path starts with '/'");
  op(Op::inc, r64(Reg::rdi));
  op(Op::inc, r64(Reg::rsi), "past the request's own");
  label(segment);
  mov(r64(Reg::r11), r64(Reg::rdi), "a segment starts");
  zero(Reg::rdx, "edx = 1 when a '/' ends it");
  label(seg_char);
  op(Op::cmp, r64(Reg::rsi), r64(Reg::r8));
  jmp(Op::jae, seg_end);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::inc, r64(Reg::rsi));
  op(Op::cmp, r32(Reg::rax), chr('/'));
  jmp(Op::je, slash_end);
  op(Op::cmp, r32(Reg::rax), chr('%'));
  jmp(Op::jne, store);
  lea(Reg::rax, mem(Width::none, Reg::rsi, 2));
  op(Op::cmp, r64(Reg::rax), r64(Reg::r8));
  jmp(Op::ja, bad, "'%' without two digits");
  zero(Reg::rcx, "ecx = the byte");
  for (int d = 0; d < 2; ++d) {
    b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi, d)});
    hex_value(Reg::rax, bad);
    op(Op::shl, r32(Reg::rcx), imm(4));
    op(Op::or_, r32(Reg::rcx), r32(Reg::rax));
  }
  op(Op::add, r64(Reg::rsi), imm(2));
  op(Op::test, r32(Reg::rcx), r32(Reg::rcx));
  jmp(Op::jz, bad, "%00");
  op(Op::cmp, r32(Reg::rcx), chr('/'));
  jmp(Op::je, bad, "%2F: a '/' that is not a separator");
  mov(r32(Reg::rax), r32(Reg::rcx));
  label(store);
  mov(mem8(Reg::rdi), r8(Reg::rax));
  op(Op::inc, r64(Reg::rdi));
  jmp(Op::jmp, seg_char);
  label(slash_end);
  set(Reg::rdx, 1);
  label(seg_end);
  mov(r64(Reg::rax), r64(Reg::rdi));
  op(Op::sub, r64(Reg::rax), r64(Reg::r11), "rax = the segment's length");
  op(Op::cmp, r64(Reg::rax), imm(1));
  jmp(Op::jne, not_dot);
  op(Op::cmp, mem8(Reg::r11), chr('.'));
  jmp(Op::jne, keep);
  mov(r64(Reg::rdi), r64(Reg::r11), "\".\": dropped");
  jmp(Op::jmp, after);
  label(not_dot);
  op(Op::cmp, r64(Reg::rax), imm(2));
  jmp(Op::jne, keep);
  op(Op::cmp, mem16(Reg::r11), imm(0x2E2E), "\"..\"");
  jmp(Op::jne, keep);
  lea(Reg::rax, mem(Width::none, Reg::r9, 1));
  op(Op::cmp, r64(Reg::r11), r64(Reg::rax));
  jmp(Op::je, bad, "\"..\" above /");
  lea(Reg::rdi, mem(Width::none, Reg::r11, -1), "\"..\": drop it and the segment before");
  label(back);
  op(Op::dec, r64(Reg::rdi));
  op(Op::cmp, mem8(Reg::rdi), chr('/'));
  jmp(Op::jne, back, "norm_path starts with '/': this stops");
  op(Op::inc, r64(Reg::rdi));
  jmp(Op::jmp, after);
  label(keep);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jz, after, "an empty segment: \"//\" is \"/\"");
  op(Op::test, r32(Reg::rdx), r32(Reg::rdx));
  jmp(Op::jz, done);
  mov(mem8(Reg::rdi), chr('/'));
  op(Op::inc, r64(Reg::rdi));
  label(after);
  op(Op::test, r32(Reg::rdx), r32(Reg::rdx));
  jmp(Op::jnz, segment, "a '/' ended it: the next segment");
  label(done);
  mov(r64(Reg::r10), r64(Reg::rdi));
  op(Op::sub, r64(Reg::r10), r64(Reg::r9), "r10 = the length");
  zero(Reg::rax);
  ret();
  label(bad);
  set(Reg::rax, 1);
  ret();
}

}  // namespace asmsrv
