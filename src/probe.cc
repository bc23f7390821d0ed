#include "probe.h"

#include <fmt/format.h>

#include "startup.h"

namespace asmsrv {

using namespace linux;

namespace {
constexpr int kStatusBytes = 120;  // read at most this much of the answer

bool any_address(const Spec& spec) {
  return spec.address_bytes == std::array<uint8_t, 16>{};  // 0.0.0.0 or ::
}
}  // namespace

std::string HealthProbe::target(const Spec& spec) {
  if (!any_address(spec)) return address_text(spec);
  return spec.ipv6 ? "[::1]" : "127.0.0.1";
}

HealthProbe::HealthProbe(const Spec& spec, Builder& b, Runtime& rt) : Gen(spec, b), rt_(rt) {
  entry_ = local("probe");
  err_socket_ = rt_.error_prefix("error_probe_socket", "probe: socket",
                                 {"EAFNOSUPPORT", "EMFILE", "ENFILE", "ENOBUFS", "ENOMEM"});
  err_probe_ = rt_.error_prefix_at("error_probe", fmt::format("probe GET {} on", spec_.probe->path), target(spec_),
                                   {"ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL",
                                    "ETIMEDOUT", "EPIPE"});
}

void HealthProbe::emit() {
  const Probe& p = *spec_.probe;
  std::string to = target(spec_);
  Label timeout = local("probe_timeout");
  std::array<uint8_t, 16> addr = spec_.address_bytes;
  if (any_address(spec_)) {
    if (spec_.ipv6)
      addr[15] = 1;  // ::1
    else
      addr = {127, 0, 0, 1};
  }
  std::string bare = spec_.ipv6 ? to.substr(1, to.size() - 2) : to;
  Label probe_addr = b_.data("probe_addr", spec_.port_env.empty() ? Section::rodata : Section::data,
                             {sockaddr_fields(spec_, addr, bare)}, "where the probe connects");
  uint64_t ms = static_cast<uint64_t>(p.timeout_ms);
  Label deadline = b_.data("probe_deadline", Section::rodata,
                           {Fields{{{8, 0, "it_interval.tv_sec: once"},
                                    {8, 0, "it_interval.tv_usec"},
                                    {8, ms / 1000, "it_value.tv_sec"},
                                    {8, (ms % 1000) * 1000, fmt::format("it_value.tv_usec: {} ms in all", ms)}}}},
                           "struct itimerval: probe.timeout_ms");
  std::string request = fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", p.path, to);
  Label request_text = b_.bytes("probe_request", request, "the probe's request");
  Label buf = b_.bss("probe_buf", kStatusBytes, "the start of the answer: its status line");

  block(entry_, "probe: a deadline for all of it", &kSetitimer,
        fmt::format("sigaction(SIGALRM, probe_timeout); setitimer(ITIMER_REAL, &{{ {} ms }}, NULL)", ms),
        fmt::format("`server --probe` answers whether the server on this port is healthy. If\n"
                    "connecting, sending and reading the status line take more than {} ms\n"
                    "(probe.timeout_ms) in all, SIGALRM ends the probe.", ms));
  rt_.catch_signals({{kSigalrm, "SIGALRM"}}, timeout, "probe_timeout");
  set(Reg::rdi, kItimerReal, "ITIMER_REAL: real time");
  lea(Reg::rsi, deadline, "new = &probe_deadline");
  zero(Reg::rdx, "old = NULL");
  sys(kSetitimer);

  const char* af = spec_.ipv6 ? "AF_INET6" : "AF_INET";
  next_block(local("probe_socket"), "probe: a socket", &kSocket, fmt::format("fd = socket({}, SOCK_STREAM, 0)", af),
             "A TCP socket of the listener's family.");
  set(Reg::rdi, spec_.ipv6 ? kAfInet6 : kAfInet, fmt::format("domain = {}", af));
  set(Reg::rsi, kSockStream, "type = SOCK_STREAM");
  zero(Reg::rdx, "protocol = 0: TCP");
  sys(kSocket);
  rt_.die_if_failed(err_socket_);
  mov(r64(Reg::r12), r64(Reg::rax), "r12 = fd");

  next_block(local("probe_connect"), "probe: connect", &kConnect,
             "connect(fd, (struct sockaddr *)&probe_addr, sizeof probe_addr)",
             any_address(spec_) ? fmt::format("The server listens on {}: the probe goes to {}, its loopback.",
                                              address_text(spec_), to)
                                : fmt::format("The server listens on {} only: the probe goes there.", to));
  lea(Reg::rsi, probe_addr, "addr = &probe_addr");
  if (!spec_.port_env.empty()) {
    mov(r32(Reg::rax), var32(rt_.listen_port()), "the port, maybe from the environment");
    op(Op::ror, r16(Reg::rax), imm(8), "htons");
    mov(mem16(Reg::rsi, 2), r16(Reg::rax), "probe_addr's port");
  }
  mov(r64(Reg::rdi), r64(Reg::r12), "fd");
  set(Reg::rdx, spec_.ipv6 ? kSockaddrIn6Bytes : kSockaddrInBytes, "addrlen");
  sys(kConnect);
  rt_.die_if_failed(err_probe_);

  next_block(local("probe_send"), "probe: send the request", &kWrite,
             fmt::format("write_all(fd, \"GET {} HTTP/1.1 ... Connection: close\", {})", p.path, request.size()),
             "HTTP/1.1 needs Host; Connection: close, so the server does not wait.");
  mov(r64(Reg::rdi), r64(Reg::r12), "fd");
  lea(Reg::rsi, request_text, "buf");
  set(Reg::rdx, static_cast<int64_t>(request.size()), "count");
  call(rt_.write_all());
  rt_.die_if_failed(err_probe_);

  Label more = local("more");
  Label not_http = local("not_http");
  next_block(local("probe_read"), "probe: read the status line", &kRead,
             fmt::format("while (n < 12) {{ r = read(fd, probe_buf + n, {} - n); if (r <= 0) break; n += r; }}",
                         kStatusBytes),
             "\"HTTP/1.1 200\" is 12 bytes; they may come in more than one read.");
  zero(Reg::r13, "r13 = n, the bytes read");
  label(more);
  mov(r64(Reg::rdi), r64(Reg::r12), "fd");
  lea(Reg::rsi, buf);
  op(Op::add, r64(Reg::rsi), r64(Reg::r13), "buf = probe_buf + n");
  set(Reg::rdx, kStatusBytes);
  op(Op::sub, r64(Reg::rdx), r64(Reg::r13), "count = the room left");
  sys(kRead);
  rt_.die_if_failed(err_probe_);  // ends with test rax, rax: ZF is still read's 0
  jmp(Op::jz, not_http, "the end of the answer, too soon");
  op(Op::add, r64(Reg::r13), r64(Reg::rax));
  op(Op::cmp, r64(Reg::r13), imm(12));
  jmp(Op::jb, more);

  Label failed = local("failed");
  next_block(local("probe_status"), "probe: the verdict", &kExitGroup,
             "exit(status is 2xx or 3xx ? 0 : 1)",
             "\"HTTP/x.y \" then the status: 200-399 is healthy (a redirect too, as\n"
             "Docker's and Kubernetes' HTTP checks count it); else the status line is\n"
             "printed and the probe fails.");
  lea(Reg::r8, buf);
  op(Op::cmp, mem32(Reg::r8), imm(0x50545448), "\"HTTP\"");
  jmp(Op::jne, not_http);
  op(Op::cmp, mem8(Reg::r8, 4), chr('/'));
  jmp(Op::jne, not_http);
  op(Op::cmp, mem8(Reg::r8, 8), chr(' '));
  jmp(Op::jne, not_http);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::r8, 9)}, "the status's first digit");
  op(Op::cmp, r32(Reg::rax), chr('2'));
  jmp(Op::jb, failed);
  op(Op::cmp, r32(Reg::rax), chr('3'));
  jmp(Op::ja, failed);
  jmp(Op::jmp, rt_.exit_ok(), "healthy: exit 0");
  label(failed);
  rt_.start_message(err_probe_);
  rt_.copy_line(Reg::r8, Reg::r13);
  jmp(Op::jmp, rt_.fail_line(), "\"...: HTTP/1.1 503 Service Unavailable\", exit 1");
  label(not_http);
  fail_saying("probe_not_http", "the answer is not HTTP", "when the answer has no status line");

  block(timeout, "probe: too late (the SIGALRM handler)", &kWrite,
        fmt::format("fprintf(stderr, \"...: no answer within {} ms\\n\"); exit(1)", ms),
        "The deadline passed in connect, write or read: the server is not healthy.");
  fail_saying("probe_late", fmt::format("no answer within {} ms", ms), "when SIGALRM comes first");
}

void HealthProbe::fail_saying(const std::string& data_name, const std::string& text, const std::string& comment) {
  Label l = b_.bytes(data_name, text, comment);
  rt_.start_message(err_probe_);
  lea(Reg::rsi, l);
  set(Reg::rcx, static_cast<int64_t>(text.size()));
  plain(Op::rep_movsb);
  jmp(Op::jmp, rt_.fail_line(), "write it, exit 1");
}

}  // namespace asmsrv
