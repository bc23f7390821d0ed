#include "errno_text.h"

#include <stdexcept>
#include <string>

namespace asmsrv {

namespace {

constexpr ErrnoText kErrnos[] = {
    {1, "EPERM", "Operation not permitted"},
    {2, "ENOENT", "No such file or directory"},
    {9, "EBADF", "Bad file descriptor"},
    {12, "ENOMEM", "Cannot allocate memory"},
    {13, "EACCES", "Permission denied"},
    {17, "EEXIST", "File exists"},
    {20, "ENOTDIR", "Not a directory"},
    {21, "EISDIR", "Is a directory"},
    {22, "EINVAL", "Invalid argument"},
    {23, "ENFILE", "Too many open files in system"},
    {24, "EMFILE", "Too many open files"},
    {28, "ENOSPC", "No space left on device"},
    {30, "EROFS", "Read-only file system"},
    {36, "ENAMETOOLONG", "File name too long"},
    {32, "EPIPE", "Broken pipe"},
    {40, "ELOOP", "Too many levels of symbolic links"},
    {88, "ENOTSOCK", "Socket operation on non-socket"},
    {93, "EPROTONOSUPPORT", "Protocol not supported"},
    {97, "EAFNOSUPPORT", "Address family not supported by protocol"},
    {98, "EADDRINUSE", "Address already in use"},
    {99, "EADDRNOTAVAIL", "Cannot assign requested address"},
    {101, "ENETUNREACH", "Network is unreachable"},
    {104, "ECONNRESET", "Connection reset by peer"},
    {105, "ENOBUFS", "No buffer space available"},
    {110, "ETIMEDOUT", "Connection timed out"},
    {111, "ECONNREFUSED", "Connection refused"},
    {113, "EHOSTUNREACH", "No route to host"},
};

}  // namespace

std::span<const ErrnoText> common_errnos() { return kErrnos; }

const ErrnoText& errno_named(std::string_view name) {
  for (const ErrnoText& e : kErrnos)
    if (name == e.name) return e;
  throw std::logic_error("no errno named " + std::string(name));
}

}  // namespace asmsrv
