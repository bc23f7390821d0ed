// The Lowerer: builds the Program for one spec. Private to lower*.cc:
// lower.cc holds start-up, the accept loop, the modes and the shared
// subroutines; lower_http.cc holds the HTTP/1.1 engine.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ir.h"
#include "linux.h"
#include "routes.h"
#include "spec.h"

namespace asmsrv {

// Registers that live across the whole program.
inline constexpr Reg kListenFd = Reg::r12;
inline constexpr Reg kClientFd = Reg::r13;
inline constexpr Reg kBufLen = Reg::r14;
inline constexpr Reg kLogFd = Reg::r15;
inline constexpr Reg kBuf = Reg::rbp;  // the current connection's request buffer

/// Little-endian bytes of an integer, for structs laid out in .rodata.
std::string le(uint64_t v, int n);

class Lowerer {
 public:
  explicit Lowerer(const Spec& spec);
  Program run();

 private:
  using Sys = linux::Sys;
  // --- small helpers: one IR line each ---------------------------------------
  void lea(Reg r, Label l, std::string c = "") { b_.emit(Op::lea, {r64(r), rip(l)}, std::move(c)); }
  void mov(Operand d, Operand s, std::string c = "") { b_.emit(Op::mov, {d, s}, std::move(c)); }
  void op(Op o, Operand d, Operand s, std::string c = "") { b_.emit(o, {d, s}, std::move(c)); }
  void op(Op o, Operand d, std::string c = "") { b_.emit(o, {d}, std::move(c)); }
  void jmp(Op o, Label l, std::string c = "") { b_.emit(o, {LabelOp{l}}, std::move(c)); }
  void call(Label l, std::string c = "") { b_.emit(Op::call, {LabelOp{l}}, std::move(c)); }
  void ret(std::string c = "") { b_.emit(Op::ret, {}, std::move(c)); }
  void sys(const Sys& s) { b_.syscall(s.nr, s.name); }
  // A 32-bit variable in .bss: dword [rel label].
  static MemOp var32(Label l) { return rip(l, Width::b32); }
  static MemOp var64(Label l) { return rip(l, Width::b64); }
  // Starts a block that makes the system call `s` (nullptr: none).
  void block(Label l, std::string title, const Sys* s, std::string c_equiv, std::string why);
  // deadline = now_ms() + ms (clobbers as now_ms).
  void set_deadline(int ms, const std::string& what);
  // rt_sigaction(sig, act, NULL, sizeof(sigset_t)); `act` is the address operand.
  void sigaction(int sig, const std::string& sig_name, Operand act, const std::string& act_comment);
  // nanosleep(&accept_backoff, NULL): 100 ms, so that a failing call cannot spin.
  void pause_100ms(const std::string& why);
  // rax < 0 after a syscall: print "<name>: <what>: <errno text>" and exit 1.
  void die_if_failed(Label prefix, size_t prefix_len);

  // --- lower.cc ----------------------------------------------------------------
  void declare_labels();
  void declare_data();
  void start();
  void accept_loop();
  void fork_connection();
  void serve_raw();
  void read_once();
  void finish_connection();
  void drain_input();
  void log_connection();
  void exit_ok();
  void write_all();
  void append_u64();
  void append_ip();
  void die();
  void signal_handler();

  void supervisor();
  void worker_start();

  // --- lower_epoll.cc ------------------------------------------------------------
  void declare_epoll_data();
  void epoll_worker();
  void epoll_shutdown();
  void epoll_accept();
  void epoll_conn_event();
  void epoll_flush();
  void epoll_close();
  void epoll_sweep();
  void epoll_listen();
  void epoll_ctl(int ctl, Operand fd, int events, Operand data, const std::string& why);

  // --- lower_http.cc -------------------------------------------------------------
  void declare_http_data();
  void http_connection();
  void http_after_response();
  void now_ms();
  void read_timed();
  void find_head_end();
  void parse_request();
  void parse_headers();
  void check_request();
  void route();
  void decide_mode();
  void too_large();
  void prepare_response();
  void send_response();
  void log_request();
  // Compares the bytes of `text` at [base+disp] with immediates (case-folded
  // when `fold`, for letters and '-'); jumps to `fail` on a difference.
  void match_text(Reg base, int disp, const std::string& text, bool fold, Label fail);
  bool http() const { return !spec_.raw_response.has_value(); }

  const Spec& spec_;
  Program p_;
  Builder b_;

  // Code labels.
  Label start_, accept_, accept_failed_, fork_, serve_, finish_, exit_ok_;
  Label write_all_, append_u64_, append_ip_, die_, on_signal_, restorer_, drain_, log_conn_;
  // Data labels.
  Label sa_ignore_, sa_nocldwait_, listen_addr_, one_, io_timeout_, backoff_, startup_;
  Label log_path_, errno_texts_, errno_word_, log_from_, log_bytes_, response_;
  Label request_buf_, client_addr_, client_addrlen_, busy_, stop_, line_buf_, conn_bytes_;
  std::pair<Label, size_t> err_socket_, err_reuse_, err_bind_, err_listen_;
  std::optional<std::pair<Label, size_t>> err_open_;
  std::vector<size_t> errno_offsets_;
  size_t longest_line_ = 0;
  uint64_t response_len_ = 0;

  // The HTTP engine.
  ResponseTable table_;
  Label next_request_, after_response_, respond_;
  Label decide_mode_, too_large_, now_ms_, read_timed_, find_head_end_, parse_request_, prepare_response_, send_response_, log_request_;
  Label heads_, bodies_, responses_, char_class_, now_ts_, pollfd_, iov_;
  Label scanned_, deadline_, served_, head_len_, conn_mode_, resp_status_, resp_body_bytes_;
  Label req_method_, req_minor_, req_close_, req_keepalive_, req_host_, req_cl_count_, req_te_;
  Label req_content_length_, req_path_, req_path_len_, slash_;
  Label bad_request_;  // in parse_request: return the 400 response
  std::vector<Label> path_labels_;

  // Workers and the epoll loop.
  Label worker_main_, spawn_, is_supervisor_, pids_, wstatus_, restart_msg_, supervisor_pid_, poll_ts_;
  size_t restart_msg_len_ = 0;
  std::pair<Label, size_t> err_epoll_, err_fcntl_;
  Label epoll_loop_, accept_all_, conn_event_, close_conn_, flush_, sweep_, listen_on_, listen_off_;
  Label conn_deadline_, begin_shutdown_;
  Label loop_now_, epfd_, nconns_, accepting_, shutting_down_, free_top_, ev_i_, ev_n_, next_sweep_;
  Label shutdown_deadline_, ev_, events_, free_stack_, conns_, bufs_, stop_sigs_, no_sigs_;
};

}  // namespace asmsrv
