// UTC time as Clade uses it: seconds since the epoch (int64), printed as RFC 3339
// ("2026-11-24T10:00:00Z"), and durations written as "30s", "15m", "12h", "7d". Code that decides
// by the time (validity, expiry, audit time) takes a `const Clock&` that defaults to
// SystemClock(), so a test gives a FixedClock for an expired or not-yet-valid input instead of
// sleeping.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"

namespace clade {

// Where "now" comes from.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t Now() const = 0;  // unix seconds
};

// The system's UTC clock; one instance for the process.
const Clock& SystemClock();

// A clock that reads what it was set to, for tests.
class FixedClock final : public Clock {
 public:
  explicit FixedClock(int64_t now) : now_(now) {}
  int64_t Now() const override { return now_; }
  void Set(int64_t now) { now_ = now; }
  void Advance(int64_t seconds) { now_ += seconds; }

 private:
  int64_t now_;
};

std::string FormatTime(int64_t unix_seconds);
// Parses "7d", "12h", "30m", "45s" (or a plain number of seconds). Refuses zero and negatives.
absl::StatusOr<int64_t> ParseDuration(std::string_view text);

}  // namespace clade
