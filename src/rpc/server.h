// The HSM daemon (`clade hsm serve`): HsmService over TLS with required client certificates.
// Every call is authorized from the caller's certificate (a genuine peer HSM, or a client
// certificate of a group of this HSM with a role) and runs the same src/hsm calls as the CLI,
// one at a time (one state store). Logs one line per event on the given stream.
#pragma once

#include <memory>
#include <ostream>
#include <string>

#include "base/status.h"

namespace clade::rpc {

class Daemon {
 public:
  // Opens the HSM state, binds `listen` (HOST:PORT; port 0 = any free port) and starts serving.
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(const std::string& state_dir,
                                                       const std::string& listen,
                                                       std::ostream& log);
  ~Daemon();
  // The bound address, "HOST:PORT" with the actual port.
  const std::string& address() const;
  // Graceful stop: refuses new calls, lets calls in flight finish for up to `grace_seconds`,
  // then cancels what is left and returns.
  void Shutdown(int grace_seconds);

  struct Impl;

 private:
  explicit Daemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clade::rpc
