#include "line/rules.h"

#include <algorithm>

#include "absl/status/status.h"

namespace clade::line {

bool SendsReissue(ReissueChoice choice, bool lost_here) {
  switch (choice) {
    case ReissueChoice::kReissue:
      return true;
    case ReissueChoice::kNoReissue:
      return false;
    case ReissueChoice::kByRule:
      break;
  }
  return lost_here;
}

size_t DevicesToSend(size_t queued, size_t in_flight, size_t programming, int parallel) {
  const size_t window = static_cast<size_t>(std::max(parallel, 1)) * 2;
  if (queued == 0) return 0;
  const size_t busy = in_flight + programming;
  if (in_flight > 0 && busy > window / 2) return 0;
  if (busy >= window) return 0;
  return std::min(queued, window - busy);
}

std::vector<size_t> MemberOrder(size_t from, const std::vector<bool>& usable) {
  std::vector<size_t> order;
  const size_t n = usable.size();
  for (size_t k = 0; k < n; ++k) {
    size_t i = (from + k) % n;
    if (usable[i]) order.push_back(i);
  }
  return order;
}

bool MovesTo(size_t answered, size_t active, bool answered_usable, bool devices_queued) {
  return answered < active && answered_usable && devices_queued;
}

Verdict JudgeAnswer(const AnswerFacts& f) {
  if (f.refused) {
    if (f.code == static_cast<int>(absl::StatusCode::kAlreadyExists) && !f.sent_reissue &&
        f.lost_here) {
      // An earlier attempt on this HSM did issue before its answer was lost: issue again.
      return Verdict::kRetryWithReissue;
    }
    if (f.code == static_cast<int>(absl::StatusCode::kFailedPrecondition) && f.sent_reissue) {
      // The earlier attempt never reached the member's records: a first issue, then.
      return Verdict::kRetryWithoutReissue;
    }
    return Verdict::kFailDevice;
  }
  return f.passed_checks ? Verdict::kDeliver : Verdict::kFailDeviceAndStopMember;
}

}  // namespace clade::line
