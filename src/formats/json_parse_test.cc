// ParseJson: untrusted JSON never throws and never overflows the stack; errors name the source.
#include "formats/json_parse.h"

#include <gtest/gtest.h>

#include <string>

namespace moxie {
namespace {

using Json = nlohmann::json;

TEST(ParseJson, NestingBeyondTheLimitIsAnErrorWithItsByte) {
  const std::string deep = "{\"a\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto r = ParseJson<Json>(deep, "deep.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("deep.json"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("nested deeper than 256 levels at byte 261"), std::string::npos)
      << r.status().message();
  // Exactly at the limit parses (the outer object is level 1).
  const std::string at_limit = "{\"a\": " + std::string(255, '[') + std::string(255, ']') + "}";
  auto ok = ParseJson<Json>(at_limit, "limit.json");
  EXPECT_TRUE(ok.ok()) << ok.status().message();
  // Brackets and escaped quotes inside strings do not count.
  const std::string in_string = "{\"a\": \"" + std::string(1000, '[') + "\\\"" + std::string(1000, '{') + "\"}";
  auto s = ParseJson<Json>(in_string, "strings.json");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ((*s)["a"].get<std::string>().size(), 2001u);
}

TEST(ParseJson, MalformedTextAndOutOfRangeNumbersAreErrors) {
  auto bad = ParseJson<Json>("{\"a\": [1, 2", "cut.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("cut.json: malformed JSON at byte"), std::string::npos)
      << bad.status().message();
  auto big = ParseJson<nlohmann::ordered_json>("{\"a\": 1e400}", "big.json");
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("big.json"), std::string::npos) << big.status().message();
  auto fine = ParseJson<Json>("{\"a\": [1, {\"b\": null}], \"c\": -2.5e-3}", "fine.json");
  ASSERT_TRUE(fine.ok());
  EXPECT_EQ((*fine)["a"][0].get<int>(), 1);
}

}  // namespace
}  // namespace moxie
