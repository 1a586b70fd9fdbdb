#include "line/chip_source.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

#include "base/files.h"
#include "crypto/key.h"
#include "crypto/x509.h"
#include "line/outside_command.h"

namespace clade::line {
namespace {

constexpr char kUidChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
constexpr char kFields[] = "uid, public_key, transport_cert, serial";

struct ManifestChip {
  std::string public_key;      // SPKI PEM as parsed and re-encoded; "" when not given
  std::string transport_cert;  // PEM; "" when not given
  std::optional<std::string> serial;
};

class ManifestChips : public ChipSource {
 public:
  ManifestChips(std::string where, std::vector<std::string> uids,
                std::map<std::string, ManifestChip> chips)
      : where_(std::move(where)), uids_(std::move(uids)), chips_(std::move(chips)) {}

  const std::vector<std::string>& Uids() const override { return uids_; }

  absl::StatusOr<std::string> RequestPem(const std::string& uid, bool hsm_mode) const override {
    auto it = chips_.find(uid);
    if (it == chips_.end()) return absl::NotFoundError("no chip " + uid + " in " + where_);
    const std::string& pem = hsm_mode ? it->second.transport_cert : it->second.public_key;
    if (pem.empty()) {
      return absl::FailedPreconditionError("chip " + uid + " in " + where_ + " has no " +
                                           (hsm_mode ? "transport_cert (hsm key mode needs one)"
                                                     : "public_key (device key mode needs one)"));
    }
    return pem;
  }

  absl::StatusOr<std::optional<std::string>> ProgrammedSerial(
      const std::string& uid) const override {
    auto it = chips_.find(uid);
    if (it == chips_.end()) return absl::NotFoundError("no chip " + uid + " in " + where_);
    return it->second.serial;
  }

  std::string Where() const override { return where_; }

 private:
  const std::string where_;
  const std::vector<std::string> uids_;
  const std::map<std::string, ManifestChip> chips_;
};

bool IsLowerHex(const std::string& s) {
  return !s.empty() && s.size() <= 64 &&
         s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// One record; `at` is "manifest F line N" for the errors.
absl::Status ParseRecord(std::string_view line, const std::string& at, std::string* uid,
                         ManifestChip* chip) {
  // nlohmann keeps the last of two equal keys: the parser's callback sees each key first.
  std::set<std::string> keys;
  std::string twice;
  auto on_event = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (depth == 1 && event == nlohmann::json::parse_event_t::key && parsed.is_string()) {
      if (!keys.insert(parsed.get<std::string>()).second && twice.empty()) {
        twice = parsed.get<std::string>();
      }
    }
    return true;
  };
  nlohmann::json j = nlohmann::json::parse(line, on_event, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(at + ": not a JSON object (one chip record per line)");
  }
  if (!twice.empty()) return absl::InvalidArgumentError(at + ": field " + twice + " appears twice");
  for (const auto& [key, value] : j.items()) {
    if (key != "uid" && key != "public_key" && key != "transport_cert" && key != "serial") {
      return absl::InvalidArgumentError(at + ": unknown field '" + key + "' (a chip record has " +
                                        kFields + ")");
    }
    if (!value.is_string()) {
      return absl::InvalidArgumentError(at + ": field " + key + " is not a string");
    }
  }
  if (!j.contains("uid")) return absl::InvalidArgumentError(at + ": no field uid");
  *uid = j["uid"].get<std::string>();
  if (absl::Status s = CheckChipUid(*uid); !s.ok()) {
    return absl::InvalidArgumentError(at + ": field uid: " + std::string(s.message()));
  }
  if (!j.contains("public_key") && !j.contains("transport_cert")) {
    return absl::InvalidArgumentError(at + ": chip " + *uid +
                                      " has neither public_key nor transport_cert");
  }
  if (j.contains("public_key")) {
    auto key = crypto::PublicKey::FromPem(j["public_key"].get<std::string>());
    if (!key.ok()) {
      return absl::InvalidArgumentError(at + ": field public_key of chip " + *uid + ": " +
                                        std::string(key.status().message()));
    }
    chip->public_key = key->ToPem();
  }
  if (j.contains("transport_cert")) {
    auto cert = crypto::Certificate::FromPem(j["transport_cert"].get<std::string>());
    if (!cert.ok()) {
      return absl::InvalidArgumentError(at + ": field transport_cert of chip " + *uid + ": " +
                                        std::string(cert.status().message()));
    }
    chip->transport_cert = cert->Pem();
  }
  if (j.contains("serial")) {
    std::string serial = j["serial"].get<std::string>();
    if (!IsLowerHex(serial)) {
      return absl::InvalidArgumentError(at + ": field serial of chip " + *uid + ": '" + serial +
                                        "' is not lower-case hex of 1..64 digits");
    }
    chip->serial = serial;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckChipUid(const std::string& uid) {
  if (uid.empty() || uid.size() > 128 || uid.find_first_not_of(kUidChars) != std::string::npos ||
      uid[0] == '.') {
    return absl::InvalidArgumentError("bad chip uid '" + uid +
                                      "': letters, digits, '.', '_', '-', 1..128, not "
                                      "starting with '.'");
  }
  return absl::OkStatus();
}

absl::Status NameChip(const std::string& uid, const absl::Status& s) {
  if (s.ok() || std::string(s.message()).find(uid) != std::string::npos) return s;
  return absl::Status(s.code(), "chip " + uid + ": " + std::string(s.message()));
}

absl::StatusOr<std::unique_ptr<ChipSource>> ParseChipManifest(std::string_view text,
                                                              const std::string& name) {
  if (text.size() > kMaxChipManifest) {
    return absl::InvalidArgumentError(name + " is " + std::to_string(text.size()) +
                                      " bytes, more than the limit of " +
                                      std::to_string(kMaxChipManifest));
  }
  std::vector<std::string> uids;
  std::map<std::string, ManifestChip> chips;
  std::map<std::string, size_t> line_of;
  size_t number = 0;
  for (size_t pos = 0; pos < text.size();) {
    ++number;
    const std::string at = name + " line " + std::to_string(number);
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) {
      return absl::InvalidArgumentError(at + ": truncated (the last line has no newline)");
    }
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.size() > kMaxChipManifestLine) {
      return absl::InvalidArgumentError(at + " is " + std::to_string(line.size()) +
                                        " bytes, more than the limit of " +
                                        std::to_string(kMaxChipManifestLine));
    }
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    std::string uid;
    ManifestChip chip;
    RETURN_IF_ERROR(ParseRecord(line, at, &uid, &chip));
    auto [it, fresh] = line_of.emplace(uid, number);
    if (!fresh) {
      return absl::InvalidArgumentError(at + ": chip " + uid + " is already on line " +
                                        std::to_string(it->second));
    }
    uids.push_back(uid);
    chips.emplace(uid, std::move(chip));
  }
  if (uids.empty()) return absl::InvalidArgumentError(name + " holds no chip");
  return std::unique_ptr<ChipSource>(new ManifestChips(name, std::move(uids), std::move(chips)));
}

absl::StatusOr<std::unique_ptr<ChipSource>> ReadChipManifest(const std::string& path) {
  ASSIGN_OR_RETURN(Bytes bytes, ReadFileBytesNoFollow(path, kMaxChipManifest));
  return ParseChipManifest(
      std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
      "manifest " + path);
}

absl::StatusOr<std::unique_ptr<ChipSource>> RunChipReader(const std::string& command,
                                                          const std::string& work_dir,
                                                          int timeout_seconds) {
  if (command.empty() || command.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("the chip reader command is empty");
  }
  if (timeout_seconds <= 0) {
    return absl::InvalidArgumentError("chip reader timeout must be at least 1 second, not " +
                                      std::to_string(timeout_seconds));
  }
  RETURN_IF_ERROR(MakeDirs(work_dir, 0700));
  std::string dir = work_dir + "/chips.XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) {
    return absl::InternalError("cannot make a directory in " + work_dir + ": " +
                               std::strerror(errno));
  }
  const std::string manifest = dir + "/chips.jsonl";
  const std::string log = dir + "/reader.log";
  constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  int out_fd = ::open(manifest.c_str(), kFlags, 0600);
  int log_fd = out_fd < 0 ? -1 : ::open(log.c_str(), kFlags, 0600);
  if (log_fd < 0) {
    int e = errno;
    if (out_fd >= 0) ::close(out_fd);
    return absl::InternalError("cannot create the chip reader's files in " + dir + ": " +
                               std::strerror(e));
  }
  OutsideCommand c{command, dir, {"CLADE_WORK_DIR=" + dir}, out_fd, log_fd, timeout_seconds};
  absl::StatusOr<CommandOutcome> run = RunOutsideCommand(c);
  ::close(out_fd);
  ::close(log_fd);
  if (!run.ok()) {
    return absl::InternalError("cannot run the chip reader: " +
                               std::string(run.status().message()));
  }
  if (run->timed_out) {
    return absl::DeadlineExceededError("chip reader timed out after " +
                                       std::to_string(timeout_seconds) + "s (output kept in " +
                                       dir + ")");
  }
  if (!run->Succeeded()) {
    std::string line = LastLogLine(log);
    return absl::AbortedError("chip reader failed: " + DescribeExit(run->wait_status) +
                              (line.empty() ? "" : ": " + line) + " (see " + log + ")");
  }
  ASSIGN_OR_RETURN(std::string text, ReadFileString(manifest, kMaxChipManifest));
  auto chips = ParseChipManifest(text, "chip reader '" + command + "'");
  if (!chips.ok()) {
    return absl::Status(chips.status().code(), std::string(chips.status().message()) +
                                                   " (output kept in " + manifest + ")");
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);  // a leftover is harmless: the next run makes another
  return chips;
}

}  // namespace clade::line
