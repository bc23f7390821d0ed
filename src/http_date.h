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
  /// For a log line's timestamp: the line is made (refreshed by
  /// refresh_if_stale) even if no response used it. With `month`, refresh_date
  /// also keeps the month as two ASCII digits ("11") in month_digits().
  /// Ask before emit().
  void want_for_log(bool month);
  Label month_digits() const { return month_; }
  /// Subroutine format_date(rax = seconds since 1970, rdi = the date's
  /// first byte in a copy of "Thu, 01 Jan 1970 00:00:00 GMT"): rewrites its
  /// weekday, day, month, year and time. Keeps rdi; clobbers rax, rcx, rdx,
  /// rsi, r8-r11. Ask before emit() (a Last-Modified line uses it too).
  Label format();
  void emit();

 private:
  /// Two decimal digits of eax (< 100) at `dst` (a word). Clobbers eax, cl.
  void put2(MemOp dst, const std::string& what);
  /// The same, left in ax.
  void put2_ax();
  Runtime& rt_;
  void emit_format();
  Label line_, expires_, ts_, refresh_, format_, days_, months_, month_days_, month_;
  bool used_ = false, want_month_ = false, format_used_ = false;
};

}  // namespace asmsrv
