// Workers: with "workers" > 1, the first process becomes a supervisor that
// forks the workers onto the shared listener, replaces any that dies, and
// passes stop signals on. Each worker then runs the driver.
#pragma once

#include "gen.h"
#include "runtime.h"

namespace asmsrv {

class Supervisor : public Gen {
 public:
  Supervisor(const Spec& spec, Builder& b, Runtime& rt);
  /// Where start-up goes next: the supervisor, or straight to the worker.
  Label entry() const { return entry_; }
  /// Emits the supervisor (if any) and the worker's start; the worker then
  /// jumps to `driver`.
  void emit(Label driver);

 private:
  void emit_supervise(Label worker);
  void emit_pass_on();
  Runtime& rt_;
  int n_;
  Label entry_, spawn_, worker_, pass_on_;
  Label pids_, is_supervisor_, wstatus_, supervisor_pid_;
};

}  // namespace asmsrv
