// Chip manifests: what a tester's file or a chip reader's output gives the line, and every
// refusal of the strict parser, each with its exact message (naming the line and the field); a
// refused manifest gives no chips. The chip reader runs as a programmer command does.
#include "line/chip_source.h"

#include <unistd.h>

#include <filesystem>

#include "crypto/key.h"
#include "crypto/x509.h"
#include "support/testing.h"

namespace clade::line {
namespace {

using ::clade::testing::StatusIs;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A JSON string of `text` (PEM holds only base64, '-', ' ' and newlines).
std::string Json(const std::string& text) {
  std::string out = "\"";
  for (char c : text) out += c == '\n' ? std::string("\\n") : std::string(1, c);
  return out + "\"";
}

class ChipSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto key = crypto::PrivateKey::Generate(crypto::Curve::kP256);
    ASSERT_OK(key);
    pub_pem_ = key->Public().ToPem();
    crypto::CertProfile p;
    p.subject = {{"CN", "transport"}};
    p.not_after = crypto::kNoExpiry;
    p.key_usage = {"keyAgreement"};
    auto cert = crypto::IssueCertificate(p, key->Public(), nullptr, *key);
    ASSERT_OK(cert);
    cert_pem_ = cert->Pem();
  }

  std::string Record(const std::string& uid) {
    return "{\"uid\": \"" + uid + "\", \"public_key\": " + Json(pub_pem_) + "}\n";
  }

  // The message of the refusal of `text`, which must be InvalidArgument.
  std::string Refusal(const std::string& text) {
    auto chips = ParseChipManifest(text, "manifest m.jsonl");
    EXPECT_FALSE(chips.ok());
    if (chips.ok()) return "";
    EXPECT_EQ(chips.status().code(), absl::StatusCode::kInvalidArgument) << chips.status();
    return std::string(chips.status().message());
  }

  clade::testing::TempDir dir_;
  std::string pub_pem_, cert_pem_;
};

TEST_F(ChipSourceTest, ManifestGivesItsChipsInItsOrder) {
  std::string text = Record("B-2") + "\n" +
                     "{\"uid\": \"A-1\", \"transport_cert\": " + Json(cert_pem_) +
                     ", \"public_key\": " + Json(pub_pem_) + ", \"serial\": \"6f52\"}\n";
  auto chips = ParseChipManifest(text, "manifest m.jsonl");
  ASSERT_OK(chips);
  EXPECT_EQ((*chips)->Uids(), (std::vector<std::string>{"B-2", "A-1"}));
  EXPECT_EQ((*chips)->Where(), "manifest m.jsonl");
  auto pem = (*chips)->RequestPem("B-2", false);
  ASSERT_OK(pem);
  EXPECT_EQ(*pem, pub_pem_);
  auto t = (*chips)->RequestPem("A-1", true);
  ASSERT_OK(t);
  EXPECT_EQ(*t, cert_pem_);
  EXPECT_THAT((*chips)->RequestPem("B-2", true),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       Eq("chip B-2 in manifest m.jsonl has no transport_cert (hsm key mode "
                          "needs one)")));
  EXPECT_THAT((*chips)->RequestPem("C-3", false),
              StatusIs(absl::StatusCode::kNotFound, Eq("no chip C-3 in manifest m.jsonl")));
  auto serial = (*chips)->ProgrammedSerial("A-1");
  ASSERT_OK(serial);
  EXPECT_EQ(*serial, std::optional<std::string>("6f52"));
  serial = (*chips)->ProgrammedSerial("B-2");
  ASSERT_OK(serial);
  EXPECT_EQ(*serial, std::nullopt);
}

TEST_F(ChipSourceTest, ManifestRefusesATruncatedFile) {
  std::string text = Record("A-1") + Record("A-2");
  text.pop_back();  // the newline of the last record
  EXPECT_EQ(Refusal(text), "manifest m.jsonl line 2: truncated (the last line has no newline)");
  // Cut inside a record, with a newline after: not a JSON object.
  EXPECT_EQ(Refusal(Record("A-1").substr(0, 40) + "\n"),
            "manifest m.jsonl line 1: not a JSON object (one chip record per line)");
}

TEST_F(ChipSourceTest, ManifestRefusesADuplicateUid) {
  EXPECT_EQ(Refusal(Record("A-1") + Record("A-2") + "\n" + Record("A-1")),
            "manifest m.jsonl line 4: chip A-1 is already on line 1");
}

TEST_F(ChipSourceTest, ManifestRefusesABadPem) {
  std::string cut = pub_pem_.substr(0, pub_pem_.size() / 2);
  EXPECT_THAT(Refusal("{\"uid\": \"A-1\", \"public_key\": " + Json(cut) + "}\n"),
              StartsWith("manifest m.jsonl line 1: field public_key of chip A-1: "));
  EXPECT_THAT(
      Refusal(Record("A-0") + "{\"uid\": \"A-1\", \"transport_cert\": " + Json(pub_pem_) + "}\n"),
      StartsWith("manifest m.jsonl line 2: field transport_cert of chip A-1: "));
}

TEST_F(ChipSourceTest, ManifestRefusesUnknownAndRepeatedFields) {
  EXPECT_EQ(
      Refusal("{\"uid\": \"A-1\", \"public_key\": " + Json(pub_pem_) + ", \"colour\": \"red\"}\n"),
      "manifest m.jsonl line 1: unknown field 'colour' (a chip record has uid, public_key, "
      "transport_cert, serial)");
  EXPECT_EQ(
      Refusal("{\"uid\": \"A-1\", \"uid\": \"A-2\", \"public_key\": " + Json(pub_pem_) + "}\n"),
      "manifest m.jsonl line 1: field uid appears twice");
  EXPECT_EQ(Refusal("{\"uid\": 7}\n"), "manifest m.jsonl line 1: field uid is not a string");
  EXPECT_EQ(Refusal("{\"public_key\": " + Json(pub_pem_) + "}\n"),
            "manifest m.jsonl line 1: no field uid");
  EXPECT_EQ(Refusal("{\"uid\": \"A-1\"}\n"),
            "manifest m.jsonl line 1: chip A-1 has neither public_key nor transport_cert");
  EXPECT_EQ(Refusal("{\"uid\": \"../A-1\", \"public_key\": " + Json(pub_pem_) + "}\n"),
            "manifest m.jsonl line 1: field uid: bad chip uid '../A-1': letters, digits, '.', "
            "'_', '-', 1..128, not starting with '.'");
  EXPECT_EQ(
      Refusal("{\"uid\": \"A-1\", \"public_key\": " + Json(pub_pem_) + ", \"serial\": \"6F52\"}\n"),
      "manifest m.jsonl line 1: field serial of chip A-1: '6F52' is not lower-case hex of "
      "1..64 digits");
  EXPECT_EQ(Refusal("[1, 2]\n"),
            "manifest m.jsonl line 1: not a JSON object (one chip record per line)");
  EXPECT_EQ(Refusal("\n \n"), "manifest m.jsonl holds no chip");
}

TEST_F(ChipSourceTest, ManifestRefusesOversizeLinesAndFiles) {
  std::string long_line =
      "{\"uid\": \"A-1\", \"public_key\": \"" + std::string(kMaxChipManifestLine, ' ') + "\"}\n";
  EXPECT_EQ(Refusal(Record("A-0") + long_line), "manifest m.jsonl line 2 is " +
                                                    std::to_string(long_line.size() - 1) +
                                                    " bytes, more than the limit of 16384");
  std::string huge(kMaxChipManifest + 1, '\n');
  EXPECT_EQ(Refusal(huge), "manifest m.jsonl is 67108865 bytes, more than the limit of 67108864");
  // A file over the limit is refused before it is read.
  std::string path = dir_.File("huge.jsonl");
  clade::testing::WriteText(path, "");
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(kMaxChipManifest + 1)), 0);
  EXPECT_THAT(ReadChipManifest(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       Eq(path + " is 67108865 bytes, more than the limit of 67108864")));
}

TEST_F(ChipSourceTest, ManifestFileIsNeverReadThroughALink) {
  std::string real = dir_.File("real.jsonl");
  clade::testing::WriteText(real, Record("A-1"));
  auto good = ReadChipManifest(real);
  ASSERT_OK(good);
  EXPECT_EQ((*good)->Where(), "manifest " + real);
  std::string link = dir_.File("link.jsonl");
  ASSERT_EQ(::symlink(real.c_str(), link.c_str()), 0);
  EXPECT_THAT(ReadChipManifest(link),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       Eq(link + " is a symbolic link; refusing to follow it")));
  EXPECT_EQ(clade::testing::ReadText(real), Record("A-1"));  // nothing changed
}

TEST_F(ChipSourceTest, ChipReaderPrintsAManifest) {
  std::string manifest = dir_.File("chips.jsonl");
  clade::testing::WriteText(manifest, Record("R-1") + Record("R-2"));
  std::string work = dir_.File("work");
  auto chips = RunChipReader("test -z \"${SECRET+set}\" && cat " + manifest, work, 30);
  ASSERT_OK(chips);
  EXPECT_EQ((*chips)->Uids(), (std::vector<std::string>{"R-1", "R-2"}));
  EXPECT_TRUE(std::filesystem::is_empty(work));  // removed after success
}

TEST_F(ChipSourceTest, ChipReaderFailuresAreInItsOwnWords) {
  std::string work = dir_.File("work");
  EXPECT_THAT(RunChipReader("echo 'no reader on /dev/ttyUSB0' >&2; exit 4", work, 30),
              StatusIs(absl::StatusCode::kAborted,
                       StartsWith("chip reader failed: exit status 4: no reader on /dev/ttyUSB0 "
                                  "(see " +
                                  work + "/chips.")));
  EXPECT_THAT(RunChipReader("echo '{\"uid\": \"A-1\"}'", work, 30),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       StartsWith("chip reader 'echo '{\"uid\": \"A-1\"}'' line 1: chip A-1 has "
                                  "neither public_key nor transport_cert (output kept in ")));
  EXPECT_THAT(
      RunChipReader("sleep 30", work, 1),
      StatusIs(absl::StatusCode::kDeadlineExceeded, StartsWith("chip reader timed out after 1s")));
  EXPECT_THAT(RunChipReader("", work, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("command is empty")));
}

}  // namespace
}  // namespace clade::line
