#include "crypto/error.h"

#include <openssl/err.h>

#include <string>

namespace clade::crypto {

absl::Status OpenSslError(std::string_view what, absl::StatusCode code) {
  std::string msg(what);
  bool first = true;
  unsigned long e = 0;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    msg += first ? ": " : "; ";
    msg += buf;
    first = false;
  }
  return absl::Status(code, msg);
}

void ClearOpenSslErrors() { ERR_clear_error(); }

}  // namespace clade::crypto
