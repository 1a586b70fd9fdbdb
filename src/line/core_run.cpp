// LineCore::Run and LineCore::Session: the members in turn, one Provision stream each, failover
// with the devices in flight sent again, and the move back to an earlier member that answers.
#include <thread>
#include <type_traits>

#include "line/core.h"
#include "line/programmer_pool.h"

namespace clade::line {

using std::chrono::milliseconds;

absl::StatusOr<LineCore::SessionEnd> LineCore::Session(size_t* switch_to) {
  Member& m = members_[active_];
  auto opened = m.link->OpenStream();
  if (!opened.ok()) {
    Say("member " + m.Name() + " at " + m.address +
        " stopped answering: " + std::string(opened.status().message()));
    ++sum_.failovers;
    return SessionEnd::kFailover;
  }
  std::shared_ptr<AnswerStream> stream(std::move(*opened));
  const uint64_t gen = ++gen_;
  std::thread reader([this, stream, gen] {
    v1::ProvisionResponse r;
    while (stream->Receive(&r)) {
      events_.Push(AnswerEvent{gen, std::move(r)});
      r = v1::ProvisionResponse();
    }
    events_.Push(StreamEndEvent{gen, stream->Finish()});
  });
  bool writes_done = false, ended = false, cancelled = false;
  absl::Status end_status;
  std::optional<size_t> target;
  auto last_answer = clock_.SteadyNow();
  while (!ended) {
    if (!writes_done && !target && fatal_.ok() && m.excluded.empty()) Fill(*stream);
    bool nothing_to_send =
        queue_.empty() || target.has_value() || !fatal_.ok() || !m.excluded.empty();
    if (!writes_done && inflight_.empty() && nothing_to_send) {
      stream->DoneSending();
      writes_done = true;
    }
    LineEvent event;
    if (events_.Pop(&event, clock_, clock_.SteadyNow() + milliseconds(50))) {
      std::visit(
          [&](auto& e) {
            using E = std::decay_t<decltype(e)>;
            if constexpr (std::is_same_v<E, AnswerEvent>) {
              // A member refused once is believed no more: its later answers stay in flight
              // and are sent again to the next member.
              if (e.stream == gen && m.excluded.empty()) {
                last_answer = clock_.SteadyNow();
                if (!OnAnswer(e.answer) && !cancelled) {
                  stream->Cancel();
                  cancelled = true;
                }
              }
            } else if constexpr (std::is_same_v<E, StreamEndEvent>) {
              if (e.stream == gen) {
                ended = true;
                end_status = e.status;
              }
            } else if constexpr (std::is_same_v<E, ProgrammedEvent>) {
              OnProgrammed(e);
            } else if constexpr (std::is_same_v<E, ProbeAnsweredEvent>) {
              if (!target && MovesTo(e.member, active_, members_[e.member].excluded.empty(),
                                     !queue_.empty())) {
                target = e.member;
                Say("member at " + members_[e.member].address +
                    " answers; moving to it (earlier in --hsm) once the devices in flight are "
                    "answered");
              }
            }
          },
          event);
    }
    if (inflight_.empty()) last_answer = clock_.SteadyNow();
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
      queue_.push_front(Pending{it->uid, ReissueChoice::kByRule});
    }
    inflight_.clear();
    sum_.resent += n;
    ++sum_.failovers;
    Say("member " + m.Name() + " at " + m.address + " " + stopped + " (" + why + "); " +
        Plural(n, "device") + " in flight " + (n == 1 ? "is" : "are") + " sent again");
    (void)FlushEnds(true);
    m.link.reset();
    return SessionEnd::kFailover;
  }
  if (target) {
    *switch_to = *target;
    return SessionEnd::kSwitch;
  }
  return SessionEnd::kDone;
}

absl::StatusOr<LineSummary> LineCore::Run() {
  start_ = clock_.SteadyNow();
  RETURN_IF_ERROR(SelectDevices());
  Say("line: job " + o_.job_id + ", " + std::to_string(total_) + " chips of " + chips_.Where() +
      ", " + std::to_string(queue_.size()) + " to provision; programmer " + programmer_.Name() +
      ", " + std::to_string(o_.parallel) + " in parallel");
  if (queue_.empty()) {
    sum_.seconds = SecondsSince(start_);
    return sum_;
  }
  if (!job_) RETURN_IF_ERROR(FindJob());
  pool_ = std::make_unique<ProgrammerPool>(programmer_, events_, o_.parallel);
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
    LineEvent e;
    if (events_.Pop(&e, clock_, clock_.SteadyNow() + milliseconds(100))) {
      if (auto* p = std::get_if<ProgrammedEvent>(&e)) OnProgrammed(*p);
    }
    (void)FlushEnds(false);
  }
  (void)FlushEnds(true);
  StopProber();
  prober.join();
  pool_.reset();
  if (!stopped.ok() && sum_.done == 0 && sum_.failed == 0) return stopped;
  if (!fatal_.ok()) return Annotate(fatal_, "the line database");
  sum_.pending = queue_.size();
  Progress(true);
  sum_.seconds = SecondsSince(start_);
  return sum_;
}

}  // namespace clade::line
