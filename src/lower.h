// Lowering: a validated Spec becomes a Program of syscall blocks, composed
// from components (lower.cc).
#pragma once

#include "ir.h"
#include "spec.h"

namespace asmsrv {

/// Builds the whole server for `spec`. Deterministic: the same spec gives
/// the same Program, checked (Builder::finish).
Program lower(const Spec& spec);

}  // namespace asmsrv
