// The run loop of the line (line/runner.h says what a run does): one Provision stream at a time to
// the member in use, failover with the devices in flight sent again, probing back to earlier
// members, resume from the record. It talks to the world only through line/seams.h and the
// programmer's Program; what to send and what an answer means are line/rules.h.
// Internal to src/line: line/setup.cpp builds it, tests/line/core_test.cpp drives it with fakes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "hsm/job.h"
#include "line/answer_check.h"
#include "line/events.h"
#include "line/programmer.h"
#include "line/rules.h"
#include "line/runner.h"
#include "line/seams.h"

namespace clade::line {

class ProgrammerPool;

// "1 device", "3 devices".
inline std::string Plural(size_t n, const std::string& noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

// What the core is given: the seams, and the checked options.
struct CoreParts {
  ChipSource* chips = nullptr;
  Programmer* programmer = nullptr;  // Program and Name only
  LineRecord* record = nullptr;
  MemberLinks* links = nullptr;
  LineClock* clock = nullptr;
  LineObserver* observer = nullptr;  // may be null
};

class LineCore {
 public:
  // `group`: the group of the line's client certificate.
  LineCore(const LineOptions& options, const CoreParts& parts, LineGroup group);
  ~LineCore();
  LineCore(const LineCore&) = delete;
  LineCore& operator=(const LineCore&) = delete;

  absl::StatusOr<LineSummary> Run();

 private:
  // The job as the line needs it: the package as a member holds it, and what it was checked to
  // hold (the chain certificates are checked against, the firmware and config every chip gets).
  struct Job {
    std::vector<uint8_t> package;
    hsm::VerifiedJobPackage verified;
    std::string product;
    bool hsm_mode = false;
  };
  struct Member {
    std::string address;
    std::unique_ptr<MemberLink> link;
    std::string serial;
    std::string member_id;
    std::string excluded;  // why this member is not used in this run ("" = usable)
    std::optional<hsm::VerifiedMember> verified;  // what its member certificate proved
    std::string Name() const {
      return member_id.empty() ? address : member_id + " (" + serial + ")";
    }
  };
  struct Pending {  // one device waiting to be sent
    std::string uid;
    ReissueChoice reissue = ReissueChoice::kByRule;
  };
  struct InFlight {
    std::string uid;
    int64_t attempt_id = 0;
    bool reissue = false;
    std::optional<crypto::PublicKey> chip_key;  // device key mode: the key the chip made
  };
  enum class SessionEnd { kDone, kFailover, kSwitch };

  // core_resume.cpp: which chips are left, from the record and the chips themselves.
  absl::Status SelectDevices();
  // core_members.cpp: the job and the members.
  absl::Status LearnJob(std::vector<uint8_t> package);
  absl::Status FindJob();
  // Makes `members_[i]` usable: connects, checks it is a member of the job's group, and imports
  // the job there if it lacks it. Errors: unreachable (Unavailable/DeadlineExceeded) or refused.
  absl::Status Activate(size_t i);
  // Picks the first usable member, starting at `from` and going round the list; waits and probes
  // while none answers, for up to give_up_seconds. Returns false when it gives up.
  bool PickMember(size_t from);
  // Probes the members before the one in use every probe_ms (of the clock) until StopProber.
  void Prober();
  void StopProber();
  bool ProberStopped();
  std::string PackagePath() const { return KeptJobPackagePath(o_); }
  // core.cpp: the stream.
  // Runs one Provision stream on the member in use until the work is done, the member stops
  // answering, or an earlier member answers again.
  absl::StatusOr<SessionEnd> Session(size_t* switch_to);
  void Fill(AnswerStream& stream);
  // False when the answer failed a check: the member in use is refused from then on.
  bool OnAnswer(const v1::ProvisionResponse& a);
  void OnProgrammed(const ProgrammedEvent& e);
  void PushEnd(AttemptEnd end);
  void Fail(const std::string& uid, const std::string& why);
  absl::Status FlushEnds(bool force);
  void Progress(bool final);
  void Say(const std::string& line) {
    if (observer_) observer_->Say(line);
  }
  bool LostHere(const std::string& uid, const std::string& serial) const;
  bool WorkLeft() const { return !queue_.empty() || !inflight_.empty() || programming_ > 0; }
  double SecondsSince(LineClock::TimePoint t) const;
  int64_t Now() const { return clock_.UnixNow(); }

  const LineOptions& o_;
  ChipSource& chips_;
  Programmer& programmer_;
  LineRecord& record_;
  MemberLinks& links_;
  LineClock& clock_;
  LineObserver* observer_;
  LineGroup group_;
  std::vector<Member> members_;
  size_t active_ = 0;
  bool have_active_ = false;
  std::optional<Job> job_;
  std::deque<Pending> queue_;
  std::map<uint64_t, InFlight> inflight_;
  uint64_t next_tag_ = 1;
  size_t programming_ = 0;
  // uid → HSM serials on which an attempt ended without an answer (the member may have issued).
  std::map<std::string, std::multiset<std::string>> lost_on_;
  std::vector<AttemptEnd> ends_;
  LineClock::TimePoint first_end_;
  absl::Status fatal_;  // what stops the run (the line's record failing)
  uint64_t gen_ = 0;    // the current stream's number
  EventQueue events_;
  std::unique_ptr<ProgrammerPool> pool_;
  std::atomic<size_t> probe_below_{0};  // the prober probes members [0, probe_below_)
  std::mutex prober_mu_;
  std::condition_variable prober_cv_;
  bool stop_prober_ = false;  // guarded by prober_mu_
  LineSummary sum_;
  LineClock::TimePoint start_;
  size_t total_ = 0;
};

// The DeviceDb as the core's record (line/setup.cpp wires it; tests/line/core_test.cpp too).
std::unique_ptr<LineRecord> RecordOf(DeviceDb& db);

// RunLine (line/runner.h) with the station's programmer handed to `wrap`, which returns the
// programmer the run uses: how tests/line/runner_test.cpp holds a run of real daemons at a point
// of its choosing, on a condition rather than a time.
using ProgrammerWrap = std::function<std::unique_ptr<Programmer>(std::unique_ptr<Programmer>)>;
absl::StatusOr<LineSummary> RunLineWrapping(const LineOptions& options, const ProgrammerWrap& wrap);

}  // namespace clade::line
