// Transaction: records and sealed secrets inside one StateStore::Update or Read.
#include "absl/strings/str_cat.h"
#include "store/sqlite_util.h"
#include "store/state_store.h"

namespace clade::store {
namespace {

using internal::BindBlob;
using internal::BindText;
using internal::Prepare;
using internal::Step;

std::string Name(std::string_view ns, std::string_view key) {
  return absl::StrCat(std::string(ns), "/", std::string(key));
}

// The associated data binds a sealed value to its row: "clade-state-v1" 0x00 ns 0x00 key.
std::vector<uint8_t> SecretAad(std::string_view ns, std::string_view key) {
  std::string aad = "clade-state-v1";
  aad.push_back('\0');
  aad.append(ns);
  aad.push_back('\0');
  aad.append(key);
  return std::vector<uint8_t>(aad.begin(), aad.end());
}

// NUL bytes would make the associated data ambiguous ("a\0b","c" vs "a","b\0c"), so they are
// refused in every name, records included.
absl::Status CheckName(std::string_view ns, std::string_view key) {
  if (ns.empty()) return absl::InvalidArgumentError("empty namespace in the state store");
  if (ns.find('\0') != std::string_view::npos || key.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError("a state store namespace or key contains a NUL byte");
  }
  return absl::OkStatus();
}

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Binds (ns, key) to parameters 1 and 2.
absl::Status BindName(sqlite3* db, sqlite3_stmt* stmt, std::string_view ns, std::string_view key,
                      const std::string& what) {
  RETURN_IF_ERROR(BindText(db, stmt, 1, ns, what));
  return BindText(db, stmt, 2, key, what);
}

// Runs a statement that changes one (ns, key) row: bound name, optional blob as parameter 3.
absl::Status WriteRow(sqlite3* db, const char* sql, std::string_view ns, std::string_view key,
                      const std::span<const uint8_t>* value, const std::string& what) {
  ASSIGN_OR_RETURN(auto stmt, Prepare(db, sql, what));
  RETURN_IF_ERROR(BindName(db, stmt.get(), ns, key, what));
  if (value != nullptr) RETURN_IF_ERROR(BindBlob(db, stmt.get(), 3, *value, what));
  ASSIGN_OR_RETURN(bool row, Step(db, stmt.get(), what));
  (void)row;
  return absl::OkStatus();
}

// Reads the blob column of one (ns, key) row, if there is one.
absl::StatusOr<std::optional<std::vector<uint8_t>>> ReadRow(sqlite3* db, const char* sql,
                                                            std::string_view ns,
                                                            std::string_view key,
                                                            const std::string& what) {
  ASSIGN_OR_RETURN(auto stmt, Prepare(db, sql, what));
  RETURN_IF_ERROR(BindName(db, stmt.get(), ns, key, what));
  ASSIGN_OR_RETURN(bool row, Step(db, stmt.get(), what));
  if (!row) return std::optional<std::vector<uint8_t>>();
  return std::optional<std::vector<uint8_t>>(internal::ColumnBlob(stmt.get(), 0));
}

}  // namespace

absl::Status Transaction::CheckWritable(const char* operation, std::string_view ns,
                                        std::string_view key) const {
  if (writable_) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("cannot ", operation, " ", Name(ns, key),
                                                    ": this is a read-only transaction "
                                                    "(StateStore::Read)"));
}

absl::Status Transaction::Put(std::string_view ns, std::string_view key,
                              std::span<const uint8_t> value) {
  RETURN_IF_ERROR(CheckWritable("put record", ns, key));
  RETURN_IF_ERROR(CheckName(ns, key));
  return WriteRow(db_,
                  "INSERT INTO records(ns, key, value) VALUES(?1, ?2, ?3) "
                  "ON CONFLICT(ns, key) DO UPDATE SET value = excluded.value",
                  ns, key, &value, "cannot put record " + Name(ns, key));
}

absl::Status Transaction::PutString(std::string_view ns, std::string_view key,
                                    std::string_view value) {
  return Put(ns, key, AsBytes(value));
}

absl::StatusOr<std::optional<std::vector<uint8_t>>> Transaction::Get(std::string_view ns,
                                                                     std::string_view key) const {
  RETURN_IF_ERROR(CheckName(ns, key));
  return ReadRow(db_, "SELECT value FROM records WHERE ns = ?1 AND key = ?2", ns, key,
                 "cannot get record " + Name(ns, key));
}

absl::StatusOr<std::optional<std::string>> Transaction::GetString(std::string_view ns,
                                                                  std::string_view key) const {
  ASSIGN_OR_RETURN(auto value, Get(ns, key));
  if (!value) return std::optional<std::string>();
  return std::optional<std::string>(std::string(value->begin(), value->end()));
}

absl::StatusOr<std::vector<std::pair<std::string, std::vector<uint8_t>>>> Transaction::List(
    std::string_view ns) const {
  RETURN_IF_ERROR(CheckName(ns, ""));
  std::string what = absl::StrCat("cannot list records in ", std::string(ns));
  ASSIGN_OR_RETURN(auto stmt,
                   Prepare(db_, "SELECT key, value FROM records WHERE ns = ?1 ORDER BY key", what));
  RETURN_IF_ERROR(BindText(db_, stmt.get(), 1, ns, what));
  std::vector<std::pair<std::string, std::vector<uint8_t>>> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, Step(db_, stmt.get(), what));
    if (!row) break;
    out.emplace_back(internal::ColumnText(stmt.get(), 0), internal::ColumnBlob(stmt.get(), 1));
  }
  return out;
}

absl::Status Transaction::Delete(std::string_view ns, std::string_view key) {
  RETURN_IF_ERROR(CheckWritable("delete record", ns, key));
  RETURN_IF_ERROR(CheckName(ns, key));
  return WriteRow(db_, "DELETE FROM records WHERE ns = ?1 AND key = ?2", ns, key, nullptr,
                  "cannot delete record " + Name(ns, key));
}

absl::Status Transaction::PutSecret(std::string_view ns, std::string_view key,
                                    const crypto::SecretBytes& secret) {
  RETURN_IF_ERROR(CheckWritable("put secret", ns, key));
  RETURN_IF_ERROR(CheckName(ns, key));
  auto sealed = kek_->Seal(SecretAad(ns, key), secret);
  if (!sealed.ok()) {
    return Annotate(sealed.status(),
                    "cannot seal secret " + Name(ns, key) + " under the " + kek_->Describe());
  }
  std::span<const uint8_t> value(*sealed);
  return WriteRow(db_,
                  "INSERT INTO secrets(ns, key, sealed) VALUES(?1, ?2, ?3) "
                  "ON CONFLICT(ns, key) DO UPDATE SET sealed = excluded.sealed",
                  ns, key, &value, "cannot put secret " + Name(ns, key));
}

absl::StatusOr<crypto::SecretBytes> Transaction::GetSecret(std::string_view ns,
                                                           std::string_view key) const {
  RETURN_IF_ERROR(CheckName(ns, key));
  ASSIGN_OR_RETURN(auto sealed,
                   ReadRow(db_, "SELECT sealed FROM secrets WHERE ns = ?1 AND key = ?2", ns, key,
                           "cannot get secret " + Name(ns, key)));
  if (!sealed) return absl::NotFoundError("no secret " + Name(ns, key));
  auto opened = kek_->Open(SecretAad(ns, key), *sealed);
  if (opened.ok()) return opened;
  // A truncated blob is as much "altered" as a flipped bit; other failures (a KEK that cannot be
  // reached, later) keep their own code and message.
  if (opened.status().code() == absl::StatusCode::kPermissionDenied ||
      opened.status().code() == absl::StatusCode::kInvalidArgument) {
    return absl::PermissionDeniedError(
        absl::StrCat("secret ", Name(ns, key),
                     " does not open: wrong KEK, or the sealed value was moved or altered"));
  }
  return Annotate(opened.status(), "cannot open secret " + Name(ns, key));
}

absl::Status Transaction::DeleteSecret(std::string_view ns, std::string_view key) {
  RETURN_IF_ERROR(CheckWritable("delete secret", ns, key));
  RETURN_IF_ERROR(CheckName(ns, key));
  return WriteRow(db_, "DELETE FROM secrets WHERE ns = ?1 AND key = ?2", ns, key, nullptr,
                  "cannot delete secret " + Name(ns, key));
}

absl::StatusOr<std::vector<std::string>> Transaction::ListSecretKeys(std::string_view ns) const {
  RETURN_IF_ERROR(CheckName(ns, ""));
  std::string what = absl::StrCat("cannot list secrets in ", std::string(ns));
  ASSIGN_OR_RETURN(auto stmt,
                   Prepare(db_, "SELECT key FROM secrets WHERE ns = ?1 ORDER BY key", what));
  RETURN_IF_ERROR(BindText(db_, stmt.get(), 1, ns, what));
  std::vector<std::string> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, Step(db_, stmt.get(), what));
    if (!row) break;
    out.push_back(internal::ColumnText(stmt.get(), 0));
  }
  return out;
}

}  // namespace clade::store
