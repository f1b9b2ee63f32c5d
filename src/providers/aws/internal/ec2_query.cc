#include "providers/aws/internal/ec2_query.h"

#include <openssl/evp.h>

#include <array>

#include "core/log.h"
#include "providers/aws/internal/xml.h"
#include "providers/aws/sigv4.h"

namespace gpuorch::providers::aws::internal {
namespace {

struct CodeCause {
  std::string_view code;
  ProviderCause cause;
};

constexpr std::array<CodeCause, 32> kCodeCauses = {{
    {"InsufficientInstanceCapacity", ProviderCause::kNoCapacity},
    {"InsufficientHostCapacity", ProviderCause::kNoCapacity},
    {"InsufficientCapacity", ProviderCause::kNoCapacity},
    {"InsufficientReservedInstanceCapacity", ProviderCause::kNoCapacity},
    {"UnfulfillableCapacity", ProviderCause::kNoCapacity},
    {"Unsupported", ProviderCause::kNoCapacity},  // the type is not offered in the zone
    {"SpotMaxPriceTooLow", ProviderCause::kNoCapacity},
    {"InstanceLimitExceeded", ProviderCause::kQuota},
    {"VcpuLimitExceeded", ProviderCause::kQuota},
    {"MaxSpotInstanceCountExceeded", ProviderCause::kQuota},
    {"ResourceLimitExceeded", ProviderCause::kQuota},
    {"AuthFailure", ProviderCause::kAuth},
    {"UnauthorizedOperation", ProviderCause::kAuth},
    {"SignatureDoesNotMatch", ProviderCause::kAuth},
    {"InvalidClientTokenId", ProviderCause::kAuth},
    {"IncompleteSignature", ProviderCause::kAuth},
    {"MissingAuthenticationToken", ProviderCause::kAuth},
    {"ExpiredToken", ProviderCause::kAuth},
    {"RequestExpired", ProviderCause::kAuth},
    {"OptInRequired", ProviderCause::kAuth},
    {"Blocked", ProviderCause::kAuth},
    {"RequestLimitExceeded", ProviderCause::kRateLimited},
    {"Throttling", ProviderCause::kRateLimited},
    {"ThrottlingException", ProviderCause::kRateLimited},
    {"EC2ThrottledException", ProviderCause::kRateLimited},
    {"RequestThrottled", ProviderCause::kRateLimited},
    {"RequestThrottledException", ProviderCause::kRateLimited},
    {"InternalError", ProviderCause::kTransient},
    {"InternalFailure", ProviderCause::kTransient},
    {"ServiceUnavailable", ProviderCause::kTransient},
    {"Unavailable", ProviderCause::kTransient},
    {"IdempotentParameterMismatch", ProviderCause::kBadRequest},
}};

}  // namespace

std::string FormEncode(const QueryParams& params) {
  std::string out;
  for (const auto& [key, value] : params) {
    if (!out.empty()) {
      out += '&';
    }
    out += UriEncode(key) + "=" + UriEncode(value);
  }
  return out;
}

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

std::optional<Ec2Error> ParseEc2Error(std::string_view body) {
  auto root = ParseXml(body);
  if (!root) {
    return std::nullopt;
  }
  const XmlNode* error = root->Find({"Errors", "Error"});
  if (root->name != "Response" || error == nullptr) {
    return std::nullopt;
  }
  Ec2Error out{.code = core::SanitizeForLog(error->ChildText("Code"), 100),
               .message = core::SanitizeForLog(error->ChildText("Message"), 300)};
  if (out.code.empty()) {
    return std::nullopt;
  }
  return out;
}

ProviderCause Ec2ErrorCause(std::string_view code, int status) {
  for (const auto& entry : kCodeCauses) {
    if (entry.code == code) {
      return entry.cause;
    }
  }
  if (status == 429 || status == 503) {
    return ProviderCause::kRateLimited;
  }
  if (status >= 500) {
    return ProviderCause::kTransient;
  }
  if (status == 401 || status == 403) {
    return ProviderCause::kAuth;
  }
  if (status >= 400) {
    return ProviderCause::kBadRequest;
  }
  return ProviderCause::kUnknown;
}

}  // namespace gpuorch::providers::aws::internal
