// Transaction: records and sealed secrets inside one StateStore::Update or Read, each row
// tagged when written and checked when read (row_auth.h).
#include "absl/strings/str_cat.h"
#include "store/row_auth.h"
#include "store/sqlite_util.h"
#include "store/state_store.h"
#include "store/statement_cache.h"

namespace clade::store {
namespace {

using internal::Table;
using sqlite::BindBlob;
using sqlite::BindText;
using sqlite::Step;

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

// Inserts or replaces the (ns, key) row of `table` with its version, value and tag.
absl::Status UpsertRow(internal::StatementCache& cache, Table table, std::string_view ns,
                       std::string_view key, uint64_t version, std::span<const uint8_t> value,
                       std::span<const uint8_t> tag, const std::string& what) {
  const char* value_column = table == Table::kRecords ? "value" : "sealed";
  std::string sql =
      absl::StrCat("INSERT INTO ", internal::TableName(table), "(ns, key, version, ", value_column,
                   ", tag) VALUES(?1, ?2, ?3, ?4, ?5) ",
                   "ON CONFLICT(ns, key) DO UPDATE SET version = excluded.version, ", value_column,
                   " = excluded.", value_column, ", tag = excluded.tag");
  sqlite3* db = cache.db();
  ASSIGN_OR_RETURN(auto stmt, cache.Get(sql, what));
  RETURN_IF_ERROR(BindName(db, stmt.get(), ns, key, what));
  if (int rc = sqlite3_bind_int64(stmt.get(), 3, static_cast<sqlite3_int64>(version));
      rc != SQLITE_OK) {
    return sqlite::SqliteError(db, rc, what);
  }
  RETURN_IF_ERROR(BindBlob(db, stmt.get(), 4, value, what));
  RETURN_IF_ERROR(BindBlob(db, stmt.get(), 5, tag, what));
  ASSIGN_OR_RETURN(bool row, Step(db, stmt.get(), what));
  (void)row;
  return absl::OkStatus();
}

// Reads the (ns, key) row of `table`, if there is one, and checks it against its tag.
absl::StatusOr<std::optional<std::vector<uint8_t>>> ReadRow(
    internal::StatementCache& cache, const Kek& kek, Table table, std::string_view ns,
    std::string_view key, uint64_t max_version, const std::string& what) {
  std::string sql =
      absl::StrCat("SELECT version, ", table == Table::kRecords ? "value" : "sealed", ", tag FROM ",
                   internal::TableName(table), " WHERE ns = ?1 AND key = ?2");
  sqlite3* db = cache.db();
  ASSIGN_OR_RETURN(auto stmt, cache.Get(sql, what));
  RETURN_IF_ERROR(BindName(db, stmt.get(), ns, key, what));
  ASSIGN_OR_RETURN(bool found, Step(db, stmt.get(), what));
  if (!found) return std::optional<std::vector<uint8_t>>();
  internal::StoredRow row = internal::ReadStoredRow(stmt.get(), 0);
  RETURN_IF_ERROR(internal::CheckRow(kek, table, ns, key, row, max_version));
  return std::optional<std::vector<uint8_t>>(std::move(row.value));
}

}  // namespace

Transaction::Transaction(internal::StatementCache* statements, const Kek* kek,
                         internal::WriteHead* head, bool writable)
    : statements_(statements), db_(statements->db()), kek_(kek), head_(head), writable_(writable) {}

absl::Status Transaction::CheckWritable(const char* operation, std::string_view ns,
                                        std::string_view key) const {
  if (writable_) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("cannot ", operation, " ", Name(ns, key),
                                                    ": this is a read-only transaction "
                                                    "(StateStore::Read)"));
}

absl::StatusOr<std::optional<internal::RowTag>> Transaction::StoredTerm(
    Table table, std::string_view ns, std::string_view key) const {
  const std::string what = "cannot read the tag of " + Name(ns, key);
  std::string sql =
      absl::StrCat("SELECT tag FROM ", internal::TableName(table), " WHERE ns = ?1 AND key = ?2");
  ASSIGN_OR_RETURN(auto stmt, statements_->Get(sql, what));
  RETURN_IF_ERROR(BindName(db_, stmt.get(), ns, key, what));
  ASSIGN_OR_RETURN(bool found, Step(db_, stmt.get(), what));
  if (!found) return std::optional<internal::RowTag>();
  // The stored tag is what the head's sum counted (the head was verified against every stored
  // tag), so its term is what to take away, whatever the rest of the row holds.
  ASSIGN_OR_RETURN(internal::RowTag term,
                   internal::TermOf(*kek_, table, ns, key, sqlite::ColumnBlob(stmt.get(), 0)));
  return std::optional<internal::RowTag>(term);
}

absl::Status Transaction::WriteRow(Table table, std::string_view ns, std::string_view key,
                                   const std::span<const uint8_t>* value, const std::string& what) {
  ASSIGN_OR_RETURN(std::optional<internal::RowTag> old_term, StoredTerm(table, ns, key));
  std::optional<internal::RowTag> new_term;
  if (value != nullptr) {
    ASSIGN_OR_RETURN(internal::RowTag tag,
                     internal::TagRow(*kek_, table, ns, key, head_->version, *value));
    ASSIGN_OR_RETURN(new_term, internal::TermOf(*kek_, table, ns, key, tag));
    RETURN_IF_ERROR(UpsertRow(*statements_, table, ns, key, head_->version, *value, tag, what));
  } else if (old_term) {
    std::string sql =
        absl::StrCat("DELETE FROM ", internal::TableName(table), " WHERE ns = ?1 AND key = ?2");
    ASSIGN_OR_RETURN(auto stmt, statements_->Get(sql, what));
    RETURN_IF_ERROR(BindName(db_, stmt.get(), ns, key, what));
    ASSIGN_OR_RETURN(bool row, Step(db_, stmt.get(), what));
    (void)row;
  }
  // Only now, so a failed statement (whose error a caller might ignore) leaves the sum as the
  // rows are.
  if (old_term) internal::SubtractTerm(head_->head.sum, *old_term);
  if (new_term) internal::AddTerm(head_->head.sum, *new_term);
  head_->changed |= old_term.has_value() || new_term.has_value();
  return absl::OkStatus();
}

absl::Status Transaction::Put(std::string_view ns, std::string_view key,
                              std::span<const uint8_t> value) {
  RETURN_IF_ERROR(CheckWritable("put record", ns, key));
  RETURN_IF_ERROR(CheckName(ns, key));
  return WriteRow(Table::kRecords, ns, key, &value, "cannot put record " + Name(ns, key));
}

absl::Status Transaction::PutString(std::string_view ns, std::string_view key,
                                    std::string_view value) {
  return Put(ns, key, AsBytes(value));
}

absl::StatusOr<std::optional<std::vector<uint8_t>>> Transaction::Get(std::string_view ns,
                                                                     std::string_view key) const {
  RETURN_IF_ERROR(CheckName(ns, key));
  return ReadRow(*statements_, *kek_, Table::kRecords, ns, key, head_->version,
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
  ASSIGN_OR_RETURN(
      auto stmt,
      statements_->Get("SELECT key, version, value, tag FROM records WHERE ns = ?1 ORDER BY key",
                       what));
  RETURN_IF_ERROR(BindText(db_, stmt.get(), 1, ns, what));
  std::vector<std::pair<std::string, std::vector<uint8_t>>> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, Step(db_, stmt.get(), what));
    if (!row) break;
    std::string key = sqlite::ColumnText(stmt.get(), 0);
    internal::StoredRow stored = internal::ReadStoredRow(stmt.get(), 1);
    RETURN_IF_ERROR(internal::CheckRow(*kek_, Table::kRecords, ns, key, stored, head_->version));
    out.emplace_back(std::move(key), std::move(stored.value));
  }
  return out;
}

absl::Status Transaction::Delete(std::string_view ns, std::string_view key) {
  RETURN_IF_ERROR(CheckWritable("delete record", ns, key));
  RETURN_IF_ERROR(CheckName(ns, key));
  return WriteRow(Table::kRecords, ns, key, nullptr, "cannot delete record " + Name(ns, key));
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
  return WriteRow(Table::kSecrets, ns, key, &value, "cannot put secret " + Name(ns, key));
}

absl::StatusOr<crypto::SecretBytes> Transaction::GetSecret(std::string_view ns,
                                                           std::string_view key) const {
  RETURN_IF_ERROR(CheckName(ns, key));
  ASSIGN_OR_RETURN(auto sealed, ReadRow(*statements_, *kek_, Table::kSecrets, ns, key,
                                        head_->version, "cannot get secret " + Name(ns, key)));
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
  return WriteRow(Table::kSecrets, ns, key, nullptr, "cannot delete secret " + Name(ns, key));
}

absl::StatusOr<std::vector<std::string>> Transaction::ListSecretKeys(std::string_view ns) const {
  RETURN_IF_ERROR(CheckName(ns, ""));
  std::string what = absl::StrCat("cannot list secrets in ", std::string(ns));
  ASSIGN_OR_RETURN(auto stmt,
                   statements_->Get("SELECT key FROM secrets WHERE ns = ?1 ORDER BY key", what));
  RETURN_IF_ERROR(BindText(db_, stmt.get(), 1, ns, what));
  std::vector<std::string> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, Step(db_, stmt.get(), what));
    if (!row) break;
    out.push_back(sqlite::ColumnText(stmt.get(), 0));
  }
  return out;
}

}  // namespace clade::store
