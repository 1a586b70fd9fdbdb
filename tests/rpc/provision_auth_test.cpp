// A Provision stream checks that the caller is a client of the job's group before it makes the
// job's Provisioner (which unwraps the device-issuing CA key and trial-issues): a line of another
// group served by the same HSM is refused by the group check itself, and learns nothing of the job
// from a Provisioner's own refusals.
#include "rpc/daemon_world.h"

namespace clade::hsm::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class ProvisionAuthTest : public DaemonWorld {};

TEST_F(ProvisionAuthTest, ALineOfAnotherGroupIsRefusedBeforeAProvisionerIsMade) {
  Hsm& a = Make("SN-A");
  Hsm& b = Make("SN-B");
  std::string acme = Found(a, "Acme");
  std::string other = Found(b, "Other");
  Enroll(b, a, other);  // SN-A serves both groups
  ASSERT_OK(ImportJob(a, PackageFor(a, acme, "J-1")));
  // Acme now trusts another OEM: making a Provisioner for J-1 fails, with the OEM check's own
  // message. A refusal that says so was made after the Provisioner was tried.
  auto later_oem = oem::Oem::Init(dir_.File("oem-later"), "Later Devices");
  ASSERT_OK(later_oem);
  ASSERT_OK(TrustOem(a, acme, later_oem->root()));
  ASSERT_OK_AND_ASSIGN(IssuedClient other_line, IssueClientCert(b, other, ClientRole::kLine));
  ASSERT_OK_AND_ASSIGN(IssuedClient acme_line, IssueClientCert(a, acme, ClientRole::kLine));
  Serve("SN-A");

  ASSERT_OK_AND_ASSIGN(auto refused,
                       Connect(ClientCredsOf(other_line))->Provision({Device("J-1", "DEV-1", 7)}));
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].tag(), 7u);
  // Jobs are keyed by group: only the caller's group is searched, so Acme's job does not exist
  // for it, and nothing of Acme's job (its CA key, its OEM root) is touched or shown.
  EXPECT_EQ(refused[0].code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_THAT(refused[0].error(),
              HasSubstr("job J-1 is not imported on this HSM for group " + other));
  EXPECT_THAT(refused[0].error(), Not(HasSubstr("OEM root")));
  EXPECT_TRUE(refused[0].device_cert().empty());
  // A job that does not exist is refused as such, for any caller.
  ASSERT_OK_AND_ASSIGN(auto missing,
                       Connect(ClientCredsOf(other_line))->Provision({Device("J-9", "DEV-1", 8)}));
  EXPECT_EQ(missing[0].code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_THAT(missing[0].error(), HasSubstr("job J-9 is not imported on this HSM"));

  // Acme's own line passes the group check and meets the Provisioner's refusal.
  ASSERT_OK_AND_ASSIGN(auto own,
                       Connect(ClientCredsOf(acme_line))->Provision({Device("J-1", "DEV-1", 9)}));
  EXPECT_EQ(own[0].code(), static_cast<int>(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(own[0].error(), HasSubstr("package is not signed by the OEM root group " + acme));

  Stop();
  EXPECT_THAT(log_.str(), HasSubstr("event=provision.refused job=J-1 uid=DEV-1 reason=\"job J-1 "
                                    "is not imported on this HSM for group " +
                                    other));
  // Nothing was provisioned, and the log of Acme holds no provisioning.
  Hsm& again = Reopen("SN-A");
  ASSERT_OK_AND_ASSIGN(std::vector<JobSummary> jobs, ListJobs(again));
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].devices_provisioned, 0u);
}

}  // namespace
}  // namespace clade::hsm::testing
