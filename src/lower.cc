// Lowering: composes the components of the generated server. This is the
// one place that chooses by concurrency mode (the driver table below) and by
// protocol (HTTP or a raw response).
#include "lower.h"

#include <fmt/format.h>

#include <filesystem>
#include <memory>

#include "access_log.h"
#include "driver.h"
#include "http_conn.h"
#include "http_parse.h"
#include "http_route.h"
#include "probe.h"
#include "raw_conn.h"
#include "response.h"
#include "roots.h"
#include "routes.h"
#include "runtime.h"
#include "startup.h"
#include "supervisor.h"

namespace asmsrv {

namespace {

/// The driver of each concurrency mode. A new mode is a new driver file and
/// one line here.
struct DriverEntry {
  Mode mode;
  std::unique_ptr<Driver> (*make)(const DriverDeps&);
};
constexpr DriverEntry kDrivers[] = {
    {Mode::epoll, make_epoll_driver},
    {Mode::iterative, make_blocking_driver},
    {Mode::fork, make_blocking_driver},
};

std::unique_ptr<Driver> make_driver(const DriverDeps& deps) {
  for (const DriverEntry& d : kDrivers)
    if (d.mode == deps.spec.mode) return d.make(deps);
  throw std::logic_error("no driver for this mode");
}

constexpr const char* kRegisterMap =
    "Registers that live across the whole program:\n"
    "  r12  the listening socket's file descriptor\n"
    "  r13  the client socket's file descriptor\n"
    "  rbx  the connection record (conn_* fields)\n"
    "  rbp  the connection's request buffer, r14 the bytes in it (HTTP)\n"
    "  r15  the variables: vars+128, so that [r15+name] reaches each\n"
    "Subroutines may clobber rax, rcx, rdx, rsi, rdi and r8-r11; they keep\n"
    "rbx, rbp and r12-r15.";

}  // namespace

Program lower(const Spec& spec) {
  Program p;
  p.name = spec.name;
  p.spec_file = std::filesystem::path(spec.file).filename().string();
  p.notes = kRegisterMap;
  Builder b(p);
  for (size_t i = 0; i < kConnLayout.decl.size(); ++i)
    b.constant(std::string("conn_") + kConnLayout.decl[i].name, kConnLayout.offset[i], kConnLayout.decl[i].what);

  Runtime rt(spec, b);
  AccessLog log(spec, b, rt);
  Roots roots(spec, b, rt);
  // The protocol: HTTP from the response table, or the raw response.
  ResponseTable table;
  std::unique_ptr<HttpParse> parse;
  std::unique_ptr<HttpRoute> route;
  std::unique_ptr<Responses> responses;
  std::unique_ptr<Conn> conn;
  if (spec.raw_response) {
    conn = std::make_unique<RawConn>(spec, b, rt);
  } else {
    table = build_response_table(spec);
    if (embeds_files(table)) p.include_dirs.push_back(spec.dir);
    parse = std::make_unique<HttpParse>(spec, b, table);
    route = std::make_unique<HttpRoute>(spec, b, table, parse->vars());
    responses = std::make_unique<Responses>(spec, b, rt, table, parse->vars(), roots,
                                            NormalisedPath{route->norm_path(), route->norm_len()});
    if (!table.upload_sites.empty()) log.log_stored(responses->upload_location(), responses->upload_location_len());
    conn = std::make_unique<HttpConn>(spec, b, rt, *parse, *responses, log);
    responses->use_release(conn->release());
  }
  std::unique_ptr<Driver> driver = make_driver({spec, b, rt, *conn, log});
  std::unique_ptr<HealthProbe> probe;
  if (spec.probe) probe = std::make_unique<HealthProbe>(spec, b, rt);
  Startup startup(spec, b, rt, roots, driver->nonblocking_listener(), probe ? probe->entry() : Label{});
  Supervisor supervisor(spec, b, rt);

  // The text, in the order a reader follows it: start-up, the workers, the
  // driver's loop, the connection, HTTP, then the shared subroutines.
  startup.emit(supervisor.entry());
  if (probe) probe->emit();
  supervisor.emit(driver->entry());
  driver->emit();
  conn->emit();
  if (parse) {
    parse->emit(route->entry());
    route->emit();
    responses->emit();
  }
  log.emit();
  rt.emit();
  b.finish();
  return p;
}

}  // namespace asmsrv
