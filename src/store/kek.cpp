#include "store/kek.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "crypto/aead.h"
#include "crypto/random.h"

namespace clade::store {
namespace {

absl::Status Errno(const std::string& what, const std::string& path) {
  int e = errno;
  std::string msg = what + " " + path + ": " + std::strerror(e);
  if (e == ENOENT) return absl::NotFoundError(msg);
  if (e == EEXIST) return absl::AlreadyExistsError(msg);
  if (e == EACCES || e == EPERM) return absl::PermissionDeniedError(msg);
  return absl::InternalError(msg);
}

// Closes a file descriptor on every path out of a function.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

// Both implementations hold a 32-byte AES key in SecretBytes and differ only in where it came
// from; a PKCS#11 KEK will implement Kek directly.
class SymmetricKek : public Kek {
 public:
  // Derives the MAC key once; fails only if OpenSSL cannot.
  static absl::StatusOr<std::unique_ptr<Kek>> Create(std::string description,
                                                     crypto::SecretBytes key) {
    // RFC 5869 §3.1: no salt is needed for a uniformly random key, and "not provided" is
    // HashLen zero bytes (§2.2); `info` binds the purpose.
    const std::array<uint8_t, 32> no_salt{};
    ASSIGN_OR_RETURN(crypto::SecretBytes mac_key,
                     crypto::HkdfSha256(key, no_salt, kMacKeyInfo, kKekKeySize));
    ASSIGN_OR_RETURN(crypto::HmacSha256 mac, crypto::HmacSha256::Create(mac_key));
    return std::unique_ptr<Kek>(
        new SymmetricKek(std::move(description), std::move(key), std::move(mac)));
  }

  std::string Describe() const override { return description_; }

  absl::StatusOr<std::vector<uint8_t>> Seal(std::span<const uint8_t> aad,
                                            const crypto::SecretBytes& plaintext) const override {
    return crypto::SealAesGcm(key_, aad, plaintext.RevealSecret());
  }

  absl::StatusOr<crypto::SecretBytes> Open(std::span<const uint8_t> aad,
                                           std::span<const uint8_t> sealed) const override {
    return crypto::OpenAesGcm(key_, aad, sealed);
  }

  absl::StatusOr<std::array<uint8_t, 32>> Mac(std::span<const uint8_t> message) const override {
    return mac_.Mac(message);
  }

 private:
  static constexpr char kMacKeyInfo[] = "clade-state-mac-v1";
  SymmetricKek(std::string description, crypto::SecretBytes key, crypto::HmacSha256 mac)
      : description_(std::move(description)), key_(std::move(key)), mac_(std::move(mac)) {}

  std::string description_;
  crypto::SecretBytes key_;
  crypto::HmacSha256 mac_;  // keyed with HKDF(key_, "clade-state-mac-v1")
};

std::string PassphraseDescription(const std::string& env) {
  return absl::StrCat("passphrase from $", env);
}

// Copies the passphrase out of the environment. `for_new_state` adds the length rule.
absl::StatusOr<crypto::SecretBytes> ReadPassphrase(const std::string& env, bool for_new_state) {
  if (env.empty()) {
    return absl::InvalidArgumentError("no environment variable named for the KEK passphrase");
  }
  const char* value = std::getenv(env.c_str());
  if (value == nullptr || *value == '\0') {
    return absl::FailedPreconditionError(absl::StrCat("the KEK passphrase is read from $", env,
                                                      ", which is ",
                                                      value == nullptr ? "unset" : "empty"));
  }
  size_t len = std::strlen(value);
  if (for_new_state && len < kMinPassphraseLength) {
    return absl::InvalidArgumentError(absl::StrCat("the KEK passphrase in $", env, " is ", len,
                                                   " characters; it must be at least ",
                                                   kMinPassphraseLength));
  }
  return crypto::SecretBytes(reinterpret_cast<const uint8_t*>(value), len);
}

absl::StatusOr<std::unique_ptr<Kek>> DerivePassphraseKek(const std::string& env,
                                                         const crypto::SecretBytes& passphrase,
                                                         std::span<const uint8_t> salt,
                                                         const crypto::ScryptParams& scrypt) {
  auto key = crypto::Scrypt(passphrase, salt, scrypt, kKekKeySize);
  if (!key.ok()) {
    return Annotate(key.status(), "deriving the KEK from $" + env);
  }
  return SymmetricKek::Create(PassphraseDescription(env), std::move(key).value());
}

}  // namespace

absl::StatusOr<std::unique_ptr<Kek>> MakeKeyFileKek(const std::string& path,
                                                    crypto::SecretBytes key) {
  return SymmetricKek::Create(absl::StrCat("key file ", path), std::move(key));
}

absl::StatusOr<crypto::SecretBytes> ReadKeyFile(const std::string& path) {
  // Read straight into SecretBytes so the key has no other copy in memory.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) return Errno("cannot open the KEK key file", path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Errno("cannot stat the KEK key file", path);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("KEK key file ", path, " is not a regular file"));
  }
  RETURN_IF_ERROR(CheckPrivateFile(path));
  if (st.st_size != static_cast<off_t>(kKekKeySize)) {
    return absl::InvalidArgumentError(absl::StrCat("KEK key file ", path, " is ", st.st_size,
                                                   " bytes; it must be exactly ", kKekKeySize));
  }
  crypto::SecretBytes key(kKekKeySize);
  auto buf = key.RevealSecretMutable();
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::read(fd.get(), buf.data() + got, buf.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("cannot read the KEK key file", path);
    if (n == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("KEK key file ", path, " was shortened while being read"));
    }
    got += static_cast<size_t>(n);
  }
  return key;
}

absl::Status WriteNewKeyFile(const std::string& path, const crypto::SecretBytes& key) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) return Errno("cannot create the KEK key file", path);
  auto fail = [&](const std::string& what) {
    absl::Status s = Errno(what, path);
    ::close(fd.Release());
    ::unlink(path.c_str());
    return s;
  };
  // open() honours the umask, which can only remove bits; set 0600 exactly anyway.
  if (::fchmod(fd.get(), 0600) != 0) return fail("cannot chmod the KEK key file");
  auto bytes = key.RevealSecret();
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("cannot write the KEK key file");
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return fail("cannot fsync the KEK key file");
  if (::close(fd.Release()) != 0) {
    absl::Status s = Errno("cannot close the KEK key file", path);
    ::unlink(path.c_str());
    return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Kek>> NewPassphraseKek(const std::string& env, KekParams* params) {
  ASSIGN_OR_RETURN(crypto::SecretBytes passphrase, ReadPassphrase(env, /*for_new_state=*/true));
  params->kind = KekConfig::Kind::kPassphrase;
  params->key_file.clear();
  params->passphrase_env = env;
  params->salt = crypto::RandomBytes(kKekSaltSize);
  params->scrypt = crypto::ScryptParams{};  // N=2^15, r=8, p=1
  return DerivePassphraseKek(env, passphrase, params->salt, params->scrypt);
}

absl::StatusOr<std::unique_ptr<Kek>> OpenKek(const KekParams& params) {
  switch (params.kind) {
    case KekConfig::Kind::kKeyFile: {
      ASSIGN_OR_RETURN(crypto::SecretBytes key, ReadKeyFile(params.key_file));
      return MakeKeyFileKek(params.key_file, std::move(key));
    }
    case KekConfig::Kind::kPassphrase: {
      RETURN_IF_ERROR(CheckScryptParams(params.scrypt));
      if (params.salt.size() < kKekSaltSize) {
        return absl::DataLossError(absl::StrCat("the state's KEK salt is ", params.salt.size(),
                                                " bytes; expected ", kKekSaltSize));
      }
      ASSIGN_OR_RETURN(crypto::SecretBytes passphrase,
                       ReadPassphrase(params.passphrase_env, /*for_new_state=*/false));
      return DerivePassphraseKek(params.passphrase_env, passphrase, params.salt, params.scrypt);
    }
  }
  return absl::InternalError("unknown KEK kind");
}

absl::Status CheckScryptParams(const crypto::ScryptParams& params) {
  bool n_ok = params.n >= (1u << 14) && params.n <= (1u << 22) && (params.n & (params.n - 1)) == 0;
  if (!n_ok || params.r < 1 || params.r > 32 || params.p < 1 || params.p > 16) {
    return absl::DataLossError(absl::StrCat("the state's scrypt parameters N=", params.n,
                                            " r=", params.r, " p=", params.p,
                                            " are outside the accepted bounds"));
  }
  return absl::OkStatus();
}

}  // namespace clade::store
