// Shared by the store tests: small builders, a raw-SQL hook and the fixture that sets the
// passphrase environment variable.
#pragma once

#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "store/state_store.h"
#include "support/testing.h"

namespace clade::store::test {

using ::clade::testing::StatusIs;
using ::clade::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

inline constexpr char kPassphraseEnv[] = "CLADE_KEK_PASSPHRASE";

inline crypto::SecretBytes Secret(std::string_view s) {
  return crypto::SecretBytes(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

inline std::vector<uint8_t> Bytes(std::string_view s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

inline absl::Status NoInit(Transaction&) { return absl::OkStatus(); }

inline KekConfig PassphraseConfig(const std::string& env = kPassphraseEnv) {
  KekConfig c;
  c.kind = KekConfig::Kind::kPassphrase;
  c.passphrase_env = env;
  return c;
}

inline int FileMode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return static_cast<int>(st.st_mode & 07777);
}

// Runs SQL on a state.db behind the store's back, as an attacker or a broken disk would.
inline void RawSql(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string message = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

// Sets the default passphrase variable for every test; unset again afterwards.
class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ::setenv(kPassphraseEnv, "correct horse battery", 1); }
  void TearDown() override { ::unsetenv(kPassphraseEnv); }
  TempDir tmp_;
};

}  // namespace clade::store::test
