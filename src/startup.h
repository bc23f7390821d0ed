// Start-up: signals, the log, and the listening socket (socket, bind, listen),
// then the line that says the server is up.
#pragma once

#include "gen.h"
#include "runtime.h"

namespace asmsrv {

class Startup : public Gen {
 public:
  /// `nonblocking`: the driver wants a non-blocking listener.
  Startup(const Spec& spec, Builder& b, Runtime& rt, bool nonblocking);
  /// Emits start-up from `_start`; ends with a jump to `next`.
  void emit(Label next);

 private:
  Runtime& rt_;
  bool nonblocking_;
  ErrorPrefix err_socket_, err_reuse_, err_defer_, err_bind_, err_listen_, err_fcntl_, err_open_;
};

}  // namespace asmsrv
