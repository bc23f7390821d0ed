#include "client_addr.h"

namespace asmsrv {

using namespace linux;

ClientAddress::ClientAddress(const Spec& spec, Builder& b)
    : Gen(spec, b), wanted_(spec.log_requests || spec.log_connections) {
  if (!wanted_) return;
  addr_ = b_.bss("client_addr", kSockaddrInBytes, "struct sockaddr_in: the client, filled by accept");
  addrlen_ = b_.bss("client_addrlen", kIntBytes, "socklen_t: in: the buffer's size, out: the address's", 4);
}

void ClientAddress::accept_args() {
  if (!wanted_) {
    zero(Reg::rsi, "addr = NULL: no log prints the client's address");
    zero(Reg::rdx, "addrlen = NULL");
    return;
  }
  mov(var32(addrlen_), imm(kSockaddrInBytes), "client_addrlen = sizeof(struct sockaddr_in)");
  lea(Reg::rsi, addr_, "addr = &client_addr");
  lea(Reg::rdx, addrlen_, "addrlen = &client_addrlen");
}

void ClientAddress::keep() {
  if (!wanted_) return;
  mov(r64(Reg::rax), var64(addr_), "family, port and address: 8 bytes");
  mov(conn(ConnField::addr), r64(Reg::rax), "kept for the logs");
}

}  // namespace asmsrv
