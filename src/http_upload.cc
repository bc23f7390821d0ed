// Uploads: a PUT or POST routed to an upload stores its body as a file below
// the upload's root. The body goes to a temporary file (".upload-PID-N",
// which static sites never serve: its name starts with '.'), created with
// O_EXCL and RESOLVE_BENEATH; once all of it is written (and fsynced, when
// asked), renameat2 gives it its name, with RENAME_NOREPLACE unless the
// upload overwrites. A reader never sees a partial file, and a body that
// does not end (the client leaves, a deadline passes, an error) leaves
// nothing: its temporary file is removed (discard_upload, which the drivers
// reach through release_file on every close).
//
// The request's head stays at the start of the buffer while the body passes
// through the rest of it: the request variables are shared by every
// connection of an event loop, so the head is parsed again at the end, for
// the name, the answer and the log.
#include <fmt/format.h>

#include "http_conn.h"

namespace asmsrv {

using namespace linux;

namespace {

constexpr int kPut = static_cast<int>(Method::PUT);
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kTempPrefix = ".upload-";  // 8 bytes: one qword store
constexpr uint64_t kCreateFlags = kOWronly | kOCreat | kOExcl | kONofollow | kOCloexec;
constexpr int kTempNameBytes = 64;  // ".upload-", two numbers, a '-' and a NUL

}  // namespace

void HttpConn::emit_upload() {
  static_assert(kTempPrefix.size() == 8);
  upload_counter_ = b_.bss("upload_counter", 8, "uploads started by this process: N of .upload-PID-N");
  upload_temp_ = b_.bss("upload_temp", kTempNameBytes, "a temporary file's name, NUL-terminated");
  size_t longest = 0;
  for (const UploadSite& u : responses_.routes().upload_sites) longest = std::max(longest, u.prefix.size());
  upload_name_ = b_.bss("upload_name", longest + kTempNameBytes,
                        "POST: the prefix and the name made for the body (time-PID-N), NUL-terminated");
  how_create_ = b_.bss("how_create", kOpenHowBytes, "struct open_how of a temporary file: its mode is the upload's", 8);
  continue_text_ = b_.bytes("continue_text", std::string(kContinue), "the interim answer to Expect: 100-continue");
  emit_upload_begin();
  emit_upload_received();
  emit_upload_store();
  emit_upload_end();
  emit_upload_site();
  emit_chunk_scan(upload_chunks_, true);
  emit_upload_names();
  emit_discard_upload();
}

void HttpConn::emit_upload_begin() {
  const RequestVars& v = req_;
  const ResponseTable& t = responses_.routes();
  NormalisedPath norm = responses_.norm();
  Label unnamed = local("unnamed");
  Label check = local("check_name");
  Label named = local("named");
  Label bad_name = local("bad_name");
  Label sized = local("size_ok");
  Label too_large = local("too_large");
  Label coded = local("coded");
  Label open_failed = local("open_failed");
  Label chunked = local("chunked");
  Label framed = local("framed");
  Label no_expect = local("no_expect");
  block(upload_begin_, "an upload: check the name and the size, create the temporary file", &kOpenat2,
        "name = path below the prefix; if (bad name) 400; if (gzip, chunked) 501;\n"
        "   if (Content-Length > max_bytes) 413;\n"
        "   record.file = openat2(root, \".upload-PID-N\", { O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, mode,\n"
        "   RESOLVE_BENEATH }); Expect: 100-continue: write(fd, \"100 Continue\"); state = uploading",
        "eax = the upload's response. A name is one segment of the decoded path:\n"
        "no '/' (routing refused %2F already), no leading '.', no control\n"
        "character, at most 255 bytes (NAME_MAX); PUT needs one, POST without one gets a new name at the end.\n"
        "O_EXCL: a temporary file is always new, never another's; RESOLVE_BENEATH\n"
        "and O_NOFOLLOW: nothing outside the root is written. The body's bytes\n"
        "already here are stored next (upload_store).");
  mov(conn(ConnField::upload), r32(Reg::rax), "the upload, for the rest of the body");
  call(upload_site_, "r11 = its upload_sites record");
  lea(Reg::rdi, norm.path);
  mov(r64(Reg::rcx), var64(norm.len));
  mov(r32(Reg::rax), upload(Reg::r11, UploadField::prefix_len));
  op(Op::add, r64(Reg::rdi), r64(Reg::rax), "rdi = the name");
  op(Op::sub, r64(Reg::rcx), r64(Reg::rax), "rcx = its length");
  jmp(Op::jz, unnamed);
  op(Op::cmp, r64(Reg::rcx), imm(kNameMax), "longer than NAME_MAX: renameat2 would fail, after the body");
  jmp(Op::ja, bad_name);
  op(Op::cmp, mem8(Reg::rdi), chr('.'), "\".x\": hidden, and \".\" or \"..\" are no names");
  jmp(Op::je, bad_name);
  label(check);
  b_.emit(Op::movzx, {r32(Reg::rax), mem_index(Width::b8, Reg::rdi, Reg::rcx, -1)}, "from the last byte");
  op(Op::cmp, r32(Reg::rax), chr('/'), "a second segment");
  jmp(Op::je, bad_name);
  op(Op::cmp, r32(Reg::rax), imm(0x20), "a control character");
  jmp(Op::jb, bad_name);
  op(Op::cmp, r32(Reg::rax), imm(0x7f), "DEL");
  jmp(Op::je, bad_name);
  op(Op::dec, r64(Reg::rcx));
  jmp(Op::jnz, check);
  jmp(Op::jmp, named);
  label(unnamed);
  op(Op::cmp, var32(v.method), imm(kPut), "PUT names what it stores");
  jmp(Op::je, bad_name);
  label(named);
  op(Op::cmp, var32(v.te_coded), imm(0), "a coding before chunked (gzip, chunked)?");
  jmp(Op::jne, coded);
  op(Op::cmp, var32(v.te), imm(kTeChunked), "a chunked body is checked as it comes");
  jmp(Op::je, sized);
  mov(r64(Reg::rax), upload(Reg::r11, UploadField::max_bytes));
  op(Op::cmp, var64(v.content_length), r64(Reg::rax), "over max_bytes?");
  jmp(Op::ja, too_large);
  label(sized);
  lea(Reg::rdi, how_create_);
  set(Reg::rax, static_cast<int64_t>(kCreateFlags));
  mov(mem64(Reg::rdi), r64(Reg::rax), "how.flags = O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC");
  mov(r32(Reg::rax), upload(Reg::r11, UploadField::mode));
  mov(mem64(Reg::rdi, 8), r64(Reg::rax), "how.mode = the upload's");
  mov(mem64(Reg::rdi, 16), imm(kResolveBeneath), "how.resolve = RESOLVE_BENEATH");
  op(Op::inc, var64(upload_counter_));
  mov(r64(Reg::rax), var64(upload_counter_));
  mov(conn(ConnField::upload_id), r64(Reg::rax), "N: a temporary file is open from now on");
  call(upload_temp_name_, "upload_temp = \".upload-PID-N\"");
  call(upload_site_, "eax = the root's descriptor");
  mov(r32(Reg::rdi), r32(Reg::rax), "dirfd = the root");
  lea(Reg::rsi, upload_temp_, "pathname");
  lea(Reg::rdx, how_create_, "how");
  set(Reg::r10, kOpenHowBytes, "size");
  sys(kOpenat2);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, open_failed);
  mov(conn(ConnField::file), r32(Reg::rax), "record.file = the temporary file");
  mov(r64(Reg::rax), var64(v.head_len));
  mov(conn(ConnField::consume), r64(Reg::rax), "the body starts after the head, which stays");
  mov(conn(ConnField::body_total), imm(0));
  op(Op::cmp, var32(v.te), imm(kTeChunked));
  jmp(Op::je, chunked);
  mov(conn(ConnField::chunk), imm(kChunkNone));
  mov(r64(Reg::rax), var64(v.content_length));
  mov(conn(ConnField::discard), r64(Reg::rax), "the body's bytes still to store");
  jmp(Op::jmp, framed);
  label(chunked);
  mov(conn(ConnField::chunk), imm(kChunkSize), "its first size line comes first");
  mov(conn(ConnField::chunk_digits), imm(0));
  mov(conn(ConnField::discard), imm(0));
  label(framed);
  op(Op::cmp, var32(v.expect), imm(kExpectContinue), "Expect: 100-continue?");
  jmp(Op::jne, no_expect);
  note("The client waits for it before it sends the body. An empty socket buffer");
  note("takes these 25 bytes; if it cannot, the client sends the body after its");
  note("own wait anyway (RFC 9110 10.1.1).");
  mov(r32(Reg::rdi), conn(ConnField::fd));
  lea(Reg::rsi, continue_text_);
  set(Reg::rdx, static_cast<int64_t>(kContinue.size()));
  sys(kWrite);
  label(no_expect);
  mov(conn(ConnField::state), imm(kConnUploading), "storing the body");
  set_deadline(spec_.limits.body_timeout_ms, "body_timeout_ms for all of it");
  jmp(Op::jmp, upload_store_, "what of it is here already");

  label(bad_name);
  set(Reg::rax, t.bad_request, "400: no name to store under");
  jmp(Op::jmp, respond_);
  label(too_large);
  set(Reg::rax, t.content_too_large, "413: over max_bytes");
  jmp(Op::jmp, respond_);
  label(coded);
  set(Reg::rax, t.not_implemented, "501: a transfer coding we cannot undo (RFC 9112 6.1)");
  jmp(Op::jmp, respond_);
  label(open_failed);
  Label not_stale = local("not_stale");
  op(Op::cmp, r64(Reg::rax), imm(-kEexist), "left by a worker that was killed, with the same pid?");
  jmp(Op::jne, not_stale);
  note("(A container's server restarts with the same pids.) The next N: each");
  note("stale file is passed once, N only grows.");
  call(upload_site_, "r11 = the upload again: syscall took r11");
  jmp(Op::jmp, sized);
  label(not_stale);
  mov(conn(ConnField::upload_id), imm(0), "nothing was created");
  answer_errno({{"full", {kEnospc, kEdquot}, t.insufficient_storage, "507"},
                {"busy", {kEmfile, kEnfile, kEnomem}, t.unavailable, "503: the client may retry"},
                {"denied", {kEacces, kEperm, kErofs}, t.forbidden, "403: the root is not writable"}},
               t.upload_failed, "500, closing: the body is not read", respond_);
}

void HttpConn::emit_upload_received() {
  block(upload_received_, "an upload: n more bytes of its body", nullptr, "len += n; upload_store()",
        "read_window put them after the head (len was consume).");
  mov(r64(kBuf), conn(ConnField::buf), "rbp = the buffer");
  mov(r32(kBufLen), conn(ConnField::len));
  op(Op::add, r64(kBufLen), r64(Reg::rax), "r14 = len + n");
  mov(conn(ConnField::len), r32(kBufLen));
  falls_into(upload_store_);
}

void HttpConn::emit_upload_store() {
  const ResponseTable& t = responses_.routes();
  Label chunked = local("chunked");
  Label fits = local("fits");
  Label more = local("more");
  Label failed = local("write_failed");
  Label malformed = local("malformed");
  Label full = local("full");
  Label too_large = local("too_large");
  Label answer_now = local("answer_now");
  block(upload_store_, "an upload: write the body's bytes in the buffer to the file", nullptr,
        "sized: n = min(len - consume, discard); write(file, buf + consume, n); discard -= n;\n"
        "   chunked: upload_chunks(), write the data it kept;  the end: upload_end();\n"
        "   else len = consume, return want_read",
        "rbp = the buffer, r14 = its length; the body's bytes are buf[consume,\n"
        "len). A write error, a malformed chunked body or one over max_bytes ends\n"
        "the upload at once, with Connection: close: the rest of the body is not\n"
        "read (the connection lingers).");
  op(Op::cmp, conn(ConnField::chunk), imm(kChunkNone), "chunked?");
  jmp(Op::jne, chunked);
  mov(r64(Reg::rsi), conn(ConnField::consume));
  mov(r64(Reg::rdx), r64(kBufLen));
  op(Op::sub, r64(Reg::rdx), r64(Reg::rsi), "the bytes here");
  op(Op::cmp, r64(Reg::rdx), conn(ConnField::discard));
  jmp(Op::jbe, fits);
  mov(r64(Reg::rdx), conn(ConnField::discard), "the body ends before them: the rest is the next request");
  label(fits);
  lea(Reg::r8, mem_index(Width::none, Reg::rsi, Reg::rdx), "r8 = where the body's bytes here end");
  op(Op::sub, conn(ConnField::discard), r64(Reg::rdx));
  write_to_file();
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, failed);
  op(Op::cmp, conn(ConnField::discard), imm(0), "all of it?");
  jmp(Op::jne, more);
  set(Reg::rax, -1, "-1: stored");
  jmp(Op::jmp, upload_end_);

  label(chunked);
  call(upload_chunks_, "rax = the body's end, 0 more to come, -1 malformed, -2 too large; r11 = the data's end");
  op(Op::push, r64(Reg::rax));
  mov(r64(Reg::rsi), conn(ConnField::consume));
  mov(r64(Reg::rdx), r64(Reg::r11));
  op(Op::sub, r64(Reg::rdx), r64(Reg::rsi), "the data kept");
  write_to_file();
  mov(r64(Reg::rcx), r64(Reg::rax));
  op(Op::pop, r64(Reg::r8));
  op(Op::test, r64(Reg::rcx), r64(Reg::rcx));
  mov(r64(Reg::rax), r64(Reg::rcx));
  jmp(Op::js, failed);
  op(Op::cmp, r64(Reg::r8), imm(-1));
  jmp(Op::je, malformed);
  op(Op::cmp, r64(Reg::r8), imm(-2));
  jmp(Op::je, too_large);
  op(Op::test, r64(Reg::r8), r64(Reg::r8));
  jmp(Op::jz, more);
  set(Reg::rax, -1, "-1: stored; r8 = its end");
  jmp(Op::jmp, upload_end_);

  label(more);
  mov(r64(Reg::rax), conn(ConnField::consume));
  mov(conn(ConnField::len), r32(Reg::rax), "written: the buffer holds the head again");
  answer(kActRead);

  label(failed);
  note("rax = -errno of write: EFBIG (RLIMIT_FSIZE, or the file system's largest");
  note("file) is 413; no room is 507; anything else 500.");
  jmp_on_errno({kEfbig}, too_large);
  jmp_on_errno({kEnospc, kEdquot}, full);
  set(Reg::rax, t.upload_failed, "500");
  jmp(Op::jmp, answer_now);
  label(full);
  set(Reg::rax, t.insufficient_storage, "507");
  jmp(Op::jmp, answer_now);
  label(too_large);
  set(Reg::rax, t.content_too_large, "413");
  jmp(Op::jmp, answer_now);
  label(malformed);
  set(Reg::rax, t.bad_request, "400");
  label(answer_now);
  mov(r64(Reg::r8), r64(kBufLen), "the whole buffer goes");
  jmp(Op::jmp, upload_end_);
}

void HttpConn::emit_upload_end() {
  const RequestVars& v = req_;
  const ResponseTable& t = responses_.routes();
  NormalisedPath norm = responses_.norm();
  Label stored = local("stored");
  Label synced = local("synced");
  Label unnamed = local("unnamed");
  Label rename = local("rename");
  Label renamed = local("renamed");
  Label failed = local("failed");
  Label answered = local("answered");
  block(upload_end_, "an upload's end: fsync, then rename into place, or remove", &kRenameat2,
        "parse_request() again; if (stored) { if (fsync) fsync(file); renameat2(root, temp, root, name,\n"
        "   overwrite ? 0 : RENAME_NOREPLACE) }; release_file() (a body not stored: discard_upload); upload_answer()",
        "eax = -1 when the whole body is written, or the response that ends the\n"
        "upload; r8 = where the body ends in the buffer. The head is parsed again:\n"
        "the request variables may be another connection's by now. The name is\n"
        "the path's last segment (PUT), or made now (POST): time-PID-N, which\n"
        "no other worker or earlier run has made. An existing name is 409\n"
        "unless the upload overwrites; a directory is 409 in any case.");
  op(Op::push, r64(Reg::r8));
  op(Op::push, r64(Reg::rax));
  mov(r64(Reg::rax), conn(ConnField::consume));
  mov(var64(v.head_len), r64(Reg::rax), "the head, still at the buffer's start");
  call(parse_.parse_request(), "the request variables are this request's again");
  mov(var32(v.expect), imm(kExpectNone), "its 100 Continue is sent: the answer keeps the connection");
  op(Op::pop, r64(Reg::rax));
  op(Op::cmp, r64(Reg::rax), imm(-1));
  jmp(Op::je, stored);
  jmp(Op::jmp, answered);

  label(stored);
  call(upload_site_, "r11 = the upload, eax = its root");
  op(Op::test, upload(Reg::r11, UploadField::flags), imm(kUploadFsync), "fsync?");
  jmp(Op::jz, synced);
  mov(r32(Reg::rdi), conn(ConnField::file));
  sys(kFsync);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, failed);
  label(synced);
  call(upload_temp_name_, "upload_temp = its temporary name");
  call(upload_site_);
  lea(Reg::rdi, norm.path);
  mov(r64(Reg::rcx), var64(norm.len));
  mov(mem_index(Width::b8, Reg::rdi, Reg::rcx), imm(0), "NUL-terminate the path for renameat2");
  mov(r32(Reg::rdx), upload(Reg::r11, UploadField::prefix_len));
  op(Op::add, r64(Reg::rdi), r64(Reg::rdx), "the name below the prefix");
  op(Op::cmp, r64(Reg::rcx), r64(Reg::rdx));
  jmp(Op::je, unnamed, "none: POST, which gets one");
  mov(r64(Reg::r10), r64(Reg::rdi), "newpath = the path's last segment");
  mov(r64(Reg::rax), var64(v.path));
  mov(var64(responses_.upload_location()), r64(Reg::rax), "Location: the request's path");
  mov(r64(Reg::rax), var64(v.path_len));
  mov(var64(responses_.upload_location_len()), r64(Reg::rax));
  jmp(Op::jmp, rename);
  label(unnamed);
  lea(Reg::rdi, upload_name_);
  mov(var64(responses_.upload_location()), r64(Reg::rdi), "Location: the prefix and the new name");
  lea(Reg::rsi, responses_.upload_text());
  mov(r32(Reg::rax), upload(Reg::r11, UploadField::prefix));
  op(Op::add, r64(Reg::rsi), r64(Reg::rax));
  mov(r32(Reg::rcx), upload(Reg::r11, UploadField::prefix_len));
  plain(Op::rep_movsb, "the prefix");
  op(Op::push, r64(Reg::rdi), "the name starts here");
  op(Op::sub, r64(Reg::rsp), imm(16), "struct timespec");
  set(Reg::rdi, kClockRealtime, "CLOCK_REALTIME: seconds since 1970, across restarts");
  mov(r64(Reg::rsi), r64(Reg::rsp));
  sys(kClockGettime);
  op(Op::pop, r64(Reg::rax), "tv_sec");
  op(Op::add, r64(Reg::rsp), imm(8));
  mov(r64(Reg::rdi), mem64(Reg::rsp), "the name");
  call(rt_.append_u64());
  mov(mem8(Reg::rdi), chr('-'));
  op(Op::inc, r64(Reg::rdi));
  call(upload_suffix_, "\"PID-N\", NUL-terminated");
  mov(r64(Reg::rax), r64(Reg::rdi));
  lea(Reg::rdx, upload_name_);
  op(Op::sub, r64(Reg::rax), r64(Reg::rdx));
  mov(var64(responses_.upload_location_len()), r64(Reg::rax));
  op(Op::pop, r64(Reg::r10), "newpath = the new name");
  label(rename);
  call(upload_site_, "r11 = the upload, eax = its root");
  mov(r32(Reg::rdi), r32(Reg::rax), "olddirfd = the root");
  lea(Reg::rsi, upload_temp_, "oldpath = the temporary file");
  mov(r32(Reg::rdx), r32(Reg::rax), "newdirfd = the root");
  set(Reg::r8, kRenameNoreplace, "flags = RENAME_NOREPLACE: an existing name is kept...");
  op(Op::test, upload(Reg::r11, UploadField::flags), imm(kUploadOverwrite));
  jmp(Op::jz, renamed);
  zero(Reg::r8, "... unless the upload overwrites (still atomically)");
  label(renamed);
  sys(kRenameat2);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, failed);
  mov(conn(ConnField::upload_id), imm(0), "stored: nothing to remove");
  call(release(), "close(record.file)");
  mov(r32(Reg::rax), conn(ConnField::upload), "201 Created");
  jmp(Op::jmp, upload_answer_);

  label(failed);
  note("rax = -errno of fsync or renameat2.");
  answer_errno({{"conflict", {kEexist, kEisdir, kEnotempty}, t.conflict, "409"},
                {"full", {kEnospc, kEdquot}, t.insufficient_storage, "507"}},
               t.upload_failed, "500", answered);
  label(answered);
  op(Op::push, r64(Reg::rax));
  call(release(), "the temporary file goes (discard_upload), and its descriptor");
  op(Op::pop, r64(Reg::rax));
  falls_into(upload_answer_);

  block(upload_answer_, "an upload's answer", nullptr,
        "consume = r8 (on the stack); prepare the answer; return send",
        "eax = the response. Afterwards the head and the body go from the buffer;\n"
        "what follows (a pipelined request) stays.");
  op(Op::pop, r64(Reg::r8));
  mov(conn(ConnField::consume), r64(Reg::r8), "the head, the body, or all the buffer after an error");
  mov(conn(ConnField::discard), imm(0));
  mov(conn(ConnField::chunk), imm(kChunkNone));
  prepare_answer();
  queue_answer();
}

void HttpConn::emit_upload_site() {
  block(upload_site_, "subroutine upload_site(rbx = record)", nullptr,
        "r11 = &upload_sites[responses[record.upload].reps]; eax = root_fds[r11->root]",
        "The upload a body is stored for, and its root's descriptor. Clobbers rcx.");
  mov(r32(Reg::rax), conn(ConnField::upload));
  op(Op::shl, r64(Reg::rax), imm(kRespLayout.shift));
  lea(Reg::r11, responses_.table());
  op(Op::add, r64(Reg::r11), r64(Reg::rax), "its response");
  mov(r32(Reg::rax), resp(Reg::r11, RespField::reps), "the upload's number");
  op(Op::shl, r64(Reg::rax), imm(kUploadLayout.shift));
  lea(Reg::r11, responses_.upload_sites());
  op(Op::add, r64(Reg::r11), r64(Reg::rax), "r11 = &upload_sites[n]");
  mov(r32(Reg::rax), upload(Reg::r11, UploadField::root));
  op(Op::shl, r64(Reg::rax), imm(2));
  lea(Reg::rcx, responses_.roots().fds());
  op(Op::add, r64(Reg::rcx), r64(Reg::rax));
  mov(r32(Reg::rax), mem32(Reg::rcx), "root_fds[root]");
  ret();
}

void HttpConn::write_to_file() {
  lea(Reg::rsi, mem_index(Width::none, kBuf, Reg::rsi), "buf + the offset");
  mov(r32(Reg::rdi), conn(ConnField::file), "fd = the temporary file");
  call(rt_.write_all(), "rax = 0 or -errno: every byte, a partial write or EINTR retried");
}

void HttpConn::emit_upload_names() {
  block(upload_temp_name_, "subroutine upload_temp_name(rbx = record)", nullptr,
        "sprintf(upload_temp, \".upload-%d-%lu\", getpid(), record.upload_id)",
        "The temporary file's name: its number is the process's, so workers never\n"
        "meet. Clobbers rax, rcx, rdx, rsi, rdi, r11.");
  lea(Reg::rdi, upload_temp_);
  set(Reg::rax, Gen::text_imm(std::string(kTempPrefix), false).first);
  mov(mem64(Reg::rdi), r64(Reg::rax), "\".upload-\"");
  op(Op::add, r64(Reg::rdi), imm(static_cast<int64_t>(kTempPrefix.size())));
  falls_into(upload_suffix_);
  block(upload_suffix_, "subroutine upload_suffix(rdi = where)", &kGetpid,
        "rdi += sprintf(rdi, \"%d-%lu\", getpid(), record.upload_id)",
        "NUL-terminated; rdi is left at the NUL. Clobbers rax, rcx, rdx, rsi, r11.");
  sys(kGetpid);
  call(rt_.append_u64());
  mov(mem8(Reg::rdi), chr('-'));
  op(Op::inc, r64(Reg::rdi));
  mov(r64(Reg::rax), conn(ConnField::upload_id));
  call(rt_.append_u64());
  mov(mem8(Reg::rdi), imm(0));
  ret();
}

void HttpConn::emit_discard_upload() {
  block(discard_upload_, "subroutine discard_upload(rbx = record)", &kUnlinkat,
        "unlinkat(root, \".upload-PID-N\", 0); record.upload_id = 0",
        "An upload that ends without its body stored leaves nothing behind:\n"
        "release_file calls this, then closes the file. Keeps every register but\n"
        "rax, rcx, rdi and r11, as release_file does.");
  op(Op::push, r64(Reg::rdx));
  op(Op::push, r64(Reg::rsi));
  call(upload_temp_name_);
  call(upload_site_, "eax = the root");
  mov(r32(Reg::rdi), r32(Reg::rax), "dirfd = the root");
  lea(Reg::rsi, upload_temp_, "pathname");
  zero(Reg::rdx, "flags: a file");
  sys(kUnlinkat);
  mov(conn(ConnField::upload_id), imm(0));
  op(Op::pop, r64(Reg::rsi));
  op(Op::pop, r64(Reg::rdx));
  ret();
}

}  // namespace asmsrv
