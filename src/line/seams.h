// The seams of the line's run loop (line/core.h): the small interfaces it depends on, so that the
// loop runs the same over gRPC members, SQLite and a tray (line/setup.cpp wires those) as over
// in-process fakes (tests/line/core_test.cpp). Each says what the loop needs, nothing more.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "clade/v1/hsm_service.pb.h"
#include "line/chip_source.h"
#include "line/device_db.h"

namespace clade::line {

// What a member says of itself (HsmService.Status), as the line reads it.
struct MemberStatus {
  std::string state;            // "serving" when it provisions
  std::string member_cert;      // its member certificate (DER)
  std::string server_cert_pem;  // the certificate it showed in the TLS handshake
};

// One Provision stream: answers come back in request order. One thread sends (then calls
// DoneSending) while another receives; Cancel may come from any thread.
class AnswerStream {
 public:
  virtual ~AnswerStream() = default;
  virtual bool Send(const v1::ProvisionRequest& req) = 0;   // false = the stream is broken
  virtual bool Receive(v1::ProvisionResponse* answer) = 0;  // false = no more answers
  virtual void DoneSending() = 0;
  virtual void Cancel() = 0;
  // After Receive returned false and sending is done: how the stream ended.
  virtual absl::Status Finish() = 0;
};

// One member as the line talks to it. Errors carry the status code of the call (Unavailable,
// DeadlineExceeded, PermissionDenied, NotFound, …).
class MemberLink {
 public:
  virtual ~MemberLink() = default;
  // Bounded by `timeout_seconds`: a short one makes a probe.
  virtual absl::StatusOr<MemberStatus> Status(int timeout_seconds) = 0;
  // The job package as the member holds it; NotFound when it lacks the job.
  virtual absl::StatusOr<std::vector<uint8_t>> FetchJob(const std::string& job_id) = 0;
  virtual absl::Status ImportJob(const std::vector<uint8_t>& package) = 0;
  virtual absl::StatusOr<std::unique_ptr<AnswerStream>> OpenStream() = 0;
};

// How the line reaches members by address.
class MemberLinks {
 public:
  virtual ~MemberLinks() = default;
  virtual absl::StatusOr<std::unique_ptr<MemberLink>> Connect(const std::string& address) = 0;
};

// The line's record of devices and attempts (line/device_db.h says what each call guarantees).
class LineRecord {
 public:
  virtual ~LineRecord() = default;
  virtual absl::StatusOr<std::map<std::string, DeviceRow>> Devices(const std::string& job) = 0;
  virtual absl::StatusOr<std::vector<AttemptRow>> Attempts(const std::string& job) = 0;
  virtual absl::StatusOr<std::vector<int64_t>> BeginAttempts(
      const std::string& job, const std::vector<DeviceDb::Send>& sends,
      const std::string& member_id, const std::string& member_serial,
      const std::string& member_address, int64_t now) = 0;
  virtual absl::Status FinishAttempts(const std::vector<AttemptEnd>& ends, int64_t now) = 0;
  virtual absl::StatusOr<size_t> CloseOpenAttempts(const std::string& job, const std::string& why,
                                                   int64_t now) = 0;
  virtual absl::Status RecoverDone(const std::string& job, const std::string& uid,
                                   const std::string& cert_serial, int64_t now) = 0;
  virtual absl::Status MarkFailed(const std::string& job, const std::string& uid,
                                  const std::string& error, int64_t now) = 0;
};

// Time as the run loop reads it: a steady clock for timeouts, UTC seconds for records and
// certificate checks, a pause (probing while no member answers), and every wait of the loop and
// its prober, so that a clock of the tests' own (tests/line/core_test.cpp) drives probing and
// timeouts without real time passing.
class LineClock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~LineClock() = default;
  virtual TimePoint SteadyNow() = 0;
  virtual int64_t UnixNow() = 0;
  virtual void Pause(std::chrono::milliseconds d) = 0;
  // Waits on `cv` (its mutex held by `lock`) until it is notified or SteadyNow() reaches
  // `deadline`; may also return early, so the caller checks its condition again.
  virtual void WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                         TimePoint deadline) = 0;
};

}  // namespace clade::line
