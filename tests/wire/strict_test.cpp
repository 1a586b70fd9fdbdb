// The strict decoder: what it accepts, and every way it refuses (docs/protocol.md, "Payloads are
// decoded strictly").
#include "wire/strict.h"

#include <string>
#include <vector>

#include "clade/v1/audit.pb.h"
#include "clade/v1/hsm_state.pb.h"
#include "crypto/key.h"
#include "crypto/x509.h"
#include "google/protobuf/unknown_field_set.h"
#include "support/testing.h"
#include "test_signer.h"

namespace clade::wire {
namespace {

using ::clade::testing::StatusIs;
using ::testing::Eq;

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

// A membership with a set sub-message (`group`) and two repeated ones (`children`).
v1::GroupMembership Membership() {
  v1::GroupMembership m;
  m.mutable_group()->set_group_id("g-1");
  m.mutable_group()->add_group_ca_chain("der");
  m.set_member_id("1.2");
  m.add_children()->set_member_id("1.2.1");
  m.add_children()->set_member_id("1.2.2");
  return m;
}

std::vector<uint8_t> Encode(const google::protobuf::Message& m) {
  std::string s = m.SerializeAsString();
  return std::vector<uint8_t>(s.begin(), s.end());
}

// Adds field `number` (a varint), unknown to this version, to `m`.
void AddUnknown(google::protobuf::Message* m, int number) {
  m->GetReflection()->MutableUnknownFields(m)->AddVarint(number, 1);
}

TEST(ParseStrict, DecodesAGoodMessage) {
  v1::GroupMembership out;
  ASSERT_OK(ParseStrict(Encode(Membership()), out, "clade.v1.GroupMembership"));
  EXPECT_EQ(out.SerializeAsString(), Membership().SerializeAsString());
  ASSERT_OK_AND_ASSIGN(v1::GroupMembership typed,
                       ParseStrictAs<v1::GroupMembership>(Encode(Membership()), "membership"));
  EXPECT_EQ(typed.children(1).member_id(), "1.2.2");
  // No bytes is the message with every field unset, as protobuf has it.
  ASSERT_OK(ParseStrict({}, out, "clade.v1.GroupMembership"));
}

TEST(ParseStrict, RefusesAnUnknownTopLevelField) {
  v1::GroupMembership m = Membership();
  AddUnknown(&m, 99);
  v1::GroupMembership out;
  EXPECT_THAT(ParseStrict(Encode(m), out, "clade.v1.GroupMembership"),
              StatusIs(kInvalid, Eq("clade.v1.GroupMembership has unknown field 99")));
}

TEST(ParseStrict, RefusesAnUnknownFieldInASetSubMessage) {
  v1::GroupMembership m = Membership();
  AddUnknown(m.mutable_group(), 12);
  v1::GroupMembership out;
  EXPECT_THAT(ParseStrict(Encode(m), out, "clade.v1.GroupMembership"),
              StatusIs(kInvalid, Eq("clade.v1.GroupMembership has unknown field 12 in group")));
}

TEST(ParseStrict, RefusesAnUnknownFieldInARepeatedSubMessage) {
  v1::GroupMembership m = Membership();
  AddUnknown(m.mutable_children(1), 7);
  v1::GroupMembership out;
  EXPECT_THAT(ParseStrict(Encode(m), out, "stored membership"),
              StatusIs(kInvalid, Eq("stored membership has unknown field 7 in children[1]")));

  v1::AuditExport ex;
  ex.add_checkpoints()->set_seq(1);
  ex.add_checkpoints()->set_seq(2);
  ex.add_checkpoints()->set_seq(3);
  AddUnknown(ex.mutable_checkpoints(2), 40);
  v1::AuditExport ex_out;
  EXPECT_THAT(
      ParseStrict(Encode(ex), ex_out, "clade.v1.AuditExport"),
      StatusIs(kInvalid, Eq("clade.v1.AuditExport has unknown field 40 in checkpoints[2]")));
}

TEST(ParseStrict, RefusesTruncatedBytes) {
  std::vector<uint8_t> bytes = Encode(Membership());
  bytes.resize(bytes.size() - 3);  // inside the last child
  v1::GroupMembership out;
  EXPECT_THAT(ParseStrict(bytes, out, "clade.v1.GroupMembership"),
              StatusIs(kInvalid, Eq("clade.v1.GroupMembership does not parse")));
}

TEST(ParseStrict, RefusesInputOverTheLimit) {
  std::vector<uint8_t> bytes = Encode(Membership());
  v1::GroupMembership out;
  EXPECT_THAT(
      ParseStrict(bytes, out, "clade.v1.GroupMembership", bytes.size() - 1),
      StatusIs(kInvalid, Eq("clade.v1.GroupMembership is " + std::to_string(bytes.size()) +
                            " bytes, more than the limit of " + std::to_string(bytes.size() - 1))));
  ASSERT_OK(ParseStrict(bytes, out, "clade.v1.GroupMembership", bytes.size()));
}

using testing::MakeSigner;
using testing::Signer;

class PayloadTest : public ::testing::Test {
 protected:
  std::vector<uint8_t> Seal(const std::string& type, const google::protobuf::Message& m) {
    auto sealed = SealMessage(type, Encode(m), signer_.key, {signer_.cert});
    EXPECT_TRUE(sealed.ok()) << sealed.status();
    return sealed.ok() ? *sealed : std::vector<uint8_t>();
  }
  Signer signer_ = MakeSigner();
};

TEST_F(PayloadTest, OpensATypedMessage) {
  ASSERT_OK_AND_ASSIGN(auto opened, OpenMessageAs<v1::GroupMembership>(
                                        Seal("clade.v1.GroupMembership", Membership())));
  EXPECT_EQ(opened.envelope.type, "clade.v1.GroupMembership");
  EXPECT_EQ(opened.envelope.signer_chain.front(), signer_.cert);
  EXPECT_EQ(opened.message.group().group_id(), "g-1");
}

TEST_F(PayloadTest, RefusesAPayloadWithAnUnknownFieldSignedProperly) {
  v1::GroupMembership m = Membership();
  AddUnknown(m.mutable_children(0), 5);
  EXPECT_THAT(OpenMessageAs<v1::GroupMembership>(Seal("clade.v1.GroupMembership", m)),
              StatusIs(kInvalid, Eq("malformed message: clade.v1.GroupMembership payload has "
                                    "unknown field 5 in children[0]")));
}

TEST_F(PayloadTest, RefusesAPayloadThatDoesNotParse) {
  std::vector<uint8_t> junk = {0x0a, 0x05, 0x01};  // field 1, 5 bytes announced, 1 given
  auto sealed = SealMessage("clade.v1.GroupMembership", junk, signer_.key, {signer_.cert});
  ASSERT_OK(sealed);
  EXPECT_THAT(
      OpenMessageAs<v1::GroupMembership>(*sealed),
      StatusIs(kInvalid, Eq("malformed message: clade.v1.GroupMembership payload does not parse")));
}

TEST_F(PayloadTest, RefusesAnEnvelopeOfAnotherType) {
  std::vector<uint8_t> sealed = Seal("clade.v1.AuditHead", Membership());
  EXPECT_THAT(OpenMessageAs<v1::GroupMembership>(sealed),
              StatusIs(kInvalid, Eq("message is a clade.v1.AuditHead, expected a "
                                    "clade.v1.GroupMembership")));
  ASSERT_OK_AND_ASSIGN(Envelope env, OpenAnyMessage(sealed));
  EXPECT_THAT(ParsePayload<v1::GroupMembership>(env),
              StatusIs(kInvalid, Eq("message is a clade.v1.AuditHead, expected a "
                                    "clade.v1.GroupMembership")));
}

}  // namespace
}  // namespace clade::wire
