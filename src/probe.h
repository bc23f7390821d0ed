// The probe: `server --probe` sends GET <probe.path> to the server's own
// port over loopback and exits 0 on a 2xx or 3xx status within
// probe.timeout_ms, else prints why and exits 1: a Docker HEALTHCHECK for an
// image with nothing else inside. Only a spec with "probe" has this code.
#pragma once

#include "gen.h"
#include "runtime.h"

namespace asmsrv {

class HealthProbe : public Gen {
 public:
  HealthProbe(const Spec& spec, Builder& b, Runtime& rt);
  /// Where start-up jumps for --probe, once the port is known.
  Label entry() const { return entry_; }
  void emit();

  /// The address the probe connects to: loopback of the listener's family
  /// for "0.0.0.0" and "::", else the listener's own address.
  static std::string target(const Spec& spec);

 private:
  Runtime& rt_;
  Label entry_;
  /// line_buf = the message start, then `text`; write it, exit 1.
  void fail_saying(const std::string& data_name, const std::string& text, const std::string& comment);
  ErrorPrefix err_socket_, err_probe_;
};

}  // namespace asmsrv
