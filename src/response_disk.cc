// The disk kind of response (see response.h): a file below a static site's
// root, opened when it is asked for. Everything about it that can be made at
// compile time is: the site's shared field lines, the media-type table, the
// index file's name and type. At run time: openat2 below the root, fstat, the
// validators (ETag and Last-Modified) from the file's size and times, the
// conditions and the range, then sendfile (Conn::flush).
#include <fmt/format.h>

#include "http.h"
#include "response.h"

namespace asmsrv {

using namespace linux;

namespace {

constexpr int kHttpDateBytes = 29;  // "Sun, 06 Nov 1994 08:49:37 GMT"
constexpr int kMediaEntryBytes = 24;  // the extension (16 bytes), the line's offset and length
constexpr int kMaxExtension = 16;

constexpr std::string_view kEtagText = "ETag: \"";
constexpr std::string_view kModifiedText = "Last-Modified: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
constexpr std::string_view kContentLength = "Content-Length: ";
constexpr std::string_view kLengthZero = "Content-Length: 0\r\n";
constexpr std::string_view kStatus200 = "HTTP/1.1 200 OK\r\n";
constexpr std::string_view kStatus301 = "HTTP/1.1 301 Moved Permanently\r\n";
// The scratch of a disk response starts with its validators, at fixed places.
constexpr int kEtagLineBytes = 7 + 16 + 3;                    // ETag: "<16 hex>" CR LF
constexpr int kEtagAt = 6;                                    // the ETag's opening quote
constexpr int kModifiedAt = kEtagLineBytes + 15;              // the date after "Last-Modified: "
constexpr int kValidatorBytes = kEtagLineBytes + static_cast<int>(kModifiedText.size());

std::string content_type_line(std::string_view type) { return fmt::format("Content-Type: {}\r\n", type); }

/// Bytes [at, at + 8) of `s` as a little-endian integer.
uint64_t le_word(const std::string& s, size_t at) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(s[at + i])) << (8 * i);
  return v;
}

}  // namespace

void Responses::make_disk_data() {
  std::string text;
  std::vector<Piece> sites;
  for (size_t i = 0; i < t_.disk_sites.size(); ++i) {
    const DiskSite& d = t_.disk_sites[i];
    uint64_t index_at = text.size();
    text += d.index + '\0';
    uint64_t type_at = text.size();
    std::string type = content_type_line(d.index_type);
    text += type;
    sites.push_back(Ints{4,
                         {static_cast<uint64_t>(d.root), d.prefix.size(), d.hidden ? 1u : 0u, index_at,
                          d.index.size() + 1, type_at, type.size(), 0},
                         fmt::format("{}: {}", i, d.prefix)});
  }
  disk_sites_ = b_.data("disk_sites", Section::rodata, std::move(sites),
                        fmt::format("the static sites read at run time, one {}-byte record each: root, prefix\n"
                                    "length, hidden, index name, index Content-Type line and its length",
                                    kSiteLayout.size),
                        kSiteLayout.size);
  disk_text_ = b_.bytes("disk_text", text, "the sites' index names and their Content-Type lines");
  for (size_t i = 0; i < kSiteLayout.decl.size(); ++i)
    b_.constant(std::string("site_") + kSiteLayout.decl[i].name, kSiteLayout.offset[i], kSiteLayout.decl[i].what);

  // The media types, by extension: lower case, at most 16 bytes, zero-padded
  // so that two qword compares match one.
  std::string lines;
  std::map<std::string, uint64_t> line_at;
  std::vector<Piece> entries;
  auto line_of = [&](std::string_view type) {
    std::string l = content_type_line(type);
    auto [it, fresh] = line_at.try_emplace(l, lines.size());
    if (fresh) lines += l;
    return std::pair{it->second, l.size()};
  };
  for (const auto& [ext, type] : media_types()) {
    if (ext.size() > static_cast<size_t>(kMaxExtension)) continue;
    std::string padded = ext;
    padded.resize(kMaxExtension, '\0');
    auto [at, len] = line_of(type);
    entries.push_back(Ints{8, {le_word(padded, 0), le_word(padded, 8)}, "." + ext});
    entries.push_back(Ints{4, {at, len}, type});
    ++media_count_;
  }
  std::tie(default_type_at_, default_type_len_) = line_of("application/octet-stream");
  media_types_ = b_.data("media_types", Section::rodata, std::move(entries),
                         fmt::format("{} extensions, {} bytes each: the extension in lower case, zero-padded\n"
                                     "to 16 bytes; the offset and length of its line in media_lines",
                                     media_count_, kMediaEntryBytes),
                         8);
  media_lines_ = b_.bytes("media_lines", lines, "the Content-Type lines of templates/mime.types");
  file_stat_ = b_.bss("file_stat", kStatBytes, "struct stat of the file being answered", 8);
  disk_site_ = b_.bss("disk_site", 8, "the disk_sites record of the request being answered");
  disk_rel_ = b_.bss("disk_rel", 8, "its path below the site's root, NUL-terminated (in norm_path)");
  disk_rel_len_ = b_.bss("disk_rel_len", 8, "its length; 0: the root itself");
  etag_text_ = b_.bytes("etag_text", std::string(kEtagText), "what a file's scratch starts with");
  modified_text_ = b_.bytes("modified_text", std::string(kModifiedText), "format_date fills in the date");
  content_length_text_ = b_.bytes("content_length_text", std::string(kContentLength), "");
  length_zero_text_ = b_.bytes("length_zero_text", std::string(kLengthZero), "");
  status_200_ = b_.bytes("status_200", std::string(kStatus200), "a file's status lines");
  status_301_ = b_.bytes("status_301", std::string(kStatus301), "");
  hex_digits_ = b_.bytes("hex_digits", "0123456789abcdef", "for the ETag");
  file_lowat_ = b_.data("file_lowat_bytes", Section::rodata,
                        {Fields{{{4, static_cast<uint64_t>(kFileNotsentLowat), "int: bytes"}}}},
                        "TCP_NOTSENT_LOWAT of a socket that sends files");
  stat_file_ = local("stat_file");
  media_type_ = local("media_type");
  open_failed_ = local("open_failed");
  disk_redirect_ = local("directory_redirect");
}

void Responses::emit_disk(Label l) {
  Label named = local("named");
  Label visible = local("visible");
  Label scan = local("hidden_scan");
  Label scan_next = local("hidden_next");
  Label regular = local("regular");
  Label index = local("index");
  Label typed = local("typed");
  Label forbidden = local("forbidden");
  Label no_index = local("no_index");
  Label conditions = local("conditions");
  Label no_inm = local("no_if_none_match");
  Label range_check = local("range");
  Label full = local("full");
  Label ranged = local("ranged");
  Label unsatisfiable = local("unsatisfiable");
  Label not_modified = local("not_modified");
  Label if_range_date = local("if_range_date");
  Label sized = local("sized");
  Label done = local("done");
  Label hex = local("hex_digit");
  block(l, "prepare_response: a file from disk", &kOpenat2,
        "fd = openat2(root_fds[site.root], path below the prefix, &how_read, sizeof how_read);\n"
        "   fstat(fd, &file_stat); a directory: its index (or 301 to its path with '/');\n"
        "   then 304, 206, 416 or 200 as for an entity, the body by sendfile",
        "The path is the one routing decoded and normalised: no \"..\", no \"//\", no\n"
        "%2F, no NUL. RESOLVE_BENEATH refuses what would still leave the root (a\n"
        "symbolic link pointing out, an absolute one); RESOLVE_NO_MAGICLINKS refuses\n"
        "/proc-style links. Names starting with '.' are 404 unless the site is\n"
        "\"hidden\". r10 = the response record: its head is the site's shared field\n"
        "lines (Accept-Ranges, the spec's headers).");
  mov(r32(Reg::rax), resp(Reg::r10, RespField::reps), "the site's number");
  op(Op::shl, r64(Reg::rax), imm(kSiteLayout.shift), fmt::format("* {}", kSiteLayout.size));
  lea(Reg::r11, disk_sites_);
  op(Op::add, r64(Reg::r11), r64(Reg::rax), "r11 = &disk_sites[n]");
  mov(var64(disk_site_), r64(Reg::r11));
  lea(Reg::rsi, heads_);
  mov(r32(Reg::rax), resp(Reg::r10, RespField::head));
  op(Op::add, r64(Reg::rsi), r64(Reg::rax));
  mov(r32(Reg::rdx), resp(Reg::r10, RespField::head_len));
  set_part(IovPart::fields, r64(Reg::rsi), r64(Reg::rdx), "the site's shared field lines");
  mov(iov_len(IovPart::runtime), imm(0));
  lea(Reg::rdi, norm_.path);
  mov(r64(Reg::rcx), var64(norm_.len));
  mov(mem_index(Width::b8, Reg::rdi, Reg::rcx), imm(0), "NUL-terminate the path for openat2");
  mov(r32(Reg::rax), site(Reg::r11, SiteField::prefix_len));
  op(Op::add, r64(Reg::rdi), r64(Reg::rax), "rdi = the path below the prefix");
  op(Op::sub, r64(Reg::rcx), r64(Reg::rax), "rcx = its length");
  mov(var64(disk_rel_), r64(Reg::rdi));
  mov(var64(disk_rel_len_), r64(Reg::rcx));
  op(Op::cmp, site(Reg::r11, SiteField::hidden), imm(0), "names starting with '.' served?");
  jmp(Op::jne, named);
  note("A segment starting with '.' (\".git\", \".env\"): as if it were not there.");
  mov(r64(Reg::rsi), r64(Reg::rdi));
  lea(Reg::r8, mem_index(Width::none, Reg::rdi, Reg::rcx), "r8 = the end");
  set(Reg::rdx, '/', "edx = the byte before: a segment starts");
  label(scan);
  op(Op::cmp, r64(Reg::rsi), r64(Reg::r8));
  jmp(Op::jae, named);
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rsi)});
  op(Op::cmp, r32(Reg::rdx), chr('/'));
  jmp(Op::jne, scan_next);
  op(Op::cmp, r32(Reg::rax), chr('.'));
  jmp(Op::jne, scan_next);
  set(Reg::rax, -kEnoent, "a hidden name: 404");
  jmp(Op::jmp, open_failed_);
  label(scan_next);
  mov(r32(Reg::rdx), r32(Reg::rax));
  op(Op::inc, r64(Reg::rsi));
  jmp(Op::jmp, scan);
  label(named);
  op(Op::test, r64(Reg::rcx), r64(Reg::rcx));
  jmp(Op::jnz, visible);
  mov(mem16(Reg::rdi), imm('.'), "the root itself: \".\"");
  label(visible);
  open_below_root();
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, open_failed_, "ENOENT 404, EACCES 403, EMFILE 503...");
  mov(conn(ConnField::file), r32(Reg::rax), "record.file: closed when its response is done");
  call(stat_file_, "eax = its type (S_IFMT bits), file_stat filled");
  op(Op::cmp, r32(Reg::rax), imm(kSIfreg), "a regular file?");
  jmp(Op::je, regular);
  op(Op::cmp, r32(Reg::rax), imm(kSIfdir), "a directory?");
  jmp(Op::jne, forbidden, "a FIFO, a device, a socket: not served");
  note("A directory: its URL must end in '/' (so that relative links in its index");
  note("resolve below it), else 301 there; then its index file, or 403 (no listings).");
  mov(r64(Reg::rcx), var64(disk_rel_len_));
  op(Op::test, r64(Reg::rcx), r64(Reg::rcx));
  jmp(Op::jz, index, "the site's root: its prefix ends in '/'");
  mov(r64(Reg::rsi), var64(disk_rel_));
  op(Op::cmp, mem_index(Width::b8, Reg::rsi, Reg::rcx, -1), chr('/'));
  jmp(Op::je, index);
  close_file("the directory is not needed");
  jmp(Op::jmp, disk_redirect_);
  label(index);
  close_file("the directory: its index is opened from the root");
  note("path = path + index name, in norm_path (sized for it): a link in the index's");
  note("name is then judged against the root, as a link anywhere else is.");
  mov(r64(Reg::r11), var64(disk_site_));
  mov(r64(Reg::rdi), var64(disk_rel_));
  op(Op::add, r64(Reg::rdi), var64(disk_rel_len_), "after the path's '/' (the root: over its \".\")");
  lea(Reg::rsi, disk_text_);
  mov(r32(Reg::rax), site(Reg::r11, SiteField::index));
  op(Op::add, r64(Reg::rsi), r64(Reg::rax), "the index's name");
  mov(r32(Reg::rcx), site(Reg::r11, SiteField::index_len), "its length, its NUL included");
  plain(Op::rep_movsb);
  open_below_root();
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, no_index);
  mov(conn(ConnField::file), r32(Reg::rax));
  call(stat_file_);
  op(Op::cmp, r32(Reg::rax), imm(kSIfreg), "the index must be a regular file");
  jmp(Op::jne, forbidden);
  mov(r64(Reg::r11), var64(disk_site_));
  lea(Reg::rsi, disk_text_);
  mov(r32(Reg::rax), site(Reg::r11, SiteField::index_type));
  op(Op::add, r64(Reg::rsi), r64(Reg::rax), "rsi = the index's Content-Type line");
  mov(r32(Reg::rcx), site(Reg::r11, SiteField::index_type_len));
  jmp(Op::jmp, typed);
  label(no_index);
  op(Op::cmp, r64(Reg::rax), imm(-kEnoent), "no index file: no listing either");
  jmp(Op::jne, open_failed_);
  set(Reg::rax, -kEacces, "403");
  jmp(Op::jmp, open_failed_);
  label(forbidden);
  close_file("");
  set(Reg::rax, -kEacces, "403");
  jmp(Op::jmp, open_failed_);
  label(regular);
  mov(r64(Reg::rsi), var64(disk_rel_));
  mov(r64(Reg::rcx), var64(disk_rel_len_));
  call(media_type_, "rsi, rcx = its Content-Type line, by the name's extension");
  label(typed);
  op(Op::push, r64(Reg::rsi), "the Content-Type line");
  op(Op::push, r64(Reg::rcx), "... and its length");

  next_block(local("validators"), "prepare_response: a file's ETag and Last-Modified", nullptr,
             "scratch = \"ETag: \\\"<mtime>-<size>\\\"\" CRLF \"Last-Modified: \" http_date(st_mtime) CRLF",
             "Made from fstat: the ETag's 16 hex digits are the modification time's\n"
             "seconds (8), then the size folded to 32 bits xor the time's nanoseconds\n"
             "xor the inode number's low half (8), so a file rewritten within a second,\n"
             "its size unchanged, still gets a new tag; and so does one renamed over it\n"
             "within the same tick of the file system's clock (a few ms: both have one\n"
             "time). A 304 sends these two lines; the other answers add theirs.");
  scratch_start();
  copy_text(etag_text_, kEtagText.size());
  lea(Reg::r8, file_stat_);
  mov(r64(Reg::rax), mem64(Reg::r8, kStSize), "st_size");
  mov(r64(Reg::rdx), r64(Reg::rax));
  op(Op::shr, r64(Reg::rdx), imm(32));
  op(Op::xor_, r32(Reg::rax), r32(Reg::rdx), "the size folded to 32 bits");
  op(Op::xor_, r32(Reg::rax), mem32(Reg::r8, kStMtimeNsec), "xor st_mtim.tv_nsec");
  op(Op::xor_, r32(Reg::rax), mem32(Reg::r8, kStIno), "xor st_ino's low half");
  mov(r64(Reg::rdx), mem64(Reg::r8, kStMtime), "st_mtim.tv_sec");
  op(Op::shl, r64(Reg::rdx), imm(32));
  op(Op::or_, r64(Reg::rax), r64(Reg::rdx), "rax = seconds:32, size ^ nsec ^ ino:32");
  lea(Reg::rsi, hex_digits_);
  set(Reg::rcx, 16, "16 hex digits, the highest first");
  label(hex);
  op(Op::ror, r64(Reg::rax), imm(60), "rotate left by 4: the next digit lowest");
  mov(r32(Reg::rdx), r32(Reg::rax));
  op(Op::and_, r32(Reg::rdx), imm(15));
  b_.emit(Op::movzx, {r32(Reg::rdx), mem_index(Width::b8, Reg::rsi, Reg::rdx)});
  mov(mem8(Reg::rdi), r8(Reg::rdx));
  op(Op::inc, r64(Reg::rdi));
  op(Op::dec, r32(Reg::rcx));
  jmp(Op::jnz, hex);
  mov(mem8(Reg::rdi), chr('"'));
  mov(mem16(Reg::rdi, 1), imm(0x0A0D), "CR LF");
  op(Op::add, r64(Reg::rdi), imm(3));
  copy_text(modified_text_, kModifiedText.size());
  op(Op::sub, r64(Reg::rdi), imm(static_cast<int64_t>(kModifiedText.size()) - 15), "rdi = its date");
  lea(Reg::r8, file_stat_);
  mov(r64(Reg::rax), mem64(Reg::r8, kStMtime));
  call(date_.format(), "the date, in place; keeps rdi");
  op(Op::add, r64(Reg::rdi), imm(static_cast<int64_t>(kModifiedText.size()) - 15), "rdi = past the two lines");

  next_block(conditions, "prepare_response: a file's conditions and range", nullptr,
             "if (If-None-Match ? etag_listed : If-Modified-Since == Last-Modified) 304;\n"
             "   else if (GET && Range && (!If-Range || it is the ETag or the date)) 206 or 416; else 200",
             "RFC 9110 13.2.2: If-Modified-Since counts only without If-None-Match, and\n"
             "here only when it is the Last-Modified date exactly, as nginx does by\n"
             "default: a client sends back the date it was given. r9 = the size;\n"
             "rdi = the end of the scratch so far; r11 = the scratch.");
  mov(r64(Reg::r11), iov_base(IovPart::runtime), "r11 = the scratch");
  lea(Reg::r8, file_stat_);
  mov(r64(Reg::r9), mem64(Reg::r8, kStSize), "r9 = st_size");
  // ZF = the field's value (kHttpDateBytes long) is the Last-Modified date exactly.
  auto same_date = [&](Label value) {
    op(Op::push, r64(Reg::rdi));
    mov(r64(Reg::rsi), var64(value));
    lea(Reg::rdi, mem(Width::none, Reg::r11, kModifiedAt), "the Last-Modified date");
    set(Reg::rcx, kHttpDateBytes);
    plain(Op::repe_cmpsb, "the same date?");
    op(Op::pop, r64(Reg::rdi));
  };
  op(Op::cmp, var64(req_.if_none_match_len), imm(0));
  jmp(Op::je, no_inm);
  op(Op::push, r64(Reg::rdi));
  mov(r64(Reg::rsi), var64(req_.if_none_match));
  mov(r64(Reg::rcx), var64(req_.if_none_match_len));
  lea(Reg::rdx, mem(Width::none, Reg::r11, kEtagAt), "rdx = the ETag, quotes included");
  call(etag_listed_, "eax = 1: listed (weak comparison)");
  op(Op::pop, r64(Reg::rdi));
  op(Op::test, r32(Reg::rax), r32(Reg::rax));
  jmp(Op::jnz, not_modified);
  jmp(Op::jmp, range_check, "If-None-Match given: If-Modified-Since is ignored");
  label(no_inm);
  op(Op::cmp, var64(req_.if_modified_since_len), imm(kHttpDateBytes));
  jmp(Op::jne, range_check);
  same_date(req_.if_modified_since);
  jmp(Op::je, not_modified);
  label(range_check);
  op(Op::cmp, var32(req_.method), imm(kGet));
  jmp(Op::jne, full, "HEAD ignores Range");
  op(Op::cmp, var64(req_.range_len), imm(0));
  jmp(Op::je, full);
  Label honour = local("honour_range");
  op(Op::cmp, var64(req_.if_range_len), imm(0));
  jmp(Op::je, honour);
  op(Op::cmp, var64(req_.if_range_len), imm(kEtagBytes), "If-Range: the ETag, compared strongly...");
  jmp(Op::jne, if_range_date);
  mov(r64(Reg::rsi), var64(req_.if_range));
  lea(Reg::rdx, mem(Width::none, Reg::r11, kEtagAt));
  same_etag(Reg::rsi, full);
  jmp(Op::jmp, honour);
  label(if_range_date);
  op(Op::cmp, var64(req_.if_range_len), imm(kHttpDateBytes), "... or the date, exactly");
  jmp(Op::jne, full);
  same_date(req_.if_range);
  jmp(Op::jne, full);
  label(honour);
  op(Op::push, r64(Reg::rdi));
  mov(r64(Reg::rsi), var64(req_.range));
  mov(r64(Reg::rcx), var64(req_.range_len));
  mov(r64(Reg::rdx), r64(Reg::r9), "the file's length");
  call(parse_range_, "eax = 0 ignore it, 1 satisfiable (rdx = first, rcx = last), 2 not");
  op(Op::pop, r64(Reg::rdi));
  op(Op::cmp, r32(Reg::rax), imm(1));
  jmp(Op::je, ranged);
  jmp(Op::ja, unsatisfiable);

  label(full);
  status_line(status_200_, kStatus200.size(), 200);
  zero(Reg::r8, "from the first byte");
  jmp(Op::jmp, sized);

  label(ranged);
  mov(r64(Reg::r8), r64(Reg::rdx), "r8 = the first byte");
  op(Op::sub, r64(Reg::rcx), r64(Reg::rdx));
  lea(Reg::r9, mem(Width::none, Reg::rcx, 1), "r9 = last - first + 1 bytes");
  status_line(status_206_, kStatus206.size(), 206);
  content_range(Reg::r8, [&] {
    lea(Reg::rax, file_stat_);
    mov(r64(Reg::rax), mem64(Reg::rax, kStSize));
  });
  mov(mem16(Reg::rdi), imm(0x0A0D), "CR LF");
  op(Op::add, r64(Reg::rdi), imm(2));

  label(sized);
  note("200 and 206: Content-Type, Content-Length; then the file from r8, r9 bytes.");
  op(Op::pop, r64(Reg::rcx), "the Content-Type line's length");
  op(Op::pop, r64(Reg::rsi), "... and the line");
  plain(Op::rep_movsb);
  copy_text(content_length_text_, kContentLength.size());
  mov(r64(Reg::rax), r64(Reg::r9));
  call(rt_.append_u64(), "the bytes sent");
  scratch_end(true);
  mov(conn(ConnField::file_off), r64(Reg::r8), "sendfile starts there");
  mov(conn(ConnField::file_left), r64(Reg::r9), "... and sends this much, after the parts");
  Label get = local("get");
  op(Op::cmp, var32(req_.method), imm(kHeadMethod), "HEAD: the same head, no body");
  jmp(Op::jne, get);
  close_file("");
  jmp(Op::jmp, done);
  label(get);
  op(Op::cmp, conn(ConnField::file_lowat), imm(0), "the socket's first file?");
  jmp(Op::jne, done);
  mov(conn(ConnField::file_lowat), imm(1));
  note(fmt::format("TCP_NOTSENT_LOWAT {} MiB for this socket, so that sendfile moves a file in", kFileNotsentLowat >> 20));
  note("one call (at the listener's 128 KiB it took 6, and three times the CPU), and");
  note("TCP_NODELAY, so that a file's last segment does not wait for an ACK (Nagle).");
  mov(r32(Reg::rdi), conn(ConnField::fd));
  rt_.setsockopt(Reg::rdi, "record.fd",
                 {kIpprotoTcp, "IPPROTO_TCP", kTcpNotsentLowat, "TCP_NOTSENT_LOWAT", kIntBytes, "sizeof(int)"},
                 file_lowat_, "file_lowat_bytes");
  mov(r32(Reg::rdi), conn(ConnField::fd));
  rt_.setsockopt(Reg::rdi, "record.fd",
                 {kIpprotoTcp, "IPPROTO_TCP", kTcpNodelay, "TCP_NODELAY", kIntBytes, "sizeof(int)"},
                 file_lowat_, "file_lowat_bytes: not 0, so on");
  jmp(Op::jmp, done, "a failure only costs speed");

  label(not_modified);
  op(Op::add, r64(Reg::rsp), imm(16), "the Content-Type line is not sent");
  status_line(status_304_, kStatus304.size(), 304);
  lea(Reg::rdi, mem(Width::none, Reg::r11, kValidatorBytes), "only the ETag and Last-Modified");
  scratch_end(false);
  close_file("no body");
  jmp(Op::jmp, done);

  label(unsatisfiable);
  op(Op::add, r64(Reg::rsp), imm(16), "the Content-Type line is not sent");
  status_line(status_416_, kStatus416.size(), 416);
  unsatisfied_range([&] { mov(r64(Reg::rax), r64(Reg::r9)); }, "the file's length");
  close_file("no body");
  label(done);
  zero(Reg::r8, "no body in memory: a file goes after the parts");
  zero(Reg::r9);
  jmp(Op::jmp, finish_);
}

void Responses::open_below_root() {
  mov(r64(Reg::r11), var64(disk_site_));
  mov(r32(Reg::rax), site(Reg::r11, SiteField::root));
  op(Op::shl, r32(Reg::rax), imm(2), "4 bytes a descriptor");
  lea(Reg::rdx, roots_.fds());
  mov(r32(Reg::rdi), mem_index(Width::b32, Reg::rdx, Reg::rax), "dirfd = root_fds[site.root]");
  mov(r64(Reg::rsi), var64(disk_rel_), "pathname: relative to it");
  lea(Reg::rdx, roots_.how_read(), "how: O_RDONLY, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS");
  set(Reg::r10, kOpenHowBytes, "size");
  sys(kOpenat2);
}

void Responses::close_file(const std::string& why) {
  call(release_, why.empty() ? "release_file: close the file" : why);
}

void Responses::emit_disk_redirect(Label l) {
  block(l, "prepare_response: a directory without its '/'", nullptr,
        "scratch = \"Location: \" path \"/\" query CRLF \"Content-Length: 0\" CRLF; 301",
        "The path as the request wrote it (a valid URI, whatever it escapes), so\n"
        "that relative links in the directory's index resolve below it. The\n"
        "scratch holds request_bytes and more: the path and query always fit.");
  status_line(status_301_, kStatus301.size(), 301);
  scratch_start();
  copy_text(location_text(), kLocation.size());
  mov(r64(Reg::rsi), var64(req_.path));
  mov(r64(Reg::rcx), var64(req_.path_len));
  plain(Op::rep_movsb, "the path");
  mov(mem8(Reg::rdi), chr('/'));
  op(Op::inc, r64(Reg::rdi));
  mov(r64(Reg::rsi), var64(req_.query));
  mov(r64(Reg::rcx), var64(req_.query_len));
  plain(Op::rep_movsb, "the query, from its '?', or nothing");
  mov(mem16(Reg::rdi), imm(0x0A0D), "CR LF");
  op(Op::add, r64(Reg::rdi), imm(2));
  copy_text(length_zero_text_, kLengthZero.size());
  scratch_end(false);
  zero(Reg::r9, "no body");
  jmp(Op::jmp, finish_);
}

void Responses::emit_stat_file() {
  block(stat_file_, "subroutine stat_file(rbx = record)", &kFstat,
        "if (fstat(record.file, &file_stat) < 0) return 0; return file_stat.st_mode & S_IFMT",
        "eax = the file's type, 0 when fstat fails (then it is refused as not a\n"
        "regular file). Clobbers rax, rcx, rsi, rdi, r11.");
  mov(r32(Reg::rdi), conn(ConnField::file));
  lea(Reg::rsi, file_stat_);
  sys(kFstat);
  Label ok = local("ok");
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jns, ok);
  zero(Reg::rax);
  ret();
  label(ok);
  lea(Reg::rsi, file_stat_);
  mov(r32(Reg::rax), mem32(Reg::rsi, kStMode), "st_mode");
  op(Op::and_, r32(Reg::rax), imm(kSIfmt), "S_IFMT");
  ret();
}

void Responses::emit_media_type() {
  Label back = local("back");
  Label none = local("none");
  Label lower = local("lower");
  Label kept = local("kept");
  Label find = local("find");
  Label next = local("next");
  block(media_type_, "subroutine media_type(rsi = a file's path, rcx = its length)", nullptr,
        "ext = after the last '.' of the last segment; rsi, rcx = media_lines[ext] or application/octet-stream",
        fmt::format("The extension compares without case (\"LOGO.PNG\" is image/png). One pass\n"
                    "over the {} extensions of templates/mime.types, two compares each.\n"
                    "Clobbers rax, rdx, rdi, r8, r9.",
                    media_count_));
  lea(Reg::rdi, mem_index(Width::none, Reg::rsi, Reg::rcx), "rdi = the end");
  mov(r64(Reg::rdx), r64(Reg::rdi));
  label(back);
  op(Op::cmp, r64(Reg::rdx), r64(Reg::rsi));
  jmp(Op::je, none, "no '.'");
  op(Op::dec, r64(Reg::rdx));
  b_.emit(Op::movzx, {r32(Reg::rax), mem8(Reg::rdx)});
  op(Op::cmp, r32(Reg::rax), chr('/'));
  jmp(Op::je, none, "no '.' in the last segment");
  op(Op::cmp, r32(Reg::rax), chr('.'));
  jmp(Op::jne, back);
  op(Op::inc, r64(Reg::rdx), "rdx = the extension");
  mov(r64(Reg::rcx), r64(Reg::rdi));
  op(Op::sub, r64(Reg::rcx), r64(Reg::rdx));
  jmp(Op::jz, none, "a name ending in '.'");
  op(Op::cmp, r64(Reg::rcx), imm(kMaxExtension));
  jmp(Op::ja, none, "longer than any known");
  op(Op::sub, r64(Reg::rsp), imm(kMaxExtension), "the extension in lower case, zero-padded");
  mov(mem64(Reg::rsp), imm(0));
  mov(mem64(Reg::rsp, 8), imm(0));
  zero(Reg::r8);
  label(lower);
  b_.emit(Op::movzx, {r32(Reg::rax), mem_index(Width::b8, Reg::rdx, Reg::r8)});
  lea(Reg::r9, mem(Width::none, Reg::rax, -'A'));
  op(Op::cmp, r32(Reg::r9), imm(25), "'A' to 'Z'?");
  jmp(Op::ja, kept);
  op(Op::or_, r32(Reg::rax), imm(0x20), "to lower case");
  label(kept);
  mov(mem_index(Width::b8, Reg::rsp, Reg::r8), r8(Reg::rax));
  op(Op::inc, r64(Reg::r8));
  op(Op::cmp, r64(Reg::r8), r64(Reg::rcx));
  jmp(Op::jb, lower);
  mov(r64(Reg::rax), mem64(Reg::rsp));
  mov(r64(Reg::rdx), mem64(Reg::rsp, 8));
  op(Op::add, r64(Reg::rsp), imm(kMaxExtension));
  lea(Reg::rsi, media_types_);
  set(Reg::rcx, static_cast<int64_t>(media_count_));
  label(find);
  op(Op::cmp, r64(Reg::rax), mem64(Reg::rsi));
  jmp(Op::jne, next);
  op(Op::cmp, r64(Reg::rdx), mem64(Reg::rsi, 8));
  jmp(Op::jne, next);
  mov(r32(Reg::rcx), mem32(Reg::rsi, 20), "its line's length");
  mov(r32(Reg::rax), mem32(Reg::rsi, 16), "... and offset");
  lea(Reg::rsi, media_lines_);
  op(Op::add, r64(Reg::rsi), r64(Reg::rax));
  ret();
  label(next);
  op(Op::add, r64(Reg::rsi), imm(kMediaEntryBytes));
  op(Op::dec, r32(Reg::rcx));
  jmp(Op::jnz, find);
  label(none);
  lea(Reg::rsi, media_lines_);
  op(Op::add, r64(Reg::rsi), imm(static_cast<int64_t>(default_type_at_)), "application/octet-stream");
  set(Reg::rcx, static_cast<int64_t>(default_type_len_));
  ret();
}

void Responses::emit_open_failed() {
  block(open_failed_, "prepare_response: a file that cannot be served", nullptr,
        "switch (-rax) { ENOENT, ENOTDIR, ENAMETOOLONG: 404; EACCES, EPERM, ELOOP, EXDEV: 403;\n"
        "   EMFILE, ENFILE, ENOMEM: 503; default: 500 }; prepare_response(that)",
        "rax = -errno of openat2 (or one chosen above). ELOOP and EXDEV are what\n"
        "RESOLVE_BENEATH and RESOLVE_NO_MAGICLINKS answer for a link that leaves the\n"
        "root. Out of descriptors is 503: the server goes on, and the client may\n"
        "retry. No file is open here.");
  answer_errno({{"missing", {kEnoent, kEnotdir, kEnametoolong}, t_.not_found, "404: not_found"},
                {"forbidden", {kEacces, kEperm, kEloop, kExdev}, t_.forbidden, "403"},
                {"unavailable", {kEmfile, kEnfile, kEnomem}, t_.unavailable, "503"}},
               t_.server_error, "500", prepare_);
}

}  // namespace asmsrv
