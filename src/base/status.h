// Errors are values: absl::Status / absl::StatusOr<T>. These two macros are the only control flow
// sugar the project uses for them; they are defined here once.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CLADE_CONCAT_INNER_(a, b) a##b
#define CLADE_CONCAT_(a, b) CLADE_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::absl::Status clade_status_ = (expr);         \
    if (!clade_status_.ok()) return clade_status_; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, MakeX());` — binds the value or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(CLADE_CONCAT_(clade_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()

namespace clade {

// Prefixes the message of a non-OK status with context ("reading D/root.crt: ...").
inline absl::Status Annotate(const absl::Status& s, std::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), std::string(context) + ": " + std::string(s.message()));
}

}  // namespace clade
