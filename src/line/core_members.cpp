// LineCore: the job package and the members (which to use, whether to believe them, probing).
#include <chrono>

#include "base/files.h"
#include "crypto/x509.h"
#include "hsm/group_statement.h"
#include "hsm/job.h"
#include "hsm/member_cert.h"
#include "hsm/profile.h"
#include "line/core.h"

namespace clade::line {

using std::chrono::milliseconds;

absl::Status LineCore::LearnJob(std::vector<uint8_t> package) {
  if (!o_.oem_root) {
    return absl::FailedPreconditionError(
        "no OEM root to check job package " + o_.job_id +
        " against: give --oem-root PEM, or a client directory holding oem-root.crt (`clade group "
        "issue-client` writes it when the group accepts an OEM root)");
  }
  Job job;
  job.package = std::move(package);
  ASSIGN_OR_RETURN(job.verified, hsm::VerifyJobPackage(job.package, *o_.oem_root, group_.group_id,
                                                       FixedClock(Now())));
  if (job.verified.job_id != o_.job_id) {
    return absl::InvalidArgumentError("the package is for job " + job.verified.job_id + ", not " +
                                      o_.job_id);
  }
  job.product = job.verified.profile.product;
  job.hsm_mode = job.verified.profile.key_mode == hsm::DeviceKeyMode::kHsm;
  job_ = std::move(job);
  return absl::OkStatus();
}

absl::Status LineCore::Activate(size_t i) {
  Member& m = members_[i];
  m.link.reset();
  ASSIGN_OR_RETURN(m.link, links_.Connect(m.address));
  auto not_member = [&](const absl::Status& why) {
    return absl::PermissionDeniedError("member at " + m.address + " is not a member of group " +
                                       group_.group_id + ": " + std::string(why.message()));
  };
  auto st = m.link->Status(5);
  if (absl::IsPermissionDenied(st.status()) || absl::IsUnauthenticated(st.status())) {
    return not_member(st.status());
  }
  if (!st.ok()) return st.status();
  if (st->state != "serving") {
    return absl::UnavailableError("the member at " + m.address + " is " + st->state);
  }
  auto server_cert = crypto::Certificate::FromPem(st->server_cert_pem);
  if (!server_cert.ok()) return not_member(server_cert.status());
  auto member = CheckServerIsMember(group_, *server_cert, crypto::AsBytes(st->member_cert),
                                    FixedClock(Now()));
  if (!member.ok()) return not_member(member.status());
  // The newest group statement this line has seen (every call keeps it), so that a revoked member
  // that has not heard of its revocation is not believed either.
  if (!o_.credentials.statement_file.empty()) {
    auto held = ReadFileBytes(o_.credentials.statement_file, hsm::kMaxStatementSize);
    if (!held.ok() && !absl::IsNotFound(held.status())) return held.status();
    if (held.ok()) {
      absl::Status revoked = CheckMemberNotRevoked(group_, *member, *held, FixedClock(Now()));
      if (!revoked.ok()) return not_member(revoked);
    }
  }
  m.serial = member->hsm_serial;
  m.member_id = member->member_id;
  m.verified = *std::move(member);
  auto got = m.link->FetchJob(o_.job_id);
  if (!got.ok() && absl::IsNotFound(got.status())) {
    RETURN_IF_ERROR(m.link->ImportJob(job_->package));
    Say("member " + m.Name() + " did not hold job " + o_.job_id + "; imported it there");
  } else if (!got.ok()) {
    return got.status();
  }
  return absl::OkStatus();
}

absl::Status LineCore::FindJob() {
  std::string why_not;
  for (const Member& m : members_) {
    auto link = links_.Connect(m.address);
    absl::StatusOr<std::vector<uint8_t>> got =
        link.ok() ? (*link)->FetchJob(o_.job_id) : link.status();
    if (!got.ok()) {
      why_not += "\n  " + m.address + ": " + std::string(got.status().message());
      continue;
    }
    absl::Status learned = LearnJob(*std::move(got));
    if (absl::IsFailedPrecondition(learned)) return learned;  // no OEM root to check any against
    if (!learned.ok()) {
      // A member that gives a package failing the checks is not asked again for it.
      why_not += "\n  " + m.address + ": its package is refused: " + std::string(learned.message());
      continue;
    }
    RETURN_IF_ERROR(MakeDirs(LineDirectory(o_) + "/jobs", 0700));
    RETURN_IF_ERROR(WriteFileAtomic(PackagePath(), job_->package));
    Say("job " + o_.job_id + " (" + job_->product + ", " + (job_->hsm_mode ? "hsm" : "device") +
        " key mode) fetched from the member at " + m.address + "; kept as " + PackagePath());
    return absl::OkStatus();
  }
  return absl::NotFoundError("no member of --hsm gave job " + o_.job_id +
                             " (import it on one member: `clade hsm call import-job`):" + why_not);
}

bool LineCore::PickMember(size_t from) {
  auto give_up = clock_.SteadyNow() + std::chrono::seconds(o_.give_up_seconds);
  bool said_waiting = false;
  for (;;) {
    std::vector<bool> usable;
    for (const Member& m : members_) usable.push_back(m.excluded.empty());
    std::vector<size_t> order = MemberOrder(from, usable);
    for (size_t i : order) {
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
    if (order.empty() || clock_.SteadyNow() >= give_up) return false;
    if (!said_waiting) {
      std::string every = o_.probe_ms % 1000 == 0 ? std::to_string(o_.probe_ms / 1000) + " s"
                                                  : std::to_string(o_.probe_ms) + " ms";
      Say("no member answers; probing every " + every + " for up to " +
          std::to_string(o_.give_up_seconds) + " s");
      said_waiting = true;
    }
    clock_.Pause(milliseconds(o_.probe_ms));
    from = 0;
  }
}

void LineCore::Prober() {
  std::unique_lock<std::mutex> l(prober_mu_);
  while (!stop_prober_) {
    // Woken early only by StopProber: probes come every probe_ms of the line's clock.
    auto next = clock_.SteadyNow() + milliseconds(o_.probe_ms);
    while (!stop_prober_ && clock_.SteadyNow() < next) clock_.WaitUntil(l, prober_cv_, next);
    if (stop_prober_) break;
    l.unlock();
    size_t below = probe_below_;
    for (size_t i = 0; i < below && !ProberStopped(); ++i) {
      auto link = links_.Connect(members_[i].address);
      if (!link.ok()) continue;
      auto st = (*link)->Status(2);
      if (st.ok() && st->state == "serving") {
        events_.Push(ProbeAnsweredEvent{i});
        break;
      }
    }
    l.lock();
  }
}

void LineCore::StopProber() {
  {
    std::lock_guard<std::mutex> l(prober_mu_);
    stop_prober_ = true;
  }
  prober_cv_.notify_all();
}

bool LineCore::ProberStopped() {
  std::lock_guard<std::mutex> l(prober_mu_);
  return stop_prober_;
}

}  // namespace clade::line
