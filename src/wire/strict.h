// Strict decoding (docs/protocol.md, "Payloads are decoded strictly"): the one place where protocol
// bytes — an envelope, the payload inside it, a row read back from the HSM state — become a
// protobuf message. Bytes that do not parse, that are larger than the stated limit, or that carry
// a field this version does not know, at any depth, are refused rather than half understood: a
// field we drop silently could be one a newer sender meant as a restriction.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <utility>

#include "base/status.h"
#include "google/protobuf/message.h"
#include "wire/envelope.h"

namespace clade::wire {

// Decodes `bytes` into `out`. Refusals (InvalidArgument) name `what`:
//   "<what> is N bytes, more than the limit of M"
//   "<what> does not parse"
//   "<what> has unknown field N"              (in the message itself)
//   "<what> has unknown field N in <path>"    (in a set sub-message: "group", "checkpoints[2].x")
// On a refusal `out` may hold part of the input; callers drop it (and wipe it, if secret).
absl::Status ParseStrict(std::span<const uint8_t> bytes, google::protobuf::Message& out,
                         std::string_view what, size_t limit = kMaxMessageSize);

template <class T>
absl::StatusOr<T> ParseStrictAs(std::span<const uint8_t> bytes, std::string_view what,
                                size_t limit = kMaxMessageSize) {
  T m;
  RETURN_IF_ERROR(ParseStrict(bytes, m, what, limit));
  return m;
}

// The payload of an opened envelope, decoded strictly as `out`, whose full name must be the
// envelope's type (the project's type strings are the protobuf full names). Refusals:
// "message is a clade.v1.X, expected a clade.v1.Y", or "malformed message: " and a ParseStrict
// refusal for "<type> payload" ("malformed message: clade.v1.JobPackage payload has unknown
// field 99").
absl::Status ParsePayload(const Envelope& env, google::protobuf::Message& out,
                          size_t limit = kMaxMessageSize);

template <class T>
absl::StatusOr<T> ParsePayload(const Envelope& env, size_t limit = kMaxMessageSize) {
  T m;
  RETURN_IF_ERROR(ParsePayload(env, m, limit));
  return m;
}

// An envelope whose signature verified and its payload, decoded strictly.
template <class T>
struct Opened {
  Envelope envelope;
  T message;
};

// OpenMessage with T's full name as the expected type, then ParsePayload<T>.
template <class T>
absl::StatusOr<Opened<T>> OpenMessageAs(std::span<const uint8_t> bytes,
                                        size_t limit = kMaxMessageSize) {
  ASSIGN_OR_RETURN(Envelope env, OpenMessage(bytes, T::descriptor()->full_name(), limit));
  ASSIGN_OR_RETURN(T message, ParsePayload<T>(env, limit));
  return Opened<T>{std::move(env), std::move(message)};
}

}  // namespace clade::wire
