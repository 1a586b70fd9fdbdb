// UTC time as Clade uses it: seconds since the epoch (int64), printed as RFC 3339
// ("2026-11-24T10:00:00Z"), and durations written as "30s", "15m", "12h", "7d".
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"

namespace clade {

int64_t NowUnix();
std::string FormatTime(int64_t unix_seconds);
// Parses "7d", "12h", "30m", "45s" (or a plain number of seconds). Refuses zero and negatives.
absl::StatusOr<int64_t> ParseDuration(std::string_view text);

}  // namespace clade
