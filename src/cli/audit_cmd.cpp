// `clade audit …`: export an HSM's audit log, and check an export offline against a group.
#include <iomanip>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "base/files.h"
#include "clade/v1/audit.pb.h"
#include "cli/commands.h"
#include "cli/offline_trust.h"
#include "crypto/x509.h"
#include "hsm/audit.h"
#include "hsm/group.h"
#include "hsm/hsm.h"
#include "wire/envelope.h"
#include "wire/strict.h"

namespace clade::cli {
namespace {

constexpr char kAuditHelp[] =
    "The audit log records every operation of an HSM (group create, announce, request, admit, "
    "join, policy, provisioning …), each entry naming the group and the member id that acted and "
    "carrying the SHA-256 of the entry before it. The HSM signs a checkpoint with its identity "
    "key every 64 entries and at every export. An auditor checks an export offline:\n"
    "  on the HSM:      clade audit export --state S [--group G] --out s.audit\n"
    "  or online:       clade hsm call export-audit --connect HOST:PORT --client OPDIR --out "
    "s.audit (an operator gets its own group's export)\n"
    "  any member:      clade group export --state A --group G --out g\n"
    "  auditor:         clade audit verify s.audit --group-export g";

void AddExport(CLI::App& audit, Dispatch& dispatch) {
  struct Args {
    std::string state, group, out;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = audit.add_subcommand(
      "export",
      "Write this HSM's whole audit log to FILE: every entry, every checkpoint (a new one is "
      "signed at the current end of the log), the HSM's member certificate for each group it is "
      "in, all in one message file signed by the HSM's identity key. With --group, only that "
      "group's entries and member certificate; the other groups' entries appear only as their "
      "digests, so the chain still verifies. Check it with `clade audit verify`.");
  cmd->footer(kAuditHelp);
  AddStateOption(*cmd, a->state);
  cmd->add_option("--group", a->group,
                  "Export only what this group may see: full id, unique id prefix, or name");
  cmd->add_option("--out", a->out, "Audit export file to write")->required();
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
    Bytes bytes;
    if (a->group.empty()) {
      ASSIGN_OR_RETURN(bytes, hsm::ExportAudit(*h));
    } else {
      ASSIGN_OR_RETURN(std::string gid, hsm::ResolveGroup(*h, a->group));
      ASSIGN_OR_RETURN(bytes, hsm::ExportGroupAudit(*h, gid));
    }
    RETURN_IF_ERROR(WriteFileAtomic(a->out, bytes));
    // Read back what was exported, for the operator.
    auto opened = wire::OpenMessageAs<clade::v1::AuditExport>(bytes, hsm::kMaxAuditExport);
    if (!opened.ok()) {
      return absl::InternalError("the audit export just made does not open: " +
                                 std::string(opened.status().message()));
    }
    const clade::v1::AuditExport& ex = opened->message;
    std::cout << "audit export: " << a->out << "\n"
              << "HSM: " << ex.hsm_serial() << "\n"
              << "entries: " << ex.entries_size() << "\n";
    if (!ex.group_id().empty()) {
      std::cout << "filtered to group: " << ex.group_id() << "\n"
                << "entries of other groups (digests only): " << ex.elided_size() << "\n";
    }
    std::cout << "checkpoints: " << ex.checkpoints_size() << "\n"
              << "groups: " << ex.member_certs_size() << "\n";
    return absl::OkStatus();
  });
}

void AddVerify(CLI::App& audit, Dispatch& dispatch) {
  struct Args {
    std::string file;
    OfflineTrustFlags trust;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = audit.add_subcommand(
      "verify",
      "Check an audit export offline against a group, and count the operations of that group by "
      "member id. Checked: the export is signed by a genuine HSM (supplier root → issuing CA → "
      "identity) that holds a member certificate of the group; the entries are consecutive and "
      "each carries the digest of the one before (nothing removed, reordered or edited); every "
      "checkpoint matches its entry and is signed by that member's identity key; no more than 64 "
      "entries between checkpoints and the last entry covered; every entry of the group claims "
      "the member id of the member certificate. Exits 1 naming the first check that failed.");
  cmd->footer(kAuditHelp);
  cmd->add_option("FILE", a->file, "Audit export file (from `clade audit export`)")->required();
  AddOfflineTrustOptions(*cmd, a->trust);
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(OfflineTrust trust, LoadOfflineTrust(a->trust));
    ASSIGN_OR_RETURN(Bytes bytes, ReadFileBytes(a->file, hsm::kMaxAuditExport));
    auto report = hsm::VerifyAuditExport(bytes, trust.group_ca_chain(), trust.supplier_root(),
                                         SystemClock(), trust.statement_or_null());
    if (!report.ok()) return Annotate(report.status(), a->file);
    std::cout << "audit of HSM " << report->hsm_serial << ": " << report->entries << " entries, "
              << report->checkpoints << " checkpoints, chain intact\n";
    if (report->elided > 0) {
      std::cout << report->elided << " entries of other groups shown as digests only\n";
    }
    std::cout << "group " << report->group_id << ", member id " << report->member_id << "\n";
    std::cout << std::left << std::setw(16) << "member id" << std::setw(24) << "operation"
              << "count\n";
    for (const auto& [id, ops] : report->counts) {
      for (const auto& [op, count] : ops) {
        std::cout << std::setw(16) << (id.empty() ? "-" : id) << std::setw(24) << op << count
                  << "\n";
      }
    }
    return absl::OkStatus();
  });
}

}  // namespace

void AddAuditCommands(CLI::App& app, Dispatch& dispatch) {
  CLI::App* audit = app.add_subcommand(
      "audit",
      "The HSM's audit log: export it signed, and check an export offline against a group");
  audit->require_subcommand(1);
  audit->footer(kAuditHelp);
  AddExport(*audit, dispatch);
  AddVerify(*audit, dispatch);
}

}  // namespace clade::cli
