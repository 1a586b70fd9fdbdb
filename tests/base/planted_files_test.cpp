// Lock and temporary files live in directories others may write to (a tray shared by a line's
// operators, an OEM's working directory). A name planted there beforehand — a symbolic link to a
// victim file, a hard link, a FIFO — must never make Clade open, truncate or write the victim.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/files.h"
#include "support/testing.h"

namespace clade {
namespace {

using ::clade::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kVictim[] = "the victim's own content\n";

class PlantedFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    clade::testing::WriteText(victim_, kVictim);
    ASSERT_EQ(::chmod(victim_.c_str(), 0640), 0);
  }
  void ExpectVictimUntouched() {
    EXPECT_EQ(clade::testing::ReadText(victim_), kVictim);
    struct stat st {};
    ASSERT_EQ(::stat(victim_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0640u);
  }
  clade::testing::TempDir dir_;
  std::string victim_ = dir_.File("victim");
};

TEST_F(PlantedFiles, ALockFileThatIsASymlinkIsRefused) {
  std::string lock = dir_.File("line.db.lock");
  ASSERT_EQ(::symlink(victim_.c_str(), lock.c_str()), 0);
  EXPECT_THAT(
      OpenLockFile(lock),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               HasSubstr("lock file " + lock + " is a symbolic link; refusing to follow it")));
  ExpectVictimUntouched();
  // A dangling link is not followed to create its target either.
  std::string dangling = dir_.File("other.lock");
  std::string target = dir_.File("created-through-link");
  ASSERT_EQ(::symlink(target.c_str(), dangling.c_str()), 0);
  EXPECT_THAT(OpenLockFile(dangling),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is a symbolic link")));
  EXPECT_FALSE(PathExists(target));
}

TEST_F(PlantedFiles, ALockFileThatIsAHardLinkOrAFifoIsRefused) {
  std::string lock = dir_.File("line.db.lock");
  ASSERT_EQ(::link(victim_.c_str(), lock.c_str()), 0);
  EXPECT_THAT(OpenLockFile(lock), StatusIs(absl::StatusCode::kFailedPrecondition,
                                           HasSubstr("lock file " + lock + " has 2 hard links")));
  ExpectVictimUntouched();
  std::string fifo = dir_.File("fifo.lock");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THAT(OpenLockFile(fifo),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("lock file " + fifo + " is not a regular file")));
}

TEST_F(PlantedFiles, ALockFileIsMadePrivateAndOpenedAgain) {
  std::string lock = dir_.File("line.db.lock");
  ASSERT_OK_AND_ASSIGN(int fd, OpenLockFile(lock));
  ::close(fd);
  struct stat st {};
  ASSERT_EQ(::lstat(lock.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_OK_AND_ASSIGN(fd, OpenLockFile(lock));
  EXPECT_EQ(::fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  ::close(fd);
}

TEST_F(PlantedFiles, ATemporaryFileThatIsASymlinkIsRefused) {
  std::string path = dir_.File("package.pkg");
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  ASSERT_EQ(::symlink(victim_.c_str(), tmp.c_str()), 0);
  EXPECT_THAT(WriteFileAtomic(path, std::string("new content")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("temporary file " + tmp +
                                 " exists and is a symbolic link; refusing to write through it")));
  ExpectVictimUntouched();
  EXPECT_FALSE(PathExists(path));
  struct stat st {};
  ASSERT_EQ(::lstat(tmp.c_str(), &st), 0);  // left for the operator to look at
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  // The exclusive form too.
  EXPECT_THAT(WriteFileAtomic(path, std::string("new"), 0600, /*exclusive=*/true),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is a symbolic link")));
  ExpectVictimUntouched();
}

TEST_F(PlantedFiles, ATemporaryFileThatIsAHardLinkLeavesTheVictimAlone) {
  std::string path = dir_.File("out.bin");
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  ASSERT_EQ(::link(victim_.c_str(), tmp.c_str()), 0);
  // A regular leftover is unlinked and made anew: the victim's other name keeps its content.
  ASSERT_OK(WriteFileAtomic(path, std::string("new content")));
  EXPECT_EQ(clade::testing::ReadText(path), "new content");
  ExpectVictimUntouched();
  EXPECT_FALSE(PathExists(tmp));
}

}  // namespace
}  // namespace clade
