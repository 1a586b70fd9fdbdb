// LineCore::SelectDevices: which chips this run provisions, resuming from the record — done
// devices are skipped, attempts open when the line stopped are closed, chips found programmed but
// not recorded are recorded, and the HSMs that may have issued are remembered for reissues.
#include "base/files.h"
#include "hsm/job.h"
#include "line/core.h"

namespace clade::line {

absl::Status LineCore::SelectDevices() {
  std::vector<std::string> uids = chips_.Uids();
  if (uids.empty()) return absl::NotFoundError("no chips in " + chips_.Where());
  if (o_.devices > 0) {
    if (o_.devices > uids.size()) {
      return absl::InvalidArgumentError("--devices " + std::to_string(o_.devices) + ": " +
                                        chips_.Where() + " holds only " +
                                        std::to_string(uids.size()) + " chips");
    }
    uids.resize(o_.devices);
  }
  sum_.selected = uids.size();
  total_ = uids.size();
  ASSIGN_OR_RETURN(size_t closed,
                   record_.CloseOpenAttempts(
                       o_.job_id, "the line stopped before the member's answer arrived", Now()));
  if (closed > 0) {
    Say("resuming: " + Plural(closed, "device") + " in flight when the line last stopped " +
        (closed == 1 ? "is" : "are") + " sent again");
  }
  ASSIGN_OR_RETURN(auto attempts, record_.Attempts(o_.job_id));
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
  ASSIGN_OR_RETURN(auto rows, record_.Devices(o_.job_id));
  for (const auto& uid : uids) {
    auto it = rows.find(uid);
    if (it != rows.end() && it->second.status == DeviceStatus::kDone) {
      ++sum_.already_done;
      continue;
    }
    auto programmed = chips_.ProgrammedSerial(uid);
    if (!programmed.ok()) {
      std::string why = std::string(programmed.status().message());
      RETURN_IF_ERROR(record_.MarkFailed(o_.job_id, uid, why, Now()));
      Fail(uid, why);
      continue;
    }
    if (programmed->has_value()) {
      // Programmed and locked, but not recorded: the line stopped between the two.
      absl::Status s = record_.RecoverDone(o_.job_id, uid, **programmed, Now());
      if (s.ok()) {
        ++sum_.recovered;
      } else {
        std::string why = std::string(s.message());
        RETURN_IF_ERROR(record_.MarkFailed(o_.job_id, uid, why, Now()));
        Fail(uid, why);
      }
      continue;
    }
    queue_.push_back(Pending{uid, ReissueChoice::kByRule});
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

}  // namespace clade::line
