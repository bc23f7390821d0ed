#include "http_date.h"

namespace asmsrv {

using namespace linux;

HttpDate::HttpDate(const Spec& spec, Builder& b, Runtime& rt) : Gen(spec, b), rt_(rt) {
  refresh_ = local("refresh_date");
  format_ = local("format_date");
  line_ = b_.data("date_line", Section::data, {Bytes{"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"}},
                  "the Date field and the blank line that ends the head; refresh_date\n"
                  "rewrites the date in place once a second");
  expires_ = b_.bss("date_expires", 8, "clock_now (ms) when date_line must be made again");
  ts_ = b_.bss("date_ts", kTimespecBytes, "struct timespec from CLOCK_REALTIME");
  days_ = b_.bytes("day_names", "Sun,Mon,Tue,Wed,Thu,Fri,Sat,", "four bytes a weekday, Sunday first");
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

void HttpDate::put2(MemOp dst, const std::string& what) {
  set(Reg::rcx, 10);
  op(Op::div, r8(Reg::rcx), "al = tens, ah = ones (ax < 100)");
  op(Op::add, r16(Reg::rax), imm(0x3030), "both to ASCII: + '0' each");
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
  Label spring = local("march_to_december");
  // The civil date from days since 1970-01-01 (H. Hinnant's days_from_civil,
  // inverted): eras of 400 years that start on 1 March.
  block(format_, "subroutine format_date(rax = seconds since 1970, rdi = the date)", nullptr,
        "strftime(rdi, \"%a, %d %b %Y %H:%M:%S\", gmtime(&seconds))",
        "Rewrites the fields of \"Thu, 01 Jan 1970 00:00:00 GMT\" at rdi: for the Date\n"
        "line and for a file's Last-Modified. Keeps rdi; leaves r9 = 4 * the month\n"
        "(0 = January). Clobbers rax, rcx, rdx, rsi, r8-r11.");
  zero(Reg::rdx);
  set(Reg::rcx, 86400);
  op(Op::div, r64(Reg::rcx), "rax = days since 1970-01-01, rdx = second of the day");
  mov(r64(Reg::r8), r64(Reg::rdx), "r8 = second of the day");
  mov(r64(Reg::r9), r64(Reg::rax), "r9 = days");

  note("The weekday: 1970-01-01 was a Thursday (4).");
  lea(Reg::rax, mem(Width::none, Reg::r9, 4));
  zero(Reg::rdx);
  set(Reg::rcx, 7);
  op(Op::div, r64(Reg::rcx), "rdx = weekday, 0 = Sunday");
  op(Op::shl, r64(Reg::rdx), imm(2), "4 bytes a name");
  lea(Reg::rsi, days_);
  mov(r32(Reg::rax), mem_index(Width::b32, Reg::rsi, Reg::rdx));
  mov(mem32(Reg::rdi, 0), r32(Reg::rax), "\"Sun,\"");

  note("z = days + 719468 (from 0000-03-01); era = z / 146097; doe = z % 146097");
  lea(Reg::rax, mem(Width::none, Reg::r9, 719468));
  zero(Reg::rdx);
  set(Reg::rcx, 146097);
  op(Op::div, r64(Reg::rcx), "rax = era, rdx = day of the era");
  b_.emit(Op::imul, {r64(Reg::r10), r64(Reg::rax), imm(400)}, "r10 = the era's first year");
  mov(r64(Reg::r11), r64(Reg::rdx), "r11 = doe");
  note("yoe = (doe - doe/1460 + doe/36524 - doe/146096) / 365: the year of the era");
  mov(r64(Reg::rsi), r64(Reg::r11));
  for (auto [d, o] : {std::pair{1460, Op::sub}, {36524, Op::add}, {146096, Op::sub}}) {
    mov(r64(Reg::rax), r64(Reg::r11));
    zero(Reg::rdx);
    set(Reg::rcx, d);
    op(Op::div, r64(Reg::rcx));
    op(o, r64(Reg::rsi), r64(Reg::rax), o == Op::sub ? "- doe / " + std::to_string(d) : "+ doe / " + std::to_string(d));
  }
  mov(r64(Reg::rax), r64(Reg::rsi));
  zero(Reg::rdx);
  set(Reg::rcx, 365);
  op(Op::div, r64(Reg::rcx), "rax = yoe");
  op(Op::add, r64(Reg::r10), r64(Reg::rax), "r10 = the year, counted from March");
  note("doy = doe - (365 * yoe + yoe/4 - yoe/100): the day of the year, from 1 March");
  mov(r64(Reg::r9), r64(Reg::rax), "r9 = yoe");
  b_.emit(Op::imul, {r64(Reg::rsi), r64(Reg::rax), imm(365)});
  op(Op::shr, r64(Reg::rax), imm(2));
  op(Op::add, r64(Reg::rsi), r64(Reg::rax), "+ yoe / 4");
  mov(r64(Reg::rax), r64(Reg::r9));
  zero(Reg::rdx);
  set(Reg::rcx, 100);
  op(Op::div, r64(Reg::rcx));
  op(Op::sub, r64(Reg::rsi), r64(Reg::rax), "- yoe / 100");
  op(Op::sub, r64(Reg::r11), r64(Reg::rsi), "r11 = doy");
  note("mp = (5 * doy + 2) / 153: the month, from March = 0");
  b_.emit(Op::imul, {r64(Reg::rax), r64(Reg::r11), imm(5)});
  op(Op::add, r64(Reg::rax), imm(2));
  zero(Reg::rdx);
  set(Reg::rcx, 153);
  op(Op::div, r64(Reg::rcx));
  mov(r64(Reg::r9), r64(Reg::rax), "r9 = mp");
  note("day = doy - (153 * mp + 2) / 5 + 1");
  b_.emit(Op::imul, {r64(Reg::rax), r64(Reg::rax), imm(153)});
  op(Op::add, r64(Reg::rax), imm(2));
  zero(Reg::rdx);
  set(Reg::rcx, 5);
  op(Op::div, r64(Reg::rcx));
  mov(r64(Reg::rdx), r64(Reg::r11));
  op(Op::sub, r64(Reg::rdx), r64(Reg::rax));
  lea(Reg::rax, mem(Width::none, Reg::rdx, 1), "the day of the month, 1 to 31");
  put2(mem16(Reg::rdi, 5), "\"06\"");
  note("January and February belong to the next year: month = mp < 10 ? mp + 2 : mp - 10");
  op(Op::cmp, r64(Reg::r9), imm(10));
  jmp(Op::jb, spring);
  op(Op::sub, r64(Reg::r9), imm(12));
  op(Op::inc, r64(Reg::r10), "the year turns in January");
  label(spring);
  op(Op::add, r64(Reg::r9), imm(2), "r9 = month, 0 = January");
  op(Op::shl, r64(Reg::r9), imm(2), "4 bytes a name");
  lea(Reg::rsi, months_);
  mov(r32(Reg::rax), mem_index(Width::b32, Reg::rsi, Reg::r9));
  mov(mem32(Reg::rdi, 8), r32(Reg::rax), "\"Nov \"");
  mov(r64(Reg::rax), r64(Reg::r10));
  zero(Reg::rdx);
  set(Reg::rcx, 100);
  op(Op::div, r64(Reg::rcx), "rax = century, rdx = year in it");
  mov(r64(Reg::r10), r64(Reg::rdx));
  put2(mem16(Reg::rdi, 12), "\"19\"");
  mov(r64(Reg::rax), r64(Reg::r10));
  put2(mem16(Reg::rdi, 14), "\"94\"");
  note("The time of day from r8, the second of the day.");
  mov(r64(Reg::rax), r64(Reg::r8));
  zero(Reg::rdx);
  set(Reg::rcx, 3600);
  op(Op::div, r64(Reg::rcx), "rax = hours, rdx = seconds into the hour");
  mov(r64(Reg::r8), r64(Reg::rdx));
  put2(mem16(Reg::rdi, 17), "\"08\"");
  mov(r64(Reg::rax), r64(Reg::r8));
  zero(Reg::rdx);
  set(Reg::rcx, 60);
  op(Op::div, r64(Reg::rcx), "rax = minutes, rdx = seconds");
  mov(r64(Reg::r8), r64(Reg::rdx));
  put2(mem16(Reg::rdi, 20), "\"49\"");
  mov(r64(Reg::rax), r64(Reg::r8));
  put2(mem16(Reg::rdi, 23), "\"37\"");
  ret();
}

}  // namespace asmsrv
