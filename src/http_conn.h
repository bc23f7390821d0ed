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
  /// decode: a chunked upload's parser, which also moves the data down over
  /// the framing (r11) and counts against the upload's max_bytes (-2 over).
  void emit_chunk_scan(Label l, bool decode);
  /// Inline: decide_mode, prepare_response, the access log, served++ (eax =
  /// the response).
  void prepare_answer();
  /// Inline: state = writing, the send deadline, return send.
  void queue_answer();
  // http_upload.cc: storing a body in an upload's root.
  void emit_upload();
  void emit_upload_begin();
  void emit_upload_received();
  void emit_upload_store();
  void emit_upload_end();
  void emit_upload_site();
  /// Inline: write_all(record.file, buf + rsi, rdx) -> rax = 0 or -errno.
  void write_to_file();
  void emit_upload_names();
  void emit_discard_upload();
  const HttpParse& parse_;
  const RequestVars& req_;
  Responses& responses_;
  AccessLog& log_;
  Label open_, received_, sent_, process_, decide_mode_;
  Label next_, buffer_drop_, chunk_drop_, chunk_scan_, respond_;
  bool uploads_ = false;
  Label upload_begin_, upload_received_, upload_store_, upload_end_, upload_answer_, upload_site_,
      upload_chunks_, upload_temp_name_, upload_suffix_;
  Label upload_counter_, upload_temp_, upload_name_, how_create_, continue_text_;
};

}  // namespace asmsrv
