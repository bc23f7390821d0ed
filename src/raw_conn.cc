#include "raw_conn.h"

#include <fmt/format.h>

namespace asmsrv {

RawConn::RawConn(const Spec& spec, Builder& b, Runtime& rt) : Conn(spec, b, rt) {
  open_ = local("raw_open");
  received_ = local("raw_received");
  sent_ = local("raw_sent");
  response_ = b_.bytes("response", *spec_.raw_response, "the raw response, sent verbatim");
}

void RawConn::emit() {
  block(open_, "subroutine raw_open(rbx = record)", nullptr,
        "record = { reading, len 0 }; deadline = now + 10 s",
        "A client that sends nothing gives up its slot after 10 s.");
  reset_record();
  b_.mov_imm(Reg::rax, dec(kFirstBytesTimeoutMs), "10 s");
  jmp(Op::jmp, deadline(), "set_deadline returns for us");

  uint64_t n = spec_.raw_response->size();
  block(received_, "subroutine raw_received(rax = n bytes read)", nullptr,
        fmt::format("record.iov = {{ response, {} }}, then nothing; then close", n),
        "Any bytes at all are answered with the raw response; what they said does\n"
        "not matter. Then the connection closes.");
  op(Op::add, conn(ConnField::len), r32(Reg::rax));
  lea(Reg::rax, response_);
  mov(iov_base(IovPart::status), r64(Reg::rax), "the first part: the response");
  mov(iov_len(IovPart::status), imm(static_cast<int64_t>(n)), "its length, computed at compile time");
  for (int p = 1; p < kIovParts; ++p) mov(iov_len(static_cast<IovPart>(p)), imm(0), "no other part");
  mov(conn(ConnField::state), imm(kConnWriting), "writing");
  set_deadline(spec_.limits.send_timeout_ms, "send_timeout_ms: the client must take some of it by then");
  answer(kActSend);

  block(sent_, "subroutine raw_sent(rbx = record)", nullptr, "return linger()",
        "The connection ends after the response; what the client still sends is\n"
        "read and dropped first (see linger).");
  jmp(Op::jmp, linger(), "linger returns for us");
  emit_shared();
}

}  // namespace asmsrv
