// A driver runs connections: it owns the waiting and the socket calls, and
// asks the Conn (conn.h) what to do. One driver per concurrency mode; the
// one place that chooses by mode is the table in lower.cc.
#pragma once

#include <memory>

#include "access_log.h"
#include "conn.h"
#include "gen.h"
#include "runtime.h"

namespace asmsrv {

/// What every driver is handed.
struct DriverDeps {
  const Spec& spec;
  Builder& b;
  Runtime& rt;
  Conn& conn;
  AccessLog& log;
};

class Driver {
 public:
  virtual ~Driver() = default;
  /// true: start-up makes the listener non-blocking.
  virtual bool nonblocking_listener() const = 0;
  /// Where a worker starts serving.
  virtual Label entry() const = 0;
  virtual void emit() = 0;
};

std::unique_ptr<Driver> make_blocking_driver(const DriverDeps& deps);
std::unique_ptr<Driver> make_epoll_driver(const DriverDeps& deps);

}  // namespace asmsrv
