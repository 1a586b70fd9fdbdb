#include "crypto/der.h"

namespace clade::crypto {

std::vector<uint8_t> DerUtf8String(std::string_view s) {
  // Sized once: the tag, at most three length bytes, the text. (Grown push by push instead, GCC 12
  // reports a false -Wstringop-overflow in the insert below.)
  std::vector<uint8_t> out;
  out.reserve(4 + s.size());
  out.push_back(0x0c);
  if (s.size() < 128) {
    out.push_back(static_cast<uint8_t>(s.size()));
  } else if (s.size() < 256) {
    out.push_back(0x81);  // X.690 §10.1: the shortest length form
    out.push_back(static_cast<uint8_t>(s.size()));
  } else {
    out.push_back(0x82);
    out.push_back(static_cast<uint8_t>(s.size() >> 8));
    out.push_back(static_cast<uint8_t>(s.size() & 0xff));
  }
  out.insert(out.end(), s.begin(), s.end());
  return out;
}

absl::StatusOr<std::string> ParseDerUtf8String(const std::vector<uint8_t>& der) {
  auto bad = absl::InvalidArgumentError("not a DER UTF8String");
  if (der.size() < 2 || der[0] != 0x0c) return bad;
  size_t len = 0;
  size_t off = 2;
  if (der[1] < 128) {
    len = der[1];
  } else if (der[1] == 0x81 && der.size() >= 3) {
    len = der[2];
    off = 3;
    if (len < 128) return bad;  // not the shortest form
  } else if (der[1] == 0x82 && der.size() >= 4) {
    len = (static_cast<size_t>(der[2]) << 8) | der[3];
    off = 4;
    if (len < 256) return bad;  // not the shortest form
  } else {
    return bad;
  }
  if (off + len != der.size()) return bad;
  return std::string(der.begin() + static_cast<long>(off), der.end());
}

}  // namespace clade::crypto
