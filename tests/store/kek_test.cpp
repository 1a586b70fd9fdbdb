#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include "crypto/random.h"
#include "store/state_store.h"
#include "store_test_util.h"

namespace clade::store::test {
namespace {

class KekTest : public StateStoreTest {};

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
  EXPECT_THAT(r.out, HasSubstr("schema_version|1"));
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
