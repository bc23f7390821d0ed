#include "access_log.h"

namespace asmsrv {

using namespace linux;

AccessLog::AccessLog(const Spec& spec, Builder& b, Runtime& rt) : Gen(spec, b), rt_(rt), addr_text_(spec, b, rt) {
  request_ = local("log_request");
  connection_ = local("log_connection");
  // An access log line holds a request line of up to request_bytes, plus
  // at most 60 bytes; a connection line at most 72.
  if (spec_.log_requests) rt_.need_line(static_cast<size_t>(spec_.limits.request_bytes));
}

Label AccessLog::request(Label status, Label body_bytes) {
  want_request_ = true;
  status_ = status;
  body_bytes_ = body_bytes;
  return request_;
}

Label AccessLog::connection() {
  want_connection_ = true;
  return connection_;
}

void AccessLog::emit() {
  if (want_request_) {
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
    rt_.write_line(r64(kLogFd), "log_fd");
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
    rt_.write_line(r64(kLogFd), "log_fd");
    ret("a failed log write is not fatal");
  }
  addr_text_.emit();
}

}  // namespace asmsrv
