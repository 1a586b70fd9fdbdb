// The line run against real daemons in-process on loopback ports chosen at run time: a whole tray
// provisioned and verified, a rerun that skips done chips, a dead address skipped, failover when
// the member in use stops (its devices in flight sent again, the audits of both members
// reconciled with the line's records), and the refusal when no member holds the job. A daemon
// stops or starts when the run reaches a point (its progress, a line it says), never after a
// time; the core's logic alone, with exact counts, is tests/line/core_test.cpp.
#include "line/runner.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <condition_variable>
#include <functional>
#include <mutex>

#include "base/clock.h"
#include "hsm/audit.h"
#include "hsm/client_cert.h"
#include "hsm/job.h"
#include "line/core.h"
#include "line/device_db.h"
#include "line/reconcile.h"
#include "line/sim/virtual_chip.h"
#include "line/world.h"
#include "oem/oem.h"
#include "rpc/server.h"

namespace clade::hsm::testing {
namespace {

using ::clade::testing::StatusIs;
using ::testing::HasSubstr;

// The station's programmer, holding the programming of chip number `from` (counted from 1) and
// those after it until Open.
class HeldProgrammer : public line::Programmer {
 public:
  HeldProgrammer(std::unique_ptr<line::Programmer> inner, size_t from)
      : inner_(std::move(inner)), from_(from) {}
  absl::Status Program(const std::string& uid, const line::ProgramInput& input,
                       const line::ProgramContext& context) override {
    {
      std::unique_lock<std::mutex> l(mu_);
      if (++calls_ >= from_ && !cv_.wait_for(l, std::chrono::seconds(120), [&] { return open_; })) {
        ADD_FAILURE() << "the programming of " << uid << " was held and never let go";
      }
    }
    return inner_->Program(uid, input, context);
  }
  std::string Name() const override { return inner_->Name(); }
  void Open() {
    {
      std::lock_guard<std::mutex> l(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::unique_ptr<line::Programmer> inner_;
  const size_t from_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t calls_ = 0;
  bool open_ = false;
};

class LineRunTest : public LineWorld {
 protected:
  // The group of line/world.h and a tray of 40 chips.
  void SetUp() override {
    LineWorld::SetUp();
    ASSERT_OK(line::Tray::Make(Tray(), 40));
  }
  void TearDown() override {
    for (auto& [serial, d] : daemons_) {
      if (d) d->Shutdown(0);
    }
  }

  std::string Tray() const { return dir_.File("tray"); }
  std::string Serve(const std::string& serial) {
    hsms_[serial].reset();
    auto d = rpc::Daemon::Start(StateDir(serial), "127.0.0.1:0", log_);
    EXPECT_TRUE(d.ok()) << d.status();
    if (!d.ok()) return "";
    daemons_[serial] = *std::move(d);
    return daemons_[serial]->address();
  }
  line::LineOptions Options(std::vector<std::string> members) {
    line::LineOptions o;
    o.job_id = "J-1";
    o.members = std::move(members);
    o.credentials = {creds_.chain_pem, crypto::SecretBytes(creds_.key_pem.RevealSecret()),
                     creds_.root_pem};
    o.oem_root = oem_root_;
    o.tray_dir = Tray();
    o.parallel = 4;
    o.give_up_seconds = 0;
    o.observer = &said_;
    return o;
  }
  // Every chip of the tray verifies against the OEM root and the package the line kept.
  void ExpectTrayVerifies() {
    auto bytes = ReadFileBytes(Tray() + "/jobs/J-1.package", kMaxJobPackage);
    ASSERT_OK(bytes);
    line::ChipVerifyOptions v(SystemClock().Now());
    v.oem_root = &*oem_root_;
    auto digests = line::JobDigestsFromPackage(*bytes, *oem_root_);
    ASSERT_OK(digests);
    v.job = *digests;
    auto tray = line::Tray::Open(Tray());
    ASSERT_OK(tray);
    for (const auto& r : tray->Verify(v)) {
      EXPECT_TRUE(r.failures.empty()) << r.uid << ": " << r.failures.front();
    }
  }
  // The audit of a member, verified against the group, after its daemon stopped.
  AuditReport AuditOf(const std::string& serial) {
    if (daemons_[serial]) {
      daemons_[serial]->Shutdown(0);
      daemons_[serial].reset();
    }
    Hsm& h = Reopen(serial);
    auto exported = ExportAudit(h);
    EXPECT_TRUE(exported.ok()) << exported.status();
    auto report = VerifyAuditExport(*exported, group_ca_chain_, supplier_->root());
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : AuditReport{};
  }

  std::map<std::string, std::unique_ptr<rpc::Daemon>> daemons_;
  std::ostringstream log_;
  // The run's events, one a line; what the test does when the run has done `done` chips, or
  // says a line (both on the run's thread, where the run reached that point).
  struct Said : line::LineObserver {
    explicit Said(std::ostringstream& out) : out(out) {}
    void Say(const std::string& line) override {
      out << line << std::endl;
      if (on_say) on_say(line);
    }
    void Progress(const line::LineProgress& p, bool) override {
      if (on_done) on_done(p.done);
    }
    std::ostringstream& out;
    std::function<void(const std::string&)> on_say;
    std::function<void(size_t)> on_done;
  };
  std::ostringstream out_;
  Said said_{out_};
};

TEST_F(LineRunTest, ProvisionsEveryChipAndARerunSkipsThem) {
  std::string a = Serve("SN-A");
  auto sum = line::RunLine(Options({a}));
  ASSERT_OK(sum);
  EXPECT_EQ(sum->selected, 40u);
  EXPECT_EQ(sum->done, 40u) << out_.str();
  EXPECT_EQ(sum->failed, 0u);
  EXPECT_EQ(sum->per_member.at("1 (SN-A)"), 40u);
  ExpectTrayVerifies();

  auto again = line::RunLine(Options({a}));
  ASSERT_OK(again);
  EXPECT_EQ(again->already_done, 40u);
  EXPECT_EQ(again->done, 0u);
  EXPECT_THAT(out_.str(), HasSubstr("40 of 40 chips were done by an earlier run"));

  auto db = line::DeviceDb::Open(Tray() + "/line.db");
  ASSERT_OK(db);
  auto attempts = (*db)->Attempts("J-1");
  ASSERT_OK(attempts);
  EXPECT_EQ(attempts->size(), 40u);  // the rerun sent nothing
  auto report = line::Reconcile(**db, "J-1", {AuditOf("SN-A")});
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok()) << report->problems.front();
  EXPECT_EQ(report->done, 40u);
}

TEST_F(LineRunTest, SkipsAnAddressWhereNothingAnswersAndImportsTheJobWhereMissing) {
  std::string a = Serve("SN-A");
  std::string b = Serve("SN-B");
  // Port 1 on loopback: nothing listens there.
  auto o = Options({"127.0.0.1:1", a});
  o.devices = 10;
  auto first = line::RunLine(o);
  ASSERT_OK(first);
  EXPECT_EQ(first->done, 10u) << out_.str();
  EXPECT_THAT(out_.str(), HasSubstr("member at 127.0.0.1:1 does not answer"));
  // SN-A is gone and SN-B never held the job: the rerun takes the job from the package the first
  // run kept in the tray, and imports it on SN-B.
  daemons_["SN-A"]->Shutdown(0);
  auto rest = line::RunLine(Options({"127.0.0.1:1", b}));
  ASSERT_OK(rest);
  EXPECT_EQ(rest->already_done, 10u);
  EXPECT_EQ(rest->done, 30u) << out_.str();
  EXPECT_EQ(rest->per_member.at("1.1 (SN-B)"), 30u);
  EXPECT_THAT(out_.str(), HasSubstr("member 1.1 (SN-B) did not hold job J-1; imported it there"));
  ExpectTrayVerifies();
}

TEST_F(LineRunTest, TakesMembersInListOrderEvenWhenTheFirstLacksTheJob) {
  std::string a = Serve("SN-A");
  std::string b = Serve("SN-B");
  auto sum = line::RunLine(Options({b, a}));
  ASSERT_OK(sum);
  EXPECT_EQ(sum->per_member.at("1.1 (SN-B)"), 40u) << out_.str();
  EXPECT_THAT(out_.str(), HasSubstr("fetched from the member at " + a));
  EXPECT_THAT(out_.str(), HasSubstr("member 1.1 (SN-B) did not hold job J-1; imported it there"));
}

TEST_F(LineRunTest, RefusesASecondRunOnTheSameDatabase) {
  // The lock a running line holds, taken here by hand.
  std::string lock = Tray() + "/line.db.lock";
  int fd = ::open(lock.c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "4242\n", 5), 5);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  EXPECT_THAT(line::RunLine(Options({"127.0.0.1:1"})),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("another line run (pid 4242) is using")));
  ::close(fd);
}

TEST_F(LineRunTest, FailsOverWhenTheMemberInUseStopsAndReconcilesWithBothAudits) {
  std::string a = Serve("SN-A");
  std::string b = Serve("SN-B");
  // Stops SN-A (cancelling its calls in flight) once 10 chips are done.
  bool stopped = false;
  said_.on_done = [&](size_t done) {
    if (done >= 10 && !stopped) {
      stopped = true;
      daemons_["SN-A"]->Shutdown(0);
    }
  };
  auto o = Options({a, b});
  o.parallel = 2;
  auto sum = line::RunLine(o);
  said_.on_done = nullptr;
  ASSERT_OK(sum);
  EXPECT_EQ(sum->done, 40u) << out_.str();
  EXPECT_EQ(sum->failed, 0u);
  EXPECT_GE(sum->failovers, 1u);
  EXPECT_GE(sum->per_member.at("1 (SN-A)"), 10u);
  EXPECT_GE(sum->per_member.at("1.1 (SN-B)"), 1u);
  EXPECT_EQ(sum->per_member.at("1 (SN-A)") + sum->per_member.at("1.1 (SN-B)"), 40u);
  EXPECT_THAT(out_.str(), HasSubstr("stopped answering"));
  ExpectTrayVerifies();

  auto db = line::DeviceDb::Open(Tray() + "/line.db");
  ASSERT_OK(db);
  auto report = line::Reconcile(**db, "J-1", {AuditOf("SN-A"), AuditOf("SN-B")});
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok()) << report->problems.front();
  EXPECT_EQ(report->done, 40u);
  // Reconciliation needs both audits: with SN-B's alone, SN-B's chips are fine but SN-A's
  // certificates are on chips no audit names.
  auto partial = line::Reconcile(**db, "J-1", {AuditOf("SN-B")});
  ASSERT_OK(partial);
  EXPECT_FALSE(partial->ok());
}

TEST_F(LineRunTest, MovesBackToAnEarlierMemberWhenItAnswersAgain) {
  // SN-A's address is first in the list, but nothing serves there when the line starts.
  std::string a = Serve("SN-A");
  std::string b = Serve("SN-B");
  daemons_["SN-A"]->Shutdown(0);
  daemons_["SN-A"].reset();
  ASSERT_OK(line::Tray::Make(dir_.File("tray-200"), 200));
  // The job as a previous run kept it: SN-B, which lacks it, gets it from the line.
  ASSERT_OK(MakeDirs(dir_.File("tray-200") + "/jobs", 0700));
  ASSERT_OK(WriteFileAtomic(dir_.File("tray-200") + "/jobs/J-1.package", package_));
  // Once the line is under way on SN-B (5 chips done), SN-A serves again at its address; the
  // sixth chip is not programmed until the line has said it moves to SN-A, so the run cannot end
  // on SN-B before a probe finds SN-A.
  bool restarted = false;
  said_.on_done = [&](size_t done) {
    if (done < 5 || restarted) return;
    restarted = true;
    auto d = rpc::Daemon::Start(StateDir("SN-A"), a, log_);
    EXPECT_TRUE(d.ok()) << d.status();
    if (d.ok()) daemons_["SN-A"] = *std::move(d);
  };
  HeldProgrammer* held = nullptr;
  said_.on_say = [&](const std::string& line) {
    if (line.find("answers; moving to it") != std::string::npos && held) held->Open();
  };
  auto o = Options({a, b});
  o.tray_dir = dir_.File("tray-200");
  o.parallel = 1;
  o.probe_ms = 100;
  auto sum = line::RunLineWrapping(o, [&](std::unique_ptr<line::Programmer> p) {
    auto h = std::make_unique<HeldProgrammer>(std::move(p), 6);
    held = h.get();
    return std::unique_ptr<line::Programmer>(std::move(h));
  });
  said_.on_done = nullptr;
  said_.on_say = nullptr;
  ASSERT_OK(sum);
  EXPECT_EQ(sum->done, 200u) << out_.str();
  EXPECT_GE(sum->per_member["1.1 (SN-B)"], 5u) << out_.str();
  EXPECT_GE(sum->per_member["1 (SN-A)"], 1u) << out_.str();
  EXPECT_THAT(out_.str(), HasSubstr("member at " + a + " answers; moving to it"));
  EXPECT_EQ(sum->failovers, 0u);  // moving back is not a failover: nothing was lost
}

TEST_F(LineRunTest, RefusesWhenNoMemberHoldsTheJob) {
  std::string b = Serve("SN-B");
  EXPECT_THAT(line::RunLine(Options({b})),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no member of --hsm gave job J-1")));
}

TEST_F(LineRunTest, RefusesBadOptions) {
  EXPECT_THAT(line::RunLine(Options({"no-port"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not HOST:PORT")));
  auto o = Options({"127.0.0.1:1"});
  o.programmer = "jtag";
  EXPECT_THAT(line::RunLine(o), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("--programmer must be 'virtual'")));
  o = Options({"127.0.0.1:1"});
  o.devices = 41;
  EXPECT_THAT(line::RunLine(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("holds only 40 chips")));
}

}  // namespace
}  // namespace clade::hsm::testing
