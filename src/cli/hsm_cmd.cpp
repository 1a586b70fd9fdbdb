// `clade hsm …`: one HSM's identity and state.
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "cli/commands.h"
#include "crypto/digest.h"
#include "crypto/random.h"
#include "hsm/group.h"
#include "hsm/hsm.h"
#include "supplier/supplier.h"

namespace clade::cli {
namespace {

nlohmann::json CertJson(const hsm::CertSummary& c) {
  return {{"subject", c.subject},
          {"fingerprint", c.fingerprint},
          {"key_fingerprint", c.key_fingerprint},
          {"not_before", FormatTime(c.not_before)},
          {"not_after", FormatTime(c.not_after)}};
}

void PrintCert(const char* label, const hsm::CertSummary& c) {
  std::cout << label << "\n"
            << "  subject:          " << c.subject << "\n"
            << "  fingerprint:      " << c.fingerprint << "\n"
            << "  key fingerprint:  " << c.key_fingerprint << "\n"
            << "  valid:            " << FormatTime(c.not_before) << " to "
            << FormatTime(c.not_after) << "\n";
}

absl::StatusOr<store::KekConfig> KekFromFlags(const std::string& kind, const std::string& file) {
  store::KekConfig kek;
  if (kind == "key-file") {
    kek.kind = store::KekConfig::Kind::kKeyFile;
    kek.key_file = file;
  } else if (kind == "passphrase") {
    if (!file.empty()) {
      return absl::InvalidArgumentError("--kek-file applies only to --kek key-file");
    }
    kek.kind = store::KekConfig::Kind::kPassphrase;
  } else {
    return absl::InvalidArgumentError("unknown KEK provider '" + kind +
                                      "' (use key-file or passphrase)");
  }
  return kek;
}

void AddInit(CLI::App& hsm_cmd, Dispatch& dispatch) {
  struct Args {
    std::string state, supplier_dir, serial, kek = "key-file", kek_file;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = hsm_cmd.add_subcommand(
      "init",
      "Manufacture a new HSM in a state directory: its identity signing key (P-256 ECDSA) and "
      "wrap key (P-256 ECDH) are generated inside and stored only sealed under the KEK; the "
      "supplier's issuing CA certifies them; the supplier root becomes the HSM's trust anchor. "
      "Refuses a directory that already holds an HSM.");
  AddStateOption(*cmd, a->state, "HSM state directory (created, mode 0700)");
  cmd->add_option("--supplier", a->supplier_dir, "Supplier directory made by `clade supplier init`")
      ->required();
  cmd->add_option(
      "--serial", a->serial,
      "HSM serial number (letters, digits, . _ -); default: HSM- and 8 random hex digits");
  cmd->add_option("--kek", a->kek,
                  "Key-encryption key provider: key-file (default; a 32-byte key file, mode 0600) "
                  "or passphrase (scrypt over $CLADE_KEK_PASSPHRASE)")
      ->capture_default_str();
  cmd->add_option("--kek-file", a->kek_file,
                  "Key file path for --kek key-file (default STATE/kek.key)");
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(store::KekConfig kek, KekFromFlags(a->kek, a->kek_file));
    ASSIGN_OR_RETURN(auto sup, supplier::Supplier::Load(a->supplier_dir));
    std::string serial = a->serial;
    if (serial.empty()) serial = "HSM-" + crypto::Hex(crypto::RandomBytes(4));
    ASSIGN_OR_RETURN(auto h,
                     hsm::Hsm::Init(a->state, kek, serial, [&sup](const hsm::IdentityRequest& r) {
                       return sup.CertifyHsm(r);
                     }));
    hsm::HsmInfo info = h->Info();
    std::cout << "new HSM " << info.serial << " in " << a->state << "\n";
    PrintCert("identity certificate:", info.identity);
    PrintCert("wrap certificate:", info.wrap);
    std::cout << "KEK:                " << info.kek << "\n";
    return absl::OkStatus();
  });
}

void AddInfo(CLI::App& hsm_cmd, Dispatch& dispatch) {
  struct Args {
    std::string state;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = hsm_cmd.add_subcommand(
      "info",
      "Show an HSM: serial, identity and wrap certificates, trust anchor, KEK provider, "
      "groups");
  AddStateOption(*cmd, a->state);
  cmd->add_flag("--json", a->json, "Print JSON instead of text");
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
    hsm::HsmInfo info = h->Info();
    ASSIGN_OR_RETURN(auto groups, hsm::ListGroups(*h));
    nlohmann::json group_json = nlohmann::json::array();
    for (const auto& g : groups) {
      info.groups.push_back(g.name + " (" + g.group_id + ") as member " + g.member_id);
      group_json.push_back(
          {{"group_id", g.group_id}, {"name", g.name}, {"member_id", g.member_id}});
    }
    if (a->json) {
      nlohmann::json j = {{"serial", info.serial},
                          {"identity", CertJson(info.identity)},
                          {"wrap", CertJson(info.wrap)},
                          {"supplier_root", CertJson(info.supplier_root)},
                          {"kek", info.kek},
                          {"created_at", FormatTime(info.created_at)},
                          {"groups", group_json}};
      std::cout << j.dump(2) << "\n";
      return absl::OkStatus();
    }
    std::cout << "HSM serial:         " << info.serial << "\n"
              << "created:            " << FormatTime(info.created_at) << "\n";
    PrintCert("identity certificate:", info.identity);
    PrintCert("wrap certificate:", info.wrap);
    PrintCert("trust anchor (supplier root):", info.supplier_root);
    std::cout << "KEK:                " << info.kek << "\n"
              << "groups:             "
              << (info.groups.empty() ? std::string("none") : std::to_string(info.groups.size()))
              << "\n";
    for (const auto& g : info.groups) std::cout << "  " << g << "\n";
    return absl::OkStatus();
  });
}

void AddExportIdentity(CLI::App& hsm_cmd, Dispatch& dispatch) {
  struct Args {
    std::string state, out;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = hsm_cmd.add_subcommand(
      "export-identity",
      "Write OUT/identity-chain.pem (identity certificate, supplier issuing CA) and OUT/wrap.crt "
      "(PEM): what a peer needs to check that this HSM is genuine");
  AddStateOption(*cmd, a->state);
  cmd->add_option("--out", a->out, "Output directory (created if missing)")->required();
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
    RETURN_IF_ERROR(h->ExportIdentity(a->out));
    std::cout << a->out << "/identity-chain.pem\n" << a->out << "/wrap.crt\n";
    return absl::OkStatus();
  });
}

}  // namespace

void AddHsmCommands(CLI::App& app, Dispatch& dispatch) {
  CLI::App* hsm_cmd =
      app.add_subcommand("hsm",
                         "One HSM: manufacture it, inspect it, export its identity, run it as a "
                         "daemon (`serve`) and call a daemon (`call`)");
  hsm_cmd->require_subcommand(1);
  AddInit(*hsm_cmd, dispatch);
  AddInfo(*hsm_cmd, dispatch);
  AddExportIdentity(*hsm_cmd, dispatch);
}

}  // namespace clade::cli
