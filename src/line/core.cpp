// LineCore: the run loop, the Provision stream of the member in use, and what is done with each
// answer (the verdicts of line/rules.h).
#include "line/core.h"

#include "crypto/x509.h"
#include "line/programmer_pool.h"

namespace clade::line {

using std::chrono::milliseconds;

LineCore::LineCore(const LineOptions& options, const CoreParts& parts, LineGroup group)
    : o_(options),
      chips_(*parts.chips),
      programmer_(*parts.programmer),
      record_(*parts.record),
      links_(*parts.links),
      clock_(*parts.clock),
      observer_(parts.observer),
      group_(std::move(group)) {
  for (const auto& address : o_.members) {
    Member m;
    m.address = address;
    members_.push_back(std::move(m));
  }
}

LineCore::~LineCore() = default;

double LineCore::SecondsSince(LineClock::TimePoint t) const {
  return std::chrono::duration<double>(clock_.SteadyNow() - t).count();
}

bool LineCore::LostHere(const std::string& uid, const std::string& serial) const {
  auto it = lost_on_.find(uid);
  return it != lost_on_.end() && it->second.count(serial) > 0;
}

void LineCore::Fill(AnswerStream& stream) {
  size_t n = DevicesToSend(queue_.size(), inflight_.size(), programming_, o_.parallel);
  if (n == 0) return;
  Member& m = members_[active_];
  std::vector<Pending> batch;
  for (size_t k = 0; k < n; ++k) {
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
    bool reissue = SendsReissue(p.reissue, LostHere(p.uid, m.serial));
    req.set_reissue(reissue);
    auto pem = chips_.RequestPem(p.uid, job_->hsm_mode);
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
      if (auto s = record_.MarkFailed(o_.job_id, p.uid, why, Now()); !s.ok()) fatal_ = s;
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
  auto ids = record_.BeginAttempts(o_.job_id, sends, m.member_id, m.serial, m.address, Now());
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
  // A failed send means the stream is broken; the reader reports its end and every device in
  // flight, those not written included, is sent again elsewhere.
  for (const auto& req : reqs) {
    if (!stream.Send(req)) break;
  }
}

void LineCore::PushEnd(AttemptEnd end) {
  if (ends_.empty()) first_end_ = clock_.SteadyNow();
  ends_.push_back(std::move(end));
}

void LineCore::Fail(const std::string& uid, const std::string& why) {
  sum_.failures.emplace_back(uid, why);
  ++sum_.failed;
}

absl::Status LineCore::FlushEnds(bool force) {
  if (ends_.empty()) return absl::OkStatus();
  // The exec programmer is slow anyway and cannot tell a programmed chip on a rerun: each
  // outcome is recorded at once. Virtual chips carry their lock bit, so outcomes are batched.
  bool now = force || ends_.size() >= 64 || programmer_.Name() == "exec" ||
             SecondsSince(first_end_) > 0.05;
  if (!now) return absl::OkStatus();
  absl::Status s = record_.FinishAttempts(ends_, Now());
  ends_.clear();
  if (!s.ok() && fatal_.ok()) fatal_ = s;
  return s;
}

bool LineCore::OnAnswer(const v1::ProvisionResponse& a) {
  auto it = inflight_.find(a.tag());
  if (it == inflight_.end()) {
    Say("warning: member answered tag " + std::to_string(a.tag()) + " (uid " + a.uid() +
        "), which is not in flight; ignored");
    return true;
  }
  InFlight f = it->second;
  inflight_.erase(it);
  Member& m = members_[active_];
  AnswerFacts facts;
  facts.refused = !a.error().empty() || a.uid() != f.uid;
  facts.code = a.code();
  facts.sent_reissue = f.reissue;
  facts.lost_here = LostHere(f.uid, m.serial);
  std::string error;
  if (facts.refused) {
    error = a.error().empty()
                ? "member " + m.Name() + " answered for uid " + a.uid() + ", not " + f.uid
                : a.error();
  } else {
    absl::Status checked = CheckAnswer(job_->verified, *m.verified, AskedDevice{f.uid, f.chip_key},
                                       DeviceAnswer{crypto::AsBytes(a.device_cert()),
                                                    a.cert_serial(), crypto::AsBytes(a.record())},
                                       FixedClock(Now()));
    facts.passed_checks = checked.ok();
    if (!checked.ok()) {
      error = "the answer of member " + m.Name() + " for " + f.uid +
              " is refused: " + std::string(checked.message());
    }
  }
  AttemptEnd end;
  end.attempt_id = f.attempt_id;
  end.outcome = AttemptOutcome::kRefused;
  end.error = error;
  switch (JudgeAnswer(facts)) {
    case Verdict::kRetryWithReissue:
      end.device_status = DeviceStatus::kPending;
      PushEnd(std::move(end));
      queue_.push_front(Pending{f.uid, ReissueChoice::kReissue});
      return true;
    case Verdict::kRetryWithoutReissue:
      end.device_status = DeviceStatus::kPending;
      PushEnd(std::move(end));
      queue_.push_front(Pending{f.uid, ReissueChoice::kNoReissue});
      return true;
    case Verdict::kFailDevice:
      end.device_status = DeviceStatus::kFailed;
      PushEnd(std::move(end));
      Fail(f.uid, "refused by member " + m.Name() + ": " + error);
      return true;
    case Verdict::kFailDeviceAndStopMember:
      end.cert_serial = a.cert_serial();  // the member did issue: a rerun there is a reissue
      end.device_status = DeviceStatus::kFailed;
      PushEnd(std::move(end));
      lost_on_[f.uid].insert(m.serial);
      Fail(f.uid, error);
      m.excluded = error;
      return false;
    case Verdict::kDeliver:
      break;
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

void LineCore::OnProgrammed(const ProgrammedEvent& e) {
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

void LineCore::Progress(bool final) {
  if (!observer_) return;
  LineProgress p;
  p.total = total_;
  p.done_all = sum_.already_done + sum_.recovered + sum_.done;
  p.done = sum_.done;
  p.failed = sum_.failed;
  p.member = have_active_ ? members_[active_].member_id : "-";
  p.seconds = SecondsSince(start_);
  observer_->Progress(p, final);
}

}  // namespace clade::line
