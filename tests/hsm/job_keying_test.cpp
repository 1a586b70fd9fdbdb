// Jobs are kept per group: an HSM in groups A and B holds A's job "J2" and B's job "J2" side by
// side. Each imports, provisions and counts apart; a caller names its group, and a job of
// another group is not found; a refused lookup changes no state.
#include <optional>

#include "hsm/group.h"
#include "hsm/internal/jobs.h"
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

class JobKeyingTest : public testing::World {
 protected:
  void SetUp() override {
    World::SetUp();
    if (HasFatalFailure()) return;
    h_ = &Make("SN-1");
    Hsm& b_founder = Make("SN-9");
    a_ = Found(*h_, "Acme");
    b_ = Found(b_founder, "Bolt");
    // Each group trusts its own OEM; SN-1 joins Bolt and inherits Bolt's OEM root.
    ASSERT_NO_FATAL_FAILURE(Trust(*h_, a_, "oem-a", "Acme Devices", &oem_a_));
    ASSERT_NO_FATAL_FAILURE(Trust(b_founder, b_, "oem-b", "Bolt Devices", &oem_b_));
    ASSERT_EQ(Enroll(b_founder, *h_, b_), "1.1");
    pkg_a_ = Package(*oem_a_, *h_, a_, "gx-a");
    pkg_b_ = Package(*oem_b_, *h_, b_, "gx-b");
  }
  void Trust(Hsm& h, const std::string& group, const std::string& dir, const std::string& name,
             std::optional<oem::Oem>* out) {
    auto o = oem::Oem::Init(dir_.File(dir), name);
    ASSERT_OK(o);
    out->emplace(*std::move(o));
    ASSERT_OK(TrustOem(h, group, (*out)->root()));
  }
  Bytes Package(const oem::Oem& o, Hsm& member, const std::string& group, const std::string& dir) {
    auto ex = ExportGroup(member, group);
    EXPECT_TRUE(ex.ok()) << ex.status();
    if (!ex.ok()) return {};
    EXPECT_OK(WriteGroupExport(*ex, dir_.File(dir)));
    oem::PackageOptions opts;
    opts.job_id = "J2";
    opts.group_export_dir = dir_.File(dir);
    opts.profile_json = testing::kSensorProfile;
    opts.pinned_supplier_root = member.supplier_root();
    auto p = o.Package(opts);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? p->package : Bytes{};
  }
  static DeviceRequest Device(const std::string& uid) {
    DeviceRequest r;
    r.uid = uid;
    auto key = crypto::PrivateKey::Generate(crypto::Curve::kP256);
    EXPECT_TRUE(key.ok());
    if (key.ok()) r.device_key = key->Public();
    return r;
  }

  Hsm* h_ = nullptr;  // SN-1: founder (1) of Acme, member 1.1 of Bolt
  std::string a_, b_;
  std::optional<oem::Oem> oem_a_, oem_b_;
  Bytes pkg_a_, pkg_b_;
};

TEST_F(JobKeyingTest, TwoGroupsJobsOfOneIdImportAndProvisionApart) {
  ASSERT_OK_AND_ASSIGN(JobSummary ja, ImportJob(*h_, pkg_b_));
  EXPECT_EQ(ja.group_id, b_);
  // Group A's J2 after group B's: another job, not "already imported with other content".
  ASSERT_OK_AND_ASSIGN(JobSummary jb, ImportJob(*h_, pkg_a_));
  EXPECT_EQ(jb.group_id, a_);
  ASSERT_OK_AND_ASSIGN(auto all, ListJobs(*h_));
  EXPECT_EQ(all.size(), 2u);
  ASSERT_OK_AND_ASSIGN(auto only_a, ListJobs(*h_, a_));
  ASSERT_EQ(only_a.size(), 1u);
  EXPECT_EQ(only_a[0].group_id, a_);

  // The same uid in each group's J2: two devices, each counted in its own job.
  ASSERT_OK_AND_ASSIGN(auto pa, Provisioner::Create(*h_, a_, "J2"));
  ASSERT_OK_AND_ASSIGN(auto pb, Provisioner::Create(*h_, b_, "J2"));
  EXPECT_EQ(pa->group_id(), a_);
  EXPECT_EQ(pa->member_id(), "1");
  EXPECT_EQ(pb->group_id(), b_);
  EXPECT_EQ(pb->member_id(), "1.1");
  ASSERT_OK_AND_ASSIGN(ProvisioningData da, pa->Provision(Device("D-1")));
  ASSERT_OK_AND_ASSIGN(ProvisioningData db, pb->Provision(Device("D-1")));
  EXPECT_EQ(da.chain[1], oem_a_->root());
  EXPECT_EQ(db.chain[1], oem_b_->root());
  EXPECT_THAT(pa->Provision(Device("D-1")),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("device uid D-1 was already provisioned for job J2")));
  ASSERT_OK_AND_ASSIGN(auto after_a, ListJobs(*h_, a_));
  ASSERT_OK_AND_ASSIGN(auto after_b, ListJobs(*h_, b_));
  EXPECT_EQ(after_a[0].devices_provisioned, 1u);
  EXPECT_EQ(after_b[0].devices_provisioned, 1u);

  // Each package comes back as its group imported it.
  ASSERT_OK_AND_ASSIGN(Bytes back_a, JobPackageBytes(*h_, a_, "J2"));
  ASSERT_OK_AND_ASSIGN(Bytes back_b, JobPackageBytes(*h_, b_, "J2"));
  EXPECT_EQ(back_a, pkg_a_);
  EXPECT_EQ(back_b, pkg_b_);
}

TEST_F(JobKeyingTest, AJobIsFoundOnlyInItsGroupAndAmbiguityIsNamed) {
  ASSERT_OK(ImportJob(*h_, pkg_a_));
  ASSERT_OK_AND_ASSIGN(std::string only, GroupOfJob(*h_, "J2"));
  EXPECT_EQ(only, a_);
  Snapshot before = Take(*h_);
  EXPECT_THAT(Provisioner::Create(*h_, b_, "J2"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("job J2 is not imported on this HSM for group " + b_)));
  EXPECT_THAT(JobPackageBytes(*h_, b_, "J2"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("job J2 is not imported on this HSM for group " + b_)));
  EXPECT_THAT(GroupOfJob(*h_, "J-404"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("job J-404 is not imported")));
  EXPECT_EQ(Take(*h_), before);
  ASSERT_OK(ImportJob(*h_, pkg_b_));
  EXPECT_THAT(GroupOfJob(*h_, "J2"), StatusIs(absl::StatusCode::kInvalidArgument,
                                              HasSubstr("job J2 is imported for several groups")));
}

// A job row moved under another group's key is not that group's job.
TEST_F(JobKeyingTest, AJobRowUnderAnotherGroupsKeyIsRefused) {
  ASSERT_OK(ImportJob(*h_, pkg_a_));
  ASSERT_OK(h_->state().Update([&](store::Transaction& tx) -> absl::Status {
    auto row = tx.Get(internal::kJobNs, internal::JobKey(a_, "J2"));
    if (!row.ok()) return row.status();
    return tx.Put(internal::kJobNs, internal::JobKey(b_, "J2"), **row);
  }));
  EXPECT_THAT(Provisioner::Create(*h_, b_, "J2"),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("holds job row " + b_ + "/J2 with job J2 of group " + a_)));
  EXPECT_THAT(ListJobs(*h_), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("job row")));
}

}  // namespace
}  // namespace clade::hsm
