// The HTTP/1.1 engine: read a request head with a deadline, parse and route
// it with code generated from the spec, send a precomputed response with one
// writev, discard the request body, and go on with keep-alive and pipelining.
#include <fmt/format.h>

#include "http.h"
#include "lower.h"
#include "lowerer.h"

namespace asmsrv {

using namespace linux;

namespace {

// Bits of char_class: one byte per character code, computed here.
constexpr int kTchar = 1;       // token: methods and header names (RFC 9110 §5.6.2)
constexpr int kFieldChar = 2;   // field value: VCHAR, obs-text, SP, HT
constexpr int kTargetChar = 4;  // request target: VCHAR and obs-text

std::string char_class_table() {
  std::string t(256, '\0');
  for (int c = 0; c < 256; ++c) {
    int bits = 0;
    if (c < 128 && is_token(std::string(1, static_cast<char>(c)))) bits |= kTchar;
    if ((c > 0x20 && c < 0x7f) || c >= 0x80 || c == ' ' || c == '\t') bits |= kFieldChar;
    if ((c > 0x20 && c < 0x7f) || c >= 0x80) bits |= kTargetChar;
    t[c] = static_cast<char>(bits);
  }
  return t;
}

// A response record in the `responses` table: eight dwords.
constexpr int kRecordShift = 5;  // 32 bytes
constexpr int kRecHead = 0;      // offset of the first head in response_heads
constexpr int kRecLenClose = 4;  // length of the head with "Connection: close"
constexpr int kRecLenKeep = 8;   // ... with nothing (keep-alive, HTTP/1.1)
constexpr int kRecLenKeep10 = 12;  // ... with "Connection: keep-alive" (HTTP/1.0)
constexpr int kRecBody = 16;     // offset of the body in response_bodies
constexpr int kRecStatus = 20;
constexpr int kRecBodyLen = 24;
constexpr int kRecClose = 28;    // 1: always close the connection after it

// Connection modes: what happens after the response.
constexpr int kModeClose = 0;
constexpr int kModeKeep = 1;
constexpr int kModeKeep10 = 2;

constexpr int kHead = static_cast<int>(Method::HEAD);

// "ab" as a little-endian immediate of text.size() bytes, with each letter's
// 0x20 bit in `mask` when folding case.
std::pair<int64_t, int64_t> text_imm(const std::string& text, bool fold) {
  int64_t v = 0, mask = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    bool letter = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    if (fold && letter) {
      c |= 0x20;
      mask |= int64_t{0x20} << (8 * i);
    }
    v |= int64_t{c} << (8 * i);
  }
  return {v, mask};
}

std::string printable(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace

void Lowerer::match_text(Reg base, int disp, const std::string& text, bool fold, Label fail) {
  size_t i = 0;
  while (i < text.size()) {
    size_t left = text.size() - i;
    // Whole dwords; the tail as an overlapping dword when the text has 4 bytes.
    size_t at = i, n = 4;
    if (left < 4) {
      if (text.size() >= 4) at = text.size() - 4;
      else n = left >= 2 ? 2 : 1;
    }
    std::string chunk = text.substr(at, n);
    auto [value, mask] = text_imm(chunk, fold);
    Width w = n == 4 ? Width::b32 : n == 2 ? Width::b16 : Width::b8;
    std::string what = fmt::format("\"{}\"", printable(chunk));
    if (fold && mask) {
      if (n == 4) mov(r32(Reg::rax), mem(w, base, disp + static_cast<int>(at)));
      else b_.emit(Op::movzx, {r32(Reg::rax), mem(w, base, disp + static_cast<int>(at))});
      op(Op::or_, r32(Reg::rax), imm(mask), "to lower case");
      op(Op::cmp, r32(Reg::rax), imm(value), what);
    } else {
      op(Op::cmp, mem(w, base, disp + static_cast<int>(at)), imm(value), what);
    }
    jmp(Op::jne, fail);
    i = at + n;
  }
}

void Lowerer::declare_http_data() {
  next_request_ = b_.new_label("next_request");
  after_response_ = b_.new_label("after_response");
  respond_ = b_.new_label("respond");
  read_timed_ = b_.new_label("read_timed");
  find_head_end_ = b_.new_label("find_head_end");
  parse_request_ = b_.new_label("parse_request");
  prepare_response_ = b_.new_label("prepare_response");
  send_response_ = b_.new_label("send_response");
  decide_mode_ = b_.new_label("decide_mode");
  too_large_ = b_.new_label("too_large");
  log_request_ = b_.new_label("log_request");

  std::string heads;
  std::vector<Piece> bodies, records;
  uint64_t body_offset = 0;
  for (size_t k = 0; k < table_.responses.size(); ++k) {
    const CompiledResponse& r = table_.responses[k];
    uint64_t head_offset = heads.size();
    for (const std::string& h : r.heads) heads += h;
    if (!r.file.empty())
      bodies.push_back(Incbin{r.file, r.body_size});
    else if (!r.body.empty())
      bodies.push_back(Bytes{r.body});
    records.push_back(Ints{4,
                           {head_offset, r.heads[0].size(), r.heads[1].size(), r.heads[2].size(),
                            body_offset, static_cast<uint64_t>(r.status), r.body_size,
                            r.always_close ? 1u : 0u},
                           fmt::format("{}: {}", k, r.what)});
    body_offset += r.file.empty() ? r.body.size() : r.body_size;
  }
  heads_ = b_.bytes("response_heads", heads,
                    "every response's status line and header section, three times: with\n"
                    "\"Connection: close\", with nothing (HTTP/1.1 keep-alive), and with\n"
                    "\"Connection: keep-alive\" (HTTP/1.0); protocol errors only close");
  bodies_ = b_.data("response_bodies", Section::rodata, std::move(bodies),
                    "every response's body, back to back");
  responses_ = b_.data("responses", Section::rodata, std::move(records),
                       "the response table, one 32-byte record per response: head offset,\n"
                       "head lengths (close, keep-alive, keep-alive 1.0), body offset, status,\n"
                       "body length, 1 if the connection always closes after it",
                       32);
  char_class_ = b_.bytes("char_class", char_class_table(),
                         "character classes by code: 1 token character (methods, header names),\n"
                         "2 field-value character, 4 request-target character");
  for (size_t i = 0; i < table_.paths.size(); ++i)
    path_labels_.push_back(b_.bytes(fmt::format("path_{}", i), table_.paths[i].path,
                                    "route path " + std::to_string(i)));
  if (!table_.paths.empty()) slash_ = b_.bytes("path_root", "/", "the path of an absolute-form target without one");

  pollfd_ = b_.bss("client_pollfd", 8, "struct pollfd { client_fd, POLLIN, revents }");
  iov_ = b_.bss("iov", 32, "struct iovec[2]: the head and the body of a response");
  scanned_ = b_.bss("scanned", 8, "bytes of the buffer already searched for the head's end");
  deadline_ = b_.bss("deadline", 8, "when the current wait times out (CLOCK_MONOTONIC, ms)");
  head_len_ = b_.bss("head_len", 8, "length of the request head, up to and with CR LF CR LF");
  req_content_length_ = b_.bss("req_content_length", 8, "the request's Content-Length");
  req_path_ = b_.bss("req_path", 8, "address of the request's path");
  req_path_len_ = b_.bss("req_path_len", 8, "its length, without the query");
  resp_body_bytes_ = b_.bss("resp_body_bytes", 8, "body bytes of the last response, for the log");
  served_ = b_.bss("served", 4, "requests answered on this connection", 4);
  conn_mode_ = b_.bss("conn_mode", 4, "after the response: 0 close, 1 keep-alive, 2 keep-alive (HTTP/1.0)", 4);
  resp_status_ = b_.bss("resp_status", 4, "status of the last response, for the log", 4);
  req_method_ = b_.bss("req_method", 4, "1 GET, 2 HEAD, 3 POST, 4 PUT, 5 DELETE, 6 PATCH, 7 OPTIONS", 4);
  req_minor_ = b_.bss("req_minor", 4, "HTTP/1.x: x", 4);
  req_close_ = b_.bss("req_close", 4, "1: Connection: close", 4);
  req_keepalive_ = b_.bss("req_keepalive", 4, "1: Connection: keep-alive", 4);
  req_host_ = b_.bss("req_host", 4, "number of Host fields", 4);
  req_cl_count_ = b_.bss("req_cl_count", 4, "number of Content-Length fields", 4);
  req_te_ = b_.bss("req_te", 4, "1: Transfer-Encoding", 4);
}

// --- the connection loop -------------------------------------------------------

void Lowerer::http_connection() {
  const Limits& lim = spec_.limits;
  Label have_head = b_.new_label("have_head");
  Label too_large = b_.new_label("head_too_large");
  Label read_more = b_.new_label("read_more");

  block(serve_, "start an HTTP connection", &kSetsockopt,
        "setsockopt(client_fd, SOL_SOCKET, SO_SNDTIMEO, &io_timeout, sizeof io_timeout);\n"
        "   len = 0; served = 0; deadline = now_ms() + header_timeout_ms",
        fmt::format("A client that never reads gives up its slot after {} s (write() fails\n"
                    "with -EAGAIN). The first request's head must arrive within {} ms of\n"
                    "accept(), however slowly it trickles in.",
                    kIoTimeoutSeconds, lim.header_timeout_ms));
  mov(r64(Reg::rdi), r64(kClientFd), "fd = client_fd");
  b_.mov_imm(Reg::rsi, kSolSocket, "level = SOL_SOCKET");
  b_.mov_imm(Reg::rdx, kSoSndtimeo, "optname = SO_SNDTIMEO");
  lea(Reg::r10, io_timeout_, "optval = &io_timeout");
  b_.mov_imm(Reg::r8, 16, "optlen = sizeof(struct timeval)");
  sys(kSetsockopt);
  lea(kBuf, request_buf_, "rbp = the request buffer");
  b_.zero(kBufLen, "len = 0: the buffer is empty");
  mov(var64(scanned_), imm(0));
  mov(var64(conn_bytes_), imm(0));
  mov(var32(served_), imm(0));
  set_deadline(lim.header_timeout_ms, "header_timeout_ms");

  block(next_request_, "look for a complete request head", nullptr,
        "head_len = find_head_end(buf, len)",
        "Pipelined requests may already be in the buffer: each is answered, in\n"
        "order, before the next read.");
  call(find_head_end_);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jnz, have_head, "complete: answer it");
  op(Op::cmp, r64(kBufLen), imm(lim.request_bytes));
  jmp(Op::jae, too_large, "the buffer is full and the head has no end");

  Label again = b_.new_label("read_again");
  Label not_eintr = b_.new_label("not_eintr");
  Label counted = b_.new_label("counted");
  block(read_more, "read more of the request", &kRead,
        "n = read_timed(buf + len, sizeof buf - len)",
        "Waits until the deadline at most. End of file, a timeout or an error closes\n"
        "the connection unanswered. A stop signal ends an idle keep-alive connection.");
  b_.label(again);
  Label wait_ok = b_.new_label("wait_ok");
  op(Op::cmp, var32(stop_), imm(0), "asked to stop (maybe while we wrote)?");
  jmp(Op::je, wait_ok);
  op(Op::test, r64(kBufLen), r64(kBufLen), "with no request under way...");
  jmp(Op::jz, finish_, "...close now rather than wait for one");
  b_.label(wait_ok);
  mov(r64(Reg::rsi), r64(kBuf));
  op(Op::add, r64(Reg::rsi), r64(kBufLen), "buf + len");
  b_.mov_imm(Reg::rdx, lim.request_bytes, "the room left: request_bytes - len");
  op(Op::sub, r64(Reg::rdx), r64(kBufLen));
  call(read_timed_);
  op(Op::cmp, r64(Reg::rax), imm(-kEintr), "-EINTR: a signal came");
  jmp(Op::jne, not_eintr);
  op(Op::cmp, var32(stop_), imm(0), "asked to stop?");
  jmp(Op::je, again, "no: wait on");
  op(Op::test, r64(kBufLen), r64(kBufLen), "in the middle of a request?");
  jmp(Op::jnz, again, "yes: finish it first");
  jmp(Op::jmp, finish_, "no: close now");
  b_.label(not_eintr);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jle, finish_, "end of file, timeout or error: close");
  op(Op::add, var64(conn_bytes_), r64(Reg::rax), "count it for the connection log");
  b_.note("The first bytes of a keep-alive request start its header deadline.");
  op(Op::test, r64(kBufLen), r64(kBufLen));
  jmp(Op::jnz, counted);
  op(Op::cmp, var32(served_), imm(0));
  jmp(Op::je, counted, "the first request's deadline runs from accept()");
  mov(r64(Reg::rbx), r64(Reg::rax), "keep n");
  set_deadline(lim.header_timeout_ms, "header_timeout_ms");
  mov(r64(Reg::rax), r64(Reg::rbx));
  b_.label(counted);
  op(Op::add, r64(kBufLen), r64(Reg::rax), "len += n");
  jmp(Op::jmp, next_request_);

  block(too_large, "the head does not fit in the buffer", nullptr, "response = too_large()", "");
  call(too_large_);
  jmp(Op::jmp, respond_);

  block(have_head, "parse the request", nullptr, "response = parse_request(buf, head_len)",
        "Everything the head says is checked, then routed to a response index.");
  mov(var64(head_len_), r64(Reg::rax));
  call(parse_request_, "eax = the response's index");

  block(respond_, "answer", nullptr,
        "conn_mode = keep_alive(request) ? 1 or 2 : 0; send_response(index)",
        "Keep-alive is the default for HTTP/1.1, for HTTP/1.0 only with\n"
        "\"Connection: keep-alive\"; \"Connection: close\", protocol errors, a stop\n"
        "signal and the last of limits.keepalive_requests close the connection.");
  mov(r32(Reg::rbx), r32(Reg::rax), "ebx = response index");
  mov(r32(Reg::rcx), var32(served_), "requests answered before this one");
  call(decide_mode_, "conn_mode = 0, 1 or 2");
  mov(r32(Reg::rax), r32(Reg::rbx));
  call(send_response_, "rax = 0, or -errno");
  mov(r64(Reg::rbx), r64(Reg::rax), "keep the result");
  if (spec_.log_requests) call(log_request_, "one access-log line");
  op(Op::inc, var32(served_));
  op(Op::test, r64(Reg::rbx), r64(Reg::rbx));
  jmp(Op::js, finish_, "the client is gone");
  op(Op::cmp, var32(conn_mode_), imm(kModeClose));
  jmp(Op::je, finish_, "Connection: close");
}

void Lowerer::http_after_response() {
  const Limits& lim = spec_.limits;
  Label all_here = b_.new_label("body_in_buffer");
  Label discard = b_.new_label("discard");
  Label count_ok = b_.new_label("count_ok");
  Label discard_ok = b_.new_label("discard_ok");
  Label consumed = b_.new_label("consumed");
  Label pipelined = b_.new_label("pipelined");
  block(after_response_, "drop the request and its body", &kRead,
        "discard(head_len + content_length); deadline = now_ms() + timeout",
        "The next request starts right after this one's body. A body that is\n"
        "already in the buffer is skipped; the rest is read and thrown away, each\n"
        "read waiting at most header_timeout_ms.");
  mov(r64(Reg::rax), var64(head_len_));
  mov(r64(Reg::rbx), var64(req_content_length_));
  mov(r64(Reg::rcx), r64(kBufLen));
  op(Op::sub, r64(Reg::rcx), r64(Reg::rax), "body bytes already here");
  op(Op::cmp, r64(Reg::rcx), r64(Reg::rbx));
  jmp(Op::jae, all_here);
  op(Op::sub, r64(Reg::rbx), r64(Reg::rcx), "rbx = body bytes still to come");
  b_.zero(kBufLen, "the buffer holds nothing we need");
  b_.label(discard);
  op(Op::test, r64(Reg::rbx), r64(Reg::rbx));
  jmp(Op::jz, consumed);
  set_deadline(lim.header_timeout_ms, "header_timeout_ms for each read");
  mov(r64(Reg::rsi), r64(kBuf), "read into the buffer");
  mov(r64(Reg::rdx), r64(Reg::rbx), "no more than the body's rest:");
  op(Op::cmp, r64(Reg::rdx), imm(lim.request_bytes), "the next request stays unread");
  jmp(Op::jbe, count_ok);
  b_.mov_imm(Reg::rdx, lim.request_bytes);
  b_.label(count_ok);
  call(read_timed_);
  op(Op::cmp, r64(Reg::rax), imm(-kEintr));
  jmp(Op::jne, discard_ok);
  op(Op::cmp, var32(stop_), imm(0), "a signal: stop if asked to");
  jmp(Op::je, discard);
  jmp(Op::jmp, finish_);
  b_.label(discard_ok);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jle, finish_, "end of file, timeout or error");
  op(Op::add, var64(conn_bytes_), r64(Reg::rax));
  op(Op::sub, r64(Reg::rbx), r64(Reg::rax));
  jmp(Op::jmp, discard);

  b_.label(all_here);
  op(Op::add, r64(Reg::rax), r64(Reg::rbx), "n = head + body");
  mov(r64(Reg::rdi), r64(kBuf), "memmove(buf, buf + n, len - n)");
  b_.emit(Op::lea, {r64(Reg::rsi), mem_index(Width::none, Reg::rdi, Reg::rax)});
  mov(r64(Reg::rcx), r64(kBufLen));
  op(Op::sub, r64(Reg::rcx), r64(Reg::rax));
  op(Op::sub, r64(kBufLen), r64(Reg::rax), "len -= n");
  b_.emit(Op::rep_movsb, {}, "forward copy: safe when the areas overlap this way");
  b_.label(consumed);
  mov(var64(scanned_), imm(0), "search the new request from its start");
  call(now_ms_);
  op(Op::test, r64(kBufLen), r64(kBufLen), "is the next request already here?");
  jmp(Op::jnz, pipelined);
  op(Op::add, r64(Reg::rax), imm(lim.keepalive_timeout_ms), "no: wait keepalive_timeout_ms for it");
  mov(var64(deadline_), r64(Reg::rax));
  jmp(Op::jmp, next_request_);
  b_.label(pipelined);
  op(Op::add, r64(Reg::rax), imm(lim.header_timeout_ms), "yes: its head has header_timeout_ms");
  mov(var64(deadline_), r64(Reg::rax));
  jmp(Op::jmp, next_request_);
}

// --- subroutines -------------------------------------------------------------

void Lowerer::decide_mode() {
  const Limits& lim = spec_.limits;
  Label decided = b_.new_label("mode_decided");
  Label http10 = b_.new_label("http10");
  block(decide_mode_, "subroutine decide_mode(eax = response, ecx = requests answered)", nullptr,
        "conn_mode = keep_alive(request) ? (HTTP/1.1 ? 1 : 2) : 0",
        "Keep-alive is the default for HTTP/1.1, for HTTP/1.0 only with\n"
        "\"Connection: keep-alive\"; \"Connection: close\", protocol errors, a stop\n"
        "signal and the last of limits.keepalive_requests close the connection.\n"
        "Keeps eax.");
  mov(var32(conn_mode_), imm(kModeClose), "close, unless kept below");
  if (lim.keepalive_timeout_ms > 0) {
    op(Op::inc, r32(Reg::rcx), "this one too");
    op(Op::cmp, r32(Reg::rcx), imm(lim.keepalive_requests), "the last request allowed?");
    jmp(Op::jae, decided);
    mov(r32(Reg::rcx), r32(Reg::rax));
    op(Op::shl, r64(Reg::rcx), imm(kRecordShift), "index * 32: its record");
    lea(Reg::rdx, responses_);
    op(Op::cmp, mem_index(Width::b32, Reg::rdx, Reg::rcx, kRecClose), imm(0), "always close after it?");
    jmp(Op::jne, decided);
    op(Op::cmp, var32(stop_), imm(0), "shutting down?");
    jmp(Op::jne, decided);
    op(Op::cmp, var32(req_close_), imm(0), "Connection: close?");
    jmp(Op::jne, decided);
    op(Op::cmp, var32(req_minor_), imm(0), "HTTP/1.0?");
    jmp(Op::je, http10);
    mov(var32(conn_mode_), imm(kModeKeep), "HTTP/1.1: keep-alive");
    ret();
    b_.label(http10);
    op(Op::cmp, var32(req_keepalive_), imm(0), "HTTP/1.0 keeps only when asked");
    jmp(Op::je, decided);
    mov(var32(conn_mode_), imm(kModeKeep10), "HTTP/1.0 with Connection: keep-alive");
  } else {
    b_.note("limits.keepalive_timeout_ms is 0: every connection closes after one response.");
  }
  b_.label(decided);
  ret();
}

void Lowerer::too_large() {
  Label found_lf = b_.new_label("found_lf");
  Label scan = b_.new_label("scan_lf");
  Label no_lf = b_.new_label("no_lf");
  Label answer = b_.new_label("answer_too_large");
  block(too_large_, "subroutine too_large: the head does not fit", nullptr,
        "return memchr(buf, '\\n', len) ? 431 : 414",
        fmt::format("Over limits.request_bytes ({}): 414 URI Too Long when even the request\n"
                    "line has no end, else 431 Request Header Fields Too Large. The whole\n"
                    "buffer counts as the head.",
                    spec_.limits.request_bytes));
  b_.zero(Reg::rcx, "i = 0");
  b_.label(scan);
  op(Op::cmp, r64(Reg::rcx), r64(kBufLen));
  jmp(Op::jae, no_lf);
  op(Op::cmp, mem_index(Width::b8, kBuf, Reg::rcx), imm('\n'), "'\\n'");
  jmp(Op::je, found_lf);
  op(Op::inc, r64(Reg::rcx));
  jmp(Op::jmp, scan);
  b_.label(found_lf);
  b_.mov_imm(Reg::rax, table_.headers_too_large, "431");
  jmp(Op::jmp, answer);
  b_.label(no_lf);
  b_.mov_imm(Reg::rax, table_.uri_too_long, "414");
  b_.label(answer);
  mov(var32(req_method_), imm(0), "not HEAD: the error has a body");
  mov(var64(req_content_length_), imm(0));
  mov(var64(head_len_), r64(kBufLen));
  ret();
}

void Lowerer::set_deadline(int ms, const std::string& what) {
  call(now_ms_);
  op(Op::add, r64(Reg::rax), imm(ms), "+ " + what);
  mov(var64(deadline_), r64(Reg::rax), "deadline");
}

void Lowerer::now_ms() {
  block(now_ms_, "subroutine now_ms", &kClockGettime,
        "clock_gettime(CLOCK_MONOTONIC, &now_ts); return tv_sec * 1000 + tv_nsec / 1000000",
        "rax = milliseconds on a clock that never jumps. Clobbers rax, rcx, rdx,\n"
        "rsi, rdi, r11.");
  b_.mov_imm(Reg::rdi, kClockMonotonic, "CLOCK_MONOTONIC");
  lea(Reg::rsi, now_ts_);
  sys(kClockGettime);
  mov(r64(Reg::rax), mem64(Reg::rsi, 8), "tv_nsec");
  b_.zero(Reg::rdx);
  b_.mov_imm(Reg::rcx, 1000000);
  op(Op::div, r64(Reg::rcx), "rax = tv_nsec / 1000000");
  b_.emit(Op::imul, {r64(Reg::rcx), mem64(Reg::rsi), imm(1000)}, "rcx = tv_sec * 1000");
  op(Op::add, r64(Reg::rax), r64(Reg::rcx));
  ret();
}

void Lowerer::read_timed() {
  Label wait = b_.new_label("wait");
  Label timeout = b_.new_label("timed_out");
  Label out = b_.new_label("read_timed_done");
  block(read_timed_, "subroutine read_timed(rsi = buf, rdx = count)", &kPpoll,
        "if (ppoll(&(struct pollfd){ client_fd, POLLIN }, 1, &(deadline - now_ms()), &no_signals) <= 0)\n"
        "   return -ETIMEDOUT (or -errno); return read(client_fd, buf, count);",
        "Waits for input until the deadline, then reads it: rax = bytes read, 0 at\n"
        "end of file, -ETIMEDOUT, -EINTR when a stop signal came, or -errno. Stop\n"
        "signals are blocked while serving; ppoll unblocks them for the wait only,\n"
        "atomically, so one cannot slip in between the stop check and the wait.");
  op(Op::push, r64(Reg::rsi), "keep buf");
  op(Op::push, r64(Reg::rdx), "keep count");
  call(now_ms_);
  mov(r64(Reg::rcx), var64(deadline_));
  op(Op::sub, r64(Reg::rcx), r64(Reg::rax), "ms left = deadline - now");
  jmp(Op::jg, wait);
  b_.label(timeout);
  b_.mov_imm(Reg::rax, -kEtimedout, "-ETIMEDOUT");
  jmp(Op::jmp, out);
  b_.label(wait);
  mov(r64(Reg::rax), r64(Reg::rcx));
  b_.zero(Reg::rdx);
  b_.mov_imm(Reg::rcx, 1000);
  op(Op::div, r64(Reg::rcx), "rax = seconds, rdx = the rest in ms");
  lea(Reg::rsi, poll_ts_);
  mov(mem64(Reg::rsi), r64(Reg::rax), "tv_sec");
  b_.emit(Op::imul, {r64(Reg::rdx), r64(Reg::rdx), imm(1000000)});
  mov(mem64(Reg::rsi, 8), r64(Reg::rdx), "tv_nsec");
  lea(Reg::rdi, pollfd_, "fds = &client_pollfd");
  mov(mem32(Reg::rdi), r32(kClientFd), "fd = client_fd");
  mov(mem32(Reg::rdi, 4), imm(kPollin), "events = POLLIN, revents = 0");
  mov(r64(Reg::rdx), r64(Reg::rsi), "tmo_p = &poll_timeout");
  b_.mov_imm(Reg::rsi, 1, "nfds = 1");
  lea(Reg::r10, no_sigs_, "sigmask = {}: stop signals may arrive now");
  b_.mov_imm(Reg::r8, kSigsetBytes, "sizeof(sigset_t)");
  sys(kPpoll);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jz, timeout, "0: nothing came in time");
  jmp(Op::js, out, "-EINTR or -errno");
  mov(r64(Reg::rdi), r64(kClientFd), "fd = client_fd");
  mov(r64(Reg::rdx), mem64(Reg::rsp), "count");
  mov(r64(Reg::rsi), mem64(Reg::rsp, 8), "buf");
  sys(kRead);
  b_.label(out);
  op(Op::add, r64(Reg::rsp), imm(16), "drop buf and count");
  ret();
}

void Lowerer::find_head_end() {
  Label loop = b_.new_label("scan");
  Label next = b_.new_label("scan_next");
  Label none = b_.new_label("no_end_yet");
  Label found = b_.new_label("found_end");
  Label bare = b_.new_label("bare_lf");
  block(find_head_end_, "subroutine find_head_end", nullptr,
        "for each new LF at i: if buf[i-3..i] == \"\\r\\n\\r\\n\" or buf[i-1] != '\\r' return i + 1;\n"
        "   scanned = len; return 0;",
        "rax = the length of the request head, up to and with CR LF CR LF, or 0.\n"
        "Only bytes not searched before are looked at (the test looks back). A bare\n"
        "LF also ends the head, so that parse_request answers it with 400 instead of\n"
        "leaving the client to the header timeout.");
  mov(r64(Reg::rcx), var64(scanned_), "i = the first new byte");
  b_.label(loop);
  op(Op::cmp, r64(Reg::rcx), r64(kBufLen));
  jmp(Op::jae, none, "all searched");
  op(Op::cmp, mem_index(Width::b8, kBuf, Reg::rcx), imm('\n'), "LF?");
  jmp(Op::jne, next);
  op(Op::test, r64(Reg::rcx), r64(Reg::rcx));
  jmp(Op::jz, bare, "an LF first of all: bare");
  op(Op::cmp, mem_index(Width::b8, kBuf, Reg::rcx, -1), imm('\r'), "CR before it?");
  jmp(Op::jne, bare);
  op(Op::cmp, r64(Reg::rcx), imm(3));
  jmp(Op::jb, next);
  op(Op::cmp, mem_index(Width::b32, kBuf, Reg::rcx, -3), imm(0x0A0D0A0D),
     "\"\\r\\n\\r\\n\" read as a little-endian dword");
  jmp(Op::je, found);
  b_.label(next);
  op(Op::inc, r64(Reg::rcx));
  jmp(Op::jmp, loop);
  b_.label(bare);
  b_.label(found);
  b_.emit(Op::lea, {r64(Reg::rax), mem(Width::none, Reg::rcx, 1)}, "rax = i + 1");
  ret();
  b_.label(none);
  mov(var64(scanned_), r64(kBufLen), "scanned = len");
  b_.zero(Reg::rax);
  ret();
}

void Lowerer::prepare_response() {
  Label head_ready = b_.new_label("head_ready");
  Label body_ready = b_.new_label("body_ready");
  block(prepare_response_, "subroutine prepare_response(eax = response index)", nullptr,
        "iov[0] = { head for conn_mode, its length }; iov[1] = { body, HEAD ? 0 : body_len }",
        "Looks the response up in the table: the head for this connection mode\n"
        "and the body, both precomputed. HEAD gets no body. Also records the\n"
        "status and body bytes for the access log.");
  mov(r32(Reg::rcx), r32(Reg::rax));
  op(Op::shl, r64(Reg::rcx), imm(kRecordShift), "index * 32");
  lea(Reg::r10, responses_);
  op(Op::add, r64(Reg::r10), r64(Reg::rcx), "r10 = &responses[index]");
  lea(Reg::rsi, heads_);
  mov(r32(Reg::rax), mem32(Reg::r10, kRecHead), "head offset");
  op(Op::add, r64(Reg::rsi), r64(Reg::rax), "rsi = the head with Connection: close");
  mov(r32(Reg::rdx), mem32(Reg::r10, kRecLenClose), "rdx = its length");
  mov(r32(Reg::rcx), var32(conn_mode_));
  op(Op::test, r32(Reg::rcx), r32(Reg::rcx));
  jmp(Op::jz, head_ready, "mode 0: close");
  op(Op::add, r64(Reg::rsi), r64(Reg::rdx), "the keep-alive head follows it");
  mov(r32(Reg::rdx), mem32(Reg::r10, kRecLenKeep));
  op(Op::cmp, r32(Reg::rcx), imm(kModeKeep));
  jmp(Op::je, head_ready, "mode 1: HTTP/1.1 keep-alive");
  op(Op::add, r64(Reg::rsi), r64(Reg::rdx), "then the HTTP/1.0 keep-alive head");
  mov(r32(Reg::rdx), mem32(Reg::r10, kRecLenKeep10));
  b_.label(head_ready);
  lea(Reg::r8, bodies_);
  mov(r32(Reg::rax), mem32(Reg::r10, kRecBody), "body offset");
  op(Op::add, r64(Reg::r8), r64(Reg::rax), "r8 = the body");
  mov(r32(Reg::r9), mem32(Reg::r10, kRecBodyLen), "r9 = its length");
  op(Op::cmp, var32(req_method_), imm(kHead), "HEAD?");
  jmp(Op::jne, body_ready);
  b_.zero(Reg::r9, "HEAD: the same head, no body");
  b_.label(body_ready);
  mov(r32(Reg::rax), mem32(Reg::r10, kRecStatus));
  mov(var32(resp_status_), r32(Reg::rax), "for the access log");
  mov(var64(resp_body_bytes_), r64(Reg::r9));
  lea(Reg::rdi, iov_);
  mov(mem64(Reg::rdi), r64(Reg::rsi), "iov[0] = { head, head_len }");
  mov(mem64(Reg::rdi, 8), r64(Reg::rdx));
  mov(mem64(Reg::rdi, 16), r64(Reg::r8), "iov[1] = { body, body_len }");
  mov(mem64(Reg::rdi, 24), r64(Reg::r9));
  ret();
}

void Lowerer::send_response() {
  Label again = b_.new_label("writev_again");
  Label head_done = b_.new_label("head_done");
  Label done = b_.new_label("send_done");
  block(send_response_, "subroutine send_response(eax = response index)", &kWritev,
        "writev(client_fd, iov, 2) after prepare_response",
        "Head and body in one system call; a short write is finished with\n"
        "write_all (blocking modes). rax = 0, or -errno.");
  call(prepare_response_);
  b_.label(again);
  mov(r64(Reg::rdi), r64(kClientFd), "fd = client_fd");
  lea(Reg::rsi, iov_, "iov");
  b_.mov_imm(Reg::rdx, 2, "iovcnt = 2");
  sys(kWritev);
  op(Op::cmp, r64(Reg::rax), imm(-kEintr), "-EINTR: try again");
  jmp(Op::je, again);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, done, "-errno: the client is gone");
  b_.note("A short write: finish the head, then the body, with write_all.");
  lea(Reg::r10, iov_);
  mov(r64(Reg::rcx), mem64(Reg::r10, 8), "head_len");
  op(Op::cmp, r64(Reg::rax), r64(Reg::rcx));
  jmp(Op::jae, head_done);
  mov(r64(Reg::rsi), mem64(Reg::r10));
  op(Op::add, r64(Reg::rsi), r64(Reg::rax), "the head's rest");
  mov(r64(Reg::rdx), r64(Reg::rcx));
  op(Op::sub, r64(Reg::rdx), r64(Reg::rax));
  mov(r64(Reg::rdi), r64(kClientFd));
  call(write_all_);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, done);
  b_.zero(Reg::rax, "no body bytes written yet");
  lea(Reg::r10, iov_);
  mov(r64(Reg::rcx), imm(0));
  b_.label(head_done);
  op(Op::sub, r64(Reg::rax), r64(Reg::rcx), "body bytes written");
  mov(r64(Reg::rsi), mem64(Reg::r10, 16));
  op(Op::add, r64(Reg::rsi), r64(Reg::rax), "the body's rest");
  mov(r64(Reg::rdx), mem64(Reg::r10, 24));
  op(Op::sub, r64(Reg::rdx), r64(Reg::rax));
  mov(r64(Reg::rdi), r64(kClientFd));
  call(write_all_, "returns at once when nothing is left");
  b_.label(done);
  ret();
}

void Lowerer::log_request() {
  Label len = b_.new_label("line_len");
  Label copy = b_.new_label("copy_line");
  block(log_request_, "subroutine log_request", &kWrite,
        "dprintf(log_fd, \"%s \\\"%.*s\\\" %d %zu\\n\", ip, line_len, buf, status, body_bytes)",
        "One access-log line: client address, request line, status, body bytes.\n"
        "Built in line_buf and written with one write(). Keeps rbx and rbp.");
  lea(Reg::rdi, line_buf_);
  call(append_ip_);
  mov(mem16(Reg::rdi), imm(text_imm(" \"", false).first), "' \"'");
  op(Op::add, r64(Reg::rdi), imm(2));
  mov(r64(Reg::rsi), r64(kBuf));
  b_.zero(Reg::rcx, "the request line: up to the first CR or LF");
  b_.label(len);
  op(Op::cmp, r64(Reg::rcx), r64(kBufLen));
  jmp(Op::jae, copy);
  b_.emit(Op::movzx, {r32(Reg::rax), mem_index(Width::b8, Reg::rsi, Reg::rcx)});
  op(Op::cmp, r32(Reg::rax), imm('\r'));
  jmp(Op::je, copy);
  op(Op::cmp, r32(Reg::rax), imm('\n'));
  jmp(Op::je, copy);
  op(Op::inc, r64(Reg::rcx));
  jmp(Op::jmp, len);
  b_.label(copy);
  b_.emit(Op::rep_movsb, {}, "copy it");
  mov(mem16(Reg::rdi), imm(text_imm("\" ", false).first), "'\" '");
  op(Op::add, r64(Reg::rdi), imm(2));
  mov(r32(Reg::rax), var32(resp_status_));
  call(append_u64_);
  mov(mem8(Reg::rdi), imm(' '), "' '");
  op(Op::inc, r64(Reg::rdi));
  mov(r64(Reg::rax), var64(resp_body_bytes_));
  call(append_u64_);
  mov(mem8(Reg::rdi), imm('\n'), "'\\n'");
  op(Op::inc, r64(Reg::rdi));
  mov(r64(Reg::rdx), r64(Reg::rdi), "count = end - start");
  lea(Reg::rsi, line_buf_, "buf = line_buf");
  op(Op::sub, r64(Reg::rdx), r64(Reg::rsi));
  mov(r64(Reg::rdi), r64(kLogFd), "fd = log_fd");
  call(write_all_, "a failed log write is not fatal");
  ret();
}

void Lowerer::parse_request() {
  Label target = b_.new_label("target");
  Label unknown = b_.new_label("unknown_method");
  Label tok = b_.new_label("method_token");
  Label tok_end = b_.new_label("method_token_end");
  bad_request_ = b_.new_label("bad_request");

  block(parse_request_, "subroutine parse_request: the method", nullptr,
        "method = one of GET HEAD POST PUT DELETE PATCH OPTIONS, then one space",
        "eax = the index of the response that answers the request in buf.\n"
        "The head ends in CR LF CR LF (find_head_end made sure), so every scan\n"
        "below stops inside it. rsi walks the head; r8 = char_class.\n"
        "A token that is not a known method: 501. Anything else malformed: 400.");
  for (Label l : {req_minor_, req_close_, req_keepalive_, req_host_, req_cl_count_, req_te_, req_method_})
    mov(var32(l), imm(0));
  mov(var64(req_content_length_), imm(0));
  mov(r64(Reg::rsi), r64(kBuf), "rsi = the request line");
  lea(Reg::r8, char_class_);
  for (int m = 1; m <= kMethodCount; ++m) {
    std::string name = kMethodNames[m];
    Label next = b_.new_label("not_" + name);
    match_text(Reg::rsi, 0, name + " ", false, next);
    mov(var32(req_method_), imm(m), name);
    op(Op::add, r64(Reg::rsi), imm(static_cast<int64_t>(name.size()) + 1));
    jmp(Op::jmp, target);
    b_.label(next);
  }
  b_.label(unknown);
  mov(r64(Reg::rcx), r64(Reg::rsi));
  b_.label(tok);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rcx)});
  op(Op::test, mem_index(Width::b8, Reg::r8, Reg::rax), imm(kTchar), "a token character?");
  jmp(Op::jz, tok_end);
  op(Op::inc, r64(Reg::rcx));
  jmp(Op::jmp, tok);
  b_.label(tok_end);
  op(Op::cmp, r64(Reg::rcx), r64(Reg::rsi));
  jmp(Op::je, bad_request_, "no method at all");
  op(Op::cmp, mem8(Reg::rcx), imm(' '));
  jmp(Op::jne, bad_request_, "not followed by one space");
  b_.mov_imm(Reg::rax, table_.not_implemented, "501 Not Implemented");
  ret();

  // The request target.
  Label origin = b_.new_label("origin_form");
  Label authority = b_.new_label("authority");
  Label no_path = b_.new_label("no_path");
  Label path = b_.new_label("path");
  Label path_end = b_.new_label("path_end");
  Label query = b_.new_label("query");
  Label version = b_.new_label("version");
  block(target, "parse_request: the target", nullptr,
        "path = target up to '?' or '#': \"/a/b?x=1\" -> \"/a/b\"; \"http://host/a\" -> \"/a\"",
        "Origin form (\"/path?query\"), or absolute form (\"http://host/path\"), which a\n"
        "server must accept too. The query is ignored for routing.");
  op(Op::cmp, mem8(Reg::rsi), imm('/'));
  jmp(Op::je, origin);
  match_text(Reg::rsi, 0, "http://", true, bad_request_);
  op(Op::add, r64(Reg::rsi), imm(7), "skip \"http://\"");
  b_.label(authority);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::cmp, r32(Reg::rax), imm('/'));
  jmp(Op::je, origin, "the path starts");
  op(Op::cmp, r32(Reg::rax), imm(' '));
  jmp(Op::je, no_path, "\"http://host\": the path is \"/\"");
  op(Op::test, mem_index(Width::b8, Reg::r8, Reg::rax), imm(kTargetChar));
  jmp(Op::jz, bad_request_);
  op(Op::inc, r64(Reg::rsi));
  jmp(Op::jmp, authority);
  b_.label(no_path);
  if (!table_.paths.empty()) {
    lea(Reg::rax, slash_);
    mov(var64(req_path_), r64(Reg::rax));
  }
  mov(var64(req_path_len_), imm(1));
  jmp(Op::jmp, version);
  b_.label(origin);
  mov(var64(req_path_), r64(Reg::rsi), "the path starts here");
  b_.label(path);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::cmp, r32(Reg::rax), imm(' '));
  jmp(Op::je, path_end);
  op(Op::cmp, r32(Reg::rax), imm('?'));
  jmp(Op::je, query);
  op(Op::cmp, r32(Reg::rax), imm('#'));
  jmp(Op::je, query);
  op(Op::test, mem_index(Width::b8, Reg::r8, Reg::rax), imm(kTargetChar), "a visible character?");
  jmp(Op::jz, bad_request_, "CR, LF, a control character: malformed");
  op(Op::inc, r64(Reg::rsi));
  jmp(Op::jmp, path);
  b_.label(query);
  mov(r64(Reg::rax), r64(Reg::rsi));
  op(Op::sub, r64(Reg::rax), var64(req_path_));
  mov(var64(req_path_len_), r64(Reg::rax), "the path ends at '?' or '#'");
  Label skip = b_.new_label("skip_query");
  b_.label(skip);
  op(Op::inc, r64(Reg::rsi));
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::cmp, r32(Reg::rax), imm(' '));
  jmp(Op::je, version);
  op(Op::test, mem_index(Width::b8, Reg::r8, Reg::rax), imm(kTargetChar));
  jmp(Op::jz, bad_request_);
  jmp(Op::jmp, skip);
  b_.label(path_end);
  mov(r64(Reg::rax), r64(Reg::rsi));
  op(Op::sub, r64(Reg::rax), var64(req_path_));
  mov(var64(req_path_len_), r64(Reg::rax));

  Label v1 = b_.new_label("http_1");
  block(version, "parse_request: the version", nullptr,
        "\" HTTP/\" DIGIT \".\" DIGIT CR LF",
        "HTTP/1.0 and HTTP/1.x; other majors get 505 (HTTP/2 and above, and 0.9).");
  match_text(Reg::rsi, 0, " HTTP/", false, bad_request_);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi, 6)}, "the major digit");
  op(Op::sub, r32(Reg::rax), imm('0'));
  op(Op::cmp, r32(Reg::rax), imm(9));
  jmp(Op::ja, bad_request_, "not a digit");
  op(Op::cmp, mem8(Reg::rsi, 7), imm('.'));
  jmp(Op::jne, bad_request_);
  b_.emit(Op::movzx, {r32(Reg::rcx), mem8(Reg::rsi, 8)}, "the minor digit");
  op(Op::sub, r32(Reg::rcx), imm('0'));
  op(Op::cmp, r32(Reg::rcx), imm(9));
  jmp(Op::ja, bad_request_);
  op(Op::cmp, mem16(Reg::rsi, 9), imm(0x0A0D), "CR LF ends the request line");
  jmp(Op::jne, bad_request_, "anything else (a bare CR, trailing text): malformed");
  op(Op::cmp, r32(Reg::rax), imm(1));
  jmp(Op::je, v1);
  b_.mov_imm(Reg::rax, table_.version_not_supported, "505 HTTP Version Not Supported");
  ret();
  b_.label(v1);
  mov(var32(req_minor_), r32(Reg::rcx), "HTTP/1.minor");
  op(Op::add, r64(Reg::rsi), imm(11), "the first header line");

  parse_headers();
  check_request();
  route();

  block(bad_request_, "parse_request: a malformed request", nullptr, "return 400", "");
  b_.mov_imm(Reg::rax, table_.bad_request, "400 Bad Request");
  ret();
}

void Lowerer::parse_headers() {
  Label line = b_.new_label("header_line");
  Label name = b_.new_label("field_name");
  Label name_end = b_.new_label("field_name_end");
  Label ows = b_.new_label("skip_ows");
  Label value = b_.new_label("field_value");
  Label cr = b_.new_label("field_cr");
  Label trim = b_.new_label("trim");
  Label trimmed = b_.new_label("trimmed");
  Label next = b_.new_label("next_field");
  Label done = b_.new_label("headers_done");
  block(line, "parse_request: the header fields", nullptr,
        "for each \"name: value\\r\\n\": name is a token, value has no CTL, no bare CR",
        "400 for whitespace before the colon, a line folded onto the previous one,\n"
        "a bare CR or LF. The fields that matter here (case-insensitive): Host,\n"
        "Content-Length, Transfer-Encoding, Connection. rcx/rdx = name, r11..r9 = value.");
  op(Op::cmp, mem16(Reg::rsi), imm(0x0A0D), "an empty line ends the head");
  jmp(Op::je, done);
  mov(r64(Reg::rcx), r64(Reg::rsi), "rcx = the name");
  b_.label(name);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::test, mem_index(Width::b8, Reg::r8, Reg::rax), imm(kTchar));
  jmp(Op::jz, name_end);
  op(Op::inc, r64(Reg::rsi));
  jmp(Op::jmp, name);
  b_.label(name_end);
  mov(r64(Reg::rdx), r64(Reg::rsi));
  op(Op::sub, r64(Reg::rdx), r64(Reg::rcx), "rdx = its length");
  jmp(Op::jz, bad_request_, "empty: a line that starts with a space (obs-fold) or ':'");
  op(Op::cmp, mem8(Reg::rsi), imm(':'));
  jmp(Op::jne, bad_request_, "whitespace (or anything) before the colon");
  op(Op::inc, r64(Reg::rsi));
  b_.label(ows);
  Label skip_one = b_.new_label("ows_char");
  op(Op::cmp, mem8(Reg::rsi), imm(' '), "optional whitespace before the value");
  jmp(Op::je, skip_one);
  op(Op::cmp, mem8(Reg::rsi), imm('\t'));
  jmp(Op::jne, value);
  b_.label(skip_one);
  op(Op::inc, r64(Reg::rsi));
  jmp(Op::jmp, ows);
  b_.label(value);
  mov(r64(Reg::r11), r64(Reg::rsi), "r11 = the value");
  Label vloop = b_.new_label("value_char");
  b_.label(vloop);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::cmp, r32(Reg::rax), imm('\r'));
  jmp(Op::je, cr);
  op(Op::test, mem_index(Width::b8, Reg::r8, Reg::rax), imm(kFieldChar), "allowed in a value?");
  jmp(Op::jz, bad_request_, "a bare LF, NUL or another control character");
  op(Op::inc, r64(Reg::rsi));
  jmp(Op::jmp, vloop);
  b_.label(cr);
  op(Op::cmp, mem8(Reg::rsi, 1), imm('\n'));
  jmp(Op::jne, bad_request_, "a bare CR");
  mov(r64(Reg::r9), r64(Reg::rsi), "r9 = the value's end");
  b_.label(trim);
  op(Op::cmp, r64(Reg::r9), r64(Reg::r11));
  jmp(Op::je, trimmed);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::r9, -1)});
  op(Op::cmp, r32(Reg::rax), imm(' '), "trailing whitespace is not part of the value");
  Label trim_one = b_.new_label("trim_one");
  jmp(Op::je, trim_one);
  op(Op::cmp, r32(Reg::rax), imm('\t'));
  jmp(Op::jne, trimmed);
  b_.label(trim_one);
  op(Op::dec, r64(Reg::r9));
  jmp(Op::jmp, trim);
  b_.label(trimmed);

  // Dispatch on the name's length, then its letters.
  Label not_host = b_.new_label("not_host");
  Label not_conn = b_.new_label("not_connection");
  Label not_cl = b_.new_label("not_content_length");
  Label not_te = b_.new_label("not_transfer_encoding");
  op(Op::cmp, r64(Reg::rdx), imm(4));
  jmp(Op::jne, not_host);
  match_text(Reg::rcx, 0, "host", true, not_host);
  op(Op::inc, var32(req_host_), "Host");
  jmp(Op::jmp, next);
  b_.label(not_host);
  op(Op::cmp, r64(Reg::rdx), imm(14));
  jmp(Op::jne, not_cl);
  match_text(Reg::rcx, 0, "content-length", true, not_cl);
  {
    Label digit = b_.new_label("cl_digit");
    Label cl_end = b_.new_label("cl_end");
    Label no_acc = b_.new_label("cl_too_many_digits");
    op(Op::inc, var32(req_cl_count_), "Content-Length");
    op(Op::cmp, r64(Reg::r11), r64(Reg::r9));
    jmp(Op::je, bad_request_, "empty");
    b_.zero(Reg::rax, "the value");
    b_.zero(Reg::rdx, "digits seen");
    b_.label(digit);
    op(Op::cmp, r64(Reg::r11), r64(Reg::r9));
    jmp(Op::je, cl_end);
    b_.emit(Op::movzx, {r32(Reg::rcx), mem8(Reg::r11)});
    op(Op::sub, r32(Reg::rcx), imm('0'));
    op(Op::cmp, r32(Reg::rcx), imm(9));
    jmp(Op::ja, bad_request_, "not a digit: invalid");
    op(Op::inc, r64(Reg::rdx));
    op(Op::cmp, r64(Reg::rdx), imm(15));
    jmp(Op::ja, no_acc, "over 15 digits: far over any limit");
    b_.emit(Op::imul, {r64(Reg::rax), r64(Reg::rax), imm(10)});
    op(Op::add, r64(Reg::rax), r64(Reg::rcx));
    b_.label(no_acc);
    op(Op::inc, r64(Reg::r11));
    jmp(Op::jmp, digit);
    b_.label(cl_end);
    op(Op::cmp, r64(Reg::rdx), imm(15));
    Label store = b_.new_label("cl_store");
    jmp(Op::jbe, store);
    b_.mov_imm(Reg::rax, int64_t{1} << 62, "too large to matter: 2^62");
    b_.label(store);
    mov(var64(req_content_length_), r64(Reg::rax));
    jmp(Op::jmp, next);
  }
  b_.label(not_cl);
  op(Op::cmp, r64(Reg::rdx), imm(17));
  jmp(Op::jne, not_te);
  match_text(Reg::rcx, 0, "transfer-encoding", true, not_te);
  mov(var32(req_te_), imm(1), "Transfer-Encoding");
  jmp(Op::jmp, next);
  b_.label(not_te);
  op(Op::cmp, r64(Reg::rdx), imm(10));
  jmp(Op::jne, not_conn);
  match_text(Reg::rcx, 0, "connection", true, not_conn);
  {
    // Connection: a comma-separated list of tokens; close and keep-alive matter.
    Label tok = b_.new_label("conn_token");
    Label sep = b_.new_label("conn_separator");
    Label scan = b_.new_label("conn_scan");
    Label scanned = b_.new_label("conn_scanned");
    Label not_close = b_.new_label("not_close");
    Label not_ka = b_.new_label("not_keep_alive");
    b_.label(tok);
    op(Op::cmp, r64(Reg::r11), r64(Reg::r9));
    jmp(Op::jae, next, "no more tokens");
    b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::r11)});
    op(Op::cmp, r32(Reg::rax), imm(','));
    jmp(Op::je, sep);
    op(Op::cmp, r32(Reg::rax), imm(' '));
    jmp(Op::je, sep);
    op(Op::cmp, r32(Reg::rax), imm('\t'));
    Label start_tok = b_.new_label("conn_token_start");
    jmp(Op::jne, start_tok);
    b_.label(sep);
    op(Op::inc, r64(Reg::r11));
    jmp(Op::jmp, tok);
    b_.label(start_tok);
    mov(r64(Reg::rcx), r64(Reg::r11), "rcx = the token");
    b_.label(scan);
    op(Op::cmp, r64(Reg::r11), r64(Reg::r9));
    jmp(Op::jae, scanned);
    b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::r11)});
    op(Op::cmp, r32(Reg::rax), imm(','));
    jmp(Op::je, scanned);
    op(Op::cmp, r32(Reg::rax), imm(' '));
    jmp(Op::je, scanned);
    op(Op::cmp, r32(Reg::rax), imm('\t'));
    jmp(Op::je, scanned);
    op(Op::inc, r64(Reg::r11));
    jmp(Op::jmp, scan);
    b_.label(scanned);
    mov(r64(Reg::rdx), r64(Reg::r11));
    op(Op::sub, r64(Reg::rdx), r64(Reg::rcx), "its length");
    op(Op::cmp, r64(Reg::rdx), imm(5));
    jmp(Op::jne, not_close);
    match_text(Reg::rcx, 0, "close", true, not_close);
    mov(var32(req_close_), imm(1), "Connection: close");
    b_.label(not_close);
    op(Op::cmp, r64(Reg::rdx), imm(10));
    jmp(Op::jne, not_ka);
    match_text(Reg::rcx, 0, "keep-alive", true, not_ka);
    mov(var32(req_keepalive_), imm(1), "Connection: keep-alive");
    b_.label(not_ka);
    jmp(Op::jmp, tok);
  }
  b_.label(not_conn);
  b_.label(next);
  op(Op::add, r64(Reg::rsi), imm(2), "past the field's CR LF");
  jmp(Op::jmp, line);
  b_.label(done);
}

void Lowerer::check_request() {
  Label no_te = b_.new_label("no_transfer_encoding");
  Label host_ok = b_.new_label("host_ok");
  Label size_ok = b_.new_label("size_ok");
  block(b_.new_label("check_request"), "parse_request: the rules across fields", nullptr,
        "Transfer-Encoding: 501 (400 with Content-Length); two Content-Lengths,\n"
        "   no Host in HTTP/1.1 or two Hosts: 400; a body over limits.body_bytes: 413",
        "A request body is read and thrown away, so only Content-Length bodies\n"
        "are accepted: chunked bodies are not implemented.");
  op(Op::cmp, var32(req_te_), imm(0));
  jmp(Op::je, no_te);
  op(Op::cmp, var32(req_cl_count_), imm(0));
  jmp(Op::jne, bad_request_, "both framings: a smuggling attempt");
  b_.mov_imm(Reg::rax, table_.not_implemented, "501 Not Implemented");
  ret();
  b_.label(no_te);
  op(Op::cmp, var32(req_cl_count_), imm(1));
  jmp(Op::ja, bad_request_, "Content-Length twice");
  op(Op::cmp, var32(req_host_), imm(1));
  jmp(Op::ja, bad_request_, "Host twice");
  jmp(Op::je, host_ok);
  op(Op::cmp, var32(req_minor_), imm(0));
  jmp(Op::jne, bad_request_, "HTTP/1.1 without Host");
  b_.label(host_ok);
  b_.mov_imm(Reg::rcx, spec_.limits.body_bytes, "limits.body_bytes");
  op(Op::cmp, var64(req_content_length_), r64(Reg::rcx));
  jmp(Op::jbe, size_ok);
  b_.mov_imm(Reg::rax, table_.content_too_large, "413 Content Too Large");
  ret();
  b_.label(size_ok);
}

void Lowerer::route() {
  if (table_.catch_all >= 0) {
    block(b_.new_label("route"), "parse_request: route", nullptr, "return the response",
          "\"response\" answers every path with every known method (HEAD without a body).");
    b_.mov_imm(Reg::rax, table_.catch_all, "the response");
    ret();
    return;
  }
  block(b_.new_label("route"), "parse_request: route by exact path", nullptr,
        "for each route path: if (len == strlen(p) && memcmp(path, p, len) == 0) ...",
        "A compare chain generated from the spec: the length first, then the bytes.\n"
        "Unknown paths get not_found.");
  mov(r64(Reg::r9), var64(req_path_), "r9 = the path");
  mov(r64(Reg::r10), var64(req_path_len_), "r10 = its length");
  std::vector<Label> path_blocks;
  for (size_t i = 0; i < table_.paths.size(); ++i) {
    const PathRoutes& pr = table_.paths[i];
    Label next = b_.new_label("not_path");
    path_blocks.push_back(b_.new_label("path"));
    op(Op::cmp, r64(Reg::r10), imm(static_cast<int64_t>(pr.path.size())), "\"" + pr.path + "\"");
    jmp(Op::jne, next);
    mov(r64(Reg::rsi), r64(Reg::r9));
    lea(Reg::rdi, path_labels_[i]);
    b_.mov_imm(Reg::rcx, static_cast<int64_t>(pr.path.size()));
    b_.emit(Op::repe_cmpsb, {}, "compare while equal");
    jmp(Op::je, path_blocks.back());
    b_.label(next);
  }
  b_.mov_imm(Reg::rax, table_.not_found, "404: not_found");
  ret();
  for (size_t i = 0; i < table_.paths.size(); ++i) {
    const PathRoutes& pr = table_.paths[i];
    block(path_blocks[i], "parse_request: the methods of " + pr.path, nullptr,
          "switch (method)", pr.not_allowed >= 0 ? "Other methods: 405 with Allow." : "");
    mov(r32(Reg::rcx), var32(req_method_));
    for (int m = 1; m <= kMethodCount; ++m) {
      if (pr.by_method[m] < 0) continue;
      Label no = b_.new_label("not");
      op(Op::cmp, r32(Reg::rcx), imm(m), kMethodNames[m]);
      jmp(Op::jne, no);
      b_.mov_imm(Reg::rax, pr.by_method[m], table_.responses[pr.by_method[m]].what);
      ret();
      b_.label(no);
    }
    if (pr.not_allowed >= 0) {
      b_.mov_imm(Reg::rax, pr.not_allowed, "405 Method Not Allowed");
      ret();
    }
  }
}

}  // namespace asmsrv
