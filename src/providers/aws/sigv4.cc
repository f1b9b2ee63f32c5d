#include "providers/aws/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>

namespace gpuorch::providers::aws {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// Trimmed, with inner runs of spaces and tabs collapsed to one space.
std::string CanonicalHeaderValue(std::string_view value) {
  std::string out;
  bool pending_space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) {
      out.push_back(' ');
      pending_space = false;
    }
    out.push_back(c);
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = HexValue(s[i + 1]);
      int lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// The canonical URI of a non-S3 service: dot segments removed, each segment encoded (again).
std::string CanonicalUri(std::string_view path) {
  if (path.empty()) {
    return "/";
  }
  std::vector<std::string_view> segments;
  size_t start = path.front() == '/' ? 1 : 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) {
      end = path.size();
    }
    std::string_view segment = path.substr(start, end - start);
    if (segment == "..") {
      if (!segments.empty()) {
        segments.pop_back();
      }
    } else if (segment != ".") {
      segments.push_back(segment);
    }
    start = end + 1;
  }
  std::string out;
  for (std::string_view segment : segments) {
    out += "/" + UriEncode(segment);
  }
  return out.empty() ? "/" : out;
}

}  // namespace

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xF]);
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(md), len));
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string UriEncode(std::string_view text, bool keep_slash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kDigits[c >> 4]);
      out.push_back(kDigits[c & 0xF]);
    }
  }
  return out;
}

std::string AmzDate(core::SystemTime time) {
  const std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string CanonicalQueryString(std::string_view raw_query) {
  std::vector<std::pair<std::string, std::string>> pairs;
  size_t start = 0;
  while (start <= raw_query.size() && !raw_query.empty()) {
    size_t end = raw_query.find('&', start);
    if (end == std::string_view::npos) {
      end = raw_query.size();
    }
    std::string_view pair = raw_query.substr(start, end - start);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string_view key = pair.substr(0, eq);
      std::string_view value = eq == std::string_view::npos ? "" : pair.substr(eq + 1);
      pairs.emplace_back(UriEncode(PercentDecode(key)), UriEncode(PercentDecode(value)));
    }
    start = end + 1;
  }
  std::sort(pairs.begin(), pairs.end());
  std::string out;
  for (const auto& [key, value] : pairs) {
    if (!out.empty()) {
      out += '&';
    }
    out += key + "=" + value;
  }
  return out;
}

std::vector<std::string> HeadersToSign(const SigningRequest& request) {
  std::vector<std::string> names;
  for (const auto& [name, value] : request.headers) {
    std::string lower = Lower(name);
    if (lower == "user-agent" || lower == "expect" || lower == "transfer-encoding" ||
        lower == "x-amzn-trace-id" || lower == "authorization") {
      continue;
    }
    names.push_back(std::move(lower));
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::string CanonicalRequest(const SigningRequest& request,
                             const std::vector<std::string>& signed_headers) {
  std::map<std::string, std::string> values;
  for (const auto& [name, value] : request.headers) {
    std::string lower = Lower(name);
    if (std::find(signed_headers.begin(), signed_headers.end(), lower) == signed_headers.end()) {
      continue;
    }
    std::string canonical = CanonicalHeaderValue(value);
    auto [it, inserted] = values.emplace(lower, canonical);
    if (!inserted) {
      it->second += "," + canonical;
    }
  }
  std::string headers;
  std::string names;
  for (const std::string& name : signed_headers) {
    auto it = values.find(name);
    headers += name + ":" + (it == values.end() ? "" : it->second) + "\n";
    names += (names.empty() ? "" : ";") + name;
  }
  return request.method + "\n" + CanonicalUri(request.path) + "\n" +
         CanonicalQueryString(request.query) + "\n" + headers + "\n" + names + "\n" +
         Sha256Hex(request.body);
}

std::string CredentialScope(std::string_view amz_date, const SigningScope& scope) {
  return std::string(amz_date.substr(0, 8)) + "/" + scope.region + "/" + scope.service +
         "/aws4_request";
}

std::string StringToSign(std::string_view amz_date, const SigningScope& scope,
                         std::string_view canonical_request) {
  return std::string(kAlgorithm) + "\n" + std::string(amz_date) + "\n" +
         CredentialScope(amz_date, scope) + "\n" + Sha256Hex(canonical_request);
}

std::string SigningKey(std::string_view secret_access_key, std::string_view yyyymmdd,
                       const SigningScope& scope) {
  const std::string k_date = HmacSha256("AWS4" + std::string(secret_access_key), yyyymmdd);
  const std::string k_region = HmacSha256(k_date, scope.region);
  const std::string k_service = HmacSha256(k_region, scope.service);
  return HmacSha256(k_service, "aws4_request");
}

std::string Signature(const SigningRequest& request, const std::vector<std::string>& signed_headers,
                      std::string_view secret_access_key, std::string_view amz_date,
                      const SigningScope& scope) {
  const std::string to_sign =
      StringToSign(amz_date, scope, CanonicalRequest(request, signed_headers));
  return HexEncode(
      HmacSha256(SigningKey(secret_access_key, amz_date.substr(0, 8), scope), to_sign));
}

std::string AuthorizationHeader(std::string_view access_key_id, std::string_view amz_date,
                                const SigningScope& scope,
                                const std::vector<std::string>& signed_headers,
                                std::string_view signature) {
  std::string names;
  for (const std::string& name : signed_headers) {
    names += (names.empty() ? "" : ";") + name;
  }
  return std::string(kAlgorithm) + " Credential=" + std::string(access_key_id) + "/" +
         CredentialScope(amz_date, scope) + ", SignedHeaders=" + names +
         ", Signature=" + std::string(signature);
}

void SignRequest(SigningRequest& request, const Credentials& credentials, const SigningScope& scope,
                 core::SystemTime now) {
  const std::string amz_date = AmzDate(now);
  std::erase_if(request.headers, [](const auto& header) {
    const std::string lower = Lower(header.first);
    return lower == "x-amz-date" || lower == "authorization" || lower == "x-amz-security-token";
  });
  request.headers.emplace_back("X-Amz-Date", amz_date);
  if (!credentials.session_token.empty()) {
    request.headers.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }
  const std::vector<std::string> signed_headers = HeadersToSign(request);
  const std::string signature =
      Signature(request, signed_headers, credentials.secret_access_key, amz_date, scope);
  request.headers.emplace_back(
      "Authorization",
      AuthorizationHeader(credentials.access_key_id, amz_date, scope, signed_headers, signature));
}

std::optional<ParsedAuthorization> ParseAuthorization(std::string_view header) {
  if (!header.starts_with(kAlgorithm) || header.size() <= kAlgorithm.size() ||
      header[kAlgorithm.size()] != ' ') {
    return std::nullopt;
  }
  header.remove_prefix(kAlgorithm.size() + 1);
  ParsedAuthorization out;
  bool have_credential = false, have_headers = false, have_signature = false;
  size_t start = 0;
  while (start < header.size()) {
    size_t end = header.find(',', start);
    if (end == std::string_view::npos) {
      end = header.size();
    }
    std::string_view part = header.substr(start, end - start);
    while (!part.empty() && part.front() == ' ') {
      part.remove_prefix(1);
    }
    start = end + 1;
    size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      return std::nullopt;
    }
    std::string_view key = part.substr(0, eq);
    std::string_view value = part.substr(eq + 1);
    if (key == "Credential") {
      // AKID/yyyymmdd/region/service/aws4_request
      std::vector<std::string> fields;
      size_t s = 0;
      while (s <= value.size()) {
        size_t e = value.find('/', s);
        if (e == std::string_view::npos) {
          e = value.size();
        }
        fields.emplace_back(value.substr(s, e - s));
        s = e + 1;
      }
      if (fields.size() != 5 || fields[4] != "aws4_request" || fields[1].size() != 8) {
        return std::nullopt;
      }
      out.access_key_id = fields[0];
      out.date = fields[1];
      out.scope = SigningScope{.region = fields[2], .service = fields[3]};
      have_credential = true;
    } else if (key == "SignedHeaders") {
      size_t s = 0;
      while (s <= value.size()) {
        size_t e = value.find(';', s);
        if (e == std::string_view::npos) {
          e = value.size();
        }
        if (e > s) {
          out.signed_headers.emplace_back(value.substr(s, e - s));
        }
        s = e + 1;
      }
      have_headers = !out.signed_headers.empty();
    } else if (key == "Signature") {
      out.signature = std::string(value);
      have_signature = !value.empty();
    }
  }
  if (!have_credential || !have_headers || !have_signature) {
    return std::nullopt;
  }
  return out;
}

}  // namespace gpuorch::providers::aws
