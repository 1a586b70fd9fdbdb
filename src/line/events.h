// What the stream readers, the prober and the programming workers tell the run loop
// (line/core.h), one struct per kind, and the queue that carries them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <variant>

#include "base/status.h"
#include "clade/v1/hsm_service.pb.h"
#include "line/seams.h"

namespace clade::line {

// An answer read from stream number `stream` (answers of older streams are ignored).
struct AnswerEvent {
  uint64_t stream = 0;
  v1::ProvisionResponse answer;
};

// Stream number `stream` ended, with its outcome.
struct StreamEndEvent {
  uint64_t stream = 0;
  absl::Status status;
};

// A chip was programmed (or failed to be).
struct ProgrammedEvent {
  std::string uid;
  int64_t attempt_id = 0;
  std::string cert_serial;
  std::string member_key;  // "1.2 (SN-0003)", the member that issued
  absl::Status status;
};

// Member number `member` (an index into the member list) answered a probe.
struct ProbeAnsweredEvent {
  size_t member = 0;
};

using LineEvent = std::variant<AnswerEvent, StreamEndEvent, ProgrammedEvent, ProbeAnsweredEvent>;

class EventQueue {
 public:
  void Push(LineEvent e) {
    {
      std::lock_guard<std::mutex> l(mu_);
      q_.push_back(std::move(e));
    }
    cv_.notify_one();
  }
  // Waits until `clock` reaches `deadline` for an event; false when none came.
  bool Pop(LineEvent* e, LineClock& clock, LineClock::TimePoint deadline) {
    std::unique_lock<std::mutex> l(mu_);
    while (q_.empty()) {
      if (clock.SteadyNow() >= deadline) return false;
      clock.WaitUntil(l, cv_, deadline);
    }
    *e = std::move(q_.front());
    q_.pop_front();
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<LineEvent> q_;
};

}  // namespace clade::line
