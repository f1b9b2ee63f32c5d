// SigV4 against the AWS signature test suite vectors (aws-sig-v4-test-suite, 2015-08-30) and the
// AWS documentation examples; see shared/providers/aws-ec2.md section 7.
#include "providers/aws/sigv4.h"

#include <gtest/gtest.h>

namespace gpuorch::providers::aws {
namespace {

constexpr char kAkid[] = "AKIDEXAMPLE";
constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr char kAmzDate[] = "20150830T123600Z";
const SigningScope kScope{.region = "us-east-1", .service = "service"};

core::SystemTime SuiteTime() {
  // 2015-08-30T12:36:00Z
  return core::SystemTime(std::chrono::seconds(1440938160));
}

SigningRequest Vanilla(std::string method) {
  return SigningRequest{.method = std::move(method),
                        .path = "/",
                        .headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", kAmzDate}}};
}

TEST(SigV4Test, AmzDateFormatsUtcBasicIso8601) { EXPECT_EQ(AmzDate(SuiteTime()), kAmzDate); }

TEST(SigV4Test, SigningKeyOfTheSuite) {
  EXPECT_EQ(HexEncode(SigningKey(kSecret, "20150830", kScope)),
            "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75");
}

TEST(SigV4Test, SigningKeyOfTheDocsExample) {
  const SigningScope iam{.region = "us-east-1", .service = "iam"};
  EXPECT_EQ(HexEncode(SigningKey(kSecret, "20120215", iam)),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
  // The chain's intermediates.
  const std::string k_date = HmacSha256(std::string("AWS4") + kSecret, "20120215");
  EXPECT_EQ(HexEncode(k_date), "969fbb94feb542b71ede6f87fe4d5fa29c789342b0f407474670f0c2489e0a0d");
  const std::string k_region = HmacSha256(k_date, "us-east-1");
  EXPECT_EQ(HexEncode(k_region),
            "69daa0209cd9c5ff5c8ced464a696fd4252e981430b10e3d3fd8e2f197d7a70c");
  EXPECT_EQ(HexEncode(HmacSha256(k_region, "iam")),
            "f72cfd46f26bc4643f06a11eabb6c0ba18780c19a8da0c31ace671265e3c87fa");
}

TEST(SigV4Test, GetVanilla) {
  SigningRequest request = Vanilla("GET");
  const auto names = HeadersToSign(request);
  const std::string canonical = CanonicalRequest(request, names);
  EXPECT_EQ(canonical,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "host;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(StringToSign(kAmzDate, kScope, canonical),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  const std::string signature = Signature(request, names, kSecret, kAmzDate, kScope);
  EXPECT_EQ(signature, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  EXPECT_EQ(AuthorizationHeader(kAkid, kAmzDate, kScope, names, signature),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST(SigV4Test, SignRequestAddsDateAndAuthorization) {
  SigningRequest request{
      .method = "GET",
      .path = "/",
      .headers = {{"Host", "example.amazonaws.com"}, {"User-Agent", "gpuorch/0.1"}}};
  SignRequest(request, Credentials{.access_key_id = kAkid, .secret_access_key = kSecret}, kScope,
              SuiteTime());
  std::string authorization, date;
  for (const auto& [name, value] : request.headers) {
    if (name == "Authorization") {
      authorization = value;
    }
    if (name == "X-Amz-Date") {
      date = value;
    }
  }
  EXPECT_EQ(date, kAmzDate);
  // user-agent is not signed, so this is the get-vanilla signature.
  EXPECT_EQ(authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST(SigV4Test, SessionTokenIsSentAndSigned) {
  SigningRequest request{
      .method = "GET", .path = "/", .headers = {{"Host", "example.amazonaws.com"}}};
  SignRequest(
      request,
      Credentials{.access_key_id = kAkid, .secret_access_key = kSecret, .session_token = "tok"},
      kScope, SuiteTime());
  bool has_token = false;
  std::string authorization;
  for (const auto& [name, value] : request.headers) {
    has_token |= name == "X-Amz-Security-Token" && value == "tok";
    if (name == "Authorization") {
      authorization = value;
    }
  }
  EXPECT_TRUE(has_token);
  EXPECT_NE(authorization.find("SignedHeaders=host;x-amz-date;x-amz-security-token"),
            std::string::npos)
      << authorization;
}

TEST(SigV4Test, PostVanilla) {
  SigningRequest request = Vanilla("POST");
  const auto names = HeadersToSign(request);
  const std::string canonical = CanonicalRequest(request, names);
  EXPECT_EQ(canonical,
            "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "host;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(StringToSign(kAmzDate, kScope, canonical)
                .substr(StringToSign(kAmzDate, kScope, canonical).rfind('\n') + 1),
            "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87");
  EXPECT_EQ(Signature(request, names, kSecret, kAmzDate, kScope),
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

TEST(SigV4Test, GetVanillaQueryOrderKeyCase) {
  SigningRequest request = Vanilla("GET");
  request.query = "Param2=value2&Param1=value1";
  const auto names = HeadersToSign(request);
  const std::string canonical = CanonicalRequest(request, names);
  EXPECT_EQ(canonical,
            "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n"
            "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex(canonical),
            "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0");
  EXPECT_EQ(Signature(request, names, kSecret, kAmzDate, kScope),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

TEST(SigV4Test, PostXWwwFormUrlencoded) {
  SigningRequest request{.method = "POST",
                         .path = "/",
                         .headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                                     {"Host", "example.amazonaws.com"},
                                     {"X-Amz-Date", kAmzDate}},
                         .body = "Param1=value1"};
  EXPECT_EQ(Sha256Hex(request.body),
            "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
  const auto names = HeadersToSign(request);
  const std::string canonical = CanonicalRequest(request, names);
  EXPECT_EQ(canonical,
            "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\n"
            "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "content-type;host;x-amz-date\n"
            "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
  EXPECT_EQ(StringToSign(kAmzDate, kScope, canonical),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281");
  const std::string signature = Signature(request, names, kSecret, kAmzDate, kScope);
  EXPECT_EQ(signature, "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
  EXPECT_EQ(AuthorizationHeader(kAkid, kAmzDate, kScope, names, signature),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date, "
            "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
}

TEST(SigV4Test, PostXWwwFormUrlencodedWithSignedBodyHash) {
  const std::string body_hash = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e";
  SigningRequest request{.method = "POST",
                         .path = "/",
                         .headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                                     {"Host", "example.amazonaws.com"},
                                     {"Content-Length", "13"},
                                     {"X-Amz-Content-Sha256", body_hash},
                                     {"X-Amz-Date", kAmzDate}},
                         .body = "Param1=value1"};
  const auto names = HeadersToSign(request);
  const std::string canonical = CanonicalRequest(request, names);
  EXPECT_EQ(canonical,
            "POST\n/\n\ncontent-length:13\ncontent-type:application/x-www-form-urlencoded\n"
            "host:example.amazonaws.com\nx-amz-content-sha256:" +
                body_hash +
                "\nx-amz-date:20150830T123600Z\n\n"
                "content-length;content-type;host;x-amz-content-sha256;x-amz-date\n" +
                body_hash);
  EXPECT_EQ(Sha256Hex(canonical),
            "b1edd1d03544c25390e32085d55b57acc9a3961bb59415ff86c45c3d89d16cfb");
  EXPECT_EQ(Signature(request, names, kSecret, kAmzDate, kScope),
            "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b");
}

TEST(SigV4Test, IamListUsersDocsExample) {
  const SigningScope iam{.region = "us-east-1", .service = "iam"};
  SigningRequest request{
      .method = "GET",
      .path = "/",
      .query = "Action=ListUsers&Version=2010-05-08",
      .headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
                  {"Host", "iam.amazonaws.com"},
                  {"X-Amz-Date", kAmzDate}}};
  const auto names = HeadersToSign(request);
  const std::string canonical = CanonicalRequest(request, names);
  EXPECT_EQ(canonical,
            "GET\n/\nAction=ListUsers&Version=2010-05-08\n"
            "content-type:application/x-www-form-urlencoded; charset=utf-8\n"
            "host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "content-type;host;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex(canonical),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59");
  EXPECT_EQ(Signature(request, names, kSecret, kAmzDate, iam),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
}

TEST(SigV4Test, Ec2DescribeInstancesPost) {
  const SigningScope ec2{.region = "us-east-1", .service = "ec2"};
  SigningRequest request{
      .method = "POST",
      .path = "/",
      .headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
                  {"Host", "ec2.us-east-1.amazonaws.com"}},
      .body = "Action=DescribeInstances&Version=2016-11-15"};
  SignRequest(request, Credentials{.access_key_id = kAkid, .secret_access_key = kSecret}, ec2,
              SuiteTime());
  const auto names = HeadersToSign(request);
  ASSERT_EQ(names, (std::vector<std::string>{"content-type", "host", "x-amz-date"}));
  const std::string canonical = CanonicalRequest(request, names);
  EXPECT_EQ(canonical,
            "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\n"
            "host:ec2.us-east-1.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "content-type;host;x-amz-date\n"
            "6171eb09865e32b0602af0f7957e26573a51f53caaedff02ff88883cb0275885");
  EXPECT_EQ(StringToSign(kAmzDate, ec2, canonical),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/ec2/aws4_request\n"
            "0221a4494c80472be452000db78cde41600a75b92b347eb115279625794ab465");
  EXPECT_EQ(request.headers.back().second,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date, "
            "Signature=16bec6625521eb1b2a944bb8409fdd5a54007d61862cf7074d07d2e75a3a4950");
}

TEST(SigV4Test, HeaderValuesAreTrimmedAndCollapsed) {
  SigningRequest request{
      .method = "GET",
      .path = "/",
      .headers = {{"Host", "h"}, {"My-Header", "  a   b \t c  "}, {"my-header", "d"}}};
  const auto names = HeadersToSign(request);
  EXPECT_EQ(names, (std::vector<std::string>{"host", "my-header"}));
  EXPECT_NE(CanonicalRequest(request, names).find("\nmy-header:a b c,d\n"), std::string::npos);
}

TEST(SigV4Test, UriEncodingFollowsRfc3986) {
  EXPECT_EQ(UriEncode("a b+c/~_-.*"), "a%20b%2Bc%2F~_-.%2A");
  EXPECT_EQ(UriEncode("a/b", true), "a/b");
  EXPECT_EQ(CanonicalQueryString("b=2&a=x%20y&a=1&c"), "a=1&a=x%20y&b=2&c=");
}

TEST(SigV4Test, ParseAuthorizationRoundTrips) {
  auto parsed = ParseAuthorization(
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request, "
      "SignedHeaders=content-type;host;x-amz-date, Signature=abc123");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(parsed->date, "20150830");
  EXPECT_EQ(parsed->scope.region, "us-east-1");
  EXPECT_EQ(parsed->scope.service, "ec2");
  EXPECT_EQ(parsed->signed_headers,
            (std::vector<std::string>{"content-type", "host", "x-amz-date"}));
  EXPECT_EQ(parsed->signature, "abc123");
  EXPECT_FALSE(ParseAuthorization("Bearer x").has_value());
  EXPECT_FALSE(ParseAuthorization("AWS4-HMAC-SHA256 Credential=a/b, Signature=x").has_value());
  EXPECT_FALSE(ParseAuthorization("AWS4-HMAC-SHA256 ").has_value());
  EXPECT_FALSE(ParseAuthorization("").has_value());
}

}  // namespace
}  // namespace gpuorch::providers::aws
