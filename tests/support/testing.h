// What every test needs: a temp directory that cleans up, a way to run outside tools (openssl,
// certtool, python3) and read what they printed, and matchers for absl::Status.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/files.h"
#include "base/status.h"

namespace clade::testing {

// A fresh directory under $TMPDIR, removed with everything in it when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
// Runs `command` with /bin/sh -c, capturing stdout and stderr.
CommandResult Run(const std::string& command);

void WriteText(const std::string& path, const std::string& text);
void WriteBinary(const std::string& path, const std::vector<uint8_t>& data);
std::string ReadText(const std::string& path);
std::vector<uint8_t> ReadBinary(const std::string& path);

std::string SourceDir();
std::string BinaryDir();

}  // namespace clade::testing

// EXPECT_OK(status_or_statusor)
#define EXPECT_OK(expr)                                        \
  EXPECT_TRUE(::clade::testing::internal::StatusOf(expr).ok()) \
      << ::clade::testing::internal::StatusOf(expr)
#define ASSERT_OK(expr)                                        \
  ASSERT_TRUE(::clade::testing::internal::StatusOf(expr).ok()) \
      << ::clade::testing::internal::StatusOf(expr)
// auto x = ASSERT_OK_AND_VALUE(expr) is not portable in gtest; use this statement form:
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL_(CLADE_CONCAT_(clade_test_so_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  ASSERT_TRUE(tmp.ok()) << tmp.status();           \
  lhs = std::move(tmp).value()

namespace clade::testing::internal {
inline absl::Status StatusOf(const absl::Status& s) { return s; }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}
}  // namespace clade::testing::internal

namespace clade::testing {

// EXPECT_THAT(status_or, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("expired")))
MATCHER_P2(StatusIs, code, message_matcher, "") {
  absl::Status s = ::clade::testing::internal::StatusOf(arg);
  *result_listener << "status is " << s;
  return s.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(s.message()), result_listener);
}

}  // namespace clade::testing
