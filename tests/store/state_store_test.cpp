#include "store/state_store.h"

#include <sqlite3.h>

#include <filesystem>
#include <optional>
#include <string>

#include "store_test_util.h"

namespace clade::store::test {
namespace {

// Creates a state with a record "r/greeting" and a secret "s/token", then checks both after
// reopening.
void RoundTrip(const TempDir& tmp, const KekConfig& config, const std::string& description) {
  {
    ASSERT_OK_AND_ASSIGN(auto store, StateStore::Create(tmp.path(), config, [](Transaction& tx) {
                           RETURN_IF_ERROR(tx.PutString("r", "greeting", "hello"));
                           return tx.PutSecret("s", "token", Secret("top secret token"));
                         }));
    EXPECT_EQ(store->KekDescription(), description);
    EXPECT_OK(store->Update([](Transaction& tx) {
      RETURN_IF_ERROR(tx.Put("r", "blob", Bytes(std::string("\x00\x01\xff", 3))));
      RETURN_IF_ERROR(tx.Put("r", "empty", {}));
      return tx.PutSecret("s", "second", Secret("another"));
    }));
  }
  ASSERT_OK_AND_ASSIGN(auto store, StateStore::Open(tmp.path()));
  EXPECT_EQ(store->KekDescription(), description);
  EXPECT_EQ(store->dir(), tmp.path());
  EXPECT_OK(store->Read([](Transaction& tx) -> absl::Status {
    EXPECT_FALSE(tx.writable());
    ASSIGN_OR_RETURN(auto greeting, tx.GetString("r", "greeting"));
    EXPECT_EQ(greeting, std::optional<std::string>("hello"));
    ASSIGN_OR_RETURN(auto blob, tx.Get("r", "blob"));
    EXPECT_EQ(blob, std::optional<std::vector<uint8_t>>(Bytes(std::string("\x00\x01\xff", 3))));
    ASSIGN_OR_RETURN(auto empty, tx.Get("r", "empty"));
    EXPECT_EQ(empty, std::optional<std::vector<uint8_t>>(std::vector<uint8_t>{}));
    ASSIGN_OR_RETURN(auto missing, tx.Get("r", "missing"));
    EXPECT_FALSE(missing.has_value());
    ASSIGN_OR_RETURN(crypto::SecretBytes token, tx.GetSecret("s", "token"));
    EXPECT_EQ(token.RevealSecretAsString(), "top secret token");
    ASSIGN_OR_RETURN(crypto::SecretBytes second, tx.GetSecret("s", "second"));
    EXPECT_EQ(second.RevealSecretAsString(), "another");
    EXPECT_THAT(tx.GetSecret("s", "nope"),
                StatusIs(absl::StatusCode::kNotFound, "no secret s/nope"));
    return absl::OkStatus();
  }));
}

TEST_F(StateStoreTest, RoundTripsRecordsAndSecretsWithKeyFile) {
  RoundTrip(tmp_, KekConfig{}, "key file " + tmp_.File("kek.key"));
}

TEST_F(StateStoreTest, RoundTripsRecordsAndSecretsWithPassphrase) {
  RoundTrip(tmp_, PassphraseConfig(), "passphrase from $CLADE_KEK_PASSPHRASE");
  EXPECT_FALSE(PathExists(tmp_.File("kek.key")));
}

TEST_F(StateStoreTest, RoundTripsWithKeyFileOutsideTheStateDir) {
  TempDir keys;
  KekConfig config;
  config.key_file = keys.File("hsm.key");
  RoundTrip(tmp_, config, "key file " + keys.File("hsm.key"));
  EXPECT_EQ(FileMode(keys.File("hsm.key")), 0600);
}

TEST_F(StateStoreTest, CreatesMissingStateDirWithMode0700) {
  std::string dir = tmp_.File("a/b/state");
  ASSERT_OK(StateStore::Create(dir, KekConfig{}, NoInit));
  EXPECT_EQ(FileMode(dir), 0700);
  EXPECT_OK(StateStore::Open(dir));
}

TEST_F(StateStoreTest, DefaultKeyFileFollowsAMovedStateDir) {
  ASSERT_OK(StateStore::Create(tmp_.File("old"), KekConfig{}, [](Transaction& tx) {
    return tx.PutSecret("s", "k", Secret("v"));
  }));
  std::filesystem::rename(tmp_.File("old"), tmp_.File("new"));
  ASSERT_OK_AND_ASSIGN(auto store, StateStore::Open(tmp_.File("new")));
  EXPECT_EQ(store->KekDescription(), "key file " + tmp_.File("new/kek.key"));
}

TEST_F(StateStoreTest, CreateRefusesAnExistingState) {
  ASSERT_OK(StateStore::Create(tmp_.path(), KekConfig{}, NoInit));
  auto key_before = ::clade::testing::ReadBinary(tmp_.File("kek.key"));
  EXPECT_THAT(StateStore::Create(tmp_.path(), KekConfig{}, NoInit),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       tmp_.path() + " already holds an HSM state; refusing to overwrite"));
  EXPECT_THAT(StateStore::Create(tmp_.path(), PassphraseConfig(), NoInit),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("already holds an HSM state")));
  EXPECT_EQ(::clade::testing::ReadBinary(tmp_.File("kek.key")), key_before);
  EXPECT_OK(StateStore::Open(tmp_.path()));
}

TEST_F(StateStoreTest, OpenOfAnEmptyDirIsNotFound) {
  EXPECT_THAT(
      StateStore::Open(tmp_.path()),
      StatusIs(absl::StatusCode::kNotFound, tmp_.path() + " holds no HSM state (no state.db)"));
}

TEST_F(StateStoreTest, SecretMovedToAnotherRowIsRefused) {
  ASSERT_OK(StateStore::Create(tmp_.path(), KekConfig{}, [](Transaction& tx) {
    RETURN_IF_ERROR(tx.PutSecret("keys", "signing", Secret("signing key")));
    return tx.PutSecret("keys", "other", Secret("other key"));
  }));
  // The sealed value of one row copied over another's, under the other's version and tag.
  RawSql(tmp_.File("state.db"),
         "UPDATE secrets SET sealed = (SELECT sealed FROM secrets WHERE key = 'signing') "
         "WHERE key = 'other';");
  ASSERT_OK_AND_ASSIGN(auto store, StateStore::Open(tmp_.path()));
  EXPECT_OK(store->Read([](Transaction& tx) {
    EXPECT_OK(tx.GetSecret("keys", "signing"));
    EXPECT_THAT(tx.GetSecret("keys", "other"),
                StatusIs(absl::StatusCode::kDataLoss,
                         "state secret keys/other fails authentication (edited, moved, or "
                         "restored from an older copy of this state)"));
    return absl::OkStatus();
  }));
}

TEST_F(StateStoreTest, AlteredOrTruncatedSecretIsRefused) {
  ASSERT_OK(StateStore::Create(tmp_.path(), KekConfig{}, [](Transaction& tx) {
    RETURN_IF_ERROR(tx.PutSecret("k", "a", Secret("aaaa")));
    return tx.PutSecret("k", "b", Secret("bbbb"));
  }));
  RawSql(tmp_.File("state.db"),
         "UPDATE secrets SET sealed = substr(sealed, 1, length(sealed) - 1) || x'00' "
         "WHERE key = 'a';"
         "UPDATE secrets SET sealed = x'0102' WHERE key = 'b';");
  ASSERT_OK_AND_ASSIGN(auto store, StateStore::Open(tmp_.path()));
  EXPECT_OK(store->Read([](Transaction& tx) {
    EXPECT_THAT(
        tx.GetSecret("k", "a"),
        StatusIs(absl::StatusCode::kDataLoss, HasSubstr("state secret k/a fails authentication")));
    EXPECT_THAT(
        tx.GetSecret("k", "b"),
        StatusIs(absl::StatusCode::kDataLoss, HasSubstr("state secret k/b fails authentication")));
    return absl::OkStatus();
  }));
}

TEST_F(StateStoreTest, FailingUpdateLeavesNoChange) {
  ASSERT_OK_AND_ASSIGN(auto store,
                       StateStore::Create(tmp_.path(), KekConfig{}, [](Transaction& tx) {
                         return tx.PutString("r", "a", "before");
                       }));
  EXPECT_THAT(store->Update([](Transaction& tx) {
    RETURN_IF_ERROR(tx.PutString("r", "a", "after"));
    RETURN_IF_ERROR(tx.PutString("r", "b", "new"));
    RETURN_IF_ERROR(tx.PutSecret("s", "x", Secret("new secret")));
    return absl::AbortedError("changed my mind");
  }),
              StatusIs(absl::StatusCode::kAborted, "changed my mind"));
  EXPECT_OK(store->Read([](Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto a, tx.GetString("r", "a"));
    EXPECT_EQ(a, std::optional<std::string>("before"));
    ASSIGN_OR_RETURN(auto b, tx.GetString("r", "b"));
    EXPECT_FALSE(b.has_value());
    EXPECT_THAT(tx.GetSecret("s", "x"), StatusIs(absl::StatusCode::kNotFound, "no secret s/x"));
    return absl::OkStatus();
  }));
}

TEST_F(StateStoreTest, PutInsideReadFails) {
  ASSERT_OK_AND_ASSIGN(auto store, StateStore::Create(tmp_.path(), KekConfig{}, NoInit));
  EXPECT_OK(store->Read([](Transaction& tx) {
    EXPECT_THAT(tx.PutString("r", "a", "x"),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("read-only")));
    EXPECT_THAT(tx.Delete("r", "a"),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("r/a")));
    EXPECT_THAT(tx.PutSecret("s", "a", Secret("x")),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("read-only")));
    EXPECT_THAT(tx.DeleteSecret("s", "a"),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("read-only")));
    // Raw SQL through db() is read-only too.
    EXPECT_NE(sqlite3_exec(tx.db(), "INSERT INTO records VALUES('r', 'raw', x'00')", nullptr,
                           nullptr, nullptr),
              SQLITE_OK);
    return absl::OkStatus();
  }));
  // The store is writable again afterwards, and nothing was written.
  EXPECT_OK(store->Update([](Transaction& tx) -> absl::Status {
    EXPECT_TRUE(tx.writable());
    ASSIGN_OR_RETURN(auto list, tx.List("r"));
    EXPECT_TRUE(list.empty());
    return tx.PutString("r", "a", "x");
  }));
}

TEST_F(StateStoreTest, ListIsOrderedByKeyAndDeleteRemoves) {
  ASSERT_OK_AND_ASSIGN(auto store, StateStore::Create(tmp_.path(), KekConfig{}, NoInit));
  EXPECT_OK(store->Update([](Transaction& tx) {
    RETURN_IF_ERROR(tx.PutString("n", "c", "3"));
    RETURN_IF_ERROR(tx.PutString("n", "a", "1"));
    RETURN_IF_ERROR(tx.PutString("n", "b", "2"));
    RETURN_IF_ERROR(tx.PutString("n", "b", "two"));  // replaces
    RETURN_IF_ERROR(tx.PutString("other", "z", "9"));
    RETURN_IF_ERROR(tx.PutSecret("n", "secret2", Secret("s2")));
    RETURN_IF_ERROR(tx.PutSecret("n", "secret1", Secret("s1")));
    return tx.Delete("n", "c");
  }));
  EXPECT_OK(store->Read([](Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto list, tx.List("n"));
    EXPECT_THAT(list, ElementsAre(Pair("a", Bytes("1")), Pair("b", Bytes("two"))));
    ASSIGN_OR_RETURN(auto secrets, tx.ListSecretKeys("n"));
    EXPECT_THAT(secrets, ElementsAre("secret1", "secret2"));
    return absl::OkStatus();
  }));
  EXPECT_OK(store->Update([](Transaction& tx) {
    RETURN_IF_ERROR(tx.Delete("n", "never-there"));
    return tx.DeleteSecret("n", "secret1");
  }));
  EXPECT_OK(store->Read([](Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto secrets, tx.ListSecretKeys("n"));
    EXPECT_THAT(secrets, ElementsAre("secret2"));
    return absl::OkStatus();
  }));
}

TEST_F(StateStoreTest, NamesWithNulBytesOrEmptyNamespaceAreRefused) {
  ASSERT_OK_AND_ASSIGN(auto store, StateStore::Create(tmp_.path(), KekConfig{}, NoInit));
  EXPECT_OK(store->Update([](Transaction& tx) {
    EXPECT_THAT(tx.PutString("", "k", "v"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty namespace")));
    EXPECT_THAT(tx.PutSecret(std::string("a\0b", 3), "c", Secret("v")),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NUL")));
    EXPECT_THAT(tx.PutSecret("a", std::string("b\0c", 3), Secret("v")),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NUL")));
    return absl::OkStatus();
  }));
}

TEST_F(StateStoreTest, NestedTransactionIsRefused) {
  ASSERT_OK_AND_ASSIGN(auto store, StateStore::Create(tmp_.path(), KekConfig{}, NoInit));
  StateStore* s = store.get();
  EXPECT_OK(store->Update([s](Transaction&) {
    EXPECT_THAT(s->Read([](Transaction&) { return absl::OkStatus(); }),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("inside a transaction")));
    return absl::OkStatus();
  }));
}

TEST_F(StateStoreTest, OpenRefusesAnUnknownSchemaVersion) {
  ASSERT_OK(StateStore::Create(tmp_.path(), KekConfig{}, NoInit));
  RawSql(tmp_.File("state.db"), "UPDATE meta SET value = '3' WHERE key = 'schema_version'");
  EXPECT_THAT(
      StateStore::Open(tmp_.path()),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               HasSubstr("has schema version 3; this build of Clade understands version 2")));
}

TEST_F(StateStoreTest, OpenRefusesAFileThatIsNotADatabase) {
  ::clade::testing::WriteText(tmp_.File("state.db"), std::string(4096, 'x'));
  EXPECT_THAT(StateStore::Open(tmp_.path()),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("not a database")));
}

TEST_F(StateStoreTest, SecretsAreNotInTheDatabaseInClear) {
  const std::string secret = "PLAINTEXT-MARKER-4f1c9a";
  for (const KekConfig& config : {KekConfig{}, PassphraseConfig()}) {
    TempDir dir;
    {
      ASSERT_OK_AND_ASSIGN(auto store, StateStore::Create(dir.path(), config, [&](Transaction& tx) {
                             return tx.PutSecret("s", "init", Secret(secret));
                           }));
      EXPECT_OK(store->Update([&](Transaction& tx) {
        RETURN_IF_ERROR(tx.PutString("r", "public", "PUBLIC-MARKER"));
        return tx.PutSecret("s", "later", Secret(secret));
      }));
      // While open, the WAL holds the latest changes: check it too.
      std::string all;
      for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
        all += ::clade::testing::ReadText(entry.path().string());
      }
      EXPECT_NE(all.find("PUBLIC-MARKER"), std::string::npos);  // the grep itself works
      EXPECT_EQ(all.find(secret), std::string::npos);
    }
    std::string db = ::clade::testing::ReadText(dir.File("state.db"));
    EXPECT_NE(db.find("PUBLIC-MARKER"), std::string::npos);
    EXPECT_EQ(db.find(secret), std::string::npos);
    ASSERT_OK_AND_ASSIGN(auto store, StateStore::Open(dir.path()));
    EXPECT_OK(store->Read([&](Transaction& tx) -> absl::Status {
      ASSIGN_OR_RETURN(crypto::SecretBytes s, tx.GetSecret("s", "later"));
      EXPECT_EQ(s.RevealSecretAsString(), secret);
      return absl::OkStatus();
    }));
  }
}

}  // namespace
}  // namespace clade::store::test
