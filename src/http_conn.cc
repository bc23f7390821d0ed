#include "http_conn.h"

#include <fmt/format.h>

namespace asmsrv {

using namespace linux;

HttpConn::HttpConn(const Spec& spec, Builder& b, Runtime& rt, const HttpParse& parse,
                   Responses& responses, AccessLog& log)
    : Conn(spec, b, rt), parse_(parse), req_(parse.vars()), responses_(responses), log_(log) {
  open_ = local("http_open");
  received_ = local("http_received");
  sent_ = local("http_sent");
  process_ = local("http_process");
  decide_mode_ = local("decide_mode");
}

void HttpConn::emit() {
  emit_open();
  emit_received();
  emit_process();
  emit_sent();
  emit_decide_mode();
  emit_shared();
}

void HttpConn::emit_open() {
  block(open_, "subroutine http_open(rbx = record)", nullptr,
        "record = { reading, len 0, served 0, ... }; deadline = now + header_timeout_ms",
        fmt::format("The first request's head must arrive within {} ms of accept(), however\n"
                    "slowly it trickles in.",
                    spec_.limits.header_timeout_ms));
  reset_record();
  b_.mov_imm(Reg::rax, dec(spec_.limits.header_timeout_ms), "header_timeout_ms");
  jmp(Op::jmp, deadline(), "set_deadline returns for us");
}

void HttpConn::emit_received() {
  const Limits& lim = spec_.limits;
  Label reading = local("reading");
  Label body_done = local("body_dropped");
  Label counted = local("counted");
  block(received_, "subroutine http_received(rax = n bytes read)", nullptr,
        "dropping a body: discard -= n;  reading: len += n, then answer what is complete",
        "The first bytes of a keep-alive request start its header deadline; a body\n"
        "being dropped gets header_timeout_ms for each read.");
  op(Op::cmp, conn(ConnField::state), imm(kConnDiscarding), "dropping a body?");
  jmp(Op::jne, reading);
  op(Op::sub, conn(ConnField::discard), r64(Reg::rax));
  jmp(Op::jz, body_done);
  set_deadline(lim.header_timeout_ms, "more to come: header_timeout_ms for it");
  answer(kActRead);
  label(body_done);
  mov(conn(ConnField::state), imm(kConnReading), "reading: the body is gone, wait for the next request");
  set_deadline(lim.keepalive_timeout_ms, "keepalive_timeout_ms");
  answer(kActRead);
  label(reading);
  mov(r64(kBuf), conn(ConnField::buf), "rbp = the buffer");
  mov(r32(kBufLen), conn(ConnField::len), "r14 = bytes in it");
  op(Op::test, r64(kBufLen), r64(kBufLen), "the first bytes of a request?");
  jmp(Op::jnz, counted);
  op(Op::cmp, conn(ConnField::served), imm(0), "and not the first request?");
  jmp(Op::je, counted, "the first request's deadline runs from accept()");
  mov(r64(Reg::rcx), r64(Reg::rax), "keep n");
  set_deadline(lim.header_timeout_ms, "header_timeout_ms for this head");
  mov(r64(Reg::rax), r64(Reg::rcx));
  label(counted);
  op(Op::add, r64(kBufLen), r64(Reg::rax), "len += n");
  mov(conn(ConnField::len), r32(kBufLen));
  falls_into(process_);
}

void HttpConn::emit_process() {
  const Limits& lim = spec_.limits;
  Label have_head = local("have_head");
  Label respond = local("respond");
  Label body_here = local("body_here");
  Label queued = local("queued");
  Label want = local("want_more");
  block(process_, "answer the next complete request in the buffer", nullptr,
        "if (!(head_len = find_head_end())) return buffer full ? respond(too_large()) : want_read;\n"
        "   respond(parse_request())",
        "rbp = the buffer, r14 = its length. Pipelined requests are answered one at\n"
        "a time, in order: the next one when this response is out (http_sent).");
  call(parse_.find_head_end());
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jnz, have_head, "complete: answer it");
  op(Op::cmp, r64(kBufLen), dec(lim.request_bytes));
  jmp(Op::jb, want, "incomplete: wait for more");
  call(parse_.too_large(), "the buffer is full and the head has no end: 414 or 431");
  jmp(Op::jmp, respond);
  label(want);
  answer(kActRead);
  label(have_head);
  mov(var64(req_.head_len), r64(Reg::rax));
  call(parse_.parse_request(), "eax = the response's index");
  label(respond);
  call(decide_mode_, "record.mode = 0, 1 or 2; keeps eax");
  call(responses_.prepare(), "record.iov = its head, Date line and body");
  if (spec_.log_requests) call(log_.request(responses_.status(), responses_.body_bytes(), req_, responses_.date()),
                                "one access-log line");
  op(Op::inc, conn(ConnField::served));
  note("What to drop once the response is out: the head, and the body (read and");
  note("thrown away later if it is not all here yet).");
  mov(r64(Reg::rax), var64(req_.head_len));
  mov(r64(Reg::rcx), r64(kBufLen));
  op(Op::sub, r64(Reg::rcx), r64(Reg::rax), "body bytes already here");
  mov(r64(Reg::rdx), var64(req_.content_length));
  op(Op::cmp, r64(Reg::rcx), r64(Reg::rdx));
  jmp(Op::jae, body_here);
  op(Op::sub, r64(Reg::rdx), r64(Reg::rcx));
  mov(conn(ConnField::discard), r64(Reg::rdx), "the rest is read and dropped later");
  mov(conn(ConnField::consume), r64(kBufLen), "the whole buffer goes");
  jmp(Op::jmp, queued);
  label(body_here);
  op(Op::add, r64(Reg::rax), r64(Reg::rdx));
  mov(conn(ConnField::consume), r64(Reg::rax), "head + body");
  mov(conn(ConnField::discard), imm(0));
  label(queued);
  mov(conn(ConnField::state), imm(kConnWriting), "writing");
  set_deadline(spec_.limits.send_timeout_ms, "send_timeout_ms: the client must take some of it by then");
  answer(kActSend);
}

void HttpConn::emit_sent() {
  const Limits& lim = spec_.limits;
  Label close = local("close");
  Label lingers = local("lingers");
  Label no_discard = local("no_discard");
  Label idle = local("idle");
  block(sent_, "subroutine http_sent(rbx = record)", nullptr,
        "close, or drop the request from the buffer and wait for the body's rest,\n"
        "   answer the next pipelined request, or wait for one",
        "Connection: close, and a stop signal, close the connection here.");
  op(Op::cmp, conn(ConnField::mode), imm(0), "Connection: close?");
  jmp(Op::je, close);
  op(Op::cmp, var32(rt_.stop_requested()), imm(0), "stopping?");
  jmp(Op::jne, close);
  mov(r64(kBuf), conn(ConnField::buf));
  mov(r32(kBufLen), conn(ConnField::len));
  mov(r64(Reg::rax), conn(ConnField::consume), "memmove(buf, buf + consume, len - consume)");
  mov(r64(Reg::rdi), r64(kBuf));
  lea(Reg::rsi, mem_index(Width::none, kBuf, Reg::rax));
  mov(r64(Reg::rcx), r64(kBufLen));
  op(Op::sub, r64(Reg::rcx), r64(Reg::rax));
  op(Op::sub, r64(kBufLen), r64(Reg::rax), "len -= consume");
  plain(Op::rep_movsb, "forward copy: safe when the areas overlap this way");
  mov(conn(ConnField::len), r32(kBufLen));
  mov(conn(ConnField::scanned), imm(0), "search the next request from its start");
  op(Op::cmp, conn(ConnField::discard), imm(0), "a body still to drop?");
  jmp(Op::je, no_discard);
  mov(conn(ConnField::state), imm(kConnDiscarding), "dropping the body");
  set_deadline(lim.header_timeout_ms, "header_timeout_ms for each read of it");
  answer(kActRead);
  label(no_discard);
  mov(conn(ConnField::state), imm(kConnReading), "reading");
  op(Op::test, r64(kBufLen), r64(kBufLen), "the next request already here?");
  jmp(Op::jz, idle);
  set_deadline(lim.header_timeout_ms, "yes: its head has header_timeout_ms");
  jmp(Op::jmp, process_);
  label(idle);
  set_deadline(lim.keepalive_timeout_ms, "no: wait keepalive_timeout_ms for it");
  answer(kActRead);
  label(close);
  note("Closing with input unread resets the connection, which can cost the client");
  note("the response: the connection lingers (see linger), unless the client said");
  note("this request was its last and nothing of it is left: then it closes now. A");
  note("full buffer may have left bytes in the socket: closing would reset it.");
  op(Op::cmp, conn(ConnField::said_close), imm(0), "Connection: close from the client?");
  jmp(Op::je, lingers);
  op(Op::cmp, conn(ConnField::discard), imm(0), "a body still to come?");
  jmp(Op::jne, lingers);
  mov(r32(Reg::rax), conn(ConnField::len));
  op(Op::cmp, conn(ConnField::consume), r64(Reg::rax), "more in the buffer than this request?");
  jmp(Op::jne, lingers);
  op(Op::cmp, r32(Reg::rax), dec(lim.request_bytes), "a full buffer: more may wait in the socket");
  jmp(Op::jae, lingers);
  answer(kActClose);
  label(lingers);
  jmp(Op::jmp, linger(), "linger returns for us");
}

void HttpConn::emit_decide_mode() {
  const Limits& lim = spec_.limits;
  Label decided = local("decided");
  Label http10 = local("http10");
  Label client_closes = local("client_closes");
  Label may_keep = local("may_keep");
  block(decide_mode_, "subroutine decide_mode(eax = response index)", nullptr,
        "record.mode = keep_alive(request) ? (HTTP/1.1 ? 1 : 2) : 0;\n"
        "   record.said_close = the client said this request is its last",
        "Keep-alive is the default for HTTP/1.1, for HTTP/1.0 only with\n"
        "\"Connection: keep-alive\"; \"Connection: close\", protocol errors, a stop\n"
        "signal and the last of limits.keepalive_requests close the connection.\n"
        "Keeps eax.");
  mov(conn(ConnField::mode), imm(0), "close, unless kept below");
  mov(conn(ConnField::said_close), imm(0));
  mov(r32(Reg::rcx), r32(Reg::rax));
  op(Op::shl, r64(Reg::rcx), imm(kRespLayout.shift), "its record");
  lea(Reg::rdx, responses_.table());
  op(Op::add, r64(Reg::rdx), r64(Reg::rcx));
  op(Op::test, resp(Reg::rdx, RespField::flags), imm(kRespAlwaysClose), "an error: always close after it");
  jmp(Op::jnz, decided);
  op(Op::cmp, var32(req_.close), imm(0), "Connection: close?");
  jmp(Op::jne, client_closes);
  op(Op::cmp, var32(req_.minor), imm(0), "HTTP/1.0 without Connection: keep-alive?");
  jmp(Op::jne, may_keep);
  op(Op::cmp, var32(req_.keepalive), imm(0));
  jmp(Op::jne, may_keep);
  label(client_closes);
  mov(conn(ConnField::said_close), imm(1), "the client sends no more: close");
  ret();
  label(may_keep);
  if (lim.keepalive_timeout_ms > 0) {
    mov(r32(Reg::rcx), conn(ConnField::served));
    op(Op::inc, r32(Reg::rcx), "this one too");
    op(Op::cmp, r32(Reg::rcx), dec(lim.keepalive_requests), "the last request allowed?");
    jmp(Op::jae, decided);
    op(Op::cmp, var32(rt_.stop_requested()), imm(0), "shutting down?");
    jmp(Op::jne, decided);
    op(Op::cmp, var32(req_.minor), imm(0), "HTTP/1.0 (with Connection: keep-alive)?");
    jmp(Op::je, http10);
    mov(conn(ConnField::mode), imm(1), "HTTP/1.1: keep-alive");
    ret();
    label(http10);
    mov(conn(ConnField::mode), imm(2), "HTTP/1.0 with Connection: keep-alive");
  } else {
    note("limits.keepalive_timeout_ms is 0: every connection closes after one response.");
  }
  label(decided);
  ret();
}

}  // namespace asmsrv
