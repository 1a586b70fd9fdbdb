// Row tags and the state head (see row_auth.h).
#include "store/row_auth.h"

#include "absl/strings/str_cat.h"
#include "crypto/digest.h"
#include "store/sqlite_util.h"
#include "store/statement_cache.h"

namespace clade::store::internal {
namespace {

using sqlite::BindBlob;
using sqlite::BindText;
using sqlite::ColumnBlob;
using sqlite::ColumnText;
using sqlite::Prepare;
using sqlite::Step;

// Domain separation of the three uses of the one MAC key: each message starts with its own
// label and a NUL, and no label is a prefix of another.
constexpr std::string_view kRowLabel = "clade-row-v1";
constexpr std::string_view kTermLabel = "clade-head-term-v1";
constexpr std::string_view kHeadLabel = "clade-head-v1";
constexpr char kHeadKey[] = "state_head";
constexpr size_t kHeadSize = 8 + 32 + 32;  // seq, sum, MAC

void AppendLabel(std::vector<uint8_t>& out, std::string_view s) {
  out.insert(out.end(), s.begin(), s.end());
  out.push_back(0);
}

void AppendU64(std::vector<uint8_t>& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

uint64_t ReadU64(std::span<const uint8_t> in) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | in[i];
  return v;
}

std::string RowName(Table table, std::string_view ns, std::string_view key) {
  return absl::StrCat(table == Table::kRecords ? "state row " : "state secret ", std::string(ns),
                      "/", std::string(key));
}

absl::Status NewerThanHead(Table table, std::string_view ns, std::string_view key, int64_t version,
                           uint64_t head_seq) {
  return absl::DataLossError(absl::StrCat(RowName(table, ns, key), " is at commit ", version,
                                          ", newer than the state head (commit ", head_seq,
                                          "): the head was restored from an older copy"));
}

std::vector<uint8_t> HeadMessage(const StateHead& head) {
  std::vector<uint8_t> m;
  AppendLabel(m, kHeadLabel);
  AppendU64(m, head.seq);
  m.insert(m.end(), head.sum.begin(), head.sum.end());
  return m;
}

}  // namespace

absl::Status FindRefusedRow(sqlite3* db, const Kek& kek, uint64_t head_seq,
                            const std::string& what) {
  for (Table table : {Table::kRecords, Table::kSecrets}) {
    std::string sql =
        absl::StrCat("SELECT ns, key, version, ", table == Table::kRecords ? "value" : "sealed",
                     ", tag FROM ", TableName(table));
    ASSIGN_OR_RETURN(auto stmt, Prepare(db, sql, what));
    for (;;) {
      ASSIGN_OR_RETURN(bool row, Step(db, stmt.get(), what));
      if (!row) break;
      RETURN_IF_ERROR(CheckRow(kek, table, ColumnText(stmt.get(), 0), ColumnText(stmt.get(), 1),
                               ReadStoredRow(stmt.get(), 2), head_seq));
    }
  }
  return absl::OkStatus();
}

const char* TableName(Table table) { return table == Table::kRecords ? "records" : "secrets"; }

absl::StatusOr<RowTag> TagRow(const Kek& kek, Table table, std::string_view ns,
                              std::string_view key, uint64_t version,
                              std::span<const uint8_t> value) {
  // Names hold no NUL (Transaction checks), so the NUL-separated fields cannot be shifted into
  // one another; the version has a fixed width and the value runs to the end.
  std::vector<uint8_t> m;
  m.reserve(kRowLabel.size() + ns.size() + key.size() + value.size() + 24);
  AppendLabel(m, kRowLabel);
  AppendLabel(m, TableName(table));
  AppendLabel(m, ns);
  AppendLabel(m, key);
  AppendU64(m, version);
  m.insert(m.end(), value.begin(), value.end());
  return kek.Mac(m);
}

absl::StatusOr<RowTag> TermOf(const Kek& kek, Table table, std::string_view ns,
                              std::string_view key, std::span<const uint8_t> tag) {
  std::vector<uint8_t> m;
  m.reserve(kTermLabel.size() + ns.size() + key.size() + tag.size() + 16);
  AppendLabel(m, kTermLabel);
  AppendLabel(m, TableName(table));
  AppendLabel(m, ns);
  AppendLabel(m, key);
  m.insert(m.end(), tag.begin(), tag.end());
  return kek.Mac(m);
}

void AddTerm(RowTag& sum, const RowTag& term) {
  unsigned carry = 0;
  for (size_t i = sum.size(); i-- > 0;) {
    unsigned v = sum[i] + term[i] + carry;
    sum[i] = static_cast<uint8_t>(v);
    carry = v >> 8;
  }
}

void SubtractTerm(RowTag& sum, const RowTag& term) {
  int borrow = 0;
  for (size_t i = sum.size(); i-- > 0;) {
    int v = static_cast<int>(sum[i]) - term[i] - borrow;
    borrow = v < 0 ? 1 : 0;
    sum[i] = static_cast<uint8_t>(v + (borrow << 8));
  }
}

absl::Status RowRefused(Table table, std::string_view ns, std::string_view key) {
  return absl::DataLossError(
      absl::StrCat(RowName(table, ns, key),
                   " fails authentication (edited, moved, or restored from an older copy of "
                   "this state)"));
}

StoredRow ReadStoredRow(sqlite3_stmt* stmt, int first) {
  StoredRow row;
  if (sqlite3_column_type(stmt, first) == SQLITE_INTEGER) {
    row.version = sqlite3_column_int64(stmt, first);
  }
  row.value = ColumnBlob(stmt, first + 1);
  row.tag = ColumnBlob(stmt, first + 2);
  return row;
}

absl::Status CheckRow(const Kek& kek, Table table, std::string_view ns, std::string_view key,
                      const StoredRow& row, uint64_t max_version) {
  if (row.version < 0 || row.tag.size() != RowTag().size()) return RowRefused(table, ns, key);
  ASSIGN_OR_RETURN(RowTag expected,
                   TagRow(kek, table, ns, key, static_cast<uint64_t>(row.version), row.value));
  if (!crypto::ConstantTimeEquals(expected, row.tag)) return RowRefused(table, ns, key);
  if (static_cast<uint64_t>(row.version) > max_version) {
    return NewerThanHead(table, ns, key, row.version, max_version);
  }
  return absl::OkStatus();
}

absl::Status WriteStateHead(StatementCache& cache, const Kek& kek, const StateHead& head) {
  sqlite3* db = cache.db();
  std::vector<uint8_t> encoded = HeadMessage(head);
  ASSIGN_OR_RETURN(RowTag mac, kek.Mac(encoded));
  encoded.erase(encoded.begin(), encoded.begin() + static_cast<ptrdiff_t>(kHeadLabel.size() + 1));
  encoded.insert(encoded.end(), mac.begin(), mac.end());
  const std::string what = "cannot write the state head";
  ASSIGN_OR_RETURN(auto stmt, cache.Get("INSERT INTO meta(key, value) VALUES(?1, ?2) "
                                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                                        what));
  RETURN_IF_ERROR(BindText(db, stmt.get(), 1, kHeadKey, what));
  RETURN_IF_ERROR(BindBlob(db, stmt.get(), 2, encoded, what));
  ASSIGN_OR_RETURN(bool row, Step(db, stmt.get(), what));
  (void)row;
  return absl::OkStatus();
}

absl::StatusOr<StateHead> VerifyState(sqlite3* db, const Kek& kek, const std::string& db_path) {
  const std::string what = "cannot check the rows of " + db_path;
  StateHead head;
  {
    ASSIGN_OR_RETURN(auto stmt, Prepare(db, "SELECT value FROM meta WHERE key = ?1", what));
    RETURN_IF_ERROR(BindText(db, stmt.get(), 1, kHeadKey, what));
    ASSIGN_OR_RETURN(bool found, Step(db, stmt.get(), what));
    if (!found) return absl::DataLossError(db_path + " has no state head in its meta table");
    std::vector<uint8_t> stored = ColumnBlob(stmt.get(), 0);
    absl::Status refused = absl::DataLossError(absl::StrCat(
        "the state head of ", db_path, " fails authentication (edited, or from another state)"));
    if (stored.size() != kHeadSize) return refused;
    std::span<const uint8_t> bytes(stored);
    head.seq = ReadU64(bytes);
    std::copy(bytes.begin() + 8, bytes.begin() + 40, head.sum.begin());
    ASSIGN_OR_RETURN(RowTag mac, kek.Mac(HeadMessage(head)));
    if (!crypto::ConstantTimeEquals(mac, bytes.subspan(40))) return refused;
  }
  RowTag sum{};
  for (Table table : {Table::kRecords, Table::kSecrets}) {
    std::string sql = absl::StrCat("SELECT ns, key, version, tag FROM ", TableName(table));
    ASSIGN_OR_RETURN(auto stmt, Prepare(db, sql, what));
    for (;;) {
      ASSIGN_OR_RETURN(bool row, Step(db, stmt.get(), what));
      if (!row) break;
      std::string ns = ColumnText(stmt.get(), 0);
      std::string key = ColumnText(stmt.get(), 1);
      const void* tag = sqlite3_column_blob(stmt.get(), 3);
      size_t tag_size = static_cast<size_t>(sqlite3_column_bytes(stmt.get(), 3));
      if (tag == nullptr || tag_size != RowTag().size()) return RowRefused(table, ns, key);
      int64_t version = sqlite3_column_int64(stmt.get(), 2);
      if (sqlite3_column_type(stmt.get(), 2) != SQLITE_INTEGER || version < 0) {
        return RowRefused(table, ns, key);
      }
      if (static_cast<uint64_t>(version) > head.seq) {
        return NewerThanHead(table, ns, key, version, head.seq);
      }
      ASSIGN_OR_RETURN(RowTag term,
                       TermOf(kek, table, ns, key, {static_cast<const uint8_t*>(tag), tag_size}));
      AddTerm(sum, term);
    }
  }
  if (!crypto::ConstantTimeEquals(sum, head.sum)) {
    // Something changed the set of rows. If one row fails its own tag (moved, swapped, copied
    // in), name it; a row deleted or brought back whole from an older copy cannot be named.
    RETURN_IF_ERROR(FindRefusedRow(db, kek, head.seq, what));
    return absl::DataLossError(
        absl::StrCat("the rows of ", db_path, " do not add up to its state head (commit ", head.seq,
                     "): a row was deleted, added, or restored from an older copy of this state"));
  }
  return head;
}

absl::StatusOr<int64_t> DataVersion(StatementCache& cache) {
  sqlite3* db = cache.db();
  const std::string what = "cannot read the data version of the state";
  ASSIGN_OR_RETURN(auto stmt, cache.Get("PRAGMA data_version", what));
  ASSIGN_OR_RETURN(bool row, Step(db, stmt.get(), what));
  if (!row) return absl::InternalError(what + ": no result");
  return sqlite3_column_int64(stmt.get(), 0);
}

}  // namespace clade::store::internal
