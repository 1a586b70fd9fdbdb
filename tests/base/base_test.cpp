// Bounded reads, durable writes, durations.
#include <sys/stat.h>

#include "base/clock.h"
#include "base/files.h"
#include "support/testing.h"

namespace clade {
namespace {

using ::clade::testing::StatusIs;
using ::testing::HasSubstr;

TEST(Files, WritesAtomicallyWithExactMode) {
  clade::testing::TempDir dir;
  std::string path = dir.File("f");
  ASSERT_OK(WriteFileAtomic(path, std::string("hello"), 0600));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_OK_AND_ASSIGN(std::string back, ReadFileString(path));
  EXPECT_EQ(back, "hello");
  ASSERT_OK(WriteFileAtomic(path, std::string("again"), 0600));
  EXPECT_EQ(*ReadFileString(path), "again");
}

TEST(Files, ExclusiveWriteRefusesAnExistingFile) {
  clade::testing::TempDir dir;
  std::string path = dir.File("f");
  ASSERT_OK(WriteFileAtomic(path, std::string("first"), 0644, true));
  EXPECT_THAT(WriteFileAtomic(path, std::string("second"), 0644, true),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("refusing to overwrite")));
  EXPECT_EQ(*ReadFileString(path), "first");
}

TEST(Files, ReadRefusesFilesOverTheLimitAndNonFiles) {
  clade::testing::TempDir dir;
  std::string path = dir.File("big");
  ASSERT_OK(WriteFileAtomic(path, std::string(100, 'x')));
  EXPECT_THAT(ReadFileBytes(path, 99),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("more than the limit of 99")));
  EXPECT_OK(ReadFileBytes(path, 100));
  EXPECT_THAT(ReadFileBytes(dir.path()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a regular file")));
  EXPECT_THAT(ReadFileBytes(dir.File("missing")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("cannot open")));
}

TEST(Files, PrivateFileCheckNamesTheMode) {
  clade::testing::TempDir dir;
  std::string path = dir.File("key");
  ASSERT_OK(WriteFileAtomic(path, std::string("k"), 0600));
  EXPECT_OK(CheckPrivateFile(path));
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  EXPECT_THAT(CheckPrivateFile(path),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("has mode 0640")));
}

TEST(Clock, FixedClockReadsWhatItWasSetTo) {
  FixedClock clock(1000);
  const Clock& c = clock;
  EXPECT_EQ(c.Now(), 1000);
  clock.Advance(30);
  EXPECT_EQ(c.Now(), 1030);
  clock.Set(5);
  EXPECT_EQ(c.Now(), 5);
  EXPECT_GT(SystemClock().Now(), 1'700'000'000);
}

TEST(Clock, ParsesDurationsAndRefusesNonsense) {
  EXPECT_EQ(*ParseDuration("30s"), 30);
  EXPECT_EQ(*ParseDuration("15m"), 900);
  EXPECT_EQ(*ParseDuration("12h"), 43200);
  EXPECT_EQ(*ParseDuration("7d"), 604800);
  EXPECT_EQ(*ParseDuration("42"), 42);
  for (const char* bad : {"", "0s", "-5m", "d", "3w", "1.5h", "99999999999999999d"}) {
    EXPECT_THAT(ParseDuration(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duration")))
        << bad;
  }
  EXPECT_EQ(FormatTime(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatTime(253402300799), "9999-12-31T23:59:59Z");
}

}  // namespace
}  // namespace clade
