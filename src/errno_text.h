// The errnos a generated server can name in its start-up error messages.
#pragma once

#include <span>

namespace asmsrv {

struct ErrnoText {
  int number;
  const char* name;  // "EADDRINUSE"
  const char* text;  // "Address already in use" (as strerror on glibc)
};

/// The errnos that socket, setsockopt, bind, listen and open commonly return.
std::span<const ErrnoText> common_errnos();

}  // namespace asmsrv
