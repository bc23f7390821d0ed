// The raw protocol (raw_response specs): the first bytes a client sends are
// answered with the spec's bytes, verbatim, and the connection closes.
#pragma once

#include "conn.h"

namespace asmsrv {

class RawConn : public Conn {
 public:
  /// How long a client may take to send its first bytes.
  static constexpr int kFirstBytesTimeoutMs = 10000;

  RawConn(const Spec& spec, Builder& b, Runtime& rt);
  const char* protocol() const override { return "raw"; }
  Label open() const override { return open_; }
  Label sent() const override { return sent_; }
  void emit() override;

 private:
  Label protocol_received() const override { return received_; }
  Label open_, received_, sent_, response_;
};

}  // namespace asmsrv
