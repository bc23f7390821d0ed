// The ABI facts the generated code relies on, each written once: Linux
// x86-64 syscall numbers, flags and struct sizes, the registers the server
// keeps across calls, and the layouts of the records it reads and writes.
// Numbers from arch/x86/entry/syscalls/syscall_64.tbl and the uapi headers.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "ir.h"

namespace asmsrv {

// --- registers that live across the whole program -----------------------------
inline constexpr Reg kListenFd = Reg::r12;  // the listening socket
inline constexpr Reg kClientFd = Reg::r13;  // the current connection's socket
inline constexpr Reg kBufLen = Reg::r14;    // bytes in the current request buffer
inline constexpr Reg kVars = Reg::r15;      // the small variables' block, + 128 (Builder::variables)
inline constexpr Reg kBuf = Reg::rbp;       // the current request buffer
inline constexpr Reg kConn = Reg::rbx;      // the current connection record

}  // namespace asmsrv

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
inline constexpr Sys kShutdown{"shutdown", 48};
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
inline constexpr Sys kIoctl{"ioctl", 16};
inline constexpr Sys kGetpid{"getpid", 39};
inline constexpr Sys kGetppid{"getppid", 110};
inline constexpr Sys kConnect{"connect", 42};
inline constexpr Sys kGetsockopt{"getsockopt", 55};
inline constexpr Sys kSetitimer{"setitimer", 38};
inline constexpr Sys kFstat{"fstat", 5};
inline constexpr Sys kSendfile{"sendfile", 40};
inline constexpr Sys kFsync{"fsync", 74};
inline constexpr Sys kOpenat{"openat", 257};
inline constexpr Sys kUnlinkat{"unlinkat", 263};
inline constexpr Sys kRenameat2{"renameat2", 316};
inline constexpr Sys kOpenat2{"openat2", 437};

inline constexpr int kAfInet = 2;
inline constexpr int kAfInet6 = 10;
inline constexpr int kIpprotoIpv6 = 41;
inline constexpr int kIpv6V6only = 26;
inline constexpr int kSoType = 3;
inline constexpr int kSoAcceptconn = 30;
inline constexpr int kSoProtocol = 38;
inline constexpr int kSoDomain = 39;
inline constexpr int kSigalrm = 14;
inline constexpr int kItimerReal = 0;
inline constexpr int kSockStream = 1;
inline constexpr int kSolSocket = 1;
inline constexpr int kSoReuseaddr = 2;
inline constexpr int kIpprotoTcp = 6;
inline constexpr int kSiocoutq = 0x5411;  // ioctl: bytes in the socket's send queue, not yet acknowledged
inline constexpr int kTcpDeferAccept = 9;
inline constexpr int kTcpNodelay = 1;
inline constexpr int kTcpNotsentLowat = 25;
inline constexpr int kSoRcvtimeo = 20;
inline constexpr int kSoSndtimeo = 21;
inline constexpr int kMsgDontwait = 0x40;
inline constexpr int kShutWr = 1;

inline constexpr int kSigint = 2;
inline constexpr int kSigpipe = 13;
inline constexpr int kSigterm = 15;
inline constexpr int kSigchld = 17;
inline constexpr int kSigxfsz = 25;
inline constexpr int kSigIgn = 1;
inline constexpr int kSaNocldwait = 0x2;
inline constexpr int kSaRestorer = 0x04000000;
inline constexpr int kSigsetBytes = 8;  // the kernel's sigset_t

inline constexpr int kOWronly = 0x1;
inline constexpr int kOCreat = 0x40;
inline constexpr int kOAppend = 0x400;
inline constexpr int kOCloexec = 0x80000;
inline constexpr int kORdonly = 0;
inline constexpr int kOExcl = 0x80;
inline constexpr int kODirectory = 0x10000;
inline constexpr int kONofollow = 0x20000;
inline constexpr int kOPath = 0x200000;
inline constexpr int kAtFdcwd = -100;
// struct open_how's resolve flags (openat2(2)).
inline constexpr int kResolveNoMagiclinks = 0x02;
inline constexpr int kResolveBeneath = 0x08;
inline constexpr int kRenameNoreplace = 1;
// st_mode's file type.
inline constexpr int kSIfmt = 0xF000, kSIfreg = 0x8000, kSIfdir = 0x4000;

inline constexpr int kEperm = 1;
inline constexpr int kEnoent = 2;
inline constexpr int kEintr = 4;
inline constexpr int kEio = 5;
inline constexpr int kEnomem = 12;
inline constexpr int kEacces = 13;
inline constexpr int kEexist = 17;
inline constexpr int kExdev = 18;
inline constexpr int kEnotdir = 20;
inline constexpr int kEisdir = 21;
inline constexpr int kErofs = 30;
inline constexpr int kEnotempty = 39;
inline constexpr int kEnfile = 23;
inline constexpr int kEmfile = 24;
inline constexpr int kEfbig = 27;
inline constexpr int kEnospc = 28;
inline constexpr int kEnametoolong = 36;
inline constexpr int kNameMax = 255;  // NAME_MAX: the bytes of one name in a directory
inline constexpr int kEnosys = 38;
inline constexpr int kEloop = 40;
inline constexpr int kEdquot = 122;
inline constexpr int kEconnaborted = 103;
inline constexpr int kEtimedout = 110;

inline constexpr int kClockMonotonic = 1;
inline constexpr int kFSetfl = 4;
inline constexpr int kONonblock = 0x800;
inline constexpr int kPrSetPdeathsig = 1;
inline constexpr int kSigBlock = 0;
inline constexpr int kSigUnblock = 1;
inline constexpr int kPollin = 1;
inline constexpr int kEagain = 11;
inline constexpr int kSockNonblock = 0x800;
inline constexpr int kEpollCloexec = 0x80000;
inline constexpr int kEpollIn = 1, kEpollOut = 4, kEpollExclusive = 1 << 28;
inline constexpr int kEpollCtlAdd = 1, kEpollCtlDel = 2, kEpollCtlMod = 3;
inline constexpr int kClockRealtime = 0;
inline constexpr int kStdout = 1, kStderr = 2;

// Struct sizes, as the kernel lays them out on x86-64.
inline constexpr int kSockaddrInBytes = 16;  // struct sockaddr_in
inline constexpr int kSockaddrIn6Bytes = 28; // struct sockaddr_in6
inline constexpr int kItimervalBytes = 32;   // struct itimerval { interval, value }
inline constexpr int kTimespecBytes = 16;    // struct timespec { tv_sec, tv_nsec }
inline constexpr int kTimevalBytes = 16;     // struct timeval { tv_sec, tv_usec }
inline constexpr int kSigactionBytes = 32;   // the kernel's struct sigaction
inline constexpr int kEpollEventBytes = 12;  // struct epoll_event, packed on x86-64
inline constexpr int kIovecBytes = 16;       // struct iovec { base, len }
inline constexpr int kPollfdBytes = 8;       // struct pollfd { fd, events, revents }
inline constexpr int kIntBytes = 4;          // int, socklen_t
inline constexpr int kOpenHowBytes = 24;     // struct open_how { flags, mode, resolve }
inline constexpr int kStatBytes = 144;       // struct stat
// Fields of struct stat on x86-64.
inline constexpr int kStIno = 8;         // ino_t st_ino
inline constexpr int kStMode = 24;       // unsigned int st_mode
inline constexpr int kStSize = 48;       // off_t st_size
inline constexpr int kStMtime = 88;      // st_mtim.tv_sec
inline constexpr int kStMtimeNsec = 96;  // st_mtim.tv_nsec

}  // namespace asmsrv::linux

namespace asmsrv {

/// One field of a record: its name in the listing, its size, what it holds.
struct FieldDecl {
  const char* name;
  int bytes;  // 4 or 8 (read with that width), or a multiple of 8 (an array)
  const char* what;
};

/// A record laid out from one field list: offsets with natural alignment,
/// the size rounded up to a power of two (so an index shifts into an offset).
/// The same list gives the lowering its offsets, spec.cc its memory check and
/// the listing its named constants.
template <size_t N>
struct Layout {
  std::array<FieldDecl, N> decl;
  std::array<int, N> offset{};
  int size = 0;   // bytes, a power of two
  int shift = 0;  // log2(size)

  constexpr explicit Layout(std::array<FieldDecl, N> fields) : decl(fields) {
    int at = 0;
    for (size_t i = 0; i < N; ++i) {
      int align = decl[i].bytes >= 8 ? 8 : decl[i].bytes;
      at = (at + align - 1) / align * align;
      offset[i] = at;
      at += decl[i].bytes;
    }
    size = 1;
    while (size < at) size *= 2;
    while ((1 << shift) < size) ++shift;
  }
};

/// [base + field], with the width the field is read with and its name.
template <size_t N, typename F>
MemOp field(const Layout<N>& l, const char* prefix, Reg base, F f, int extra = 0) {
  size_t i = static_cast<size_t>(f);
  const FieldDecl& d = l.decl[i];
  Width w = d.bytes == 1 ? Width::b8 : d.bytes == 2 ? Width::b16 : d.bytes == 4 ? Width::b32 : Width::b64;
  MemOp m = mem(w, base, l.offset[i] + extra);
  m.disp_name = std::string(prefix) + d.name + (extra ? "+" + std::to_string(extra) : "");
  return m;
}

// --- the connection record -----------------------------------------------------
// One per connection: a static one in the blocking modes, a table of them in
// epoll mode. The HTTP state machine (http_conn.cc) reads and writes it; the
// drivers only know fd, state, deadline and what flush needs.
enum class ConnField {
  fd, state, served, mode, said_close, len, scanned, watch, outq, deadline, discard, consume, bytes, buf, iov, addr,
  chunk, chunk_digits, body_total, file, file_lowat, file_off, file_left, upload, upload_id,
};
inline constexpr Layout<25> kConnLayout{{{
    {"fd", 4, "the socket"},
    {"state", 4, "0 free, 1 reading a request, 2 writing a response, 3 storing a body, 4 dropping one, 5 lingering"},
    {"served", 4, "requests answered on this connection"},
    {"mode", 2, "after the response in flight: 0 close, 1 keep-alive, 2 keep-alive (HTTP/1.0)"},
    {"said_close", 2, "1: the client said its request is its last (Connection: close, HTTP/1.0)"},
    {"len", 4, "bytes in the request buffer"},
    {"scanned", 4, "bytes of the buffer already searched for the head's end"},
    {"watch", 4, "epoll: what the socket is watched for: 0 EPOLLIN, 1 EPOLLOUT, 2 not yet in the set"},
    {"outq", 4, "epoll: bytes not yet sent in the socket when the send deadline was last set"},
    {"deadline", 8, "when the current wait times out (CLOCK_MONOTONIC, ms)"},
    {"discard", 8, "body bytes still to read and drop (chunked: of this chunk); lingering: bytes it may still read"},
    {"consume", 8, "bytes to drop from the buffer once the response is out"},
    {"bytes", 8, "bytes read, for the connection log"},
    {"buf", 8, "this connection's request buffer; its response scratch follows it"},
    {"iov", 96, "struct iovec[6]: what is left to send of the response's parts (IovPart)"},
    // Past 127 (a disp32), so that only the logs and bodies pay for it.
    {"addr", 24, "the client: family, port, then sin_addr, or sin6_flowinfo and sin6_addr"},
    {"chunk", 4, "a chunked body being dropped: where its parser is (kChunk*), 0 none"},
    {"chunk_digits", 4, "hex digits of the chunk size being read"},
    {"body_total", 8, "a chunked body: its data, extension and trailer bytes so far"},
    {"file", 4, "a file being sent (or written): its descriptor; -1 none"},
    {"file_lowat", 4, "1: the socket's TCP_NOTSENT_LOWAT was raised for files"},
    {"file_off", 8, "the file's offset of the next byte to send"},
    {"file_left", 8, "bytes of the file still to send after the iov parts"},
    {"upload", 4, "a body being stored: its upload's response index"},
    {"upload_id", 8, "its temporary file's number (\".upload-PID-N\"); 0: none"},
}}};
static_assert(kConnLayout.size == 256, "the connection record stays 256 bytes");
inline constexpr int kConnRecordBytes = kConnLayout.size;
/// A request buffer holds limits.request_bytes and this much slack beyond it.
inline constexpr int kRequestBufferSlack = 16;
/// After the slack, each buffer has this much scratch for the parts of a
/// response made at run time (Content-Range and Content-Length of a 206).
inline constexpr int kResponseScratchBytes = 128;
/// A file is sent with sendfile at most this many bytes per flush, so that
/// one fast reader of a large file cannot hold an event loop.
inline constexpr int kSendFileSlice = 1024 * 1024;
/// TCP_NOTSENT_LOWAT of a socket once it sends a file: sendfile then moves a
/// file in one call, as the send buffer allows (tcp_wmem caps it at 4 MiB);
/// at the listener's 128 KiB it took six calls for a megabyte, and three times
/// nginx's CPU (bench/run.sh, the files case). The socket also gets TCP_NODELAY.
inline constexpr int kFileNotsentLowat = 4 * 1024 * 1024;
/// A server that sends files read at run time makes more in the scratch:
/// a file's fields, and a directory's redirect, whose Location holds the
/// request's path and query (at most request_bytes).
inline constexpr int kFileScratchBytes = 512;
inline constexpr int response_scratch_bytes(int request_bytes, bool files) {
  return files ? request_bytes + kFileScratchBytes : kResponseScratchBytes;
}
/// Bytes per connection buffer: the request, the slack, the scratch.
inline constexpr int conn_buffer_bytes(int request_bytes, bool files) {
  return request_bytes + kRequestBufferSlack + response_scratch_bytes(request_bytes, files);
}

/// A response goes out as six parts, in this order, each an iovec of the
/// record; a part a response does not use is empty. Every part but the body
/// ends with CR LF, so that a response can be put together from slices of
/// its head at line boundaries.
enum class IovPart {
  status,   // the status line, or a whole fixed head
  runtime,  // lines made at run time (in the scratch), or a slice of the request
  fields,   // a slice of the response's fields
  conn,     // "Connection: close", nothing, or "Connection: keep-alive"
  date,     // date_line: the Date field and the blank line
  body,
};
inline constexpr int kIovParts = 6;
inline constexpr const char* kIovPartNames[] = {"status", "runtime", "fields", "conn", "date", "body"};
inline constexpr int kConnFree = 0, kConnReading = 1, kConnWriting = 2, kConnUploading = 3, kConnDiscarding = 4,
                     kConnLingering = 5;
inline constexpr int kWatchIn = 0, kWatchOut = 1, kWatchNone = 2;
/// record.chunk: where the parser of a chunked body (RFC 9112 7.1) is.
/// chunk-size [ chunk-ext ] CRLF, chunk-data CRLF, ..., "0" [ chunk-ext ]
/// CRLF, trailer lines, CRLF.
enum ChunkState {
  kChunkNone = 0,      // no chunked body
  kChunkSize = 1,      // in the size's hex digits (chunk_digits so far)
  kChunkExt = 2,       // in an extension, after the size: dropped up to CR
  kChunkSizeLf = 3,    // the size line's LF
  kChunkData = 4,      // discard bytes of data left
  kChunkDataCr = 5,    // the CR after the data
  kChunkDataLf = 6,    // ... and its LF
  kChunkTrailer = 7,   // at the start of a trailer line, or of the final CRLF
  kChunkTrailerLine = 8,  // in a trailer line: dropped up to CR
  kChunkTrailerLf = 9,    // a trailer line's LF
  kChunkLastLf = 10,      // the final LF: then the body is over
};
/// A chunk size has at most this many hex digits (leading zeros included).
inline constexpr int kChunkMaxDigits = 16;

/// [base + conn_<field>] (+ extra bytes into an array field).
inline MemOp conn(Reg base, ConnField f, int extra = 0) {
  return field(kConnLayout, "conn_", base, f, extra);
}
inline MemOp conn(ConnField f, int extra = 0) { return conn(kConn, f, extra); }
/// The record's iovec for a part of the response: its base, its length.
inline MemOp iov_base(IovPart p) { return conn(ConnField::iov, 16 * static_cast<int>(p)); }
inline MemOp iov_len(IovPart p) { return conn(ConnField::iov, 16 * static_cast<int>(p) + 8); }

}  // namespace asmsrv
