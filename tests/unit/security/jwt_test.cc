#include "security/jwt.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "core/clock.h"
#include "security/internal/base64url.h"
#include "testing/temp_dir.h"

namespace gpuorch::security {
namespace {

using namespace std::chrono_literals;
using internal::Base64UrlEncode;

// Keys, generated in memory.

struct KeyPair {
  std::string private_pem;
  std::string public_pem;
};

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

KeyPair Pems(EVP_PKEY* key) {
  KeyPair out;
  BIO* priv = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(priv, key, nullptr, nullptr, 0, nullptr, nullptr);
  out.private_pem = BioText(priv);
  BIO_free(priv);
  BIO* pub = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(pub, key);
  out.public_pem = BioText(pub);
  BIO_free(pub);
  return out;
}

EVP_PKEY* Generate(int type, int rsa_bits) {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(type, nullptr);
  EVP_PKEY* key = nullptr;
  bool ok = ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1;
  if (ok && type == EVP_PKEY_RSA) {
    ok = EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, rsa_bits) == 1;
  } else if (ok && type == EVP_PKEY_EC) {
    ok = EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1) == 1;
  }
  if (!ok || EVP_PKEY_keygen(ctx, &key) != 1) {
    std::abort();
  }
  EVP_PKEY_CTX_free(ctx);
  return key;
}

KeyPair GeneratePair(int type, int rsa_bits) {
  EVP_PKEY* key = Generate(type, rsa_bits);
  KeyPair pair = Pems(key);
  EVP_PKEY_free(key);
  return pair;
}

// One key per kind for the whole binary: RSA generation is slow.
const KeyPair& RsaKey() {
  static const KeyPair pair = GeneratePair(EVP_PKEY_RSA, 2048);
  return pair;
}
const KeyPair& OtherRsaKey() {
  static const KeyPair pair = GeneratePair(EVP_PKEY_RSA, 2048);
  return pair;
}
const KeyPair& EcKey() {
  static const KeyPair pair = GeneratePair(EVP_PKEY_EC, 0);
  return pair;
}

const KeyPair& Ed25519Key() {
  static const KeyPair pair = GeneratePair(EVP_PKEY_ED25519, 0);
  return pair;
}
const KeyPair& OtherEd25519Key() {
  static const KeyPair pair = GeneratePair(EVP_PKEY_ED25519, 0);
  return pair;
}

const std::string kSecret = "0123456789abcdef0123456789abcdef";  // 32 bytes
const std::string kOtherSecret = "fedcba9876543210fedcba9876543210";

// Forging tokens by hand.

std::string Hmac(const EVP_MD* md, const std::string& key, const std::string& data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

// A signature of `data` with the private key in `private_pem`: RS256 with `md` SHA-256, Ed25519
// with `md` null.
std::string PemSign(const std::string& private_pem, const EVP_MD* md, const std::string& data) {
  BIO* bio = BIO_new_mem_buf(private_pem.data(), static_cast<int>(private_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  EVP_DigestSignInit(ctx, nullptr, md, nullptr, key);
  EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                 data.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                 reinterpret_cast<const unsigned char*>(data.data()), data.size());
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  return sig;
}

std::string RsaSign(const std::string& private_pem, const std::string& data) {
  return PemSign(private_pem, EVP_sha256(), data);
}

std::string Ed25519Sign(const std::string& private_pem, const std::string& data) {
  return PemSign(private_pem, nullptr, data);
}

std::string SigningInput(const std::string& header, const std::string& payload) {
  return Base64UrlEncode(header) + "." + Base64UrlEncode(payload);
}

std::string ForgeHmac(const std::string& header, const std::string& payload,
                      const std::string& key = kSecret, const EVP_MD* md = EVP_sha256()) {
  const std::string input = SigningInput(header, payload);
  return input + "." + Base64UrlEncode(Hmac(md, key, input));
}

class JwtTest : public ::testing::Test {
 protected:
  core::FakeClock clock_;
  int64_t Now() const {
    return std::chrono::duration_cast<std::chrono::seconds>(clock_.Now().time_since_epoch())
        .count();
  }
  // A payload our HS256 codec accepts, with `extra` appended to the object (",\"k\":v...").
  std::string Payload(const std::string& extra = "", bool with_exp = true) const {
    std::string p = R"({"iss":"gpuorch","aud":"gpuorch-api","sub":"u1","token_use":"access")";
    if (with_exp) {
      p += R"(,"exp":)" + std::to_string(Now() + 600);
    }
    return p + extra + "}";
  }
  static std::unique_ptr<JwtCodec> Codec(JwtKeys keys, JwtProfile profile = {}) {
    auto codec = JwtCodec::Create(std::move(keys), std::move(profile));
    EXPECT_TRUE(codec.has_value()) << codec.error().message;
    return codec ? std::move(*codec) : nullptr;
  }
  static std::unique_ptr<JwtCodec> Hs256() { return Codec({.hmac_secret = kSecret}); }
  static std::unique_ptr<JwtCodec> Rs256() {
    return Codec({.algorithm = JwtAlgorithm::kRs256,
                  .private_key_pem = RsaKey().private_pem,
                  .public_key_pem = RsaKey().public_pem});
  }
  static std::unique_ptr<JwtCodec> Es256() {
    return Codec({.algorithm = JwtAlgorithm::kEs256,
                  .private_key_pem = EcKey().private_pem,
                  .public_key_pem = EcKey().public_pem});
  }
  static std::unique_ptr<JwtCodec> EdDsa() {
    return Codec({.algorithm = JwtAlgorithm::kEdDsa,
                  .private_key_pem = Ed25519Key().private_pem,
                  .public_key_pem = Ed25519Key().public_pem});
  }
  TokenClaims Claims() const {
    return TokenClaims{.subject = "user-42",
                       .jwt_id = "jti-1",
                       .token_version = 7,
                       .issued_at = clock_.Now(),
                       .not_before = clock_.Now(),
                       .expires_at = clock_.Now() + 15min};
  }
  // The message of the refusal of `token`; fails the test when the token is accepted.
  std::string Refusal(const JwtCodec& codec, const std::string& token) const {
    auto result = codec.Verify(token, clock_.Now());
    EXPECT_FALSE(result.has_value()) << "accepted: " << token;
    if (result) {
      return "";
    }
    EXPECT_EQ(result.error().code, core::Code::kUnauthenticated);
    EXPECT_EQ(result.error().reason, "invalid_token");
    return result.error().message;
  }
};

// Algorithms and round trips.

TEST(JwtAlgorithmTest, NamesParseExactlyAndNothingElse) {
  for (JwtAlgorithm a : {JwtAlgorithm::kHs256, JwtAlgorithm::kRs256, JwtAlgorithm::kEs256,
                         JwtAlgorithm::kEdDsa}) {
    EXPECT_EQ(ParseJwtAlgorithm(JwtAlgorithmName(a)), a);
  }
  EXPECT_EQ(JwtAlgorithmName(JwtAlgorithm::kEdDsa), "EdDSA");
  for (const char* name :
       {"hs256", "none", "None", "HS512", "PS256", "", "HS256 ", "EDDSA", "eddsa", "Ed25519"}) {
    EXPECT_FALSE(ParseJwtAlgorithm(name).has_value()) << name;
  }
}

TEST_F(JwtTest, Hs256RoundTripPreservesClaims) {
  auto codec = Hs256();
  auto token = codec->Sign(Claims());
  ASSERT_TRUE(token.has_value()) << token.error().message;
  auto claims = codec->Verify(*token, clock_.Now());
  ASSERT_TRUE(claims.has_value()) << claims.error().message;
  EXPECT_EQ(*claims, Claims());
  EXPECT_EQ(codec->algorithm(), JwtAlgorithm::kHs256);
}

TEST_F(JwtTest, Rs256RoundTripPreservesClaims) {
  auto codec = Rs256();
  auto token = codec->Sign(Claims());
  ASSERT_TRUE(token.has_value()) << token.error().message;
  auto claims = codec->Verify(*token, clock_.Now());
  ASSERT_TRUE(claims.has_value()) << claims.error().message;
  EXPECT_EQ(*claims, Claims());
}

TEST_F(JwtTest, Es256RoundTripPreservesClaims) {
  auto codec = Es256();
  auto token = codec->Sign(Claims());
  ASSERT_TRUE(token.has_value()) << token.error().message;
  auto claims = codec->Verify(*token, clock_.Now());
  ASSERT_TRUE(claims.has_value()) << claims.error().message;
  EXPECT_EQ(*claims, Claims());
}

TEST_F(JwtTest, EdDsaRoundTripPreservesClaimsUnderAnEdDsaHeader) {
  auto codec = EdDsa();
  auto token = codec->Sign(Claims());
  ASSERT_TRUE(token.has_value()) << token.error().message;
  const std::string header = token->substr(0, token->find('.'));
  EXPECT_EQ(internal::Base64UrlDecode(header), R"({"alg":"EdDSA","typ":"JWT"})");
  const std::string signature = token->substr(token->rfind('.') + 1);
  EXPECT_EQ(internal::Base64UrlDecode(signature)->size(), 64u);
  auto claims = codec->Verify(*token, clock_.Now());
  ASSERT_TRUE(claims.has_value()) << claims.error().message;
  EXPECT_EQ(*claims, Claims());
  EXPECT_EQ(codec->algorithm(), JwtAlgorithm::kEdDsa);
}

// RFC 8037 appendix A.1 (the key) and A.4 (its signature of "Example of Ed25519 signing" under
// the protected header {"alg":"EdDSA"}).
TEST_F(JwtTest, EdDsaVerifiesTheRfc8037Example) {
  const std::string d = *internal::Base64UrlDecode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
  const std::string x = *internal::Base64UrlDecode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(d.data()), d.size());
  ASSERT_NE(key, nullptr);
  std::string public_raw(32, '\0');
  size_t public_len = public_raw.size();
  ASSERT_EQ(EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(public_raw.data()),
                                        &public_len),
            1);
  EXPECT_EQ(public_raw, x);
  const KeyPair rfc = Pems(key);
  EVP_PKEY_free(key);

  const std::string input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
  const std::string signature =
      "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
  EXPECT_EQ(Base64UrlEncode(Ed25519Sign(rfc.private_pem, input)), signature);
  auto verifier = Codec({.algorithm = JwtAlgorithm::kEdDsa, .public_key_pem = rfc.public_pem});
  ASSERT_NE(verifier, nullptr);
  EXPECT_FALSE(verifier->can_sign());
  // The signature is good, so what is refused is the payload, which is text, not claims.
  EXPECT_EQ(Refusal(*verifier, input + "." + signature), "malformed token");
  std::string tampered = signature;
  tampered[10] = tampered[10] == 'A' ? 'B' : 'A';
  EXPECT_EQ(Refusal(*verifier, input + "." + tampered), "bad signature");
}

TEST_F(JwtTest, EdDsaRefusesOtherKeysAlgorithmsAndConfusion) {
  auto codec = EdDsa();
  const std::string header = R"({"alg":"EdDSA","typ":"JWT"})";
  const std::string input = SigningInput(header, Payload());
  EXPECT_TRUE(
      codec->Verify(input + "." + Base64UrlEncode(Ed25519Sign(Ed25519Key().private_pem, input)),
                    clock_.Now())
          .has_value());
  EXPECT_EQ(Refusal(*codec, input + "." +
                                Base64UrlEncode(Ed25519Sign(OtherEd25519Key().private_pem, input))),
            "bad signature");
  // HS256 with our public key as the HMAC secret (algorithm confusion).
  EXPECT_EQ(Refusal(*codec, ForgeHmac(R"({"alg":"HS256","typ":"JWT"})", Payload(),
                                      Ed25519Key().public_pem)),
            "algorithm not allowed");
  for (const char* alg : {"eddsa", "EDDSA", "Ed25519", "none"}) {
    const std::string other = SigningInput(std::string(R"({"alg":")") + alg + R"("})", Payload());
    EXPECT_EQ(Refusal(*codec, other + "." +
                                  Base64UrlEncode(Ed25519Sign(Ed25519Key().private_pem, other))),
              "algorithm not allowed")
        << alg;
  }
  // An EdDSA token is refused by codecs pinned to the other algorithms.
  auto token = codec->Sign(Claims());
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(Refusal(*Hs256(), *token), "algorithm not allowed");
  EXPECT_EQ(Refusal(*Rs256(), *token), "algorithm not allowed");
  EXPECT_EQ(Refusal(*Es256(), *token), "algorithm not allowed");
  std::string truncated = *token;
  truncated.pop_back();
  EXPECT_EQ(Refusal(*codec, truncated), "bad signature");
}

TEST_F(JwtTest, OptionalClaimsLeftOutRoundTripAsDefaults) {
  auto codec = Hs256();
  TokenClaims claims{.subject = "u", .expires_at = clock_.Now() + 1min};
  auto token = codec->Sign(claims);
  ASSERT_TRUE(token.has_value());
  auto back = codec->Verify(*token, clock_.Now());
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, claims);
}

TEST_F(JwtTest, VerifyOnlyCodecVerifiesButCannotSign) {
  auto signer = Rs256();
  auto verifier = Codec({.algorithm = JwtAlgorithm::kRs256, .public_key_pem = RsaKey().public_pem});
  EXPECT_FALSE(verifier->can_sign());
  auto token = signer->Sign(Claims());
  ASSERT_TRUE(token.has_value());
  EXPECT_TRUE(verifier->Verify(*token, clock_.Now()).has_value());
  auto refused = verifier->Sign(Claims());
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, core::Code::kFailedPrecondition);
}

TEST_F(JwtTest, SignRefusesClaimsWithoutSubjectOrExpiry) {
  auto codec = Hs256();
  TokenClaims no_subject = Claims();
  no_subject.subject.clear();
  EXPECT_EQ(codec->Sign(no_subject).error().code, core::Code::kInvalidArgument);
  TokenClaims no_exp = Claims();
  no_exp.expires_at = {};
  EXPECT_EQ(codec->Sign(no_exp).error().code, core::Code::kInvalidArgument);
}

// Time.

TEST_F(JwtTest, ExpiredPastLeewayIsRefused) {
  auto codec = Hs256();
  auto token = codec->Sign(Claims());
  ASSERT_TRUE(token.has_value());
  clock_.Advance(15min + 61s);
  EXPECT_EQ(Refusal(*codec, *token), "token expired");
}

TEST_F(JwtTest, ExpiredWithinLeewayIsAccepted) {
  auto codec = Hs256();
  auto token = codec->Sign(Claims());
  ASSERT_TRUE(token.has_value());
  clock_.Advance(15min + 60s);
  EXPECT_TRUE(codec->Verify(*token, clock_.Now()).has_value());
  auto strict = Codec({.hmac_secret = kSecret}, {.leeway = 0s});
  EXPECT_EQ(Refusal(*strict, *token), "token expired");
}

TEST_F(JwtTest, NotBeforeInTheFutureIsRefused) {
  auto codec = Hs256();
  TokenClaims claims = Claims();
  claims.not_before = clock_.Now() + 61s;
  auto token = codec->Sign(claims);
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(Refusal(*codec, *token), "token not yet valid");
  clock_.Advance(1s);
  EXPECT_TRUE(codec->Verify(*token, clock_.Now()).has_value());
}

TEST_F(JwtTest, IssuedInTheFutureIsRefused) {
  auto codec = Hs256();
  TokenClaims claims = Claims();
  claims.issued_at = clock_.Now() + 2min;
  claims.not_before = {};
  auto token = codec->Sign(claims);
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(Refusal(*codec, *token), "token issued in the future");
}

TEST_F(JwtTest, MissingExpIsRefused) {
  auto codec = Hs256();
  const std::string header = R"({"alg":"HS256","typ":"JWT"})";
  EXPECT_EQ(Refusal(*codec, ForgeHmac(header, Payload("", /*with_exp=*/false))), "missing expiry");
  // The same forge with exp accepted proves the forging itself is sound.
  EXPECT_TRUE(codec->Verify(ForgeHmac(header, Payload()), clock_.Now()).has_value());
}

TEST_F(JwtTest, TimesThatAreNotIntegersAreRefused) {
  auto codec = Hs256();
  const std::string header = R"({"alg":"HS256"})";
  const std::string later = std::to_string(Now() + 600);
  for (const std::string& exp :
       {"\"" + later + "\"", later + ".5", std::string("true"), std::string("-1"),
        std::string("1e30"), std::string("9223372036854775807")}) {
    EXPECT_EQ(Refusal(*codec, ForgeHmac(header, Payload(",\"exp\":" + exp, false))),
              "malformed claim exp")
        << exp;
  }
  // Past int64: the JSON parser of libjwt refuses the payload before our claim checks see it.
  EXPECT_EQ(Refusal(*codec, ForgeHmac(header, Payload(",\"exp\":18446744073709551615", false))),
            "malformed token");
  EXPECT_EQ(Refusal(*codec, ForgeHmac(header, Payload(",\"nbf\":\"0\""))), "malformed claim nbf");
  EXPECT_EQ(Refusal(*codec, ForgeHmac(header, Payload(",\"ver\":\"1\""))), "malformed claim ver");
}

// Issuer, audience, use.

TEST_F(JwtTest, WrongIssuerIsRefused) {
  auto other = Codec({.hmac_secret = kSecret}, {.issuer = "someone-else"});
  auto token = other->Sign(Claims());
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(Refusal(*Hs256(), *token), "wrong issuer");
}

TEST_F(JwtTest, WrongAudienceIsRefused) {
  auto other = Codec({.hmac_secret = kSecret}, {.audience = "billing"});
  auto token = other->Sign(Claims());
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(Refusal(*Hs256(), *token), "wrong audience");
}

TEST_F(JwtTest, AudienceArrayContainingOursIsAccepted) {
  auto codec = Hs256();
  const std::string header = R"({"alg":"HS256","typ":"JWT"})";
  std::string payload = R"({"iss":"gpuorch","aud":["billing","gpuorch-api"],"sub":"u1",)"
                        R"("token_use":"access","exp":)" +
                        std::to_string(Now() + 600) + "}";
  auto claims = codec->Verify(ForgeHmac(header, payload), clock_.Now());
  ASSERT_TRUE(claims.has_value()) << claims.error().message;
  EXPECT_EQ(claims->subject, "u1");
  payload = R"({"iss":"gpuorch","aud":["billing"],"sub":"u1","token_use":"access","exp":)" +
            std::to_string(Now() + 600) + "}";
  EXPECT_EQ(Refusal(*codec, ForgeHmac(header, payload)), "wrong audience");
}

TEST_F(JwtTest, RefreshTokenIsRefusedAsAccessToken) {
  auto codec = Hs256();
  TokenClaims claims = Claims();
  claims.token_type = "refresh";
  auto token = codec->Sign(claims);
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(Refusal(*codec, *token), "not an access token");
}

TEST_F(JwtTest, DuplicateClaimNamesAreRefused) {
  auto codec = Hs256();
  const std::string header = R"({"alg":"HS256"})";
  EXPECT_EQ(Refusal(*codec, ForgeHmac(header, Payload(R"(,"sub":"admin")"))), "malformed token");
  EXPECT_EQ(Refusal(*codec, ForgeHmac(R"({"alg":"HS256","alg":"HS256"})", Payload())),
            "malformed token");
}

// Algorithm pinning and header rules.

TEST_F(JwtTest, AlgNoneWithoutSignatureIsRefused) {
  auto codec = Hs256();
  const std::string input = SigningInput(R"({"alg":"none","typ":"JWT"})", Payload());
  EXPECT_EQ(Refusal(*codec, input + "."), "algorithm not allowed");
  EXPECT_EQ(Refusal(*codec, input), "malformed token");
}

TEST_F(JwtTest, AlgNoneWithSignatureSegmentIsRefused) {
  auto codec = Hs256();
  const std::string input = SigningInput(R"({"alg":"none"})", Payload());
  EXPECT_EQ(Refusal(*codec, input + "." + Base64UrlEncode(Hmac(EVP_sha256(), kSecret, input))),
            "algorithm not allowed");
}

TEST_F(JwtTest, AlgNameIsMatchedExactly) {
  auto codec = Hs256();
  for (const char* alg : {"None", "NONE", "hs256", "Hs256", "HS256 "}) {
    const std::string header = std::string(R"({"alg":")") + alg + "\"}";
    EXPECT_EQ(Refusal(*codec, ForgeHmac(header, Payload())), "algorithm not allowed") << alg;
  }
  EXPECT_EQ(Refusal(*codec, ForgeHmac(R"({"typ":"JWT"})", Payload())), "algorithm not allowed");
  EXPECT_EQ(Refusal(*codec, ForgeHmac(R"({"alg":["HS256"]})", Payload())), "algorithm not allowed");
}

TEST_F(JwtTest, HmacSignedWithRsaPublicKeyIsRefusedByRs256Codec) {
  auto codec = Rs256();
  // The classic confusion: the verifier's public PEM used as an HMAC secret.
  const std::string token =
      ForgeHmac(R"({"alg":"HS256","typ":"JWT"})", Payload(), RsaKey().public_pem);
  EXPECT_EQ(Refusal(*codec, token), "algorithm not allowed");
  const std::string relabelled =
      ForgeHmac(R"({"alg":"RS256","typ":"JWT"})", Payload(), RsaKey().public_pem);
  EXPECT_EQ(Refusal(*codec, relabelled), "bad signature");
}

TEST_F(JwtTest, Hs512WithValidSignatureFromSameSecretIsRefused) {
  auto codec = Hs256();
  const std::string token =
      ForgeHmac(R"({"alg":"HS512","typ":"JWT"})", Payload(), kSecret, EVP_sha512());
  EXPECT_EQ(Refusal(*codec, token), "algorithm not allowed");
}

TEST_F(JwtTest, Rs256WithEmptySignatureIsRefused) {
  auto codec = Rs256();
  auto token = codec->Sign(Claims());
  ASSERT_TRUE(token.has_value());
  const std::string unsigned_token = token->substr(0, token->rfind('.') + 1);
  EXPECT_EQ(Refusal(*codec, unsigned_token), "missing signature");
}

TEST_F(JwtTest, EmptySignatureIsRefusedForEveryAlgorithm) {
  for (auto* make : {&JwtTest::Hs256, &JwtTest::Rs256, &JwtTest::Es256}) {
    auto codec = make();
    auto token = codec->Sign(Claims());
    ASSERT_TRUE(token.has_value());
    EXPECT_EQ(Refusal(*codec, token->substr(0, token->rfind('.') + 1)), "missing signature");
  }
}

TEST_F(JwtTest, TamperedPayloadIsRefusedForEveryAlgorithm) {
  for (auto* make : {&JwtTest::Hs256, &JwtTest::Rs256, &JwtTest::Es256}) {
    auto codec = make();
    auto token = codec->Sign(Claims());
    ASSERT_TRUE(token.has_value());
    const size_t first = token->find('.');
    const size_t second = token->find('.', first + 1);
    TokenClaims admin = Claims();
    admin.subject = "admin";
    auto other = codec->Sign(admin);
    ASSERT_TRUE(other.has_value());
    const size_t o1 = other->find('.');
    const size_t o2 = other->find('.', o1 + 1);
    // Our header, the admin payload, our signature.
    const std::string spliced =
        token->substr(0, first) + other->substr(o1, o2 - o1) + token->substr(second);
    EXPECT_EQ(Refusal(*codec, spliced), "bad signature");
  }
}

TEST_F(JwtTest, TokenSignedByAnotherKeyIsRefused) {
  auto other = Codec({.hmac_secret = kOtherSecret});
  auto token = other->Sign(Claims());
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(Refusal(*Hs256(), *token), "bad signature");

  auto other_rsa =
      Codec({.algorithm = JwtAlgorithm::kRs256, .private_key_pem = OtherRsaKey().private_pem});
  auto rsa_token = other_rsa->Sign(Claims());
  ASSERT_TRUE(rsa_token.has_value());
  EXPECT_EQ(Refusal(*Rs256(), *rsa_token), "bad signature");
  // The other key's own codec accepts it: the refusal is about the key.
  EXPECT_TRUE(other_rsa->Verify(*rsa_token, clock_.Now()).has_value());
}

TEST_F(JwtTest, RsaSignatureMadeByHandIsAccepted) {
  // Proves the RS256 forging helper used by other tests builds tokens the codec can verify.
  const std::string input = SigningInput(R"({"alg":"RS256","typ":"JWT"})", Payload());
  const std::string token = input + "." + Base64UrlEncode(RsaSign(RsaKey().private_pem, input));
  EXPECT_TRUE(Rs256()->Verify(token, clock_.Now()).has_value());
}

TEST_F(JwtTest, KeyUrlAndCriticalHeadersAreRefused) {
  auto rs = Rs256();
  for (const char* extra :
       {R"("jku":"https://evil.example/keys")", R"("x5u":"https://e.x/c")",
        R"("jwk":{"kty":"RSA","n":"AQAB","e":"AQAB"})", R"("x5c":["MIIB"])", R"("crit":["exp"])"}) {
    const std::string header = std::string(R"({"alg":"RS256",)") + extra + "}";
    const std::string input = SigningInput(header, Payload());
    const std::string token = input + "." + Base64UrlEncode(RsaSign(RsaKey().private_pem, input));
    EXPECT_EQ(Refusal(*rs, token), "header parameter not allowed") << extra;
  }
}

TEST_F(JwtTest, TypOtherThanJwtIsRefused) {
  auto codec = Hs256();
  EXPECT_EQ(Refusal(*codec, ForgeHmac(R"({"alg":"HS256","typ":"refresh+jwt"})", Payload())),
            "wrong token type");
  EXPECT_EQ(Refusal(*codec, ForgeHmac(R"({"alg":"HS256","typ":1})", Payload())),
            "wrong token type");
}

// Shape.

TEST_F(JwtTest, GarbageTokensAreRefused) {
  auto codec = Hs256();
  auto token = codec->Sign(Claims());
  ASSERT_TRUE(token.has_value());
  const std::string valid = *token;
  const std::vector<std::string> garbage = {
      "",
      "garbage",
      ".",
      "..",
      "a.b.c",
      valid + ".extra",
      "a.b.c.d",
      std::string(9000, 'a'),
      valid + std::string(9000 - valid.size(), 'A'),
      "###.$$$.%%%",
      valid.substr(0, valid.find('.')) + "==" + valid.substr(valid.find('.')),
      " " + valid,
      valid + "\n",
      std::string("eyJ\0hbGciOiJIUzI1NiJ9.e30.c2ln", 30),
      Base64UrlEncode("[]") + "." + Base64UrlEncode("{}") + ".c2ln",
      Base64UrlEncode("{\"alg\":\"HS256\"") + "." + Base64UrlEncode("{}") + ".c2ln",
      "." + valid.substr(valid.find('.') + 1),
  };
  for (const std::string& t : garbage) {
    Refusal(*codec, t);
  }
  EXPECT_EQ(Refusal(*codec, valid + ".extra"), "malformed token");
}

TEST_F(JwtTest, NonCanonicalBase64SignatureIsRefused) {
  auto codec = Hs256();
  auto token = codec->Sign(Claims());
  ASSERT_TRUE(token.has_value());
  // A 32-byte MAC is 43 characters, the last carrying 2 unused bits; setting one of them spells
  // the same bytes differently.
  std::string altered = *token;
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const size_t value = alphabet.find(altered.back());
  ASSERT_EQ(value % 4, 0u);
  altered.back() = alphabet[value + 1];
  EXPECT_EQ(Refusal(*codec, altered), "bad signature");
}

TEST_F(JwtTest, ErrorMessagesNeverContainTheTokenOrKey) {
  auto codec = Hs256();
  auto token = codec->Sign(Claims());
  ASSERT_TRUE(token.has_value());
  const std::string header = R"({"alg":"HS256","typ":"JWT"})";
  const std::vector<std::string> tokens = {
      *token + "x",
      token->substr(0, token->rfind('.') + 1),
      ForgeHmac(header, Payload(), kOtherSecret),
      ForgeHmac(R"({"alg":"none"})", Payload()),
      ForgeHmac(header, Payload(",\"exp\":\"tomorrow-secret-value\"", false)),
      ForgeHmac(header, R"({"iss":"evil-issuer-name","aud":"gpuorch-api","exp":1})"),
  };
  for (const std::string& t : tokens) {
    const std::string message = Refusal(*codec, t);
    EXPECT_FALSE(message.empty());
    for (size_t start = 0; start + 8 <= t.size(); start += 4) {
      ASSERT_EQ(message.find(t.substr(start, 8)), std::string::npos) << message;
    }
    EXPECT_EQ(message.find("tomorrow"), std::string::npos);
    EXPECT_EQ(message.find("evil"), std::string::npos);
    EXPECT_EQ(message.find(kSecret.substr(0, 8)), std::string::npos);
  }
}

TEST_F(JwtTest, ConcurrentSignAndVerifyAgree) {
  for (auto* make : {&JwtTest::Hs256, &JwtTest::Es256, &JwtTest::EdDsa}) {
    auto codec = make();
    std::vector<std::thread> threads;
    std::vector<int> failures(4, 0);
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 50; ++i) {
          TokenClaims claims = Claims();
          claims.subject = "user-" + std::to_string(t) + "-" + std::to_string(i);
          auto token = codec->Sign(claims);
          auto back = token ? codec->Verify(*token, clock_.Now())
                            : core::Result<TokenClaims>(tl::unexpected(token.error()));
          if (!back || *back != claims) {
            ++failures[t];
          }
        }
      });
    }
    for (auto& th : threads) {
      th.join();
    }
    EXPECT_EQ(failures, std::vector<int>(4, 0));
  }
}

// Key checks.

TEST(JwtCreateTest, SecretShorterThan32BytesIsRefused) {
  auto short_secret = JwtCodec::Create({.hmac_secret = std::string(31, 'k')}, {});
  ASSERT_FALSE(short_secret.has_value());
  EXPECT_EQ(short_secret.error().code, core::Code::kInvalidArgument);
  EXPECT_EQ(short_secret.error().field, "hmac_secret");
  EXPECT_TRUE(JwtCodec::Create({.hmac_secret = std::string(32, 'k')}, {}).has_value());
}

TEST(JwtCreateTest, RsaKeyForEs256IsRefused) {
  auto result = JwtCodec::Create(
      {.algorithm = JwtAlgorithm::kEs256, .public_key_pem = RsaKey().public_pem}, {});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, core::Code::kInvalidArgument);
  EXPECT_EQ(result.error().field, "public_key_pem");
  auto ec_for_rs = JwtCodec::Create(
      {.algorithm = JwtAlgorithm::kRs256, .private_key_pem = EcKey().private_pem}, {});
  ASSERT_FALSE(ec_for_rs.has_value());
  EXPECT_EQ(ec_for_rs.error().field, "private_key_pem");
}

TEST(JwtCreateTest, OnlyAnEd25519KeyServesEdDsa) {
  for (const KeyPair* other : {&RsaKey(), &EcKey()}) {
    auto result = JwtCodec::Create(
        {.algorithm = JwtAlgorithm::kEdDsa, .public_key_pem = other->public_pem}, {});
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().field, "public_key_pem");
    EXPECT_NE(result.error().message.find("Ed25519"), std::string::npos);
  }
  for (JwtAlgorithm algorithm : {JwtAlgorithm::kRs256, JwtAlgorithm::kEs256}) {
    auto result =
        JwtCodec::Create({.algorithm = algorithm, .private_key_pem = Ed25519Key().private_pem}, {});
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().field, "private_key_pem");
  }
  auto mismatched = JwtCodec::Create({.algorithm = JwtAlgorithm::kEdDsa,
                                      .private_key_pem = Ed25519Key().private_pem,
                                      .public_key_pem = OtherEd25519Key().public_pem},
                                     {});
  ASSERT_FALSE(mismatched.has_value());
  EXPECT_EQ(mismatched.error().field, "private_key_pem");
  auto secret = JwtCodec::Create({.algorithm = JwtAlgorithm::kEdDsa,
                                  .hmac_secret = kSecret,
                                  .public_key_pem = Ed25519Key().public_pem},
                                 {});
  ASSERT_FALSE(secret.has_value());
  EXPECT_EQ(secret.error().field, "hmac_secret");
}

TEST(JwtCreateTest, SmallRsaKeyIsRefused) {
  const KeyPair small = GeneratePair(EVP_PKEY_RSA, 1024);
  auto result =
      JwtCodec::Create({.algorithm = JwtAlgorithm::kRs256, .public_key_pem = small.public_pem}, {});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().field, "public_key_pem");
}

TEST(JwtCreateTest, MismatchedOrMalformedKeysAreRefused) {
  auto mismatched = JwtCodec::Create({.algorithm = JwtAlgorithm::kRs256,
                                      .private_key_pem = RsaKey().private_pem,
                                      .public_key_pem = OtherRsaKey().public_pem},
                                     {});
  ASSERT_FALSE(mismatched.has_value());
  EXPECT_EQ(mismatched.error().field, "private_key_pem");
  auto garbage = JwtCodec::Create(
      {.algorithm = JwtAlgorithm::kEs256, .public_key_pem = "-----BEGIN PUBLIC KEY-----\nxx\n"},
      {});
  ASSERT_FALSE(garbage.has_value());
  EXPECT_EQ(garbage.error().field, "public_key_pem");
  // A private key where the public one belongs.
  auto swapped = JwtCodec::Create(
      {.algorithm = JwtAlgorithm::kEs256, .public_key_pem = EcKey().private_pem}, {});
  EXPECT_FALSE(swapped.has_value());
  auto nothing = JwtCodec::Create({.algorithm = JwtAlgorithm::kEs256}, {});
  EXPECT_FALSE(nothing.has_value());
  auto secret_for_rs = JwtCodec::Create({.algorithm = JwtAlgorithm::kRs256,
                                         .hmac_secret = kSecret,
                                         .public_key_pem = RsaKey().public_pem},
                                        {});
  ASSERT_FALSE(secret_for_rs.has_value());
  EXPECT_EQ(secret_for_rs.error().field, "hmac_secret");
}

TEST(JwtCreateTest, EncryptedPrivateKeyIsRefusedWithoutPrompting) {
  BIO* bio = BIO_new_mem_buf(EcKey().private_pem.data(), -1);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  BIO* out = BIO_new(BIO_s_mem());
  char pass[] = "passphrase";
  PEM_write_bio_PKCS8PrivateKey(out, key, EVP_aes_256_cbc(), pass, sizeof(pass) - 1, nullptr,
                                nullptr);
  const std::string encrypted = BioText(out);
  BIO_free(out);
  EVP_PKEY_free(key);
  ASSERT_NE(encrypted.find("ENCRYPTED"), std::string::npos);
  auto result =
      JwtCodec::Create({.algorithm = JwtAlgorithm::kEs256, .private_key_pem = encrypted}, {});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().field, "private_key_pem");
}

TEST(JwtCreateTest, BadProfileIsRefused) {
  EXPECT_EQ(JwtCodec::Create({.hmac_secret = kSecret}, {.issuer = ""}).error().field, "issuer");
  EXPECT_EQ(JwtCodec::Create({.hmac_secret = kSecret}, {.audience = ""}).error().field, "audience");
  EXPECT_EQ(JwtCodec::Create({.hmac_secret = kSecret}, {.leeway = -1s}).error().field, "leeway");
}

// LoadJwtKeys.

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

TEST(JwtLoadKeysTest, CreatesKeyFileWithMode0600AndReadsItBack) {
  testing::TempDir dir;
  auto first = LoadJwtKeys({.data_dir = dir.path().string()});
  ASSERT_TRUE(first.has_value()) << first.error().message;
  EXPECT_EQ(first->algorithm, JwtAlgorithm::kHs256);
  EXPECT_EQ(first->hmac_secret.size(), 32u);
  struct stat st {};
  ASSERT_EQ(::stat(dir.File("jwt.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto second = LoadJwtKeys({.data_dir = dir.path().string()});
  ASSERT_TRUE(second.has_value()) << second.error().message;
  EXPECT_EQ(second->hmac_secret, first->hmac_secret);
  // Only jwt.key is left behind, no temporary file.
  size_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    ++files;
  }
  EXPECT_EQ(files, 1u);
}

TEST(JwtLoadKeysTest, LooseKeyFilePermissionsAreRefused) {
  testing::TempDir dir;
  ASSERT_TRUE(LoadJwtKeys({.data_dir = dir.path().string()}).has_value());
  ASSERT_EQ(::chmod(dir.File("jwt.key").c_str(), 0644), 0);
  auto result = LoadJwtKeys({.data_dir = dir.path().string()});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, core::Code::kFailedPrecondition);
}

TEST(JwtLoadKeysTest, SecretMayBeRawOrBase64AndMustBeLongEnough) {
  auto raw = LoadJwtKeys({.secret = kSecret});
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(raw->hmac_secret, kSecret);
  // base64 of 32 bytes 0x00..0x1f.
  std::string bytes;
  for (int i = 0; i < 32; ++i) {
    bytes += static_cast<char>(i);
  }
  auto decoded = LoadJwtKeys({.secret = "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="});
  ASSERT_TRUE(decoded.has_value()) << decoded.error().message;
  EXPECT_EQ(decoded->hmac_secret, bytes);
  auto too_short = LoadJwtKeys({.secret = "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg=="});
  ASSERT_FALSE(too_short.has_value());
  EXPECT_EQ(too_short.error().code, core::Code::kInvalidArgument);
  EXPECT_EQ(too_short.error().field, "secret");
  EXPECT_EQ(LoadJwtKeys({.secret = "short"}).error().field, "secret");
  EXPECT_EQ(LoadJwtKeys({.secret = "base64:!!!"}).error().field, "secret");
}

TEST(JwtLoadKeysTest, SecretFileIsReadWithoutItsTrailingNewline) {
  testing::TempDir dir;
  WriteFile(dir.File("secret"), kSecret + "\n");
  auto keys = LoadJwtKeys({.secret_file = dir.File("secret")});
  ASSERT_TRUE(keys.has_value()) << keys.error().message;
  EXPECT_EQ(keys->hmac_secret, kSecret);
  WriteFile(dir.File("short"), "tiny\n");
  EXPECT_EQ(LoadJwtKeys({.secret_file = dir.File("short")}).error().field, "secret_file");
  EXPECT_EQ(LoadJwtKeys({.secret_file = dir.File("missing")}).error().field, "secret_file");
}

TEST(JwtLoadKeysTest, PemFilesLoadAndPublicKeyIsDerivedFromPrivate) {
  testing::TempDir dir;
  WriteFile(dir.File("ec.pem"), EcKey().private_pem);
  auto keys = LoadJwtKeys({.algorithm = "ES256", .private_key_file = dir.File("ec.pem")});
  ASSERT_TRUE(keys.has_value()) << keys.error().message;
  EXPECT_FALSE(keys->public_key_pem.empty());
  auto verifier = JwtCodec::Create(
      {.algorithm = JwtAlgorithm::kEs256, .public_key_pem = keys->public_key_pem}, {});
  auto signer = JwtCodec::Create(*keys, {});
  ASSERT_TRUE(verifier.has_value() && signer.has_value());
  core::FakeClock clock;
  auto token = (*signer)->Sign({.subject = "u", .expires_at = clock.Now() + 1min});
  ASSERT_TRUE(token.has_value());
  EXPECT_TRUE((*verifier)->Verify(*token, clock.Now()).has_value());

  WriteFile(dir.File("rsa.pub"), RsaKey().public_pem);
  auto rsa_for_es = LoadJwtKeys({.algorithm = "ES256", .public_key_file = dir.File("rsa.pub")});
  ASSERT_FALSE(rsa_for_es.has_value());
  EXPECT_EQ(rsa_for_es.error().field, "public_key_file");
}

TEST(JwtLoadKeysTest, EdDsaPrivateKeyFileLoadsAndSignsForItsPublicKey) {
  testing::TempDir dir;
  WriteFile(dir.File("ed25519.pem"), Ed25519Key().private_pem);
  auto keys = LoadJwtKeys({.algorithm = "EdDSA", .private_key_file = dir.File("ed25519.pem")});
  ASSERT_TRUE(keys.has_value()) << keys.error().message;
  EXPECT_EQ(keys->algorithm, JwtAlgorithm::kEdDsa);
  EXPECT_EQ(keys->public_key_pem, Ed25519Key().public_pem);
  auto signer = JwtCodec::Create(*keys, {});
  auto verifier = JwtCodec::Create(
      {.algorithm = JwtAlgorithm::kEdDsa, .public_key_pem = Ed25519Key().public_pem}, {});
  ASSERT_TRUE(signer.has_value() && verifier.has_value());
  core::FakeClock clock;
  auto token = (*signer)->Sign({.subject = "u", .expires_at = clock.Now() + 1min});
  ASSERT_TRUE(token.has_value());
  EXPECT_TRUE((*verifier)->Verify(*token, clock.Now()).has_value());
  EXPECT_EQ(LoadJwtKeys({.algorithm = "EdDSA", .secret = kSecret}).error().field, "secret");
  EXPECT_EQ(LoadJwtKeys({.algorithm = "eddsa", .private_key_file = dir.File("ed25519.pem")})
                .error()
                .field,
            "algorithm");
}

TEST(JwtLoadKeysTest, UnknownAlgorithmAndMixedMaterialAreRefused) {
  EXPECT_EQ(LoadJwtKeys({.algorithm = "HS512", .secret = kSecret}).error().field, "algorithm");
  EXPECT_EQ(LoadJwtKeys({.algorithm = "none"}).error().field, "algorithm");
  EXPECT_EQ(LoadJwtKeys({.algorithm = "RS256", .secret = kSecret}).error().field, "secret");
  EXPECT_EQ(LoadJwtKeys({.algorithm = "RS256"}).error().field, "private_key_file");
  EXPECT_EQ(LoadJwtKeys({.secret = kSecret, .private_key_file = "/x"}).error().field,
            "private_key_file");
  EXPECT_EQ(LoadJwtKeys({}).error().field, "data_dir");
}

}  // namespace
}  // namespace gpuorch::security
