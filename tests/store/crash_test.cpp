#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "store/state_store.h"
#include "store_test_util.h"

namespace clade::store::test {
namespace {

class CrashTest : public StateStoreTest {};

TEST_F(CrashTest, FailingInitializeLeavesNothingBehind) {
  for (const KekConfig& config : {KekConfig{}, PassphraseConfig()}) {
    EXPECT_THAT(StateStore::Create(tmp_.path(), config,
                                   [](Transaction& tx) {
                                     RETURN_IF_ERROR(tx.PutSecret("s", "k", Secret("v")));
                                     return absl::InternalError("initialize failed");
                                   }),
                StatusIs(absl::StatusCode::kInternal, "initialize failed"));
    EXPECT_TRUE(std::filesystem::is_empty(tmp_.path()));
  }
  EXPECT_OK(StateStore::Create(tmp_.path(), KekConfig{}, NoInit));
}

TEST_F(CrashTest, UpdateCrashingBeforeCommitLeavesThePreviousState) {
  ASSERT_OK(StateStore::Create(tmp_.path(), KekConfig{}, [](Transaction& tx) {
    return tx.PutString("r", "existing", "kept");
  }));
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto store = StateStore::Open(tmp_.path());
    if (!store.ok()) ::_exit(2);
    (void)(*store)->Update([](Transaction& tx) {
      // Enough data that SQLite spills pages to the WAL before the commit.
      std::vector<uint8_t> big(8192, 0xab);
      for (int i = 0; i < 1000; ++i) {
        if (!tx.Put("r", "new" + std::to_string(i), big).ok()) ::_exit(3);
      }
      if (!tx.PutString("r", "existing", "overwritten").ok()) ::_exit(3);
      ::_exit(0);  // the crash: no COMMIT, no ROLLBACK, no close
      return absl::OkStatus();
    });
    ::_exit(4);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);

  ASSERT_OK_AND_ASSIGN(auto store, StateStore::Open(tmp_.path()));
  EXPECT_OK(store->Read([](Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto list, tx.List("r"));
    EXPECT_THAT(list, ElementsAre(Pair("existing", Bytes("kept"))));
    return absl::OkStatus();
  }));
  EXPECT_OK(store->Update([](Transaction& tx) { return tx.PutString("r", "after", "ok"); }));
}

TEST_F(CrashTest, CreateCrashingInInitializeLeavesNoStateAndCreateSucceedsLater) {
  for (const KekConfig& config : {KekConfig{}, PassphraseConfig()}) {
    TempDir dir;
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      (void)StateStore::Create(dir.path(), config, [](Transaction& tx) {
        (void)tx.PutSecret("s", "k", Secret("v"));
        ::_exit(0);
        return absl::OkStatus();
      });
      ::_exit(4);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    EXPECT_FALSE(PathExists(dir.File("state.db")));
    EXPECT_FALSE(PathExists(dir.File("kek.key")));
    EXPECT_THAT(StateStore::Open(dir.path()),
                StatusIs(absl::StatusCode::kNotFound, HasSubstr("no state.db")));
    bool leftovers = false;  // the dead Create's temporary files, removed by the next Create
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
      leftovers |= entry.path().filename().string().find(".creating-") != std::string::npos;
    }
    EXPECT_TRUE(leftovers);

    ASSERT_OK(StateStore::Create(dir.path(), config, NoInit));
    // The dead Create's temporary files are gone.
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
      EXPECT_THAT(entry.path().filename().string(), ::testing::Not(HasSubstr(".creating-")));
    }
    EXPECT_OK(StateStore::Open(dir.path()));
  }
}

}  // namespace
}  // namespace clade::store::test
