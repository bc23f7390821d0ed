// The client's address, as accept() gives it, for the logs: asked for only
// when a log prints it, so a server without logs lets the kernel skip the
// copy. Both drivers use it.
#pragma once

#include "gen.h"

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

}  // namespace asmsrv
