// The upload kind of response (see response.h): the 201 Created of a body
// stored below an upload's root. The storing itself is the connection's
// (http_upload.cc); here are the uploads' table and the 201, whose Location
// the storer has chosen.
#include <fmt/format.h>

#include "response.h"

namespace asmsrv {

void Responses::make_upload_data() {
  std::string text;
  std::vector<Piece> sites;
  for (size_t i = 0; i < t_.upload_sites.size(); ++i) {
    const UploadSite& u = t_.upload_sites[i];
    uint64_t prefix_at = text.size();
    text += u.prefix;
    uint64_t flags = (u.overwrite ? kUploadOverwrite : 0) | (u.fsync ? kUploadFsync : 0);
    sites.push_back(Ints{4, {static_cast<uint64_t>(u.root), u.prefix.size(), flags, static_cast<uint64_t>(u.mode)},
                         fmt::format("{}: {}", i, u.prefix)});
    sites.push_back(Ints{8, {static_cast<uint64_t>(u.max_bytes)}, "max_bytes"});
    sites.push_back(Ints{4, {prefix_at, 0}, "prefix"});
  }
  upload_sites_ = b_.data("upload_sites", Section::rodata, std::move(sites),
                          fmt::format("the uploads, one {}-byte record each: root, prefix length, flags\n"
                                      "(overwrite, fsync), mode, max_bytes, prefix",
                                      kUploadLayout.size),
                          kUploadLayout.size);
  upload_text_ = b_.bytes("upload_text", text, "the uploads' URL prefixes");
  for (size_t i = 0; i < kUploadLayout.decl.size(); ++i)
    b_.constant(std::string("upload_") + kUploadLayout.decl[i].name, kUploadLayout.offset[i],
                kUploadLayout.decl[i].what);
  upload_location_ = b_.bss("upload_location", 8, "the 201's Location: where it is");
  upload_location_len_ = b_.bss("upload_location_len", 8, "... and its length");
}

void Responses::emit_upload(Label l) {
  block(l, "prepare_response: an upload stored", nullptr,
        "iov[status] = { head, head_len }; scratch = \"Location: \" upload_location CRLF; no body",
        "The head (201 Created, Content-Length: 0, the spec's headers) was made at\n"
        "compile time. The Location is the request's own path for PUT, the new\n"
        "name under the prefix for POST: the code that stored the body chose it.\n"
        "Both are at most request_bytes long, which the scratch holds.");
  head_part("the head");
  mov(iov_len(IovPart::fields), imm(0));
  scratch_start();
  copy_text(location_text(), kLocation.size());
  mov(r64(Reg::rsi), var64(upload_location_));
  mov(r64(Reg::rcx), var64(upload_location_len_));
  plain(Op::rep_movsb, "the path");
  scratch_end(true);
  zero(Reg::r9, "no body");
  jmp(Op::jmp, finish_);
}

}  // namespace asmsrv
