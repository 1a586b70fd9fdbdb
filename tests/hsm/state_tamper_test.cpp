// Public rows of an HSM's state edited behind its back (issue 9, hole 5): with the HSM closed, an
// attacker who has sqlite3 but not the KEK rewrites one row so that it would let through what
// the HSM refused — an announcement's `used` flag, the allow and deny lists, the child counter,
// the group's trust anchor (its accepted OEM root). The operation that reads the row refuses it
// with DataLoss naming the row, and the state is left exactly as it was (docs/state.md).
#include <sqlite3.h>

#include <filesystem>
#include <string>
#include <vector>

#include "clade/v1/audit.pb.h"
#include "clade/v1/hsm_state.pb.h"
#include "hsm/enrollment.h"
#include "hsm/group.h"
#include "hsm/job.h"
#include "oem/oem.h"
#include "world.h"

namespace clade::hsm {
namespace {

using ::clade::testing::StatusIs;
using testing::Bytes;
using ::testing::HasSubstr;
using testing::Snapshot;
using testing::Take;

constexpr char kRefused[] =
    " fails authentication (edited, moved, or restored from an older copy of this state)";

// The sqlite3 C API on a closed state.db, as the attacker uses it.
class StateFile {
 public:
  explicit StateFile(const std::string& path) {
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK)
        << path;
  }
  ~StateFile() { sqlite3_close(db_); }
  StateFile(const StateFile&) = delete;
  StateFile& operator=(const StateFile&) = delete;

  std::vector<std::string> Keys(const std::string& ns) {
    std::vector<std::string> out;
    sqlite3_stmt* st = Prepare("SELECT key FROM records WHERE ns = ?1 ORDER BY key");
    sqlite3_bind_text(st, 1, ns.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW) {
      out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
    }
    sqlite3_finalize(st);
    return out;
  }
  std::string Value(const std::string& ns, const std::string& key) {
    sqlite3_stmt* st = Prepare("SELECT value FROM records WHERE ns = ?1 AND key = ?2");
    sqlite3_bind_text(st, 1, ns.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, key.c_str(), -1, SQLITE_TRANSIENT);
    std::string out;
    if (sqlite3_step(st) == SQLITE_ROW) {
      out.assign(static_cast<const char*>(sqlite3_column_blob(st, 0)),
                 static_cast<size_t>(sqlite3_column_bytes(st, 0)));
    } else {
      ADD_FAILURE() << "no row " << ns << "/" << key;
    }
    sqlite3_finalize(st);
    return out;
  }
  // Replaces the value only: the version and tag stay as the HSM wrote them.
  void SetValue(const std::string& ns, const std::string& key, const std::string& value) {
    sqlite3_stmt* st = Prepare("UPDATE records SET value = ?3 WHERE ns = ?1 AND key = ?2");
    sqlite3_bind_text(st, 1, ns.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, key.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 3, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
    EXPECT_EQ(sqlite3_step(st), SQLITE_DONE) << sqlite3_errmsg(db_);
    EXPECT_EQ(sqlite3_changes(db_), 1);
    sqlite3_finalize(st);
  }
  // Brings one row back whole (version, value and its genuine tag) from an earlier copy.
  void RestoreRow(const std::string& earlier, const std::string& ns, const std::string& key) {
    std::string sql = "ATTACH '" + earlier +
                      "' AS old; UPDATE records SET (version, value, tag) = (SELECT version, "
                      "value, tag FROM old.records WHERE ns = '" +
                      ns + "' AND key = '" + key + "') WHERE ns = '" + ns + "' AND key = '" + key +
                      "'; DETACH old;";
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
    sqlite3_free(err);
  }

 private:
  sqlite3_stmt* Prepare(const char* sql) {
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql, -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db_);
    return st;
  }
  sqlite3* db_ = nullptr;
};

class StateTamperTest : public testing::World {
 protected:
  void SetUp() override {
    World::SetUp();
    if (HasFatalFailure()) return;
    auto oem = oem::Oem::Init(dir_.File("oem"), "Acme Devices");
    ASSERT_OK(oem);
    oem_.emplace(*std::move(oem));
    sponsor_ = &Make("SN-1");
    clock_.Set(t0_);
    auto g = CreateGroup(*sponsor_, "tampered", oem_->root());
    ASSERT_OK(g);
    group_ = g->group_id;
  }

  // Closes the sponsor, lets `edit` change its state.db, and opens it again.
  void EditClosedSponsor(const std::function<void(StateFile&)>& edit) {
    hsms_["SN-1"].reset();
    {
      StateFile file(StateDir("SN-1") + "/state.db");
      edit(file);
    }
    sponsor_ = &Reopen("SN-1");
  }

  // Changes the sponsor's group record (a GroupMembership) on disk.
  void EditGroupRecord(const std::function<void(v1::GroupMembership&)>& change) {
    EditClosedSponsor([&](StateFile& file) {
      v1::GroupMembership m;
      ASSERT_TRUE(m.ParseFromString(file.Value("group", group_)));
      change(m);
      file.SetValue("group", group_, m.SerializeAsString());
    });
  }

  std::string GroupRowRefused() const { return "state row group/" + group_ + kRefused; }

  absl::StatusOr<Admission> Candidate(const std::string& serial, const Bytes& ann) {
    Hsm& c = hsms_.count(serial) ? *hsms_[serial] : Make(serial);
    clock_.Set(t0_ + 1);
    ASSIGN_OR_RETURN(Bytes req, RequestEnrollment(c, ann));
    clock_.Set(t0_ + 2);
    return Admit(*sponsor_, req);
  }

  Bytes Ann() {
    clock_.Set(t0_);
    auto ann = Announce(*sponsor_, group_, kDefaultAnnouncementValidity);
    EXPECT_OK(ann);
    return ann.ok() ? *ann : Bytes{};
  }

  // A job package for this group, signed by `signer`.
  absl::StatusOr<Bytes> Package(const oem::Oem& signer, const std::string& job_id) {
    ASSIGN_OR_RETURN(GroupExport gx, ExportGroup(*sponsor_, group_));
    const std::string gx_dir = dir_.File("gx-" + job_id);
    RETURN_IF_ERROR(WriteGroupExport(gx, gx_dir));
    oem::PackageOptions opts;
    opts.job_id = job_id;
    opts.group_export_dir = gx_dir;
    opts.profile_json =
        R"({"product": "Sensor", "subject": {"CN": "{product} {uid}", "O": "Acme"},
            "validity": {"not_after": "99991231235959Z"}, "key_usage": ["digitalSignature"],
            "key_mode": "device"})";
    opts.pinned_supplier_root = sponsor_->supplier_root();
    ASSIGN_OR_RETURN(oem::PackageSummary pkg, signer.Package(opts, FixedClock(t0_)));
    return pkg.package;
  }

  Hsm* sponsor_ = nullptr;
  std::string group_;
  std::optional<oem::Oem> oem_;
};

TEST_F(StateTamperTest, UsedAnnouncementMarkedUnusedIsRefusedByAdmit) {
  Bytes ann = Ann();
  ASSERT_OK(Candidate("SN-2", ann));
  std::string key;
  EditClosedSponsor([&](StateFile& file) {
    auto keys = file.Keys("announcement");
    ASSERT_EQ(keys.size(), 1u);
    key = keys[0];
    v1::IssuedAnnouncement rec;
    ASSERT_TRUE(rec.ParseFromString(file.Value("announcement", key)));
    ASSERT_TRUE(rec.used());
    rec.set_used(false);
    rec.clear_admitted_serial();
    rec.clear_admitted_member_id();
    file.SetValue("announcement", key, rec.SerializeAsString());
  });
  Snapshot before = Take(*sponsor_);
  EXPECT_THAT(Candidate("SN-3", ann),
              StatusIs(absl::StatusCode::kDataLoss, "state row announcement/" + key + kRefused));
  EXPECT_EQ(Take(*sponsor_), before);
}

TEST_F(StateTamperTest, AnnouncementRestoredFromAnEarlierCopyIsRefusedAtOpen) {
  Bytes ann = Ann();
  const std::string db = StateDir("SN-1") + "/state.db";
  const std::string earlier = dir_.File("earlier.db");
  hsms_["SN-1"].reset();
  std::filesystem::copy_file(db, earlier);  // the announcement, not yet used
  sponsor_ = &Reopen("SN-1");
  ASSERT_OK(Candidate("SN-2", ann));
  hsms_["SN-1"].reset();
  {
    StateFile file(db);
    file.RestoreRow(earlier, "announcement", file.Keys("announcement").at(0));
  }
  // The row is genuine, but not the one the state head counts: the whole state is refused.
  EXPECT_THAT(Hsm::Open(StateDir("SN-1")),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr(db + " do not add up to its state head (commit ")));
}

TEST_F(StateTamperTest, SerialAddedToTheAllowListIsRefusedByAdmit) {
  ASSERT_OK(AddToPolicy(*sponsor_, group_, PolicyList::kAllow, "SN-2"));
  Bytes ann = Ann();
  EXPECT_THAT(Candidate("SN-3", ann),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("not on the allow list")));
  EditGroupRecord([](v1::GroupMembership& m) { m.mutable_group()->add_allow_serials("SN-3"); });
  Snapshot before = Take(*sponsor_);
  EXPECT_THAT(Candidate("SN-3", ann), StatusIs(absl::StatusCode::kDataLoss, GroupRowRefused()));
  EXPECT_THAT(AddToPolicy(*sponsor_, group_, PolicyList::kAllow, "SN-4"),
              StatusIs(absl::StatusCode::kDataLoss, GroupRowRefused()));
  EXPECT_THAT(ListGroups(*sponsor_), StatusIs(absl::StatusCode::kDataLoss, GroupRowRefused()));
  EXPECT_EQ(Take(*sponsor_), before);
}

TEST_F(StateTamperTest, SerialTakenOffTheDenyListIsRefusedByAdmit) {
  ASSERT_OK(AddToPolicy(*sponsor_, group_, PolicyList::kDeny, "SN-3"));
  Bytes ann = Ann();
  EXPECT_THAT(Candidate("SN-3", ann),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("is on the deny list")));
  EditGroupRecord([](v1::GroupMembership& m) { m.mutable_group()->clear_deny_serials(); });
  Snapshot before = Take(*sponsor_);
  EXPECT_THAT(Candidate("SN-3", ann), StatusIs(absl::StatusCode::kDataLoss, GroupRowRefused()));
  EXPECT_THAT(AddToPolicy(*sponsor_, group_, PolicyList::kDeny, "SN-5"),
              StatusIs(absl::StatusCode::kDataLoss, GroupRowRefused()));
  EXPECT_EQ(Take(*sponsor_), before);
}

TEST_F(StateTamperTest, ChildCounterWoundBackIsRefusedByAdmit) {
  ASSERT_OK(Candidate("SN-2", Ann()));
  Bytes ann = Ann();
  // Wound back, the next child would be given member id 1.1 again.
  EditGroupRecord([](v1::GroupMembership& m) {
    ASSERT_EQ(m.child_counter(), 1u);
    m.set_child_counter(0);
    m.clear_children();
  });
  Snapshot before = Take(*sponsor_);
  EXPECT_THAT(Candidate("SN-3", ann), StatusIs(absl::StatusCode::kDataLoss, GroupRowRefused()));
  EXPECT_EQ(Take(*sponsor_), before);
}

TEST_F(StateTamperTest, TrustAnchorSwappedForAnotherOemIsRefusedByImportJob) {
  auto other = oem::Oem::Init(dir_.File("other-oem"), "Made-up Devices");
  ASSERT_OK(other);
  ASSERT_OK_AND_ASSIGN(Bytes forged, Package(*other, "J-FORGED"));
  clock_.Set(t0_);
  EXPECT_THAT(ImportJob(*sponsor_, forged),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("package is not signed by the OEM root group")));
  EditGroupRecord([&](v1::GroupMembership& m) {
    m.mutable_group()->set_oem_root(testing::DerString(other->root()));
  });
  Snapshot before = Take(*sponsor_);
  clock_.Set(t0_);
  EXPECT_THAT(ImportJob(*sponsor_, forged),
              StatusIs(absl::StatusCode::kDataLoss, GroupRowRefused()));
  EXPECT_THAT(TrustOem(*sponsor_, group_, other->root()),
              StatusIs(absl::StatusCode::kDataLoss, GroupRowRefused()));
  EXPECT_THAT(ExportGroup(*sponsor_, group_),
              StatusIs(absl::StatusCode::kDataLoss, GroupRowRefused()));
  EXPECT_EQ(Take(*sponsor_), before);
}

TEST_F(StateTamperTest, UntouchedStateStillAdmitsAndImports) {
  // The same operations, on a state nobody edited, succeed after a close and reopen.
  Bytes ann = Ann();
  EditClosedSponsor([](StateFile&) {});
  ASSERT_OK_AND_ASSIGN(Admission adm, Candidate("SN-2", ann));
  EXPECT_EQ(adm.member_id, "1.1");
  ASSERT_OK_AND_ASSIGN(Bytes pkg, Package(*oem_, "J-1"));
  clock_.Set(t0_);
  EXPECT_OK(ImportJob(*sponsor_, pkg));
}

// Rows written by the HSM itself (through the store, so their tags are genuine) that carry a field
// this version does not know: the row is damaged, never half read (docs/protocol.md, "Payloads
// are decoded strictly").
TEST_F(StateTamperTest, RowsWithAnUnknownFieldAreRefusedAsDamaged) {
  // Decodes row ns/key as a `row`, lets `change` edit it, and stores it back as the HSM would.
  auto rewrite = [&](const char* ns, const std::string& key, auto row, auto change) {
    ASSERT_OK(sponsor_->state().Update([&](store::Transaction& tx) -> absl::Status {
      ASSIGN_OR_RETURN(auto bytes, tx.Get(ns, key));
      if (!bytes || !row.ParseFromArray(bytes->data(), static_cast<int>(bytes->size()))) {
        return absl::InternalError("test: no row " + std::string(ns) + "/" + key);
      }
      change(row);
      std::string s = row.SerializeAsString();
      return tx.Put(ns, key, Bytes(s.begin(), s.end()));
    }));
  };
  using ::testing::Eq;
  constexpr auto kDataLoss = absl::StatusCode::kDataLoss;

  // The group row, with the unknown field inside its `group` sub-message.
  rewrite("group", group_, v1::GroupMembership(),
          [](v1::GroupMembership& m) { testing::AddUnknownField(m.mutable_group(), 21); });
  Snapshot before = Take(*sponsor_);
  const std::string refused =
      "the HSM state holds a damaged group record: clade.v1.GroupMembership has unknown field 21 "
      "in group";
  clock_.Set(t0_);
  EXPECT_THAT(Announce(*sponsor_, group_, kDefaultAnnouncementValidity),
              StatusIs(kDataLoss, Eq(refused)));
  EXPECT_THAT(ExportGroup(*sponsor_, group_), StatusIs(kDataLoss, Eq(refused)));
  EXPECT_EQ(Take(*sponsor_), before);
  // Without the field, the same row is read again.
  rewrite("group", group_, v1::GroupMembership(),
          [](v1::GroupMembership& m) { m.mutable_group()->DiscardUnknownFields(); });
  EXPECT_OK(ExportGroup(*sponsor_, group_));

  // The audit head, which every operation extends.
  rewrite("audit-head", "head", v1::AuditHead(),
          [](v1::AuditHead& head) { testing::AddUnknownField(&head, 9); });
  before = Take(*sponsor_);
  clock_.Set(t0_);
  EXPECT_THAT(Announce(*sponsor_, group_, kDefaultAnnouncementValidity),
              StatusIs(kDataLoss, Eq("the HSM state holds a damaged audit head: clade.v1.AuditHead "
                                     "has unknown field 9")));
  EXPECT_EQ(Take(*sponsor_), before);
}

}  // namespace
}  // namespace clade::hsm
