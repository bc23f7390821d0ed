// The Date header (RFC 9110 §6.6.1): "Date: Sun, 06 Nov 1994 08:49:37 GMT",
// formatted by the server from CLOCK_REALTIME into one cached line, and
// refreshed at most once a second.
#pragma once

#include "gen.h"
#include "runtime.h"

namespace asmsrv {

class HttpDate : public Gen {
 public:
  /// "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n": the head's last field and its end.
  static constexpr int kLineBytes = 39;

  HttpDate(const Spec& spec, Builder& b, Runtime& rt);
  Label line() const { return line_; }
  /// Inline: refresh the line when clock_now has reached the next second.
  /// Clobbers rax, rcx, rdx, rsi, rdi, r8-r11.
  void refresh_if_stale();
  void emit();

 private:
  /// Two decimal digits of eax (< 100) at [rdi + at]. Clobbers eax, cl.
  void put2(int at, const std::string& what);
  Runtime& rt_;
  Label line_, expires_, ts_, refresh_, days_, months_;
  bool used_ = false;
};

}  // namespace asmsrv
