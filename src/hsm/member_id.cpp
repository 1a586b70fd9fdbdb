#include "hsm/member_id.h"

#include <algorithm>

namespace clade::hsm {

absl::StatusOr<MemberId> MemberId::Parse(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError("invalid member id '" + std::string(text) + "': " + why);
  };
  if (text.empty()) return bad("empty");
  std::vector<uint32_t> parts;
  size_t start = 0;
  while (true) {
    size_t dot = text.find('.', start);
    std::string_view part =
        text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (part.empty()) return bad("empty part");
    if (part.size() > 10) return bad("part too large");
    if (part[0] == '0') return bad("parts start at 1, without leading zeros");
    uint64_t v = 0;
    for (char c : part) {
      if (c < '0' || c > '9') return bad("parts are decimal numbers");
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    if (v > 0xffffffffULL) return bad("part is 2^32 or more");
    parts.push_back(static_cast<uint32_t>(v));
    if (parts.size() > kMaxDepth) return bad("deeper than 32 levels");
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return MemberId(std::move(parts));
}

// "X.k", the k-th member X admits (patent FIG. 4).
absl::StatusOr<MemberId> MemberId::Child(uint64_t k) const {
  if (k == 0) return absl::InvalidArgumentError("child numbers start at 1");
  if (k > 0xffffffffULL) {
    return absl::ResourceExhaustedError("member " + ToString() + " has no child ids left");
  }
  if (parts_.size() >= kMaxDepth) {
    return absl::ResourceExhaustedError("member " + ToString() +
                                        " is 32 levels deep and cannot enroll members");
  }
  std::vector<uint32_t> parts = parts_;
  parts.push_back(static_cast<uint32_t>(k));
  return MemberId(std::move(parts));
}

bool MemberId::IsChildOf(const MemberId& parent) const {
  if (parts_.size() != parent.parts_.size() + 1) return false;
  return std::equal(parent.parts_.begin(), parent.parts_.end(), parts_.begin());
}

std::string MemberId::ToString() const {
  std::string out;
  for (size_t i = 0; i < parts_.size(); ++i) {
    if (i > 0) out.push_back('.');
    out += std::to_string(parts_[i]);
  }
  return out;
}

}  // namespace clade::hsm
