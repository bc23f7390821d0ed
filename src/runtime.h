// The runtime: subroutines and data any part of the server may use — writing
// all of a buffer, decimal numbers and addresses as text, the clock, fatal
// errors, the stop signals. Each subroutine is emitted only if some
// component asked for its label.
#pragma once

#include <initializer_list>
#include <set>

#include <functional>
#include <map>
#include <string>
#include <utility>

#include "gen.h"

namespace asmsrv {

/// The start of a fatal error message ("name: bind 0.0.0.0:8080: ") and its length.
struct ErrorPrefix {
  Label label;
  size_t len = 0;
  const char* hint_errno = nullptr;  // for this errno ("EACCES"), die also prints the hint
  Label hint;
  size_t hint_len = 0;
  /// The message ends with "ADDRESS:" and the port comes at run time, from
  /// listen_port (a port from the environment): die_port prints it.
  bool port_follows = false;
};

class Runtime : public Gen {
 public:
  Runtime(const Spec& spec, Builder& b) : Gen(spec, b) {}

  // Subroutines (emitted by emit() once asked for). Registers as documented
  // in each block; all keep rbx, rbp and r12-r15.
  Label write_all();    // rdi = fd, rsi = buf, rdx = count -> rax = 0 or -errno
  Label append_u64();   // rax = value, rdi = dst: decimal digits, rdi advanced
  Label now_ms();       // rax = CLOCK_MONOTONIC in ms, also kept in clock_now
  Label exit_ok();      // exit_group(0)
  Label on_signal();    // the SIGTERM/SIGINT handler
  Label restorer();     // its SA_RESTORER trampoline

  // Data.
  Label clock_now();       // dq: the last value now_ms read
  Label busy();            // dd: 1 while a connection is served (blocking modes)
  Label stop_requested();  // dd: set by the signal handler
  Label stop_signals();    // sigset_t { SIGTERM, SIGINT }
  Label no_signals();      // the empty sigset_t
  Label line_buf();        // where log and error lines are built
  /// The access log's file descriptor: 1 or 2, or the variable log_fd
  /// (dd) that start-up sets when the log is a file.
  Operand log_fd();
  /// dd, host byte order: listen.port, or the port the environment gave
  /// (listen.port_env); only when the spec reads the port at run time.
  Label listen_port();
  /// line_buf must hold `bytes` more than the longest error prefix. Its
  /// size is set by emit(), so this may come at any time before.
  void need_line(size_t bytes);
  /// "<name>: <what>: ", for die.
  /// `errnos`: the ones the call can fail with that die names by their text
  /// (any other is printed as its number); only these are in the program.
  ErrorPrefix error_prefix(const std::string& data_name, const std::string& what,
                           std::initializer_list<const char*> errnos);
  /// The same for a message naming the listening address: "<what> ADDR:PORT: ",
  /// with the port filled in at run time when the spec reads it from the
  /// environment. `address` is the text before ":PORT".
  ErrorPrefix error_prefix_at(const std::string& data_name, const std::string& what, const std::string& address,
                              std::initializer_list<const char*> errnos);

  /// Adds to `prefix` a hint die prints after the text of `errno_name`, for
  /// the one cause a user can act on, e.g. bind's EACCES.
  void add_hint(ErrorPrefix& prefix, const std::string& data_name, const char* errno_name,
                const std::string& hint);

  // Inline code.
  /// rax < 0 after a syscall: print prefix + the errno's text (+ its hint)
  /// and exit 1.
  void die_if_failed(const ErrorPrefix& prefix);
  /// Jumps to: rdi = the end of a message built in line_buf (no newline);
  /// it is written to stderr with a newline, and the process exits 1.
  Label fail_line();
  /// rdi = line_buf holding the message `prefix` starts (the port and ": "
  /// appended when it follows). Clobbers rax, rcx, rdx, rsi.
  void start_message(const ErrorPrefix& prefix);
  /// rsi = src, rcx = the number of bytes at `src` up to the first CR or
  /// LF, at most `len`. Clobbers rax.
  void line_length(Reg src, Reg len);
  /// Copies the bytes at `src` up to the first CR or LF, at most `len`
  /// of them, to rdi (advanced). Clobbers rax, rcx, rsi.
  void copy_line(Reg src, Reg len);
  /// Prints "<name>: <text>" to stderr and exits 1 (inline code).
  void fail_with(const std::string& data_name, const std::string& text);
  /// nanosleep 100 ms, so that a call that keeps failing cannot spin.
  void pause_100ms(const std::string& why);
  /// rt_sigaction(sig, act, NULL, sizeof(sigset_t)); `act` an address operand.
  void sigaction(int sig, const std::string& sig_name, Operand act, const std::string& act_comment);
  /// sigaction for each of `sigs` with { handler, SA_RESTORER,
  /// signal_restorer }, the struct built on the stack.
  void catch_signals(std::initializer_list<std::pair<int, const char*>> sigs, Label handler,
                     const std::string& handler_name);
  /// A socket option, from the value at `optval`: setsockopt(fd, level, name,
  /// &optval, optlen). The names are C's, for the comments.
  struct SockOpt {
    int level;
    const char* level_name;
    int name;
    const char* opt_name;
    int optlen;
    const char* optlen_text;
  };
  void setsockopt(Reg fd, const char* fd_name, const SockOpt& o, Label optval, const std::string& optval_name);
  /// error_prefix for a setsockopt call, with the errnos setsockopt fails with.
  ErrorPrefix setsockopt_error(const std::string& data_name, const char* opt_name);
  /// Ends the line built in line_buf up to rdi with '\n' and writes it to
  /// `fd` with write_all (whose result is in rax).
  void write_line(Operand fd, const std::string& fd_name);
  /// rt_sigprocmask(how, &stop_signals, NULL, sizeof(sigset_t)).
  void mask_stop_signals(int how, const std::string& why);

  /// With workers, the signal handler first jumps here in the supervisor.
  void set_supervisor_signal(Label is_supervisor, Label pass_on) {
    is_supervisor_ = is_supervisor;
    supervisor_signal_ = pass_on;
  }

  /// Emits every subroutine asked for, and line_buf.
  void emit();

 private:
  enum class Sub { on_signal, die, now_ms, write_all, exit_ok, append_u64 };
  Label sub(Sub s, const char* name);
  void name_errnos(std::initializer_list<const char*> errnos);
  Label data_once(const char* name, const std::function<Label()>& make);
  void emit_sub(Sub s, Label l);
  void emit_write_all(Label l);
  void emit_append_u64(Label l);
  void emit_now_ms(Label l);
  void emit_exit_ok(Label l);
  void emit_die(Label l);
  void emit_on_signal(Label l);
  void append_port_colon();

  std::map<Sub, Label> subs_;
  std::map<std::string, Label> data_;
  Label restorer_;
  bool restorer_made_ = false;
  Label is_supervisor_, supervisor_signal_;
  Label die_hint_;  // die's entry with a hint in rbp/r14; id -1 until asked for
  Label die_port_, die_port_hint_;  // the same, the port first appended (port_follows)
  Label fail_;      // inside die: write line_buf up to rdi, exit 1
  size_t longest_prefix_ = 0;
  std::set<int> errnos_;  // named by die, by number
  size_t line_need_ = 0;
  Label line_buf_;
  bool line_buf_made_ = false;
};

}  // namespace asmsrv
