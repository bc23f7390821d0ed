#include "http_parse.h"

#include <algorithm>

#include <fmt/format.h>

#include "http.h"

namespace asmsrv {

using namespace linux;

namespace {

// Bits of char_class: one byte per character code, computed here.
constexpr int kTchar = 1;       // token: methods and header names (RFC 9110 §5.6.2)
constexpr int kFieldChar = 2;   // field value: VCHAR, obs-text, SP, HT
constexpr int kTargetChar = 4;  // request target: VCHAR but '#', and obs-text
constexpr int kHostChar = 8;    // reg-name: unreserved and sub-delims (RFC 3986 §3.2.2)
constexpr int kHexChar = 16;    // HEXDIG, after '%' in a reg-name
constexpr int kLiteralChar = 32;  // inside an IPv6 literal's brackets: HEXDIG, ':' and '.'

std::string char_class_table() {
  std::string t(256, '\0');
  for (int c = 0; c < 256; ++c) {
    int bits = 0;
    bool alnum = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
    if (c < 128 && is_token(std::string(1, static_cast<char>(c)))) bits |= kTchar;
    if ((c > 0x20 && c < 0x7f) || c >= 0x80 || c == ' ' || c == '\t') bits |= kFieldChar;
    // A '#' starts a fragment, which a client never sends: 400, not a guess
    // at what was meant (RFC 9112 3.2).
    if (((c > 0x20 && c < 0x7f) || c >= 0x80) && c != '#') bits |= kTargetChar;
    if (alnum || (c != 0 && std::string_view("-._~!$&'()*+,;=").find(static_cast<char>(c)) != std::string_view::npos))
      bits |= kHostChar;
    if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')) bits |= kHexChar | kLiteralChar;
    if (c == ':' || c == '.') bits |= kLiteralChar;
    t[c] = static_cast<char>(bits);
  }
  return t;
}


}  // namespace

HttpParse::HttpParse(const Spec& spec, Builder& b, const ResponseTable& table) : Gen(spec, b), t_(table) {
  find_head_end_ = local("find_head_end");
  parse_request_ = local("parse_request");
  too_large_ = local("too_large");
  bad_request_ = local("bad_request");
  char_class_ = b_.bytes("char_class", char_class_table(),
                         "character classes by code: 1 token (methods, header names), 2 field\n"
                         "value, 4 request target, 8 host name, 16 hex digit, 32 IP literal");
  if (!t_.paths.empty()) slash_ = b_.bytes("path_root", "/", "the path of an absolute-form target without one");
  find_name_ = local("find_name");
  std::vector<std::pair<std::string, int>> methods;
  for (int m = 1; m <= kMethodCount; ++m) methods.push_back({kMethodNames[m], m | 0x80});
  method_names_ = b_.bytes("method_names", name_table(methods),
                           "the methods, for find_name: length, number (| 0x80: exact), name");
  value_tokens_ = b_.bytes("value_tokens",
                           name_table({{"close", kTokenClose},
                                       {"keep-alive", kTokenKeepAlive},
                                       {"chunked", kTokenChunked},
                                       {"100-continue", kToken100Continue}}),
                           "the tokens that matter in Connection, Transfer-Encoding and Expect, for\n"
                           "find_name: length, number, name in lower case");
  v_.content_length = b_.bss("req_content_length", 8, "the request's Content-Length");
  v_.path = b_.bss("req_path", 8, "address of the request's path");
  v_.path_len = b_.bss("req_path_len", 8, "its length, without the query");
  v_.head_len = b_.bss("req_head_len", 8, "length of the request head, up to and with CR LF CR LF");
  v_.method = b_.bss("req_method", 4, "1 GET, 2 HEAD, 3 POST, 4 PUT, 5 DELETE, 6 PATCH, 7 OPTIONS", 4);
  v_.minor = b_.bss("req_minor", 4, "HTTP/1.x: x", 4);
  v_.close = b_.bss("req_close", 4, "1: Connection: close", 4);
  v_.keepalive = b_.bss("req_keepalive", 4, "1: Connection: keep-alive", 4);
  v_.host = b_.bss("req_host", 4, "number of Host fields", 4);
  v_.cl_count = b_.bss("req_cl_count", 4, "number of Content-Length fields", 4);
  v_.te = b_.bss("req_te", 4, "Transfer-Encoding: 0 none, 1 not chunked last, 2 chunked last, 3 chunked then more", 4);
  if (!t_.upload_sites.empty())
    v_.te_coded = b_.bss("req_te_coded", 4, "1: a coding before chunked (gzip...), for uploads", 4);
  v_.expect = b_.bss("req_expect", 4, "Expect: 0 none, 1 100-continue, 2 another expectation", 4);
  bool combined = spec.log_requests && spec.log_format == LogFormat::combined;
  if (combined) {
    v_.referer = b_.bss("req_referer", 8, "the Referer field's value, for the access log");
    v_.referer_len = b_.bss("req_referer_len", 8, "its length; 0: none");
  }
  if (combined || (spec.log_requests && spec.log_format == LogFormat::json)) {
    v_.user_agent = b_.bss("req_user_agent", 8, "the User-Agent field's value, for the access log");
    v_.user_agent_len = b_.bss("req_user_agent_len", 8, "its length; 0: none");
  }
  auto any = [&](auto pred) { return std::any_of(t_.responses.begin(), t_.responses.end(), pred); };
  bool disk = !t_.disk_sites.empty();
  auto field = [&](Label& value, Label& len, const char* name, const char* what) {
    value = b_.bss(fmt::format("req_{}", name), 8, fmt::format("the {} field's value", what));
    len = b_.bss(fmt::format("req_{}_len", name), 8, "its length; 0: none");
  };
  if (disk || any([](const CompiledResponse& r) { return r.kind == ResponseKind::entity; })) {
    // Only a response with several codings chooses among them.
    if (any([](const CompiledResponse& r) { return r.reps.size() > 1; }))
      field(v_.accept_encoding, v_.accept_encoding_len, "accept_encoding", "Accept-Encoding");
    field(v_.if_none_match, v_.if_none_match_len, "if_none_match", "If-None-Match");
    field(v_.range, v_.range_len, "range", "Range");
    field(v_.if_range, v_.if_range_len, "if_range", "If-Range");
  }
  if (disk) field(v_.if_modified_since, v_.if_modified_since_len, "if_modified_since", "If-Modified-Since");
  if (disk || any([](const CompiledResponse& r) { return r.kind == ResponseKind::redirect; })) {
    v_.query = b_.bss("req_query", 8, "the request's query, from its '?', for a redirect's Location");
    v_.query_len = b_.bss("req_query_len", 8, "its length; 0: none");
  }
}

// A table for find_name: per entry its name's length, its number (bit 7:
// compared exactly), the name; a length of 0 ends it.
std::string HttpParse::name_table(const std::vector<std::pair<std::string, int>>& names) {
  std::string t;
  for (const auto& [name, number] : names) {
    t += static_cast<char>(name.size());
    t += static_cast<char>(number);
    t += name;
  }
  return t + '\0';
}

void HttpParse::emit_find_name() {
  Label entry = local("entry");
  Label letter = local("letter");
  Label folded = local("compare");
  Label other_name = local("other_name");
  Label skip = local("skip");
  Label none = local("none");
  block(find_name_, "subroutine find_name(rcx = a name, rdx = its length, rdi = a table)", nullptr,
        "for (e = table; e->len; e = next) if (e->len == len && same(e->name, name)) return e->number & 0x7f;\n"
        "   return 0",
        "Methods, header field names and the tokens of their values, each looked\n"
        "up in a table: an entry is the name's length, its number and the name. A\n"
        "name is a token, so or-ing 0x20 folds its letters to lower case and maps\n"
        "no other character onto a letter or '-'; a number with bit 7 (a method)\n"
        "is compared exactly. eax = the number, 0: none. Clobbers rdi, r10.");
  label(entry);
  b_.emit(Op::movzx, {r32(Reg::r10), mem8(Reg::rdi)}, "r10 = the length of this entry's name");
  op(Op::test, r32(Reg::r10), r32(Reg::r10));
  jmp(Op::jz, none, "the end of the table");
  op(Op::cmp, r64(Reg::r10), r64(Reg::rdx));
  jmp(Op::jne, skip, "another length: not this one");
  label(letter);
  b_.emit(Op::movzx, {r32(Reg::rax), mem_index(Width::b8, Reg::rcx, Reg::r10, -1)}, "the name's letters, last first");
  op(Op::test, mem8(Reg::rdi, 1), imm(0x80), "compared exactly?");
  jmp(Op::jnz, folded);
  op(Op::or_, r32(Reg::rax), imm(0x20), "to lower case");
  label(folded);
  op(Op::cmp, r8(Reg::rax), mem_index(Width::b8, Reg::rdi, Reg::r10, 1), "the entry's letter (its name is at rdi+2)");
  jmp(Op::jne, other_name);
  op(Op::dec, r64(Reg::r10));
  jmp(Op::jnz, letter);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rdi, 1)});
  op(Op::and_, r32(Reg::rax), imm(0x7f), "eax = its number");
  ret();
  label(other_name);
  mov(r64(Reg::r10), r64(Reg::rdx), "the same length as the name");
  label(skip);
  lea(Reg::rdi, mem_index(Width::none, Reg::rdi, Reg::r10, 2), "the next entry");
  jmp(Op::jmp, entry);
  label(none);
  zero(Reg::rax, "not in the table");
  ret();
}

void HttpParse::emit(Label route) {
  emit_find_head_end();
  emit_too_large();
  Label target = local("target");
  Label version = local("version");
  emit_method(target);
  block(target, "parse_request: the target", nullptr,
        "path = target up to '?': \"/a/b?x=1\" -> \"/a/b\"; \"http://host/a\" -> \"/a\";\n"
        "   \"http://host?x=/a\" -> \"/\"; '#' -> 400",
        "Origin form (\"/path?query\"), or absolute form (\"http://host/path\"), which a\n"
        "server must accept too. The query is ignored for routing.");
  emit_target(version);
  block(version, "parse_request: the version", nullptr, "\" HTTP/\" DIGIT \".\" DIGIT CR LF",
        "HTTP/1.0 and HTTP/1.x; other majors get 505 (HTTP/2 and above, and 0.9).");
  emit_version();
  Label headers = local("parse_headers");
  falls_into(headers);
  emit_headers(headers);
  emit_checks(route);
  block(bad_request_, "parse_request: a malformed request", nullptr, "return 400", "");
  set(Reg::rax, t_.bad_request, "400 Bad Request");
  ret();
  emit_find_name();
}

void HttpParse::skip_empty_lines(Reg s, Label none, Label start, const std::string& why_none) {
  Label skip = local("skip_empty_lines");
  Label skip_one = local("empty_line_byte");
  zero(s, "s = 0");
  label(skip);
  op(Op::cmp, r64(s), r64(kBufLen));
  jmp(Op::jae, none, why_none);
  b_.emit(Op::movzx, {r32(Reg::rax), mem_index(Width::b8, kBuf, s)});
  op(Op::cmp, r32(Reg::rax), chr('\n'));
  jmp(Op::je, skip_one);
  op(Op::cmp, r32(Reg::rax), chr('\r'));
  jmp(Op::jne, start);
  label(skip_one);
  op(Op::inc, r64(s));
  jmp(Op::jmp, skip);
}

void HttpParse::emit_find_head_end() {
  Label start = local("start");
  Label loop = local("scan");
  Label next = local("next");
  Label none = local("no_end_yet");
  Label found = local("found_end");
  Label line = local("first_line");
  Label first_lf = local("first_lf");
  Label wait = local("wait");
  Label not_http = local("not_http");
  block(find_head_end_, "subroutine find_head_end", nullptr,
        "s = the first byte after leading CR and LF;\n"
        "   for each new LF at i >= s: if buf[i-3..i] == \"\\r\\n\\r\\n\" or buf[i-1] != '\\r' return i + 1;\n"
        "   if the request line is whole and does not end in \" HTTP/x.y\\r\\n\": return its length;\n"
        "   record.scanned = len; return 0;",
        "rax = the length of the request head, up to and with CR LF CR LF, or 0.\n"
        "Empty lines before a request line are skipped (RFC 9112 2.2: some clients\n"
        "send CR LF after a body). Only bytes not searched before are looked at (the\n"
        "test looks back). A bare LF also ends the head, and so does a request line\n"
        "that is not HTTP/1.x-shaped (HTTP/0.9's \"GET /\" CR LF): parse_request\n"
        "answers them with 400 at once instead of leaving the client to the header\n"
        "timeout.");
  skip_empty_lines(Reg::rdx, none, start, "only empty lines so far");
  label(start);
  mov(r32(Reg::rcx), conn(ConnField::scanned), "i = the first new byte");
  op(Op::cmp, r64(Reg::rcx), r64(Reg::rdx));
  jmp(Op::jae, loop);
  mov(r64(Reg::rcx), r64(Reg::rdx), "but not before s");
  label(loop);
  op(Op::cmp, r64(Reg::rcx), r64(kBufLen));
  jmp(Op::jae, none, "all searched");
  op(Op::cmp, mem_index(Width::b8, kBuf, Reg::rcx), chr('\n'), "LF?");
  jmp(Op::jne, next);
  op(Op::cmp, mem_index(Width::b8, kBuf, Reg::rcx, -1), chr('\r'), "CR before it? (i > s: buf[s] is no LF)");
  jmp(Op::jne, found, "no: a bare LF (parse_request says 400)");
  op(Op::cmp, r64(Reg::rcx), imm(3));
  jmp(Op::jb, next);
  op(Op::cmp, mem_index(Width::b32, kBuf, Reg::rcx, -3), imm(0x0A0D0A0D),
     "\"\\r\\n\\r\\n\" read as a little-endian dword");
  jmp(Op::je, found);
  label(next);
  op(Op::inc, r64(Reg::rcx));
  jmp(Op::jmp, loop);
  label(found);
  lea(Reg::rax, mem(Width::none, Reg::rcx, 1), "rax = i + 1");
  ret();
  label(none);
  mov(conn(ConnField::scanned), r32(kBufLen), "record.scanned = len");
  // No end yet: is the request line (from s to its LF) whole, and does it
  // end in " HTTP/x.y" CR? Checked only here, off the path of a request
  // that came whole.
  mov(r64(Reg::rcx), r64(Reg::rdx), "i = s");
  label(line);
  op(Op::cmp, r64(Reg::rcx), r64(kBufLen));
  jmp(Op::jae, wait, "the request line is not whole yet");
  op(Op::cmp, mem_index(Width::b8, kBuf, Reg::rcx), chr('\n'));
  jmp(Op::je, first_lf);
  op(Op::inc, r64(Reg::rcx));
  jmp(Op::jmp, line);
  label(first_lf);
  lea(Reg::rax, mem(Width::none, Reg::rdx, 10), "its LF; CR before it (else it ended the head)");
  op(Op::cmp, r64(Reg::rcx), r64(Reg::rax));
  jmp(Op::jb, not_http, "too short for \" HTTP/x.y\" CR");
  op(Op::cmp, mem_index(Width::b32, kBuf, Reg::rcx, -9), imm(0x50545448), "\"HTTP\" as a dword");
  jmp(Op::jne, not_http);
  op(Op::cmp, mem_index(Width::b8, kBuf, Reg::rcx, -10), chr(' '));
  jmp(Op::jne, not_http);
  op(Op::cmp, mem_index(Width::b8, kBuf, Reg::rcx, -5), chr('/'));
  jmp(Op::jne, not_http);
  label(wait);
  zero(Reg::rax, "no end yet: read on");
  ret();
  label(not_http);
  lea(Reg::rax, mem(Width::none, Reg::rcx, 1), "the request line is the head: parse_request says 400");
  ret();
}

void HttpParse::emit_too_large() {
  Label found_lf = local("found_lf");
  Label scan = local("scan");
  Label no_lf = local("no_lf");
  Label answer = local("answer");
  block(too_large_, "subroutine too_large: the head does not fit", nullptr,
        "s = the first byte after leading CR and LF; return memchr(buf + s, '\\n', len - s) ? 431 : 414",
        fmt::format("Over limits.request_bytes ({}): 414 URI Too Long when even the request\n"
                    "line has no end, else 431 Request Header Fields Too Large. The whole\n"
                    "buffer counts as the head. The LF of an empty line before the request\n"
                    "line (find_head_end skips them) does not end the request line.",
                    spec_.limits.request_bytes));
  skip_empty_lines(Reg::rcx, no_lf, scan, "only empty lines");
  label(scan);
  op(Op::cmp, r64(Reg::rcx), r64(kBufLen));
  jmp(Op::jae, no_lf);
  op(Op::cmp, mem_index(Width::b8, kBuf, Reg::rcx), chr('\n'));
  jmp(Op::je, found_lf);
  op(Op::inc, r64(Reg::rcx));
  jmp(Op::jmp, scan);
  label(found_lf);
  set(Reg::rax, t_.headers_too_large, "431");
  jmp(Op::jmp, answer);
  label(no_lf);
  set(Reg::rax, t_.uri_too_long, "414");
  label(answer);
  mov(var32(v_.method), imm(0), "not HEAD: the error has a body");
  mov(var64(v_.content_length), imm(0), "and no body follows that http_conn would drop");
  mov(var32(v_.te), imm(kTeNone));
  mov(var32(v_.expect), imm(kExpectNone));
  mov(var64(v_.head_len), r64(kBufLen));
  ret();
}

void HttpParse::emit_method(Label target) {
  Label unknown = local("unknown_method");
  Label tok = local("token");
  Label tok_end = local("token_end");
  block(parse_request_, "subroutine parse_request: the method", nullptr,
        "method = one of GET HEAD POST PUT DELETE PATCH OPTIONS, then one space",
        "eax = the index of the response that answers the request in buf.\n"
        "The head ends in CR LF CR LF (find_head_end made sure), so every scan\n"
        "below stops inside it. rsi walks the head; r8 = char_class.\n"
        "A token that is not a known method: 501. Anything else malformed: 400.");
  // Stored from a zeroed register: mov [rel x], eax is 6 bytes, mov dword [rel x], 0 is 10.
  zero(Reg::rax, "the request's state starts at 0");
  for (Label l : {v_.minor, v_.close, v_.keepalive, v_.host, v_.cl_count, v_.te, v_.expect, v_.method, v_.te_coded})
    if (l.id >= 0) mov(var32(l), r32(Reg::rax));
  for (Label l : {v_.content_length, v_.accept_encoding_len, v_.if_none_match_len, v_.range_len, v_.if_range_len,
                  v_.if_modified_since_len, v_.query_len})
    if (l.id >= 0) mov(var64(l), r64(Reg::rax));
  mov(r64(Reg::rsi), r64(kBuf));
  Label skip = local("skip_empty_lines");
  Label skip_byte = local("empty_line_byte");
  Label skipped = local("request_line");
  label(skip);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::cmp, r32(Reg::rax), chr('\r'));
  jmp(Op::je, skip_byte);
  op(Op::cmp, r32(Reg::rax), chr('\n'));
  jmp(Op::jne, skipped);
  label(skip_byte);
  op(Op::inc, r64(Reg::rsi), "an empty line before the request line (find_head_end skipped it too)");
  jmp(Op::jmp, skip);
  label(skipped);
  lea(Reg::r8, char_class_);
  mov(r64(Reg::rcx), r64(Reg::rsi));
  label(tok);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rcx)});
  op(Op::test, mem_index(Width::b8, Reg::r8, Reg::rax), imm(kTchar), "a token character?");
  jmp(Op::jz, tok_end);
  op(Op::inc, r64(Reg::rcx));
  jmp(Op::jmp, tok);
  label(tok_end);
  op(Op::cmp, r64(Reg::rcx), r64(Reg::rsi));
  jmp(Op::je, bad_request_, "no method at all");
  op(Op::cmp, mem8(Reg::rcx), chr(' '));
  jmp(Op::jne, bad_request_, "not followed by one space");
  mov(r64(Reg::rdx), r64(Reg::rcx));
  op(Op::sub, r64(Reg::rdx), r64(Reg::rsi), "rdx = the method's length");
  mov(r64(Reg::rcx), r64(Reg::rsi), "rcx = the method");
  lea(Reg::rdi, method_names_);
  call(find_name_, "eax = the method's number (exactly: \"get\" is no method)");
  op(Op::test, r32(Reg::rax), r32(Reg::rax));
  jmp(Op::jz, unknown, "a token that is no method here");
  mov(var32(v_.method), r32(Reg::rax), "GET 1, HEAD 2, POST 3, PUT 4, DELETE 5, PATCH 6, OPTIONS 7");
  lea(Reg::rsi, mem_index(Width::none, Reg::rsi, Reg::rdx, 1), "past the method and its space");
  jmp(Op::jmp, target);
  label(unknown);
  set(Reg::rax, t_.not_implemented, "501 Not Implemented");
  ret();
}

void HttpParse::emit_target(Label version) {
  Label origin = local("origin_form");
  Label authority = local("authority");
  Label no_path = local("no_path");
  Label path = local("path");
  Label path_end = local("path_end");
  Label query = local("query");
  Label skip = local("skip_query");
  op(Op::cmp, mem8(Reg::rsi), chr('/'));
  jmp(Op::je, origin);
  match_text(Reg::rsi, 0, "http://", true, bad_request_);
  op(Op::add, r64(Reg::rsi), imm(7), "skip \"http://\"");
  note("An empty authority (\"http:///x\", \"http://?q\", \"http:// \") is 400: an http");
  note("URI needs a host (RFC 9110 4.2.1).");
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::cmp, r32(Reg::rax), chr('/'));
  jmp(Op::je, bad_request_);
  op(Op::cmp, r32(Reg::rax), chr('?'));
  jmp(Op::je, bad_request_);
  op(Op::cmp, r32(Reg::rax), chr(' '));
  jmp(Op::je, bad_request_);
  label(authority);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::cmp, r32(Reg::rax), chr('/'));
  jmp(Op::je, origin, "the path starts");
  op(Op::cmp, r32(Reg::rax), chr(' '));
  jmp(Op::je, no_path, "\"http://host\": the path is \"/\"");
  op(Op::cmp, r32(Reg::rax), chr('?'));
  jmp(Op::je, no_path, "\"http://host?q\": so is it, whatever the query holds");
  op(Op::test, mem_index(Width::b8, Reg::r8, Reg::rax), imm(kTargetChar));
  jmp(Op::jz, bad_request_);
  op(Op::inc, r64(Reg::rsi));
  jmp(Op::jmp, authority);
  label(no_path);
  if (!t_.paths.empty()) {
    lea(Reg::rax, slash_);
    mov(var64(v_.path), r64(Reg::rax));
  }
  mov(var64(v_.path_len), imm(1));
  op(Op::cmp, mem8(Reg::rsi), chr(' '));
  jmp(Op::je, version);
  if (v_.query.id >= 0) mov(var64(v_.query), r64(Reg::rsi), "the query starts at its '?'");
  jmp(Op::jmp, skip, "skip the query");
  label(origin);
  mov(var64(v_.path), r64(Reg::rsi), "the path starts here");
  label(path);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::cmp, r32(Reg::rax), chr(' '));
  jmp(Op::je, path_end);
  op(Op::cmp, r32(Reg::rax), chr('?'));
  jmp(Op::je, query);
  op(Op::test, mem_index(Width::b8, Reg::r8, Reg::rax), imm(kTargetChar), "a visible character?");
  jmp(Op::jz, bad_request_, "CR, LF, a control character: malformed");
  op(Op::inc, r64(Reg::rsi));
  jmp(Op::jmp, path);
  label(query);
  mov(r64(Reg::rax), r64(Reg::rsi));
  op(Op::sub, r64(Reg::rax), var64(v_.path));
  mov(var64(v_.path_len), r64(Reg::rax), "the path ends at '?'");
  if (v_.query.id >= 0) mov(var64(v_.query), r64(Reg::rsi), "the query starts at its '?'");
  label(skip);
  op(Op::inc, r64(Reg::rsi));
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::cmp, r32(Reg::rax), chr(' '));
  Label query_end = local("query_end");
  jmp(Op::je, v_.query.id >= 0 ? query_end : version);
  op(Op::test, mem_index(Width::b8, Reg::r8, Reg::rax), imm(kTargetChar));
  jmp(Op::jz, bad_request_);
  jmp(Op::jmp, skip);
  if (v_.query.id >= 0) {
    label(query_end);
    mov(r64(Reg::rax), r64(Reg::rsi));
    op(Op::sub, r64(Reg::rax), var64(v_.query));
    mov(var64(v_.query_len), r64(Reg::rax), "the query's length, its '?' included");
    jmp(Op::jmp, version);
  }
  label(path_end);
  mov(r64(Reg::rax), r64(Reg::rsi));
  op(Op::sub, r64(Reg::rax), var64(v_.path));
  mov(var64(v_.path_len), r64(Reg::rax));
  jmp(Op::jmp, version);
}

void HttpParse::emit_version() {
  Label v1 = local("http_1");
  match_text(Reg::rsi, 0, " HTTP/", false, bad_request_);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi, 6)}, "the major digit");
  op(Op::sub, r32(Reg::rax), chr('0'));
  op(Op::cmp, r32(Reg::rax), imm(9));
  jmp(Op::ja, bad_request_, "not a digit");
  op(Op::cmp, mem8(Reg::rsi, 7), chr('.'));
  jmp(Op::jne, bad_request_);
  b_.emit(Op::movzx, {r32(Reg::rcx), mem8(Reg::rsi, 8)}, "the minor digit");
  op(Op::sub, r32(Reg::rcx), chr('0'));
  op(Op::cmp, r32(Reg::rcx), imm(9));
  jmp(Op::ja, bad_request_);
  op(Op::cmp, mem16(Reg::rsi, 9), imm(0x0A0D), "CR LF ends the request line");
  jmp(Op::jne, bad_request_, "anything else (a bare CR, trailing text): malformed");
  op(Op::cmp, r32(Reg::rax), imm(1));
  jmp(Op::je, v1);
  set(Reg::rax, t_.version_not_supported, "505 HTTP Version Not Supported");
  ret();
  label(v1);
  mov(var32(v_.minor), r32(Reg::rcx), "HTTP/1.minor");
  op(Op::add, r64(Reg::rsi), imm(11), "the first header line");
}

void HttpParse::emit_headers(Label line) {
  Label name = local("name");
  Label name_end = local("name_end");
  Label ows = local("skip_ows");
  Label skip_one = local("ows_char");
  Label value = local("value");
  Label vloop = local("value_char");
  Label cr = local("cr");
  Label trim = local("trim");
  Label trim_one = local("trim_one");
  Label trimmed = local("trimmed");
  Label next = local("next_field");
  Label done = local("done");
  block(line, "parse_request: the header fields", nullptr,
        "for each \"name: value\\r\\n\": name is a token, value has no CTL, no bare CR",
        std::string("400 for whitespace before the colon, a line folded onto the previous one,\n"
                    "a bare CR or LF. The fields that matter here (case-insensitive): Host,\n"
                    "Content-Length, Transfer-Encoding, Connection, Expect") +
            (v_.referer.id >= 0      ? ", and Referer and User-Agent for the log"
             : v_.user_agent.id >= 0 ? ", and User-Agent for the log"
                                     : "") +
            (v_.range.id >= 0 ? ", and the fields that choose an entity's answer" : "") +
            ". rcx/rdx = name, r11..r9 = value.");
  op(Op::cmp, mem16(Reg::rsi), imm(0x0A0D), "an empty line ends the head");
  jmp(Op::je, done);
  mov(r64(Reg::rcx), r64(Reg::rsi), "rcx = the name");
  label(name);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::test, mem_index(Width::b8, Reg::r8, Reg::rax), imm(kTchar));
  jmp(Op::jz, name_end);
  op(Op::inc, r64(Reg::rsi));
  jmp(Op::jmp, name);
  label(name_end);
  mov(r64(Reg::rdx), r64(Reg::rsi));
  op(Op::sub, r64(Reg::rdx), r64(Reg::rcx), "rdx = its length");
  jmp(Op::jz, bad_request_, "empty: a line that starts with a space (obs-fold) or ':'");
  op(Op::cmp, mem8(Reg::rsi), chr(':'));
  jmp(Op::jne, bad_request_, "whitespace (or anything) before the colon");
  op(Op::inc, r64(Reg::rsi));
  label(ows);
  op(Op::cmp, mem8(Reg::rsi), chr(' '), "optional whitespace before the value");
  jmp(Op::je, skip_one);
  op(Op::cmp, mem8(Reg::rsi), chr('\t'));
  jmp(Op::jne, value);
  label(skip_one);
  op(Op::inc, r64(Reg::rsi));
  jmp(Op::jmp, ows);
  label(value);
  mov(r64(Reg::r11), r64(Reg::rsi), "r11 = the value");
  label(vloop);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::cmp, r32(Reg::rax), chr('\r'));
  jmp(Op::je, cr);
  op(Op::test, mem_index(Width::b8, Reg::r8, Reg::rax), imm(kFieldChar), "allowed in a value?");
  jmp(Op::jz, bad_request_, "a bare LF, NUL or another control character");
  op(Op::inc, r64(Reg::rsi));
  jmp(Op::jmp, vloop);
  label(cr);
  op(Op::cmp, mem8(Reg::rsi, 1), chr('\n'));
  jmp(Op::jne, bad_request_, "a bare CR");
  mov(r64(Reg::r9), r64(Reg::rsi), "r9 = the value's end");
  label(trim);
  op(Op::cmp, r64(Reg::r9), r64(Reg::r11));
  jmp(Op::je, trimmed);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::r9, -1)});
  op(Op::cmp, r32(Reg::rax), chr(' '), "trailing whitespace is not part of the value");
  jmp(Op::je, trim_one);
  op(Op::cmp, r32(Reg::rax), chr('\t'));
  jmp(Op::jne, trimmed);
  label(trim_one);
  op(Op::dec, r64(Reg::r9));
  jmp(Op::jmp, trim);
  label(trimmed);

  // Which known field: one walk of a table of names (field_names), then a
  // compare of the number found, where an inline compare of each name's
  // letters took some 60 bytes a field.
  struct Known {
    std::string name;
    void (HttpParse::*parse)(Label next) = nullptr;  // a field with its own parser, or:
    Label value, len;                                 // one kept as it is
    const char* why = "";
  };
  std::vector<Known> known = {{"host", &HttpParse::emit_host},
                              {"content-length", &HttpParse::emit_content_length},
                              {"transfer-encoding", &HttpParse::emit_transfer_encoding},
                              {"connection", &HttpParse::emit_connection},
                              {"expect", &HttpParse::emit_expect}};
  auto keep = [&](const char* name, Label value, Label len, const char* why) {
    if (value.id >= 0) known.push_back({name, nullptr, value, len, why});
  };
  keep("referer", v_.referer, v_.referer_len, "for the access log");
  keep("user-agent", v_.user_agent, v_.user_agent_len, "for the access log");
  keep("accept-encoding", v_.accept_encoding, v_.accept_encoding_len, "to choose a coding");
  keep("if-none-match", v_.if_none_match, v_.if_none_match_len, "for a 304");
  keep("range", v_.range, v_.range_len, "for a 206");
  keep("if-range", v_.if_range, v_.if_range_len, "for a 206");
  keep("if-modified-since", v_.if_modified_since, v_.if_modified_since_len, "for a 304");
  std::vector<std::pair<std::string, int>> numbered;
  for (size_t i = 0; i < known.size(); ++i) numbered.push_back({known[i].name, static_cast<int>(i + 1)});
  Label names = b_.bytes("field_names", name_table(numbered),
                         "the header fields parse_request knows, for find_name: length, number, name\n"
                         "in lower case");
  lea(Reg::rdi, names, "the names of the fields known here");
  call(find_name_, "eax = the field's number, 0: another");
  op(Op::test, r32(Reg::rax), r32(Reg::rax));
  jmp(Op::jz, next, "a field not known here is ignored");
  for (size_t i = 0; i < known.size(); ++i) {
    const Known& k = known[i];
    bool last = i + 1 == known.size();  // no number is left to compare with
    std::string hint = "not_" + k.name;
    std::replace(hint.begin(), hint.end(), '-', '_');
    Label other = local(hint);
    if (!last) {
      op(Op::cmp, r32(Reg::rax), imm(static_cast<int64_t>(i + 1)), k.name + "?");
      jmp(Op::jne, other);
    } else {
      note(fmt::format("the last number: {}", k.name));
    }
    if (k.parse) {
      (this->*k.parse)(next);
    } else {
      mov(var64(k.value), r64(Reg::r11), std::string(k.why) + ": the value (the last such field wins)");
      op(Op::sub, r64(Reg::r9), r64(Reg::r11));
      mov(var64(k.len), r64(Reg::r9), "and its length");
      if (!last) jmp(Op::jmp, next);
    }
    if (!last) label(other);
  }
  label(next);
  op(Op::add, r64(Reg::rsi), imm(2), "past the field's CR LF");
  jmp(Op::jmp, line);
  label(done);
}

void HttpParse::emit_host(Label next) {
  // Host = uri-host [ ":" port ] (RFC 9112 §3.2, RFC 3986 §3.2.2): a reg-name
  // (which includes IPv4 addresses), or an IPv6 address in brackets. The
  // literal is checked for its characters and for the two colons every IPv6
  // address has ("::" at least), not parsed in full; IPvFuture gets 400.
  Label reg_name = local("host_name");
  Label pct = local("host_pct");
  Label literal = local("host_literal");
  Label literal_end = local("host_literal_end");
  Label after = local("host_after");
  Label port = local("host_port");
  Label port_digit = local("host_port_digit");
  op(Op::inc, var32(v_.host), "Host");
  mov(r64(Reg::rcx), r64(Reg::r11), "rcx walks the value; empty is allowed");
  op(Op::cmp, r64(Reg::rcx), r64(Reg::r9));
  jmp(Op::je, next);
  op(Op::cmp, mem8(Reg::rcx), chr('['), "an IP-literal?");
  jmp(Op::jne, reg_name);
  zero(Reg::rdx, "edx counts the colons (the name's length is no longer needed)");
  label(literal);
  op(Op::inc, r64(Reg::rcx));
  op(Op::cmp, r64(Reg::rcx), r64(Reg::r9));
  jmp(Op::jae, bad_request_, "no closing ']'");
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rcx)});
  op(Op::cmp, r32(Reg::rax), chr(']'));
  jmp(Op::je, literal_end);
  op(Op::test, mem_index(Width::b8, Reg::r8, Reg::rax), imm(kLiteralChar), "hex digits, ':' and '.' only");
  jmp(Op::jz, bad_request_);
  op(Op::cmp, r32(Reg::rax), chr(':'));
  jmp(Op::jne, literal);
  op(Op::inc, r32(Reg::rdx));
  jmp(Op::jmp, literal);
  label(literal_end);
  op(Op::cmp, r32(Reg::rdx), imm(2), "an IPv6 address has two colons at least");
  jmp(Op::jb, bad_request_, "\"[]\", \"[1.2.3.4]\", \"[v1.x]\"");
  op(Op::inc, r64(Reg::rcx), "past ']'");
  label(after);
  op(Op::cmp, r64(Reg::rcx), r64(Reg::r9));
  jmp(Op::je, next, "no port");
  op(Op::cmp, mem8(Reg::rcx), chr(':'));
  jmp(Op::je, port);
  jmp(Op::jmp, bad_request_, "anything else after the host");
  label(reg_name);
  op(Op::cmp, r64(Reg::rcx), r64(Reg::r9));
  jmp(Op::je, next);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rcx)});
  op(Op::cmp, r32(Reg::rax), chr(':'));
  jmp(Op::je, port);
  op(Op::cmp, r32(Reg::rax), chr('%'));
  jmp(Op::je, pct);
  op(Op::test, mem_index(Width::b8, Reg::r8, Reg::rax), imm(kHostChar), "unreserved or a sub-delim?");
  jmp(Op::jz, bad_request_, "a space, '@' (userinfo), '/'...");
  op(Op::inc, r64(Reg::rcx));
  jmp(Op::jmp, reg_name);
  label(pct);
  note("'%' and two hex digits; what follows the value (whitespace, CR) is no hex digit.");
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rcx, 1)});
  op(Op::test, mem_index(Width::b8, Reg::r8, Reg::rax), imm(kHexChar));
  jmp(Op::jz, bad_request_);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rcx, 2)});
  op(Op::test, mem_index(Width::b8, Reg::r8, Reg::rax), imm(kHexChar));
  jmp(Op::jz, bad_request_);
  op(Op::add, r64(Reg::rcx), imm(3));
  jmp(Op::jmp, reg_name);
  label(port);
  op(Op::inc, r64(Reg::rcx), "past ':'; the port may be empty");
  label(port_digit);
  op(Op::cmp, r64(Reg::rcx), r64(Reg::r9));
  jmp(Op::je, next);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rcx)});
  op(Op::sub, r32(Reg::rax), chr('0'));
  op(Op::cmp, r32(Reg::rax), imm(9));
  jmp(Op::ja, bad_request_, "the port has digits only");
  op(Op::inc, r64(Reg::rcx));
  jmp(Op::jmp, port_digit);
}

void HttpParse::emit_content_length(Label next) {
  Label digit = local("cl_digit");
  Label cl_end = local("cl_end");
  Label no_acc = local("cl_too_many_digits");
  Label store = local("cl_store");
  op(Op::inc, var32(v_.cl_count), "Content-Length");
  op(Op::cmp, r64(Reg::r11), r64(Reg::r9));
  jmp(Op::je, bad_request_, "empty");
  zero(Reg::rax, "the value");
  zero(Reg::rdx, "digits seen");
  label(digit);
  op(Op::cmp, r64(Reg::r11), r64(Reg::r9));
  jmp(Op::je, cl_end);
  b_.emit(Op::movzx, {r32(Reg::rcx), mem8(Reg::r11)});
  op(Op::sub, r32(Reg::rcx), chr('0'));
  op(Op::cmp, r32(Reg::rcx), imm(9));
  jmp(Op::ja, bad_request_, "not a digit: invalid");
  op(Op::inc, r64(Reg::rdx));
  op(Op::cmp, r64(Reg::rdx), imm(15));
  jmp(Op::ja, no_acc, "over 15 digits: far over any limit");
  b_.emit(Op::imul, {r64(Reg::rax), r64(Reg::rax), imm(10)});
  op(Op::add, r64(Reg::rax), r64(Reg::rcx));
  label(no_acc);
  op(Op::inc, r64(Reg::r11));
  jmp(Op::jmp, digit);
  label(cl_end);
  op(Op::cmp, r64(Reg::rdx), imm(15));
  jmp(Op::jbe, store);
  set(Reg::rax, int64_t{1} << 62, "too large to matter: 2^62");
  label(store);
  mov(var64(v_.content_length), r64(Reg::rax));
  jmp(Op::jmp, next);
}

void HttpParse::list_element(Label element, Label skip, Label none, Label start, const std::string& why_none) {
  label(element);
  op(Op::cmp, r64(Reg::r11), r64(Reg::r9));
  jmp(Op::jae, none, why_none);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::r11)});
  op(Op::cmp, r32(Reg::rax), chr(','));
  jmp(Op::je, skip);
  op(Op::cmp, r32(Reg::rax), chr(' '));
  jmp(Op::je, skip);
  op(Op::cmp, r32(Reg::rax), chr('\t'));
  jmp(Op::jne, start);
  label(skip);
  op(Op::inc, r64(Reg::r11), "an empty element, or whitespace before one");
  jmp(Op::jmp, element);
  label(start);
}

void HttpParse::emit_connection(Label next) {
  // Connection: a comma-separated list of tokens; close and keep-alive matter.
  Label tok = local("conn_token");
  Label sep = local("conn_separator");
  Label start_tok = local("conn_token_start");
  Label scan = local("conn_scan");
  Label scanned = local("conn_scanned");
  Label not_close = local("not_close");
  Label not_ka = local("not_keep_alive");
  list_element(tok, sep, next, start_tok, "no more tokens");
  mov(r64(Reg::rcx), r64(Reg::r11), "rcx = the token");
  label(scan);
  op(Op::cmp, r64(Reg::r11), r64(Reg::r9));
  jmp(Op::jae, scanned);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::r11)});
  op(Op::cmp, r32(Reg::rax), chr(','));
  jmp(Op::je, scanned);
  op(Op::cmp, r32(Reg::rax), chr(' '));
  jmp(Op::je, scanned);
  op(Op::cmp, r32(Reg::rax), chr('\t'));
  jmp(Op::je, scanned);
  op(Op::inc, r64(Reg::r11));
  jmp(Op::jmp, scan);
  label(scanned);
  mov(r64(Reg::rdx), r64(Reg::r11));
  op(Op::sub, r64(Reg::rdx), r64(Reg::rcx), "its length");
  lea(Reg::rdi, value_tokens_);
  call(find_name_);
  op(Op::cmp, r32(Reg::rax), imm(kTokenClose));
  jmp(Op::jne, not_close);
  mov(var32(v_.close), imm(1), "Connection: close");
  label(not_close);
  op(Op::cmp, r32(Reg::rax), imm(kTokenKeepAlive));
  jmp(Op::jne, not_ka);
  mov(var32(v_.keepalive), imm(1), "Connection: keep-alive");
  label(not_ka);
  jmp(Op::jmp, tok);
}

void HttpParse::emit_transfer_encoding(Label next) {
  // Transfer-Encoding = #transfer-coding (RFC 9112 6.1): the codings of all
  // its fields, in order. Only the last may be "chunked"; what comes before
  // it (gzip...) does not matter to a body that is dropped; an upload
  // needs to know (te_coded).
  Label element = local("te_element");
  Label skip = local("te_separator");
  Label scan = local("te_scan");
  Label scanned = local("te_scanned");
  Label trim = local("te_trim");
  Label trimmed = local("te_trimmed");
  Label trim_one = local("te_trim_one");
  Label not_after = local("te_not_after_chunked");
  op(Op::cmp, var32(v_.te), imm(kTeNone), "the first Transfer-Encoding field?");
  jmp(Op::jne, element);
  mov(var32(v_.te), imm(kTeOther), "present; chunked only once it is its last coding");
  list_element(element, skip, next, scan, "no more codings");
  mov(r64(Reg::rcx), r64(Reg::r11), "rcx = the coding");
  Label scan_byte = local("te_scan_byte");
  label(scan_byte);
  op(Op::cmp, r64(Reg::r11), r64(Reg::r9));
  jmp(Op::jae, scanned);
  op(Op::cmp, mem8(Reg::r11), chr(','));
  jmp(Op::je, scanned);
  op(Op::inc, r64(Reg::r11));
  jmp(Op::jmp, scan_byte);
  label(scanned);
  mov(r64(Reg::rdx), r64(Reg::r11), "rdx = its end, without whitespace before the comma");
  label(trim);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rdx, -1)}, "the coding starts with neither: the loop stops there");
  op(Op::cmp, r32(Reg::rax), chr(' '));
  jmp(Op::je, trim_one);
  op(Op::cmp, r32(Reg::rax), chr('\t'));
  jmp(Op::jne, trimmed);
  label(trim_one);
  op(Op::dec, r64(Reg::rdx));
  jmp(Op::jmp, trim);
  label(trimmed);
  op(Op::cmp, var32(v_.te), imm(kTeChunked), "a coding after chunked?");
  jmp(Op::jne, not_after);
  mov(var32(v_.te), imm(kTeChunkedNotLast), "chunked, then another: 400");
  jmp(Op::jmp, element);
  label(not_after);
  op(Op::cmp, var32(v_.te), imm(kTeChunkedNotLast), "that stays");
  jmp(Op::je, element);
  mov(var32(v_.te), imm(kTeOther), "the last coding so far is not chunked...");
  Label other = v_.te_coded.id >= 0 ? local("te_other_coding") : element;
  op(Op::sub, r64(Reg::rdx), r64(Reg::rcx));
  lea(Reg::rdi, value_tokens_);
  call(find_name_);
  op(Op::cmp, r32(Reg::rax), imm(kTokenChunked));
  jmp(Op::jne, other);
  mov(var32(v_.te), imm(kTeChunked), "...unless it is chunked");
  jmp(Op::jmp, element);
  if (v_.te_coded.id < 0) return;
  label(other);
  mov(var32(v_.te_coded), imm(1), "gzip, deflate...: an upload could not store it decoded");
  jmp(Op::jmp, element);
}

void HttpParse::emit_expect(Label next) {
  // Expect (RFC 9110 10.1.1): "100-continue" is the only expectation.
  Label other = local("expect_other");
  mov(r64(Reg::rdx), r64(Reg::r9));
  op(Op::sub, r64(Reg::rdx), r64(Reg::r11), "the value's length");
  mov(r64(Reg::rcx), r64(Reg::r11));
  lea(Reg::rdi, value_tokens_);
  call(find_name_);
  op(Op::cmp, r32(Reg::rax), imm(kToken100Continue));
  jmp(Op::jne, other);
  op(Op::cmp, var32(v_.expect), imm(kExpectOther), "another Expect field had something else?");
  jmp(Op::je, next, "that stays");
  mov(var32(v_.expect), imm(kExpectContinue), "Expect: 100-continue");
  jmp(Op::jmp, next);
  label(other);
  mov(var32(v_.expect), imm(kExpectOther), "an expectation we cannot meet: 417");
  jmp(Op::jmp, next);
}

void HttpParse::emit_checks(Label route) {
  Label no_te = local("no_transfer_encoding");
  Label host_ok = local("host_ok");
  Label size_ok = local("size_ok");
  Label expect_ok = local("expect_ok");
  Label check = local("check_request");
  falls_into(check);
  block(check, "parse_request: the rules across fields", nullptr,
        "Transfer-Encoding with Content-Length, in HTTP/1.0, or whose last coding is\n"
        "   not chunked: 400; two Content-Lengths, no Host in HTTP/1.1 or two Hosts: 400;\n"
        "   an Expect other than 100-continue: 417; a body over limits.body_bytes: 413",
        "RFC 9112 6.1 and 6.3: a chunked body is read (and dropped, by http_conn);\n"
        "any other framing by Transfer-Encoding cannot be, so the request is\n"
        "malformed. HTTP/1.0 has no Transfer-Encoding. RFC 9110 10.1.1: Expect is\n"
        "ignored in HTTP/1.0.");
  op(Op::cmp, var32(v_.te), imm(kTeNone));
  jmp(Op::je, no_te);
  op(Op::cmp, var32(v_.cl_count), imm(0));
  jmp(Op::jne, bad_request_, "both framings: a smuggling attempt");
  op(Op::cmp, var32(v_.minor), imm(0));
  jmp(Op::je, bad_request_, "Transfer-Encoding in HTTP/1.0");
  op(Op::cmp, var32(v_.te), imm(kTeChunked));
  jmp(Op::jne, bad_request_, "the last coding is not chunked: no way to find the body's end");
  label(no_te);
  op(Op::cmp, var32(v_.cl_count), imm(1));
  jmp(Op::ja, bad_request_, "Content-Length twice");
  op(Op::cmp, var32(v_.host), imm(1));
  jmp(Op::ja, bad_request_, "Host twice");
  jmp(Op::je, host_ok);
  op(Op::cmp, var32(v_.minor), imm(0));
  jmp(Op::jne, bad_request_, "HTTP/1.1 without Host");
  label(host_ok);
  op(Op::cmp, var32(v_.minor), imm(0), "HTTP/1.0: Expect is ignored");
  jmp(Op::jne, expect_ok);
  mov(var32(v_.expect), imm(kExpectNone));
  label(expect_ok);
  op(Op::cmp, var32(v_.expect), imm(kExpectOther));
  Label expect_met = local("expect_met");
  jmp(Op::jne, expect_met);
  set(Reg::rax, t_.expectation_failed, "417 Expectation Failed");
  ret();
  label(expect_met);
  set(Reg::rcx, spec_.limits.body_bytes, "limits.body_bytes");
  op(Op::cmp, var64(v_.content_length), r64(Reg::rcx));
  jmp(Op::jbe, size_ok);
  std::vector<int> uploads;
  for (size_t i = 0; i < t_.responses.size(); ++i)
    if (t_.responses[i].kind == ResponseKind::upload) uploads.push_back(static_cast<int>(i));
  Label stored = uploads.empty() ? Label{} : local("stored");
  if (!uploads.empty()) {
    note("An upload has its own max_bytes (checked when it starts): route first.");
    call(route, "eax = the response");
    for (int u : uploads) {
      op(Op::cmp, r32(Reg::rax), imm(u), t_.responses[u].what);
      jmp(Op::je, stored);
    }
  }
  set(Reg::rax, t_.content_too_large, uploads.empty() ? "413 Content Too Large" : "not an upload: 413 Content Too Large");
  if (!uploads.empty()) label(stored);
  ret();
  label(size_ok);
  jmp(Op::jmp, route, "route it: a tail call, route returns to our caller");
}

}  // namespace asmsrv
