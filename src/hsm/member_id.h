// Hierarchical member ids (docs/design.md, "Member ids"; patent FIG. 4): the founder is "1"; the
// k-th member enrolled by X is "X.k". Unique without coordination, because each member allocates
// only below itself and persists its child counter before it answers. Bounds: depth ≤ 32, each part
// in 1 .. 2^32-1.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace clade::hsm {

class MemberId {
 public:
  static constexpr size_t kMaxDepth = 32;

  // "1", "1.2.3". Refuses empty parts, zero, leading zeros, signs, parts ≥ 2^32, depth > 32.
  static absl::StatusOr<MemberId> Parse(std::string_view text);
  static MemberId Founder() { return MemberId({1}); }

  // The k-th child (k ≥ 1). Refuses k = 0 and depth beyond kMaxDepth.
  absl::StatusOr<MemberId> Child(uint64_t k) const;
  // True if this id is exactly one level below `parent`.
  bool IsChildOf(const MemberId& parent) const;

  std::string ToString() const;
  size_t depth() const { return parts_.size(); }
  const std::vector<uint32_t>& parts() const { return parts_; }
  bool operator==(const MemberId& o) const { return parts_ == o.parts_; }

 private:
  explicit MemberId(std::vector<uint32_t> parts) : parts_(std::move(parts)) {}
  std::vector<uint32_t> parts_;
};

}  // namespace clade::hsm
