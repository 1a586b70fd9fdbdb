// The key-encryption key (KEK) that seals every secret in the HSM state and authenticates every
// row of it. It is an interface of operations (Seal/Open/Mac), not "give me the key bytes", so a
// PKCS#11 token can implement it later without the key ever leaving the token. Two implementations
// today: a 32-byte key file and a passphrase (scrypt) taken from an environment variable.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "crypto/kdf.h"
#include "crypto/secret.h"

namespace clade::store {

class Kek {
 public:
  virtual ~Kek() = default;
  // "key file /abs/path" or "passphrase from $CLADE_KEK_PASSPHRASE". Never contains key material.
  virtual std::string Describe() const = 0;
  // AES-256-GCM under the KEK with `aad` as associated data.
  virtual absl::StatusOr<std::vector<uint8_t>> Seal(std::span<const uint8_t> aad,
                                                    const crypto::SecretBytes& plaintext) const = 0;
  // PermissionDenied if the KEK, the aad or any byte of `sealed` is wrong.
  virtual absl::StatusOr<crypto::SecretBytes> Open(std::span<const uint8_t> aad,
                                                   std::span<const uint8_t> sealed) const = 0;
  // HMAC-SHA-256 (RFC 2104) of `message` under a MAC key derived from the KEK (HKDF-SHA-256,
  // RFC 5869, info "clade-state-mac-v1"), so sealing and authenticating never share a key. The
  // MAC key never leaves the Kek either. Callers separate their uses by a prefix of the message.
  virtual absl::StatusOr<std::array<uint8_t, 32>> Mac(std::span<const uint8_t> message) const = 0;
};

struct KekConfig {
  enum class Kind { kKeyFile, kPassphrase };
  Kind kind = Kind::kKeyFile;
  std::string key_file;  // kKeyFile: path; empty = <state dir>/kek.key
  std::string passphrase_env = "CLADE_KEK_PASSPHRASE";  // kPassphrase: env var with the passphrase
};

inline constexpr size_t kKekKeySize = 32;
inline constexpr size_t kKekSaltSize = 16;
inline constexpr size_t kMinPassphraseLength = 8;
inline constexpr char kDefaultKeyFileName[] = "kek.key";

// What the state records about its KEK, in clear: enough to find and open it again, nothing
// secret.
struct KekParams {
  KekConfig::Kind kind = KekConfig::Kind::kKeyFile;
  std::string key_file;         // kKeyFile: absolute path
  std::string passphrase_env;   // kPassphrase
  std::vector<uint8_t> salt;    // kPassphrase
  crypto::ScryptParams scrypt;  // kPassphrase
};

// A KEK over key bytes already in hand (a freshly generated key file). Fails only if OpenSSL
// cannot set up HKDF or HMAC.
absl::StatusOr<std::unique_ptr<Kek>> MakeKeyFileKek(const std::string& path,
                                                    crypto::SecretBytes key);

// Reads a key file: it must be a regular file, not group/world accessible, exactly 32 bytes.
absl::StatusOr<crypto::SecretBytes> ReadKeyFile(const std::string& path);

// Writes `key` to a new file at `path` with mode 0600 and fsyncs it; refuses an existing file
// (AlreadyExists). Does not fsync the directory.
absl::Status WriteNewKeyFile(const std::string& path, const crypto::SecretBytes& key);

// For a new state: reads the passphrase from $env (refused if unset, empty or shorter than 8
// characters), draws a fresh salt and derives the KEK. Fills `params` (kind, env, salt, scrypt).
absl::StatusOr<std::unique_ptr<Kek>> NewPassphraseKek(const std::string& env, KekParams* params);

// Opens the KEK that `params` describes (key file or passphrase). Errors name the key file or the
// environment variable; a wrong key is not detected here (the state's check value does that).
absl::StatusOr<std::unique_ptr<Kek>> OpenKek(const KekParams& params);

// Bounds on scrypt parameters read back from a state, so a tampered state cannot make Open
// allocate gigabytes: N a power of two in [2^14, 2^22], r in [1, 32], p in [1, 16].
absl::Status CheckScryptParams(const crypto::ScryptParams& params);

}  // namespace clade::store
