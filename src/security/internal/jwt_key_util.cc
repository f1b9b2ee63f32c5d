#include "security/internal/jwt_key_util.h"

#include <utility>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

namespace gpuorch::security::internal {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

// Refuses every passphrase prompt: an encrypted key fails to load instead of reading a terminal.
int NoPassphrase(char*, int, int, void*) { return 0; }

}  // namespace

void PkeyFree::operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }

tl::unexpected<core::Error> BadJwtKey(std::string field, const std::string& what) {
  return core::Fail(core::Code::kInvalidArgument, "jwt: " + field + " " + what, std::move(field));
}

void Wipe(std::string& s) {
  if (!s.empty()) {
    OPENSSL_cleanse(s.data(), s.size());
  }
  s.clear();
}

PkeyPtr ReadPem(const std::string& pem, bool private_key) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) {
    return nullptr;
  }
  PkeyPtr key(private_key ? PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr)
                          : PEM_read_bio_PUBKEY(bio.get(), nullptr, NoPassphrase, nullptr));
  ERR_clear_error();
  return key;
}

std::string WritePem(EVP_PKEY* key, bool private_key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  int ok = !bio ? 0
           : private_key
               ? PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)
               : PEM_write_bio_PUBKEY(bio.get(), key);
  if (ok != 1) {
    ERR_clear_error();
    return "";
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_reset(bio.get());
  return out;
}

}  // namespace gpuorch::security::internal
