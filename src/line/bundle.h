// The provisioning bundle: what a member issued for one device, as the files of one directory.
// The one owner of that directory's format, written by `clade provision --out` and by the exec
// programmer (its data directory), read by `clade device program --from`:
//   device.crt      the device certificate (PEM)                                   required
//   chain.pem       device-issuing CA, OEM root (PEM)                              required
//   device-key.cms  hsm key mode: the member-made key, CMS to the transport key    optional
//   device-key.pem  hsm key mode, plain keys allowed: PKCS#8 PEM, mode 0600        optional
//   firmware.bin    the job's firmware image                                       optional
//   config.bin      the job's config image                                         optional
//   record.msg      the member's signed ProvisioningRecord                         required
// Reading is strict: each file has a size limit, a symbolic link is refused (never followed),
// a missing required file and any file not listed above are named. programmer.log, the exec
// programmer's log of its command, is the one other name a data directory may hold.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "crypto/secret.h"
#include "crypto/x509.h"
#include "hsm/job.h"

namespace clade::line {

// What a programmer writes to one chip.
struct ProgramInput {
  std::vector<uint8_t> device_cert_der;
  std::vector<crypto::Certificate> chain;  // device-issuing CA, OEM root
  std::vector<uint8_t> key_envelope;       // hsm mode: CMS to the chip's transport certificate
  crypto::SecretBytes plain_key;           // hsm mode, plain keys allowed: PKCS#8 PEM
  std::vector<uint8_t> firmware;
  std::vector<uint8_t> config;

  static ProgramInput From(const hsm::ProvisioningData& data);
};

// How a bundle is written: durable (each file fsync'ed and renamed into place; `clade provision`)
// or scratch (each file created new, O_EXCL, no fsync: a fresh directory the exec programmer
// removes after its command).
enum class BundleWrite { kDurable, kScratch };

struct ProvisioningBundle {
  ProgramInput input;
  std::vector<uint8_t> record;  // the signed ProvisioningRecord message

  static ProvisioningBundle From(const hsm::ProvisioningData& data);

  // Writes the files into DIR (made 0755 if missing, for kDurable; kScratch expects DIR made).
  absl::Status Write(const std::string& dir, BundleWrite how) const;

  // Reads DIR as written by Write. Refusals name the file: "DIR/device.crt is a symbolic link;
  // refusing to follow it", "DIR/x.bin is not a file of a provisioning bundle (…)", "DIR has no
  // record.msg (a provisioning bundle holds …)", "DIR/firmware.bin is N bytes, more than …".
  static absl::StatusOr<ProvisioningBundle> Read(const std::string& dir);
};

// The same, from parts a caller holds (no copy of the images).
absl::Status WriteProvisioningBundle(const std::string& dir, const ProgramInput& input,
                                     const std::vector<uint8_t>& record, BundleWrite how);

inline constexpr char kBundlePlainKeyFile[] = "device-key.pem";
inline constexpr char kBundleProgrammerLog[] = "programmer.log";

}  // namespace clade::line
