#include "response.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace asmsrv {

namespace {

// The tables below are laid out as 8 dwords a record.
static_assert(kRespLayout.size == 8 * 4 && kRepLayout.size == 8 * 4);

const char* kind_name(ResponseKind k) {
  switch (k) {
    case ResponseKind::fixed: return "fixed";
    case ResponseKind::entity: return "entity";
    case ResponseKind::redirect: return "redirect";
    case ResponseKind::disk: return "disk";
    case ResponseKind::upload: return "upload";
  }
  return "?";
}

constexpr std::string_view kConnClose = "Connection: close\r\n";
constexpr std::string_view kConnKeep10 = "Connection: keep-alive\r\n";

}  // namespace

Responses::Responses(const Spec& spec, Builder& b, Runtime& rt, const ResponseTable& table,
                     const RequestVars& req, const Roots& roots, NormalisedPath path)
    : Gen(spec, b), rt_(rt), t_(table), req_(req), date_(spec, b, rt), roots_(roots), norm_(path) {
  prepare_ = local("prepare_response");
  finish_ = local("finish_response");
  std::string heads;
  std::vector<Piece> bodies, records, reps;
  uint64_t body_offset = 0;
  // Identical bodies are laid out once: an entity's by its ETag.
  std::map<std::string, uint64_t> body_at;
  auto add_body = [&](const std::string& key, const std::string& file, const std::string& inline_body,
                      uint64_t size) -> uint64_t {
    if (!key.empty())
      if (auto it = body_at.find(key); it != body_at.end()) return it->second;
    uint64_t at = body_offset;
    if (!file.empty())
      bodies.push_back(Incbin{file, size});
    else if (size > 0)
      bodies.push_back(Bytes{inline_body});
    body_offset += size;
    if (!key.empty()) body_at[key] = at;
    return at;
  };
  uint64_t rep_count = 0;
  for (size_t k = 0; k < t_.responses.size(); ++k) {
    const CompiledResponse& r = t_.responses[k];
    entities_ |= r.kind == ResponseKind::entity;
    redirects_ |= r.kind == ResponseKind::redirect;
    disk_ |= r.kind == ResponseKind::disk;
    uploads_ |= r.kind == ResponseKind::upload;
    codings_ |= r.reps.size() > 1;
    uint64_t head_offset = heads.size();
    heads += r.head;
    uint64_t flags = static_cast<uint64_t>(r.kind) | (r.always_close ? kRespAlwaysClose : 0);
    uint64_t body = 0, first_rep = rep_count;
    if (r.kind == ResponseKind::entity) {
      for (const CompiledRep& p : r.reps) {
        flags |= uint64_t{1} << (kRespCodingShift + static_cast<int>(p.coding));
        uint64_t fields = heads.size();
        heads += p.fields.text;
        size_t etag_at = p.fields.text.find("ETag: " + p.etag);
        if (p.etag.size() != kEtagBytes || etag_at == std::string::npos)
          throw std::logic_error("an entity's ETag is not strong_etag's: " + p.etag);
        uint64_t at = add_body(p.etag, p.file, p.body, p.size);
        reps.push_back(Ints{4,
                            {fields, p.fields.len_shared, p.fields.len_304, p.fields.len_ranged, p.fields.text.size(), at, p.size,
                             fields + etag_at + 6},
                            fmt::format("{}: {} ({})", rep_count, r.what, kCodingNames[static_cast<int>(p.coding)])});
        ++rep_count;
      }
    } else if (r.kind == ResponseKind::disk || r.kind == ResponseKind::upload) {
      first_rep = static_cast<uint64_t>(r.disk_site);
    } else {
      body = add_body("", r.file, r.body, r.body_size);
    }
    records.push_back(Ints{4,
                           {head_offset, r.head.size(), body, r.body_size, static_cast<uint64_t>(r.status), flags,
                            first_rep, 0},
                           fmt::format("{}: {} ({}{})", k, r.what, kind_name(r.kind),
                                       r.always_close ? ", closes" : "")});
  }
  heads_ = b_.bytes("response_heads", heads,
                    "every response's head: a fixed one's status line and field lines; an\n"
                    "entity's 200 status line, then each representation's field lines. The\n"
                    "Connection line and the Date line follow from conn_close/conn_keep10 and\n"
                    "date_line.");
  bodies_ = b_.data("response_bodies", Section::rodata, std::move(bodies),
                    "every response's body, back to back; identical bodies once");
  responses_ = b_.data("responses", Section::rodata, std::move(records),
                       fmt::format("the response table, one {}-byte record per response: head offset and\n"
                                   "length, body offset and length, status, flags (kind, always close,\n"
                                   "codings), first representation",
                                   kRespLayout.size),
                       kRespLayout.size);
  if (entities_)
    reps_ = b_.data("representations", Section::rodata, std::move(reps),
                    fmt::format("an entity's representations, one {}-byte record each: field lines\n"
                                "offset, the lengths a 416, 304, 206 and 200 send of them, body offset\n"
                                "and length, ETag offset",
                                kRepLayout.size),
                    kRepLayout.size);
  conn_close_ = b_.bytes("conn_close", std::string(kConnClose), "the Connection line of a closing answer");
  conn_keep10_ = b_.bytes("conn_keep10", std::string(kConnKeep10),
                          "... of a keep-alive answer to HTTP/1.0 (HTTP/1.1 needs none)");
  if (entities_ || disk_) {
    status_304_ = b_.bytes("status_304", std::string(kStatus304), "an entity's status lines");
    status_206_ = b_.bytes("status_206", std::string(kStatus206), "");
    status_416_ = b_.bytes("status_416", std::string(kStatus416), "");
    range_text_ = b_.bytes("range_text", std::string(kRangeText), "what a 206 makes in the scratch");
    length_text_ = b_.bytes("length_text", std::string(kLengthText), "");
    unsatisfied_text_ = b_.bytes("unsatisfied_text", std::string(kUnsatisfied), "... and a 416");
    if (codings_) choose_coding_ = local("choose_coding");
    etag_listed_ = local("etag_listed");
    parse_range_ = local("parse_range");
    range_number_ = local("range_number");
  }
  if (redirects_) crlf_ = b_.bytes("crlf", "\r\n", "the end of a redirect's Location line");
  if (disk_) make_disk_data();
  if (uploads_) make_upload_data();
  if (spec_.log_requests) {
    status_ = b_.bss("last_status", 4, "status of the last response, for the log", 4);
    body_bytes_ = b_.bss("last_body_bytes", 8, "body bytes of the last response, for the log");
  }
  for (size_t i = 0; i < kRespLayout.decl.size(); ++i)
    b_.constant(std::string("resp_") + kRespLayout.decl[i].name, kRespLayout.offset[i], kRespLayout.decl[i].what);
  if (entities_)
    for (size_t i = 0; i < kRepLayout.decl.size(); ++i)
      b_.constant(std::string("rep_") + kRepLayout.decl[i].name, kRepLayout.offset[i], kRepLayout.decl[i].what);
}

void Responses::set_part(IovPart p, Operand base, Operand len, const std::string& what) {
  mov(iov_base(p), base, fmt::format("iov[{}] = {}", kIovPartNames[static_cast<int>(p)], what));
  mov(iov_len(p), len);
}

void Responses::head_part(const std::string& what) {
  lea(Reg::rsi, heads_);
  mov(r32(Reg::rax), resp(Reg::r10, RespField::head), "head offset");
  op(Op::add, r64(Reg::rsi), r64(Reg::rax), "rsi = the head");
  mov(r32(Reg::rdx), resp(Reg::r10, RespField::head_len));
  set_part(IovPart::status, r64(Reg::rsi), r64(Reg::rdx), what);
}

void Responses::jmp_if_one_of(Reg r, std::string_view chars, Label to) {
  for (char c : chars) {
    op(Op::cmp, r32(r), chr(c));
    jmp(Op::je, to);
  }
}

void Responses::status_line(Label text, size_t len, int status) {
  lea(Reg::rax, text);
  set_part(IovPart::status, r64(Reg::rax), dec(static_cast<int64_t>(len)), fmt::format("the {} status line", status));
  if (spec_.log_requests) mov(var32(status_), imm(status), "for the access log");
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
    for (size_t i = 0; i + 1 < kinds.size(); ++i) {
      op(Op::cmp, r32(Reg::rax), imm(static_cast<int>(kinds[i])), kind_name(kinds[i]));
      jmp(Op::je, cases[i]);
    }
    jmp(Op::jmp, cases.back(), kind_name(kinds.back()));
  }
  for (size_t i = 0; i < kinds.size(); ++i) {
    if (i == 0 && kinds.size() == 1) falls_into(cases[i]);
    switch (kinds[i]) {
      case ResponseKind::fixed: emit_fixed(cases[i]); break;
      case ResponseKind::entity: emit_entity(cases[i]); break;
      case ResponseKind::redirect: emit_redirect(cases[i]); break;
      case ResponseKind::disk: emit_disk(cases[i]); break;
      case ResponseKind::upload: emit_upload(cases[i]); break;
    }
  }
  emit_finish();
  if (codings_) emit_choose_coding();
  if (entities_ || disk_) {
    emit_etag_listed();
    emit_parse_range();
  }
  if (disk_) {
    emit_disk_redirect(disk_redirect_);
    emit_stat_file();
    emit_media_type();
    emit_open_failed();
  }
  date_.emit();
}

void Responses::emit_fixed(Label l) {
  block(l, "prepare_response: a fixed response", nullptr,
        "iov[status] = { head, head_len }; r8, r9 = body, body_len; goto finish_response",
        "Head and body were made at compile time.");
  head_part("the head");
  mov(iov_len(IovPart::runtime), imm(0), "nothing else made here");
  mov(iov_len(IovPart::fields), imm(0));
  lea(Reg::r8, bodies_);
  mov(r32(Reg::rax), resp(Reg::r10, RespField::body), "body offset");
  op(Op::add, r64(Reg::r8), r64(Reg::rax), "r8 = the body");
  mov(r32(Reg::r9), resp(Reg::r10, RespField::body_len), "r9 = its length");
  jmp(Op::jmp, finish_);
}

void Responses::emit_redirect(Label l) {
  block(l, "prepare_response: a redirect", nullptr,
        "iov[status] = { head, head_len }; iov[runtime] = { query, query_len }; iov[fields] = { \"\\r\\n\" }",
        "The head ends in \"Location: /dir/\", made at compile time; the request's\n"
        "query (\"?x=1\", or nothing) follows, then the CR LF that ends the line.\n"
        "No body.");
  head_part("the head, up to the Location's path");
  mov(r64(Reg::rax), var64(req_.query));
  mov(r64(Reg::rdx), var64(req_.query_len));
  set_part(IovPart::runtime, r64(Reg::rax), r64(Reg::rdx), "the query, in the request buffer");
  lea(Reg::rax, crlf_);
  set_part(IovPart::fields, r64(Reg::rax), imm(2), "CR LF");
  zero(Reg::r9, "no body");
  jmp(Op::jmp, finish_);
}

void Responses::emit_finish() {
  Label body_ready = local("body_ready");
  Label conn_ready = local("conn_ready");
  block(finish_, "prepare_response: the parts every answer ends with", nullptr,
        "iov[conn] = Connection line for conn_mode; iov[date] = { date_line, 39 };\n"
        "   iov[body] = { r8, HEAD ? 0 : r9 }",
        "The Date line is made at most once a second (refresh_date). HEAD gets\n"
        "the same head and no body.");
  op(Op::cmp, var32(req_.method), imm(kHeadMethod), "HEAD?");
  jmp(Op::jne, body_ready);
  zero(Reg::r9, "HEAD: the same head, no body");
  label(body_ready);
  set_part(IovPart::body, r64(Reg::r8), r64(Reg::r9), "the body");
  if (spec_.log_requests && disk_) {
    mov(r64(Reg::rax), r64(Reg::r9));
    op(Op::add, r64(Reg::rax), conn(ConnField::file_left), "and a file's bytes, sent after the parts");
    mov(var64(body_bytes_), r64(Reg::rax), "for the access log");
  } else if (spec_.log_requests) {
    mov(var64(body_bytes_), r64(Reg::r9), "for the access log");
  }
  b_.emit(Op::movzx, {r32(Reg::rcx), conn(ConnField::mode)});
  lea(Reg::rsi, conn_close_);
  set(Reg::rdx, static_cast<int64_t>(kConnClose.size()));
  op(Op::test, r32(Reg::rcx), r32(Reg::rcx));
  jmp(Op::jz, conn_ready, "mode 0: Connection: close");
  lea(Reg::rsi, conn_keep10_);
  set(Reg::rdx, static_cast<int64_t>(kConnKeep10.size()));
  op(Op::cmp, r32(Reg::rcx), imm(2));
  jmp(Op::je, conn_ready, "mode 2: HTTP/1.0 keep-alive");
  zero(Reg::rdx, "mode 1: HTTP/1.1 keeps the connection by default");
  label(conn_ready);
  set_part(IovPart::conn, r64(Reg::rsi), r64(Reg::rdx), "the Connection line");
  date_.refresh_if_stale();
  lea(Reg::rax, date_.line());
  set_part(IovPart::date, r64(Reg::rax), dec(HttpDate::kLineBytes), "date_line");
  ret();
}

void Responses::emit_entity(Label l) {
  Label one = local("one_coding");
  Label not_modified = local("not_modified");
  Label no_inm = local("no_if_none_match");
  Label full = local("full");
  Label ranged = local("ranged");
  Label unsatisfiable = local("unsatisfiable");
  Label range_check = local("range");
  block(l, "prepare_response: an entity", nullptr,
        "r11 = its representation for Accept-Encoding;\n"
        "   if ((GET || HEAD) && If-None-Match lists its ETag) 304;\n"
        "   else if (GET && Range && (!If-Range || If-Range == ETag)) 206 or 416; else 200",
        "RFC 9110 13.2.2: If-None-Match first, then Range (14.2), which only GET\n"
        "honours; a Range that is malformed, has several ranges or another unit is\n"
        "ignored: the whole body. Each answer sends a prefix of the\n"
        "representation's field lines (rep_len_304, rep_len_ranged, rep_len_full).");
  mov(r32(Reg::rcx), resp(Reg::r10, RespField::flags));
  op(Op::shr, r32(Reg::rcx), imm(kRespCodingShift), "ecx = its codings: 1 br, 2 gzip, 4 identity");
  zero(Reg::rax, "the first representation");
  if (codings_) {
    op(Op::cmp, r32(Reg::rcx), imm(1 << static_cast<int>(Coding::identity)));
    jmp(Op::je, one, "identity alone: nothing to choose");
    op(Op::push, r64(Reg::r10));
    call(choose_coding_, "eax = how many representations come before the chosen one");
    op(Op::pop, r64(Reg::r10));
  } else {
    note("Every entity here has one representation: nothing to choose.");
  }
  label(one);
  op(Op::add, r32(Reg::rax), resp(Reg::r10, RespField::reps));
  op(Op::shl, r64(Reg::rax), imm(kRepLayout.shift), fmt::format("index * {}", kRepLayout.size));
  lea(Reg::r11, reps_);
  op(Op::add, r64(Reg::r11), r64(Reg::rax), "r11 = the representation");
  note("rdi = its field lines; r8, r9 = its body and length.");
  lea(Reg::rdi, heads_);
  mov(r32(Reg::rax), rep(Reg::r11, RepField::fields));
  op(Op::add, r64(Reg::rdi), r64(Reg::rax));
  set_part(IovPart::fields, r64(Reg::rdi), imm(0), "its field lines; the length below");
  lea(Reg::r8, bodies_);
  mov(r32(Reg::rax), rep(Reg::r11, RepField::body));
  op(Op::add, r64(Reg::r8), r64(Reg::rax));
  mov(r32(Reg::r9), rep(Reg::r11, RepField::body_len));
  mov(iov_len(IovPart::runtime), imm(0));
  op(Op::cmp, var32(req_.method), imm(kHeadMethod));
  jmp(Op::ja, full, "neither GET nor HEAD: no conditions");
  op(Op::cmp, var64(req_.if_none_match_len), imm(0));
  jmp(Op::je, no_inm);
  mov(r64(Reg::rsi), var64(req_.if_none_match));
  mov(r64(Reg::rcx), var64(req_.if_none_match_len));
  lea(Reg::rdx, heads_);
  mov(r32(Reg::rax), rep(Reg::r11, RepField::etag));
  op(Op::add, r64(Reg::rdx), r64(Reg::rax), "rdx = its ETag, quotes included");
  call(etag_listed_, "eax = 1: the ETag is listed (weak comparison)");
  op(Op::test, r32(Reg::rax), r32(Reg::rax));
  jmp(Op::jnz, not_modified);
  label(no_inm);
  op(Op::cmp, var32(req_.method), imm(kGet));
  jmp(Op::jne, full, "HEAD ignores Range");
  op(Op::cmp, var64(req_.range_len), imm(0));
  jmp(Op::je, full);
  op(Op::cmp, var64(req_.if_range_len), imm(0));
  jmp(Op::je, range_check);
  note("If-Range: the Range counts only when the tag is this one, compared strongly");
  note("(a date or a weak tag never matches here: there is no Last-Modified).");
  op(Op::cmp, var64(req_.if_range_len), imm(kEtagBytes));
  jmp(Op::jne, full);
  mov(r64(Reg::rsi), var64(req_.if_range));
  lea(Reg::rdx, heads_);
  mov(r32(Reg::rax), rep(Reg::r11, RepField::etag));
  op(Op::add, r64(Reg::rdx), r64(Reg::rax), "rdx = the ETag");
  same_etag(Reg::rsi, full);
  label(range_check);
  mov(r64(Reg::rsi), var64(req_.range));
  mov(r64(Reg::rcx), var64(req_.range_len));
  mov(r64(Reg::rdx), r64(Reg::r9), "the representation's length");
  call(parse_range_, "eax = 0 ignore it, 1 satisfiable (rdx = first, rcx = last), 2 not");
  op(Op::cmp, r32(Reg::rax), imm(1));
  jmp(Op::je, ranged);
  jmp(Op::ja, unsatisfiable);
  label(full);
  mov(r32(Reg::rax), rep(Reg::r11, RepField::len_full));
  mov(iov_len(IovPart::fields), r64(Reg::rax), "all of its field lines");
  head_part("the 200 status line");
  jmp(Op::jmp, finish_);

  label(not_modified);
  mov(r32(Reg::rax), rep(Reg::r11, RepField::len_304));
  mov(iov_len(IovPart::fields), r64(Reg::rax), "up to Vary: no Content-Type, no Content-Length");
  status_line(status_304_, kStatus304.size(), 304);
  zero(Reg::r9, "no body");
  jmp(Op::jmp, finish_);

  // 206: "Content-Range: bytes F-L/LEN\r\nContent-Length: N\r\n" in the scratch.
  label(ranged);
  mov(r64(Reg::r10), r64(Reg::rdx), "r10 = the first byte");
  op(Op::add, r64(Reg::r8), r64(Reg::rdx), "the body from there");
  mov(r64(Reg::r9), r64(Reg::rcx));
  op(Op::sub, r64(Reg::r9), r64(Reg::rdx));
  op(Op::inc, r64(Reg::r9), "r9 = last - first + 1 bytes");
  mov(r32(Reg::rax), rep(Reg::r11, RepField::len_ranged));
  mov(iov_len(IovPart::fields), r64(Reg::rax), "all but Content-Length");
  status_line(status_206_, kStatus206.size(), 206);
  scratch_start();
  content_range(Reg::r10, [&] { mov(r32(Reg::rax), rep(Reg::r11, RepField::body_len)); });
  copy_text(length_text_, kLengthText.size());
  mov(r64(Reg::rax), r64(Reg::r9));
  call(rt_.append_u64(), "the bytes sent");
  scratch_end(true);
  jmp(Op::jmp, finish_);

  label(unsatisfiable);
  mov(r32(Reg::rax), rep(Reg::r11, RepField::len_shared));
  mov(iov_len(IovPart::fields), r64(Reg::rax), "only the shared fields");
  status_line(status_416_, kStatus416.size(), 416);
  scratch_start();
  unsatisfied_range([&] { mov(r32(Reg::rax), rep(Reg::r11, RepField::body_len)); }, "the representation's length");
  zero(Reg::r9, "no body");
  jmp(Op::jmp, finish_);
}

Label Responses::location_text() {
  if (location_text_.id < 0)
    location_text_ = b_.bytes("location_text", std::string(kLocation), "a directory's 301 and an upload's 201");
  return location_text_;
}

void Responses::scratch_start() {
  mov(r64(Reg::rdi), conn(ConnField::buf));
  lea(Reg::rdi, mem(Width::none, Reg::rdi, spec_.limits.request_bytes + kRequestBufferSlack),
      "rdi = the scratch, after the request buffer and its slack");
  mov(iov_base(IovPart::runtime), r64(Reg::rdi), "iov[runtime] = the scratch");
}

void Responses::copy_text(Label text, size_t len) {
  lea(Reg::rsi, text);
  set(Reg::rcx, static_cast<int64_t>(len));
  plain(Op::rep_movsb);
}

void Responses::scratch_end(bool crlf) {
  if (crlf) {
    mov(mem16(Reg::rdi), imm(0x0A0D), "CR LF");
    op(Op::add, r64(Reg::rdi), imm(2));
  }
  op(Op::sub, r64(Reg::rdi), iov_base(IovPart::runtime));
  mov(iov_len(IovPart::runtime), r64(Reg::rdi), "its length");
}

void Responses::content_range(Reg first, const std::function<void()>& load_length) {
  copy_text(range_text_, kRangeText.size());
  mov(r64(Reg::rax), r64(first));
  call(rt_.append_u64(), "the first byte");
  mov(mem8(Reg::rdi), chr('-'));
  op(Op::inc, r64(Reg::rdi));
  lea(Reg::rax, mem_index(Width::none, first, Reg::r9, -1), "first + count - 1");
  call(rt_.append_u64(), "the last byte");
  mov(mem8(Reg::rdi), chr('/'));
  op(Op::inc, r64(Reg::rdi));
  load_length();
  call(rt_.append_u64(), "the whole length");
}

void Responses::unsatisfied_range(const std::function<void()>& load_length, const std::string& what) {
  copy_text(unsatisfied_text_, kUnsatisfied.size());
  load_length();
  call(rt_.append_u64(), what);
  copy_text(length_text_, kLengthText.size());
  mov(mem8(Reg::rdi), chr('0'), "Content-Length: 0");
  op(Op::inc, r64(Reg::rdi));
  scratch_end(true);
}

void Responses::same_etag(Reg tag, Label differ) {
  mov(r64(Reg::rax), mem64(tag), "the 18 bytes: 8, 8, then 2");
  op(Op::cmp, r64(Reg::rax), mem64(Reg::rdx));
  jmp(Op::jne, differ);
  mov(r64(Reg::rax), mem64(tag, 8));
  op(Op::cmp, r64(Reg::rax), mem64(Reg::rdx, 8));
  jmp(Op::jne, differ);
  b_.emit(Op::movzx, {r32(Reg::rax), mem16(tag, 16)});
  op(Op::cmp, mem16(Reg::rdx, 16), r16(Reg::rax));
  jmp(Op::jne, differ);
}

void Responses::skip_ows(const std::string& hint) {
  Label loop = local(hint), adv = local(hint + "_char"), done = local(hint + "_done");
  label(loop);
  op(Op::cmp, r64(Reg::rsi), r64(Reg::rdi));
  jmp(Op::jae, done);
  op(Op::cmp, mem8(Reg::rsi), chr(' '));
  jmp(Op::je, adv);
  op(Op::cmp, mem8(Reg::rsi), chr('\t'));
  jmp(Op::jne, done, "rsi at what follows the spaces and tabs");
  label(adv);
  op(Op::inc, r64(Reg::rsi));
  jmp(Op::jmp, loop);
  label(done);
}

void Responses::emit_choose_coding() {
  Label element = local("element");
  Label skip = local("separator");
  Label token = local("token");
  Label token_end = local("token_end");
  Label params = local("params");
  Label param_skip = local("param_skip");
  Label bad_q = local("bad_q");
  Label q_done = local("q_done");
  Label store = local("store");
  Label decide = local("decide");
  Label chosen = local("chosen");
  block(choose_coding_, "subroutine choose_coding(ecx = the codings an entity has)", nullptr,
        "q[br, gzip, identity, *] = from Accept-Encoding; c = argmax over the codings it has of\n"
        "   (q[c] set ? q[c] : q[*] set ? q[*] : c == identity ? 0.001 : 0); eax = c's rank",
        "RFC 9110 12.5.3: each coding's q-value (in thousandths; q=0: not acceptable).\n"
        "Equal values prefer br, then gzip, then identity. No Accept-Encoding: identity;\n"
        "identity that nothing names is the last resort. When nothing is\n"
        "acceptable, identity anyway. x-gzip is gzip. The q-values live on the stack:\n"
        "[rsp] br, [rsp+4] gzip, [rsp+8] identity, [rsp+12] *, -1 when not named.\n"
        "Returns in eax how many of its representations come before the chosen one.\n"
        "Clobbers rcx, rdx, rsi, rdi, r8-r11.");
  op(Op::sub, r64(Reg::rsp), imm(16), "q[4]");
  for (int i = 0; i < 4; ++i) mov(mem32(Reg::rsp, 4 * i), imm(-1));
  mov(r32(Reg::r11), r32(Reg::rcx), "r11d = the codings it has");
  mov(r64(Reg::rsi), var64(req_.accept_encoding));
  mov(r64(Reg::rdi), r64(Reg::rsi));
  op(Op::add, r64(Reg::rdi), var64(req_.accept_encoding_len), "rdi = the value's end (none: rsi)");
  label(element);
  op(Op::cmp, r64(Reg::rsi), r64(Reg::rdi));
  jmp(Op::jae, decide, "every element read");
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  jmp_if_one_of(Reg::rax, ", \t", skip);
  jmp(Op::jmp, token);
  label(skip);
  op(Op::inc, r64(Reg::rsi));
  jmp(Op::jmp, element);
  label(token);
  mov(r64(Reg::rdx), r64(Reg::rsi), "rdx = the coding's name");
  Label tok_loop = local("token_char");
  label(tok_loop);
  op(Op::cmp, r64(Reg::rsi), r64(Reg::rdi));
  jmp(Op::jae, token_end);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  jmp_if_one_of(Reg::rax, ",; \t", token_end);
  op(Op::inc, r64(Reg::rsi));
  jmp(Op::jmp, tok_loop);
  label(token_end);
  mov(r64(Reg::rcx), r64(Reg::rsi));
  op(Op::sub, r64(Reg::rcx), r64(Reg::rdx), "rcx = its length");
  set(Reg::r8, -1, "r8 = its offset in q, -1: a coding no representation has");
  const std::pair<const char*, int> names[] = {{"br", 0}, {"gzip", 1}, {"x-gzip", 1}, {"identity", 2}, {"*", 3}};
  Label named = local("named");
  for (const auto& [name, slot] : names) {
    Label next = local(std::string("not_") + (name[0] == '*' ? "star" : name[0] == 'x' ? "x_gzip" : name));
    op(Op::cmp, r64(Reg::rcx), imm(static_cast<int64_t>(std::string(name).size())));
    jmp(Op::jne, next);
    match_text(Reg::rdx, 0, name, true, next);
    set(Reg::r8, 4 * slot, fmt::format("{}: q + {}", name, 4 * slot));
    jmp(Op::jmp, named);
    label(next);
  }
  label(named);
  set(Reg::r9, 1000, "r9 = its q: 1 unless a parameter says otherwise");
  label(params);
  skip_ows("ows");
  op(Op::cmp, r64(Reg::rsi), r64(Reg::rdi));
  jmp(Op::jae, store);
  op(Op::cmp, mem8(Reg::rsi), chr(';'), "a parameter?");
  jmp(Op::jne, store);
  op(Op::inc, r64(Reg::rsi));
  skip_ows("param_ows");
  op(Op::cmp, r64(Reg::rsi), r64(Reg::rdi));
  jmp(Op::jae, store);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::or_, r32(Reg::rax), imm(0x20));
  op(Op::cmp, r32(Reg::rax), chr('q'));
  jmp(Op::jne, param_skip, "another parameter: ignored");
  op(Op::cmp, mem8(Reg::rsi, 1), chr('='), "the value ends before the head's CR LF: safe to read");
  jmp(Op::jne, param_skip);
  op(Op::add, r64(Reg::rsi), imm(2));
  note("qvalue = ( \"0\" [ \".\" 0*3DIGIT ] ) / ( \"1\" [ \".\" 0*3(\"0\") ] ), in thousandths.");
  op(Op::cmp, r64(Reg::rsi), r64(Reg::rdi));
  jmp(Op::jae, bad_q);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::sub, r32(Reg::rax), chr('0'));
  op(Op::cmp, r32(Reg::rax), imm(1));
  jmp(Op::ja, bad_q, "not 0 or 1");
  b_.emit(Op::imul, {r32(Reg::r9), r32(Reg::rax), imm(1000)});
  op(Op::inc, r64(Reg::rsi));
  op(Op::cmp, r64(Reg::rsi), r64(Reg::rdi));
  jmp(Op::jae, q_done);
  op(Op::cmp, mem8(Reg::rsi), chr('.'));
  jmp(Op::jne, q_done);
  op(Op::inc, r64(Reg::rsi));
  for (int scale : {100, 10, 1}) {
    op(Op::cmp, r64(Reg::rsi), r64(Reg::rdi));
    jmp(Op::jae, q_done);
    b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
    op(Op::sub, r32(Reg::rax), chr('0'));
    op(Op::cmp, r32(Reg::rax), imm(9));
    jmp(Op::ja, q_done);
    if (scale > 1) b_.emit(Op::imul, {r32(Reg::rax), r32(Reg::rax), imm(scale)});
    op(Op::add, r32(Reg::r9), r32(Reg::rax), fmt::format("digit * {}", scale));
    op(Op::inc, r64(Reg::rsi));
  }
  label(q_done);
  op(Op::cmp, r32(Reg::r9), imm(1000));
  jmp(Op::jbe, param_skip);
  label(bad_q);
  set(Reg::r9, 0, "over 1 or malformed: not acceptable");
  label(param_skip);
  op(Op::cmp, r64(Reg::rsi), r64(Reg::rdi));
  jmp(Op::jae, store);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::cmp, r32(Reg::rax), chr(';'));
  jmp(Op::je, params, "the next parameter");
  op(Op::cmp, r32(Reg::rax), chr(','));
  jmp(Op::je, store);
  op(Op::inc, r64(Reg::rsi));
  jmp(Op::jmp, param_skip);
  label(store);
  op(Op::test, r64(Reg::r8), r64(Reg::r8));
  jmp(Op::js, element, "not a coding we have");
  mov(mem_index(Width::b32, Reg::rsp, Reg::r8), r32(Reg::r9), "its q");
  jmp(Op::jmp, element);

  block(decide, "choose_coding: the best coding it has", nullptr,
        "for (c = br; c <= identity; c++) if (has(c) && q(c) > best) best = q(c), rank = n; n += has(c)",
        "r9d = the best q so far, r8d = its rank, ecx = the representations seen.");
  set(Reg::r9, -1);
  zero(Reg::rcx);
  for (int c = 0; c < 3; ++c) {
    Label have = local("q_known"), absent = local("absent"), worse = local("not_better");
    op(Op::test, r32(Reg::r11), imm(1 << c), fmt::format("has it {}?", kCodingNames[c]));
    jmp(Op::jz, absent);
    mov(r32(Reg::rax), mem32(Reg::rsp, 4 * c), fmt::format("q[{}]", kCodingNames[c]));
    op(Op::test, r32(Reg::rax), r32(Reg::rax));
    jmp(Op::jns, have);
    mov(r32(Reg::rax), mem32(Reg::rsp, 12), "q[*]");
    op(Op::test, r32(Reg::rax), r32(Reg::rax));
    jmp(Op::jns, have);
    set(Reg::rax, c == 2 ? 1 : 0, c == 2 ? "identity: acceptable, last" : "not named: not acceptable");
    label(have);
    op(Op::cmp, r32(Reg::rax), r32(Reg::r9));
    jmp(Op::jle, worse, "equal: the earlier coding stays");
    mov(r32(Reg::r9), r32(Reg::rax));
    mov(r32(Reg::r8), r32(Reg::rcx));
    label(worse);
    op(Op::inc, r32(Reg::rcx));
    label(absent);
  }
  op(Op::test, r32(Reg::r9), r32(Reg::r9));
  jmp(Op::jg, chosen);
  lea(Reg::r8, mem(Width::none, Reg::rcx, -1), "nothing acceptable: identity, the last");
  label(chosen);
  mov(r32(Reg::rax), r32(Reg::r8));
  op(Op::add, r64(Reg::rsp), imm(16));
  ret();
}

void Responses::emit_etag_listed() {
  Label loop = local("element");
  Label skip = local("separator");
  Label quoted = local("quoted");
  Label weak = local("weak");
  Label close = local("closing_quote");
  Label yes = local("listed");
  Label no = local("not_listed");
  block(etag_listed_, "subroutine etag_listed(rsi = If-None-Match, rcx = its length, rdx = the ETag)",
        nullptr, "eax = value == \"*\" || any entity-tag in it, W/ or not, has the ETag's opaque-tag",
        "RFC 9110 13.1.2: If-None-Match compares weakly, so W/\"x\" matches \"x\".\n"
        "The ETag is 18 bytes, quotes included. A malformed list matches nothing.\n"
        "Clobbers rax, rcx, rsi, rdi; keeps rdx and r8-r11 (the body, its length,\n"
        "the response and the representation).");
  lea(Reg::rdi, mem_index(Width::none, Reg::rsi, Reg::rcx), "rdi = the value's end");
  label(loop);
  op(Op::cmp, r64(Reg::rsi), r64(Reg::rdi));
  jmp(Op::jae, no);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  jmp_if_one_of(Reg::rax, ", \t", skip);
  op(Op::cmp, r32(Reg::rax), chr('*'));
  jmp(Op::jne, weak);
  lea(Reg::rax, mem(Width::none, Reg::rsi, 1));
  op(Op::cmp, r64(Reg::rax), r64(Reg::rdi));
  jmp(Op::je, yes, "\"*\": any representation");
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi, 1)});
  jmp_if_one_of(Reg::rax, ", \t", yes);
  jmp(Op::jmp, no, "\"*x\": malformed");
  label(weak);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::cmp, r32(Reg::rax), chr('W'));
  jmp(Op::jne, quoted);
  op(Op::cmp, mem8(Reg::rsi, 1), chr('/'), "W/: a weak tag, compared all the same");
  jmp(Op::jne, no);
  op(Op::add, r64(Reg::rsi), imm(2));
  label(quoted);
  op(Op::cmp, mem8(Reg::rsi), chr('"'));
  jmp(Op::jne, no, "not an entity-tag");
  mov(r64(Reg::rcx), r64(Reg::rsi), "rcx = the tag, from its opening quote");
  label(close);
  op(Op::inc, r64(Reg::rsi));
  op(Op::cmp, r64(Reg::rsi), r64(Reg::rdi));
  jmp(Op::jae, no, "no closing quote");
  op(Op::cmp, mem8(Reg::rsi), chr('"'));
  jmp(Op::jne, close);
  op(Op::inc, r64(Reg::rsi), "past it");
  mov(r64(Reg::rax), r64(Reg::rsi));
  op(Op::sub, r64(Reg::rax), r64(Reg::rcx));
  op(Op::cmp, r64(Reg::rax), imm(kEtagBytes), "an ETag's length?");
  jmp(Op::jne, loop);
  same_etag(Reg::rcx, loop);
  jmp(Op::jmp, yes);
  label(skip);
  op(Op::inc, r64(Reg::rsi));
  jmp(Op::jmp, loop);
  label(yes);
  set(Reg::rax, 1);
  ret();
  label(no);
  zero(Reg::rax);
  ret();
}

void Responses::emit_parse_range() {
  Label suffix = local("suffix");
  Label have_last = local("have_last");
  Label after = local("after");
  Label clamp_ok = local("clamped");
  Label ok = local("satisfiable");
  Label ignore = local("ignore");
  Label unsat = local("unsatisfiable");
  Label out = local("out");
  Label s_ok = local("suffix_ok");
  block(parse_range_, "subroutine parse_range(rsi = Range, rcx = its length, rdx = the length)", nullptr,
        "\"bytes=\" (first \"-\" [last] | \"-\" suffix) -> eax = 1 (rdx = first, rcx = last),\n"
        "   2 unsatisfiable, 0 anything else: ignore it",
        "RFC 9110 14.1.2: one range of bytes. A last byte past the end is the end;\n"
        "a first byte at or past it, or a suffix of 0, cannot be satisfied (416).\n"
        "last < first, another unit, several ranges or junk: the Range is ignored\n"
        "(several ranges may be answered with the whole body, 14.2). Numbers over\n"
        "15 digits are junk too. Keeps r8-r11; clobbers rax, rcx, rdx, rsi, rdi.");
  op(Op::push, r64(Reg::r8));
  op(Op::push, r64(Reg::r9));
  mov(r64(Reg::r9), r64(Reg::rdx), "r9 = the representation's length");
  lea(Reg::rdi, mem_index(Width::none, Reg::rsi, Reg::rcx), "rdi = the value's end");
  op(Op::cmp, r64(Reg::rcx), imm(6));
  jmp(Op::jb, ignore);
  match_text(Reg::rsi, 0, "bytes=", true, ignore);
  op(Op::add, r64(Reg::rsi), imm(6));
  skip_ows("ows");
  op(Op::cmp, r64(Reg::rsi), r64(Reg::rdi));
  jmp(Op::jae, ignore);
  op(Op::cmp, mem8(Reg::rsi), chr('-'));
  jmp(Op::je, suffix);
  call(range_number_, "rax = the first byte, ecx = its digits");
  op(Op::test, r32(Reg::rcx), r32(Reg::rcx));
  jmp(Op::jz, ignore);
  mov(r64(Reg::r8), r64(Reg::rax), "r8 = first");
  op(Op::cmp, r64(Reg::rsi), r64(Reg::rdi));
  jmp(Op::jae, ignore);
  op(Op::cmp, mem8(Reg::rsi), chr('-'));
  jmp(Op::jne, ignore);
  op(Op::inc, r64(Reg::rsi));
  call(range_number_, "rax = the last byte, ecx = its digits (none: to the end)");
  set(Reg::rdx, -1, "no last byte: the end");
  op(Op::test, r32(Reg::rcx), r32(Reg::rcx));
  jmp(Op::jz, after);
  label(have_last);
  mov(r64(Reg::rdx), r64(Reg::rax), "rdx = last");
  op(Op::cmp, r64(Reg::rdx), r64(Reg::r8));
  jmp(Op::jb, ignore, "last < first: invalid");
  label(after);
  skip_ows("ows_end");
  op(Op::cmp, r64(Reg::rsi), r64(Reg::rdi));
  jmp(Op::jne, ignore, "a second range, or junk");
  op(Op::cmp, r64(Reg::r8), r64(Reg::r9));
  jmp(Op::jae, unsat, "the first byte is past the end");
  lea(Reg::rax, mem(Width::none, Reg::r9, -1), "the last byte there is");
  op(Op::cmp, r64(Reg::rdx), r64(Reg::rax));
  jmp(Op::jbe, clamp_ok);
  mov(r64(Reg::rdx), r64(Reg::rax));
  label(clamp_ok);
  mov(r64(Reg::rcx), r64(Reg::rdx), "rcx = last");
  mov(r64(Reg::rdx), r64(Reg::r8), "rdx = first");
  label(ok);
  set(Reg::rax, 1);
  jmp(Op::jmp, out);
  label(suffix);
  op(Op::inc, r64(Reg::rsi));
  call(range_number_, "rax = how many last bytes");
  op(Op::test, r32(Reg::rcx), r32(Reg::rcx));
  jmp(Op::jz, ignore);
  mov(r64(Reg::r8), r64(Reg::rax));
  skip_ows("ows_suffix");
  op(Op::cmp, r64(Reg::rsi), r64(Reg::rdi));
  jmp(Op::jne, ignore);
  op(Op::test, r64(Reg::r8), r64(Reg::r8));
  jmp(Op::jz, unsat, "\"-0\"");
  op(Op::test, r64(Reg::r9), r64(Reg::r9));
  jmp(Op::jz, unsat, "an empty representation has no last bytes");
  op(Op::cmp, r64(Reg::r8), r64(Reg::r9));
  jmp(Op::jbe, s_ok);
  mov(r64(Reg::r8), r64(Reg::r9), "more than there is: all of it");
  label(s_ok);
  lea(Reg::rcx, mem(Width::none, Reg::r9, -1), "rcx = last: the end");
  mov(r64(Reg::rdx), r64(Reg::r9));
  op(Op::sub, r64(Reg::rdx), r64(Reg::r8), "rdx = first: length - n");
  jmp(Op::jmp, ok);
  label(unsat);
  set(Reg::rax, 2);
  jmp(Op::jmp, out);
  label(ignore);
  zero(Reg::rax);
  label(out);
  op(Op::pop, r64(Reg::r9));
  op(Op::pop, r64(Reg::r8));
  ret();

  Label digit = local("digit");
  Label done = local("done");
  Label too_long = local("too_long");
  block(range_number_, "subroutine range_number(rsi = digits, rdi = the end)", nullptr,
        "for (rax = 0, ecx = 0; rsi < rdi && isdigit(*rsi); rsi++, ecx++) rax = rax * 10 + *rsi - '0'",
        "At most 15 digits, so rax cannot overflow; more: ecx = 0, junk.\n"
        "Clobbers rdx.");
  zero(Reg::rax);
  zero(Reg::rcx);
  label(digit);
  op(Op::cmp, r64(Reg::rsi), r64(Reg::rdi));
  jmp(Op::jae, done);
  b_.emit(Op::movzx, {r32(Reg::rdx), mem8(Reg::rsi)});
  op(Op::sub, r32(Reg::rdx), chr('0'));
  op(Op::cmp, r32(Reg::rdx), imm(9));
  jmp(Op::ja, done);
  op(Op::cmp, r32(Reg::rcx), imm(15));
  jmp(Op::jae, too_long);
  b_.emit(Op::imul, {r64(Reg::rax), r64(Reg::rax), imm(10)});
  op(Op::add, r64(Reg::rax), r64(Reg::rdx));
  op(Op::inc, r32(Reg::rcx));
  op(Op::inc, r64(Reg::rsi));
  jmp(Op::jmp, digit);
  label(too_long);
  zero(Reg::rcx);
  label(done);
  ret();
}

}  // namespace asmsrv
