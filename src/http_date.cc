#include "http_date.h"

namespace asmsrv {

using namespace linux;

namespace {
constexpr int64_t kLastSecond = 253402300799;  // 9999-12-31 23:59:59 UTC: the last with a four-digit year
}  // namespace

HttpDate::HttpDate(const Spec& spec, Builder& b, Runtime& rt) : Gen(spec, b), rt_(rt) {
  refresh_ = local("refresh_date");
  format_ = local("format_date");
  line_ = b_.data("date_line", Section::data, {Bytes{"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"}},
                  "the Date field and the blank line that ends the head; refresh_date\n"
                  "rewrites the date in place once a second");
  expires_ = b_.bss("date_expires", 8, "clock_now (ms) when date_line must be made again");
  ts_ = b_.bss("date_ts", kTimespecBytes, "struct timespec from CLOCK_REALTIME");
  days_ = b_.bytes("day_names", "Sun,Mon,Tue,Wed,Thu,Fri,Sat,", "four bytes a weekday, Sunday first");
  month_days_ = b_.bytes("month_days", std::string("\x1f\x1c\x1f\x1e\x1f\x1e\x1f\x1f\x1e\x1f\x1e\x1f", 12),
                         "the days of each month, January first (February: format_date's own)");
  months_ = b_.bytes("month_names", "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec ",
                     "four bytes a month");
}

void HttpDate::refresh_if_stale() {
  used_ = true;
  Label fresh = local("date_fresh");
  mov(r64(Reg::rax), var64(rt_.clock_now()));
  op(Op::cmp, r64(Reg::rax), var64(expires_), "a new second since the Date line was made?");
  jmp(Op::jl, fresh);
  call(refresh_);
  label(fresh);
}

void HttpDate::want_for_log(bool month) {
  used_ = true;
  if (month && !want_month_) {
    want_month_ = true;
    month_ = b_.bss("date_month", 2, "the month of date_line as two digits (\"11\"), for the log", 2);
  }
}

void HttpDate::put2_ax() {
  set(Reg::rcx, 10);
  op(Op::div, r8(Reg::rcx), "al = tens, ah = ones (ax < 100)");
  op(Op::add, r16(Reg::rax), imm(0x3030), "both to ASCII: + '0' each");
}

void HttpDate::put2(MemOp dst, const std::string& what) {
  put2_ax();
  mov(dst, r16(Reg::rax), what);
}

Label HttpDate::format() {
  format_used_ = true;
  return format_;
}

void HttpDate::emit() {
  if (!used_ && !format_used_) return;
  if (used_) {
    block(refresh_, "subroutine refresh_date", &kClockGettime,
          "clock_gettime(CLOCK_REALTIME, &ts); format_date(ts.tv_sec, date_line + 6);\n"
          "   date_expires = clock_now + 1000 - ts.tv_nsec / 1000000",
          "The wall clock, read at most once a second: the line stays valid until the\n"
          "second changes. Clobbers rax, rcx, rdx, rsi, rdi, r8-r11.");
    set(Reg::rdi, kClockRealtime, "CLOCK_REALTIME");
    lea(Reg::rsi, ts_);
    sys(kClockGettime);
    lea(Reg::rsi, ts_);
    mov(r64(Reg::rax), mem64(Reg::rsi, 8), "tv_nsec");
    zero(Reg::rdx);
    set(Reg::rcx, 1000000);
    op(Op::div, r64(Reg::rcx), "rax = ms into this second");
    mov(r64(Reg::rcx), var64(rt_.clock_now()));
    op(Op::add, r64(Reg::rcx), dec(1000));
    op(Op::sub, r64(Reg::rcx), r64(Reg::rax));
    mov(var64(expires_), r64(Reg::rcx), "made again when the next second starts");
    mov(r64(Reg::rax), mem64(Reg::rsi), "tv_sec");
    lea(Reg::rdi, line_);
    op(Op::add, r64(Reg::rdi), imm(6), "rdi = the date, after \"Date: \"");
    if (!want_month_) {
      jmp(Op::jmp, format_, "format_date returns for us");
    } else {
      call(format_);
      note("r9 = 4 * the month (0 = January), as format_date left it.");
      mov(r64(Reg::rax), r64(Reg::r9));
      op(Op::shr, r64(Reg::rax), imm(2));
      op(Op::inc, r64(Reg::rax), "the month, 1 to 12, for the log");
      put2(rip(month_, Width::b16), "date_month = \"11\"");
      ret();
    }
  }
  emit_format();
}

void HttpDate::emit_format() {
  // The civil date by counting: 400 years at a time (any 400 Gregorian years
  // have 146,097 days), then a year at a time, then a month at a time. The
  // closed form (H. Hinnant's civil_from_days) took nine divisions and half
  // again the bytes; this runs at most once a second for the Date line, and
  // for a file's Last-Modified at most 399 + 11 turns.
  Label era = local("era");
  Label year = local("year");
  Label common = local("common_year");
  Label leap = local("leap_year");
  Label found_year = local("year_found");
  Label month = local("month");
  Label not_feb = local("not_february");
  Label found_month = local("month_found");
  Label digits = local("two_digits");
  block(format_, "subroutine format_date(rax = seconds since 1970, rdi = the date)", nullptr,
        "strftime(rdi, \"%a, %d %b %Y %H:%M:%S\", gmtime(&seconds))",
        "Rewrites the fields of \"Thu, 01 Jan 1970 00:00:00 GMT\" at rdi: for the Date\n"
        "line and for a file's Last-Modified. Keeps rdi; leaves r9 = 4 * the month\n"
        "(0 = January). Clobbers rax, rcx, rdx, rsi, r8-r11. A time before 1970 is\n"
        "1970-01-01 00:00:00, one after 9999 is 9999-12-31 23:59:59 (a file system\n"
        "may hold either: four digits of year and no division that overflows).");
  Label after_1970 = local("after_1970");
  Label before_10000 = local("before_10000");
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jns, after_1970);
  zero(Reg::rax, "before 1970: 1970");
  label(after_1970);
  b_.mov_imm(Reg::rcx, kLastSecond, "9999-12-31 23:59:59");
  op(Op::cmp, r64(Reg::rax), r64(Reg::rcx));
  jmp(Op::jbe, before_10000);
  mov(r64(Reg::rax), r64(Reg::rcx));
  label(before_10000);
  zero(Reg::rdx);
  set(Reg::rcx, 86400);
  op(Op::div, r64(Reg::rcx), "rax = days since 1970-01-01, rdx = second of the day");
  mov(r64(Reg::r8), r64(Reg::rdx), "r8 = second of the day");
  mov(r64(Reg::r11), r64(Reg::rax), "r11 = days");

  note("The weekday: 1970-01-01 was a Thursday (4).");
  lea(Reg::rax, mem(Width::none, Reg::r11, 4));
  zero(Reg::rdx);
  set(Reg::rcx, 7);
  op(Op::div, r64(Reg::rcx), "rdx = weekday, 0 = Sunday");
  op(Op::shl, r64(Reg::rdx), imm(2), "4 bytes a name");
  lea(Reg::rsi, days_);
  mov(r32(Reg::rax), mem_index(Width::b32, Reg::rsi, Reg::rdx));
  mov(mem32(Reg::rdi, 0), r32(Reg::rax), "\"Sun,\"");

  b_.mov_imm(Reg::r10, dec(1970), "r10 = the year");
  label(era);
  op(Op::cmp, r64(Reg::r11), imm(146097), "400 years at a time: 146,097 days");
  jmp(Op::jb, year);
  op(Op::sub, r64(Reg::r11), imm(146097));
  op(Op::add, r64(Reg::r10), dec(400));
  jmp(Op::jmp, era);
  label(year);
  note("ecx = the days of year r10: 366 when it divides by 4, unless by 100 but not 400");
  b_.mov_imm(Reg::rcx, dec(365));
  op(Op::test, r8(Reg::r10), imm(3));
  jmp(Op::jnz, common);
  mov(r64(Reg::rax), r64(Reg::r10));
  zero(Reg::rdx);
  set(Reg::rsi, 100);
  op(Op::div, r64(Reg::rsi), "rax = the century, rdx = the year in it");
  op(Op::test, r64(Reg::rdx), r64(Reg::rdx));
  jmp(Op::jnz, leap, "not a century's first year: leap");
  op(Op::test, r8(Reg::rax), imm(3), "a century's: leap when the century divides by 4 (2000, not 2100)");
  jmp(Op::jnz, common);
  label(leap);
  op(Op::inc, r32(Reg::rcx), "366");
  label(common);
  op(Op::cmp, r64(Reg::r11), r64(Reg::rcx));
  jmp(Op::jb, found_year, "the day is in this year");
  op(Op::sub, r64(Reg::r11), r64(Reg::rcx));
  op(Op::inc, r64(Reg::r10));
  jmp(Op::jmp, year);
  label(found_year);
  op(Op::sub, r32(Reg::rcx), dec(365 - 28), "ecx = February's days, 28 or 29; r11 = the day of the year, from 0");
  zero(Reg::r9, "r9 = the month, 0 = January");
  lea(Reg::rsi, month_days_);
  label(month);
  b_.emit(Op::movzx, {r32(Reg::rax), mem_index(Width::b8, Reg::rsi, Reg::r9)}, "the month's days");
  op(Op::cmp, r32(Reg::r9), imm(1));
  jmp(Op::jne, not_feb);
  mov(r32(Reg::rax), r32(Reg::rcx), "February: this year's");
  label(not_feb);
  op(Op::cmp, r64(Reg::r11), r64(Reg::rax));
  jmp(Op::jb, found_month, "the day is in this month");
  op(Op::sub, r64(Reg::r11), r64(Reg::rax));
  op(Op::inc, r32(Reg::r9));
  jmp(Op::jmp, month);
  label(found_month);
  lea(Reg::rax, mem(Width::none, Reg::r11, 1), "the day of the month, 1 to 31");
  call(digits);
  mov(mem16(Reg::rdi, 5), r16(Reg::rax), "\"06\"");
  op(Op::shl, r64(Reg::r9), imm(2), "4 bytes a name");
  lea(Reg::rsi, months_);
  mov(r32(Reg::rax), mem_index(Width::b32, Reg::rsi, Reg::r9));
  mov(mem32(Reg::rdi, 8), r32(Reg::rax), "\"Nov \"");
  mov(r64(Reg::rax), r64(Reg::r10));
  zero(Reg::rdx);
  set(Reg::rcx, 100);
  op(Op::div, r64(Reg::rcx), "rax = century, rdx = year in it");
  mov(r64(Reg::r10), r64(Reg::rdx));
  call(digits);
  mov(mem16(Reg::rdi, 12), r16(Reg::rax), "\"19\"");
  mov(r64(Reg::rax), r64(Reg::r10));
  call(digits);
  mov(mem16(Reg::rdi, 14), r16(Reg::rax), "\"94\"");
  note("The time of day from r8, the second of the day.");
  mov(r64(Reg::rax), r64(Reg::r8));
  zero(Reg::rdx);
  set(Reg::rcx, 3600);
  op(Op::div, r64(Reg::rcx), "rax = hours, rdx = seconds into the hour");
  mov(r64(Reg::r8), r64(Reg::rdx));
  call(digits);
  mov(mem16(Reg::rdi, 17), r16(Reg::rax), "\"08\"");
  mov(r64(Reg::rax), r64(Reg::r8));
  zero(Reg::rdx);
  set(Reg::rcx, 60);
  op(Op::div, r64(Reg::rcx), "rax = minutes, rdx = seconds");
  mov(r64(Reg::r8), r64(Reg::rdx));
  call(digits);
  mov(mem16(Reg::rdi, 20), r16(Reg::rax), "\"49\"");
  mov(r64(Reg::rax), r64(Reg::r8));
  call(digits);
  mov(mem16(Reg::rdi, 23), r16(Reg::rax), "\"37\"");
  ret();
  label(digits);
  note("ax = eax (< 100) as two ASCII digits, tens first in memory");
  put2_ax();
  ret();
}

}  // namespace asmsrv
