// The connection table of an event-loop driver: limits.max_connections
// records and request buffers in .bss, and a stack of free slots.
#pragma once

#include <functional>

#include "gen.h"

namespace asmsrv {

class ConnTable : public Gen {
 public:
  ConnTable(const Spec& spec, Builder& b);
  int max() const { return spec_.limits.max_connections; }
  int buf_bytes() const { return conn_buffer_bytes(spec_.limits.request_bytes, spec_.files_at_run_time()); }
  Label count() const { return nconns_; }  // dd: records in use

  /// Inline: every record gets its buffer; every slot is free.
  void emit_init();
  /// Inline: rbx = a free record, now counted in use (there must be one).
  void emit_alloc();
  /// Inline: rbx's slot is free again. Clobbers rax, rcx, rdx.
  void emit_release();
  /// Inline: for each record, rbx = it, `body(next)` (which jumps to or falls
  /// into `next`). Keeps nothing but rbx across the body.
  void emit_for_each(const std::string& name, const std::function<void(Label next)>& body);

 private:
  Label conns_, bufs_, free_stack_, free_top_, nconns_;
};

}  // namespace asmsrv
