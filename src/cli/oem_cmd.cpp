// `clade oem …`: the OEM's CAs and job packages.
#include <iostream>

#include "absl/time/time.h"
#include "base/clock.h"
#include "base/files.h"
#include "cli/commands.h"
#include "crypto/cms.h"
#include "crypto/pem_files.h"
#include "hsm/job.h"
#include "oem/oem.h"

namespace clade::cli {
namespace {

// "2027-01-31" or "2027-01-31T12:00:00Z".
absl::StatusOr<int64_t> ParseDate(const std::string& text) {
  absl::Time t;
  std::string err;
  for (const char* fmt : {"%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"}) {
    if (absl::ParseTime(fmt, text, absl::UTCTimeZone(), &t, &err)) return absl::ToUnixSeconds(t);
  }
  return absl::InvalidArgumentError("invalid date '" + text +
                                    "' (use 2027-01-31 or 2027-01-31T12:00:00Z)");
}

void AddInit(CLI::App& oem, Dispatch& dispatch) {
  struct Args {
    std::string dir, name;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = oem.add_subcommand(
      "init",
      "Create the OEM's root CA and device-issuing CA (both P-256) in DIR: root.crt, issuing.crt "
      "(PEM) and root.key, issuing.key (PKCS#8 PEM, mode 0600). Refuses to overwrite. (Keeping "
      "these keys in the OEM's own HSM is outside Clade.)");
  cmd->add_option("--dir", a->dir, "Directory for the OEM's CA files")->required();
  cmd->add_option("--name", a->name, "OEM name, put in the certificates' O")->required();
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(auto o, oem::Oem::Init(a->dir, a->name));
    std::cout << "OEM root CA:          " << a->dir << "/root.crt\n"
              << "  fingerprint:        " << o.root().Fingerprint() << "\n"
              << "device-issuing CA:    " << a->dir << "/issuing.crt\n"
              << "keys (mode 0600):     " << a->dir << "/root.key, " << a->dir << "/issuing.key\n"
              << "next: give root.crt to the group (`clade group create --oem-root` or "
                 "`clade group trust-oem`)\n";
    return absl::OkStatus();
  });
}

void AddPackage(CLI::App& oem, Dispatch& dispatch) {
  struct Args {
    std::string dir, group_export, job, profile, firmware, config, expires, out, wrapped,
        supplier_root;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = oem.add_subcommand(
      "package",
      "Make a signed job package for a group: checks the group export up to the supplier root "
      "you pin with --supplier-root (the export's own copy must equal it), checks the device "
      "profile, wraps the device-issuing CA "
      "private key for the group encryption certificate as CMS (or takes --wrapped-ca-key, an "
      "envelope made with `openssl cms -encrypt -recip group-enc.crt`), adds firmware and "
      "config, and signs with the OEM root key. See docs/oem-guide.md and docs/profiles.md.");
  cmd->add_option("--dir", a->dir, "OEM directory made by `clade oem init`")->required();
  cmd->add_option("--group-export", a->group_export,
                  "Directory written by `clade group export` (group-ca-chain.pem, group-enc.crt, "
                  "supplier-root.crt)")
      ->required();
  cmd->add_option("--job", a->job, "Job id (letters, digits, . _ -)")->required();
  cmd->add_option("--profile", a->profile, "Device certificate profile, JSON")->required();
  cmd->add_option("--firmware", a->firmware, "Firmware image for every device");
  cmd->add_option("--config", a->config, "Configuration for every device");
  cmd->add_option("--expires", a->expires, "Expiry date of the package (2027-01-31)");
  cmd->add_option("--wrapped-ca-key", a->wrapped,
                  "CMS envelope of the device-issuing CA key made by the OEM itself (DER or PEM)");
  cmd->add_option("--supplier-root", a->supplier_root,
                  "The HSM supplier's root certificate (PEM) you trust, obtained apart from the "
                  "group export; the export's supplier-root.crt must equal it")
      ->required();
  cmd->add_option("--out", a->out, "Package file to write")->required();
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(auto o, oem::Oem::Load(a->dir));
    oem::PackageOptions opts;
    opts.job_id = a->job;
    opts.group_export_dir = a->group_export;
    ASSIGN_OR_RETURN(opts.profile_json, ReadFileString(a->profile, hsm::kMaxProfileJson));
    if (!a->firmware.empty()) {
      ASSIGN_OR_RETURN(opts.firmware, ReadFileBytes(a->firmware, hsm::kMaxJobPackage / 2));
    }
    if (!a->config.empty()) {
      ASSIGN_OR_RETURN(opts.config, ReadFileBytes(a->config, 1024 * 1024));
    }
    if (!a->expires.empty()) {
      ASSIGN_OR_RETURN(opts.expires_at, ParseDate(a->expires));
    }
    if (!a->wrapped.empty()) {
      ASSIGN_OR_RETURN(opts.wrapped_ca_key, ReadFileBytes(a->wrapped, 1024 * 1024));
    }
    ASSIGN_OR_RETURN(opts.pinned_supplier_root, crypto::ReadCertificateFile(a->supplier_root));
    ASSIGN_OR_RETURN(auto summary, o.Package(opts));
    RETURN_IF_ERROR(WriteFileAtomic(a->out, summary.package));
    std::cout << "job package: " << a->out << " (" << summary.package.size() << " bytes)\n"
              << "job: " << a->job << "\n"
              << "group id: " << summary.group_id << "\n"
              << "supplier root: " << summary.supplier_root_fingerprint << "\n"
              << "device CA key: "
              << (a->wrapped.empty() ? "wrapped by Clade for group-enc.crt"
                                     : "your envelope, " + a->wrapped)
              << "\n";
    return absl::OkStatus();
  });
}

}  // namespace

void AddOemCommands(CLI::App& app, Dispatch& dispatch) {
  CLI::App* oem = app.add_subcommand(
      "oem", "The OEM: its root and device-issuing CAs, and job packages wrapped for a group");
  oem->require_subcommand(1);
  AddInit(*oem, dispatch);
  AddPackage(*oem, dispatch);
}

}  // namespace clade::cli
