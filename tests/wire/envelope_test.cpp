// The signed envelope: what it accepts, and every way it refuses.
#include "wire/envelope.h"

#include <algorithm>

#include "clade/v1/envelope.pb.h"
#include "crypto/random.h"
#include "crypto/signature.h"
#include "support/testing.h"
#include "test_signer.h"

namespace clade::wire {
namespace {

using ::clade::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kType[] = "clade.v1.GroupAnnouncement";

using testing::MakeSigner;
using testing::Signer;

v1::SignedMessage Decode(const std::vector<uint8_t>& bytes) {
  v1::SignedMessage m;
  EXPECT_TRUE(m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
  return m;
}

std::vector<uint8_t> Encode(const v1::SignedMessage& m) {
  std::string s = m.SerializeAsString();
  return std::vector<uint8_t>(s.begin(), s.end());
}

class EnvelopeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    payload_ = crypto::RandomBytes(64);
    auto sealed = SealMessage(kType, payload_, signer_.key, {signer_.cert});
    ASSERT_OK(sealed);
    sealed_ = *sealed;
  }
  Signer signer_ = MakeSigner();
  std::vector<uint8_t> payload_;
  std::vector<uint8_t> sealed_;
};

TEST_F(EnvelopeTest, OpensWhatItSealed) {
  ASSERT_OK_AND_ASSIGN(Envelope env, OpenMessage(sealed_, kType));
  EXPECT_EQ(env.type, kType);
  EXPECT_EQ(env.payload, payload_);
  ASSERT_EQ(env.signer_chain.size(), 1u);
  EXPECT_EQ(env.signer_chain[0], signer_.cert);
  ASSERT_OK_AND_ASSIGN(Envelope any, OpenAnyMessage(sealed_));
  EXPECT_EQ(any.type, kType);
}

TEST_F(EnvelopeTest, RefusesWrongType) {
  EXPECT_THAT(OpenMessage(sealed_, "clade.v1.EnrollmentResponse"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("message is a clade.v1.GroupAnnouncement, expected a "
                                 "clade.v1.EnrollmentResponse")));
}

TEST_F(EnvelopeTest, RefusesTypeRelabelledByAnAttacker) {
  v1::SignedMessage m = Decode(sealed_);
  m.set_type("clade.v1.EnrollmentResponse");
  EXPECT_THAT(OpenMessage(Encode(m), "clade.v1.EnrollmentResponse"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("message signature does not verify")));
}

TEST_F(EnvelopeTest, RefusesTamperedPayloadAndSignature) {
  v1::SignedMessage m = Decode(sealed_);
  std::string payload = m.payload();
  payload[3] ^= 1;
  m.set_payload(payload);
  EXPECT_THAT(OpenMessage(Encode(m), kType),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("does not verify")));
  m = Decode(sealed_);
  std::string sig = m.signature();
  sig[sig.size() - 2] ^= 1;
  m.set_signature(sig);
  EXPECT_THAT(OpenMessage(Encode(m), kType),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("does not verify")));
}

TEST_F(EnvelopeTest, RefusesSignerCertificateSwapped) {
  Signer other = MakeSigner();
  v1::SignedMessage m = Decode(sealed_);
  m.set_signer_chain(0, std::string(other.cert.Der().begin(), other.cert.Der().end()));
  EXPECT_THAT(OpenMessage(Encode(m), kType),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("does not verify")));
}

TEST_F(EnvelopeTest, RefusesMissingFields) {
  struct Case {
    void (*strip)(v1::SignedMessage&);
    const char* reason;
  };
  const Case cases[] = {
      {[](v1::SignedMessage& m) { m.clear_type(); }, "type is missing"},
      {[](v1::SignedMessage& m) { m.clear_payload(); }, "payload is missing"},
      {[](v1::SignedMessage& m) { m.clear_signer_chain(); }, "signer chain is missing"},
      {[](v1::SignedMessage& m) { m.clear_signature(); }, "signature is missing"},
  };
  for (const Case& c : cases) {
    v1::SignedMessage m = Decode(sealed_);
    c.strip(m);
    EXPECT_THAT(OpenMessage(Encode(m), kType),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.reason)));
  }
}

TEST_F(EnvelopeTest, RefusesTruncatedOversizedAndUnknownFields) {
  std::vector<uint8_t> truncated(sealed_.begin(), sealed_.begin() + sealed_.size() / 2);
  EXPECT_THAT(OpenMessage(truncated, kType),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed message")));
  EXPECT_THAT(OpenMessage({}, kType),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty input")));
  EXPECT_THAT(OpenMessage(sealed_, kType, sealed_.size() - 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("more than the limit")));
  std::vector<uint8_t> extra = sealed_;
  extra.push_back(0x48);  // field 9, varint
  extra.push_back(0x01);
  EXPECT_THAT(OpenMessage(extra, kType),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("malformed message: clade.v1.SignedMessage has unknown field 9")));
  v1::SignedMessage m = Decode(sealed_);
  m.set_signer_chain(0, "not a certificate");
  EXPECT_THAT(OpenMessage(Encode(m), kType),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("signer certificate 0")));
}

TEST_F(EnvelopeTest, EveryFlippedBitOutsideTheChainIsRefused) {
  // Flip one bit at a spread of positions: nothing tampered may open. (A flip inside the
  // certificate's own signature still yields the same leaf key; the receiver's chain check
  // refuses that, in src/hsm.)
  const auto& der = signer_.cert.Der();
  auto at = std::search(sealed_.begin(), sealed_.end(), der.begin(), der.end());
  ASSERT_NE(at, sealed_.end());
  size_t cert_begin = static_cast<size_t>(at - sealed_.begin());
  size_t cert_end = cert_begin + der.size();
  for (size_t i = 0; i < sealed_.size(); i += 3) {
    if (i >= cert_begin && i < cert_end) continue;
    auto bad = sealed_;
    bad[i] ^= static_cast<uint8_t>(1u << (i % 8));
    EXPECT_FALSE(OpenMessage(bad, kType).ok()) << "flipped bit at byte " << i;
  }
}

TEST(Envelope, SealRefusesKeyThatDoesNotMatchTheChain) {
  Signer a = MakeSigner();
  Signer b = MakeSigner();
  std::vector<uint8_t> payload = {1};
  EXPECT_THAT(SealMessage(kType, payload, a.key, {b.cert}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not match")));
  EXPECT_THAT(SealMessage("", payload, a.key, {a.cert}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("message type")));
}

}  // namespace
}  // namespace clade::wire
