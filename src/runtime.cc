#include "runtime.h"

#include <fmt/format.h>

#include <stdexcept>

#include "errno_text.h"

namespace asmsrv {

using namespace linux;

std::string le(uint64_t v, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

Label Runtime::sub(Sub s, const char* name) {
  auto it = subs_.find(s);
  if (it != subs_.end()) return it->second;
  return subs_[s] = local(name);
}

Label Runtime::write_all() { return sub(Sub::write_all, "write_all"); }
Label Runtime::append_u64() { return sub(Sub::append_u64, "append_u64"); }
Label Runtime::now_ms() { return sub(Sub::now_ms, "now_ms"); }
Label Runtime::exit_ok() { return sub(Sub::exit_ok, "exit_ok"); }
Label Runtime::on_signal() { return sub(Sub::on_signal, "on_signal"); }

Label Runtime::restorer() {
  on_signal();  // the restorer is emitted with the handler
  if (!restorer_made_) restorer_ = local("signal_restorer");
  restorer_made_ = true;
  return restorer_;
}

Label Runtime::data_once(const char* name, const std::function<Label()>& make) {
  auto it = data_.find(name);
  if (it != data_.end()) return it->second;
  return data_[name] = make();
}

Label Runtime::clock_now() {
  return data_once("clock_now", [&] {
    return b_.bss("clock_now", 8, "CLOCK_MONOTONIC in ms, as now_ms last read it");
  });
}
Label Runtime::busy() {
  return data_once("busy", [&] { return b_.bss("busy", 4, "1 while a connection is being served", 4); });
}
Label Runtime::stop_requested() {
  return data_once("stop_requested", [&] {
    return b_.bss("stop_requested", 4, "set by the signal handler: stop gracefully", 4);
  });
}
Label Runtime::stop_signals() {
  return data_once("stop_signals", [&] {
    return b_.data("stop_signals", Section::rodata,
                   {Fields{{{8, (1u << (kSigterm - 1)) | (1u << (kSigint - 1)), "bits of SIGTERM and SIGINT"}}}},
                   "sigset_t { SIGTERM, SIGINT }");
  });
}
Label Runtime::no_signals() {
  return data_once("no_signals", [&] {
    return b_.data("no_signals", Section::rodata, {Fields{{{8, 0, "no signal"}}}}, "the empty sigset_t");
  });
}

Operand Runtime::log_fd() {
  if (spec_.log_target == LogTarget::stderr_) return imm(kStderr);
  if (spec_.log_target != LogTarget::file) return imm(kStdout);
  return var32(data_once("log_fd", [&] { return b_.bss("log_fd", 4, "the log file's descriptor", 4); }));
}

Label Runtime::line_buf() {
  if (!line_buf_made_) {
    // Its size is final only once every message is known: emit() sets it.
    line_buf_ = b_.bss("line_buf", 0, "log and error lines are built here");
    line_buf_made_ = true;
  }
  return line_buf_;
}

Label Runtime::listen_port() {
  return data_once("listen_port", [&] {
    return b_.data("listen_port", Section::data,
                   {Fields{{{4, static_cast<uint64_t>(spec_.port), "int: listen.port"}}}},
                   fmt::format("the port, host byte order: {}, or ${} when set", spec_.port, spec_.port_env), 4);
  });
}

void Runtime::need_line(size_t bytes) {
  line_need_ = std::max(line_need_, bytes);
}

void Runtime::name_errnos(std::initializer_list<const char*> errnos) {
  for (const char* name : errnos) {
    // A listing for a first reading keeps the table to the errors of bind,
    // the ones a first run meets; others are printed as numbers.
    if (spec_.teach && std::string_view(name) != "EADDRINUSE" && std::string_view(name) != "EACCES")
      continue;
    errnos_.insert(errno_named(name).number);
  }
}

ErrorPrefix Runtime::error_prefix(const std::string& data_name, const std::string& what,
                                  std::initializer_list<const char*> errnos) {
  name_errnos(errnos);
  std::string s = fmt::format("{}: {}: ", spec_.name, what);
  longest_prefix_ = std::max(longest_prefix_, s.size());
  ErrorPrefix prefix;
  prefix.label = b_.bytes(data_name, s, "error message start");
  prefix.len = s.size();
  return prefix;
}

ErrorPrefix Runtime::error_prefix_at(const std::string& data_name, const std::string& what,
                                     const std::string& address, std::initializer_list<const char*> errnos) {
  if (spec_.port_env.empty()) return error_prefix(data_name, fmt::format("{} {}:{}", what, address, spec_.port), errnos);
  name_errnos(errnos);
  // "name: bind 0.0.0.0:"; the port and ": " come at run time.
  std::string s = fmt::format("{}: {} {}:", spec_.name, what, address);
  ErrorPrefix prefix;
  prefix.label = b_.bytes(data_name, s, "error message start; the port follows");
  prefix.len = s.size();
  prefix.port_follows = true;
  longest_prefix_ = std::max(longest_prefix_, s.size() + 7);  // 5 digits and ": "
  if (die_port_.id < 0) {
    die_port_ = local("die_port");
    die_port_hint_ = local("die_port_hint");
    if (die_hint_.id < 0) die_hint_ = local("die_hint");
  }
  return prefix;
}

void Runtime::add_hint(ErrorPrefix& prefix, const std::string& data_name, const char* errno_name,
                       const std::string& hint) {
  prefix.hint_errno = errno_name;
  errnos_.insert(errno_named(errno_name).number);
  prefix.hint = b_.bytes(data_name, hint, fmt::format("printed after {}'s text", errno_name));
  prefix.hint_len = hint.size();
  longest_prefix_ = std::max(longest_prefix_, prefix.len + hint.size());
  if (die_hint_.id < 0) die_hint_ = local("die_hint");
}

void Runtime::die_if_failed(const ErrorPrefix& prefix) {
  Label ok = local("ok");
  Label die = sub(Sub::die, "die");
  op(Op::test, r64(Reg::rax), r64(Reg::rax), "rax < 0 means -errno");
  jmp(Op::jns, ok);
  lea(Reg::rsi, prefix.label, "the start of the error message");
  set(Reg::rdx, static_cast<int64_t>(prefix.len), "its length");
  // die, or die_port when the port follows the prefix; each with a hint entry.
  Label plain = prefix.port_follows ? die_port_ : die;
  Label hinted = prefix.port_follows ? die_port_hint_ : die_hint_;
  std::string print = prefix.port_follows ? "print it with the port and the errno's text, exit 1"
                                          : "print it with the errno's text and exit 1";
  if (prefix.hint_len == 0) {
    jmp(Op::jmp, plain, print);
  } else {
    op(Op::cmp, r64(Reg::rax), imm(-errno_named(prefix.hint_errno).number),
       fmt::format("-{}?", prefix.hint_errno));
    jmp(Op::jne, plain, "no: " + print);
    lea(Reg::rbp, prefix.hint, "yes: and a hint after the text");
    set(Reg::r14, static_cast<int64_t>(prefix.hint_len), "its length");
    jmp(Op::jmp, hinted);
  }
  label(ok);
}

void Runtime::append_port_colon() {
  mov(r32(Reg::rax), var32(listen_port()), "the port");
  call(append_u64());
  mov(mem16(Reg::rdi), imm(0x203a), "': '");
  op(Op::add, r64(Reg::rdi), imm(2));
}

void Runtime::start_message(const ErrorPrefix& prefix) {
  lea(Reg::rdi, line_buf(), "the line is built in line_buf");
  lea(Reg::rsi, prefix.label);
  set(Reg::rcx, static_cast<int64_t>(prefix.len));
  plain(Op::rep_movsb, "the message start");
  if (prefix.port_follows) append_port_colon();
}

void Runtime::copy_line(Reg src, Reg len) {
  line_length(src, len);
  plain(Op::rep_movsb, "copy it");
}

void Runtime::line_length(Reg src, Reg len) {
  Label scan = local("line_len");
  Label found = local("line_end");
  mov(r64(Reg::rsi), r64(src));
  zero(Reg::rcx, "the line: up to the first CR or LF");
  label(scan);
  op(Op::cmp, r64(Reg::rcx), r64(len));
  jmp(Op::jae, found);
  b_.emit(Op::movzx, {r32(Reg::rax), mem_index(Width::b8, Reg::rsi, Reg::rcx)});
  op(Op::cmp, r32(Reg::rax), chr('\r'));
  jmp(Op::je, found);
  op(Op::cmp, r32(Reg::rax), chr('\n'));
  jmp(Op::je, found);
  op(Op::inc, r64(Reg::rcx));
  jmp(Op::jmp, scan);
  label(found);
}

Label Runtime::fail_line() {
  sub(Sub::die, "die");  // fail_line is die's last step
  if (fail_.id < 0) fail_ = local("fail");
  return fail_;
}

void Runtime::fail_with(const std::string& data_name, const std::string& text) {
  std::string s = fmt::format("{}: {}", spec_.name, text);
  longest_prefix_ = std::max(longest_prefix_, s.size());
  Label msg = b_.bytes(data_name, s, "a fatal error, written as it is");
  lea(Reg::rsi, msg, "the message");
  set(Reg::rcx, static_cast<int64_t>(s.size()), "its length");
  lea(Reg::rdi, line_buf());
  plain(Op::rep_movsb, "into line_buf");
  jmp(Op::jmp, fail_line(), "write it, exit 1");
}

void Runtime::pause_100ms(const std::string& why) {
  Label backoff = data_once("backoff", [&] {
    return b_.data("backoff", Section::rodata,
                   {Fields{{{8, 0, "tv_sec"}, {8, 100'000'000, "tv_nsec: 100 ms"}}}},
                   "struct timespec { 0 s, 100 ms }: the pause after a call that failed");
  });
  lea(Reg::rdi, backoff, why);
  zero(Reg::rsi, "rem = NULL");
  sys(kNanosleep);
}

void Runtime::sigaction(int sig, const std::string& sig_name, Operand act, const std::string& act_comment) {
  set(Reg::rdi, sig, "signum = " + sig_name);
  if (std::holds_alternative<MemOp>(act))
    b_.emit(Op::lea, {r64(Reg::rsi), act}, act_comment);
  else
    mov(r64(Reg::rsi), act, act_comment);
  zero(Reg::rdx, "oldact = NULL");
  set(Reg::r10, kSigsetBytes, "sizeof(sigset_t) as the kernel counts it");
  sys(kRtSigaction);
}

void Runtime::catch_signals(std::initializer_list<std::pair<int, const char*>> sigs, Label handler,
                            const std::string& handler_name) {
  op(Op::sub, r64(Reg::rsp), imm(kSigactionBytes), "struct sigaction on the stack");
  lea(Reg::rax, handler);
  mov(mem64(Reg::rsp, 0), r64(Reg::rax), "sa_handler = " + handler_name);
  mov(mem64(Reg::rsp, 8), imm(kSaRestorer), "sa_flags = SA_RESTORER");
  lea(Reg::rax, restorer());
  mov(mem64(Reg::rsp, 16), r64(Reg::rax), "sa_restorer = signal_restorer");
  mov(mem64(Reg::rsp, 24), imm(0), "sa_mask = {} (the signal itself is masked anyway)");
  for (auto [sig, name] : sigs) sigaction(sig, name, r64(Reg::rsp), "act = the struct above");
  op(Op::add, r64(Reg::rsp), imm(kSigactionBytes), "drop the struct");
}

void Runtime::setsockopt(Reg fd, const char* fd_name, const SockOpt& o, Label optval,
                         const std::string& optval_name) {
  mov(r64(Reg::rdi), r64(fd), fmt::format("fd = {}", fd_name));
  set(Reg::rsi, o.level, fmt::format("level = {}", o.level_name));
  set(Reg::rdx, o.name, fmt::format("optname = {}", o.opt_name));
  lea(Reg::r10, optval, "optval = &" + optval_name);
  set(Reg::r8, o.optlen, fmt::format("optlen = {}", o.optlen_text));
  sys(kSetsockopt);
}

ErrorPrefix Runtime::setsockopt_error(const std::string& data_name, const char* opt_name) {
  return error_prefix(data_name, fmt::format("setsockopt {}", opt_name), {"EBADF", "EINVAL", "ENOMEM"});
}

void Runtime::write_line(Operand fd, const std::string& fd_name) {
  mov(mem8(Reg::rdi), chr('\n'));
  op(Op::inc, r64(Reg::rdi));
  mov(r64(Reg::rdx), r64(Reg::rdi), "count = end - start");
  lea(Reg::rsi, line_buf(), "buf = line_buf");
  op(Op::sub, r64(Reg::rdx), r64(Reg::rsi));
  if (std::holds_alternative<ImmOp>(fd))
    set(Reg::rdi, std::get<ImmOp>(fd).value, "fd = " + fd_name);
  else if (auto* m = std::get_if<MemOp>(&fd); m && m->width == Width::b32)
    mov(r32(Reg::rdi), fd, "fd = " + fd_name);
  else
    mov(r64(Reg::rdi), fd, "fd = " + fd_name);
  call(write_all());
}

void Runtime::mask_stop_signals(int how, const std::string& why) {
  set(Reg::rdi, how, how == kSigBlock ? "SIG_BLOCK" : "SIG_UNBLOCK");
  lea(Reg::rsi, stop_signals(), why.empty() ? "{ SIGTERM, SIGINT }" : why);
  zero(Reg::rdx, "oldset = NULL");
  set(Reg::r10, kSigsetBytes, "sizeof(sigset_t)");
  sys(kRtSigprocmask);
}

void Runtime::emit() {
  // Callers come before callees in Sub's order, so a subroutine asked for
  // while another is emitted is still emitted.
  for (int s = 0; s <= static_cast<int>(Sub::append_u64); ++s) {
    auto it = subs_.find(static_cast<Sub>(s));
    if (it != subs_.end()) emit_sub(it->first, it->second);
  }
  if (!line_buf_made_) return;
  for (DataItem& d : b_.program().data)
    if (d.label == line_buf_) d.pieces = {Zeros{std::max(longest_prefix_, line_need_) + 128}};
}

void Runtime::emit_sub(Sub s, Label l) {
  switch (s) {
    case Sub::on_signal: return emit_on_signal(l);
    case Sub::now_ms: return emit_now_ms(l);
    case Sub::write_all: return emit_write_all(l);
    case Sub::exit_ok: return emit_exit_ok(l);
    case Sub::append_u64: return emit_append_u64(l);
    case Sub::die: return emit_die(l);
  }
}

void Runtime::emit_on_signal(Label l) {
  Label now = local("exit_now");
  block(l, "signal handler for SIGTERM and SIGINT", &kExitGroup,
        "if (stop_requested || !busy) _exit(0); stop_requested = 1;",
        "Idle (a blocking server waiting in accept): exit now. Otherwise note the\n"
        "request: the loop stops gracefully once the connections in progress are\n"
        "done. A second signal exits at once.");
  if (supervisor_signal_.id >= 0) {
    op(Op::cmp, var32(is_supervisor_), imm(0), "the supervisor?");
    jmp(Op::jne, supervisor_signal_, "it passes the signal on to the workers");
  }
  op(Op::cmp, var32(stop_requested()), imm(0), "a second signal?");
  jmp(Op::jne, now);
  op(Op::cmp, var32(busy()), imm(0), "serving a connection?");
  jmp(Op::je, now);
  mov(var32(stop_requested()), imm(1), "stop_requested = 1");
  ret("returns into signal_restorer");
  label(now);
  zero(Reg::rdi, "status = 0");
  sys(kExitGroup);

  block(restorer(), "signal return trampoline", &kRtSigreturn, "rt_sigreturn()",
        "The kernel pushed this address as the handler's return address\n"
        "(SA_RESTORER); rt_sigreturn restores the interrupted registers.");
  sys(kRtSigreturn);
}

void Runtime::emit_now_ms(Label l) {
  Label ts = b_.bss("now_ts", kTimespecBytes, "struct timespec, filled by clock_gettime");
  block(l, "subroutine now_ms", &kClockGettime,
        "clock_gettime(CLOCK_MONOTONIC, &now_ts); return clock_now = tv_sec * 1000 + tv_nsec / 1000000",
        "rax = milliseconds on a clock that never jumps, also kept in clock_now for\n"
        "the deadlines. Clobbers rax, rcx, rdx, rsi, rdi, r11.");
  set(Reg::rdi, kClockMonotonic, "CLOCK_MONOTONIC");
  lea(Reg::rsi, ts);
  sys(kClockGettime);
  mov(r64(Reg::rax), mem64(Reg::rsi, 8), "tv_nsec");
  zero(Reg::rdx);
  set(Reg::rcx, 1000000);
  op(Op::div, r64(Reg::rcx), "rax = tv_nsec / 1000000");
  b_.emit(Op::imul, {r64(Reg::rcx), mem64(Reg::rsi), imm(1000)}, "rcx = tv_sec * 1000");
  op(Op::add, r64(Reg::rax), r64(Reg::rcx));
  mov(var64(clock_now()), r64(Reg::rax));
  ret();
}

void Runtime::emit_exit_ok(Label l) {
  block(l, "exit", &kExitGroup, "exit_group(0)", "");
  zero(Reg::rdi, "status = 0");
  sys(kExitGroup);
}

void Runtime::emit_write_all(Label l) {
  Label loop = local("more");
  Label done = local("done");
  Label eio = local("eio");
  Label out = local("return");
  block(l, "subroutine write_all(rdi = fd, rsi = buf, rdx = count)", &kWrite,
        "while (count > 0) { n = write(fd, buf, count); if (n == -EINTR) continue;\n"
        "  if (n <= 0) return n ? n : -EIO; buf += n; count -= n; } return 0;",
        "write() may write fewer bytes than asked (a full socket buffer, a signal):\n"
        "loop until every byte is out. Returns rax = 0, or -errno.");
  label(loop);
  op(Op::test, r64(Reg::rdx), r64(Reg::rdx), "anything left?");
  jmp(Op::jz, done);
  sys(kWrite);
  op(Op::cmp, r64(Reg::rax), imm(-kEintr), "-EINTR: try again");
  jmp(Op::je, loop);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, out, "-errno: give up");
  jmp(Op::jz, eio, "no progress: give up");
  op(Op::add, r64(Reg::rsi), r64(Reg::rax), "buf += n");
  op(Op::sub, r64(Reg::rdx), r64(Reg::rax), "count -= n");
  jmp(Op::jmp, loop);
  label(eio);
  set(Reg::rax, -kEio, "-EIO");
  ret();
  label(done);
  zero(Reg::rax, "0: all written");
  label(out);
  ret();
}

void Runtime::emit_append_u64(Label l) {
  Label digit = local("digit");
  block(l, "subroutine append_u64(rax = value, rdi = dst)", nullptr,
        "dst += sprintf(dst, \"%lu\", value)",
        "Writes the decimal digits of rax at rdi and advances rdi past them.\n"
        "Digits come out last first, so they are built backwards on the stack.\n"
        "Clobbers rax, rcx, rdx, rsi.");
  op(Op::sub, r64(Reg::rsp), imm(32), "room for 20 digits");
  lea(Reg::rsi, mem(Width::none, Reg::rsp, 32), "rsi = end of the room");
  set(Reg::rcx, 10, "divisor");
  label(digit);
  zero(Reg::rdx, "rdx:rax / 10");
  op(Op::div, r64(Reg::rcx), "rax = quotient, rdx = last digit");
  op(Op::add, r8(Reg::rdx), chr('0'), "to ASCII");
  op(Op::dec, r64(Reg::rsi));
  mov(mem8(Reg::rsi), r8(Reg::rdx));
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jnz, digit);
  lea(Reg::rcx, mem(Width::none, Reg::rsp, 32));
  op(Op::sub, r64(Reg::rcx), r64(Reg::rsi), "rcx = number of digits");
  plain(Op::rep_movsb);
  op(Op::add, r64(Reg::rsp), imm(32));
  ret();
}

void Runtime::emit_die(Label l) {
  // One entry per errno some call can fail with: its number, the length of
  // its text, the text; a 0 ends the table.
  std::vector<Piece> table;
  for (const ErrnoText& e : common_errnos()) {
    if (!errnos_.count(e.number)) continue;
    std::string_view text = e.text;
    table.push_back(Fields{{{1, static_cast<uint64_t>(e.number), e.name}, {1, text.size(), "its text's length"}}});
    table.push_back(Bytes{std::string(text)});
  }
  table.push_back(Fields{{{1, 0, "the end"}}});
  Label texts_label = b_.data("errno_texts", Section::rodata, std::move(table),
                              "errno, length, strerror() text: the errnos die names", 1);
  const std::string word_text = "errno ";
  Label word = b_.bytes("errno_word", word_text, "for an errno without a text");
  Label next = local("next_errno");
  Label copy = local("copy_text");
  Label unknown = local("unknown_errno");
  Label newline = local("newline");
  bool hints = die_hint_.id >= 0;
  if (die_port_.id >= 0) {
    block(die_port_, "fatal start-up error naming the port (rax = -errno, rsi/rdx = message start)", nullptr,
          "sprintf(line_buf, \"%s%u: \", message, listen_port); then die",
          "The port came from the environment, so the message is finished at run\n"
          "time: \"server: bind 0.0.0.0:\" + the port + \": \", then die as usual.");
    zero(Reg::r14, "no hint");
    label(die_port_hint_);  // rbp/r14: a hint, as for die_hint
    mov(r64(Reg::rbx), r64(Reg::rax), "rbx = -errno, kept");
    lea(Reg::rdi, line_buf(), "the line is built in line_buf");
    mov(r64(Reg::rcx), r64(Reg::rdx));
    plain(Op::rep_movsb, "copy the message start");
    append_port_colon();
    lea(Reg::rsi, line_buf(), "die copies line_buf onto itself");
    mov(r64(Reg::rdx), r64(Reg::rdi));
    op(Op::sub, r64(Reg::rdx), r64(Reg::rsi), "the message's length");
    mov(r64(Reg::rax), r64(Reg::rbx), "-errno");
    jmp(Op::jmp, die_hint_);
  }
  block(l, "fatal start-up error (rax = -errno, rsi/rdx = message start)", &kWrite,
        hints ? "fprintf(stderr, \"%s%s%s\\n\", message, strerror(errno), hint); exit(1)"
              : "fprintf(stderr, \"%s%s\\n\", message, strerror(errno)); exit(1)",
        "Names the call, the address and the reason, e.g.\n"
        "\"server: bind 0.0.0.0:8080: Address already in use\"; an errno without a\n"
        "text here is printed as its number.");
  if (hints) {
    zero(Reg::r14, "no hint");
    label(die_hint_);  // rbp/r14: a hint to print after the errno's text
  }
  op(Op::neg, r64(Reg::rax));
  mov(r64(Reg::rbx), r64(Reg::rax), "rbx = errno");
  lea(Reg::rdi, line_buf(), "the line is built in line_buf");
  mov(r64(Reg::rcx), r64(Reg::rdx));
  plain(Op::rep_movsb, "copy the message start");
  lea(Reg::rsi, texts_label, "rsi walks the table");
  label(next);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)}, "an errno");
  op(Op::test, r32(Reg::rax), r32(Reg::rax));
  jmp(Op::jz, unknown, "the end: not in the table");
  b_.emit(Op::movzx, {r32(Reg::rcx), mem8(Reg::rsi, 1)}, "its text's length");
  op(Op::add, r64(Reg::rsi), imm(2), "its text");
  op(Op::cmp, r32(Reg::rax), r32(Reg::rbx));
  jmp(Op::je, copy);
  op(Op::add, r64(Reg::rsi), r64(Reg::rcx), "the next entry");
  jmp(Op::jmp, next);
  label(unknown);
  lea(Reg::rsi, word);
  set(Reg::rcx, static_cast<int64_t>(word_text.size()));
  plain(Op::rep_movsb, "\"errno \"");
  mov(r64(Reg::rax), r64(Reg::rbx));
  call(append_u64());
  jmp(Op::jmp, newline);
  label(copy);
  plain(Op::rep_movsb, "copy the errno's text");
  label(newline);
  if (hints) {
    mov(r64(Reg::rsi), r64(Reg::rbp));
    mov(r64(Reg::rcx), r64(Reg::r14));
    plain(Op::rep_movsb, "the hint (none when rcx = 0)");
  }
  if (fail_.id >= 0) label(fail_);  // rdi: the end of a message in line_buf
  write_line(imm(kStderr), "STDERR_FILENO");
  set(Reg::rdi, 1, "status = 1");
  sys(kExitGroup);
}

}  // namespace asmsrv
