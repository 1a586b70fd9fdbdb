#include "line/runner.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "base/clock.h"
#include "base/files.h"
#include "clade/v1/job.pb.h"
#include "crypto/signature.h"
#include "crypto/x509.h"
#include "hsm/group_statement.h"
#include "hsm/job.h"
#include "hsm/member_cert.h"
#include "hsm/profile.h"
#include "line/answer_check.h"
#include "line/device_db.h"
#include "line/station.h"

namespace clade::line {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string Plural(size_t n, const std::string& noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

double SecondsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

// The job as the line needs it: the package as a member holds it, and what it was checked to
// hold (the chain certificates are checked against, the firmware and config every chip gets).
struct Job {
  std::vector<uint8_t> package;
  hsm::VerifiedJobPackage verified;
  std::string product;
  bool hsm_mode = false;
};

// What the reader threads, the prober and the programming workers tell the main loop.
struct Event {
  enum Kind { kAnswer, kStreamEnd, kProgrammed, kProbeAnswered } kind = kAnswer;
  uint64_t stream = 0;  // which stream (answers and ends of older streams are ignored)
  v1::ProvisionResponse answer;
  absl::Status status;  // kStreamEnd: how it ended; kProgrammed: the programming result
  std::string uid;      // kProgrammed
  int64_t attempt_id = 0;
  std::string cert_serial;
  size_t member = 0;       // kProbeAnswered: the index of the member that answered
  std::string member_key;  // kProgrammed: "1.2 (SN-0003)", the member that issued
};

class EventQueue {
 public:
  void Push(Event e) {
    {
      std::lock_guard<std::mutex> l(mu_);
      q_.push_back(std::move(e));
    }
    cv_.notify_one();
  }
  bool Pop(Event* e, milliseconds wait) {
    std::unique_lock<std::mutex> l(mu_);
    if (!cv_.wait_for(l, wait, [this] { return !q_.empty(); })) return false;
    *e = std::move(q_.front());
    q_.pop_front();
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> q_;
};

// A small pool programming chips in parallel; each result is an event.
class ProgrammerPool {
 public:
  struct Work {
    std::string uid;
    ProgramInput input;
    ProgramContext context;
    int64_t attempt_id = 0;
    std::string member_key;
  };
  ProgrammerPool(Programmer& programmer, EventQueue& events, int workers)
      : programmer_(programmer), events_(events) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { Loop(); });
  }
  ~ProgrammerPool() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void Submit(Work w) {
    {
      std::lock_guard<std::mutex> l(mu_);
      work_.push_back(std::move(w));
    }
    cv_.notify_one();
  }

 private:
  void Loop() {
    for (;;) {
      Work w;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [this] { return stop_ || !work_.empty(); });
        if (work_.empty()) return;
        w = std::move(work_.front());
        work_.pop_front();
      }
      Event e;
      e.kind = Event::kProgrammed;
      e.status = programmer_.Program(w.uid, w.input, w.context);
      e.uid = w.uid;
      e.attempt_id = w.attempt_id;
      e.cert_serial = w.context.cert_serial;
      e.member_key = w.member_key;
      events_.Push(std::move(e));
    }
  }

  Programmer& programmer_;
  EventQueue& events_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Work> work_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

struct Member {
  std::string address;
  std::unique_ptr<rpc::HsmClient> client;
  std::string serial;
  std::string member_id;
  std::string excluded;  // why this member is not used in this run ("" = usable)
  std::optional<hsm::VerifiedMember> verified;  // what its member certificate proved
  std::string Name() const { return member_id.empty() ? address : member_id + " (" + serial + ")"; }
};

// One device waiting to be sent.
struct Pending {
  std::string uid;
  // How the next send is made: 0 = by the rule (reissue when an earlier attempt to the same HSM
  // may have issued), +1 = reissue, -1 = no reissue (the member said nothing was issued before).
  int reissue_override = 0;
};

struct InFlight {
  std::string uid;
  int64_t attempt_id = 0;
  bool reissue = false;
  std::optional<crypto::PublicKey> chip_key;  // device key mode: the key the chip made
};

class Line {
 public:
  explicit Line(const LineOptions& o) : o_(o), out_(o.out ? *o.out : std::cout) {}
  ~Line() {
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }
  Line(const Line&) = delete;
  Line& operator=(const Line&) = delete;

  absl::StatusOr<LineSummary> Run();

 private:
  absl::Status Prepare();
  // One run per database: an exclusive flock on DB.lock, held until the process ends.
  absl::Status LockDatabase(const std::string& db_path);
  absl::Status SelectDevices();
  // Makes `members_[i]` usable: connects, checks it is a member of the job's group, and imports
  // the job there if it lacks it. Errors: unreachable (Unavailable/DeadlineExceeded) or refused.
  absl::Status Activate(size_t i);
  // Takes the job from its package (as a member holds it, or as kept in the tray).
  absl::Status LearnJob(std::vector<uint8_t> package);
  std::string PackagePath() const { return LineDir() + "/jobs/" + o_.job_id + ".package"; }
  // The tray, or without one the directory of the line database (--db is then required).
  std::string LineDir() const {
    if (!o_.tray_dir.empty()) return o_.tray_dir;
    std::string dir = std::filesystem::path(o_.db_path).parent_path().string();
    return dir.empty() ? "." : dir;
  }
  // Picks the first usable member, starting at `from` and going round the list; waits and probes
  // while none answers, for up to give_up_seconds. Returns false when it gives up.
  bool PickMember(size_t from);
  // Fetches the job package from the first member (in list order) that gives it.
  absl::Status FindJob();
  // Runs one Provision stream on the member in use until the work is done, the member stops
  // answering, or an earlier member answers again.
  enum class SessionEnd { kDone, kFailover, kSwitch };
  absl::StatusOr<SessionEnd> Session(size_t* switch_to);
  void Prober();
  void Fill(rpc::ProvisionStream& stream);
  void PushEnd(AttemptEnd end);
  void Fail(const std::string& uid, const std::string& why);
  // False when the answer failed a check: the member in use is refused from then on.
  bool OnAnswer(const v1::ProvisionResponse& a);
  void OnProgrammed(const Event& e);
  absl::Status FlushEnds(bool force);
  void Progress(bool final);
  void Say(const std::string& line) { out_ << line << std::endl; }
  bool WorkLeft() const { return !queue_.empty() || !inflight_.empty() || programming_ > 0; }
  int64_t Now() const { return NowUnix(); }

  const LineOptions& o_;
  std::ostream& out_;
  Station station_;  // where the chips come from, and what programs them
  std::unique_ptr<DeviceDb> db_;
  std::vector<Member> members_;
  size_t active_ = 0;
  bool have_active_ = false;
  std::optional<Job> job_;
  std::optional<LineGroup> group_;  // the group of the line's client certificate
  std::deque<Pending> queue_;
  std::map<uint64_t, InFlight> inflight_;
  uint64_t next_tag_ = 1;
  size_t programming_ = 0;
  // uid → HSM serials on which an attempt ended without an answer (the member may have issued).
  std::map<std::string, std::multiset<std::string>> lost_on_;
  std::vector<AttemptEnd> ends_;
  SteadyClock::time_point first_end_;
  absl::Status fatal_;  // what stops the run (the line database failing)
  uint64_t gen_ = 0;    // the current stream's number
  EventQueue events_;
  std::unique_ptr<ProgrammerPool> pool_;
  std::atomic<size_t> probe_below_{0};  // the prober probes members [0, probe_below_)
  std::atomic<bool> stop_prober_{false};
  LineSummary sum_;
  SteadyClock::time_point start_;
  SteadyClock::time_point last_progress_;
  size_t total_ = 0;
  bool bar_ = false;
  bool progress_on_ = true;
  int lock_fd_ = -1;
};

absl::Status Line::LockDatabase(const std::string& db_path) {
  std::string path = db_path + ".lock";
  ASSIGN_OR_RETURN(lock_fd_, OpenLockFile(path));  // never through a planted link
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    ssize_t n = ::pread(lock_fd_, buf, sizeof buf - 1, 0);
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "?";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    return absl::FailedPreconditionError("another line run (pid " + holder + ") is using " +
                                         db_path + "; one run per line database at a time");
  }
  // The lock goes with the process, however it ends; the pid is only for the message above.
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) != 0 || ::pwrite(lock_fd_, pid.data(), pid.size(), 0) < 0) {
    return absl::FailedPreconditionError("cannot write " + path + ": " + std::strerror(errno));
  }
  return absl::OkStatus();
}

absl::Status Line::Prepare() {
  if (o_.job_id.empty()) return absl::InvalidArgumentError("--job is required");
  if (o_.members.empty()) return absl::InvalidArgumentError("--hsm names no member");
  if (o_.parallel < 1 || o_.parallel > 256) {
    return absl::InvalidArgumentError("--parallel must be 1..256");
  }
  std::set<std::string> seen;
  for (const auto& m : o_.members) {
    if (m.empty() || m.rfind(':') == std::string::npos) {
      return absl::InvalidArgumentError("--hsm: '" + m + "' is not HOST:PORT");
    }
    if (!seen.insert(m).second) {
      return absl::InvalidArgumentError("--hsm names " + m + " twice");
    }
    Member mem;
    mem.address = m;
    members_.push_back(std::move(mem));
  }
  if (o_.tray_dir.empty() && o_.db_path.empty()) {
    return absl::InvalidArgumentError("without --tray, --db FILE is required (the line database)");
  }
  ASSIGN_OR_RETURN(station_,
                   OpenStation({o_.tray_dir, o_.chips, o_.programmer, LineDir() + "/exec-work",
                                o_.programmer_timeout_seconds}));
  auto group = LineGroupOfClient(o_.credentials.chain_pem, o_.credentials.root_pem);
  if (!group.ok()) return Annotate(group.status(), "the line's client certificate");
  group_ = *std::move(group);
  std::string db_path = o_.db_path.empty() ? LineDir() + "/line.db" : o_.db_path;
  RETURN_IF_ERROR(LockDatabase(db_path));
  ASSIGN_OR_RETURN(db_, DeviceDb::Open(db_path));
  switch (o_.progress) {
    case ProgressMode::kNone:
      progress_on_ = false;
      break;
    case ProgressMode::kBar:
      bar_ = true;
      break;
    case ProgressMode::kPlain:
      break;
    case ProgressMode::kAuto:
      bar_ = o_.err == &std::cerr && ::isatty(STDERR_FILENO);
      break;
  }
  return absl::OkStatus();
}

absl::Status Line::SelectDevices() {
  std::vector<std::string> uids = station_.chips->Uids();
  if (uids.empty()) return absl::NotFoundError("no chips in " + station_.chips->Where());
  if (o_.devices > 0) {
    if (o_.devices > uids.size()) {
      return absl::InvalidArgumentError("--devices " + std::to_string(o_.devices) + ": " +
                                        station_.chips->Where() + " holds only " +
                                        std::to_string(uids.size()) + " chips");
    }
    uids.resize(o_.devices);
  }
  sum_.selected = uids.size();
  total_ = uids.size();
  ASSIGN_OR_RETURN(size_t closed,
                   db_->CloseOpenAttempts(
                       o_.job_id, "the line stopped before the member's answer arrived", Now()));
  if (closed > 0) {
    Say("resuming: " + Plural(closed, "device") + " in flight when the line last stopped " +
        (closed == 1 ? "is" : "are") + " sent again");
  }
  ASSIGN_OR_RETURN(auto attempts, db_->Attempts(o_.job_id));
  for (const auto& a : attempts) {
    // Lost on the way, or answered and refused by the line's checks: the member may have issued.
    bool issued = a.outcome == AttemptOutcome::kRefused && !a.cert_serial.empty();
    if (a.outcome == AttemptOutcome::kLost || issued) lost_on_[a.uid].insert(a.member_serial);
  }
  if (PathExists(PackagePath())) {
    // Kept by an earlier run: members that lack the job can be given it even if none holds it.
    ASSIGN_OR_RETURN(auto kept, ReadFileBytes(PackagePath(), hsm::kMaxJobPackage));
    absl::Status s = LearnJob(std::move(kept));
    if (!s.ok()) return Annotate(s, PackagePath());
  }
  ASSIGN_OR_RETURN(auto rows, db_->Devices(o_.job_id));
  for (const auto& uid : uids) {
    auto it = rows.find(uid);
    if (it != rows.end() && it->second.status == DeviceStatus::kDone) {
      ++sum_.already_done;
      continue;
    }
    auto programmed = station_.chips->ProgrammedSerial(uid);
    if (!programmed.ok()) {
      std::string why = std::string(programmed.status().message());
      RETURN_IF_ERROR(db_->MarkFailed(o_.job_id, uid, why, Now()));
      sum_.failures.emplace_back(uid, why);
      ++sum_.failed;
      continue;
    }
    if (programmed->has_value()) {
      // Programmed and locked, but not recorded: the line stopped between the two.
      absl::Status s = db_->RecoverDone(o_.job_id, uid, **programmed, Now());
      if (s.ok()) {
        ++sum_.recovered;
      } else {
        std::string why = std::string(s.message());
        RETURN_IF_ERROR(db_->MarkFailed(o_.job_id, uid, why, Now()));
        sum_.failures.emplace_back(uid, why);
        ++sum_.failed;
      }
      continue;
    }
    queue_.push_back(Pending{uid, 0});
  }
  if (sum_.already_done > 0) {
    Say(std::to_string(sum_.already_done) + " of " + std::to_string(total_) +
        " chips were done by an earlier run; skipped");
  }
  if (sum_.recovered > 0) {
    Say(std::to_string(sum_.recovered) +
        " chips were found programmed but not recorded (the line stopped in between); recorded");
  }
  return absl::OkStatus();
}

absl::Status Line::LearnJob(std::vector<uint8_t> package) {
  if (!o_.oem_root) {
    return absl::FailedPreconditionError(
        "no OEM root to check job package " + o_.job_id +
        " against: give --oem-root PEM, or a client directory holding oem-root.crt (`clade group "
        "issue-client` writes it when the group accepts an OEM root)");
  }
  Job job;
  job.package = std::move(package);
  ASSIGN_OR_RETURN(job.verified,
                   hsm::VerifyJobPackage(job.package, *o_.oem_root, group_->group_id, Now()));
  if (job.verified.job_id != o_.job_id) {
    return absl::InvalidArgumentError("the package is for job " + job.verified.job_id + ", not " +
                                      o_.job_id);
  }
  job.product = job.verified.profile.product;
  job.hsm_mode = job.verified.profile.key_mode == hsm::DeviceKeyMode::kHsm;
  job_ = std::move(job);
  return absl::OkStatus();
}

absl::Status Line::Activate(size_t i) {
  Member& m = members_[i];
  m.client.reset();
  ASSIGN_OR_RETURN(m.client, rpc::HsmClient::Connect(m.address, o_.credentials));
  auto not_member = [&](const absl::Status& why) {
    return absl::PermissionDeniedError("member at " + m.address + " is not a member of group " +
                                       group_->group_id + ": " + std::string(why.message()));
  };
  std::string server_pem;
  auto st = m.client->Status(5, &server_pem);
  if (absl::IsPermissionDenied(st.status()) || absl::IsUnauthenticated(st.status())) {
    return not_member(st.status());
  }
  if (!st.ok()) return st.status();
  if (st->state() != "serving") {
    return absl::UnavailableError("the member at " + m.address + " is " + st->state());
  }
  auto server_cert = crypto::Certificate::FromPem(server_pem);
  if (!server_cert.ok()) return not_member(server_cert.status());
  auto member =
      CheckServerIsMember(*group_, *server_cert, crypto::AsBytes(st->member_cert()), Now());
  if (!member.ok()) return not_member(member.status());
  // The newest group statement this line has seen (every call keeps it), so that a revoked member
  // that has not heard of its revocation is not believed either.
  if (!o_.credentials.statement_file.empty()) {
    auto held = ReadFileBytes(o_.credentials.statement_file, hsm::kMaxStatementSize);
    if (!held.ok() && !absl::IsNotFound(held.status())) return held.status();
    if (held.ok()) {
      absl::Status revoked = CheckMemberNotRevoked(*group_, *member, *held, Now());
      if (!revoked.ok()) return not_member(revoked);
    }
  }
  m.serial = member->hsm_serial;
  m.member_id = member->member_id;
  m.verified = *std::move(member);
  auto got = m.client->GetJob(o_.job_id);
  if (!got.ok() && absl::IsNotFound(got.status())) {
    v1::ImportJobRequest req;
    req.set_package(std::string(job_->package.begin(), job_->package.end()));
    ASSIGN_OR_RETURN(auto imported, m.client->ImportJob(req));
    Say("member " + m.Name() + " did not hold job " + o_.job_id + "; imported it there");
  } else if (!got.ok()) {
    return got.status();
  }
  return absl::OkStatus();
}

absl::Status Line::FindJob() {
  std::string why_not;
  for (const Member& m : members_) {
    auto client = rpc::HsmClient::Connect(m.address, o_.credentials);
    absl::StatusOr<v1::GetJobResponse> got =
        client.ok() ? (*client)->GetJob(o_.job_id) : client.status();
    if (!got.ok()) {
      why_not += "\n  " + m.address + ": " + std::string(got.status().message());
      continue;
    }
    absl::Status learned =
        LearnJob(std::vector<uint8_t>(got->package().begin(), got->package().end()));
    if (absl::IsFailedPrecondition(learned)) return learned;  // no OEM root to check any against
    if (!learned.ok()) {
      // A member that gives a package failing the checks is not asked again for it.
      why_not += "\n  " + m.address + ": its package is refused: " + std::string(learned.message());
      continue;
    }
    RETURN_IF_ERROR(MakeDirs(LineDir() + "/jobs", 0700));
    RETURN_IF_ERROR(WriteFileAtomic(PackagePath(), job_->package));
    Say("job " + o_.job_id + " (" + job_->product + ", " + (job_->hsm_mode ? "hsm" : "device") +
        " key mode) fetched from the member at " + m.address + "; kept as " + PackagePath());
    return absl::OkStatus();
  }
  return absl::NotFoundError("no member of --hsm gave job " + o_.job_id +
                             " (import it on one member: `clade hsm call import-job`):" + why_not);
}

bool Line::PickMember(size_t from) {
  auto give_up = SteadyClock::now() + std::chrono::seconds(o_.give_up_seconds);
  bool said_waiting = false;
  for (;;) {
    size_t usable = 0;
    for (size_t k = 0; k < members_.size(); ++k) {
      size_t i = (from + k) % members_.size();
      if (!members_[i].excluded.empty()) continue;
      ++usable;
      absl::Status s = Activate(i);
      if (s.ok()) {
        active_ = i;
        have_active_ = true;
        probe_below_ = i;
        Say("member " + members_[i].Name() + " at " + members_[i].address + " in use");
        return true;
      }
      if (absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsCancelled(s) ||
          absl::IsUnknown(s)) {
        Say("member at " + members_[i].address + " does not answer: " + std::string(s.message()));
      } else {
        members_[i].excluded = std::string(s.message());
        Say("member at " + members_[i].address + " is not used: " + members_[i].excluded);
      }
    }
    if (usable == 0 || SteadyClock::now() >= give_up) return false;
    if (!said_waiting) {
      std::string every = o_.probe_ms % 1000 == 0 ? std::to_string(o_.probe_ms / 1000) + " s"
                                                  : std::to_string(o_.probe_ms) + " ms";
      Say("no member answers; probing every " + every + " for up to " +
          std::to_string(o_.give_up_seconds) + " s");
      said_waiting = true;
    }
    std::this_thread::sleep_for(milliseconds(o_.probe_ms));
    from = 0;
  }
}

void Line::Fill(rpc::ProvisionStream& stream) {
  // Refilled in batches of about half the window, so the line's database records a batch of
  // sends in one transaction rather than one per device.
  const size_t window = static_cast<size_t>(o_.parallel) * 2;
  if (queue_.empty()) return;
  if (!inflight_.empty() && inflight_.size() + programming_ > window / 2) return;
  Member& m = members_[active_];
  std::vector<Pending> batch;
  while (!queue_.empty() && inflight_.size() + programming_ + batch.size() < window) {
    batch.push_back(queue_.front());
    queue_.pop_front();
  }
  std::vector<DeviceDb::Send> sends;
  std::vector<v1::ProvisionRequest> reqs;
  std::vector<std::optional<crypto::PublicKey>> keys;
  for (const auto& p : batch) {
    v1::ProvisionRequest req;
    req.set_job_id(o_.job_id);
    req.set_uid(p.uid);
    bool reissue =
        p.reissue_override > 0 || (p.reissue_override == 0 && lost_on_.count(p.uid) > 0 &&
                                   lost_on_[p.uid].count(m.serial) > 0);
    req.set_reissue(reissue);
    auto pem = station_.chips->RequestPem(p.uid, job_->hsm_mode);
    std::optional<crypto::PublicKey> chip_key;
    if (pem.ok() && !job_->hsm_mode) {
      auto key = crypto::PublicKey::FromPem(*pem);
      if (key.ok()) {
        chip_key = *std::move(key);
      } else {
        pem = Annotate(key.status(), "the public key of chip " + p.uid);
      }
    }
    if (!pem.ok()) {
      std::string why = std::string(pem.status().message());
      if (auto s = db_->MarkFailed(o_.job_id, p.uid, why, Now()); !s.ok()) fatal_ = s;
      Fail(p.uid, why);
      continue;
    }
    if (job_->hsm_mode) {
      req.set_transport_cert_pem(*pem);
    } else {
      req.set_public_key_pem(*pem);
    }
    sends.push_back(DeviceDb::Send{p.uid, reissue});
    reqs.push_back(std::move(req));
    keys.push_back(std::move(chip_key));
  }
  if (reqs.empty()) return;
  auto ids = db_->BeginAttempts(o_.job_id, sends, m.member_id, m.serial, m.address, Now());
  if (!ids.ok()) {
    // Nothing was sent: the devices go back to the queue and the run stops on this error.
    for (auto it = batch.rbegin(); it != batch.rend(); ++it) queue_.push_front(*it);
    fatal_ = ids.status();
    return;
  }
  for (size_t k = 0; k < reqs.size(); ++k) {
    uint64_t tag = next_tag_++;
    reqs[k].set_tag(tag);
    inflight_[tag] = InFlight{reqs[k].uid(), (*ids)[k], reqs[k].reissue(), std::move(keys[k])};
  }
  // A failed write means the stream is broken; the reader reports its end and every device in
  // flight, those not written included, is sent again elsewhere.
  for (const auto& req : reqs) {
    if (!stream.Write(req)) break;
  }
}

void Line::PushEnd(AttemptEnd end) {
  if (ends_.empty()) first_end_ = SteadyClock::now();
  ends_.push_back(std::move(end));
}

void Line::Fail(const std::string& uid, const std::string& why) {
  sum_.failures.emplace_back(uid, why);
  ++sum_.failed;
}

absl::Status Line::FlushEnds(bool force) {
  if (ends_.empty()) return absl::OkStatus();
  // The exec programmer is slow anyway and cannot tell a programmed chip on a rerun: each
  // outcome is recorded at once. Virtual chips carry their lock bit, so outcomes are batched.
  bool now = force || ends_.size() >= 64 || station_.programmer->Name() == "exec" ||
             SecondsSince(first_end_) > 0.05;
  if (!now) return absl::OkStatus();
  absl::Status s = db_->FinishAttempts(ends_, Now());
  ends_.clear();
  if (!s.ok() && fatal_.ok()) fatal_ = s;
  return s;
}

bool Line::OnAnswer(const v1::ProvisionResponse& a) {
  auto it = inflight_.find(a.tag());
  if (it == inflight_.end()) {
    Say("warning: member answered tag " + std::to_string(a.tag()) + " (uid " + a.uid() +
        "), which is not in flight; ignored");
    return true;
  }
  InFlight f = it->second;
  inflight_.erase(it);
  Member& m = members_[active_];
  auto end = [&](AttemptOutcome outcome, const std::string& err, DeviceStatus st) {
    AttemptEnd e;
    e.attempt_id = f.attempt_id;
    e.outcome = outcome;
    e.error = err;
    e.device_status = st;
    PushEnd(std::move(e));
  };
  if (!a.error().empty() || a.uid() != f.uid) {
    std::string err = a.error().empty()
                          ? "member " + m.Name() + " answered for uid " + a.uid() + ", not " + f.uid
                          : a.error();
    bool lost_here = lost_on_.count(f.uid) > 0 && lost_on_[f.uid].count(m.serial) > 0;
    if (a.code() == static_cast<int>(absl::StatusCode::kAlreadyExists) && !f.reissue && lost_here) {
      // An earlier attempt on this HSM did issue before its answer was lost: issue again.
      end(AttemptOutcome::kRefused, err, DeviceStatus::kPending);
      queue_.push_front(Pending{f.uid, +1});
      return true;
    }
    if (a.code() == static_cast<int>(absl::StatusCode::kFailedPrecondition) && f.reissue) {
      // The earlier attempt never reached the member's records: a first issue, then.
      end(AttemptOutcome::kRefused, err, DeviceStatus::kPending);
      queue_.push_front(Pending{f.uid, -1});
      return true;
    }
    end(AttemptOutcome::kRefused, err, DeviceStatus::kFailed);
    Fail(f.uid, "refused by member " + m.Name() + ": " + err);
    return true;
  }
  absl::Status checked = CheckAnswer(
      job_->verified, *m.verified, AskedDevice{f.uid, f.chip_key},
      DeviceAnswer{crypto::AsBytes(a.device_cert()), a.cert_serial(), crypto::AsBytes(a.record())},
      Now());
  if (!checked.ok()) {
    std::string why = "the answer of member " + m.Name() + " for " + f.uid +
                      " is refused: " + std::string(checked.message());
    AttemptEnd e;
    e.attempt_id = f.attempt_id;
    e.outcome = AttemptOutcome::kRefused;
    e.cert_serial = a.cert_serial();  // the member did issue: a rerun there is a reissue
    e.error = why;
    e.device_status = DeviceStatus::kFailed;
    PushEnd(std::move(e));
    lost_on_[f.uid].insert(m.serial);
    Fail(f.uid, why);
    m.excluded = why;
    return false;
  }
  ProgramInput in;
  in.device_cert_der.assign(a.device_cert().begin(), a.device_cert().end());
  in.chain = job_->verified.device_ca_chain;  // the package's chain, not one the member sent
  in.key_envelope.assign(a.key_envelope().begin(), a.key_envelope().end());
  in.firmware = job_->verified.firmware;
  in.config = job_->verified.config;
  ProgrammerPool::Work w;
  w.uid = f.uid;
  w.input = std::move(in);
  w.context.job_id = o_.job_id;
  w.context.member_id = m.member_id;
  w.context.cert_serial = a.cert_serial();
  w.context.record.assign(a.record().begin(), a.record().end());
  w.attempt_id = f.attempt_id;
  w.member_key = m.member_id + " (" + m.serial + ")";
  ++programming_;
  pool_->Submit(std::move(w));
  return true;
}

void Line::OnProgrammed(const Event& e) {
  --programming_;
  AttemptEnd end;
  end.attempt_id = e.attempt_id;
  end.cert_serial = e.cert_serial;
  if (e.status.ok()) {
    end.outcome = AttemptOutcome::kDelivered;
    end.device_status = DeviceStatus::kDone;
    ++sum_.done;
    ++sum_.per_member[e.member_key];
  } else {
    end.outcome = AttemptOutcome::kProgramFailed;
    end.error = std::string(e.status.message());
    end.device_status = DeviceStatus::kFailed;
    Fail(e.uid, end.error);
  }
  PushEnd(std::move(end));
}

absl::StatusOr<Line::SessionEnd> Line::Session(size_t* switch_to) {
  Member& m = members_[active_];
  auto opened = m.client->OpenProvisionStream();
  if (!opened.ok()) {
    Say("member " + m.Name() + " at " + m.address +
        " stopped answering: " + std::string(opened.status().message()));
    ++sum_.failovers;
    return SessionEnd::kFailover;
  }
  std::shared_ptr<rpc::ProvisionStream> stream(std::move(*opened));
  const uint64_t gen = ++gen_;
  std::thread reader([this, stream, gen] {
    v1::ProvisionResponse r;
    while (stream->Read(&r)) {
      Event e;
      e.kind = Event::kAnswer;
      e.stream = gen;
      e.answer = std::move(r);
      events_.Push(std::move(e));
      r = v1::ProvisionResponse();
    }
    Event e;
    e.kind = Event::kStreamEnd;
    e.stream = gen;
    e.status = stream->Finish();
    events_.Push(std::move(e));
  });
  bool writes_done = false, ended = false, cancelled = false;
  absl::Status end_status;
  std::optional<size_t> target;
  auto last_answer = SteadyClock::now();
  while (!ended) {
    if (!writes_done && !target && fatal_.ok() && m.excluded.empty()) Fill(*stream);
    bool nothing_to_send =
        queue_.empty() || target.has_value() || !fatal_.ok() || !m.excluded.empty();
    if (!writes_done && inflight_.empty() && nothing_to_send) {
      stream->WritesDone();
      writes_done = true;
    }
    Event e;
    if (events_.Pop(&e, milliseconds(50))) {
      switch (e.kind) {
        case Event::kAnswer:
          // A member refused once is believed no more: its later answers stay in flight and
          // are sent again to the next member.
          if (e.stream == gen && m.excluded.empty()) {
            last_answer = SteadyClock::now();
            if (!OnAnswer(e.answer) && !cancelled) {
              stream->Cancel();
              cancelled = true;
            }
          }
          break;
        case Event::kStreamEnd:
          if (e.stream == gen) {
            ended = true;
            end_status = e.status;
          }
          break;
        case Event::kProgrammed:
          OnProgrammed(e);
          break;
        case Event::kProbeAnswered:
          if (!target && e.member < active_ && members_[e.member].excluded.empty() &&
              !queue_.empty()) {
            target = e.member;
            Say("member at " + members_[e.member].address +
                " answers; moving to it (earlier in --hsm) once the devices in flight are "
                "answered");
          }
          break;
      }
    }
    if (inflight_.empty()) last_answer = SteadyClock::now();
    if (!cancelled && SecondsSince(last_answer) > o_.answer_timeout_seconds) {
      stream->Cancel();
      cancelled = true;
    }
    (void)FlushEnds(false);
    Progress(false);
  }
  reader.join();
  if (!inflight_.empty() || (!queue_.empty() && !target && fatal_.ok())) {
    // A member whose answer failed the line's checks is not used again in this run.
    std::string stopped = m.excluded.empty() ? "stopped answering" : "is not used any more";
    std::string why = !m.excluded.empty() ? m.excluded
                      : cancelled
                          ? "no answer for " + std::to_string(o_.answer_timeout_seconds) + " s"
                      : end_status.ok() ? "the stream ended"
                                        : std::string(end_status.message());
    size_t n = inflight_.size();
    // Devices in flight go back to the front of the queue, in the order they were sent.
    std::vector<InFlight> back;
    for (auto& [tag, f] : inflight_) back.push_back(f);
    for (auto it = back.rbegin(); it != back.rend(); ++it) {
      AttemptEnd end;
      end.attempt_id = it->attempt_id;
      end.outcome = AttemptOutcome::kLost;
      end.error = "member " + m.Name() + " " + stopped + ": " + why;
      end.device_status = DeviceStatus::kPending;
      PushEnd(std::move(end));
      lost_on_[it->uid].insert(m.serial);
      queue_.push_front(Pending{it->uid, 0});
    }
    inflight_.clear();
    sum_.resent += n;
    ++sum_.failovers;
    Say("member " + m.Name() + " at " + m.address + " " + stopped + " (" + why + "); " +
        Plural(n, "device") + " in flight " + (n == 1 ? "is" : "are") + " sent again");
    (void)FlushEnds(true);
    m.client.reset();
    return SessionEnd::kFailover;
  }
  if (target) {
    *switch_to = *target;
    return SessionEnd::kSwitch;
  }
  return SessionEnd::kDone;
}

void Line::Prober() {
  while (!stop_prober_) {
    for (int waited = 0; waited < o_.probe_ms && !stop_prober_; waited += 50) {
      std::this_thread::sleep_for(milliseconds(50));
    }
    size_t below = probe_below_;
    for (size_t i = 0; i < below && !stop_prober_; ++i) {
      auto client = rpc::HsmClient::Connect(members_[i].address, o_.credentials);
      if (!client.ok()) continue;
      auto st = (*client)->Status(2);
      if (st.ok() && st->state() == "serving") {
        Event e;
        e.kind = Event::kProbeAnswered;
        e.member = i;
        events_.Push(std::move(e));
        break;
      }
    }
  }
}

void Line::Progress(bool final) {
  if (!progress_on_) return;
  double interval = bar_ ? 0.2 : 2.0;
  if (!final && SecondsSince(last_progress_) < interval) return;
  last_progress_ = SteadyClock::now();
  std::ostream& err = o_.err ? *o_.err : std::cerr;
  size_t done_all = sum_.already_done + sum_.recovered + sum_.done;
  double elapsed = SecondsSince(start_);
  double rate = elapsed > 0 ? sum_.done / elapsed : 0;
  size_t left = total_ - std::min(total_, done_all + sum_.failed);
  int pct = total_ ? static_cast<int>(100.0 * done_all / total_) : 100;
  std::ostringstream eta;
  if (rate > 0 && left > 0) {
    int s = static_cast<int>(left / rate + 0.5);
    eta << " ETA " << s / 60 << ":" << std::setw(2) << std::setfill('0') << s % 60;
  }
  std::string member = have_active_ ? members_[active_].member_id : "-";
  std::ostringstream line;
  line << done_all << "/" << total_ << " " << pct << "% " << std::fixed << std::setprecision(0)
       << rate << "/s" << eta.str() << " member " << member;
  if (sum_.failed > 0) line << " failed " << sum_.failed;
  if (bar_) {
    const int width = 30;
    int filled = total_ ? static_cast<int>(width * done_all / total_) : width;
    err << "\r[" << std::string(filled, '#') << std::string(width - filled, '.') << "] "
        << line.str() << "   " << (final ? "\n" : "") << std::flush;
  } else {
    err << "progress " << line.str() << std::endl;
  }
}

absl::StatusOr<LineSummary> Line::Run() {
  start_ = SteadyClock::now();
  last_progress_ = start_;
  RETURN_IF_ERROR(Prepare());
  RETURN_IF_ERROR(SelectDevices());
  Say("line: job " + o_.job_id + ", " + std::to_string(total_) + " chips of " +
      station_.chips->Where() + ", " + std::to_string(queue_.size()) +
      " to provision; programmer " + station_.programmer->Name() + ", " +
      std::to_string(o_.parallel) + " in parallel");
  if (queue_.empty()) {
    sum_.seconds = SecondsSince(start_);
    return sum_;
  }
  if (!job_) RETURN_IF_ERROR(FindJob());
  pool_ = std::make_unique<ProgrammerPool>(*station_.programmer, events_, o_.parallel);
  std::thread prober([this] { Prober(); });
  size_t from = 0;
  absl::Status stopped;
  while (!queue_.empty() && fatal_.ok()) {
    if (!PickMember(from)) {
      std::string refusals;
      bool all_refused = true;
      for (const Member& m : members_) {
        if (m.excluded.empty())
          all_refused = false;
        else
          refusals += "\n  " + m.address + ": " + m.excluded;
      }
      if (all_refused) {
        stopped = absl::PermissionDeniedError("no member of --hsm can be used:" + refusals);
      } else {
        Say("no member answers; stopping with " + Plural(queue_.size(), "device") +
            " not provisioned (a rerun with the same database resumes)");
      }
      break;
    }
    size_t target = 0;
    auto end = Session(&target);
    if (!end.ok()) {
      fatal_ = end.status();
      break;
    }
    if (*end == SessionEnd::kFailover) {
      from = (active_ + 1) % members_.size();
      have_active_ = false;
    } else if (*end == SessionEnd::kSwitch) {
      from = target;
      have_active_ = false;
    }
  }
  // Chips still being programmed finish before the run ends.
  while (programming_ > 0) {
    Event e;
    if (events_.Pop(&e, milliseconds(100)) && e.kind == Event::kProgrammed) OnProgrammed(e);
    (void)FlushEnds(false);
  }
  (void)FlushEnds(true);
  stop_prober_ = true;
  prober.join();
  pool_.reset();
  if (!stopped.ok() && sum_.done == 0 && sum_.failed == 0) return stopped;
  if (!fatal_.ok()) return Annotate(fatal_, "the line database");
  sum_.pending = queue_.size();
  Progress(true);
  sum_.seconds = SecondsSince(start_);
  return sum_;
}

}  // namespace

absl::StatusOr<LineSummary> RunLine(const LineOptions& options) {
  Line line(options);
  return line.Run();
}

void PrintSummary(const LineSummary& s, std::ostream& out) {
  out << "\nline summary\n";
  out << "  chips selected     " << s.selected << "\n";
  out << "  done by this run   " << s.done;
  if (s.already_done > 0) out << " (and " << s.already_done << " done by an earlier run)";
  out << "\n";
  if (s.recovered > 0)
    out << "  recovered          " << s.recovered << " (programmed, not recorded)\n";
  out << "  failed             " << s.failed << "\n";
  if (s.pending > 0) out << "  not provisioned    " << s.pending << " (no member answered)\n";
  for (const auto& [member, n] : s.per_member) {
    out << "  member " << std::left << std::setw(22) << member << std::right << n << "\n";
  }
  out << "  failovers          " << s.failovers;
  if (s.resent > 0) out << " (" << s.resent << " devices in flight sent again)";
  out << "\n";
  out << "  time               " << std::fixed << std::setprecision(1) << s.seconds << " s";
  if (s.seconds > 0 && s.done > 0) {
    out << " (" << std::setprecision(0) << s.done / s.seconds << " devices/s)";
  }
  out << "\n";
  if (!s.failures.empty()) {
    out << "failures:\n";
    size_t shown = 0;
    for (const auto& [uid, why] : s.failures) {
      if (++shown > 20) {
        out << "  … and " << s.failures.size() - 20 << " more (clade line status)\n";
        break;
      }
      out << "  " << uid << ": " << why << "\n";
    }
  }
}

}  // namespace clade::line
