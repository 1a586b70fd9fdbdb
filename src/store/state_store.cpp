// StateStore: creating, opening and running transactions on <state dir>/state.db.
#include "store/state_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "crypto/random.h"
#include "store/row_auth.h"
#include "store/sqlite_util.h"
#include "store/statement_cache.h"

namespace clade::store {
namespace {

using sqlite::Exec;
using sqlite::SqliteDb;
using sqlite::SqliteError;

constexpr char kDbName[] = "state.db";
// Version 2: every row carries a version and a tag, and meta holds the state head (row_auth.h).
constexpr char kSchemaVersion[] = "2";
constexpr char kUnauthenticatedSchemaVersion[] = "1";
// Temporary files of an unfinished Create: "<name>.creating-<pid>".
constexpr char kCreatingInfix[] = ".creating-";
// The check value: a known constant sealed under the KEK, so Open can tell a wrong KEK at once.
constexpr std::string_view kCheckAad = "clade-kek-check-v1";
constexpr std::string_view kCheckPlaintext = "clade: this KEK opens this HSM state";

constexpr char kSchema[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB);"
    "CREATE TABLE records(ns TEXT, key TEXT, version INTEGER, value BLOB, tag BLOB,"
    " PRIMARY KEY(ns, key));"
    "CREATE TABLE secrets(ns TEXT, key TEXT, version INTEGER, sealed BLOB, tag BLOB,"
    " PRIMARY KEY(ns, key));";

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string Absolute(const std::string& path) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(path, ec);
  if (ec) return path;
  return p.lexically_normal().string();
}

std::string ParentDir(const std::string& path) {
  std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

// Opens (or creates) a database file with the settings every connection uses (sqlite_util.h).
absl::StatusOr<SqliteDb> OpenDb(const std::string& path, bool create) {
  sqlite::OpenOptions options;
  options.create = create;
  return sqlite::OpenDatabase(path, options);
}

absl::Status PutMeta(sqlite3* db, const std::string& key, std::span<const uint8_t> value,
                     bool as_text) {
  std::string what = "cannot write meta " + key;
  ASSIGN_OR_RETURN(auto stmt,
                   sqlite::Prepare(db, "INSERT INTO meta(key, value) VALUES(?1, ?2)", what));
  RETURN_IF_ERROR(sqlite::BindText(db, stmt.get(), 1, key, what));
  if (as_text) {
    std::string_view text(reinterpret_cast<const char*>(value.data()), value.size());
    RETURN_IF_ERROR(sqlite::BindText(db, stmt.get(), 2, text, what));
  } else {
    RETURN_IF_ERROR(sqlite::BindBlob(db, stmt.get(), 2, value, what));
  }
  ASSIGN_OR_RETURN(bool row, sqlite::Step(db, stmt.get(), what));
  (void)row;
  return absl::OkStatus();
}

absl::Status PutMetaText(sqlite3* db, const std::string& key, const std::string& value) {
  return PutMeta(db, key, AsBytes(value), /*as_text=*/true);
}

// Writes the schema, the KEK parameters (in clear) and the check value.
absl::Status WriteMeta(sqlite3* db, const KekParams& params, const std::string& recorded_key_file,
                       const Kek& kek) {
  RETURN_IF_ERROR(Exec(db, kSchema, "cannot create the state tables"));
  RETURN_IF_ERROR(PutMetaText(db, "schema_version", kSchemaVersion));
  if (params.kind == KekConfig::Kind::kKeyFile) {
    RETURN_IF_ERROR(PutMetaText(db, "kek_kind", "key-file"));
    RETURN_IF_ERROR(PutMetaText(db, "kek_key_file", recorded_key_file));
  } else {
    RETURN_IF_ERROR(PutMetaText(db, "kek_kind", "passphrase"));
    RETURN_IF_ERROR(PutMetaText(db, "kek_passphrase_env", params.passphrase_env));
    RETURN_IF_ERROR(PutMeta(db, "kek_salt", params.salt, /*as_text=*/false));
    RETURN_IF_ERROR(PutMetaText(db, "kek_scrypt_n", absl::StrCat(params.scrypt.n)));
    RETURN_IF_ERROR(PutMetaText(db, "kek_scrypt_r", absl::StrCat(params.scrypt.r)));
    RETURN_IF_ERROR(PutMetaText(db, "kek_scrypt_p", absl::StrCat(params.scrypt.p)));
  }
  auto check = kek.Seal(AsBytes(kCheckAad), crypto::SecretBytes(AsBytes(kCheckPlaintext)));
  if (!check.ok()) return Annotate(check.status(), "cannot seal the KEK check value");
  return PutMeta(db, "kek_check", *check, /*as_text=*/false);
}

using Meta = std::map<std::string, std::vector<uint8_t>>;

absl::StatusOr<Meta> ReadMeta(sqlite3* db, const std::string& db_path) {
  std::string what = "cannot read the meta table of " + db_path;
  ASSIGN_OR_RETURN(auto stmt, sqlite::Prepare(db, "SELECT key, value FROM meta", what));
  Meta meta;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, sqlite::Step(db, stmt.get(), what));
    if (!row) break;
    meta[sqlite::ColumnText(stmt.get(), 0)] = sqlite::ColumnBlob(stmt.get(), 1);
  }
  return meta;
}

absl::StatusOr<std::string> MetaText(const Meta& meta, const std::string& key,
                                     const std::string& db_path) {
  auto it = meta.find(key);
  if (it == meta.end()) {
    return absl::DataLossError(absl::StrCat(db_path, " has no ", key, " in its meta table"));
  }
  return std::string(it->second.begin(), it->second.end());
}

template <typename T>
absl::StatusOr<T> MetaNumber(const Meta& meta, const std::string& key, const std::string& db_path) {
  ASSIGN_OR_RETURN(std::string text, MetaText(meta, key, db_path));
  T value{};
  if (!absl::SimpleAtoi(text, &value)) {
    return absl::DataLossError(absl::StrCat(db_path, ": meta ", key, " is not a number"));
  }
  return value;
}

absl::StatusOr<KekParams> KekParamsFromMeta(const Meta& meta, const std::string& dir,
                                            const std::string& db_path) {
  KekParams params;
  ASSIGN_OR_RETURN(std::string kind, MetaText(meta, "kek_kind", db_path));
  if (kind == "key-file") {
    params.kind = KekConfig::Kind::kKeyFile;
    ASSIGN_OR_RETURN(params.key_file, MetaText(meta, "kek_key_file", db_path));
    // A relative path (the default, "kek.key") lives in the state directory, which may move.
    if (!params.key_file.starts_with('/')) params.key_file = dir + "/" + params.key_file;
  } else if (kind == "passphrase") {
    params.kind = KekConfig::Kind::kPassphrase;
    ASSIGN_OR_RETURN(params.passphrase_env, MetaText(meta, "kek_passphrase_env", db_path));
    auto salt = meta.find("kek_salt");
    if (salt == meta.end()) return absl::DataLossError(db_path + " has no kek_salt in its meta");
    params.salt = salt->second;
    ASSIGN_OR_RETURN(params.scrypt.n, MetaNumber<uint64_t>(meta, "kek_scrypt_n", db_path));
    ASSIGN_OR_RETURN(params.scrypt.r, MetaNumber<uint32_t>(meta, "kek_scrypt_r", db_path));
    ASSIGN_OR_RETURN(params.scrypt.p, MetaNumber<uint32_t>(meta, "kek_scrypt_p", db_path));
  } else {
    return absl::DataLossError(
        absl::StrCat(db_path, " records an unknown KEK kind \"", kind, "\""));
  }
  return params;
}

absl::Status VerifyCheckValue(const Meta& meta, const Kek& kek, const std::string& db_path) {
  auto it = meta.find("kek_check");
  if (it == meta.end()) return absl::DataLossError(db_path + " has no KEK check value");
  auto opened = kek.Open(AsBytes(kCheckAad), it->second);
  if (!opened.ok() && opened.status().code() != absl::StatusCode::kPermissionDenied &&
      opened.status().code() != absl::StatusCode::kInvalidArgument) {
    return Annotate(opened.status(), "cannot check the KEK (" + kek.Describe() + ")");
  }
  if (!opened.ok() || opened->RevealSecretAsString() != kCheckPlaintext) {
    return absl::PermissionDeniedError(
        absl::StrCat("wrong KEK: ", kek.Describe(), " does not open this state"));
  }
  return absl::OkStatus();
}

absl::Status CheckSchemaVersion(const std::string& version, const std::string& db_path) {
  if (version == kUnauthenticatedSchemaVersion) {
    // Not upgraded in place: anyone who can edit the file could set version 1 to have tampered
    // rows authenticated by the upgrade (docs/decisions/0005-authenticated-state.md).
    return absl::FailedPreconditionError(
        absl::StrCat(db_path,
                     " has schema version 1, whose rows are not authenticated; this build of Clade "
                     "only opens version ",
                     kSchemaVersion, " and does not upgrade a state in place"));
  }
  if (version != kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(db_path, " has schema version ", version,
                                                      "; this build of Clade understands version ",
                                                      kSchemaVersion));
  }
  return absl::OkStatus();
}

// Removes "<prefix><pid>..." files in `dir` left by a Create whose process has died. A key
// temporary may hold key material, so it should not linger.
void RemoveStaleCreateFiles(const std::string& dir, const std::string& prefix) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (struct dirent* entry = ::readdir(d)) {
    std::string_view name(entry->d_name);
    if (!name.starts_with(prefix)) continue;
    std::string_view rest = name.substr(prefix.size());
    size_t digits = 0;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
    int pid = 0;
    if (digits == 0 || !absl::SimpleAtoi(std::string(rest.substr(0, digits)), &pid)) continue;
    if (pid <= 0 || ::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive, or unknown
    ::unlink((dir + "/" + std::string(name)).c_str());
  }
  ::closedir(d);
}

void RemoveDbFiles(const std::string& db_path) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    ::unlink((db_path + suffix).c_str());
  }
}

absl::Status FsyncFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError("cannot open " + path + ": " + std::strerror(errno));
  int rc = ::fsync(fd);
  int e = errno;
  ::close(fd);
  if (rc != 0) return absl::InternalError("cannot fsync " + path + ": " + std::strerror(e));
  return absl::OkStatus();
}

// link() rather than rename(): it refuses an existing target, so a concurrent Create cannot be
// overwritten.
absl::Status LinkExclusive(const std::string& from, const std::string& to,
                           const std::string& exists_message) {
  if (::link(from.c_str(), to.c_str()) != 0) {
    int e = errno;
    if (e == EEXIST) return absl::AlreadyExistsError(exists_message);
    return absl::InternalError(
        absl::StrCat("cannot link ", from, " to ", to, ": ", std::strerror(e)));
  }
  ::unlink(from.c_str());
  return absl::OkStatus();
}

}  // namespace

StateStore::StateStore(std::string dir, SqliteDb db, std::unique_ptr<Kek> kek)
    : dir_(std::move(dir)),
      db_(std::move(db)),
      kek_(std::move(kek)),
      statements_(std::make_unique<internal::StatementCache>(db_.get())) {}

StateStore::~StateStore() = default;

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Create(
    const std::string& dir_arg, const KekConfig& config,
    const std::function<absl::Status(Transaction&)>& initialize) {
  const std::string dir = Absolute(dir_arg);
  const std::string db_path = dir + "/" + kDbName;
  const std::string exists_message = dir + " already holds an HSM state; refusing to overwrite";
  RETURN_IF_ERROR(MakeDirs(dir, 0700));
  if (PathExists(db_path)) return absl::AlreadyExistsError(exists_message);
  const std::string suffix = absl::StrCat(kCreatingInfix, ::getpid());
  RemoveStaleCreateFiles(dir, std::string(kDbName) + kCreatingInfix);

  // Everything is built under temporary names; `cleanup` removes whatever exists if we fail.
  const std::string db_tmp = db_path + suffix;
  std::string key_tmp;   // set once the temporary key file exists
  std::string key_done;  // set once the key file is in place
  auto fail = [&](const absl::Status& s) {
    RemoveDbFiles(db_tmp);
    if (!key_tmp.empty()) ::unlink(key_tmp.c_str());
    if (!key_done.empty()) ::unlink(key_done.c_str());
    return s;
  };

  KekParams params;
  std::string recorded_key_file;
  std::unique_ptr<Kek> kek;
  if (config.kind == KekConfig::Kind::kKeyFile) {
    params.kind = KekConfig::Kind::kKeyFile;
    params.key_file =
        config.key_file.empty() ? dir + "/" + kDefaultKeyFileName : Absolute(config.key_file);
    recorded_key_file =
        config.key_file.empty() ? std::string(kDefaultKeyFileName) : params.key_file;
    std::string key_dir = ParentDir(params.key_file);
    std::string key_base = std::filesystem::path(params.key_file).filename().string();
    RemoveStaleCreateFiles(key_dir, key_base + kCreatingInfix);
    if (PathExists(params.key_file)) {
      return absl::AlreadyExistsError(absl::StrCat("KEK key file ", params.key_file,
                                                   " already exists; refusing to overwrite it"));
    }
    crypto::SecretBytes key = crypto::RandomSecret(kKekKeySize);
    RETURN_IF_ERROR(WriteNewKeyFile(params.key_file + suffix, key));
    key_tmp = params.key_file + suffix;
    auto made = MakeKeyFileKek(params.key_file, std::move(key));
    if (!made.ok()) return fail(made.status());
    kek = std::move(made).value();
  } else {
    ASSIGN_OR_RETURN(kek, NewPassphraseKek(config.passphrase_env, &params));
  }

  {
    auto db = OpenDb(db_tmp, /*create=*/true);
    if (!db.ok()) return fail(db.status());
    sqlite3* h = db->get();
    auto tx = sqlite::SqliteTransaction::Begin(h, sqlite::TransactionMode::kWrite,
                                               "cannot begin the first transaction");
    if (!tx.ok()) return fail(tx.status());
    absl::Status s = WriteMeta(h, params, recorded_key_file, *kek);
    // The first commit is commit 1; its head is written even if `initialize` wrote nothing.
    internal::WriteHead head;
    head.version = 1;
    {
      internal::StatementCache statements(h);
      if (s.ok()) {
        Transaction tx(&statements, kek.get(), &head, /*writable=*/true);
        s = initialize(tx);
      }
      head.head.seq = head.version;
      if (s.ok()) s = internal::WriteStateHead(statements, *kek, head.head);
    }
    if (s.ok()) s = tx->Commit("cannot commit the new state " + db_tmp);
    if (!s.ok()) return fail(s);
    // Closing checkpoints the WAL into the file and removes it; then the file alone is the state.
    int rc = sqlite3_close(db->release());
    if (rc != SQLITE_OK) return fail(SqliteError(nullptr, rc, "cannot close " + db_tmp));
  }
  if (absl::Status s = FsyncFile(db_tmp); !s.ok()) return fail(s);

  // The key file goes in place first: a crash between the two steps leaves a key file and no
  // state (refused by the next Create, which names it), never a state without its key.
  if (!key_tmp.empty()) {
    absl::Status s = LinkExclusive(key_tmp, params.key_file,
                                   "KEK key file " + params.key_file + " appeared meanwhile");
    if (!s.ok()) return fail(s);
    key_tmp.clear();
    key_done = params.key_file;
    s = SyncDir(ParentDir(params.key_file));
    if (!s.ok()) return fail(s);
  }
  if (absl::Status s = LinkExclusive(db_tmp, db_path, exists_message); !s.ok()) return fail(s);
  RETURN_IF_ERROR(SyncDir(dir));

  ASSIGN_OR_RETURN(SqliteDb db, OpenDb(db_path, /*create=*/false));
  return std::unique_ptr<StateStore>(new StateStore(dir, std::move(db), std::move(kek)));
}

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Open(const std::string& dir_arg) {
  const std::string dir = Absolute(dir_arg);
  const std::string db_path = dir + "/" + kDbName;
  if (!PathExists(db_path)) {
    return absl::NotFoundError(absl::StrCat(dir, " holds no HSM state (no ", kDbName, ")"));
  }
  ASSIGN_OR_RETURN(SqliteDb db, OpenDb(db_path, /*create=*/false));
  ASSIGN_OR_RETURN(Meta meta, ReadMeta(db.get(), db_path));
  // Read in place, not moved out: GCC 12 takes a string moved out of a StatusOr for uninitialized
  // (a false -Wmaybe-uninitialized).
  const absl::StatusOr<std::string> version = MetaText(meta, "schema_version", db_path);
  if (!version.ok()) return version.status();
  RETURN_IF_ERROR(CheckSchemaVersion(*version, db_path));
  ASSIGN_OR_RETURN(KekParams params, KekParamsFromMeta(meta, dir, db_path));
  auto kek = OpenKek(params);
  if (!kek.ok()) return Annotate(kek.status(), "cannot open the KEK of " + dir);
  RETURN_IF_ERROR(VerifyCheckValue(meta, **kek, db_path));
  std::unique_ptr<StateStore> store(new StateStore(dir, std::move(db), std::move(kek).value()));
  // The full check of the rows against the head, now rather than at the first transaction, so a
  // tampered state is refused by Open itself.
  RETURN_IF_ERROR(store->Read([](Transaction&) { return absl::OkStatus(); }));
  return store;
}

absl::Status StateStore::RefreshHead() const {
  sqlite3* db = db_.get();
  ASSIGN_OR_RETURN(int64_t data_version, internal::DataVersion(*statements_));
  if (head_ && data_version == head_data_version_) return absl::OkStatus();
  head_.reset();
  ASSIGN_OR_RETURN(internal::StateHead head,
                   internal::VerifyState(db, *kek_, dir_ + "/" + kDbName));
  head_ = std::make_unique<internal::StateHead>(head);
  head_data_version_ = data_version;
  return absl::OkStatus();
}

absl::Status StateStore::Update(const std::function<absl::Status(Transaction&)>& fn) {
  return RunTransaction(/*writable=*/true, fn);
}

absl::Status StateStore::Read(const std::function<absl::Status(Transaction&)>& fn) const {
  return RunTransaction(/*writable=*/false, fn);
}

absl::Status StateStore::RunTransaction(bool writable,
                                        const std::function<absl::Status(Transaction&)>& fn) const {
  if (in_transaction_.load() == std::this_thread::get_id()) {
    return absl::FailedPreconditionError(
        "StateStore::Update/Read called from inside a transaction callback");
  }
  std::lock_guard<std::mutex> lock(mu_);
  in_transaction_.store(std::this_thread::get_id());
  struct Reset {
    std::atomic<std::thread::id>& id;
    ~Reset() { id.store(std::thread::id()); }
  } reset{in_transaction_};

  sqlite3* db = db_.get();
  const std::string where = " in " + dir_;
  // query_only makes a Read read-only for raw SQL through db() too.
  if (!writable) {
    RETURN_IF_ERROR(Exec(db, "PRAGMA query_only = ON", "cannot start a read" + where));
  }
  auto tx = sqlite::SqliteTransaction::Begin(
      db, writable ? sqlite::TransactionMode::kWrite : sqlite::TransactionMode::kRead,
      "cannot begin a transaction" + where);
  absl::Status s = tx.status();
  if (s.ok()) {
    // Another process may have committed since this one's last transaction (or the head is not
    // known yet): then the whole state is checked again, inside this transaction's snapshot.
    s = RefreshHead();
    internal::WriteHead head;
    if (s.ok()) {
      head.head = *head_;
      head.version = writable ? head_->seq + 1 : head_->seq;
      Transaction store_tx(statements_.get(), kek_.get(), &head, writable);
      s = fn(store_tx);
    }
    if (s.ok() && head.changed) {
      head.head.seq = head.version;
      s = internal::WriteStateHead(*statements_, *kek_, head.head);
    }
    if (s.ok()) {
      s = tx->Commit("cannot commit the transaction" + where);
      if (s.ok() && head.changed) {
        *head_ = head.head;
      } else if (!s.ok()) {
        head_.reset();  // the commit's outcome is unknown: verify again next time
      }
    }
    if (!s.ok()) {
      absl::Status rb = tx->Rollback("cannot roll back the transaction" + where);
      if (!rb.ok()) s = Annotate(s, std::string(rb.message()));
    }
  }
  if (!writable) {
    absl::Status q = Exec(db, "PRAGMA query_only = OFF", "cannot end a read" + where);
    if (s.ok()) s = q;
  }
  return s;
}

}  // namespace clade::store
