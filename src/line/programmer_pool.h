// A small pool programming chips in parallel for the line core; each result is a
// ProgrammedEvent on the core's queue. Internal to src/line.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "line/events.h"
#include "line/programmer.h"

namespace clade::line {

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
      ProgrammedEvent e;
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

}  // namespace clade::line
