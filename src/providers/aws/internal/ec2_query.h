// Wire helpers of the EC2 Query API: form encoding of parameters, base64, the XML error body and
// the mapping of EC2 error codes to provider causes. Pure; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "providers/provider.h"

namespace gpuorch::providers::aws::internal {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

// "k=v&k=v" with RFC 3986 percent-encoding of keys and values (space as %20), in the given order.
std::string FormEncode(const QueryParams& params);
std::string Base64Encode(std::string_view bytes);

struct Ec2Error {
  std::string code;     // "InsufficientInstanceCapacity"
  std::string message;  // the provider's sentence, sanitized and shortened
};
// The first <Response><Errors><Error> of an EC2 error body; nullopt when the body is not one.
std::optional<Ec2Error> ParseEc2Error(std::string_view body);

// The cause of an EC2 error `code` (may be empty) answered with HTTP `status`.
ProviderCause Ec2ErrorCause(std::string_view code, int status);

}  // namespace gpuorch::providers::aws::internal
