// Design. Verify trusts libjwt 1.10 for one thing only: the RSA/ECDSA signature check. Everything
// libjwt is lax about is decided here first, on our own strict parse of the token: the shape
// (three canonical base64url segments, bounded length), the header (exact "alg", no key-fetching or
// critical parameters, "typ"), the signature length, and, for HS256, the MAC itself with a
// constant-time comparison. libjwt 1.10 matches "alg" case-insensitively, accepts "none" without a
// key, never checks "exp", and reads claims with a different JSON parser; so the claims come from
// our own decode of the exact payload bytes that were signed, with duplicate keys refused, and
// libjwt's answer is only "signature valid, with this algorithm". Each call builds and frees its
// own jwt_t, which is what makes the codec safe to share between threads. libjwt 1.10 has no EdDSA:
// for it, signing and the Ed25519 signature check (RFC 8037) are OpenSSL's one-shot
// EVP_DigestSign/EVP_DigestVerify, and libjwt is not involved at all.
#include "security/jwt.h"

#include <cstdlib>
#include <limits>
#include <set>
#include <utility>
#include <vector>

#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <nlohmann/json.hpp>

#include "security/internal/base64url.h"
#include "security/internal/jwt_key_util.h"

namespace gpuorch::security {
namespace {

using Json = nlohmann::json;
using internal::kMinHmacSecretBytes;
using internal::PkeyPtr;
using internal::ReadPem;
using internal::Wipe;
using internal::WritePem;

constexpr size_t kMaxTokenBytes = 8 * 1024;
constexpr size_t kMaxHmacSecretBytes = 64 * 1024;
constexpr int kMinRsaBits = 2048;
constexpr int kMaxRsaBits = 8192;
constexpr int kMaxJsonDepth = 16;
constexpr int64_t kMaxUnixSeconds = 7'258'118'400;  // 2200-01-01T00:00:00Z, far from overflow
constexpr std::chrono::seconds kMaxLeeway{3600};
constexpr std::string_view kAccessTokenUse = "access";

// Header parameters that make a verifier fetch or trust a key named by the token, or change how the
// token must be processed. None of them is ever honoured, so a token carrying one is refused.
constexpr std::string_view kForbiddenHeaders[] = {"jku",  "x5u", "jwk", "x5c",
                                                  "crit", "b64", "zip", "enc"};

tl::unexpected<core::Error> Rejected(std::string message) {
  return core::Fail(core::Code::kUnauthenticated, std::move(message), "", "invalid_token");
}

core::Status CheckKeyType(EVP_PKEY* key, JwtAlgorithm algorithm, const std::string& field) {
  if (algorithm == JwtAlgorithm::kEdDsa) {
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519) {
      return internal::BadJwtKey(field, "must be an Ed25519 key for EdDSA");
    }
    return core::Ok();
  }
  if (algorithm == JwtAlgorithm::kRs256) {
    const int bits = EVP_PKEY_get_bits(key);
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA || bits < kMinRsaBits || bits > kMaxRsaBits) {
      return internal::BadJwtKey(field, "must be an RSA key of 2048 to 8192 bits for RS256");
    }
    return core::Ok();
  }
  char group[64] = {};
  size_t group_len = 0;
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
      EVP_PKEY_get_group_name(key, group, sizeof(group), &group_len) != 1 ||
      std::string_view(group, group_len) != "prime256v1") {
    ERR_clear_error();
    return internal::BadJwtKey(field, "must be an EC key on curve P-256 for ES256");
  }
  return core::Ok();
}

struct JwtFree {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
struct MallocFree {
  void operator()(char* p) const { std::free(p); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtFree>;
using CString = std::unique_ptr<char, MallocFree>;

// A JSON object parsed strictly: duplicate keys (which two parsers may resolve differently) and
// nesting deeper than kMaxJsonDepth are refused. Never throws.
std::optional<Json> ParseObject(std::string_view text) {
  std::vector<std::set<std::string>> keys;
  bool refused = false;
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth > kMaxJsonDepth) {
      refused = true;
    }
    if (event == Json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == Json::parse_event_t::object_end && !keys.empty()) {
      keys.pop_back();
    } else if (event == Json::parse_event_t::key && !keys.empty() &&
               !keys.back().insert(parsed.get<std::string>()).second) {
      refused = true;
    }
    return true;
  };
  try {
    Json doc = Json::parse(text.begin(), text.end(), callback);
    if (refused || !doc.is_object()) {
      return std::nullopt;
    }
    return doc;
  } catch (const Json::exception&) {
    return std::nullopt;
  }
}

// A NumericDate claim: absent (nullopt, ok), or an integer number of seconds in [0, 2200).
// Anything else (a string, a fraction, out of range) is an error.
core::Result<std::optional<core::SystemTime>> ReadTime(const Json& claims, const char* name) {
  auto it = claims.find(name);
  if (it == claims.end()) {
    return std::optional<core::SystemTime>();
  }
  if (!it->is_number_integer() ||
      (it->is_number_unsigned() ? it->get<uint64_t>() > static_cast<uint64_t>(kMaxUnixSeconds)
                                : it->get<int64_t>() < 0 || it->get<int64_t>() > kMaxUnixSeconds)) {
    return Rejected(std::string("malformed claim ") + name);
  }
  return std::optional<core::SystemTime>(
      core::SystemTime(std::chrono::seconds(it->get<int64_t>())));
}

// An optional string claim; an error when present but not a string.
core::Result<std::string> ReadString(const Json& claims, const char* name) {
  auto it = claims.find(name);
  if (it == claims.end()) {
    return std::string();
  }
  if (!it->is_string()) {
    return Rejected(std::string("malformed claim ") + name);
  }
  return it->get<std::string>();
}

bool AudienceContains(const Json& aud, const std::string& ours) {
  if (aud.is_string()) {
    return aud.get<std::string>() == ours;
  }
  if (!aud.is_array()) {
    return false;
  }
  bool found = false;
  for (const Json& item : aud) {
    if (!item.is_string()) {
      return false;
    }
    found = found || item.get<std::string>() == ours;
  }
  return found;
}

bool EqualsIgnoringAsciiCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

jwt_alg_t LibJwtAlgorithm(JwtAlgorithm algorithm) {
  switch (algorithm) {
    case JwtAlgorithm::kHs256:
      return JWT_ALG_HS256;
    case JwtAlgorithm::kRs256:
      return JWT_ALG_RS256;
    case JwtAlgorithm::kEs256:
      return JWT_ALG_ES256;
    case JwtAlgorithm::kEdDsa:
      break;  // not in libjwt 1.10; never handed to it
  }
  return JWT_ALG_INVAL;
}

struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

// An Ed25519 signature (64 bytes) of `input`; empty when OpenSSL fails.
std::string Ed25519Sign(EVP_PKEY* key, std::string_view input) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  std::string signature(64, '\0');
  size_t len = signature.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &len,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1 ||
      len != signature.size()) {
    ERR_clear_error();
    return "";
  }
  return signature;
}

bool Ed25519Verify(EVP_PKEY* key, std::string_view input, std::string_view signature) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  const bool valid =
      ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key) == 1 &&
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(), reinterpret_cast<const unsigned char*>(input.data()),
                       input.size()) == 1;
  ERR_clear_error();
  return valid;
}

int64_t UnixSeconds(core::SystemTime t) {
  return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

std::string_view JwtAlgorithmName(JwtAlgorithm algorithm) {
  switch (algorithm) {
    case JwtAlgorithm::kHs256:
      return "HS256";
    case JwtAlgorithm::kRs256:
      return "RS256";
    case JwtAlgorithm::kEs256:
      return "ES256";
    case JwtAlgorithm::kEdDsa:
      return "EdDSA";
  }
  return "HS256";
}

std::optional<JwtAlgorithm> ParseJwtAlgorithm(std::string_view name) {
  for (JwtAlgorithm a : {JwtAlgorithm::kHs256, JwtAlgorithm::kRs256, JwtAlgorithm::kEs256,
                         JwtAlgorithm::kEdDsa}) {
    if (name == JwtAlgorithmName(a)) {
      return a;
    }
  }
  return std::nullopt;
}

struct JwtCodec::Impl {
  JwtAlgorithm algorithm = JwtAlgorithm::kHs256;
  JwtProfile profile;
  std::string verify_key;      // HS256: the secret; else the public key as SPKI PEM
  std::string sign_key;        // HS256: the secret; else the private key as PKCS#8 PEM; empty: none
  size_t signature_bytes = 0;  // the one length a valid signature has
  PkeyPtr ed25519_public;      // EdDSA: the verification key
  PkeyPtr ed25519_private;     // EdDSA: the signing key; null: none

  ~Impl() {
    Wipe(verify_key);
    Wipe(sign_key);
  }

  core::Status SetUpHmac(const JwtKeys& keys);
  core::Status SetUpPem(const JwtKeys& keys);
  core::Result<Json> CheckHeader(std::string_view header_b64) const;
  core::Status CheckSignature(std::string_view token, std::string_view signing_input,
                              std::string_view signature_b64) const;
  core::Result<TokenClaims> CheckClaims(const Json& claims, core::SystemTime now) const;
  core::Result<std::string> SignEd25519(const std::string& payload) const;
};

// The compact token: header {"alg":"EdDSA","typ":"JWT"}, `payload`, and the Ed25519 signature of
// both (RFC 8037 section 3.1).
core::Result<std::string> JwtCodec::Impl::SignEd25519(const std::string& payload) const {
  const std::string signing_input = internal::Base64UrlEncode(R"({"alg":"EdDSA","typ":"JWT"})") +
                                    "." + internal::Base64UrlEncode(payload);
  const std::string signature = Ed25519Sign(ed25519_private.get(), signing_input);
  if (signature.empty()) {
    return core::Fail(core::Code::kInternal, "jwt: signing failed");
  }
  std::string token = signing_input + "." + internal::Base64UrlEncode(signature);
  if (token.size() > kMaxTokenBytes) {
    return core::Fail(core::Code::kInvalidArgument, "jwt: the token would exceed 8 KiB");
  }
  return token;
}

core::Status JwtCodec::Impl::SetUpHmac(const JwtKeys& keys) {
  if (!keys.private_key_pem.empty()) {
    return internal::BadJwtKey("private_key_pem", "is for RS256/ES256/EdDSA, not HS256");
  }
  if (!keys.public_key_pem.empty()) {
    return internal::BadJwtKey("public_key_pem", "is for RS256/ES256/EdDSA, not HS256");
  }
  if (keys.hmac_secret.size() < kMinHmacSecretBytes) {
    return internal::BadJwtKey("hmac_secret", "must be at least 32 bytes (256 bits) for HS256");
  }
  if (keys.hmac_secret.size() > kMaxHmacSecretBytes) {
    return internal::BadJwtKey("hmac_secret", "must be at most 65536 bytes");
  }
  verify_key = keys.hmac_secret;
  sign_key = keys.hmac_secret;
  signature_bytes = 32;
  return core::Ok();
}

core::Status JwtCodec::Impl::SetUpPem(const JwtKeys& keys) {
  if (!keys.hmac_secret.empty()) {
    return internal::BadJwtKey("hmac_secret", "is for HS256, not " + std::string(JwtAlgorithmName(algorithm)));
  }
  PkeyPtr private_key;
  PkeyPtr public_key;
  if (!keys.private_key_pem.empty()) {
    private_key = ReadPem(keys.private_key_pem, /*private_key=*/true);
    if (!private_key) {
      return internal::BadJwtKey("private_key_pem", "is not an unencrypted PEM private key");
    }
    GPUORCH_TRY(CheckKeyType(private_key.get(), algorithm, "private_key_pem"));
  }
  if (!keys.public_key_pem.empty()) {
    public_key = ReadPem(keys.public_key_pem, /*private_key=*/false);
    if (!public_key) {
      return internal::BadJwtKey("public_key_pem", "is not a PEM public key (BEGIN PUBLIC KEY)");
    }
    GPUORCH_TRY(CheckKeyType(public_key.get(), algorithm, "public_key_pem"));
  }
  if (private_key && public_key && EVP_PKEY_eq(private_key.get(), public_key.get()) != 1) {
    ERR_clear_error();
    return internal::BadJwtKey("private_key_pem", "is not the private half of public_key_pem");
  }
  EVP_PKEY* verifier = public_key ? public_key.get() : private_key.get();
  if (verifier == nullptr) {
    return internal::BadJwtKey("public_key_pem", "is required for " + std::string(JwtAlgorithmName(algorithm)));
  }
  verify_key = WritePem(verifier, /*private_key=*/false);
  if (private_key) {
    sign_key = WritePem(private_key.get(), /*private_key=*/true);
  }
  if (verify_key.empty() || (private_key && sign_key.empty())) {
    return core::Fail(core::Code::kInternal, "jwt: cannot re-encode the key as PEM");
  }
  // ES256: raw R || S, 32 bytes each (RFC 7518 section 3.4); EdDSA: an Ed25519 signature.
  signature_bytes = algorithm == JwtAlgorithm::kEs256 || algorithm == JwtAlgorithm::kEdDsa
                        ? 64
                        : static_cast<size_t>(EVP_PKEY_get_size(verifier));
  if (algorithm == JwtAlgorithm::kEdDsa) {
    ed25519_public = public_key ? std::move(public_key) : ReadPem(verify_key, false);
    ed25519_private = std::move(private_key);
    if (!ed25519_public) {
      return core::Fail(core::Code::kInternal, "jwt: cannot re-read the Ed25519 key");
    }
  }
  return core::Ok();
}

core::Result<std::unique_ptr<JwtCodec>> JwtCodec::Create(JwtKeys keys, JwtProfile profile) {
  auto impl = std::make_unique<Impl>();
  impl->algorithm = keys.algorithm;
  core::Status set_up =
      keys.algorithm == JwtAlgorithm::kHs256 ? impl->SetUpHmac(keys) : impl->SetUpPem(keys);
  Wipe(keys.hmac_secret);
  Wipe(keys.private_key_pem);
  GPUORCH_TRY(set_up);
  if (profile.issuer.empty() || profile.issuer.find('\0') != std::string::npos) {
    return internal::BadJwtKey("issuer", "must be non-empty text");
  }
  if (profile.audience.empty() || profile.audience.find('\0') != std::string::npos) {
    return internal::BadJwtKey("audience", "must be non-empty text");
  }
  if (profile.leeway < std::chrono::seconds(0) || profile.leeway > kMaxLeeway) {
    return internal::BadJwtKey("leeway", "must be between 0 and 3600 seconds");
  }
  impl->profile = std::move(profile);
  return std::unique_ptr<JwtCodec>(new JwtCodec(std::move(impl)));
}

JwtCodec::JwtCodec(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JwtCodec::~JwtCodec() = default;

JwtAlgorithm JwtCodec::algorithm() const { return impl_->algorithm; }
bool JwtCodec::can_sign() const { return !impl_->sign_key.empty(); }

core::Result<std::string> JwtCodec::Sign(const TokenClaims& claims) const {
  if (impl_->sign_key.empty()) {
    return core::Fail(core::Code::kFailedPrecondition,
                      "jwt: this codec has a public key only and cannot sign");
  }
  if (claims.subject.empty()) {
    return core::Fail(core::Code::kInvalidArgument, "jwt: the subject is required", "subject");
  }
  const int64_t exp = UnixSeconds(claims.expires_at);
  const int64_t iat = UnixSeconds(claims.issued_at);
  const int64_t nbf = UnixSeconds(claims.not_before);
  for (int64_t t : {exp, iat, nbf}) {
    if (t < 0 || t > kMaxUnixSeconds) {
      return core::Fail(core::Code::kInvalidArgument, "jwt: a time is outside [1970, 2200)");
    }
  }
  if (exp == 0) {
    return core::Fail(core::Code::kInvalidArgument, "jwt: expires_at is required", "expires_at");
  }
  Json payload = {{"iss", impl_->profile.issuer}, {"aud", impl_->profile.audience},
                  {"sub", claims.subject},        {"token_use", claims.token_type},
                  {"ver", claims.token_version},  {"exp", exp}};
  if (!claims.jwt_id.empty()) {
    payload["jti"] = claims.jwt_id;
  }
  if (iat != 0) {
    payload["iat"] = iat;
  }
  if (nbf != 0) {
    payload["nbf"] = nbf;
  }
  for (const std::string* s : {&claims.subject, &claims.token_type, &claims.jwt_id}) {
    if (s->find('\0') != std::string::npos) {
      return core::Fail(core::Code::kInvalidArgument, "jwt: claims must not contain NUL");
    }
  }
  std::string text;
  try {
    text = payload.dump();
  } catch (const Json::exception&) {
    return core::Fail(core::Code::kInvalidArgument, "jwt: claims must be valid UTF-8");
  }
  if (impl_->algorithm == JwtAlgorithm::kEdDsa) {
    return impl_->SignEd25519(text);
  }
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) {
    return core::Fail(core::Code::kInternal, "jwt: out of memory");
  }
  JwtPtr jwt(raw);
  const auto* key = reinterpret_cast<const unsigned char*>(impl_->sign_key.data());
  if (jwt_add_grants_json(jwt.get(), text.c_str()) != 0 ||
      jwt_set_alg(jwt.get(), LibJwtAlgorithm(impl_->algorithm), key,
                  static_cast<int>(impl_->sign_key.size())) != 0) {
    return core::Fail(core::Code::kInternal, "jwt: cannot build the token");
  }
  CString encoded(jwt_encode_str(jwt.get()));
  ERR_clear_error();
  if (!encoded) {
    return core::Fail(core::Code::kInternal, "jwt: signing failed");
  }
  std::string token(encoded.get());
  if (token.size() > kMaxTokenBytes) {
    return core::Fail(core::Code::kInvalidArgument, "jwt: the token would exceed 8 KiB");
  }
  return token;
}

core::Result<Json> JwtCodec::Impl::CheckHeader(std::string_view header_b64) const {
  std::optional<std::string> text = internal::Base64UrlDecode(header_b64);
  std::optional<Json> header = text ? ParseObject(*text) : std::nullopt;
  if (!header) {
    return Rejected("malformed token");
  }
  auto alg = header->find("alg");
  if (alg == header->end() || !alg->is_string() ||
      alg->get<std::string>() != JwtAlgorithmName(algorithm)) {
    return Rejected("algorithm not allowed");
  }
  for (std::string_view name : kForbiddenHeaders) {
    if (header->contains(name)) {
      return Rejected("header parameter not allowed");
    }
  }
  auto typ = header->find("typ");
  // Only "JWT": the library under the signature check refuses every other type.
  if (typ != header->end() &&
      (!typ->is_string() || !EqualsIgnoringAsciiCase(typ->get<std::string>(), "JWT"))) {
    return Rejected("wrong token type");
  }
  return std::move(*header);
}

core::Status JwtCodec::Impl::CheckSignature(std::string_view token, std::string_view signing_input,
                                            std::string_view signature_b64) const {
  std::optional<std::string> signature = internal::Base64UrlDecode(signature_b64);
  if (!signature || signature->size() != signature_bytes) {
    return Rejected("bad signature");
  }
  if (algorithm == JwtAlgorithm::kEdDsa) {
    return Ed25519Verify(ed25519_public.get(), signing_input, *signature)
               ? core::Ok()
               : core::Status(Rejected("bad signature"));
  }
  if (algorithm == JwtAlgorithm::kHs256) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (HMAC(EVP_sha256(), verify_key.data(), static_cast<int>(verify_key.size()),
             reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(),
             mac, &mac_len) == nullptr ||
        mac_len != signature->size() || CRYPTO_memcmp(mac, signature->data(), mac_len) != 0) {
      ERR_clear_error();
      return Rejected("bad signature");
    }
  }
  const std::string terminated(token);
  jwt_t* raw = nullptr;
  const int rc = jwt_decode(&raw, terminated.c_str(),
                            reinterpret_cast<const unsigned char*>(verify_key.data()),
                            static_cast<int>(verify_key.size()));
  JwtPtr jwt(raw);
  ERR_clear_error();
  if (rc != 0 || !jwt) {
    // With HS256 the MAC is already proven, so libjwt refused the JSON (e.g. an integer jansson
    // cannot hold), not the signature.
    return Rejected(algorithm == JwtAlgorithm::kHs256 ? "malformed token" : "bad signature");
  }
  if (jwt_get_alg(jwt.get()) != LibJwtAlgorithm(algorithm)) {
    return Rejected("algorithm not allowed");
  }
  return core::Ok();
}

core::Result<TokenClaims> JwtCodec::Impl::CheckClaims(const Json& claims,
                                                      core::SystemTime now) const {
  GPUORCH_ASSIGN_OR_RETURN(std::string issuer, ReadString(claims, "iss"));
  if (issuer != profile.issuer) {
    return Rejected("wrong issuer");
  }
  auto aud = claims.find("aud");
  if (aud == claims.end() || !AudienceContains(*aud, profile.audience)) {
    return Rejected("wrong audience");
  }
  TokenClaims out;
  GPUORCH_ASSIGN_OR_RETURN(out.token_type, ReadString(claims, "token_use"));
  if (out.token_type != kAccessTokenUse) {
    return Rejected("not an access token");
  }
  GPUORCH_ASSIGN_OR_RETURN(out.subject, ReadString(claims, "sub"));
  if (out.subject.empty()) {
    return Rejected("missing subject");
  }
  GPUORCH_ASSIGN_OR_RETURN(out.jwt_id, ReadString(claims, "jti"));
  if (auto ver = claims.find("ver"); ver != claims.end()) {
    if (!ver->is_number_integer() ||
        (ver->is_number_unsigned() &&
         ver->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
      return Rejected("malformed claim ver");
    }
    out.token_version = ver->get<int64_t>();
  }
  GPUORCH_ASSIGN_OR_RETURN(auto exp, ReadTime(claims, "exp"));
  GPUORCH_ASSIGN_OR_RETURN(auto nbf, ReadTime(claims, "nbf"));
  GPUORCH_ASSIGN_OR_RETURN(auto iat, ReadTime(claims, "iat"));
  if (!exp) {
    return Rejected("missing expiry");
  }
  if (now > *exp + profile.leeway) {
    return Rejected("token expired");
  }
  if (nbf && *nbf > now + profile.leeway) {
    return Rejected("token not yet valid");
  }
  if (iat && *iat > now + profile.leeway) {
    return Rejected("token issued in the future");
  }
  out.expires_at = *exp;
  out.not_before = nbf.value_or(core::SystemTime{});
  out.issued_at = iat.value_or(core::SystemTime{});
  return out;
}

core::Result<TokenClaims> JwtCodec::Verify(std::string_view token, core::SystemTime now) const {
  if (token.empty() || token.size() > kMaxTokenBytes) {
    return Rejected("malformed token");
  }
  const size_t first = token.find('.');
  const size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
    return Rejected("malformed token");
  }
  const std::string_view header_b64 = token.substr(0, first);
  const std::string_view payload_b64 = token.substr(first + 1, second - first - 1);
  const std::string_view signature_b64 = token.substr(second + 1);
  if (header_b64.empty() || payload_b64.empty()) {
    return Rejected("malformed token");
  }
  GPUORCH_TRY(impl_->CheckHeader(header_b64));
  std::optional<std::string> payload_text = internal::Base64UrlDecode(payload_b64);
  if (!payload_text) {
    return Rejected("malformed token");
  }
  if (signature_b64.empty()) {
    return Rejected("missing signature");
  }
  GPUORCH_TRY(impl_->CheckSignature(token, token.substr(0, second), signature_b64));
  std::optional<Json> claims = ParseObject(*payload_text);
  if (!claims) {
    return Rejected("malformed token");
  }
  return impl_->CheckClaims(*claims, now);
}

}  // namespace gpuorch::security
