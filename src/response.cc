#include "response.h"

#include <fmt/format.h>

#include <algorithm>

namespace asmsrv {

namespace {

constexpr int kHead = static_cast<int>(Method::HEAD);

// The record's iov entries.
MemOp iov(int entry, int part) { return conn(ConnField::iov, 16 * entry + 8 * part); }

const char* kind_name(ResponseKind k) {
  switch (k) {
    case ResponseKind::fixed: return "fixed";
  }
  return "?";
}

}  // namespace

Responses::Responses(const Spec& spec, Builder& b, Runtime& rt, const ResponseTable& table,
                     const RequestVars& req)
    : Gen(spec, b), rt_(rt), t_(table), req_(req), date_(spec, b, rt) {
  prepare_ = local("prepare_response");
  std::string heads;
  std::vector<Piece> bodies, records;
  uint64_t body_offset = 0;
  for (size_t k = 0; k < t_.responses.size(); ++k) {
    const CompiledResponse& r = t_.responses[k];
    uint64_t head_offset = heads.size();
    // Each head is laid out without its last CR LF: the Date line ends it.
    std::array<uint64_t, 3> len{};
    for (size_t i = 0; i < 3; ++i) {
      if (r.heads[i].empty()) continue;
      heads += r.heads[i].substr(0, r.heads[i].size() - 2);
      len[i] = r.heads[i].size() - 2;
    }
    if (!r.file.empty())
      bodies.push_back(Incbin{r.file, r.body_size});
    else if (!r.body.empty())
      bodies.push_back(Bytes{r.body});
    uint64_t flags = static_cast<uint64_t>(r.kind) | (r.always_close ? kRespAlwaysClose : 0);
    records.push_back(Ints{4,
                           {head_offset, len[0], len[1], len[2], body_offset,
                            r.body_size, static_cast<uint64_t>(r.status), flags},
                           fmt::format("{}: {} ({}{})", k, r.what, kind_name(r.kind),
                                       r.always_close ? ", closes" : "")});
    body_offset += r.body_size;
  }
  heads_ = b_.bytes("response_heads", heads,
                    "every response's status line and header fields, three times: with\n"
                    "\"Connection: close\", with nothing (HTTP/1.1 keep-alive), and with\n"
                    "\"Connection: keep-alive\" (HTTP/1.0); protocol errors only close.\n"
                    "The Date line and the blank line follow from date_line.");
  bodies_ = b_.data("response_bodies", Section::rodata, std::move(bodies), "every response's body, back to back");
  responses_ = b_.data("responses", Section::rodata, std::move(records),
                       fmt::format("the response table, one {}-byte record per response: head offset,\n"
                                   "head lengths (close, keep-alive, keep-alive 1.0), body offset,\n"
                                   "body length, status, flags (kind, always close)",
                                   kRespLayout.size),
                       kRespLayout.size);
  if (spec_.log_requests) {
    status_ = b_.bss("last_status", 4, "status of the last response, for the log", 4);
    body_bytes_ = b_.bss("last_body_bytes", 8, "body bytes of the last response, for the log");
  }
  for (size_t i = 0; i < kRespLayout.decl.size(); ++i)
    b_.constant(std::string("resp_") + kRespLayout.decl[i].name, kRespLayout.offset[i], kRespLayout.decl[i].what);
}

void Responses::emit() {
  // One case per kind that the table holds; with one kind, no dispatch at all.
  std::vector<ResponseKind> kinds;
  for (const CompiledResponse& r : t_.responses)
    if (std::find(kinds.begin(), kinds.end(), r.kind) == kinds.end()) kinds.push_back(r.kind);
  block(prepare_, "subroutine prepare_response(eax = response index)", nullptr,
        "r10 = &responses[index]; switch (r10->kind) ...",
        std::string("Looks the response up in the table; its kind says how its parts are made.\n"
                    "The record's conn_mode is already decided.") +
            (spec_.log_requests ? " Also records the status and\nthe body bytes for the access log." : ""));
  mov(r32(Reg::rcx), r32(Reg::rax));
  op(Op::shl, r64(Reg::rcx), imm(kRespLayout.shift), fmt::format("index * {}", kRespLayout.size));
  lea(Reg::r10, responses_);
  op(Op::add, r64(Reg::r10), r64(Reg::rcx), "r10 = &responses[index]");
  if (spec_.log_requests) {
    mov(r32(Reg::rax), resp(Reg::r10, RespField::status));
    mov(var32(status_), r32(Reg::rax), "for the access log");
  }
  std::vector<Label> cases;
  for (ResponseKind k : kinds) cases.push_back(local(std::string("kind_") + kind_name(k)));
  if (kinds.size() > 1) {
    MemOp kind = resp(Reg::r10, RespField::flags);
    kind.width = Width::b8;
    b_.emit(Op::movzx, {r32(Reg::rax), kind}, "the kind: the flags' low byte");
    for (size_t i = 0; i < kinds.size(); ++i) {
      op(Op::cmp, r32(Reg::rax), imm(static_cast<int>(kinds[i])), kind_name(kinds[i]));
      jmp(Op::je, cases[i]);
    }
  }
  for (size_t i = 0; i < kinds.size(); ++i) {
    if (i == 0 && kinds.size() == 1) falls_into(cases[i]);
    switch (kinds[i]) {
      case ResponseKind::fixed: emit_fixed(cases[i]); break;
    }
  }
  date_.emit();
}

void Responses::emit_fixed(Label l) {
  Label head_ready = local("head_ready");
  Label body_ready = local("body_ready");
  block(l, "prepare_response: a fixed response", nullptr,
        "iov[0] = { head for conn_mode }; iov[1] = { date_line }; iov[2] = { body, HEAD ? 0 : body_len }",
        "Head and body were made at compile time; the Date line is made at most once\n"
        "a second (refresh_date). HEAD gets the same head and no body.");
  lea(Reg::rsi, heads_);
  mov(r32(Reg::rax), resp(Reg::r10, RespField::head), "head offset");
  op(Op::add, r64(Reg::rsi), r64(Reg::rax), "rsi = the head with Connection: close");
  mov(r32(Reg::rdx), resp(Reg::r10, RespField::len_close), "rdx = its length");
  b_.emit(Op::movzx, {r32(Reg::rcx), conn(ConnField::mode)});
  op(Op::test, r32(Reg::rcx), r32(Reg::rcx));
  jmp(Op::jz, head_ready, "mode 0: close");
  op(Op::add, r64(Reg::rsi), r64(Reg::rdx), "the keep-alive head follows it");
  mov(r32(Reg::rdx), resp(Reg::r10, RespField::len_keep));
  op(Op::cmp, r32(Reg::rcx), imm(1));
  jmp(Op::je, head_ready, "mode 1: HTTP/1.1 keep-alive");
  op(Op::add, r64(Reg::rsi), r64(Reg::rdx), "then the HTTP/1.0 keep-alive head");
  mov(r32(Reg::rdx), resp(Reg::r10, RespField::len_keep10));
  label(head_ready);
  mov(iov(0, 0), r64(Reg::rsi), "iov[0] = { head, head_len }");
  mov(iov(0, 1), r64(Reg::rdx));
  lea(Reg::r8, bodies_);
  mov(r32(Reg::rax), resp(Reg::r10, RespField::body), "body offset");
  op(Op::add, r64(Reg::r8), r64(Reg::rax), "r8 = the body");
  mov(r32(Reg::r9), resp(Reg::r10, RespField::body_len), "r9 = its length");
  op(Op::cmp, var32(req_.method), imm(kHead), "HEAD?");
  jmp(Op::jne, body_ready);
  zero(Reg::r9, "HEAD: the same head, no body");
  label(body_ready);
  mov(iov(2, 0), r64(Reg::r8), "iov[2] = { body, body_len }");
  mov(iov(2, 1), r64(Reg::r9));
  if (spec_.log_requests) mov(var64(body_bytes_), r64(Reg::r9), "for the access log");
  date_.refresh_if_stale();
  lea(Reg::rax, date_.line());
  mov(iov(1, 0), r64(Reg::rax), "iov[1] = { date_line, 39 }");
  mov(iov(1, 1), dec(HttpDate::kLineBytes));
  ret();
}

}  // namespace asmsrv
