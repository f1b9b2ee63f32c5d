// Fuzzes access-token verification: security::JwtCodec::Verify with one HS256 codec (a fixed
// 32-byte secret), one RS256 codec (a 2048-bit key made at start-up) and one EdDSA codec (an
// Ed25519 key made at start-up), at a fixed `now`.
//
// Input: byte 0 picks a mode, the rest feeds it.
// - kRaw: the rest is the token, verified by every codec.
// - kSignedHs256: the rest is "<header JSON>\n<payload JSON>" (no newline: all header); they are
//   base64url-encoded and HMAC-SHA256-signed with the codec's secret, so the header, signature and
//   claim checks all see fuzzer bytes behind a valid MAC.
// - kSignedHs256Claims: the rest is the payload JSON under a fixed {"alg":"HS256","typ":"JWT"}
//   header, HMAC-signed: the claim checks get most of the coverage.
// - kSignedRs256Claims: as kSignedHs256Claims with {"alg":"RS256"}, signed with the RSA key.
// - kSignedEdDsaClaims: as kSignedHs256Claims with {"alg":"EdDSA"}, signed with the Ed25519 key.
//
// Invariants checked beyond "no crash, no sanitizer report, no leak":
// - every refusal is kUnauthenticated with reason "invalid_token" and one of a closed list of fixed
//   messages, so it quotes neither the token nor the secret;
// - no token verifies with two codecs, and a token signed for one algorithm only with its codec;
// - accepted claims are an access token with a subject and a time window around `now`;
// - a token with a changed signature is refused;
// - accepted claims signed again by the codec verify to the same claims.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "core/clock.h"
#include "fuzz_check.h"
#include "security/internal/base64url.h"
#include "security/jwt.h"

namespace {

using gpuorch::core::SystemTime;
using gpuorch::security::JwtAlgorithm;
using gpuorch::security::JwtCodec;
using gpuorch::security::TokenClaims;
using gpuorch::security::internal::Base64UrlEncode;

// 2030-01-01T00:00:00Z: seeds carry exp/nbf/iat around it.
const SystemTime kNow{std::chrono::seconds(1'893'456'000)};
const std::string kSecret = "fuzz-only-hs256-secret-32-bytes!";

enum Mode : uint8_t {
  kRaw,
  kSignedHs256,
  kSignedHs256Claims,
  kSignedRs256Claims,
  kSignedEdDsaClaims,
  kModeCount
};

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

struct Fixture {
  std::unique_ptr<JwtCodec> hs256;
  std::unique_ptr<JwtCodec> rs256;
  std::unique_ptr<JwtCodec> eddsa;
  std::unique_ptr<EVP_PKEY, PkeyFree> rsa_key;
  std::unique_ptr<EVP_PKEY, PkeyFree> ed25519_key;
};

std::string PrivateKeyPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  FUZZ_CHECK(bio != nullptr);
  FUZZ_CHECK(PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) == 1);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  return pem;
}

const Fixture& GetFixture() {
  static const Fixture* fixture = [] {
    auto* f = new Fixture;
    auto hs = JwtCodec::Create({.algorithm = JwtAlgorithm::kHs256, .hmac_secret = kSecret}, {});
    FUZZ_CHECK(hs.has_value());
    f->hs256 = std::move(*hs);
    f->rsa_key.reset(EVP_RSA_gen(2048));
    FUZZ_CHECK(f->rsa_key != nullptr);
    auto rs = JwtCodec::Create(
        {.algorithm = JwtAlgorithm::kRs256, .private_key_pem = PrivateKeyPem(f->rsa_key.get())},
        {});
    FUZZ_CHECK(rs.has_value());
    f->rs256 = std::move(*rs);
    f->ed25519_key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    FUZZ_CHECK(f->ed25519_key != nullptr);
    auto ed = JwtCodec::Create({.algorithm = JwtAlgorithm::kEdDsa,
                                .private_key_pem = PrivateKeyPem(f->ed25519_key.get())},
                               {});
    FUZZ_CHECK(ed.has_value());
    f->eddsa = std::move(*ed);
    return f;
  }();
  return *fixture;
}

std::string HmacSha256(std::string_view input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  FUZZ_CHECK(HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
                  reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
                  &mac_len) != nullptr);
  return std::string(reinterpret_cast<const char*>(mac), mac_len);
}

// An RS256 (`md` SHA-256) or Ed25519 (`md` null) signature of `input`.
std::string PkeySign(EVP_PKEY* key, const EVP_MD* md, std::string_view input) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  FUZZ_CHECK(ctx != nullptr);
  FUZZ_CHECK(EVP_DigestSignInit(ctx, nullptr, md, nullptr, key) == 1);
  size_t len = 0;
  FUZZ_CHECK(EVP_DigestSign(ctx, nullptr, &len,
                            reinterpret_cast<const unsigned char*>(input.data()),
                            input.size()) == 1);
  std::string signature(len, '\0');
  FUZZ_CHECK(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(signature.data()), &len,
                            reinterpret_cast<const unsigned char*>(input.data()),
                            input.size()) == 1);
  signature.resize(len);
  EVP_MD_CTX_free(ctx);
  return signature;
}

std::string SignedToken(std::string_view header, std::string_view payload, JwtAlgorithm algorithm) {
  const std::string signing_input = Base64UrlEncode(header) + "." + Base64UrlEncode(payload);
  const Fixture& f = GetFixture();
  const std::string signature =
      algorithm == JwtAlgorithm::kHs256   ? HmacSha256(signing_input)
      : algorithm == JwtAlgorithm::kEdDsa ? PkeySign(f.ed25519_key.get(), nullptr, signing_input)
                                          : PkeySign(f.rsa_key.get(), EVP_sha256(), signing_input);
  return signing_input + "." + Base64UrlEncode(signature);
}

// Every message a refusal may carry. None holds a byte of the token or the key, so a refusal can
// never echo either; a new message in jwt.cc must be added here.
constexpr std::string_view kRefusalMessages[] = {
    "malformed token",     "algorithm not allowed",      "header parameter not allowed",
    "wrong token type",    "bad signature",              "missing signature",
    "wrong issuer",        "wrong audience",             "not an access token",
    "missing subject",     "missing expiry",             "token expired",
    "token not yet valid", "token issued in the future", "malformed claim ver",
    "malformed claim iss", "malformed claim token_use",  "malformed claim sub",
    "malformed claim jti", "malformed claim exp",        "malformed claim nbf",
    "malformed claim iat",
};

bool IsKnownRefusal(std::string_view message) {
  for (std::string_view known : kRefusalMessages) {
    if (message == known) {
      return true;
    }
  }
  return false;
}

void CheckRefusal(const gpuorch::core::Error& error) {
  FUZZ_CHECK(error.code == gpuorch::core::Code::kUnauthenticated);
  FUZZ_CHECK(error.reason == "invalid_token");
  FUZZ_CHECK(IsKnownRefusal(error.message));
}

void CheckAccepted(const TokenClaims& claims) {
  const auto leeway = gpuorch::security::JwtProfile{}.leeway;
  FUZZ_CHECK(!claims.subject.empty());
  FUZZ_CHECK(claims.token_type == "access");
  FUZZ_CHECK(claims.expires_at + leeway >= kNow);
  FUZZ_CHECK(claims.not_before <= kNow + leeway);
  FUZZ_CHECK(claims.issued_at <= kNow + leeway);
}

// Verifies `token` with `codec`; returns the claims when it was accepted.
std::optional<TokenClaims> VerifyWith(const JwtCodec& codec, std::string_view token) {
  auto claims = codec.Verify(token, kNow);
  if (!claims) {
    CheckRefusal(claims.error());
    return std::nullopt;
  }
  CheckAccepted(*claims);
  return *claims;
}

// A token accepted by `codec`: a changed signature must be refused, and the claims signed again
// must verify to themselves.
void CheckAcceptedToken(const JwtCodec& codec, const std::string& token,
                        const TokenClaims& claims) {
  std::string tampered = token;
  char& last = tampered.back();
  last = last == 'A' ? 'Q' : 'A';  // 'A' and 'Q' differ in the high bits of the last sextet
  FUZZ_CHECK(!codec.Verify(tampered, kNow).has_value());

  auto resigned = codec.Sign(claims);
  if (!resigned) {
    return;  // e.g. a subject with a NUL, which Sign refuses
  }
  auto again = codec.Verify(*resigned, kNow);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(*again == claims);
}

// Verifies `token` with every codec: at most one accepts it, and only the one of `signed_with`.
void VerifyAll(const std::string& token, std::optional<JwtAlgorithm> signed_with) {
  const Fixture& f = GetFixture();
  int accepted = 0;
  for (const JwtCodec* codec : {f.hs256.get(), f.rs256.get(), f.eddsa.get()}) {
    auto claims = VerifyWith(*codec, token);
    if (!claims) {
      continue;
    }
    ++accepted;
    FUZZ_CHECK(!signed_with || *signed_with == codec->algorithm());
    CheckAcceptedToken(*codec, token, *claims);
  }
  FUZZ_CHECK(accepted <= 1);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  GetFixture();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const auto mode = static_cast<Mode>(data[0] % kModeCount);
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (mode) {
    case kRaw:
      VerifyAll(std::string(rest), std::nullopt);
      break;
    case kSignedHs256: {
      const size_t newline = rest.find('\n');
      const std::string_view header = rest.substr(0, newline);
      const std::string_view payload =
          newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
      VerifyAll(SignedToken(header, payload, JwtAlgorithm::kHs256), JwtAlgorithm::kHs256);
      break;
    }
    case kSignedHs256Claims:
      VerifyAll(SignedToken(R"({"alg":"HS256","typ":"JWT"})", rest, JwtAlgorithm::kHs256),
                JwtAlgorithm::kHs256);
      break;
    case kSignedRs256Claims:
      VerifyAll(SignedToken(R"({"alg":"RS256"})", rest, JwtAlgorithm::kRs256),
                JwtAlgorithm::kRs256);
      break;
    case kSignedEdDsaClaims:
      VerifyAll(SignedToken(R"({"alg":"EdDSA"})", rest, JwtAlgorithm::kEdDsa),
                JwtAlgorithm::kEdDsa);
      break;
    case kModeCount:
      break;
  }
  return 0;
}
