// Hierarchical member ids (patent FIG. 4): parse, format, children, bounds.
#include "hsm/member_id.h"

#include <string>

#include "support/testing.h"

namespace clade::hsm {
namespace {

std::string Repeat(const std::string& part, size_t depth) {
  std::string out = part;
  for (size_t i = 1; i < depth; ++i) out += "." + part;
  return out;
}

TEST(MemberIdTest, ParsesAndFormats) {
  for (const char* text : {"1", "1.1", "1.2", "1.1.1", "1.2.1", "7.300.4", "1.4294967295"}) {
    ASSERT_OK_AND_ASSIGN(MemberId id, MemberId::Parse(text));
    EXPECT_EQ(id.ToString(), text);
  }
  ASSERT_OK_AND_ASSIGN(MemberId id, MemberId::Parse("1.2.3"));
  EXPECT_EQ(id.depth(), 3u);
  EXPECT_EQ(id.parts(), (std::vector<uint32_t>{1, 2, 3}));
}

TEST(MemberIdTest, FounderIsOne) {
  EXPECT_EQ(MemberId::Founder().ToString(), "1");
  EXPECT_EQ(MemberId::Founder().depth(), 1u);
  EXPECT_EQ(MemberId::Founder(), *MemberId::Parse("1"));
}

TEST(MemberIdTest, ChildrenAreOneLevelBelow) {
  MemberId founder = MemberId::Founder();
  ASSERT_OK_AND_ASSIGN(MemberId c1, founder.Child(1));
  ASSERT_OK_AND_ASSIGN(MemberId c2, founder.Child(2));
  EXPECT_EQ(c1.ToString(), "1.1");
  EXPECT_EQ(c2.ToString(), "1.2");
  ASSERT_OK_AND_ASSIGN(MemberId g, c1.Child(1));
  EXPECT_EQ(g.ToString(), "1.1.1");
  ASSERT_OK_AND_ASSIGN(MemberId big, founder.Child(4294967295u));
  EXPECT_EQ(big.ToString(), "1.4294967295");

  EXPECT_TRUE(c1.IsChildOf(founder));
  EXPECT_TRUE(c2.IsChildOf(founder));
  EXPECT_TRUE(g.IsChildOf(c1));
  EXPECT_FALSE(g.IsChildOf(founder));  // a grandchild is not a child
  EXPECT_FALSE(g.IsChildOf(c2));       // nor is a nephew
  EXPECT_FALSE(founder.IsChildOf(founder));
  EXPECT_FALSE(founder.IsChildOf(c1));  // a parent is not a child of its child
  EXPECT_FALSE(c1.IsChildOf(c1));
  EXPECT_FALSE(c1.IsChildOf(c2));  // siblings
  ASSERT_OK_AND_ASSIGN(MemberId other_root, MemberId::Parse("2"));
  ASSERT_OK_AND_ASSIGN(MemberId other_child, MemberId::Parse("2.1"));
  EXPECT_FALSE(other_child.IsChildOf(founder));
  EXPECT_TRUE(other_child.IsChildOf(other_root));
}

TEST(MemberIdTest, ChildRefusesZeroAndOverflow) {
  EXPECT_FALSE(MemberId::Founder().Child(0).ok());
  EXPECT_FALSE(MemberId::Founder().Child(4294967296ull).ok());
}

TEST(MemberIdTest, DepthBound) {
  ASSERT_OK_AND_ASSIGN(MemberId deep, MemberId::Parse(Repeat("1", 32)));
  EXPECT_EQ(deep.depth(), MemberId::kMaxDepth);
  EXPECT_EQ(deep.ToString(), Repeat("1", 32));
  EXPECT_FALSE(MemberId::Parse(Repeat("1", 33)).ok());
  // The 32nd level has no children.
  EXPECT_FALSE(deep.Child(1).ok());
  ASSERT_OK_AND_ASSIGN(MemberId level31, MemberId::Parse(Repeat("1", 31)));
  ASSERT_OK_AND_ASSIGN(MemberId level32, level31.Child(5));
  EXPECT_EQ(level32.depth(), 32u);
  EXPECT_TRUE(level32.IsChildOf(level31));
}

TEST(MemberIdTest, PartBound) {
  ASSERT_OK_AND_ASSIGN(MemberId max, MemberId::Parse("4294967295"));
  EXPECT_EQ(max.parts()[0], 4294967295u);
  ASSERT_OK(MemberId::Parse("1.4294967295.4294967295"));
  EXPECT_FALSE(MemberId::Parse("4294967296").ok());
  EXPECT_FALSE(MemberId::Parse("1.4294967296").ok());
  EXPECT_FALSE(MemberId::Parse("1.99999999999999999999999").ok());
  EXPECT_FALSE(MemberId::Parse("18446744073709551617").ok());  // 2^64 + 1 wraps a uint64
}

TEST(MemberIdTest, RefusesMalformedText) {
  for (const char* text :
       {"",  "0",   "01", "1.0", "1.01", "1..2", "1.",  ".1",   "-1", "+1", "1.-2",
        "a", "1.a", "1 ", " 1",  "1,2",  "1/2",  "0x1", "1.2.", "..", "."}) {
    auto parsed = MemberId::Parse(text);
    EXPECT_FALSE(parsed.ok()) << "'" << text << "' parsed as " << parsed->ToString();
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << "'" << text << "'";
    }
  }
  // An embedded NUL is not a separator.
  EXPECT_FALSE(MemberId::Parse(std::string_view("1\0"
                                                "2",
                                                3))
                   .ok());
}

}  // namespace
}  // namespace clade::hsm
