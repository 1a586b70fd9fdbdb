#include "line/bundle.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <system_error>

#include "base/files.h"
#include "crypto/cms.h"
#include "crypto/key.h"
#include "wire/envelope.h"

namespace clade::line {
namespace {

constexpr size_t kMaxImage = hsm::kMaxJobPackage;

struct BundleFile {
  const char* name;
  size_t limit;
  bool required;
};
// The files of a bundle, in the order they are written and named in messages.
constexpr BundleFile kFiles[] = {
    {"device.crt", crypto::kMaxChainPem, true},
    {"chain.pem", crypto::kMaxChainPem, true},
    {"device-key.cms", crypto::kMaxCmsSize, false},
    {kBundlePlainKeyFile, crypto::kMaxKeyEncoding, false},
    {"firmware.bin", kMaxImage, false},
    {"config.bin", kMaxImage, false},
    {"record.msg", wire::kMaxMessageSize, true},
};
constexpr char kListing[] =
    "a provisioning bundle holds device.crt, chain.pem and record.msg, and may hold "
    "device-key.cms, device-key.pem, firmware.bin and config.bin";

// A file of a fresh scratch directory: created new (O_EXCL, never through a link), no fsync.
absl::Status WriteScratch(const std::string& path, const void* data, size_t size, int mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return absl::InternalError("cannot create " + path + ": " + std::strerror(errno));
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = errno;
      ::close(fd);
      return absl::InternalError("cannot write " + path + ": " + std::strerror(e));
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    return absl::InternalError("cannot write " + path + ": " + std::strerror(errno));
  }
  return absl::OkStatus();
}

}  // namespace

ProgramInput ProgramInput::From(const hsm::ProvisioningData& data) {
  ProgramInput in;
  in.device_cert_der = data.device_cert_der;
  in.chain = data.chain;
  in.key_envelope = data.key_envelope;
  auto plain = data.plain_key.RevealSecret();
  in.plain_key = crypto::SecretBytes(plain.data(), plain.size());
  in.firmware.assign(data.firmware.begin(), data.firmware.end());
  in.config.assign(data.config.begin(), data.config.end());
  return in;
}

ProvisioningBundle ProvisioningBundle::From(const hsm::ProvisioningData& data) {
  return ProvisioningBundle{ProgramInput::From(data), data.record};
}

absl::Status ProvisioningBundle::Write(const std::string& dir, BundleWrite how) const {
  return WriteProvisioningBundle(dir, input, record, how);
}

absl::Status WriteProvisioningBundle(const std::string& dir, const ProgramInput& input,
                                     const std::vector<uint8_t>& record, BundleWrite how) {
  ASSIGN_OR_RETURN(crypto::Certificate cert, crypto::Certificate::FromDer(input.device_cert_der));
  if (how == BundleWrite::kDurable) RETURN_IF_ERROR(MakeDirs(dir));
  auto put = [&](const char* name, const void* data, size_t size, int mode) {
    std::string path = dir + "/" + name;
    return how == BundleWrite::kDurable ? WriteFileAtomic(path, data, size, mode)
                                        : WriteScratch(path, data, size, mode);
  };
  std::string cert_pem = cert.Pem();
  std::string chain_pem = crypto::Certificate::ChainToPem(input.chain);
  RETURN_IF_ERROR(put("device.crt", cert_pem.data(), cert_pem.size(), 0644));
  RETURN_IF_ERROR(put("chain.pem", chain_pem.data(), chain_pem.size(), 0644));
  if (!input.key_envelope.empty()) {
    RETURN_IF_ERROR(
        put("device-key.cms", input.key_envelope.data(), input.key_envelope.size(), 0600));
  }
  if (!input.plain_key.empty()) {
    auto key = input.plain_key.RevealSecret();
    RETURN_IF_ERROR(put(kBundlePlainKeyFile, key.data(), key.size(), 0600));
  }
  if (!input.firmware.empty()) {
    RETURN_IF_ERROR(put("firmware.bin", input.firmware.data(), input.firmware.size(), 0644));
  }
  if (!input.config.empty()) {
    RETURN_IF_ERROR(put("config.bin", input.config.data(), input.config.size(), 0644));
  }
  return put("record.msg", record.data(), record.size(), 0644);
}

absl::StatusOr<ProvisioningBundle> ProvisioningBundle::Read(const std::string& dir) {
  // The listing first: a planted link or a stray file is refused before any file is read.
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec)
    return absl::NotFoundError("cannot open provisioning bundle " + dir + ": " + ec.message());
  std::map<std::string, bool> present;
  for (const auto& entry : it) {
    std::string name = entry.path().filename().string();
    if (name == kBundleProgrammerLog) continue;
    bool known = false;
    for (const BundleFile& f : kFiles) known = known || name == f.name;
    if (!known) {
      return absl::InvalidArgumentError(
          dir + "/" + name + " is not a file of a provisioning bundle (" + kListing + ")");
    }
    if (entry.is_symlink(ec)) {
      return absl::FailedPreconditionError(dir + "/" + name +
                                           " is a symbolic link; refusing to follow it");
    }
    present[name] = true;
  }
  std::map<std::string, Bytes> files;
  for (const BundleFile& f : kFiles) {
    if (!present.count(f.name)) {
      if (f.required) return absl::NotFoundError(dir + " has no " + f.name + " (" + kListing + ")");
      continue;
    }
    // No-follow again: the listing and the open are two moments.
    ASSIGN_OR_RETURN(files[f.name], ReadFileBytesNoFollow(dir + "/" + f.name, f.limit));
  }
  auto text = [&](const char* name) {
    const Bytes& b = files[name];
    return std::string(b.begin(), b.end());
  };
  auto named = [&](const char* name, const absl::Status& s) {
    return absl::Status(s.code(), dir + "/" + name + ": " + std::string(s.message()));
  };
  ProvisioningBundle b;
  auto cert = crypto::Certificate::FromPem(text("device.crt"));
  if (!cert.ok()) return named("device.crt", cert.status());
  b.input.device_cert_der = cert->Der();
  auto chain = crypto::Certificate::ChainFromPem(text("chain.pem"));
  if (!chain.ok()) return named("chain.pem", chain.status());
  b.input.chain = *std::move(chain);
  b.input.key_envelope = std::move(files["device-key.cms"]);
  b.input.plain_key = crypto::SecretBytes::Adopt(files[kBundlePlainKeyFile]);
  b.input.firmware = std::move(files["firmware.bin"]);
  b.input.config = std::move(files["config.bin"]);
  b.record = std::move(files["record.msg"]);
  return b;
}

}  // namespace clade::line
