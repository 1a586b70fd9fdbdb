// The provisioning bundle: what one writer writes, the one reader reads back whole; and every
// refusal of the reader — a missing file, a stray one, a symbolic link, a file over its limit, a
// truncated certificate — with its exact message, leaving the directory as it was.
#include "line/bundle.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "crypto/key.h"
#include "support/testing.h"

namespace clade::line {
namespace {

using ::clade::testing::StatusIs;
using ::testing::Eq;
using ::testing::StartsWith;

class BundleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto key = crypto::PrivateKey::Generate(crypto::Curve::kP256);
    ASSERT_OK(key);
    crypto::CertProfile p;
    p.subject = {{"CN", "device D-1"}};
    p.not_after = crypto::kNoExpiry;
    auto cert = crypto::IssueCertificate(p, key->Public(), nullptr, *key);
    ASSERT_OK(cert);
    bundle_.input.device_cert_der = cert->Der();
    bundle_.input.chain = {*cert};
    bundle_.input.key_envelope = {1, 2, 3};
    bundle_.input.firmware = {'f', 'w'};
    bundle_.input.config = {'c'};
    bundle_.record = {'r', 'e', 'c'};
    ASSERT_OK(bundle_.Write(out_, BundleWrite::kDurable));
  }

  // Every entry of OUT with its contents (a link as "-> target").
  std::map<std::string, std::string> Snapshot() {
    std::map<std::string, std::string> s;
    for (const auto& e : std::filesystem::directory_iterator(out_)) {
      std::string name = e.path().filename().string();
      s[name] = e.is_symlink() ? "-> " + std::filesystem::read_symlink(e.path()).string()
                               : clade::testing::ReadText(e.path().string());
    }
    return s;
  }

  // Read must refuse with `code` and exactly `message`, and change nothing in OUT.
  void ExpectRefused(absl::StatusCode code, const std::string& message) {
    auto before = Snapshot();
    EXPECT_THAT(ProvisioningBundle::Read(out_), StatusIs(code, Eq(message)));
    EXPECT_EQ(Snapshot(), before);
  }

  clade::testing::TempDir dir_;
  std::string out_ = dir_.File("out");
  ProvisioningBundle bundle_;
};

constexpr char kListing[] =
    "a provisioning bundle holds device.crt, chain.pem and record.msg, and may hold "
    "device-key.cms, device-key.pem, firmware.bin and config.bin";

TEST_F(BundleTest, ReadsBackWhatWasWritten) {
  auto back = ProvisioningBundle::Read(out_);
  ASSERT_OK(back);
  EXPECT_EQ(back->input.device_cert_der, bundle_.input.device_cert_der);
  ASSERT_EQ(back->input.chain.size(), 1u);
  EXPECT_EQ(back->input.key_envelope, bundle_.input.key_envelope);
  EXPECT_TRUE(back->input.plain_key.empty());
  EXPECT_EQ(back->input.firmware, bundle_.input.firmware);
  EXPECT_EQ(back->input.config, bundle_.input.config);
  EXPECT_EQ(back->record, bundle_.record);
  // The exec programmer's log may sit beside the bundle.
  clade::testing::WriteText(out_ + "/programmer.log", "flashing\n");
  EXPECT_OK(ProvisioningBundle::Read(out_));
}

TEST_F(BundleTest, ScratchWriteRefusesAnExistingFile) {
  EXPECT_THAT(bundle_.Write(out_, BundleWrite::kScratch),
              StatusIs(absl::StatusCode::kInternal,
                       Eq("cannot create " + out_ + "/device.crt: File exists")));
}

TEST_F(BundleTest, RefusesAMissingFile) {
  std::filesystem::remove(out_ + "/record.msg");
  ExpectRefused(absl::StatusCode::kNotFound,
                out_ + " has no record.msg (" + std::string(kListing) + ")");
  std::filesystem::remove(out_ + "/chain.pem");
  ExpectRefused(absl::StatusCode::kNotFound,
                out_ + " has no chain.pem (" + std::string(kListing) + ")");
  EXPECT_THAT(ProvisioningBundle::Read(dir_.File("nowhere")),
              StatusIs(absl::StatusCode::kNotFound,
                       StartsWith("cannot open provisioning bundle " + dir_.File("nowhere"))));
}

TEST_F(BundleTest, RefusesAnUnknownFile) {
  clade::testing::WriteText(out_ + "/notes.txt", "hello");
  ExpectRefused(
      absl::StatusCode::kInvalidArgument,
      out_ + "/notes.txt is not a file of a provisioning bundle (" + std::string(kListing) + ")");
}

TEST_F(BundleTest, RefusesASymbolicLink) {
  std::string elsewhere = dir_.File("other.crt");
  std::filesystem::rename(out_ + "/device.crt", elsewhere);
  ASSERT_EQ(::symlink(elsewhere.c_str(), (out_ + "/device.crt").c_str()), 0);
  ExpectRefused(absl::StatusCode::kFailedPrecondition,
                out_ + "/device.crt is a symbolic link; refusing to follow it");
}

TEST_F(BundleTest, RefusesAFileOverItsLimit) {
  std::string fw = out_ + "/firmware.bin";
  ASSERT_EQ(::truncate(fw.c_str(), static_cast<off_t>(hsm::kMaxJobPackage + 1)), 0);
  auto before = std::filesystem::file_size(fw);
  EXPECT_THAT(ProvisioningBundle::Read(out_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       Eq(fw + " is 67108865 bytes, more than the limit of 67108864")));
  EXPECT_EQ(std::filesystem::file_size(fw), before);
  std::string rec = out_ + "/record.msg";
  ASSERT_EQ(::truncate(fw.c_str(), 2), 0);
  ASSERT_EQ(::truncate(rec.c_str(), 1024 * 1024 + 1), 0);
  EXPECT_THAT(ProvisioningBundle::Read(out_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       Eq(rec + " is 1048577 bytes, more than the limit of 1048576")));
}

TEST_F(BundleTest, RefusesATruncatedCertificate) {
  std::string crt = out_ + "/device.crt";
  std::string pem = clade::testing::ReadText(crt);
  clade::testing::WriteText(crt, pem.substr(0, pem.size() / 2));
  auto before = Snapshot();
  EXPECT_THAT(ProvisioningBundle::Read(out_),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith(crt + ": ")));
  EXPECT_EQ(Snapshot(), before);
}

}  // namespace
}  // namespace clade::line
