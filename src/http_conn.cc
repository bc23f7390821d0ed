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
  next_ = local("http_next");
  buffer_drop_ = local("buffer_drop");
  chunk_drop_ = local("chunk_drop");
  chunk_scan_ = local("chunk_scan");
  respond_ = local("respond");
  uploads_ = !responses.routes().upload_sites.empty();
  if (uploads_) {
    upload_begin_ = local("upload_begin");
    upload_received_ = local("upload_received");
    upload_store_ = local("upload_store");
    upload_end_ = local("upload_end");
    upload_answer_ = local("upload_answer");
    upload_site_ = local("upload_site");
    upload_chunks_ = local("upload_chunks");
    upload_temp_name_ = local("upload_temp_name");
    upload_suffix_ = local("upload_suffix");
    discard_upload_ = local("discard_upload");
  }
}

void HttpConn::emit() {
  emit_open();
  emit_received();
  emit_process();
  emit_sent();
  emit_next();
  emit_chunk_drop();
  emit_buffer_drop();
  emit_chunk_scan(chunk_scan_, false);
  emit_decide_mode();
  if (uploads_) emit_upload();
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
  Label chunked = local("chunked");
  block(received_, "subroutine http_received(rax = n bytes read)", nullptr,
        "dropping a body: discard -= n, or chunk_drop(n);  reading: len += n, then\n"
        "   answer what is complete",
        "The first bytes of a keep-alive request start its header deadline; a body\n"
        "being dropped has body_timeout_ms in all, set when its drop began.");
  if (uploads_) {
    op(Op::cmp, conn(ConnField::state), imm(kConnUploading), "storing a body?");
    jmp(Op::je, upload_received_);
  }
  op(Op::cmp, conn(ConnField::state), imm(kConnDiscarding), "dropping a body?");
  jmp(Op::jne, reading);
  op(Op::cmp, conn(ConnField::chunk), imm(kChunkNone), "a chunked one?");
  jmp(Op::jne, chunked);
  op(Op::sub, conn(ConnField::discard), r64(Reg::rax));
  jmp(Op::jz, body_done);
  answer(kActRead);
  label(chunked);
  mov(r64(kBuf), conn(ConnField::buf), "rbp = the buffer: the n bytes are at its start");
  mov(r64(kBufLen), r64(Reg::rax), "r14 = n");
  mov(conn(ConnField::len), r32(kBufLen));
  jmp(Op::jmp, chunk_drop_, "chunk_drop returns for us");
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
  Label respond = respond_;
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
  if (uploads_) {
    mov(r32(Reg::rcx), r32(Reg::rax));
    op(Op::shl, r64(Reg::rcx), imm(kRespLayout.shift), "its record");
    lea(Reg::rdx, responses_.table());
    op(Op::add, r64(Reg::rdx), r64(Reg::rcx));
    MemOp kind = resp(Reg::rdx, RespField::flags);
    kind.width = Width::b8;
    op(Op::cmp, kind, imm(static_cast<int>(ResponseKind::upload)), "an upload? (the kind: the flags' low byte)");
    jmp(Op::je, upload_begin_, "it reads the body before it answers");
  }
  label(respond);
  prepare_answer();
  note("What to drop once the response is out: the head, and the body (read and");
  note("thrown away later if it is not all here yet). A chunked body is dropped");
  note("after the response, from the buffer (chunk_drop): its end is found as it is read.");
  Label sized = local("sized");
  mov(r64(Reg::rax), var64(req_.head_len));
  op(Op::cmp, var32(req_.te), imm(kTeChunked), "a chunked body?");
  jmp(Op::jne, sized);
  mov(conn(ConnField::consume), r64(Reg::rax), "the head now; the body in chunk_drop");
  mov(conn(ConnField::chunk), imm(kChunkSize), "its first size line comes first");
  mov(conn(ConnField::chunk_digits), imm(0));
  mov(conn(ConnField::discard), imm(0));
  mov(conn(ConnField::body_total), imm(0));
  jmp(Op::jmp, queued);
  label(sized);
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
  queue_answer();
}

void HttpConn::prepare_answer() {
  call(decide_mode_, "record.mode = 0, 1 or 2; keeps eax");
  call(responses_.prepare(), "record.iov = its head, Date line and body");
  if (spec_.log_requests) call(log_.request(responses_.status(), responses_.body_bytes(), req_, responses_.date()),
                                "one access-log line");
  op(Op::inc, conn(ConnField::served));
}

void HttpConn::queue_answer() {
  mov(conn(ConnField::state), imm(kConnWriting), "writing");
  set_deadline(spec_.limits.send_timeout_ms, "send_timeout_ms: the client must take some of it by then");
  answer(kActSend);
}

void HttpConn::emit_sent() {
  const Limits& lim = spec_.limits;
  Label close = local("close");
  Label lingers = local("lingers");
  Label chunked = local("chunked");
  block(sent_, "subroutine http_sent(rbx = record)", nullptr,
        "close, or drop the request from the buffer and wait for the body's rest,\n"
        "   answer the next pipelined request, or wait for one",
        fmt::format("Connection: close, and a stop signal, close the connection here. A body\n"
                    "still to drop has limits.body_timeout_ms ({} ms) for all of it.",
                    lim.body_timeout_ms));
  op(Op::cmp, conn(ConnField::mode), imm(0), "Connection: close?");
  jmp(Op::je, close);
  op(Op::cmp, var32(rt_.stop_requested()), imm(0), "stopping?");
  jmp(Op::jne, close);
  mov(r64(kBuf), conn(ConnField::buf));
  mov(r32(kBufLen), conn(ConnField::len));
  mov(r64(Reg::rax), conn(ConnField::consume));
  call(buffer_drop_, "the request (and what is here of a sized body) goes");
  op(Op::cmp, conn(ConnField::chunk), imm(kChunkNone), "a chunked body to drop?");
  jmp(Op::jne, chunked);
  op(Op::cmp, conn(ConnField::discard), imm(0), "the rest of a sized body to drop?");
  jmp(Op::je, next_);
  mov(conn(ConnField::state), imm(kConnDiscarding), "dropping the body");
  set_deadline(lim.body_timeout_ms, "body_timeout_ms for all of it");
  answer(kActRead);
  label(chunked);
  mov(conn(ConnField::state), imm(kConnDiscarding), "dropping the body");
  set_deadline(lim.body_timeout_ms, "body_timeout_ms for all of it");
  jmp(Op::jmp, chunk_drop_, "what of it is here already; chunk_drop returns for us");
  label(close);
  note("Closing with input unread resets the connection, which can cost the client");
  note("the response: the connection lingers (see linger), unless the client said");
  note("this request was its last and nothing of it is left: then it closes now. A");
  note("full buffer may have left bytes in the socket: closing would reset it.");
  op(Op::cmp, conn(ConnField::said_close), imm(0), "Connection: close from the client?");
  jmp(Op::je, lingers);
  op(Op::cmp, conn(ConnField::discard), imm(0), "a body still to come?");
  jmp(Op::jne, lingers);
  op(Op::cmp, conn(ConnField::chunk), imm(kChunkNone), "a chunked one?");
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

void HttpConn::emit_next() {
  const Limits& lim = spec_.limits;
  Label idle = local("idle");
  block(next_, "the next request", nullptr,
        "state = reading; if (len) { deadline = now + header_timeout_ms; answer it }\n"
        "   else { deadline = now + keepalive_timeout_ms; return want_read }",
        "A response and its request's body are done with: rbp = the buffer, r14 =\n"
        "what is left in it, the start of the next request, if any.");
  mov(conn(ConnField::state), imm(kConnReading), "reading");
  op(Op::test, r64(kBufLen), r64(kBufLen), "the next request already here?");
  jmp(Op::jz, idle);
  set_deadline(lim.header_timeout_ms, "yes: its head has header_timeout_ms");
  jmp(Op::jmp, process_);
  label(idle);
  set_deadline(lim.keepalive_timeout_ms, "no: wait keepalive_timeout_ms for it");
  answer(kActRead);
}

void HttpConn::emit_buffer_drop() {
  block(buffer_drop_, "subroutine buffer_drop(rax = n)", nullptr,
        "memmove(buf, buf + n, len - n); len -= n; scanned = 0",
        "rbp = the buffer, r14 = its length, n <= r14. What follows the n bytes\n"
        "moves to the start, where the next request is read from.");
  mov(r64(Reg::rdi), r64(kBuf));
  lea(Reg::rsi, mem_index(Width::none, kBuf, Reg::rax));
  mov(r64(Reg::rcx), r64(kBufLen));
  op(Op::sub, r64(Reg::rcx), r64(Reg::rax));
  op(Op::sub, r64(kBufLen), r64(Reg::rax), "len -= n");
  plain(Op::rep_movsb, "forward copy: safe when the areas overlap this way");
  mov(conn(ConnField::len), r32(kBufLen));
  mov(conn(ConnField::scanned), imm(0), "search the next request from its start");
  ret();
}

void HttpConn::emit_chunk_drop() {
  Label more = local("more");
  Label malformed = local("malformed");
  block(chunk_drop_, "subroutine chunk_drop(rbx = record)", nullptr,
        "n = chunk_scan(); if (n < 0) linger(); if (n == 0) { len = 0; return want_read }\n"
        "   buffer_drop(n); the next request",
        "The buffer (rbp, r14) holds the next bytes of a chunked body, and maybe\n"
        "what follows it. All of it is body until its last chunk and trailers end:\n"
        "then the rest is the next request. A malformed body ends the connection,\n"
        "its response already sent: the client cannot be understood any more.");
  call(chunk_scan_, "rax = the body's bytes in the buffer if it ends there, 0 if not, -1 malformed");
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, malformed);
  jmp(Op::jz, more);
  call(buffer_drop_, "the end of the body goes; the next request stays");
  jmp(Op::jmp, next_);
  label(more);
  mov(conn(ConnField::len), imm(0), "all of it was body: dropped");
  answer(kActRead);
  label(malformed);
  mov(conn(ConnField::chunk), imm(kChunkNone));
  jmp(Op::jmp, linger(), "linger returns for us");
}

void HttpConn::emit_chunk_scan(Label l, bool decode) {
  const Limits& lim = spec_.limits;
  Label next = local("next");
  Label size = local("size");
  Label not_digit = local("not_digit");
  Label to_ext = local("to_ext");
  Label to_size_lf = local("to_size_lf");
  Label ext = local("ext");
  Label count = local("count");
  Label size_lf = local("size_lf");
  Label last_chunk = local("last_chunk");
  Label data = local("data");
  Label data_end = local("data_end");
  Label data_cr = local("data_cr");
  Label data_lf = local("data_lf");
  Label trailer = local("trailer");
  Label trailer_line = local("trailer_line");
  Label to_trailer_lf = local("to_trailer_lf");
  Label trailer_lf = local("trailer_lf");
  Label to_last_lf = local("to_last_lf");
  Label need_more = local("need_more");
  Label bad = local("bad");
  // Over the limit: malformed when dropping, 413 when storing.
  Label over = decode ? local("over") : bad;
  // decode: the data so far moves down to r11, over the framing.
  auto keep_data = [&](Reg count) {
    if (!decode) return;
    mov(r64(Reg::rcx), r64(count), "rcx = the data's bytes (no size digits are pending)");
    lea(Reg::rdi, mem_index(Width::none, kBuf, Reg::r11), "to r11...");
    op(Op::add, r64(Reg::r11), r64(count));
    op(Op::push, r64(Reg::rsi));
    lea(Reg::rsi, mem_index(Width::none, kBuf, Reg::rsi), "... from rsi: r11 <= rsi, a forward copy is safe");
    plain(Op::rep_movsb, "rcx is 0 again");
    op(Op::pop, r64(Reg::rsi));
  };
  if (decode)
    block(l, "subroutine upload_chunks: a chunked body being stored, byte by byte", nullptr,
          "as chunk_scan over buf[consume, len), but the data moves down to buf[consume, r11)\n"
          "   and the limit is the upload's max_bytes: -2 over it",
          "The same parser as chunk_scan's (and the same record fields); the data\n"
          "bytes are kept, moved down over the size lines and CR LFs, so that\n"
          "buf[consume, r11) is what to write to the file. Extensions and trailer\n"
          "fields are dropped.");
  else
  block(l, "subroutine chunk_scan: a chunked body, byte by byte", nullptr,
        "for each byte of buf[0, len): step the chunked-body parser (record.chunk);\n"
        "   return its end (bytes used) once the final CRLF is in, 0 when all were body, -1 if malformed",
        fmt::format("RFC 9112 7.1: chunk-size (hex) [ chunk-ext ] CRLF, chunk-data CRLF, ...,\n"
                    "\"0\" [ chunk-ext ] CRLF, trailer lines, CRLF. Bytes may come one at a\n"
                    "time: the parser's state lives in the record (chunk, chunk_digits, the\n"
                    "size so far or data left in discard, body_total). Extensions and trailer\n"
                    "fields are dropped; their bytes and the data count against\n"
                    "limits.body_bytes ({}), a size as soon as its digits say it is over. At\n"
                    "most {} hex digits. Registers: edx state, ecx digits, r8 size or data\n"
                    "left, r9 total, r10 the limit, rsi the next byte.",
                    lim.body_bytes, kChunkMaxDigits));
  if (decode) {
    call(upload_site_, "r11 = the upload");
    mov(r64(Reg::r10), upload(Reg::r11, UploadField::max_bytes), "its max_bytes");
    mov(r64(Reg::rsi), conn(ConnField::consume), "the body starts after the head");
    mov(r64(Reg::r11), r64(Reg::rsi), "... and so does its data");
  } else {
    set(Reg::r10, lim.body_bytes, "limits.body_bytes");
    zero(Reg::rsi);
  }
  mov(r32(Reg::rdx), conn(ConnField::chunk));
  mov(r32(Reg::rcx), conn(ConnField::chunk_digits));
  mov(r64(Reg::r8), conn(ConnField::discard));
  mov(r64(Reg::r9), conn(ConnField::body_total));
  label(next);
  op(Op::cmp, r64(Reg::rsi), r64(kBufLen));
  jmp(Op::jae, need_more, "every byte here was body");
  op(Op::cmp, r32(Reg::rdx), imm(kChunkData), "in the data?");
  jmp(Op::je, data);
  b_.emit(Op::movzx, {r32(Reg::rax), mem_index(Width::b8, kBuf, Reg::rsi)}, "the next byte");
  op(Op::inc, r64(Reg::rsi));
  op(Op::cmp, r32(Reg::rdx), imm(kChunkSize), "in the size?");
  jmp(Op::je, size);
  op(Op::cmp, r32(Reg::rdx), imm(kChunkExt), "in an extension?");
  jmp(Op::je, ext);
  op(Op::cmp, r32(Reg::rdx), imm(kChunkTrailerLine), "in a trailer line?");
  jmp(Op::je, trailer_line);
  op(Op::cmp, r32(Reg::rdx), imm(kChunkSizeLf), "the size line's LF?");
  jmp(Op::je, size_lf);
  op(Op::cmp, r32(Reg::rdx), imm(kChunkDataCr), "the data's CR?");
  jmp(Op::je, data_cr);
  op(Op::cmp, r32(Reg::rdx), imm(kChunkDataLf), "the data's LF?");
  jmp(Op::je, data_lf);
  op(Op::cmp, r32(Reg::rdx), imm(kChunkTrailer), "at a trailer line?");
  jmp(Op::je, trailer);
  op(Op::cmp, r32(Reg::rdx), imm(kChunkTrailerLf), "a trailer line's LF?");
  jmp(Op::je, trailer_lf);
  note("The final LF: the body ends here.");
  op(Op::cmp, r32(Reg::rax), chr('\n'));
  jmp(Op::jne, bad);
  mov(conn(ConnField::chunk), imm(kChunkNone), "no chunked body any more");
  mov(r64(Reg::rax), r64(Reg::rsi), "its last bytes end here");
  ret();

  label(size);
  mov(r32(Reg::rdi), r32(Reg::rax), "the character stays in eax");
  hex_value(Reg::rdi, not_digit);
  op(Op::inc, r32(Reg::rcx));
  op(Op::cmp, r32(Reg::rcx), imm(kChunkMaxDigits));
  jmp(Op::ja, bad, "too many digits");
  op(Op::shl, r64(Reg::r8), imm(4), "size = size * 16 + digit: no overflow, size <= body_bytes < 2^60");
  op(Op::add, r64(Reg::r8), r64(Reg::rdi));
  lea(Reg::rax, mem_index(Width::none, Reg::r8, Reg::r9));
  op(Op::cmp, r64(Reg::rax), r64(Reg::r10), "total + size over the limit?");
  jmp(Op::ja, over, "yes: not read");
  jmp(Op::jmp, next);
  label(not_digit);
  op(Op::test, r32(Reg::rcx), r32(Reg::rcx));
  jmp(Op::jz, bad, "no size at all");
  op(Op::cmp, r32(Reg::rax), chr('\r'));
  jmp(Op::je, to_size_lf);
  op(Op::cmp, r32(Reg::rax), chr(';'), "an extension");
  jmp(Op::je, to_ext);
  op(Op::cmp, r32(Reg::rax), chr(' '), "whitespace before one (BWS)");
  jmp(Op::je, to_ext);
  op(Op::cmp, r32(Reg::rax), chr('\t'));
  jmp(Op::jne, bad);
  label(to_ext);
  mov(r32(Reg::rdx), imm(kChunkExt), "next: in an extension");
  jmp(Op::jmp, count, "its bytes count");
  label(ext);
  op(Op::cmp, r32(Reg::rax), chr('\r'));
  jmp(Op::je, to_size_lf);
  op(Op::cmp, r32(Reg::rax), chr('\n'));
  jmp(Op::je, bad, "a bare LF");
  label(count);
  op(Op::inc, r64(Reg::r9), "an extension's or trailer's byte");
  lea(Reg::rax, mem_index(Width::none, Reg::r8, Reg::r9));
  op(Op::cmp, r64(Reg::rax), r64(Reg::r10), "over the limit?");
  jmp(Op::ja, over);
  jmp(Op::jmp, next);
  label(to_size_lf);
  mov(r32(Reg::rdx), imm(kChunkSizeLf), "next: the size line's LF");
  jmp(Op::jmp, next);

  label(size_lf);
  op(Op::cmp, r32(Reg::rax), chr('\n'));
  jmp(Op::jne, bad);
  zero(Reg::rcx, "no digits yet for the next size");
  op(Op::test, r64(Reg::r8), r64(Reg::r8), "size 0: the last chunk");
  jmp(Op::jz, last_chunk);
  op(Op::add, r64(Reg::r9), r64(Reg::r8), "total += size");
  mov(r32(Reg::rdx), imm(kChunkData), "then size bytes of data");
  jmp(Op::jmp, next);
  label(last_chunk);
  mov(r32(Reg::rdx), imm(kChunkTrailer), "then trailer lines, or the final CRLF");
  jmp(Op::jmp, next);

  label(data);
  mov(r64(Reg::rax), r64(kBufLen));
  op(Op::sub, r64(Reg::rax), r64(Reg::rsi), "bytes here");
  op(Op::cmp, r64(Reg::rax), r64(Reg::r8));
  jmp(Op::jae, data_end, "the chunk's data ends here");
  keep_data(Reg::rax);
  op(Op::add, r64(Reg::rsi), r64(Reg::rax), "all of them are data");
  op(Op::sub, r64(Reg::r8), r64(Reg::rax));
  jmp(Op::jmp, next);
  label(data_end);
  keep_data(Reg::r8);
  op(Op::add, r64(Reg::rsi), r64(Reg::r8));
  zero(Reg::r8, "the next size starts from 0");
  mov(r32(Reg::rdx), imm(kChunkDataCr), "next: the data's CR");
  jmp(Op::jmp, next);
  label(data_cr);
  op(Op::cmp, r32(Reg::rax), chr('\r'));
  jmp(Op::jne, bad, "data longer than its size");
  mov(r32(Reg::rdx), imm(kChunkDataLf), "next: the data's LF");
  jmp(Op::jmp, next);
  label(data_lf);
  op(Op::cmp, r32(Reg::rax), chr('\n'));
  jmp(Op::jne, bad);
  mov(r32(Reg::rdx), imm(kChunkSize), "next: in the size");
  jmp(Op::jmp, next);

  label(trailer);
  op(Op::cmp, r32(Reg::rax), chr('\r'));
  jmp(Op::je, to_last_lf, "an empty line: the end");
  op(Op::cmp, r32(Reg::rax), chr('\n'));
  jmp(Op::je, bad);
  mov(r32(Reg::rdx), imm(kChunkTrailerLine), "a trailer field: dropped");
  jmp(Op::jmp, count);
  label(trailer_line);
  op(Op::cmp, r32(Reg::rax), chr('\r'));
  jmp(Op::je, to_trailer_lf);
  op(Op::cmp, r32(Reg::rax), chr('\n'));
  jmp(Op::je, bad, "a bare LF");
  jmp(Op::jmp, count);
  label(to_trailer_lf);
  mov(r32(Reg::rdx), imm(kChunkTrailerLf), "next: a trailer line's LF");
  jmp(Op::jmp, next);
  label(trailer_lf);
  op(Op::cmp, r32(Reg::rax), chr('\n'));
  jmp(Op::jne, bad);
  mov(r32(Reg::rdx), imm(kChunkTrailer), "next: at a trailer line");
  jmp(Op::jmp, next);
  label(to_last_lf);
  mov(r32(Reg::rdx), imm(kChunkLastLf), "next: the final LF");
  jmp(Op::jmp, next);

  label(need_more);
  mov(conn(ConnField::chunk), r32(Reg::rdx), "where the parser is, for the next bytes");
  mov(conn(ConnField::chunk_digits), r32(Reg::rcx));
  mov(conn(ConnField::discard), r64(Reg::r8));
  mov(conn(ConnField::body_total), r64(Reg::r9));
  zero(Reg::rax, "0: more to come");
  ret();
  label(bad);
  set(Reg::rax, -1, decode ? "-1: malformed" : "-1: malformed, or over limits.body_bytes");
  ret();
  if (decode) {
    label(over);
    set(Reg::rax, -2, "-2: over max_bytes");
    ret();
  }
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
  note("Expect: 100-continue, and a body: the client waits for 100 Continue before");
  note("sending it. No response here needs the body (they drop it), so the final");
  note("response goes at once (RFC 9110 10.1.1), and the client then does not send");
  note("the body: the connection cannot go on, so it closes after it. (A route that");
  note("reads bodies would send 100 Continue here instead, and keep it.)");
  Label no_expect = local("no_expect");
  op(Op::cmp, var32(req_.expect), imm(kExpectContinue), "Expect: 100-continue?");
  jmp(Op::jne, no_expect);
  op(Op::cmp, var64(req_.content_length), imm(0), "with a body?");
  jmp(Op::jne, decided);
  op(Op::cmp, var32(req_.te), imm(kTeChunked));
  jmp(Op::je, decided);
  label(no_expect);
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
