// strong_etag (site.h): the validator of a body, from its SHA-256.
#include <openssl/evp.h>

#include <fmt/format.h>

#include <stdexcept>

#include "site.h"

namespace asmsrv {

std::string strong_etag(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("sha256: libcrypto failed");
  std::string out = "\"";
  for (int i = 0; i < 8; ++i) out += fmt::format("{:02x}", md[i]);
  return out + "\"";
}

}  // namespace asmsrv
