// What security costs per request:
//   BM_AuthenticateApiToken  Authenticator::Authenticate with a long-lived API token (SHA-256 of the
//                            secret, one lookup in the directory snapshot), 1,000 users
//   BM_AuthenticateJwt       the same with an HS256 access token (header checks, HMAC, libjwt
//                            decode, claim checks)
//   BM_VerifyJwt/<alg>       JwtCodec::Verify alone, per pinned algorithm (0 HS256, 1 RS256 2048-bit,
//                            2 ES256, 3 EdDSA): the signature check is what differs
//   BM_RateLimiterAdmit      one GCRA decision, over 10,000 distinct keys
//   BM_PasswordHash          Argon2id at the interactive cost (64 MiB), what a login costs once
#include <benchmark/benchmark.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "security/api_token.h"
#include "security/authenticator.h"
#include "security/password.h"
#include "security/rate_limiter.h"
#include "security/user_admin.h"
#include "store/sqlite/sqlite_store.h"

namespace gpuorch::security {
namespace {

// A store with `users` users, one API token each, in a temp file; the directory reads it once.
struct Fixture {
  Fixture() {
    char dir[] = "/tmp/gpuorch-secbench-XXXXXX";
    path = std::string(mkdtemp(dir)) + "/bench.db";
    store = *store::OpenSqliteStore(store::SqliteStoreOptions{.path = path});
    ids = core::MakeRandomIdGenerator(clock);
    UserAdmin admin(*store, clock, *ids, MinimalCost());
    for (int i = 0; i < 1000; ++i) {
      const std::string name = "user" + std::to_string(i);
      auto user = admin.AddUser(name, "", kUserRole);
      tokens.push_back(admin.CreateToken(name, "bench", std::nullopt)->secret);
      users.push_back(*user);
    }
    directory = std::make_unique<UserDirectory>(*store, clock);
    (void)directory->Reload();
    codec = *JwtCodec::Create(JwtKeys{.hmac_secret = std::string(32, 'k')}, JwtProfile{});
    passwords = std::make_unique<PasswordVerifier>(MinimalCost(), 2, 8);
    auth = std::make_unique<Authenticator>(*directory, *codec, *passwords, clock,
                                           std::chrono::seconds(900));
  }

  core::RealClock clock;
  std::string path;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<core::IdGenerator> ids;
  std::vector<store::UserRecord> users;
  std::vector<std::string> tokens;
  std::unique_ptr<UserDirectory> directory;
  std::unique_ptr<JwtCodec> codec;
  std::unique_ptr<PasswordVerifier> passwords;
  std::unique_ptr<Authenticator> auth;
};

Fixture& Shared() {
  static Fixture* fixture = new Fixture();
  return *fixture;
}

// Authenticates `headers` one after another, round robin, for the benchmark's iterations.
void AuthenticateInTurn(benchmark::State& state, Authenticator& auth,
                        const std::vector<std::string>& headers) {
  size_t i = 0;
  for (auto _ : state) {
    auto principal = auth.Authenticate(headers[i++ % headers.size()]);
    benchmark::DoNotOptimize(principal);
    if (!principal) {
      state.SkipWithError("refused");
      break;
    }
  }
}

void BM_AuthenticateApiToken(benchmark::State& state) {
  Fixture& f = Shared();
  std::vector<std::string> headers;
  for (const auto& token : f.tokens) {
    headers.push_back("Bearer " + token);
  }
  AuthenticateInTurn(state, *f.auth, headers);
}
BENCHMARK(BM_AuthenticateApiToken);

void BM_AuthenticateJwt(benchmark::State& state) {
  Fixture& f = Shared();
  std::vector<std::string> headers;
  for (int i = 0; i < 100; ++i) {
    headers.push_back("Bearer " + f.auth->IssueAccessToken(f.users[i])->token);
  }
  AuthenticateInTurn(state, *f.auth, headers);
}
BENCHMARK(BM_AuthenticateJwt);

// A fresh private key of `algorithm` as PEM (RS256: 2048-bit RSA; ES256: P-256; EdDSA: Ed25519).
std::string PrivateKeyPem(JwtAlgorithm algorithm) {
  EVP_PKEY* key = algorithm == JwtAlgorithm::kRs256   ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA",
                                                                          size_t{2048})
                  : algorithm == JwtAlgorithm::kEs256 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC",
                                                                          "P-256")
                                                      : EVP_PKEY_Q_keygen(nullptr, nullptr,
                                                                          "ED25519");
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  EVP_PKEY_free(key);
  return pem;
}

void BM_VerifyJwt(benchmark::State& state) {
  const auto algorithm = static_cast<JwtAlgorithm>(state.range(0));
  JwtKeys keys{.algorithm = algorithm};
  if (algorithm == JwtAlgorithm::kHs256) {
    keys.hmac_secret = std::string(32, 'k');
  } else {
    keys.private_key_pem = PrivateKeyPem(algorithm);
  }
  auto codec = JwtCodec::Create(std::move(keys), JwtProfile{});
  core::RealClock clock;
  auto token = codec ? (*codec)->Sign({.subject = "usr-bench",
                                       .issued_at = clock.Now(),
                                       .expires_at = clock.Now() + std::chrono::hours(1)})
                     : core::Result<std::string>(tl::unexpected(codec.error()));
  if (!token) {
    state.SkipWithError("no codec or token");
    return;
  }
  state.SetLabel(std::string(JwtAlgorithmName(algorithm)));
  for (auto _ : state) {
    auto claims = (*codec)->Verify(*token, clock.Now());
    benchmark::DoNotOptimize(claims);
    if (!claims) {
      state.SkipWithError("refused");
      break;
    }
  }
}
BENCHMARK(BM_VerifyJwt)->DenseRange(0, 3);

void BM_RateLimiterAdmit(benchmark::State& state) {
  core::RealClock clock;
  RateLimiter limiter(clock, RateLimit{.per_second = 1e9, .burst = 1000000});
  std::vector<std::string> keys;
  for (int i = 0; i < 10000; ++i) {
    keys.push_back("user:usr-" + std::to_string(i));
  }
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(limiter.Admit(keys[i++ % keys.size()]));
  }
}
BENCHMARK(BM_RateLimiterAdmit);

void BM_PasswordHash(benchmark::State& state) {
  for (auto _ : state) {
    auto hash = HashPassword("correct horse battery staple", InteractiveCost());
    benchmark::DoNotOptimize(hash);
  }
}
BENCHMARK(BM_PasswordHash)->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace
}  // namespace gpuorch::security

BENCHMARK_MAIN();
