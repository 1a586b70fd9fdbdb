// Messages as large as Clade documents them cross the wire (src/rpc/limits.h): gRPC's own 4 MiB
// default would refuse an audit export of 50,000 entries and a job package carrying 5 MiB of
// firmware. The tests check the sizes are past that default, so they fail on a 4 MiB limit.
#include <type_traits>

#include "crypto/random.h"
#include "hsm/audit.h"
#include "rpc/daemon_world.h"
#include "rpc/limits.h"

namespace clade::hsm::testing {
namespace {

using ::testing::Gt;

constexpr size_t kGrpcDefaultLimit = 4 * 1024 * 1024;

class SizesTest : public DaemonWorld {};

TEST_F(SizesTest, ExportsAnAuditOf50000EntriesOnline) {
  constexpr int kEntries = 50000;
  Hsm& a = Make("SN-A");
  std::string gid = Found(a, "Acme");
  std::string member = MemberIdIn(a, gid);
  ASSERT_OK_AND_ASSIGN(IssuedClient op, IssueClientCert(a, gid, ClientRole::kOperator));
  ASSERT_OK_AND_ASSIGN(GroupExport gx, ExportGroup(a, gid));
  ASSERT_OK_AND_ASSIGN(crypto::PrivateKey identity_key, a.IdentityKey());
  // One transaction: what 50,000 devices provisioned would leave in the log, in a second.
  ASSERT_OK(a.state().Update([&](store::Transaction& tx) -> absl::Status {
    for (int i = 0; i < kEntries; ++i) {
      RETURN_IF_ERROR(internal::AppendAudit(
          tx, identity_key,
          AuditEvent{gid, member, audit_op::kProvision, "J-1 DEV-" + std::to_string(i)}, t0_));
    }
    return absl::OkStatus();
  }));
  Serve("SN-A");

  ASSERT_OK_AND_ASSIGN(v1::ExportAuditResponse exp, Connect(ClientCredsOf(op))->ExportAudit());
  EXPECT_THAT(exp.export_message().size(), Gt(kGrpcDefaultLimit));
  ASSERT_LE(exp.export_message().size(), kMaxAuditExport);
  ASSERT_OK_AND_ASSIGN(AuditReport report, VerifyAuditExport(AsSpan(exp.export_message()),
                                                             gx.group_ca_chain, supplier_->root()));
  EXPECT_EQ(report.hsm_serial, "SN-A");
  EXPECT_EQ(report.counts[member][audit_op::kProvision], static_cast<uint64_t>(kEntries));
  EXPECT_GE(report.entries, static_cast<uint64_t>(kEntries));
  EXPECT_EQ(report.events.back().subject, "J-1 DEV-" + std::to_string(kEntries - 1));
}

TEST_F(SizesTest, ImportsAndFetchesAJobWith5MiBOfFirmwareOnline) {
  Hsm& a = Make("SN-A");
  std::string gid = Found(a, "Acme");
  ASSERT_OK_AND_ASSIGN(IssuedClient op, IssueClientCert(a, gid, ClientRole::kOperator));
  ASSERT_OK_AND_ASSIGN(IssuedClient line, IssueClientCert(a, gid, ClientRole::kLine));
  std::vector<uint8_t> firmware = crypto::RandomBytes(5 * 1024 * 1024);
  std::vector<uint8_t> package = PackageFor(a, gid, "J-BIG", firmware);
  ASSERT_THAT(package.size(), Gt(kGrpcDefaultLimit));
  Serve("SN-A");

  v1::ImportJobRequest imp;
  imp.set_package(AsString(package));
  ASSERT_OK_AND_ASSIGN(v1::ImportJobResponse imported, Connect(ClientCredsOf(op))->ImportJob(imp));
  EXPECT_EQ(imported.job_id(), "J-BIG");
  auto as_line = Connect(ClientCredsOf(line));
  ASSERT_OK_AND_ASSIGN(v1::GetJobResponse job, as_line->GetJob("J-BIG"));
  EXPECT_EQ(job.package(), AsString(package));
  // And the job provisions: the member holds the whole package.
  ASSERT_OK_AND_ASSIGN(std::vector<v1::ProvisionResponse> answers,
                       as_line->Provision({Device("J-BIG", "DEV-1", 1)}));
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].code(), 0) << answers[0].error();
  Stop();
  Hsm& again = Reopen("SN-A");
  ASSERT_OK_AND_ASSIGN(std::vector<JobSummary> jobs, ListJobs(again));
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_TRUE(jobs[0].has_firmware);
  EXPECT_EQ(jobs[0].devices_provisioned, 1u);
}

// The client's key is a secret: credentials move, and are never copied.
static_assert(!std::is_copy_constructible_v<rpc::ClientCredentials>);
static_assert(std::is_nothrow_move_constructible_v<rpc::ClientCredentials>);

}  // namespace
}  // namespace clade::hsm::testing
