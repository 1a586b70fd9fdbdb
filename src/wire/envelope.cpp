#include "wire/envelope.h"

#include "clade/v1/envelope.pb.h"
#include "crypto/signature.h"
#include "wire/strict.h"

namespace clade::wire {
namespace {

absl::Status Malformed(const std::string& what) {
  return absl::InvalidArgumentError("malformed message: " + what);
}

absl::StatusOr<Envelope> Open(std::span<const uint8_t> bytes, const std::string* expected_type,
                              size_t limit) {
  if (bytes.size() > limit) {
    return absl::InvalidArgumentError("message is " + std::to_string(bytes.size()) +
                                      " bytes, more than the limit of " + std::to_string(limit));
  }
  if (bytes.empty()) return Malformed("empty input");
  v1::SignedMessage msg;
  absl::Status parsed = ParseStrict(bytes, msg, "clade.v1.SignedMessage", limit);
  if (!parsed.ok()) return Malformed(std::string(parsed.message()));
  if (msg.type().empty()) return Malformed("type is missing");
  if (msg.type().size() > kMaxTypeLength) return Malformed("type is too long");
  if (msg.payload().empty()) return Malformed("payload is missing");
  if (msg.signer_chain_size() == 0) return Malformed("signer chain is missing");
  if (static_cast<size_t>(msg.signer_chain_size()) > crypto::kMaxChainLength) {
    return Malformed("signer chain has more than " + std::to_string(crypto::kMaxChainLength) +
                     " certificates");
  }
  if (msg.signature().empty()) return Malformed("signature is missing");
  if (expected_type != nullptr && msg.type() != *expected_type) {
    return absl::InvalidArgumentError("message is a " + msg.type() + ", expected a " +
                                      *expected_type);
  }
  Envelope env;
  env.type = msg.type();
  for (int i = 0; i < msg.signer_chain_size(); ++i) {
    const std::string& der = msg.signer_chain(i);
    auto cert =
        crypto::Certificate::FromDer({reinterpret_cast<const uint8_t*>(der.data()), der.size()});
    if (!cert.ok()) {
      return Malformed("signer certificate " + std::to_string(i) + ": " +
                       std::string(cert.status().message()));
    }
    env.signer_chain.push_back(*std::move(cert));
  }
  const std::string& sig = msg.signature();
  absl::Status verified = crypto::VerifyDsse(
      env.signer_chain.front().SubjectKey(), env.type,
      {reinterpret_cast<const uint8_t*>(msg.payload().data()), msg.payload().size()},
      {reinterpret_cast<const uint8_t*>(sig.data()), sig.size()});
  if (!verified.ok()) {
    return absl::PermissionDeniedError("message signature does not verify (signer '" +
                                       env.signer_chain.front().Subject() + "')");
  }
  env.payload.assign(msg.payload().begin(), msg.payload().end());
  return env;
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> SealMessage(
    std::string_view type, std::span<const uint8_t> payload, const crypto::PrivateKey& signer,
    const std::vector<crypto::Certificate>& signer_chain) {
  if (type.empty() || type.size() > kMaxTypeLength) {
    return absl::InvalidArgumentError("message type must be 1.." + std::to_string(kMaxTypeLength) +
                                      " characters");
  }
  if (payload.empty()) return absl::InvalidArgumentError("message payload is empty");
  if (signer_chain.empty() || signer_chain.size() > crypto::kMaxChainLength) {
    return absl::InvalidArgumentError("signer chain must hold 1.." +
                                      std::to_string(crypto::kMaxChainLength) + " certificates");
  }
  if (!signer_chain.front().SubjectKey().Equals(signer.Public())) {
    return absl::InvalidArgumentError("the signing key does not match the signer certificate");
  }
  ASSIGN_OR_RETURN(std::vector<uint8_t> sig, crypto::SignDsse(signer, type, payload));
  v1::SignedMessage msg;
  msg.set_type(std::string(type));
  msg.set_payload(payload.data(), payload.size());
  for (const auto& cert : signer_chain) {
    msg.add_signer_chain(cert.Der().data(), cert.Der().size());
  }
  msg.set_signature(sig.data(), sig.size());
  std::vector<uint8_t> out(msg.ByteSizeLong());
  if (!msg.SerializeToArray(out.data(), static_cast<int>(out.size()))) {
    return absl::InternalError("cannot serialize the message");
  }
  if (out.size() > kMaxMessageSize * 64) {
    return absl::InvalidArgumentError("message is too large to send");
  }
  return out;
}

absl::StatusOr<Envelope> OpenMessage(std::span<const uint8_t> bytes, std::string_view expected_type,
                                     size_t limit) {
  std::string expected(expected_type);
  return Open(bytes, &expected, limit);
}

absl::StatusOr<Envelope> OpenAnyMessage(std::span<const uint8_t> bytes, size_t limit) {
  return Open(bytes, nullptr, limit);
}

}  // namespace clade::wire
