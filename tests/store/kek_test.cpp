#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include "crypto/digest.h"
#include "crypto/kdf.h"
#include "crypto/random.h"
#include "store/row_auth.h"
#include "store/state_store.h"
#include "store_test_util.h"

namespace clade::store::test {
namespace {

class KekTest : public StateStoreTest {};

std::string HexOf(std::span<const uint8_t> bytes) { return crypto::Hex(bytes); }

// RFC 4231 §4.7, test case 6 (a key longer than the block): the MAC the row tags are made with.
TEST(HmacSha256, KnownAnswer) {
  std::vector<uint8_t> key(131, 0xaa);
  ASSERT_OK_AND_ASSIGN(auto mac, crypto::HmacSha256::Create(crypto::SecretBytes(key)));
  ASSERT_OK_AND_ASSIGN(auto tag,
                       mac.Mac(Bytes("Test Using Larger Than Block-Size Key - Hash Key First")));
  EXPECT_EQ(HexOf(tag), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(HmacSha256, ShortKeyIsRefused) {
  EXPECT_THAT(crypto::HmacSha256::Create(Secret("short")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least 32 bytes, not 5")));
}

// The row tag format of docs/state.md, pinned so that another Kek (PKCS#11) can be checked
// against it: HMAC under HKDF-SHA-256(KEK, salt = 32 zero bytes, "clade-state-mac-v1").
TEST(KekMac, RowTagKnownAnswer) {
  std::vector<uint8_t> key(32);
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i);
  ASSERT_OK_AND_ASSIGN(auto kek, MakeKeyFileKek("/k", crypto::SecretBytes(key)));
  ASSERT_OK_AND_ASSIGN(
      auto tag, internal::TagRow(*kek, internal::Table::kRecords, "r", "a", 2, Bytes("alpha")));
  EXPECT_EQ(HexOf(tag), "082ea47c46109c8b4950380736c5e9bc99d2dbe1594da88a2e9b81481bd4b228");
  // The MAC key is derived, not the KEK itself.
  ASSERT_OK_AND_ASSIGN(auto raw, crypto::HmacSha256::Create(crypto::SecretBytes(key)));
  ASSERT_OK_AND_ASSIGN(auto direct, raw.Mac(Bytes("x")));
  ASSERT_OK_AND_ASSIGN(auto via_kek, kek->Mac(Bytes("x")));
  EXPECT_NE(HexOf(direct), HexOf(via_kek));
}

TEST(KekMac, HeadSumIsArithmeticModTwoToThe256) {
  internal::RowTag sum{};
  internal::RowTag max;
  max.fill(0xff);
  internal::AddTerm(sum, max);  // 2^256 - 1
  internal::RowTag one{};
  one[31] = 1;
  internal::AddTerm(sum, one);  // wraps to 0
  EXPECT_EQ(HexOf(sum), std::string(64, '0'));
  internal::SubtractTerm(sum, one);  // back to 2^256 - 1
  EXPECT_EQ(HexOf(sum), std::string(64, 'f'));
  internal::RowTag t{};
  t[0] = 0x80;
  t[31] = 0x7f;
  internal::AddTerm(sum, t);
  internal::SubtractTerm(sum, t);
  EXPECT_EQ(HexOf(sum), std::string(64, 'f'));
}

TEST_F(KekTest, CreateRefusesAnExistingKeyFile) {
  ::clade::testing::WriteText(tmp_.File("kek.key"), "someone else's key");
  EXPECT_THAT(StateStore::Create(tmp_.path(), KekConfig{}, NoInit),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr(tmp_.File("kek.key") + " already exists")));
  EXPECT_FALSE(PathExists(tmp_.File("state.db")));
  EXPECT_EQ(::clade::testing::ReadText(tmp_.File("kek.key")), "someone else's key");
}

TEST_F(KekTest, WrongKeyFileIsWrongKek) {
  ASSERT_OK(StateStore::Create(tmp_.path(), KekConfig{}, NoInit));
  ASSERT_EQ(::unlink(tmp_.File("kek.key").c_str()), 0);
  ASSERT_OK(WriteFileAtomic(tmp_.File("kek.key"), crypto::RandomBytes(32), 0600));
  EXPECT_THAT(
      StateStore::Open(tmp_.path()),
      StatusIs(absl::StatusCode::kPermissionDenied,
               "wrong KEK: key file " + tmp_.File("kek.key") + " does not open this state"));
}

TEST_F(KekTest, KeyFileOfTheWrongSizeIsRefused) {
  ASSERT_OK(StateStore::Create(tmp_.path(), KekConfig{}, NoInit));
  ASSERT_OK(WriteFileAtomic(tmp_.File("kek.key"), crypto::RandomBytes(31), 0600));
  EXPECT_THAT(StateStore::Open(tmp_.path()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is 31 bytes")));
}

TEST_F(KekTest, WrongPassphraseIsWrongKek) {
  ASSERT_OK(StateStore::Create(tmp_.path(), PassphraseConfig(), NoInit));
  ::setenv(kPassphraseEnv, "incorrect horse battery", 1);
  EXPECT_THAT(StateStore::Open(tmp_.path()),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       "wrong KEK: passphrase from $CLADE_KEK_PASSPHRASE does not open this "
                       "state"));
}

TEST_F(KekTest, GroupReadableKeyFileIsRefusedNamingTheMode) {
  ASSERT_OK(StateStore::Create(tmp_.path(), KekConfig{}, NoInit));
  ASSERT_EQ(::chmod(tmp_.File("kek.key").c_str(), 0644), 0);
  EXPECT_THAT(StateStore::Open(tmp_.path()),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       ::testing::AllOf(HasSubstr(tmp_.File("kek.key")), HasSubstr("0644"))));
}

TEST_F(KekTest, MissingKeyFileIsNamed) {
  ASSERT_OK(StateStore::Create(tmp_.path(), KekConfig{}, NoInit));
  ASSERT_EQ(::unlink(tmp_.File("kek.key").c_str()), 0);
  EXPECT_THAT(StateStore::Open(tmp_.path()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(tmp_.File("kek.key"))));
}

TEST_F(KekTest, UnsetPassphraseEnvIsAClearError) {
  ::unsetenv(kPassphraseEnv);
  EXPECT_THAT(StateStore::Create(tmp_.path(), PassphraseConfig(), NoInit),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("$CLADE_KEK_PASSPHRASE, which is unset")));
  EXPECT_FALSE(PathExists(tmp_.File("state.db")));

  ::setenv(kPassphraseEnv, "correct horse battery", 1);
  ASSERT_OK(StateStore::Create(tmp_.path(), PassphraseConfig(), NoInit));
  ::unsetenv(kPassphraseEnv);
  EXPECT_THAT(StateStore::Open(tmp_.path()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("$CLADE_KEK_PASSPHRASE, which is unset")));
  ::setenv(kPassphraseEnv, "", 1);
  EXPECT_THAT(StateStore::Open(tmp_.path()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("which is empty")));
}

TEST_F(KekTest, ShortPassphraseIsRefusedAtCreate) {
  ::setenv(kPassphraseEnv, "1234567", 1);
  EXPECT_THAT(StateStore::Create(tmp_.path(), PassphraseConfig(), NoInit),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least 8")));
  EXPECT_FALSE(PathExists(tmp_.File("state.db")));
}

TEST_F(KekTest, PassphraseFromAnotherEnvVar) {
  ::setenv("CLADE_TEST_OTHER_KEK", "another passphrase", 1);
  ASSERT_OK(StateStore::Create(tmp_.path(), PassphraseConfig("CLADE_TEST_OTHER_KEK"), NoInit));
  ASSERT_OK_AND_ASSIGN(auto store, StateStore::Open(tmp_.path()));
  EXPECT_EQ(store->KekDescription(), "passphrase from $CLADE_TEST_OTHER_KEK");
  ::unsetenv("CLADE_TEST_OTHER_KEK");
}

TEST_F(KekTest, KeyFileIsCreatedWithMode0600) {
  ::umask(0);  // even with a permissive umask
  auto created = StateStore::Create(tmp_.path(), KekConfig{}, NoInit);
  ::umask(022);
  ASSERT_OK(created);
  EXPECT_EQ(FileMode(tmp_.File("kek.key")), 0600);
  EXPECT_EQ(std::filesystem::file_size(tmp_.File("kek.key")), 32u);
}

TEST_F(KekTest, KekParametersAreRecordedInClear) {
  ASSERT_OK(StateStore::Create(tmp_.path(), PassphraseConfig(), NoInit));
  auto r =
      ::clade::testing::Run("sqlite3 " + tmp_.File("state.db") +
                            " \"SELECT key, CASE WHEN typeof(value) = 'blob' THEN length(value) "
                            "ELSE value END FROM meta ORDER BY key\"");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("kek_kind|passphrase"));
  EXPECT_THAT(r.out, HasSubstr("kek_passphrase_env|CLADE_KEK_PASSPHRASE"));
  EXPECT_THAT(r.out, HasSubstr("kek_salt|16"));
  EXPECT_THAT(r.out, HasSubstr("kek_scrypt_n|32768"));
  EXPECT_THAT(r.out, HasSubstr("kek_scrypt_r|8"));
  EXPECT_THAT(r.out, HasSubstr("kek_scrypt_p|1"));
  EXPECT_THAT(r.out, HasSubstr("schema_version|2"));
  EXPECT_THAT(r.out, HasSubstr("state_head|72"));  // commit seq, sum, MAC: 8 + 32 + 32 bytes
  EXPECT_THAT(r.out, HasSubstr("kek_check|"));
  auto mode = ::clade::testing::Run("sqlite3 " + tmp_.File("state.db") + " 'PRAGMA journal_mode'");
  EXPECT_EQ(mode.out, "wal\n");
}

TEST_F(KekTest, TamperedScryptParametersAreRefused) {
  ASSERT_OK(StateStore::Create(tmp_.path(), PassphraseConfig(), NoInit));
  RawSql(tmp_.File("state.db"),
         "UPDATE meta SET value = '1099511627776' WHERE key = 'kek_scrypt_n'");
  EXPECT_THAT(StateStore::Open(tmp_.path()),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("outside the accepted bounds")));
}

}  // namespace
}  // namespace clade::store::test
