// The HTTP connection state machine: no I/O of its own. Bytes in -> what to
// send, what to wait for next; response sent -> read more, answer the next
// pipelined request, or close. Every driver calls it (see conn.h).
#pragma once

#include "access_log.h"
#include "conn.h"
#include "http_parse.h"
#include "response.h"

namespace asmsrv {

class HttpConn : public Conn {
 public:
  HttpConn(const Spec& spec, Builder& b, Runtime& rt, const HttpParse& parse, Responses& responses,
           AccessLog& log);
  const char* protocol() const override { return "http"; }
  Label open() const override { return open_; }
  Label sent() const override { return sent_; }
  void emit() override;

 private:
  Label protocol_received() const override { return received_; }
  void emit_open();
  void emit_received();
  void emit_process();
  void emit_decide_mode();
  void emit_sent();
  void emit_next();
  void emit_buffer_drop();
  void emit_chunk_drop();
  void emit_chunk_scan();
  const HttpParse& parse_;
  const RequestVars& req_;
  Responses& responses_;
  AccessLog& log_;
  Label open_, received_, sent_, process_, decide_mode_;
  Label next_, buffer_drop_, chunk_drop_, chunk_scan_;
};

}  // namespace asmsrv
