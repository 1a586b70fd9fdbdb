// The HSM's state: one SQLite database, <state dir>/state.db, with plain records and secrets
// sealed under the KEK. Every change happens in a transaction (StateStore::Update) that commits
// whole or not at all; a crash leaves the last committed state. Every row is authenticated under
// the KEK (docs/state.md): a row edited, moved to another key, or given another version is
// refused when read, and a row deleted, added or brought back from an older copy of the state
// makes the next Open refuse the whole state. Both with DataLoss.
#pragma once

#include <sqlite3.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/status.h"
#include "crypto/secret.h"
#include "store/kek.h"
#include "store/sqlite_util.h"

namespace clade::store {

namespace internal {
struct StateHead;
struct WriteHead;
enum class Table;
class StatementCache;
}  // namespace internal

// A view of the database inside one StateStore::Update or Read callback; only valid there.
// Namespaces must be non-empty; namespaces and keys must not contain NUL bytes.
class Transaction {
 public:
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // Plain records (certificates, public data, counters), keyed by (namespace, key). Put replaces.
  // Get, GetString and List check each row they return against its tag: DataLoss "state row
  // ns/key fails authentication (edited, moved, or restored from an older copy of this state)".
  absl::Status Put(std::string_view ns, std::string_view key, std::span<const uint8_t> value);
  absl::Status PutString(std::string_view ns, std::string_view key, std::string_view value);
  absl::StatusOr<std::optional<std::vector<uint8_t>>> Get(std::string_view ns,
                                                          std::string_view key) const;
  absl::StatusOr<std::optional<std::string>> GetString(std::string_view ns,
                                                       std::string_view key) const;
  // Every record in `ns`, ordered by key (bytewise).
  absl::StatusOr<std::vector<std::pair<std::string, std::vector<uint8_t>>>> List(
      std::string_view ns) const;
  // Deleting a record that does not exist is not an error.
  absl::Status Delete(std::string_view ns, std::string_view key);

  // Sealed secrets: AES-256-GCM under the KEK, associated data "clade-state-v1" 0x00 ns 0x00 key,
  // so a sealed value copied to another (ns, key) does not open. PutSecret replaces.
  absl::Status PutSecret(std::string_view ns, std::string_view key,
                         const crypto::SecretBytes& secret);
  // NotFound "no secret ns/key"; DataLoss "state secret ns/key fails authentication (...)" if the
  // row's tag does not match; PermissionDenied "secret ns/key does not open: wrong KEK, or the
  // sealed value was moved or altered".
  absl::StatusOr<crypto::SecretBytes> GetSecret(std::string_view ns, std::string_view key) const;
  // Deleting a secret that does not exist is not an error.
  absl::Status DeleteSecret(std::string_view ns, std::string_view key);
  // The keys of the secrets in `ns`, ordered (the values stay sealed).
  absl::StatusOr<std::vector<std::string>> ListSecretKeys(std::string_view ns) const;

  bool writable() const { return writable_; }
  // The raw connection, for tests that look at every table. Rows written through it are not
  // authenticated: the next read of such a row, or the next Open, refuses it.
  sqlite3* db() const { return db_; }

 private:
  friend class StateStore;
  Transaction(internal::StatementCache* statements, const Kek* kek, internal::WriteHead* head,
              bool writable);
  absl::Status CheckWritable(const char* operation, std::string_view ns,
                             std::string_view key) const;
  // The head term of the row now at (table, ns, key), if there is one.
  absl::StatusOr<std::optional<std::array<uint8_t, 32>>> StoredTerm(internal::Table table,
                                                                    std::string_view ns,
                                                                    std::string_view key) const;
  // Writes (value != nullptr) or deletes one row, and moves the head's sum from the old row's
  // term to the new one's once the statement has succeeded.
  absl::Status WriteRow(internal::Table table, std::string_view ns, std::string_view key,
                        const std::span<const uint8_t>* value, const std::string& what);

  internal::StatementCache* statements_;
  sqlite3* db_;
  const Kek* kek_;
  internal::WriteHead* head_;
  bool writable_;
};

class StateStore {
 public:
  // Creates <dir>/state.db (dir made 0700 if missing) with a new KEK, then runs `initialize` in
  // the same first transaction. Atomic: a crash or a failing `initialize` leaves no state.db and
  // no key file. AlreadyExists if <dir>/state.db or the key file exists.
  static absl::StatusOr<std::unique_ptr<StateStore>> Create(
      const std::string& dir, const KekConfig& kek,
      const std::function<absl::Status(Transaction&)>& initialize);
  // Opens an existing state and its KEK, and checks that its rows add up to its MACed head (a full
  // scan). NotFound if there is none; PermissionDenied "wrong KEK: ..." if the KEK does not open
  // the state's check value; FailedPrecondition for a state of schema version 1 (unauthenticated
  // rows, not upgraded); DataLoss naming the head or the row if the state was tampered with.
  static absl::StatusOr<std::unique_ptr<StateStore>> Open(const std::string& dir);

  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;
  ~StateStore();

  // One write transaction (BEGIN IMMEDIATE ... COMMIT). If fn fails, ROLLBACK and return its
  // error: no partial change. If another process committed to the state since this one's last
  // transaction, the rows are checked against the head again first (as in Open). Calls are
  // serialized; calling Update/Read from inside a callback is refused (FailedPrecondition).
  absl::Status Update(const std::function<absl::Status(Transaction&)>& fn);
  // A read-only snapshot; Put/Delete inside it fail with FailedPrecondition.
  absl::Status Read(const std::function<absl::Status(Transaction&)>& fn) const;

  std::string KekDescription() const { return kek_->Describe(); }
  // The state directory, absolute.
  const std::string& dir() const { return dir_; }

 private:
  StateStore(std::string dir, sqlite::SqliteDb db, std::unique_ptr<Kek> kek);
  absl::Status RunTransaction(bool writable,
                              const std::function<absl::Status(Transaction&)>& fn) const;
  // Inside a transaction: re-checks the whole state if another connection committed since the
  // head was last known (or it never was).
  absl::Status RefreshHead() const;

  std::string dir_;
  sqlite::SqliteDb db_;
  std::unique_ptr<Kek> kek_;
  // The last verified head and the data_version it was verified at; null until verified, and
  // again after a commit whose outcome is unknown. Guarded by mu_.
  mutable std::unique_ptr<internal::StateHead> head_;
  mutable int64_t head_data_version_ = 0;
  // Declared after db_, so its statements are finalized before the connection closes.
  std::unique_ptr<internal::StatementCache> statements_;
  mutable std::mutex mu_;                                  // one transaction at a time
  mutable std::atomic<std::thread::id> in_transaction_{};  // the thread inside one, if any
};

}  // namespace clade::store
