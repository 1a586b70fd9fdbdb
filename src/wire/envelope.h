// Signed envelopes (docs/protocol.md, "The envelope"): every protocol message, on the wire or in a
// file, is a SignedMessage whose signature covers the DSSE pre-authentication encoding of (type,
// payload). OpenMessage returns an Envelope only after that signature verified with the leaf
// certificate of the signer chain; it does not decide whether the signer is trusted — callers do,
// per type.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "crypto/key.h"
#include "crypto/x509.h"

namespace clade::wire {

// Ordinary protocol messages. Job packages that carry firmware use a larger, explicit limit.
inline constexpr size_t kMaxMessageSize = 1024 * 1024;
inline constexpr size_t kMaxTypeLength = 128;

struct Envelope {
  std::string type;
  std::vector<uint8_t> payload;
  std::vector<crypto::Certificate> signer_chain;  // leaf first; the leaf's key signed
};

// Signs (type, payload) with `signer` and wraps it with `signer_chain` (leaf first; the leaf's
// public key must be `signer`'s). Returns the serialized SignedMessage.
absl::StatusOr<std::vector<uint8_t>> SealMessage(
    std::string_view type, std::span<const uint8_t> payload, const crypto::PrivateKey& signer,
    const std::vector<crypto::Certificate>& signer_chain);

// Decodes and checks a SignedMessage: size ≤ limit, well-formed, no unknown fields, every field
// present, type == expected_type, signer chain of 1..16 certificates, signature valid for the
// leaf's key. Refusals name the check: "message is N bytes, more than the limit of M",
// "malformed message: …", "message is a clade.v1.X, expected a clade.v1.Y",
// "message signature does not verify".
absl::StatusOr<Envelope> OpenMessage(std::span<const uint8_t> bytes, std::string_view expected_type,
                                     size_t limit = kMaxMessageSize);
// The same checks, for any type (used by `clade msg show`).
absl::StatusOr<Envelope> OpenAnyMessage(std::span<const uint8_t> bytes,
                                        size_t limit = kMaxMessageSize);

}  // namespace clade::wire
