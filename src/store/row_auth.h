// Internal to src/store: how every row of the state is authenticated under the KEK
// (docs/state.md, docs/decisions/0005-authenticated-state.md).
//
//  - Each row of `records` and `secrets` carries a version (the commit sequence of the
//    transaction that wrote it) and a tag
//        HMAC_K("clade-row-v1" 0 table 0 ns 0 key 0 version(8, big-endian) value),
//    checked at every read: an edited value, a row moved to another key or table, or a changed
//    version no longer matches its tag.
//  - meta "state_head" holds the commit sequence and the sum mod 2^256 of
//        term(row) = HMAC_K("clade-head-term-v1" 0 table 0 ns 0 key 0 tag)
//    over every row, MACed as HMAC_K("clade-head-v1" 0 seq(8) sum). The sum is checked in full
//    when the state is opened (and after another process wrote to it): a row deleted, added,
//    moved, or brought back from an older copy changes it. The terms are a keyed function of the
//    visible tags, so nobody without the KEK can pick rows whose changes cancel out (as they
//    could with a XOR or sum of the tags themselves).
#pragma once

#include <sqlite3.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "store/kek.h"

namespace clade::store::internal {

class StatementCache;
using RowTag = std::array<uint8_t, 32>;

// The two authenticated tables; their names are part of every tag.
enum class Table { kRecords, kSecrets };
const char* TableName(Table table);

// What the state's rows add up to, as of commit `seq`.
struct StateHead {
  uint64_t seq = 0;
  RowTag sum{};  // sum mod 2^256 of every row's term, big-endian
  bool operator==(const StateHead&) const = default;
};

// The head of one write transaction: rows it writes get version `version` (= committed seq + 1)
// and their terms are added to (and replaced rows' terms subtracted from) `head.sum`.
struct WriteHead {
  StateHead head;
  uint64_t version = 0;
  bool changed = false;
};

absl::StatusOr<RowTag> TagRow(const Kek& kek, Table table, std::string_view ns,
                              std::string_view key, uint64_t version,
                              std::span<const uint8_t> value);
absl::StatusOr<RowTag> TermOf(const Kek& kek, Table table, std::string_view ns,
                              std::string_view key, std::span<const uint8_t> tag);
void AddTerm(RowTag& sum, const RowTag& term);
void SubtractTerm(RowTag& sum, const RowTag& term);

// "state row ns/key fails authentication (edited, moved, or restored from an older copy of this
// state)"; secrets say "state secret".
absl::Status RowRefused(Table table, std::string_view ns, std::string_view key);

// A row as stored: columns version, value (or sealed), tag.
struct StoredRow {
  int64_t version = -1;  // -1 if the column is not an integer
  std::vector<uint8_t> value;
  std::vector<uint8_t> tag;
};
// Reads columns `first`, `first + 1`, `first + 2` of the current result row.
StoredRow ReadStoredRow(sqlite3_stmt* stmt, int first);

// Checks a row read back: its tag, and that its version is not newer than `max_version` (the
// head's seq, or the writing transaction's version). DataLoss naming the row otherwise.
absl::Status CheckRow(const Kek& kek, Table table, std::string_view ns, std::string_view key,
                      const StoredRow& row, uint64_t max_version);

// Writes meta "state_head" (insert or replace).
absl::Status WriteStateHead(StatementCache& cache, const Kek& kek, const StateHead& head);

// Reads and verifies meta "state_head", then sums the terms of every row of both tables and
// compares. DataLoss naming what failed. Run inside a transaction, so it sees one snapshot.
absl::StatusOr<StateHead> VerifyState(sqlite3* db, const Kek& kek, const std::string& db_path);

// Checks every row of both tables against its tag (a slow pass, after the sum did not match).
absl::Status FindRefusedRow(sqlite3* db, const Kek& kek, uint64_t head_seq,
                            const std::string& what);

// PRAGMA data_version: changes when another connection (any process) commits to the database.
absl::StatusOr<int64_t> DataVersion(StatementCache& cache);

}  // namespace clade::store::internal
