// The client's address, as accept() gives it, for the logs: asked for only
// when a log prints it, so a server without logs lets the kernel skip the
// copy. Both drivers use ClientAddress; the logs print it with AddressText.
// A server on an IPv6 address gets a sockaddr_in6 (an IPv4 client of a
// dual-stack "::" as ::ffff:a.b.c.d), one on IPv4 a sockaddr_in.
#pragma once

#include "gen.h"
#include "runtime.h"

namespace asmsrv {

class ClientAddress : public Gen {
 public:
  ClientAddress(const Spec& spec, Builder& b);
  /// Whether any log prints the client's address.
  bool wanted() const { return wanted_; }
  /// rsi, rdx for accept/accept4: &client_addr, &client_addrlen; NULL, NULL
  /// when no log wants them.
  void accept_args();
  /// record.addr = what accept filled in (nothing when not wanted).
  void keep();

 private:
  bool wanted_;
  Label addr_, addrlen_;
};

/// The client's address as text: IPv4 dotted, IPv6 in RFC 5952 form, an
/// IPv4-mapped IPv6 address as plain IPv4.
class AddressText : public Gen {
 public:
  AddressText(const Spec& spec, Builder& b, Runtime& rt) : Gen(spec, b), rt_(rt) {}
  /// Subroutine: rsi = a record's addr field, rdi = dst; rdi advanced.
  /// Clobbers rax, rcx, rdx, rsi, r8-r11.
  Label append();
  /// Subroutine, rbx = the record: "ADDR:PORT", or "[ADDR]:PORT" for IPv6
  /// (RFC 5952 6); rdi = dst, advanced. Clobbers as append().
  Label append_with_port();
  void emit();

 private:
  void emit_ipv4(Label l);
  void emit_ipv6(Label l);
  void emit_with_port(Label l);
  /// Jumps to `not_mapped` unless the sockaddr_in6 copy at `base` holds an
  /// IPv4-mapped address (::ffff:a.b.c.d). Clobbers rax.
  void unless_mapped(Reg base, Label not_mapped);
  /// Inline: the 4 bytes at r8 + offset as "a.b.c.d" at rdi (advanced).
  /// Clobbers rax, rcx, rdx, rsi.
  void append_dotted(int offset, const char* what);
  Runtime& rt_;
  Label append_, with_port_;
};

}  // namespace asmsrv
