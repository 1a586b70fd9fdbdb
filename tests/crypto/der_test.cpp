// Hand-written DER: UTF8String round trips in short and long form; anything not exact DER is
// refused.
#include "crypto/der.h"

#include "support/testing.h"

namespace clade::crypto {
namespace {

using ::clade::testing::StatusIs;
using ::testing::HasSubstr;

TEST(Der, Utf8StringRoundTripsInShortAndLongForm) {
  for (size_t n : {size_t{0}, size_t{5}, size_t{127}, size_t{128}, size_t{300}, size_t{65535}}) {
    std::string s(n, 'x');
    auto der = DerUtf8String(s);
    ASSERT_OK_AND_ASSIGN(std::string back, ParseDerUtf8String(der));
    EXPECT_EQ(back, s);
  }
  EXPECT_EQ(DerUtf8String("1.2"), (std::vector<uint8_t>{0x0c, 0x03, '1', '.', '2'}));
}

TEST(Der, RefusesWhatIsNotExactDer) {
  const std::vector<std::vector<uint8_t>> bad = {
      {},                        // empty
      {0x13, 0x01, 'a'},         // PrintableString, not UTF8String
      {0x0c, 0x02, 'a'},         // truncated
      {0x0c, 0x01, 'a', 'b'},    // trailing byte
      {0x0c, 0x81, 0x01, 'a'},   // long form for a short length
      {0x0c, 0x82, 0x00, 0x80},  // two-byte length below 256
      {0x0c, 0x80},              // indefinite length
  };
  for (const auto& der : bad) {
    EXPECT_THAT(ParseDerUtf8String(der),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a DER UTF8String")));
  }
}

}  // namespace
}  // namespace clade::crypto
