// Turns OpenSSL's thread-local error queue into an absl::Status, and empties it.
#pragma once

#include <string_view>

#include "absl/status/status.h"

namespace clade::crypto {

// "<what>: <OpenSSL reason>[; <next reason>…]". The queue is empty afterwards.
absl::Status OpenSslError(std::string_view what,
                          absl::StatusCode code = absl::StatusCode::kInternal);
// Empties the queue without reporting (after a failure we have already described).
void ClearOpenSslErrors();

}  // namespace clade::crypto
