// Linux x86-64 facts the generated code uses: syscall numbers and constants.
// Numbers from arch/x86/entry/syscalls/syscall_64.tbl and the uapi headers.
#pragma once

namespace asmsrv::linux {

/// A system call: its name (as in man section 2) and its number.
struct Sys {
  const char* name;
  int nr;
};

inline constexpr Sys kRead{"read", 0};
inline constexpr Sys kWrite{"write", 1};
inline constexpr Sys kOpen{"open", 2};
inline constexpr Sys kClose{"close", 3};
inline constexpr Sys kRtSigaction{"rt_sigaction", 13};
inline constexpr Sys kRtSigreturn{"rt_sigreturn", 15};
inline constexpr Sys kNanosleep{"nanosleep", 35};
inline constexpr Sys kSocket{"socket", 41};
inline constexpr Sys kAccept{"accept", 43};
inline constexpr Sys kRecvfrom{"recvfrom", 45};
inline constexpr Sys kBind{"bind", 49};
inline constexpr Sys kListen{"listen", 50};
inline constexpr Sys kSetsockopt{"setsockopt", 54};
inline constexpr Sys kFork{"fork", 57};
inline constexpr Sys kExitGroup{"exit_group", 231};
inline constexpr Sys kPoll{"poll", 7};
inline constexpr Sys kWritev{"writev", 20};
inline constexpr Sys kClockGettime{"clock_gettime", 228};
inline constexpr Sys kEpollWait{"epoll_wait", 232};
inline constexpr Sys kEpollPwait{"epoll_pwait", 281};
inline constexpr Sys kRtSigprocmask{"rt_sigprocmask", 14};
inline constexpr Sys kEpollCtl{"epoll_ctl", 233};
inline constexpr Sys kAccept4{"accept4", 288};
inline constexpr Sys kEpollCreate1{"epoll_create1", 291};
inline constexpr Sys kFcntl{"fcntl", 72};
inline constexpr Sys kKill{"kill", 62};
inline constexpr Sys kWait4{"wait4", 61};
inline constexpr Sys kPrctl{"prctl", 157};
inline constexpr Sys kSetpgid{"setpgid", 109};
inline constexpr Sys kPpoll{"ppoll", 271};
inline constexpr Sys kGetpid{"getpid", 39};
inline constexpr Sys kGetppid{"getppid", 110};

inline constexpr int kAfInet = 2;
inline constexpr int kSockStream = 1;
inline constexpr int kSolSocket = 1;
inline constexpr int kSoReuseaddr = 2;
inline constexpr int kSoRcvtimeo = 20;
inline constexpr int kSoSndtimeo = 21;
inline constexpr int kMsgDontwait = 0x40;

inline constexpr int kSigint = 2;
inline constexpr int kSigpipe = 13;
inline constexpr int kSigterm = 15;
inline constexpr int kSigchld = 17;
inline constexpr int kSigIgn = 1;
inline constexpr int kSaNocldwait = 0x2;
inline constexpr int kSaRestorer = 0x04000000;
inline constexpr int kSigsetBytes = 8;  // the kernel's sigset_t

inline constexpr int kOWronly = 0x1;
inline constexpr int kOCreat = 0x40;
inline constexpr int kOAppend = 0x400;
inline constexpr int kOCloexec = 0x80000;

inline constexpr int kEintr = 4;
inline constexpr int kEio = 5;
inline constexpr int kEconnaborted = 103;
inline constexpr int kEtimedout = 110;

inline constexpr int kClockMonotonic = 1;
inline constexpr int kFSetfl = 4;
inline constexpr int kONonblock = 0x800;
inline constexpr int kPrSetPdeathsig = 1;
inline constexpr int kSigBlock = 0;
inline constexpr int kSigUnblock = 1;
inline constexpr int kPollin = 1;

}  // namespace asmsrv::linux
