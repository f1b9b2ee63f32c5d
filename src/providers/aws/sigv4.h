// AWS Signature Version 4: the canonical request, string to sign, signing key and Authorization
// header, exactly as the AWS SigV4 test suite defines them. Pure functions over values (HMAC-SHA256
// and SHA-256 from OpenSSL libcrypto); thread-safe.
//
// Example (EC2 POST):
//   SigningRequest req{.method = "POST", .path = "/", .headers = {{"Host", host},
//       {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}}, .body = form};
//   SignRequest(req, credentials, SigningScope{.region = "us-east-1", .service = "ec2"},
//               clock.Now());
//   // req.headers now also holds X-Amz-Date, X-Amz-Security-Token (if any) and Authorization.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"

namespace gpuorch::providers::aws {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // temporary credentials only; empty otherwise
};

struct SigningScope {
  std::string region;   // "us-east-1"
  std::string service;  // "ec2"
};

// The parts of an HTTP request that SigV4 covers.
struct SigningRequest {
  std::string method = "GET";
  std::string path = "/";  // as sent on the wire (percent-encoded), without the query
  std::string query;       // the raw query string after '?', "" when none
  std::vector<std::pair<std::string, std::string>> headers;  // must include Host
  std::string body;
};

// Lowercase hex of SHA-256(data).
std::string Sha256Hex(std::string_view data);
// Raw HMAC-SHA256(key, data) bytes.
std::string HmacSha256(std::string_view key, std::string_view data);
std::string HexEncode(std::string_view bytes);
// RFC 3986 encoding: A-Z a-z 0-9 - _ . ~ kept, everything else %XX (upper-case); '/' kept only when
// `keep_slash`.
std::string UriEncode(std::string_view text, bool keep_slash = false);
// "20150830T123600Z" (UTC, basic ISO 8601).
std::string AmzDate(core::SystemTime time);

// The canonical query string of a raw query: pairs decoded, re-encoded, sorted by key then value.
std::string CanonicalQueryString(std::string_view raw_query);
// The lower-cased header names that get signed: every header of `request` except user-agent,
// expect, transfer-encoding, x-amzn-trace-id and authorization; sorted, unique.
std::vector<std::string> HeadersToSign(const SigningRequest& request);
// The six-line canonical request over `signed_headers` (lower-case names; each must be present).
std::string CanonicalRequest(const SigningRequest& request,
                             const std::vector<std::string>& signed_headers);
// "<date>/<region>/<service>/aws4_request" for amz_date's day.
std::string CredentialScope(std::string_view amz_date, const SigningScope& scope);
std::string StringToSign(std::string_view amz_date, const SigningScope& scope,
                         std::string_view canonical_request);
// Raw kSigning bytes for `yyyymmdd`.
std::string SigningKey(std::string_view secret_access_key, std::string_view yyyymmdd,
                       const SigningScope& scope);
// Lowercase hex signature of `request` as if sent at `amz_date`, over `signed_headers`.
std::string Signature(const SigningRequest& request, const std::vector<std::string>& signed_headers,
                      std::string_view secret_access_key, std::string_view amz_date,
                      const SigningScope& scope);
std::string AuthorizationHeader(std::string_view access_key_id, std::string_view amz_date,
                                const SigningScope& scope,
                                const std::vector<std::string>& signed_headers,
                                std::string_view signature);

// Adds X-Amz-Date (replacing any), X-Amz-Security-Token when the credentials carry a session token,
// and Authorization to `request.headers`. REQUIRES: a Host header.
void SignRequest(SigningRequest& request, const Credentials& credentials, const SigningScope& scope,
                 core::SystemTime now);

// The fields of an "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..." header;
// nullopt when it is not one.
struct ParsedAuthorization {
  std::string access_key_id;
  std::string date;  // yyyymmdd
  SigningScope scope;
  std::vector<std::string> signed_headers;
  std::string signature;
};
std::optional<ParsedAuthorization> ParseAuthorization(std::string_view header);

}  // namespace gpuorch::providers::aws
