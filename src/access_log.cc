#include "access_log.h"

#include <fmt/format.h>

namespace asmsrv {

using namespace linux;

AccessLog::AccessLog(const Spec& spec, Builder& b, Runtime& rt) : Gen(spec, b), rt_(rt), addr_text_(spec, b, rt) {
  request_ = local("log_request");
  connection_ = local("log_connection");
  // An access log line holds a request line of up to request_bytes, plus
  // at most 60 bytes; a connection line at most 72. The other formats add
  // their escaped header values and under 256 bytes of their own.
  size_t request_bytes = static_cast<size_t>(spec_.limits.request_bytes);
  switch (spec_.log_format) {
    case LogFormat::asmsrv: break;
    case LogFormat::common: request_bytes += 256; break;
    case LogFormat::combined: request_bytes += 2 * kHeaderBytes + 256; break;
    case LogFormat::json: request_bytes += kHeaderBytes + 2 * kWordBytes + 256; break;
  }
  line_bytes_ = request_bytes;
  if (spec_.log_requests) rt_.need_line(request_bytes);
}

void AccessLog::log_stored(Label location, Label len) {
  if (!spec_.log_requests || spec_.log_format == LogFormat::common || spec_.log_format == LogFormat::combined)
    return;  // their fields are fixed: a tool that reads them would not expect one more
  stored_ = location;
  stored_len_ = len;
  // The path is at most a request's; a made-up name adds under 64 bytes.
  rt_.need_line(line_bytes_ + static_cast<size_t>(spec_.limits.request_bytes) + 64);
}

void AccessLog::put_stored() {
  if (stored_.id < 0) return;
  Label not_stored = local("not_stored");
  op(Op::cmp, var32(status_), imm(201), "a body stored?");
  jmp(Op::jne, not_stored);
  op(Op::cmp, var64(stored_len_), imm(0), "by an upload (a route may answer 201 too)");
  jmp(Op::je, not_stored);
  mov(r64(Reg::rsi), var64(stored_), "where: the 201's Location");
  mov(r64(Reg::rcx), var64(stored_len_));
  if (spec_.log_format == LogFormat::json) {
    put(",\"stored\":\"");
    lea(Reg::rdx, mem(Width::none, Reg::rdi, spec_.limits.request_bytes + 64), "at most that much of it");
    call(escape_, "the path, escaped");
    put("\"");
  } else {
    put(" stored ");
    plain(Op::rep_movsb, "the path: no space or control character (the parser saw to it)");
  }
  label(not_stored);
  mov(var64(stored_len_), imm(0), "said once: the next line is another request's");
}

Label AccessLog::request(Label status, Label body_bytes, const RequestVars& req, HttpDate& date) {
  want_request_ = true;
  status_ = status;
  body_bytes_ = body_bytes;
  req_ = req;
  date_ = &date;
  if (spec_.log_format != LogFormat::asmsrv) {
    escape_ = local("log_escape");
    date.want_for_log(spec_.log_format == LogFormat::json);
  }
  if (spec_.log_format == LogFormat::json) word_ = local("log_word");
  return request_;
}

Label AccessLog::connection() {
  want_connection_ = true;
  return connection_;
}

void AccessLog::emit() {
  if (want_request_ && spec_.log_format != LogFormat::asmsrv) {
    emit_request();
    emit_escape();
    if (word_.id >= 0) emit_word();
  } else if (want_request_) {
    block(request_, "subroutine log_request", &kWrite,
          "dprintf(log_fd, \"%s \\\"%.*s\\\" %d %zu\\n\", ip, line_len, buf, status, body_bytes)",
          "One access-log line: client address, request line, status, body bytes.\n"
          "Built in line_buf and written with one write(). Keeps rbx and rbp.");
    lea(Reg::rdi, rt_.line_buf());
    lea(Reg::rsi, conn(ConnField::addr), "the client's address");
    call(addr_text_.append());
    mov(mem16(Reg::rdi), imm(0x2220), "' \"'");
    op(Op::add, r64(Reg::rdi), imm(2));
    rt_.copy_line(kBuf, kBufLen);
    mov(mem16(Reg::rdi), imm(0x2022), "'\" '");
    op(Op::add, r64(Reg::rdi), imm(2));
    mov(r32(Reg::rax), var32(status_));
    call(rt_.append_u64());
    mov(mem8(Reg::rdi), chr(' '));
    op(Op::inc, r64(Reg::rdi));
    mov(r64(Reg::rax), var64(body_bytes_));
    call(rt_.append_u64());
    put_stored();
    rt_.write_line(rt_.log_fd(), "log_fd");
    ret("a failed log write is not fatal");
  }
  if (want_connection_) {
    const std::string from_text = "connection from ", bytes_text = ", bytes read: ";
    Label from = b_.bytes("log_from", from_text, "connection log, part 1");
    Label bytes = b_.bytes("log_bytes", bytes_text, "connection log, part 2");
    block(connection_, "subroutine log_connection", &kWrite,
          spec_.ipv6 ? "dprintf(log_fd, \"connection from %s, bytes read: %zu\\n\", \"[ip]:port\", record.bytes)"
                     : "dprintf(log_fd, \"connection from %s:%u, bytes read: %zu\\n\", ip, port, record.bytes)",
          "Built in line_buf and written with one write(), so lines from several\n"
          "processes do not interleave.");
    lea(Reg::rdi, rt_.line_buf(), "rdi = where the line is built");
    lea(Reg::rsi, from);
    set(Reg::rcx, static_cast<int64_t>(from_text.size()));
    plain(Op::rep_movsb, "copy \"connection from \"");
    call(addr_text_.append_with_port(), "\"127.0.0.1:54321\"");
    lea(Reg::rsi, bytes);
    set(Reg::rcx, static_cast<int64_t>(bytes_text.size()));
    plain(Op::rep_movsb, "copy \", bytes read: \"");
    mov(r64(Reg::rax), conn(ConnField::bytes));
    call(rt_.append_u64());
    rt_.write_line(rt_.log_fd(), "log_fd");
    ret("a failed log write is not fatal");
  }
  addr_text_.emit();
}

void AccessLog::put(const std::string& text) {
  for (size_t i = 0; i < text.size();) {
    size_t left = text.size() - i, n = left >= 4 ? 4 : left >= 2 ? 2 : 1;
    std::string chunk = text.substr(i, n);
    Width w = n == 4 ? Width::b32 : n == 2 ? Width::b16 : Width::b8;
    mov(mem(w, Reg::rdi, static_cast<int32_t>(i)),
        n == 1 ? chr(chunk[0]) : imm(Gen::text_imm(chunk, false).first), "'" + chunk + "'");
    i += n;
  }
  if (text.size() == 1) op(Op::inc, r64(Reg::rdi));
  else op(Op::add, r64(Reg::rdi), imm(static_cast<int64_t>(text.size())));
}

void AccessLog::put_number(Label var, Width w) {
  if (w == Width::b32) mov(r32(Reg::rax), var32(var));
  else mov(r64(Reg::rax), var64(var));
  call(rt_.append_u64());
}

void AccessLog::put_time() {
  // date_line is "Date: Sun, 06 Nov 1994 08:49:37 GMT": the day at +11, the
  // month's name at +14, the year at +18, the time at +23.
  auto copy = [&](int from, int to, Width w, const std::string& what) {
    Reg r = Reg::rax;
    Operand reg = w == Width::b64 ? r64(r) : w == Width::b32 ? r32(r) : r16(r);
    mov(reg, mem(w, Reg::rsi, from));
    mov(mem(w, Reg::rdi, to), reg, what);
  };
  lea(Reg::rsi, date_->line(), "the Date line, fresh");
  if (spec_.log_format == LogFormat::json) {
    copy(18, 0, Width::b32, "\"1994\"");
    mov(mem8(Reg::rdi, 4), chr('-'));
    mov(r16(Reg::rax), rip(date_->month_digits(), Width::b16));
    mov(mem16(Reg::rdi, 5), r16(Reg::rax), "\"11\"");
    mov(mem8(Reg::rdi, 7), chr('-'));
    copy(11, 8, Width::b16, "\"06\"");
    mov(mem8(Reg::rdi, 10), chr('T'));
    copy(23, 11, Width::b64, "\"08:49:37\"");
    mov(mem8(Reg::rdi, 19), chr('Z'));
    op(Op::add, r64(Reg::rdi), imm(20), "\"1994-11-06T08:49:37Z\"");
  } else {
    mov(mem8(Reg::rdi), chr('['));
    copy(11, 1, Width::b16, "\"06\"");
    mov(mem8(Reg::rdi, 3), chr('/'));
    copy(14, 4, Width::b32, "\"Nov \", the space overwritten next");
    mov(mem8(Reg::rdi, 7), chr('/'));
    copy(18, 8, Width::b32, "\"1994\"");
    mov(mem8(Reg::rdi, 12), chr(':'));
    copy(23, 13, Width::b64, "\"08:49:37\"");
    op(Op::add, r64(Reg::rdi), imm(21), "\"[06/Nov/1994:08:49:37\"");
    put(" +0000]");
  }
}

void AccessLog::put_header(Label value, Label len, const std::string& quote, const std::string& missing) {
  Label have = local("log_header"), done = local("log_header_done");
  mov(r64(Reg::rcx), var64(len), "the field's length; 0: none");
  op(Op::test, r64(Reg::rcx), r64(Reg::rcx));
  jmp(Op::jnz, have);
  put(missing);
  jmp(Op::jmp, done);
  label(have);
  put(quote);
  mov(r64(Reg::rsi), var64(value));
  lea(Reg::rdx, mem(Width::none, Reg::rdi, kHeaderBytes), fmt::format("at most {} bytes of it", kHeaderBytes));
  call(escape_);
  put(quote);
  label(done);
  mov(var64(len), imm(0), "used: the next request starts without one");
}

void AccessLog::emit_request() {
  const bool json = spec_.log_format == LogFormat::json;
  const int target_bytes = static_cast<int>(spec_.limits.request_bytes);
  std::string c_equiv =
      json ? "dprintf(log_fd, \"{\\\"time\\\":\\\"%s\\\",\\\"client\\\":\\\"%s\\\",\\\"method\\\":...}\\n\", iso_time, ip, ...)"
           : "dprintf(log_fd, \"%s - - [%s] \\\"%s\\\" %d %zu" +
                 std::string(spec_.log_format == LogFormat::combined ? " \\\"%s\\\" \\\"%s\\\"" : "") +
                 "\\n\", ip, clf_time, request_line, status, body_bytes" +
                 (spec_.log_format == LogFormat::combined ? ", referer, user_agent)" : ")");
  block(request_, "subroutine log_request", &kWrite, c_equiv,
        std::string(json ? "One access-log line as a JSON object: time, client, method, target,\n"
                           "protocol, status, bytes, user_agent (null when none)."
                         : spec_.log_format == LogFormat::combined
                               ? "One access-log line in the Combined Log Format: the Common one, then\n"
                                 "Referer and User-Agent (\"-\" when none)."
                               : "One access-log line in the Common Log Format (NCSA): client, -, -,\n"
                                 "[time], \"request line\", status, body bytes.") +
            "\nThe time comes from the Date line, refreshed first. Request bytes are\n"
            "escaped (log_escape) and cut to fit line_buf. Built in line_buf and written\n"
            "with one write(). Keeps rbx and rbp.");
  date_->refresh_if_stale();
  lea(Reg::rdi, rt_.line_buf());
  auto client = [&] {
    lea(Reg::rsi, conn(ConnField::addr), "the client's address");
    call(addr_text_.append());
  };
  if (json) {
    put("{\"time\":\"");
    put_time();
    put("\",\"client\":\"");
    client();
    put("\",\"method\":\"");
    rt_.line_length(kBuf, kBufLen);
    mov(r64(Reg::r9), r64(Reg::rsi), "r9 walks the request line");
    lea(Reg::r10, mem_index(Width::none, Reg::rsi, Reg::rcx), "r10 = its end");
    set(Reg::rdx, kWordBytes);
    call(word_, "the method");
    put("\",\"target\":\"");
    set(Reg::rdx, target_bytes);
    call(word_, "the target");
    put("\",\"protocol\":\"");
    mov(r64(Reg::rsi), r64(Reg::r9), "the rest of the line");
    mov(r64(Reg::rcx), r64(Reg::r10));
    op(Op::sub, r64(Reg::rcx), r64(Reg::r9));
    lea(Reg::rdx, mem(Width::none, Reg::rdi, kWordBytes));
    call(escape_, "the protocol");
    put("\",\"status\":");
    put_number(status_, Width::b32);
    put(",\"bytes\":");
    put_number(body_bytes_, Width::b64);
    put(",\"user_agent\":");
    put_header(req_.user_agent, req_.user_agent_len, "\"", "null");
    put_stored();
    put("}");
  } else {
    client();
    put(" - - ");
    put_time();
    put(" \"");
    rt_.line_length(kBuf, kBufLen);
    lea(Reg::rdx, mem(Width::none, Reg::rdi, target_bytes), "at most request_bytes of it");
    call(escape_, "the request line");
    put("\" ");
    put_number(status_, Width::b32);
    put(" ");
    put_number(body_bytes_, Width::b64);
    if (spec_.log_format == LogFormat::combined) {
      put(" ");
      put_header(req_.referer, req_.referer_len, "\"", "\"-\"");
      put(" ");
      put_header(req_.user_agent, req_.user_agent_len, "\"", "\"-\"");
    }
  }
  rt_.write_line(rt_.log_fd(), "log_fd");
  ret("a failed log write is not fatal");
}

void AccessLog::emit_escape() {
  const bool json = spec_.log_format == LogFormat::json;
  const std::string prefix = json ? "\\u00" : "\\x";
  Label loop = local("escape_byte"), quote = local("escape_quote"), hex = local("escape_hex");
  Label next = local("escape_next"), done = local("escape_done");
  block(escape_, "subroutine log_escape(rsi = src, rcx = count, rdi = dst, rdx = dst limit)", nullptr,
        json ? "for each byte: '\"' and '\\\\' get a '\\\\' before them; below 0x20 and from 0x7f: \"\\\\u00XX\""
             : "for each byte: '\"' and '\\\\' get a '\\\\' before them; below 0x20 and from 0x7f: \"\\\\xXX\"",
        std::string(json ? "Request bytes inside a JSON string: the line stays valid JSON (and ASCII)\n"
                           "whatever a client sends."
                         : "Request bytes inside a quoted log field, as nginx writes them: a client\n"
                           "cannot end the field early, nor put a control character in the log.") +
            "\nStops before a byte whose escape would pass rdx, so a long field is cut\n"
            "there. rdi advanced. Clobbers rax, rcx, rsi, r8.");
  label(loop);
  op(Op::test, r64(Reg::rcx), r64(Reg::rcx));
  jmp(Op::jz, done, "all of it");
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::cmp, r32(Reg::rax), chr('"'));
  jmp(Op::je, quote);
  op(Op::cmp, r32(Reg::rax), chr('\\'));
  jmp(Op::je, quote);
  lea(Reg::r8, mem(Width::none, Reg::rax, -0x20));
  op(Op::cmp, r32(Reg::r8), imm(0x7f - 0x20), "printable ASCII: 0x20 to 0x7e");
  jmp(Op::jae, hex);
  op(Op::cmp, r64(Reg::rdi), r64(Reg::rdx), "room for one byte?");
  jmp(Op::jae, done);
  mov(mem8(Reg::rdi), r8(Reg::rax), "as it is");
  op(Op::inc, r64(Reg::rdi));
  jmp(Op::jmp, next);
  label(quote);
  lea(Reg::r8, mem(Width::none, Reg::rdi, 2));
  op(Op::cmp, r64(Reg::r8), r64(Reg::rdx), "room for two?");
  jmp(Op::ja, done);
  mov(mem8(Reg::rdi), chr('\\'));
  mov(mem8(Reg::rdi, 1), r8(Reg::rax));
  op(Op::add, r64(Reg::rdi), imm(2));
  jmp(Op::jmp, next);
  label(hex);
  const int escaped = static_cast<int>(prefix.size()) + 2;
  lea(Reg::r8, mem(Width::none, Reg::rdi, escaped));
  op(Op::cmp, r64(Reg::r8), r64(Reg::rdx), fmt::format("room for {}?", escaped));
  jmp(Op::ja, done);
  put(prefix);
  for (int half : {1, 0}) {  // the high digit first
    Label digit = local("escape_digit");
    mov(r32(Reg::r8), r32(Reg::rax));
    if (half) op(Op::shr, r32(Reg::r8), imm(4), "the high 4 bits");
    else op(Op::and_, r32(Reg::r8), imm(15), "the low 4 bits");
    op(Op::cmp, r32(Reg::r8), imm(10));
    jmp(Op::jb, digit);
    op(Op::add, r32(Reg::r8), imm('A' - '0' - 10), "10-15: 'A'-'F'");
    label(digit);
    op(Op::add, r32(Reg::r8), chr('0'));
    mov(mem8(Reg::rdi, 1 - half), r8(Reg::r8));
  }
  op(Op::add, r64(Reg::rdi), imm(2));
  label(next);
  op(Op::inc, r64(Reg::rsi));
  op(Op::dec, r64(Reg::rcx));
  jmp(Op::jmp, loop);
  label(done);
  ret();
}

void AccessLog::emit_word() {
  Label scan = local("word_byte"), end = local("word_end"), last = local("word_last");
  block(word_, "subroutine log_word(r9 = cursor, r10 = the line's end, rdx = most bytes)", nullptr,
        "n = strcspn(r9, \" \"); log_escape(r9, n, rdi, rdi + rdx); r9 += n + 1",
        "The next word of the request line (the method, then the target), escaped at\n"
        "rdi; r9 moves past it and its space. Clobbers rax, rcx, rdx, rsi, r8.");
  mov(r64(Reg::rsi), r64(Reg::r9), "the word");
  label(scan);
  op(Op::cmp, r64(Reg::r9), r64(Reg::r10));
  jmp(Op::jae, end);
  op(Op::cmp, mem8(Reg::r9), chr(' '));
  jmp(Op::je, end);
  op(Op::inc, r64(Reg::r9));
  jmp(Op::jmp, scan);
  label(end);
  mov(r64(Reg::rcx), r64(Reg::r9));
  op(Op::sub, r64(Reg::rcx), r64(Reg::rsi), "rcx = its length");
  op(Op::cmp, r64(Reg::r9), r64(Reg::r10));
  jmp(Op::jae, last, "no space after it");
  op(Op::inc, r64(Reg::r9), "past the space");
  label(last);
  op(Op::add, r64(Reg::rdx), r64(Reg::rdi), "rdx = the limit");
  jmp(Op::jmp, escape_, "tail call");
}

}  // namespace asmsrv
