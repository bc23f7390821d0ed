// Lowering: a validated Spec becomes a Program of syscall blocks.
#pragma once

#include "ir.h"
#include "spec.h"

namespace asmsrv {

/// The size of the request buffer, in bytes.
constexpr int kRequestBufferBytes = 8192;
/// The receive and send timeout on a client socket, in seconds.
constexpr int kIoTimeoutSeconds = 10;

/// Builds the whole server for `spec`. Deterministic: the same spec gives
/// the same Program.
Program lower(const Spec& spec);

}  // namespace asmsrv
