#include "base/clock.h"

#include <ctime>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace clade {

namespace {

class SystemUtcClock final : public Clock {
 public:
  int64_t Now() const override { return absl::ToUnixSeconds(absl::Now()); }
};

}  // namespace

const Clock& SystemClock() {
  static const SystemUtcClock clock;
  return clock;
}

std::string FormatTime(int64_t unix_seconds) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(unix_seconds),
                          absl::UTCTimeZone());
}

absl::StatusOr<int64_t> ParseDuration(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("empty duration");
  int64_t unit = 1;
  std::string_view digits = text;
  switch (text.back()) {
    case 's':
      unit = 1;
      digits.remove_suffix(1);
      break;
    case 'm':
      unit = 60;
      digits.remove_suffix(1);
      break;
    case 'h':
      unit = 3600;
      digits.remove_suffix(1);
      break;
    case 'd':
      unit = 86400;
      digits.remove_suffix(1);
      break;
    default:
      break;
  }
  int64_t n = 0;
  if (!absl::SimpleAtoi(absl::string_view(digits.data(), digits.size()), &n) || n <= 0 ||
      n > (int64_t{1} << 40) / unit) {
    return absl::InvalidArgumentError("invalid duration '" + std::string(text) +
                                      "' (expected e.g. 30s, 15m, 12h, 7d)");
  }
  return n * unit;
}

}  // namespace clade
