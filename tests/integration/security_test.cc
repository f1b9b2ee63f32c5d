// Authentication, authorisation, quotas, rate limits and secrets against the real service
// (../shared/design/ADVERSARIAL.md T19-T37 and the secrets rules). Each test names the attack and
// checks the documented answer, that nothing was created or changed, and that the service stays up.
#include <openssl/hmac.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "integration/service_harness.h"

namespace gpuorch::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// The service's HS256 key in these tests, so that a test can mint tokens the service would accept
// (and change one thing at a time).
constexpr const char* kJwtSecret = "integration-test-secret-0123456789abcdef";

std::string Base64Url(const std::string& in) {
  static const char* kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t n = uint8_t(in[i]) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
  } else if (i + 2 == in.size()) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
  }
  return out;
}

std::string Hmac(const EVP_MD* md, const std::string& key, const std::string& data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

// A token with `header` and `payload`, signed with HMAC (`md`) under `key`; no signature when
// `md` is null.
std::string MintToken(const json& header, const json& payload, const std::string& key,
                      const EVP_MD* md = EVP_sha256()) {
  std::string signing_input = Base64Url(header.dump()) + "." + Base64Url(payload.dump());
  if (md == nullptr) {
    return signing_input + ".";
  }
  return signing_input + "." + Base64Url(Hmac(md, key, signing_input));
}

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Bearer(const std::string& token) { return "Authorization: Bearer " + token; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Everything the data dir holds, as bytes (database, WAL, logs, key files excluded by the caller).
std::string ReadTree(const std::string& dir, const std::set<std::string>& skip_names) {
  std::string all;
  std::error_code ec;
  for (auto& entry : std::filesystem::recursive_directory_iterator(dir, ec)) {
    if (entry.is_regular_file() && !skip_names.count(entry.path().filename().string())) {
      all += ReadFile(entry.path().string());
    }
  }
  return all;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    svc_.SetEnv("GPUORCH_JWT_SECRET", kJwtSecret);
    svc_.SetEnv("GPUORCH_LOGIN_ATTEMPTS_PER_MINUTE", "1000");
  }
  void StartService() { ASSERT_TRUE(svc_.Start()) << svc_.last_output(); }

  // A user made by the admin, and a token for them (an API token, or a login JWT).
  std::string AddUser(const std::string& name, const std::string& role = "user",
                      const json& limits = nullptr) {
    json body{{"name", name}, {"password", "pw-" + name + "-secret"}, {"role", role}};
    if (!limits.is_null()) {
      body["limits"] = limits;
    }
    auto r = svc_.Post("/api/v1/users", body.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return Login(name, "pw-" + name + "-secret");
  }
  std::string Login(const std::string& name, const std::string& password) {
    auto r = HttpCall("POST", svc_.url() + "/api/v1/auth/token",
                      json{{"username", name}, {"password", password}}.dump(),
                      {"Content-Type: application/json"});
    EXPECT_EQ(r.status, 200) << r.body;
    return r.Json().value("access_token", "");
  }
  HttpResult As(const std::string& token, const std::string& method, const std::string& path,
                const std::string& body = "") const {
    std::vector<std::string> headers = {Bearer(token)};
    if (!body.empty()) {
      headers.push_back("Content-Type: application/json");
    }
    return HttpCall(method, svc_.url() + path, body, headers);
  }
  std::string SubmitAs(const std::string& token, const json& body) const {
    auto r = As(token, "POST", "/api/v1/jobs/submit", body.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return r.Json().value("job_id", "");
  }
  int JobCount() const { return static_cast<int>(svc_.Get("/api/v1/jobs/?limit=1000").Json()["jobs"].size()); }
  json ClaimsFor(const std::string& subject_token) const {
    // The user id behind a token, through whoami.
    return As(subject_token, "GET", "/api/v1/auth/whoami").Json();
  }
  json ValidClaims(const std::string& user_id) const {
    const int64_t now = UnixNow();
    return json{{"sub", user_id},      {"iss", "gpuorch"},  {"aud", "gpuorch-api"},
                {"iat", now},          {"nbf", now},        {"exp", now + 600},
                {"jti", "test-jti-1"}, {"ver", 0},          {"token_use", "access"}};
  }
  void ExpectUnauthorized(const HttpResult& r) const {
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_EQ(r.Json()["error"]["code"].get<std::string>().empty(), false) << r.body;
    EXPECT_NE(r.headers.count("www-authenticate"), 0u);
    EXPECT_EQ(svc_.Get("/health").status, 200);
  }

  ServiceProcess svc_;
};

const json kSleepJob = {{"name", "sleeper"}, {"config", {{"command", {"sleep", "30"}}}}};
const json kQuickJob = {{"name", "quick"}, {"config", {{"command", {"true"}}, {"gpu_count", 1}}}};

// ---- secure by default -------------------------------------------------------------------------

TEST_F(SecurityTest, FirstStartWritesAdminTokenFileWithMode0600AndSaysSoOnce) {
  StartService();
  const std::string path = svc_.data_dir() + "/data/admin.token";
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((svc_.data_dir() + "/data").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u) << "the data dir it created is the owner's alone";
  EXPECT_FALSE(svc_.token().empty());
  EXPECT_EQ(svc_.Get("/api/v1/auth/whoami").Json()["name"], "admin");
  const std::string first_token = svc_.token();
  ASSERT_EQ(svc_.Terminate(), 0);
  ASSERT_TRUE(svc_.Start()) << svc_.last_output();
  EXPECT_EQ(svc_.token(), first_token) << "a restart must not make a second admin token";
  EXPECT_EQ(svc_.last_output().find("first start"), std::string::npos) << svc_.last_output();
}

TEST_F(SecurityTest, EveryApiRouteWithoutTokenAnswers401AndCreatesNothing) {
  StartService();
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/api/v1/jobs/"},
           {"POST", "/api/v1/jobs/submit"},
           {"GET", "/api/v1/jobs/job-x"},
           {"DELETE", "/api/v1/jobs/job-x"},
           {"GET", "/api/v1/queue"},
           {"GET", "/api/v1/templates"},
           {"GET", "/api/v1/instances/"},
           {"GET", "/api/v1/nodes"},
           {"GET", "/api/v1/costs"},
           {"GET", "/api/v1/providers/"},
           {"GET", "/api/v1/users"},
           {"PUT", "/api/v1/providers/runpod/credentials"},
           {"GET", "/api/v1/no-such-route"}}) {
    auto r = HttpCall(method, svc_.url() + path, method == "GET" ? "" : kSleepJob.dump(),
                      {"Content-Type: application/json"});
    EXPECT_EQ(r.status, 401) << method << " " << path << ": " << r.body;
  }
  EXPECT_EQ(JobCount(), 0);
}

TEST_F(SecurityTest, HealthStaysOpenWithoutToken) {
  StartService();
  EXPECT_EQ(HttpCall("GET", svc_.url() + "/health").status, 200);
}

TEST_F(SecurityTest, MetricsIsOpenByDefaultAndBehindATokenWhenConfigured) {
  StartService();
  EXPECT_EQ(HttpCall("GET", svc_.url() + "/metrics").status, 404) << "open, nothing exported yet";
  ASSERT_EQ(svc_.Terminate(), 0);
  svc_.SetEnv("GPUORCH_METRICS_AUTH", "on");
  StartService();
  EXPECT_EQ(HttpCall("GET", svc_.url() + "/metrics").status, 401);
  EXPECT_EQ(svc_.Get("/metrics").status, 404);
}

TEST_F(SecurityTest, MalformedAuthorizationHeadersAnswer401) {
  StartService();
  for (const std::string& header : std::vector<std::string>{
           "Authorization: Basic YWRtaW46YWRtaW4=", "Authorization: Bearer",
        "Authorization: Bearer ", "Authorization: bearer not-a-token",
        "Authorization: Bearer gpo_" + std::string(43, 'A'), "Authorization: Token abc"}) {
    auto r = HttpCall("GET", svc_.url() + "/api/v1/jobs/", "", {header});
    ExpectUnauthorized(r);
  }
}

TEST_F(SecurityTest, AuthOffIsLoudAndLetsEveryoneIn) {
  svc_.SetEnv("GPUORCH_AUTH", "off");
  StartService();
  EXPECT_NE(svc_.last_output().find("AUTHENTICATION IS OFF"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(svc_.data_dir() + "/data/admin.token"));
  auto r = HttpCall("POST", svc_.url() + "/api/v1/jobs/submit", kSleepJob.dump(),
                    {"Content-Type: application/json"});
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.Json()["owner"], "default");
}

TEST_F(SecurityTest, HmacSecretShorterThan256BitsIsRefusedAtStartup) {
  svc_.SetEnv("GPUORCH_JWT_SECRET", "short-secret-123");
  EXPECT_FALSE(svc_.Start());
  EXPECT_NE(svc_.last_output().find("GPUORCH_JWT_SECRET"), std::string::npos)
      << svc_.last_output();
  EXPECT_EQ(svc_.last_output().find("short-secret-123"), std::string::npos)
      << "the secret must not be echoed";
}

// ---- JWT (RFC 8725) ----------------------------------------------------------------------------

class JwtAttackTest : public SecurityTest {
 protected:
  void SetUp() override {
    SecurityTest::SetUp();
    StartService();
    alice_ = AddUser("alice");
    alice_id_ = ClaimsFor(alice_)["user_id"];
    ASSERT_FALSE(alice_id_.empty());
    // The control: a token minted like the service's own is accepted, so the refusals below
    // are about the one thing each test changes.
    auto ok = As(MintToken({{"alg", "HS256"}, {"typ", "JWT"}}, ValidClaims(alice_id_), kJwtSecret),
                 "GET", "/api/v1/jobs/");
    ASSERT_EQ(ok.status, 200) << ok.body;
  }
  HttpResult With(const std::string& token) const { return As(token, "GET", "/api/v1/jobs/"); }
  json Header() const { return {{"alg", "HS256"}, {"typ", "JWT"}}; }

  std::string alice_;
  std::string alice_id_;
};

TEST_F(JwtAttackTest, LoginTokenIsAcceptedAndNamesTheUser) {
  EXPECT_EQ(ClaimsFor(alice_)["name"], "alice");
}

TEST_F(JwtAttackTest, AlgNoneWithoutSignatureIsRefused) {
  ExpectUnauthorized(With(MintToken({{"alg", "none"}}, ValidClaims(alice_id_), "", nullptr)));
}

TEST_F(JwtAttackTest, AlgNoneWithSignatureIsRefused) {
  std::string token = MintToken({{"alg", "none"}}, ValidClaims(alice_id_), "", nullptr);
  ExpectUnauthorized(With(token + Base64Url("signature")));
  ExpectUnauthorized(With(MintToken({{"alg", "None"}}, ValidClaims(alice_id_), kJwtSecret)));
}

TEST_F(JwtAttackTest, EmptySignatureIsRefused) {
  std::string token = MintToken(Header(), ValidClaims(alice_id_), kJwtSecret);
  ExpectUnauthorized(With(token.substr(0, token.rfind('.') + 1)));
}

TEST_F(JwtAttackTest, AlgorithmOutsideAllowlistIsRefusedEvenWithGoodSignature) {
  ExpectUnauthorized(With(MintToken({{"alg", "HS512"}, {"typ", "JWT"}}, ValidClaims(alice_id_),
                                    kJwtSecret, EVP_sha512())));
  ExpectUnauthorized(With(MintToken({{"alg", "HS384"}, {"typ", "JWT"}}, ValidClaims(alice_id_),
                                    kJwtSecret, EVP_sha384())));
}

TEST_F(JwtAttackTest, ForgedSignatureWithGuessedSecretIsRefused) {
  ExpectUnauthorized(
      With(MintToken(Header(), ValidClaims(alice_id_), "secret-guessed-by-an-attacker-0000")));
}

TEST_F(JwtAttackTest, TamperedPayloadIsRefused) {
  std::string token = MintToken(Header(), ValidClaims(alice_id_), kJwtSecret);
  json admin_claims = ValidClaims(alice_id_);
  admin_claims["role"] = "admin";
  const size_t first = token.find('.');
  const size_t second = token.find('.', first + 1);
  std::string tampered = token.substr(0, first + 1) + Base64Url(admin_claims.dump()) +
                         token.substr(second);
  ExpectUnauthorized(With(tampered));
}

TEST_F(JwtAttackTest, ExpiredTokenPastLeewayIsRefused) {
  json claims = ValidClaims(alice_id_);
  claims["iat"] = UnixNow() - 4000;
  claims["nbf"] = UnixNow() - 4000;
  claims["exp"] = UnixNow() - 120;  // leeway is 60 s
  ExpectUnauthorized(With(MintToken(Header(), claims, kJwtSecret)));
}

TEST_F(JwtAttackTest, ExpiryWithinLeewayIsAccepted) {
  json claims = ValidClaims(alice_id_);
  claims["exp"] = UnixNow() - 10;
  EXPECT_EQ(With(MintToken(Header(), claims, kJwtSecret)).status, 200);
}

TEST_F(JwtAttackTest, NotBeforeInTheFutureIsRefused) {
  json claims = ValidClaims(alice_id_);
  claims["nbf"] = UnixNow() + 3600;
  ExpectUnauthorized(With(MintToken(Header(), claims, kJwtSecret)));
}

TEST_F(JwtAttackTest, MissingExpiryIsRefused) {
  json claims = ValidClaims(alice_id_);
  claims.erase("exp");
  ExpectUnauthorized(With(MintToken(Header(), claims, kJwtSecret)));
}

TEST_F(JwtAttackTest, WrongAudienceIsRefused) {
  json claims = ValidClaims(alice_id_);
  claims["aud"] = "another-service";
  ExpectUnauthorized(With(MintToken(Header(), claims, kJwtSecret)));
}

TEST_F(JwtAttackTest, WrongIssuerIsRefused) {
  json claims = ValidClaims(alice_id_);
  claims["iss"] = "https://evil.example";
  ExpectUnauthorized(With(MintToken(Header(), claims, kJwtSecret)));
}

TEST_F(JwtAttackTest, RefreshTokenUsedAsAccessTokenIsRefused) {
  json claims = ValidClaims(alice_id_);
  claims["token_use"] = "refresh";
  ExpectUnauthorized(With(MintToken(Header(), claims, kJwtSecret)));
}

TEST_F(JwtAttackTest, KeyUrlHeadersAreRefusedWithoutFetchingAnything) {
  for (const char* name : {"jku", "x5u"}) {
    json header = Header();
    header[name] = "http://169.254.169.254/latest/meta-data/";
    ExpectUnauthorized(With(MintToken(header, ValidClaims(alice_id_), kJwtSecret)));
  }
  json header = Header();
  header["jwk"] = {{"kty", "oct"}, {"k", Base64Url("attacker-key")}};
  ExpectUnauthorized(With(MintToken(header, ValidClaims(alice_id_), "attacker-key")));
}

TEST_F(JwtAttackTest, GarbageTokensAreRefused) {
  for (const std::string& token :
       {std::string("a.b.c"), std::string("...."), std::string(5000, 'A'),
        std::string("eyJ\xff\xfe.x.y"), std::string("not-a-jwt")}) {
    ExpectUnauthorized(With(token));
  }
}

TEST_F(JwtAttackTest, TokenOfDisabledUserStopsWorking) {
  auto api_token = As(alice_, "POST", "/api/v1/auth/tokens", json{{"name", "ci"}}.dump());
  ASSERT_EQ(api_token.status, 201) << api_token.body;
  auto r = svc_.Call("PATCH", "/api/v1/users/alice", json{{"disabled", true}}.dump(),
                     {"Content-Type: application/json"});
  ASSERT_EQ(r.status, 200) << r.body;
  ExpectUnauthorized(With(alice_));
  ExpectUnauthorized(With(api_token.Json()["token"]));
  auto login = HttpCall("POST", svc_.url() + "/api/v1/auth/token",
                        json{{"username", "alice"}, {"password", "pw-alice-secret"}}.dump(),
                        {"Content-Type: application/json"});
  EXPECT_EQ(login.status, 401) << login.body;
}

TEST_F(JwtAttackTest, RoleDowngradeRevokesOlderTokens) {
  auto r = svc_.Call("PATCH", "/api/v1/users/alice", json{{"role", "admin"}}.dump(),
                     {"Content-Type: application/json"});
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string admin_token = Login("alice", "pw-alice-secret");
  EXPECT_EQ(As(admin_token, "GET", "/api/v1/users").status, 200);
  r = svc_.Call("PATCH", "/api/v1/users/alice", json{{"role", "user"}}.dump(),
                {"Content-Type: application/json"});
  ASSERT_EQ(r.status, 200) << r.body;
  ExpectUnauthorized(As(admin_token, "GET", "/api/v1/users"));
  EXPECT_EQ(As(Login("alice", "pw-alice-secret"), "GET", "/api/v1/users").status, 403);
}

TEST_F(JwtAttackTest, RevokedApiTokenStopsWorking) {
  auto created = As(alice_, "POST", "/api/v1/auth/tokens", json{{"name", "laptop"}}.dump());
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string secret = created.Json()["token"];
  EXPECT_EQ(With(secret).status, 200);
  auto revoked = As(alice_, "DELETE", "/api/v1/auth/tokens/" + created.Json()["id"].get<std::string>());
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  ExpectUnauthorized(With(secret));
  // The listing shows the hint only, never the secret.
  auto list = As(alice_, "GET", "/api/v1/auth/tokens");
  EXPECT_EQ(list.body.find(secret), std::string::npos);
  EXPECT_NE(list.body.find(secret.substr(secret.size() - 4)), std::string::npos);
}

TEST_F(JwtAttackTest, OtherUsersApiTokenCannotBeRevoked) {
  const std::string bob = AddUser("bob");
  auto created = As(alice_, "POST", "/api/v1/auth/tokens", json{{"name", "mine"}}.dump());
  ASSERT_EQ(created.status, 201);
  auto r = As(bob, "DELETE", "/api/v1/auth/tokens/" + created.Json()["id"].get<std::string>());
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(With(created.Json()["token"]).status, 200);
}

// ---- algorithm confusion with an RSA key pair ---------------------------------------------------

TEST_F(SecurityTest, Hs256TokenSignedWithOurRsaPublicKeyIsRefused) {
  const std::string dir = svc_.data_dir();
  auto [rc, out] = RunCommand("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " +
                              dir + "/jwt-private.pem && openssl pkey -in " + dir +
                              "/jwt-private.pem -pubout -out " + dir + "/jwt-public.pem");
  ASSERT_EQ(rc, 0) << out;
  svc_.SetEnv("GPUORCH_JWT_SECRET", "");
  svc_.SetEnv("GPUORCH_JWT_ALG", "RS256");
  svc_.SetEnv("GPUORCH_JWT_PRIVATE_KEY_FILE", dir + "/jwt-private.pem");
  svc_.SetEnv("GPUORCH_JWT_PUBLIC_KEY_FILE", dir + "/jwt-public.pem");
  StartService();
  const std::string alice = AddUser("alice");
  const std::string alice_id = ClaimsFor(alice)["user_id"];
  ASSERT_FALSE(alice_id.empty()) << "an RS256 login token works";
  const std::string public_pem = ReadFile(dir + "/jwt-public.pem");
  auto r = As(MintToken({{"alg", "HS256"}, {"typ", "JWT"}}, ValidClaims(alice_id), public_pem),
              "GET", "/api/v1/jobs/");
  ExpectUnauthorized(r);
}

TEST_F(SecurityTest, EdDsaKeysSignLoginsAndRefuseConfusedTokens) {
  const std::string dir = svc_.data_dir();
  auto [rc, out] = RunCommand("openssl genpkey -algorithm ED25519 -out " + dir +
                              "/jwt-ed25519.pem && openssl pkey -in " + dir +
                              "/jwt-ed25519.pem -pubout -out " + dir + "/jwt-ed25519.pub");
  ASSERT_EQ(rc, 0) << out;
  svc_.SetEnv("GPUORCH_JWT_SECRET", "");
  svc_.SetEnv("GPUORCH_JWT_ALG", "EdDSA");
  svc_.SetEnv("GPUORCH_JWT_PRIVATE_KEY_FILE", dir + "/jwt-ed25519.pem");
  StartService();
  const std::string alice = AddUser("alice");
  EXPECT_EQ(alice.substr(0, alice.find('.')), Base64Url(R"({"alg":"EdDSA","typ":"JWT"})"));
  const std::string alice_id = ClaimsFor(alice)["user_id"];
  ASSERT_FALSE(alice_id.empty()) << "an EdDSA login token works";
  const std::string public_pem = ReadFile(dir + "/jwt-ed25519.pub");
  ExpectUnauthorized(As(MintToken({{"alg", "HS256"}, {"typ", "JWT"}}, ValidClaims(alice_id),
                                  public_pem),
                        "GET", "/api/v1/jobs/"));
  ExpectUnauthorized(As(MintToken({{"alg", "none"}}, ValidClaims(alice_id), "", nullptr), "GET",
                        "/api/v1/jobs/"));
  std::string tampered = alice;
  tampered[tampered.size() - 3] = tampered[tampered.size() - 3] == 'A' ? 'B' : 'A';
  ExpectUnauthorized(As(tampered, "GET", "/api/v1/jobs/"));
}

// ---- login -------------------------------------------------------------------------------------

TEST_F(SecurityTest, UnknownUserAndWrongPasswordGetTheSameAnswer) {
  StartService();
  AddUser("carol");
  auto wrong = HttpCall("POST", svc_.url() + "/api/v1/auth/token",
                        json{{"username", "carol"}, {"password", "not-her-password"}}.dump(),
                        {"Content-Type: application/json"});
  auto unknown = HttpCall("POST", svc_.url() + "/api/v1/auth/token",
                          json{{"username", "nobody"}, {"password", "not-her-password"}}.dump(),
                          {"Content-Type: application/json"});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(wrong.body, unknown.body);
}

TEST_F(SecurityTest, LoginBruteForceIsLimitedPerAccount) {
  svc_.SetEnv("GPUORCH_LOGIN_ATTEMPTS_PER_MINUTE", "5");
  StartService();
  AddUser("dave");
  int refused = 0;
  for (int i = 0; i < 12; ++i) {
    auto r = HttpCall("POST", svc_.url() + "/api/v1/auth/token",
                      json{{"username", "dave"}, {"password", "guess-" + std::to_string(i)}}.dump(),
                      {"Content-Type: application/json"});
    if (r.status == 429) {
      ++refused;
      EXPECT_FALSE(r.headers["retry-after"].empty());
    } else {
      EXPECT_EQ(r.status, 401);
    }
  }
  EXPECT_GE(refused, 6);
  EXPECT_EQ(svc_.Get("/health").status, 200);
}

// ---- ownership (API1) --------------------------------------------------------------------------

TEST_F(SecurityTest, OtherUsersJobAnswers404LikeAMissingOneAndIsLeftAlone) {
  StartService();
  const std::string alice = AddUser("alice");
  const std::string bob = AddUser("bob");
  const std::string job = SubmitAs(alice, kSleepJob);
  ASSERT_FALSE(job.empty());
  auto missing = As(bob, "GET", "/api/v1/jobs/job-does-not-exist");
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/api/v1/jobs/" + job},
           {"DELETE", "/api/v1/jobs/" + job},
           {"GET", "/api/v1/jobs/" + job + "/logs"}}) {
    auto r = As(bob, method, path);
    EXPECT_EQ(r.status, 404) << method << " " << path << ": " << r.body;
    EXPECT_EQ(r.Json()["error"]["code"], missing.Json()["error"]["code"]);
  }
  auto still = As(alice, "GET", "/api/v1/jobs/" + job).Json();
  EXPECT_NE(still["status"], "cancelled") << still.dump();
  EXPECT_EQ(As(alice, "DELETE", "/api/v1/jobs/" + job).status, 200);
}

TEST_F(SecurityTest, UsersListOnlyTheirOwnJobsAndAdminsSeeAll) {
  StartService();
  const std::string alice = AddUser("alice");
  const std::string bob = AddUser("bob");
  SubmitAs(alice, kQuickJob);
  SubmitAs(alice, kQuickJob);
  SubmitAs(bob, kQuickJob);
  EXPECT_EQ(As(alice, "GET", "/api/v1/jobs/").Json()["jobs"].size(), 2u);
  EXPECT_EQ(As(bob, "GET", "/api/v1/jobs/").Json()["jobs"].size(), 1u);
  EXPECT_EQ(As(bob, "GET", "/api/v1/jobs/?owner=alice").Json()["jobs"].size(), 1u)
      << "a user's owner filter cannot widen the view";
  EXPECT_EQ(JobCount(), 3);
  for (const auto& job : As(bob, "GET", "/api/v1/queue").Json()["queue"]) {
    EXPECT_EQ(job["owner"], "bob");
  }
}

TEST_F(SecurityTest, QueueLimitCountsOnlyTheCallersOwnEntries) {
  StartService();
  // Neither may use a GPU, so every job stays queued: alice's three ahead of bob's two.
  const std::string alice = AddUser("alice", "user", json{{"max_gpus", 0}});
  const std::string bob = AddUser("bob", "user", json{{"max_gpus", 0}});
  for (int i = 0; i < 3; ++i) {
    ASSERT_FALSE(SubmitAs(alice, kQuickJob).empty());
  }
  const std::string bob_first = SubmitAs(bob, kQuickJob);
  ASSERT_FALSE(SubmitAs(bob, kQuickJob).empty());
  json queue = As(bob, "GET", "/api/v1/queue?limit=1").Json()["queue"];
  ASSERT_EQ(queue.size(), 1u) << queue.dump();
  EXPECT_EQ(queue[0]["job_id"], bob_first);
  EXPECT_EQ(queue[0]["position"], 4) << "positions stay those in the whole queue";
  EXPECT_EQ(As(bob, "GET", "/api/v1/queue").Json()["queue"].size(), 2u);
  EXPECT_EQ(svc_.Get("/api/v1/queue").Json()["queue"].size(), 5u);
}

TEST_F(SecurityTest, NonAdminGets403OnAdminRoutes) {
  StartService();
  const std::string eve = AddUser("eve");
  EXPECT_EQ(As(eve, "GET", "/api/v1/users").status, 403);
  EXPECT_EQ(As(eve, "POST", "/api/v1/users", json{{"name", "mallory"}}.dump()).status, 403);
  EXPECT_EQ(As(eve, "PATCH", "/api/v1/users/eve", json{{"role", "admin"}}.dump()).status, 403);
  EXPECT_EQ(As(eve, "POST", "/api/v1/users/admin/tokens", json{{"name", "x"}}.dump()).status, 403);
  EXPECT_EQ(As(eve, "PUT", "/api/v1/providers/runpod/credentials",
               json{{"api_key", "rp_attacker_key_123456"}}.dump())
                .status,
            403);
  EXPECT_EQ(svc_.Get("/api/v1/users").Json()["users"].size(), 2u) << "nothing was created";
  EXPECT_EQ(ClaimsFor(eve)["role"], "user");
}

// ---- quotas, budgets, rate limits (API4) -------------------------------------------------------

TEST_F(SecurityTest, AdminSetQueuedJobsLimitIsAtomicUnderConcurrentSubmits) {
  StartService();
  const std::string frank =
      AddUser("frank", "user", json{{"max_queued_jobs", 1}, {"max_gpus", 0}});
  std::vector<std::thread> threads;
  std::atomic<int> created{0}, refused{0};
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back([&] {
      auto r = As(frank, "POST", "/api/v1/jobs/submit", kQuickJob.dump());
      if (r.status == 201) {
        ++created;
      } else if (r.status == 429 && r.Json()["error"]["code"] == "quota_exceeded") {
        ++refused;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(refused.load(), 49);
}

TEST_F(SecurityTest, AdminSetGpuLimitMakesJobsWaitAndSaySo) {
  StartService();
  const std::string grace = AddUser("grace", "user", json{{"max_gpus", 1}});
  const json one_gpu = {{"name", "g"}, {"config", {{"command", {"sleep", "30"}}, {"gpu_count", 1}}}};
  const std::string first = SubmitAs(grace, one_gpu);
  const std::string second = SubmitAs(grace, one_gpu);
  svc_.WaitForStatus(first, "running");
  json waiting = svc_.WaitForJob(second, [](const json& j) {
    return j.value("status_message", "").find("quota") != std::string::npos;
  });
  EXPECT_EQ(waiting["status"], "queued") << waiting.dump();
  EXPECT_NE(waiting.value("status_message", "").find("quota"), std::string::npos)
      << waiting.dump();
}

TEST_F(SecurityTest, SpentMonthlyBudgetRefusesSubmitsWith403) {
  StartService();
  const std::string heidi = AddUser("heidi", "user", json{{"monthly_budget_usd", 0}});
  auto r = As(heidi, "POST", "/api/v1/jobs/submit", kQuickJob.dump());
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(r.Json()["error"]["code"], "budget_exceeded");
  EXPECT_EQ(JobCount(), 0);
  // Raising the budget lets work in again.
  auto raised = svc_.Call("PATCH", "/api/v1/users/heidi",
                          json{{"limits", {{"monthly_budget_usd", 100}}}}.dump(),
                          {"Content-Type: application/json"});
  ASSERT_EQ(raised.status, 200) << raised.body;
  EXPECT_EQ(As(heidi, "POST", "/api/v1/jobs/submit", kQuickJob.dump()).status, 201);
}

TEST_F(SecurityTest, SpentMonthlyBudgetHoldsWorkWhenConfigured) {
  svc_.SetEnv("GPUORCH_BUDGET_POLICY", "hold");
  StartService();
  const std::string ivan = AddUser("ivan", "user", json{{"monthly_budget_usd", 0}});
  const std::string job = SubmitAs(ivan, kQuickJob);
  json waiting = svc_.WaitForJob(job, [](const json& j) {
    return j.value("status_message", "").find("budget") != std::string::npos;
  });
  EXPECT_EQ(waiting["status"], "queued") << waiting.dump();
}

TEST_F(SecurityTest, UserRateLimitAnswers429WithHeadersAndSparesOthers) {
  svc_.SetEnv("GPUORCH_RATE_LIMIT_USER_RPS", "0.5");
  svc_.SetEnv("GPUORCH_RATE_LIMIT_USER_BURST", "5");
  StartService();
  const std::string judy = AddUser("judy");
  const std::string ken = AddUser("ken");
  int ok = 0;
  HttpResult limited;
  for (int i = 0; i < 12; ++i) {
    auto r = As(judy, "POST", "/api/v1/jobs/submit", kSleepJob.dump());
    if (r.status == 201) {
      ++ok;
      EXPECT_FALSE(r.headers["ratelimit-limit"].empty());
      EXPECT_FALSE(r.headers["ratelimit-remaining"].empty());
    } else {
      limited = r;
    }
  }
  EXPECT_LE(ok, 6);
  ASSERT_EQ(limited.status, 429) << limited.body;
  EXPECT_EQ(limited.Json()["error"]["code"], "rate_limited");
  EXPECT_GE(std::stoi(limited.headers["retry-after"]), 1);
  EXPECT_EQ(limited.headers["ratelimit-remaining"], "0");
  EXPECT_FALSE(limited.headers["ratelimit-reset"].empty());
  EXPECT_EQ(static_cast<int>(svc_.Get("/api/v1/jobs/?limit=1000").Json()["jobs"].size()), ok)
      << "refused requests create nothing";
  EXPECT_EQ(As(ken, "GET", "/api/v1/jobs/").status, 200) << "other users are not limited";
}

TEST_F(SecurityTest, AddressRateLimitAnswers429BeforeAuthentication) {
  svc_.SetEnv("GPUORCH_RATE_LIMIT_ADDRESS_RPS", "0.5");
  svc_.SetEnv("GPUORCH_RATE_LIMIT_ADDRESS_BURST", "10");
  StartService();
  int limited = 0;
  for (int i = 0; i < 20; ++i) {
    auto r = HttpCall("GET", svc_.url() + "/api/v1/jobs/", "",
                      {"Authorization: Bearer forged." + std::to_string(i)});
    limited += r.status == 429 ? 1 : 0;
  }
  EXPECT_GE(limited, 9);
  EXPECT_EQ(HttpCall("GET", svc_.url() + "/health").status, 200);
}

// ---- provider credentials and secrets ----------------------------------------------------------

constexpr const char* kRunpodKey = "rp_live_key_0123456789_ZXCVBNM";

TEST_F(SecurityTest, StoredCredentialsAreSealedShownAsHintAndApplyAtOnce) {
  StartService();
  auto put = svc_.Call("PUT", "/api/v1/providers/runpod/credentials",
                       json{{"api_key", kRunpodKey}}.dump(), {"Content-Type: application/json"});
  ASSERT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(put.body.find(kRunpodKey), std::string::npos);
  EXPECT_EQ(put.Json()["credentials"][0]["hint"], "VBNM");
  auto shown = svc_.Get("/api/v1/providers/runpod/credentials");
  EXPECT_EQ(shown.body.find(kRunpodKey), std::string::npos);
  EXPECT_EQ(svc_.Get("/api/v1/providers/runpod/status").Json()["configured"], true);
  // At rest, only ciphertext: neither the database nor its WAL holds the key.
  const std::string stored = ReadTree(svc_.data_dir() + "/data", {});
  EXPECT_EQ(stored.find(kRunpodKey), std::string::npos);
}

TEST_F(SecurityTest, BadCredentialBodiesAre4xxAndStoreNothing) {
  StartService();
  auto r = svc_.Call("PUT", "/api/v1/providers/runpod/credentials", json{{"api_key", 5}}.dump(),
                     {"Content-Type: application/json"});
  EXPECT_EQ(r.status, 422) << r.body;
  r = svc_.Call("PUT", "/api/v1/providers/runpod/credentials",
                json{{"secret", "x"}}.dump(), {"Content-Type: application/json"});
  EXPECT_EQ(r.status, 422) << r.body;
  r = svc_.Call("PUT", "/api/v1/providers/aws/credentials",
                json{{"access_key_id", "AKIAEXAMPLE"}}.dump(), {"Content-Type: application/json"});
  EXPECT_EQ(r.status, 422) << r.body << " (the secret key is missing)";
  r = svc_.Call("PUT", "/api/v1/providers/nimbus/credentials", json{{"api_key", "x"}}.dump(),
                {"Content-Type: application/json"});
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(svc_.Get("/api/v1/providers/runpod/credentials").Json()["credentials"].size(), 0u);
}

TEST_F(SecurityTest, RotateMasterKeyResealsCredentialsAndTheyStillOpen) {
  StartService();
  auto put = svc_.Call("PUT", "/api/v1/providers/runpod/credentials",
                       json{{"api_key", kRunpodKey}}.dump(), {"Content-Type: application/json"});
  ASSERT_EQ(put.status, 200) << put.body;
  const std::string data = svc_.data_dir() + "/data";
  auto [busy_rc, busy] = RunCommand(BinPath("gpuorch") + " rotate-master-key --data-dir " + data);
  EXPECT_NE(busy_rc, 0) << "refused while the service runs: " << busy;
  ASSERT_EQ(svc_.Terminate(), 0);
  const std::string old_key = ReadFile(data + "/master.key");
  auto [rc, out] = RunCommand(BinPath("gpuorch") + " rotate-master-key --data-dir " + data);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(ReadFile(data + "/master.key"), old_key);
  EXPECT_EQ(out.find(kRunpodKey), std::string::npos);
  ASSERT_TRUE(svc_.Start()) << svc_.last_output();
  EXPECT_EQ(svc_.Get("/api/v1/providers/runpod/status").Json()["configured"], true);
  EXPECT_EQ(svc_.Get("/api/v1/providers/runpod/credentials").Json()["credentials"][0]["hint"],
            "VBNM");
}

TEST_F(SecurityTest, WrongMasterKeyStopsStartupWithoutLeakingAnything) {
  StartService();
  ASSERT_EQ(svc_.Call("PUT", "/api/v1/providers/runpod/credentials",
                      json{{"api_key", kRunpodKey}}.dump(), {"Content-Type: application/json"})
                .status,
            200);
  ASSERT_EQ(svc_.Terminate(), 0);
  svc_.SetEnv("GPUORCH_MASTER_KEY",
              "0000000000000000000000000000000000000000000000000000000000000001");
  EXPECT_FALSE(svc_.Start());
  EXPECT_NE(svc_.last_output().find("master key"), std::string::npos) << svc_.last_output();
  EXPECT_EQ(svc_.last_output().find(kRunpodKey), std::string::npos);
}

TEST_F(SecurityTest, NoSecretAppearsInAnyLogResponseOrFile) {
  const std::string master = "1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988";
  svc_.SetEnv("GPUORCH_MASTER_KEY", master);
  svc_.SetEnv("GPUORCH_LOG_LEVEL", "debug");
  StartService();
  std::string seen;  // every response body and header
  auto keep = [&seen](const HttpResult& r) {
    seen += r.body;
    for (const auto& [k, v] : r.headers) {
      seen += k + ": " + v + "\n";
    }
    return r;
  };
  const std::string password = "Correct-Horse-Battery-Staple-42";
  keep(svc_.Post("/api/v1/users",
                 json{{"name", "mallet"}, {"password", password}, {"role", "user"}}.dump()));
  auto login = HttpCall("POST", svc_.url() + "/api/v1/auth/token",
                        json{{"username", "mallet"}, {"password", password}}.dump(),
                        {"Content-Type: application/json"});
  ASSERT_EQ(login.status, 200);
  const std::string jwt = login.Json()["access_token"];
  // Wrong logins, tokens in wrong places, secrets in bad bodies.
  keep(HttpCall("POST", svc_.url() + "/api/v1/auth/token",
                json{{"username", "mallet"}, {"password", password + "x"}}.dump(),
                {"Content-Type: application/json"}));
  keep(HttpCall("POST", svc_.url() + "/api/v1/auth/token",
                json{{"username", password}, {"password", password}}.dump(),
                {"Content-Type: application/json"}));
  keep(HttpCall("GET", svc_.url() + "/api/v1/jobs/", "", {Bearer(jwt + "x")}));
  keep(HttpCall("GET", svc_.url() + "/api/v1/jobs/", "", {Bearer(svc_.token() + "x")}));
  keep(HttpCall("GET", svc_.url() + "/api/v1/jobs/", "", {"Authorization: Basic " + password}));
  keep(svc_.Call("PUT", "/api/v1/providers/runpod/credentials",
                 json{{"api_key", kRunpodKey}}.dump(), {"Content-Type: application/json"}));
  keep(svc_.Call("PUT", "/api/v1/providers/runpod/credentials",
                 json{{"api_key", kRunpodKey}, {"unknown", kRunpodKey}}.dump(),
                 {"Content-Type: application/json"}));
  keep(svc_.Call("PUT", "/api/v1/providers/vastai/credentials",
                 "{\"api_key\": \"" + std::string(kRunpodKey) + "\n\"}",
                 {"Content-Type: application/json"}));
  keep(svc_.Get("/api/v1/providers/runpod/credentials"));
  keep(svc_.Get("/api/v1/providers/runpod/status"));
  keep(svc_.Get("/api/v1/users"));
  keep(svc_.Get("/api/v1/auth/tokens"));
  keep(svc_.Get("/api/v1/providers/"));
  keep(svc_.Get("/health"));
  ASSERT_EQ(svc_.Terminate(), 0);
  const std::string log = svc_.last_output();
  const std::string files = ReadTree(svc_.data_dir() + "/data", {"admin.token", "jwt.key"});
  for (const std::string& secret :
       {password, jwt, svc_.token(), std::string(kRunpodKey), master, std::string(kJwtSecret)}) {
    EXPECT_EQ(log.find(secret), std::string::npos) << "in the log: " << secret.substr(0, 6);
    EXPECT_EQ(seen.find(secret), std::string::npos) << "in a response: " << secret.substr(0, 6);
    EXPECT_EQ(files.find(secret), std::string::npos) << "in the data dir: " << secret.substr(0, 6);
  }
}

// ---- the admin commands ------------------------------------------------------------------------

TEST_F(SecurityTest, UserCommandsAddTokenListAndDisable) {
  StartService();
  const std::string data = svc_.data_dir() + "/data";
  const std::string bin = BinPath("gpuorch");
  auto [add_rc, add] =
      RunCommand("echo 'Pa55word-for-oscar' | " + bin + " user add oscar --data-dir " + data);
  ASSERT_EQ(add_rc, 0) << add;
  auto [token_rc, token_out] =
      RunCommand(bin + " user token oscar --name ci --data-dir " + data + " 2>/dev/null");
  ASSERT_EQ(token_rc, 0) << token_out;
  const size_t start = token_out.find("gpo_");
  ASSERT_NE(start, std::string::npos) << token_out;
  const std::string token = token_out.substr(start, token_out.find('\n', start) - start);
  auto [list_rc, list] = RunCommand(bin + " user list --data-dir " + data);
  EXPECT_EQ(list_rc, 0);
  EXPECT_NE(list.find("oscar"), std::string::npos) << list;
  EXPECT_EQ(list.find("Pa55word"), std::string::npos);
  // The running service picks the new user up at its next directory reload (2 s by default).
  HttpResult r;
  for (int i = 0; i < 100 && r.status != 200; ++i) {
    r = As(token, "GET", "/api/v1/auth/whoami");
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["name"], "oscar");
  EXPECT_EQ(Login("oscar", "Pa55word-for-oscar").empty(), false);
  auto [dis_rc, dis] = RunCommand(bin + " user disable oscar --data-dir " + data);
  ASSERT_EQ(dis_rc, 0) << dis;
  for (int i = 0; i < 100 && r.status == 200; ++i) {
    r = As(token, "GET", "/api/v1/auth/whoami");
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(r.status, 401);
}

TEST_F(SecurityTest, AdminCanCreateUsersAndTokensThroughTheApi) {
  StartService();
  auto created = svc_.Post("/api/v1/users", json{{"name", "peggy"}, {"role", "user"}}.dump());
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.Json()["password_login"], false);
  EXPECT_EQ(created.body.find("password_hash"), std::string::npos);
  auto dup = svc_.Post("/api/v1/users", json{{"name", "peggy"}}.dump());
  EXPECT_EQ(dup.status, 409) << dup.body;
  auto bad = svc_.Post("/api/v1/users", json{{"name", "Peggy Sue"}}.dump());
  EXPECT_EQ(bad.status, 422) << bad.body;
  // A limit out of range refuses the whole user: nothing is created.
  auto bad_limit =
      svc_.Post("/api/v1/users", json{{"name", "victor"}, {"limits", {{"max_gpus", -1}}}}.dump());
  EXPECT_EQ(bad_limit.status, 422) << bad_limit.body;
  EXPECT_EQ(bad_limit.Json()["error"]["field"], "limits.max_gpus") << bad_limit.body;
  EXPECT_EQ(svc_.Get("/api/v1/users/victor").status, 404);
  auto token = svc_.Post("/api/v1/users/peggy/tokens", json{{"name", "robot"}}.dump());
  ASSERT_EQ(token.status, 201) << token.body;
  EXPECT_EQ(As(token.Json()["token"], "GET", "/api/v1/auth/whoami").Json()["name"], "peggy");
  EXPECT_EQ(svc_.Get("/api/v1/users").Json()["users"].size(), 2u);
}

}  // namespace
}  // namespace gpuorch::testing
