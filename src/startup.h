// Start-up: signals, the environment (the port from $PORT, socket
// activation), the arguments (--probe), the log, and the listening socket
// (socket, bind, listen, or fd 3 from systemd), then the line that says the
// server is up.
#pragma once

#include "gen.h"
#include "roots.h"
#include "runtime.h"

namespace asmsrv {

/// struct sockaddr_in or sockaddr_in6 (by the spec's family) for `addr`
/// (network byte order, 4 or 16 bytes) and the spec's port.
Fields sockaddr_fields(const Spec& spec, const std::array<uint8_t, 16>& addr, const std::string& addr_text);

class Startup : public Gen {
 public:
  /// `nonblocking`: the driver wants a non-blocking listener. `probe`: where
  /// `server --probe` goes (id -1: the spec has no probe).
  Startup(const Spec& spec, Builder& b, Runtime& rt, Roots& roots, bool nonblocking, Label probe);
  /// Emits start-up from `_start`; ends with a jump to `next`.
  void emit(Label next);

 private:
  void read_port();
  void check_arguments();
  void socket_activation(Label bind, Label configure);
  void bind_and_listen(Label bind, Label configure);
  void emit_find_env(Label l);
  void emit_parse_decimal(Label l);
  /// rax = the value of the environment variable `name` (its text after
  /// "NAME="), or 0.
  void find_env(const std::string& name, const std::string& data_name);

  Runtime& rt_;
  Roots& roots_;
  bool nonblocking_;
  Label probe_;
  Label environ_, find_env_, parse_decimal_, listen_addr_;
  ErrorPrefix err_socket_, err_reuse_, err_v6only_, err_defer_, err_bind_, err_listen_, err_fcntl_, err_open_,
      err_fd3_;
};

}  // namespace asmsrv
