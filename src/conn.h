// The connection state machine, as the drivers see it. A driver owns the
// waiting (a blocking loop, an epoll loop, io_uring one day) and the socket
// calls; a Conn decides everything else from the connection record. Every
// entry point is a subroutine taking rbx = the record and returning, where
// stated, eax = what the driver does next:
//
//   open         a new connection: the record is initialised, its deadline set
//   read_window  rsi = where to read, rdx = how many bytes at most
//   received     rax = n > 0 bytes just read             -> eax = action
//   flush        write what is left of the response       -> rax = 1 sent, 0 would block, < 0 error,
//                2 more to send, but others should have their turn (a file sent in slices)
//   sent         the whole response is out                -> eax = action
//   idle         may a stop close it now?                 -> eax = 1 yes, 0 no
//
// Actions: kActRead (wait for input until record.deadline), kActSend (flush,
// then sent), kActClose (close at once). The driver also closes at once on
// end of file, an error, or a deadline passed. A connection that ends after
// a response while the client may still be sending is not closed at once:
// closing a socket with input unread resets the connection, and the reset
// can destroy answers the client has not read yet. It lingers instead
// (nginx's lingering close): the write side is shut down, so the client
// reads every answer and then end of file, and what it still sends is read
// and dropped until it closes, for at most limits.linger_ms and
// limits.linger_bytes; for the driver that is just reading (kActRead).
//
// A connection is idle (a stop closes it at once) when it waits for a
// request with nothing of it received. One that drops a body or lingers is
// not: the driver lets it finish, within limits.shutdown_timeout_ms.
//
// received and sent may clobber rax, rcx, rdx, rsi, rdi, r8-r11, rbp and r14
// (the buffer and its length while a request is parsed); rbx, r12, r13, r15
// and rsp are kept. The driver initialises record.fd, .buf, .addr and .watch
// before open.
#pragma once

#include "gen.h"
#include "runtime.h"

namespace asmsrv {

enum ConnAction { kActRead = 0, kActSend = 1, kActClose = 2 };

class Conn : public Gen {
 public:

  Conn(const Spec& spec, Builder& b, Runtime& rt);
  virtual ~Conn() = default;

  /// The protocol's name, as its subroutines are named: "http", "raw".
  virtual const char* protocol() const = 0;
  virtual Label open() const = 0;
  virtual Label sent() const = 0;
  /// Lingering input is dropped here; the rest goes to the protocol's own.
  Label received() const { return received_; }
  Label read_window() const { return read_window_; }
  Label flush() const { return flush_; }
  /// Subroutine: record.deadline = clock_now + eax ms. Clobbers rax.
  Label deadline() const { return deadline_; }
  Label idle() const { return idle_; }
  /// Subroutine: close the file the record sends, if any (id -1 when the
  /// spec serves no files). A driver calls it before it closes a connection.
  Label release() const { return release_; }

  /// Emits the protocol's subroutines and the shared ones.
  virtual void emit() = 0;

 protected:
  void emit_shared();
  /// The start of open: the state and counters every protocol starts from.
  void reset_record();
  /// mov eax, ms; call deadline.
  void set_deadline(int ms, const std::string& what);
  /// mov eax, action; ret.
  void answer(ConnAction a);
  /// The protocol's received subroutine (rax = n bytes of a request).
  virtual Label protocol_received() const = 0;
  /// Subroutine: the connection ends after this response; shut down the
  /// write side and linger (or close at once) -> eax = action. The
  /// protocols' sent jumps here.
  Label linger() const { return linger_; }
  Runtime& rt_;
  /// Subroutine, with uploads: remove the record's temporary file (the
  /// protocol's); release calls it when record.upload_id is not 0.
  Label discard_upload_;

 private:
  void emit_received();
  void emit_linger();
  void emit_flush();
  void emit_idle();
  void emit_send_file(Label l);
  void emit_release();
  bool files_ = false;  // the spec sends files read at run time
  Label received_, linger_, read_window_, flush_, deadline_, idle_, release_;
};

}  // namespace asmsrv
