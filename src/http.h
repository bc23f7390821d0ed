// HTTP facts computed at compile time: reason phrases, media types, and the
// bytes of a complete response head.
#pragma once

#include <optional>
#include <map>
#include <string>
#include <string_view>

#include "spec.h"

namespace asmsrv {

/// The standard reason phrase for `status` (RFC 9110 §15), or "" if none.
std::string_view standard_reason(int status);

/// The media type for a file name's extension, from templates/mime.types
/// (text/* with "; charset=utf-8"); application/octet-stream if unknown.
std::string_view media_type_for(std::string_view filename);
/// The whole table: lower-case extension -> Content-Type, sorted by extension.
const std::map<std::string, std::string, std::less<>>& media_types();

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

/// A path as a URL spells it: every byte but unreserved ones, sub-delims,
/// ':', '@' and '/' percent-encoded (RFC 3986 3.3).
std::string percent_encode_path(std::string_view path);

/// What the server matches routes against (RFC 3986 6.2.2): the path
/// percent-decoded, "." segments dropped, ".." dropping the segment before
/// it, "//" merged. nullopt (400) for a bad escape, a decoded NUL or '/',
/// or a ".." above the root.
std::optional<std::string> normalise_path(std::string_view path);

/// "Connection: close\r\n", "" or "Connection: keep-alive\r\n".
std::string_view connection_line(ConnHeader conn);

/// A response is an entity when it is a 200 with a body: it then has a
/// strong ETag (set by the spec checker), and answers If-None-Match and
/// Range (see response.h).
bool is_entity(const HttpResponse& r);

/// The field lines of a response that every answer to it repeats, each
/// ending in CR LF: its own headers, then the `global` ones it does not set
/// itself (names compared without case).
std::string shared_fields(const HttpResponse& r, const Headers& global);

/// The field lines of one representation of an entity, in the order in
/// which the answers take prefixes of them (see CompiledRep in routes.h).
struct EntityFields {
  std::string text;
  size_t len_shared = 0, len_304 = 0, len_ranged = 0;
};
/// `shared` from shared_fields; `cache_control` and `coding` empty when
/// none; `vary`: the entity has other codings.
EntityFields entity_fields(const std::string& shared, const std::string& etag, const std::string& cache_control,
                           bool vary, std::string_view content_type, std::string_view coding, uint64_t size);

/// The head of a response that is not an entity: the status line and its
/// field lines, each ending in CR LF, without Connection.
std::string fixed_head(const HttpResponse& r, const Headers& global);

/// The head a full answer to `r` has, ending in CR LF CR LF, without the
/// Date line the server adds last:
/// "HTTP/1.1 200 OK\r\nServer: ...\r\nETag: ...\r\nContent-Length: N\r\nConnection: close\r\n\r\n".
std::string response_head(const HttpResponse& r, ConnHeader conn = ConnHeader::close,
                          const Headers& global = {});

}  // namespace asmsrv
