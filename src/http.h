// HTTP facts computed at compile time: reason phrases, media types, and the
// bytes of a complete response head.
#pragma once

#include <string>
#include <string_view>

#include "spec.h"

namespace asmsrv {

/// The standard reason phrase for `status` (RFC 9110 §15), or "" if none.
std::string_view standard_reason(int status);

/// The media type for a file name's extension, from templates/mime.types
/// (text/* with "; charset=utf-8"); application/octet-stream if unknown.
std::string_view media_type_for(std::string_view filename);

/// true for a token (RFC 9110 §5.6.2): a valid header name or method.
bool is_token(std::string_view s);

/// Field names compare case-insensitively (RFC 9110 5.1).
bool same_name(std::string_view a, std::string_view b);

/// true when a response with this status carries no body (1xx, 204, 304).
bool status_has_no_body(int status);

using Headers = std::vector<std::pair<std::string, std::string>>;

/// What the response says about the connection.
enum class ConnHeader {
  close,          // "Connection: close"
  keep_alive,     // nothing: HTTP/1.1 keeps the connection by default
  keep_alive_10,  // "Connection: keep-alive", for an HTTP/1.0 client that asked
};

/// The status line and header section, ending in CRLF CRLF:
/// "HTTP/1.1 200 OK\r\nContent-Type: ...\r\nContent-Length: N\r\nConnection: close\r\n...\r\n".
/// `global` headers follow the response's own, except those it sets itself
/// (names compared without case).
std::string response_head(const HttpResponse& r, ConnHeader conn = ConnHeader::close,
                          const Headers& global = {});

}  // namespace asmsrv
