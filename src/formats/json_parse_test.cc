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

TEST(ParseJson, OrderedObjectsHaveAMemberLimit) {
  // ordered_json inserts in quadratic time: more members than the limit in one object is an error
  // naming the byte of the first one too many; arrays, nested objects and the unordered DOM are free.
  auto object = [](size_t n) {
    std::string t = "{";
    for (size_t i = 0; i < n; ++i) t += (i ? ",\"" : "\"") + std::to_string(i) + "\":1";
    return t + "}";
  };
  const std::string at_limit = object(kMaxOrderedJsonMembers);
  auto ok = ParseJson<nlohmann::ordered_json>(at_limit, "body");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->size(), kMaxOrderedJsonMembers);
  const std::string over = object(kMaxOrderedJsonMembers + 1);
  auto bad = ParseJson<nlohmann::ordered_json>("{\"x\": " + over + "}", "request body");
  ASSERT_FALSE(bad.ok());
  const size_t comma = 6 + over.rfind(",\"" + std::to_string(kMaxOrderedJsonMembers) + "\":");
  EXPECT_NE(bad.status().message().find("request body: a JSON object with more than 16384 members (at byte " +
                                        std::to_string(comma) + ")"),
            std::string::npos)
      << bad.status().message();
  EXPECT_TRUE(ParseJson<Json>(over, "vocab.json").ok());  // std::map: no limit
  // Commas in arrays, in strings and in nested objects do not count for the outer object.
  std::string ones;
  for (int i = 0; i < 20000; ++i) ones += "1,";
  const std::string arr = "{\"a\": [" + ones + "1], \"s\": \"" + std::string(40000, ',') + "\"}";
  EXPECT_TRUE(ParseJson<nlohmann::ordered_json>(arr, "arrays").ok());
  EXPECT_TRUE(ParseJson<nlohmann::ordered_json>("[" + at_limit + "," + at_limit + "]", "two").ok());
}

}  // namespace
}  // namespace moxie
