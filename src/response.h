// Responses: the table of every response the server can send, laid out at
// compile time, and prepare_response, which turns a response index into the
// six parts the connection record sends (IovPart, abi.h). A response has a
// kind, which says which parts are made at run time:
//
//   fixed     a head and a body made at compile time.
//   entity    a 200 with a body. It has one representation per content
//             coding (br, gzip, identity), each with its own field lines and
//             body. Accept-Encoding chooses one; If-None-Match may make it a
//             304; Range a 206 or 416. Each answer is the status line and a
//             prefix of the representation's field lines, plus, for 206 and
//             416, Content-Range and Content-Length made in the scratch.
//   redirect  a fixed head ending in a Location, the request's query after it.
//   disk      a file below a static site's root, opened at run time
//             (response_disk.cc): its fields made in the scratch from fstat,
//             If-None-Match, If-Modified-Since and Range as for an entity,
//             the body sent by flush with sendfile.
//   upload    the 201 Created of a body stored below an upload's root
//             (response_upload.cc; http_upload.cc stores it): a fixed head,
//             and a Location made in the scratch.
//
// Every kind ends the same way: the Connection line for the record's mode,
// the Date line (made once a second), and the body, none for HEAD.
#pragma once

#include <functional>

#include "gen.h"
#include "http_date.h"
#include "http_parse.h"
#include "roots.h"
#include "routes.h"
#include "runtime.h"

namespace asmsrv {

inline constexpr int kGet = static_cast<int>(Method::GET);
inline constexpr int kHeadMethod = static_cast<int>(Method::HEAD);
/// An ETag's length: '"', 16 hex digits, '"' (strong_etag's, and a file's).
inline constexpr int kEtagBytes = 18;

// The texts that answers made at run time are put together from.
inline constexpr std::string_view kLocation = "Location: ";
inline constexpr std::string_view kStatus304 = "HTTP/1.1 304 Not Modified\r\n";
inline constexpr std::string_view kStatus206 = "HTTP/1.1 206 Partial Content\r\n";
inline constexpr std::string_view kStatus416 = "HTTP/1.1 416 Range Not Satisfiable\r\n";
inline constexpr std::string_view kRangeText = "Content-Range: bytes ";
inline constexpr std::string_view kLengthText = "\r\nContent-Length: ";
inline constexpr std::string_view kUnsatisfied = "Content-Range: bytes */";

/// A record of the `responses` table.
enum class RespField { head, head_len, body, body_len, status, flags, reps, spare };
inline constexpr Layout<8> kRespLayout{{{
    {"head", 4, "offset of the head in response_heads (an entity: its 200 status line)"},
    {"head_len", 4, "its length"},
    {"body", 4, "offset of the body in response_bodies"},
    {"body_len", 4, "length of the body"},
    {"status", 4, "the status code, for the log"},
    {"flags", 4, "bits 0-7: the kind; bit 8: always close; bits 16-18: an entity's codings"},
    {"reps", 4, "an entity: the index of its first record in representations; disk: its site"},
    {"spare", 4, "0: a record is 32 bytes, so that an index shifts into an offset"},
}}};
inline constexpr int kRespAlwaysClose = 1 << 8;
inline constexpr int kRespCodingShift = 16;
inline MemOp resp(Reg base, RespField f) { return field(kRespLayout, "resp_", base, f); }

/// A record of the `representations` table: one coding of an entity.
enum class RepField { fields, len_shared, len_304, len_ranged, len_full, body, body_len, etag };
inline constexpr Layout<8> kRepLayout{{{
    {"fields", 4, "offset of its field lines in response_heads"},
    {"len_shared", 4, "what a 416 sends of them: the response's own and the spec's headers"},
    {"len_304", 4, "... a 304: and ETag, Cache-Control, Vary"},
    {"len_ranged", 4, "... a 206: and Content-Type, Content-Encoding, Accept-Ranges"},
    {"len_full", 4, "... a 200: all, Content-Length too"},
    {"body", 4, "offset of the body in response_bodies"},
    {"body_len", 4, "length of the body"},
    {"etag", 4, "offset of the ETag's value in response_heads (18 bytes, quotes included)"},
}}};
inline MemOp rep(Reg base, RepField f) { return field(kRepLayout, "rep_", base, f); }

/// A record of the `disk_sites` table: a static site read at run time.
enum class SiteField { root, prefix_len, hidden, index, index_len, index_type, index_type_len, spare };
inline constexpr Layout<8> kSiteLayout{{{
    {"root", 4, "its directory: the index in root_fds"},
    {"prefix_len", 4, "the length of its URL prefix"},
    {"hidden", 4, "1: names starting with '.' are served too"},
    {"index", 4, "offset in disk_text of its index file's name, NUL-terminated"},
    {"index_len", 4, "its length, the NUL included"},
    {"index_type", 4, "offset in disk_text of the index's Content-Type line"},
    {"index_type_len", 4, "its length"},
    {"spare", 4, "0: a record is 32 bytes"},
}}};
inline MemOp site(Reg base, SiteField f) { return field(kSiteLayout, "site_", base, f); }

/// A record of the `upload_sites` table: an upload's directory and rules.
enum class UploadField { root, prefix_len, flags, mode, max_bytes, prefix, spare };
inline constexpr Layout<7> kUploadLayout{{{
    {"root", 4, "its directory: the index in root_fds"},
    {"prefix_len", 4, "the length of its URL prefix"},
    {"flags", 4, "bit 0: overwrite; bit 1: fsync"},
    {"mode", 4, "the new files' permissions"},
    {"max_bytes", 8, "the largest body stored"},
    {"prefix", 4, "offset in upload_text of its URL prefix"},
    {"spare", 4, "0: a record is 32 bytes"},
}}};
inline constexpr int kUploadOverwrite = 1, kUploadFsync = 2;
inline MemOp upload(Reg base, UploadField f) { return field(kUploadLayout, "upload_", base, f); }

/// The path routing decoded and normalised, for a disk response.
struct NormalisedPath {
  Label path;  // bytes, with room for a NUL and ".\0" after them
  Label len;   // qword
};

class Responses : public Gen {
 public:
  Responses(const Spec& spec, Builder& b, Runtime& rt, const ResponseTable& table, const RequestVars& req,
            const Roots& roots, NormalisedPath path);

  Label table() const { return responses_; }
  /// The connection's release_file (Conn::release), which closes the file a
  /// disk response opened when it sends none of it. Before emit().
  void use_release(Label release) { release_ = release; }
  /// Subroutine: eax = response index, rbx = the record, its conn_mode
  /// already decided -> record.iov = its parts; resp_status and resp_body_bytes set
  /// for the log. Keeps rbx, rbp, r12-r15.
  Label prepare() const { return prepare_; }
  Label status() const { return status_; }       // dd: status of the last response
  Label body_bytes() const { return body_bytes_; }  // dq: its body bytes
  HttpDate& date() { return date_; }
  const ResponseTable& routes() const { return t_; }
  const Roots& roots() const { return roots_; }
  NormalisedPath norm() const { return norm_; }
  /// With uploads: the upload_sites table, their prefixes (upload_text),
  /// and the Location of the 201 being prepared, which the code that
  /// stored the body sets: a pointer and a length (dq each).
  Label upload_sites() const { return upload_sites_; }
  Label upload_text() const { return upload_text_; }
  Label upload_location() const { return upload_location_; }
  Label upload_location_len() const { return upload_location_len_; }
  void emit();

 private:
  void emit_fixed(Label l);
  void emit_entity(Label l);
  void emit_redirect(Label l);
  // response_disk.cc
  void make_disk_data();
  void emit_disk(Label l);
  void emit_disk_redirect(Label l);
  void emit_stat_file();
  void emit_media_type();
  void emit_open_failed();
  // response_upload.cc
  void make_upload_data();
  void emit_upload(Label l);
  /// Inline: rdi = this connection's response scratch, iov[runtime] starts there.
  void scratch_start();
  /// Inline: copies `len` bytes of `text` to rdi (advanced). Clobbers rsi, rcx.
  void copy_text(Label text, size_t len);
  /// Inline: iov[runtime] ends at rdi, after a CR LF written there when `crlf`.
  void scratch_end(bool crlf);
  /// Inline: "Content-Range: bytes F-L/LEN" at rdi (advanced), F = `first`,
  /// L = first + r9 - 1, LEN = rax after `load_length`. Clobbers rax, rcx, rsi.
  void content_range(Reg first, const std::function<void()>& load_length);
  /// Inline: a 416's "Content-Range: bytes */LEN\r\nContent-Length: 0\r\n" at rdi,
  /// LEN = rax after `load_length` (`what` names it), and iov[runtime] ends
  /// there. Clobbers rax, rcx, rsi.
  void unsatisfied_range(const std::function<void()>& load_length, const std::string& what);
  /// Inline: rax = openat2(root_fds[site.root], disk_rel, &how_read, sizeof how_read).
  void open_below_root();
  /// "Location: ", laid out once for a directory's 301 and an upload's 201.
  Label location_text();
  /// Inline: call release_file (the connection's: close record.file).
  void close_file(const std::string& why);
  void emit_finish();
  void emit_choose_coding();
  void emit_etag_listed();
  void emit_parse_range();
  /// Inline: the 18 bytes of an ETag at `tag` and at rdx differ -> `differ`. Uses rax.
  void same_etag(Reg tag, Label differ);
  /// Inline: rsi past spaces and tabs, up to rdi. No other register.
  void skip_ows(const std::string& hint);
  /// iov[part] = { rsi-or-reg, len }.
  void set_part(IovPart p, Operand base, Operand len, const std::string& what);
  void status_line(Label text, size_t len, int status);
  /// Inline: iov[status] = the head of the response at r10.
  void head_part(const std::string& what);
  /// Inline: to `to` when r's low byte is one of `chars`.
  void jmp_if_one_of(Reg r, std::string_view chars, Label to);
  Runtime& rt_;
  const ResponseTable& t_;
  const RequestVars& req_;
  HttpDate date_;
  const Roots& roots_;
  NormalisedPath norm_;
  bool entities_ = false, redirects_ = false, disk_ = false, codings_ = false;
  Label disk_sites_, disk_text_, media_types_, media_lines_, file_stat_, disk_site_, disk_rel_, disk_rel_len_;
  Label etag_text_, modified_text_, content_length_text_, location_text_, status_200_, status_301_,
      hex_digits_, length_zero_text_, file_lowat_;
  Label stat_file_, media_type_, open_failed_, disk_redirect_, release_;
  Label upload_sites_, upload_text_, upload_location_, upload_location_len_;
  bool uploads_ = false;
  size_t media_count_ = 0, default_type_at_ = 0, default_type_len_ = 0;
  Label heads_, bodies_, responses_, reps_, prepare_, status_, body_bytes_, finish_;
  Label conn_close_, conn_keep10_, crlf_;
  Label status_304_, status_206_, status_416_, range_text_, length_text_, unsatisfied_text_;
  Label choose_coding_, etag_listed_, parse_range_, range_number_;
};

}  // namespace asmsrv
