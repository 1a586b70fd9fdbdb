// Every row of the state is authenticated under the KEK (docs/state.md): each test edits the
// closed state.db as an attacker with sqlite3 and no KEK would, and asserts the exact refusal —
// at read for a row whose content no longer matches its tag, at Open for a change to the set of
// rows — and that legitimate writes, deletes and reopens keep working.
#include <filesystem>
#include <string>

#include "store/state_store.h"
#include "store_test_util.h"

namespace clade::store::test {
namespace {

constexpr char kRefusedSuffix[] =
    " fails authentication (edited, moved, or restored from an older copy of this state)";

class RowAuthTest : public StateStoreTest {
 protected:
  // r/a = "alpha" then "alpha-2" (commit 2), r/b = "beta", r/c = "gamma", secret s/k.
  // `earlier` (if given) receives a copy of state.db as of commit 1.
  void Build(const std::string& earlier = "") {
    {
      ASSERT_OK_AND_ASSIGN(auto store,
                           StateStore::Create(tmp_.path(), KekConfig{}, [](Transaction& tx) {
                             RETURN_IF_ERROR(tx.PutString("r", "a", "alpha"));
                             RETURN_IF_ERROR(tx.PutString("r", "b", "beta"));
                             RETURN_IF_ERROR(tx.PutString("r", "c", "gamma"));
                             return tx.PutSecret("s", "k", Secret("secret one"));
                           }));
    }
    if (!earlier.empty()) std::filesystem::copy_file(Db(), earlier);
    ASSERT_OK_AND_ASSIGN(auto store, StateStore::Open(tmp_.path()));
    ASSERT_OK(store->Update([](Transaction& tx) -> absl::Status {
      RETURN_IF_ERROR(tx.PutString("r", "a", "alpha-2"));
      return tx.PutSecret("s", "k", Secret("secret two"));
    }));
  }
  std::string Db() const { return tmp_.File("state.db"); }

  // Get, GetString and List of `ns`/`key` on the reopened state, each expected to be refused.
  void ExpectRefusedAtRead(const std::string& ns, const std::string& key) {
    ASSERT_OK_AND_ASSIGN(auto store, StateStore::Open(tmp_.path()));
    const std::string message = "state row " + ns + "/" + key + kRefusedSuffix;
    EXPECT_OK(store->Read([&](Transaction& tx) {
      EXPECT_THAT(tx.Get(ns, key), StatusIs(absl::StatusCode::kDataLoss, message));
      EXPECT_THAT(tx.GetString(ns, key), StatusIs(absl::StatusCode::kDataLoss, message));
      EXPECT_THAT(tx.List(ns), StatusIs(absl::StatusCode::kDataLoss, message));
      return absl::OkStatus();
    }));
  }

  absl::Status OpenStatus() { return StateStore::Open(tmp_.path()).status(); }
};

TEST_F(RowAuthTest, WritesDeletesAndReopensKeepWorking) {
  Build();
  for (int round = 0; round < 3; ++round) {
    ASSERT_OK_AND_ASSIGN(auto store, StateStore::Open(tmp_.path()));
    ASSERT_OK(store->Update([&](Transaction& tx) -> absl::Status {
      RETURN_IF_ERROR(tx.PutString("r", "n" + std::to_string(round), "new"));
      RETURN_IF_ERROR(tx.PutString("r", "a", "alpha-" + std::to_string(round + 3)));
      RETURN_IF_ERROR(tx.PutString("r", "a", "alpha-again"));  // twice in one transaction
      RETURN_IF_ERROR(tx.Delete("r", "b"));
      RETURN_IF_ERROR(tx.Delete("r", "never-there"));
      RETURN_IF_ERROR(tx.PutSecret("s", "k" + std::to_string(round), Secret("more")));
      RETURN_IF_ERROR(tx.DeleteSecret("s", "k"));
      // A row written in this transaction reads back inside it.
      ASSIGN_OR_RETURN(auto a, tx.GetString("r", "a"));
      EXPECT_EQ(a, "alpha-again");
      return absl::OkStatus();
    }));
    // A failed transaction leaves the head as it was.
    EXPECT_THAT(store->Update([](Transaction& tx) -> absl::Status {
      RETURN_IF_ERROR(tx.PutString("r", "c", "rolled back"));
      RETURN_IF_ERROR(tx.Delete("r", "a"));
      return absl::AbortedError("changed my mind");
    }),
                StatusIs(absl::StatusCode::kAborted, "changed my mind"));
    EXPECT_OK(store->Update([](Transaction&) { return absl::OkStatus(); }));  // writes nothing
  }
  ASSERT_OK_AND_ASSIGN(auto store, StateStore::Open(tmp_.path()));
  EXPECT_OK(store->Read([](Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto list, tx.List("r"));
    EXPECT_THAT(list, ElementsAre(Pair("a", Bytes("alpha-again")), Pair("c", Bytes("gamma")),
                                  Pair("n0", Bytes("new")), Pair("n1", Bytes("new")),
                                  Pair("n2", Bytes("new"))));
    ASSIGN_OR_RETURN(auto keys, tx.ListSecretKeys("s"));
    EXPECT_THAT(keys, ElementsAre("k0", "k1", "k2"));
    ASSIGN_OR_RETURN(auto k2, tx.GetSecret("s", "k2"));
    EXPECT_EQ(k2.RevealSecretAsString(), "more");
    return absl::OkStatus();
  }));
}

TEST_F(RowAuthTest, EditedValueIsRefusedAtReadNamingTheRow) {
  Build();
  RawSql(Db(), "UPDATE records SET value = CAST('omega' AS BLOB) WHERE ns = 'r' AND key = 'a'");
  ExpectRefusedAtRead("r", "a");
  // The other rows still read, and a legitimate write replaces the refused row.
  ASSERT_OK_AND_ASSIGN(auto store, StateStore::Open(tmp_.path()));
  EXPECT_OK(store->Read([](Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto b, tx.GetString("r", "b"));
    EXPECT_EQ(b, "beta");
    return absl::OkStatus();
  }));
  EXPECT_OK(store->Update([](Transaction& tx) { return tx.PutString("r", "a", "rewritten"); }));
  store.reset();
  ASSERT_OK_AND_ASSIGN(store, StateStore::Open(tmp_.path()));
  EXPECT_OK(store->Read([](Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto a, tx.GetString("r", "a"));
    EXPECT_EQ(a, "rewritten");
    return absl::OkStatus();
  }));
}

TEST_F(RowAuthTest, SwappedValuesAreRefusedAtRead) {
  Build();
  RawSql(Db(),
         "UPDATE records SET value = CAST('gamma' AS BLOB) WHERE ns = 'r' AND key = 'b';"
         "UPDATE records SET value = CAST('beta' AS BLOB) WHERE ns = 'r' AND key = 'c';");
  ExpectRefusedAtRead("r", "b");
  ASSERT_OK_AND_ASSIGN(auto store, StateStore::Open(tmp_.path()));
  EXPECT_OK(store->Read([](Transaction& tx) {
    EXPECT_THAT(tx.Get("r", "c"), StatusIs(absl::StatusCode::kDataLoss,
                                           std::string("state row r/c") + kRefusedSuffix));
    return absl::OkStatus();
  }));
}

TEST_F(RowAuthTest, SwappedRowsAreRefusedAtOpenNamingARow) {
  Build();
  // Whole rows (version, value and tag) trade places.
  RawSql(Db(),
         "UPDATE records SET key = 'tmp' WHERE ns = 'r' AND key = 'b';"
         "UPDATE records SET key = 'b' WHERE ns = 'r' AND key = 'c';"
         "UPDATE records SET key = 'c' WHERE ns = 'r' AND key = 'tmp';");
  // Either row may be met first; both fail their tags.
  EXPECT_THAT(OpenStatus(),
              StatusIs(absl::StatusCode::kDataLoss,
                       ::testing::AnyOf(std::string("state row r/b") + kRefusedSuffix,
                                        std::string("state row r/c") + kRefusedSuffix)));
}

TEST_F(RowAuthTest, RowMovedToAnotherKeyIsRefusedAtOpenNamingIt) {
  Build();
  RawSql(Db(), "UPDATE records SET key = 'z' WHERE ns = 'r' AND key = 'a'");
  EXPECT_THAT(OpenStatus(),
              StatusIs(absl::StatusCode::kDataLoss, std::string("state row r/z") + kRefusedSuffix));
}

TEST_F(RowAuthTest, RowMovedToAnotherNamespaceOrTableIsRefused) {
  Build();
  RawSql(Db(), "UPDATE records SET ns = 'q' WHERE ns = 'r' AND key = 'c'");
  EXPECT_THAT(OpenStatus(),
              StatusIs(absl::StatusCode::kDataLoss, std::string("state row q/c") + kRefusedSuffix));
  RawSql(Db(),
         "UPDATE records SET ns = 'r' WHERE ns = 'q' AND key = 'c';"  // put it back
         "INSERT INTO records(ns, key, version, value, tag) "
         "SELECT ns, key, version, sealed, tag FROM secrets WHERE ns = 's' AND key = 'k';"
         "DELETE FROM secrets WHERE ns = 's' AND key = 'k';");
  EXPECT_THAT(OpenStatus(),
              StatusIs(absl::StatusCode::kDataLoss, std::string("state row s/k") + kRefusedSuffix));
}

TEST_F(RowAuthTest, DeletedRowIsRefusedAtOpen) {
  Build();
  RawSql(Db(), "DELETE FROM records WHERE ns = 'r' AND key = 'b'");
  EXPECT_THAT(OpenStatus(),
              StatusIs(absl::StatusCode::kDataLoss,
                       "the rows of " + Db() +
                           " do not add up to its state head (commit 2): a row was deleted, "
                           "added, or restored from an older copy of this state"));
}

TEST_F(RowAuthTest, DeletedSecretIsRefusedAtOpen) {
  Build();
  RawSql(Db(), "DELETE FROM secrets WHERE ns = 's' AND key = 'k'");
  EXPECT_THAT(OpenStatus(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("do not add up to its state head")));
}

TEST_F(RowAuthTest, RowRestoredFromAnEarlierCopyIsRefusedAtOpen) {
  const std::string earlier = tmp_.File("earlier.db");
  Build(earlier);
  // Commit 1's r/a ("alpha", version 1, its genuine tag) brought back over commit 2's.
  RawSql(Db(), "ATTACH '" + earlier +
                   "' AS old;"
                   "UPDATE records SET (version, value, tag) = (SELECT version, value, tag FROM "
                   "old.records WHERE ns = 'r' AND key = 'a') WHERE ns = 'r' AND key = 'a';");
  const std::string message = "the rows of " + Db() +
                              " do not add up to its state head (commit 2): a row was deleted, "
                              "added, or restored from an older copy of this state";
  EXPECT_THAT(OpenStatus(), StatusIs(absl::StatusCode::kDataLoss, message));
}

TEST_F(RowAuthTest, SecretRestoredFromAnEarlierCopyIsRefusedAtOpen) {
  const std::string earlier = tmp_.File("earlier.db");
  Build(earlier);
  RawSql(Db(), "ATTACH '" + earlier +
                   "' AS old;"
                   "UPDATE secrets SET (version, sealed, tag) = (SELECT version, sealed, tag FROM "
                   "old.secrets WHERE ns = 's' AND key = 'k') WHERE ns = 's' AND key = 'k';");
  EXPECT_THAT(OpenStatus(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("do not add up to its state head")));
}

TEST_F(RowAuthTest, HeadFromAnEarlierCopyIsRefusedNamingANewerRow) {
  const std::string earlier = tmp_.File("earlier.db");
  Build(earlier);
  RawSql(Db(), "ATTACH '" + earlier +
                   "' AS old;"
                   "UPDATE meta SET value = (SELECT value FROM old.meta WHERE key = 'state_head') "
                   "WHERE key = 'state_head';");
  EXPECT_THAT(OpenStatus(),
              StatusIs(absl::StatusCode::kDataLoss,
                       "state row r/a is at commit 2, newer than the state head (commit 1): the "
                       "head was restored from an older copy"));
}

TEST_F(RowAuthTest, EditedOrMissingHeadIsRefusedAtOpen) {
  Build();
  const std::string refused =
      "the state head of " + Db() + " fails authentication (edited, or from another state)";
  // The commit sequence (first 8 bytes) moved on by one.
  RawSql(Db(),
         "UPDATE meta SET value = x'0000000000000003' || substr(value, 9) "
         "WHERE key = 'state_head'");
  EXPECT_THAT(OpenStatus(), StatusIs(absl::StatusCode::kDataLoss, refused));
  RawSql(Db(), "UPDATE meta SET value = substr(value, 1, 40) WHERE key = 'state_head'");
  EXPECT_THAT(OpenStatus(), StatusIs(absl::StatusCode::kDataLoss, refused));
  RawSql(Db(), "DELETE FROM meta WHERE key = 'state_head'");
  EXPECT_THAT(OpenStatus(),
              StatusIs(absl::StatusCode::kDataLoss, Db() + " has no state head in its meta table"));
}

TEST_F(RowAuthTest, ChangedVersionIsRefused) {
  Build();
  // Older: the tag no longer matches, seen at read.
  RawSql(Db(), "UPDATE records SET version = 1 WHERE ns = 'r' AND key = 'a'");
  ExpectRefusedAtRead("r", "a");
  // Newer than any commit: seen at Open.
  RawSql(Db(), "UPDATE records SET version = 7 WHERE ns = 'r' AND key = 'a'");
  EXPECT_THAT(OpenStatus(),
              StatusIs(absl::StatusCode::kDataLoss,
                       "state row r/a is at commit 7, newer than the state head (commit 2): the "
                       "head was restored from an older copy"));
  RawSql(Db(), "UPDATE records SET version = NULL WHERE ns = 'r' AND key = 'a'");
  EXPECT_THAT(OpenStatus(),
              StatusIs(absl::StatusCode::kDataLoss, std::string("state row r/a") + kRefusedSuffix));
}

TEST_F(RowAuthTest, AddedRowIsRefusedAtOpen) {
  Build();
  RawSql(Db(),
         "INSERT INTO records(ns, key, version, value, tag) VALUES('r', 'x', 1, x'00', NULL)");
  EXPECT_THAT(OpenStatus(),
              StatusIs(absl::StatusCode::kDataLoss, std::string("state row r/x") + kRefusedSuffix));
  // With a copied tag it passes the shape check and fails its own tag.
  RawSql(Db(),
         "UPDATE records SET tag = (SELECT tag FROM records WHERE key = 'b') WHERE key = 'x'");
  EXPECT_THAT(OpenStatus(),
              StatusIs(absl::StatusCode::kDataLoss, std::string("state row r/x") + kRefusedSuffix));
}

TEST_F(RowAuthTest, RowsOfAnotherStateAreRefused) {
  Build();
  TempDir other;
  {
    ASSERT_OK_AND_ASSIGN(auto store, StateStore::Create(other.path(), KekConfig{}, [](auto& tx) {
                           return tx.PutString("r", "a", "from elsewhere");
                         }));
  }
  // The same row, genuinely tagged, but under another HSM's KEK.
  RawSql(Db(), "ATTACH '" + other.File("state.db") +
                   "' AS o;"
                   "UPDATE records SET (version, value, tag) = (SELECT version, value, tag FROM "
                   "o.records WHERE ns = 'r' AND key = 'a') WHERE ns = 'r' AND key = 'a';");
  EXPECT_THAT(OpenStatus(),
              StatusIs(absl::StatusCode::kDataLoss, std::string("state row r/a") + kRefusedSuffix));
}

TEST_F(RowAuthTest, DeletionByAnotherProcessWhileOpenIsSeenAtTheNextTransaction) {
  Build();
  ASSERT_OK_AND_ASSIGN(auto store, StateStore::Open(tmp_.path()));
  RawSql(Db(), "DELETE FROM records WHERE ns = 'r' AND key = 'c'");
  EXPECT_THAT(store->Read([](Transaction& tx) { return tx.Get("r", "b").status(); }),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("do not add up to its state head")));
  EXPECT_THAT(store->Update([](Transaction& tx) { return tx.PutString("r", "d", "x"); }),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("do not add up to its state head")));
}

TEST_F(RowAuthTest, TwoOpenStoresOfOneStateKeepItConsistent) {
  Build();
  ASSERT_OK_AND_ASSIGN(auto first, StateStore::Open(tmp_.path()));
  ASSERT_OK_AND_ASSIGN(auto second, StateStore::Open(tmp_.path()));
  for (int i = 0; i < 5; ++i) {
    StateStore* writer = i % 2 == 0 ? first.get() : second.get();
    ASSERT_OK(writer->Update([&](Transaction& tx) -> absl::Status {
      RETURN_IF_ERROR(tx.PutString("r", "a", "round " + std::to_string(i)));
      return tx.PutString("r", "w" + std::to_string(i), "by " + std::to_string(i % 2));
    }));
  }
  EXPECT_OK(first->Read([](Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto a, tx.GetString("r", "a"));
    EXPECT_EQ(a, "round 4");
    return absl::OkStatus();
  }));
  first.reset();
  second.reset();
  EXPECT_OK(OpenStatus());
}

TEST_F(RowAuthTest, UnauthenticatedVersionOneStateIsRefusedNotUpgraded) {
  Build();
  RawSql(Db(), "UPDATE meta SET value = '1' WHERE key = 'schema_version'");
  EXPECT_THAT(OpenStatus(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       Db() + " has schema version 1, whose rows are not authenticated; this "
                              "build of Clade only opens version 2 and does not upgrade a state "
                              "in place"));
}

TEST_F(RowAuthTest, PassphraseStatesAreAuthenticatedToo) {
  {
    ASSERT_OK_AND_ASSIGN(auto store,
                         StateStore::Create(tmp_.path(), PassphraseConfig(), [](Transaction& tx) {
                           return tx.PutString("r", "a", "alpha");
                         }));
  }
  RawSql(Db(), "UPDATE records SET value = CAST('omega' AS BLOB) WHERE ns = 'r' AND key = 'a'");
  ExpectRefusedAtRead("r", "a");
}

}  // namespace
}  // namespace clade::store::test
