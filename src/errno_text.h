// The errnos a generated server can name in its start-up error messages.
#pragma once

#include <span>
#include <string_view>

namespace asmsrv {

struct ErrnoText {
  int number;
  const char* name;  // "EADDRINUSE"
  const char* text;  // "Address already in use" (as strerror on glibc)
};

/// The errnos that socket, setsockopt, bind, listen and open commonly return.
std::span<const ErrnoText> common_errnos();
/// The entry named `name` ("EADDRINUSE"); std::logic_error if there is none.
const ErrnoText& errno_named(std::string_view name);

}  // namespace asmsrv
