// `clade line status` and `clade line reconcile`: what the line database says, and whether the
// members' audit logs agree with it.
#include <algorithm>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/files.h"
#include "cli/commands.h"
#include "cli/offline_trust.h"
#include "crypto/x509.h"
#include "hsm/audit.h"
#include "hsm/group.h"
#include "line/device_db.h"
#include "line/reconcile.h"

namespace clade::cli {
namespace {

constexpr size_t kListed = 20;  // failures and lost attempts listed by `line status`

constexpr char kReconcileFooter[] =
    "After a line run, each member's audit log says which certificates it issued for the job; the "
    "line database says which chips carry which certificate and every time a device was sent:\n"
    "  on each member:  clade audit export --state S --out s1.audit\n"
    "  any member:      clade group export --state A --group G --out g\n"
    "  the line:        clade line reconcile --db TRAY/line.db --job J --group-export g "
    "s1.audit s2.audit …";

// "1.2 812, 1.1 600": most first.
std::string ByMember(const std::map<std::string, size_t>& counts) {
  std::vector<std::pair<std::string, size_t>> sorted(counts.begin(), counts.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::string> parts;
  for (const auto& [member, n] : sorted) parts.push_back(absl::StrCat(member, " ", n));
  return absl::StrJoin(parts, ", ");
}

absl::Status PrintJobStatus(const line::DeviceDb& db, const std::string& job_id) {
  ASSIGN_OR_RETURN(auto devices, db.Devices(job_id));
  ASSIGN_OR_RETURN(auto attempts, db.Attempts(job_id));
  std::map<line::DeviceStatus, size_t> by_status;
  std::map<std::string, size_t> done_by_member;
  std::vector<const line::DeviceRow*> failed;
  for (const auto& [uid, d] : devices) {
    ++by_status[d.status];
    if (d.status == line::DeviceStatus::kDone) {
      ++done_by_member[d.member_id + " (" + d.member_serial + ")"];
    }
    if (d.status == line::DeviceStatus::kFailed) failed.push_back(&d);
  }
  std::map<line::AttemptOutcome, size_t> by_outcome;
  std::vector<const line::AttemptRow*> lost;
  for (const auto& a : attempts) {
    ++by_outcome[a.outcome];
    if (a.outcome == line::AttemptOutcome::kLost) lost.push_back(&a);
  }
  std::cout << "job " << job_id << ": " << devices.size() << " devices: ";
  std::vector<std::string> parts;
  for (auto s : {line::DeviceStatus::kDone, line::DeviceStatus::kFailed,
                 line::DeviceStatus::kPending, line::DeviceStatus::kSent}) {
    parts.push_back(absl::StrCat(by_status[s], " ", line::DeviceStatusName(s)));
  }
  std::cout << absl::StrJoin(parts, ", ") << "\n";
  parts.clear();
  for (const auto& [o, n] : by_outcome) {
    parts.push_back(absl::StrCat(n, " ", line::AttemptOutcomeName(o)));
  }
  std::cout << "  attempts: " << attempts.size()
            << (parts.empty() ? "" : " (" + absl::StrJoin(parts, ", ") + ")") << "\n";
  if (!done_by_member.empty())
    std::cout << "  done by member: " << ByMember(done_by_member) << "\n";
  if (!failed.empty()) {
    std::cout << "  failed ("
              << (failed.size() > kListed ? absl::StrCat("first ", kListed, " of ") : std::string())
              << failed.size() << "):\n";
    for (size_t i = 0; i < failed.size() && i < kListed; ++i) {
      std::cout << "    " << failed[i]->uid << ": "
                << (failed[i]->error.empty() ? "no reason recorded" : failed[i]->error) << "\n";
    }
  }
  if (!lost.empty()) {
    std::cout << "  attempts lost ("
              << (lost.size() > kListed ? absl::StrCat("first ", kListed, " of ") : std::string())
              << lost.size() << "):\n";
    for (size_t i = 0; i < lost.size() && i < kListed; ++i) {
      const line::AttemptRow& a = *lost[i];
      std::cout << "    " << a.uid << ": attempt " << a.id << " to member " << a.member_id << " ("
                << a.member_serial << (a.member_address.empty() ? "" : " at " + a.member_address)
                << "): " << (a.error.empty() ? "no answer" : a.error) << "\n";
    }
  }
  return absl::OkStatus();
}

// --db, required: the database `line run` wrote.
void AddLineDbOption(CLI::App& cmd, std::string& db) {
  cmd.add_option("--db", db, "The line database (TRAY/line.db unless `line run --db` said)")
      ->required();
}

void AddStatus(CLI::App& line, Dispatch& dispatch) {
  struct Args {
    std::string db, job;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = line.add_subcommand(
      "status",
      "Show what the line database records, per job: devices done, failed, pending and in flight "
      "(sent); the attempts by outcome; the devices done per member; the first 20 failures with "
      "their reasons and the first 20 attempts lost (sent to a member whose answer never came). "
      "Safe while the line runs: the database is read, never changed.");
  AddLineDbOption(*cmd, a->db);
  cmd->add_option("--job", a->job, "Only this job (default: every job in the database)");
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(auto db, line::DeviceDb::OpenExisting(a->db));
    std::vector<std::string> jobs;
    if (!a->job.empty()) {
      jobs.push_back(a->job);
    } else {
      ASSIGN_OR_RETURN(jobs, db->Jobs());
    }
    std::cout << "line database " << a->db << "\n";
    if (jobs.empty()) std::cout << "no devices yet\n";
    for (const std::string& job : jobs) {
      ASSIGN_OR_RETURN(auto devices, db->Devices(job));
      if (devices.empty()) {
        return absl::NotFoundError("no devices of job " + job + " in " + a->db);
      }
      RETURN_IF_ERROR(PrintJobStatus(*db, job));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<hsm::AuditReport>> VerifyAudits(const std::vector<std::string>& files,
                                                           const OfflineTrustFlags& flags) {
  ASSIGN_OR_RETURN(OfflineTrust trust, LoadOfflineTrust(flags));
  std::vector<hsm::AuditReport> reports;
  for (const std::string& file : files) {
    ASSIGN_OR_RETURN(Bytes bytes, ReadFileBytes(file, hsm::kMaxAuditExport));
    auto report = hsm::VerifyAuditExport(bytes, trust.group_ca_chain(), trust.supplier_root(),
                                         SystemClock(), trust.statement_or_null());
    if (!report.ok()) return Annotate(report.status(), file);
    std::cout << "audit of HSM " << report->hsm_serial << " (member " << report->member_id
              << "): " << report->entries << " entries, chain intact\n";
    reports.push_back(*std::move(report));
  }
  return reports;
}

void AddReconcile(CLI::App& line, Dispatch& dispatch) {
  struct Args {
    std::string db, job;
    OfflineTrustFlags trust;
    std::vector<std::string> audits;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = line.add_subcommand(
      "reconcile",
      "Check a job's line database against the audit exports of the group's members. Each export "
      "is verified first (as `clade audit verify`). Then: every device done carries a certificate "
      "that exactly one audit entry names, by the member the database names; every certificate a "
      "member issued for the job that no chip carries is explained by an attempt of this line (the "
      "member's answer never arrived, or programming the chip failed), each attempt explaining at "
      "most one; no export is given twice and no two claim the same member id. Prints a summary "
      "and one line per explained certificate; exits 1 listing the problems if any. Give the "
      "export of every member that served the line: a certificate from a member left out shows "
      "as a problem.");
  cmd->footer(kReconcileFooter);
  AddLineDbOption(*cmd, a->db);
  cmd->add_option("--job", a->job, "The job to reconcile")->required();
  cmd->add_option("AUDIT_EXPORT", a->audits,
                  "Audit export files (`clade audit export`), one per member")
      ->required();
  AddOfflineTrustOptions(*cmd, a->trust);
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(auto db, line::DeviceDb::OpenExisting(a->db));
    ASSIGN_OR_RETURN(auto audits, VerifyAudits(a->audits, a->trust));
    ASSIGN_OR_RETURN(line::ReconcileReport r, line::Reconcile(*db, a->job, audits));
    if (r.done + r.failed + r.pending == 0 && r.issued == 0) {
      return absl::NotFoundError("no devices of job " + a->job + " in " + a->db +
                                 " and no certificate issued for it in the audits");
    }
    size_t delivered = 0;
    for (const auto& [member, n] : r.delivered_by_member) delivered += n;
    std::string summary = absl::StrCat(r.done, " devices done");
    if (r.failed > 0) absl::StrAppend(&summary, ", ", r.failed, " failed");
    if (r.pending > 0) absl::StrAppend(&summary, ", ", r.pending, " pending");
    absl::StrAppend(&summary, "; ", delivered, " certificates delivered");
    if (delivered > 0) absl::StrAppend(&summary, ": ", ByMember(r.delivered_by_member));
    absl::StrAppend(&summary, "; ", r.undelivered, " issued but never delivered");
    if (r.undelivered > 0 && r.undelivered_explained == r.undelivered) {
      absl::StrAppend(&summary, ", each explained by an attempt of this line");
    } else if (r.undelivered > 0) {
      absl::StrAppend(&summary, ", ", r.undelivered_explained,
                      " of them explained by an attempt of this line");
    }
    absl::StrAppend(&summary, "; ", r.problems.size(),
                    r.problems.size() == 1 ? " problem" : " problems");
    std::cout << summary << "\n";
    for (const std::string& e : r.explanations) std::cout << "  " << e << "\n";
    if (!r.ok()) {
      for (const std::string& p : r.problems) std::cout << "PROBLEM " << p << "\n";
      constexpr size_t kNamed = 10;  // in the error; stdout has them all
      std::vector<std::string> named(
          r.problems.begin(),
          r.problems.begin() + static_cast<std::ptrdiff_t>(std::min(r.problems.size(), kNamed)));
      return absl::FailedPreconditionError(
          absl::StrCat("job ", a->job, " does not reconcile, ", r.problems.size(), " problem",
                       r.problems.size() == 1 ? "" : "s", ": ", absl::StrJoin(named, "; "),
                       r.problems.size() > kNamed ? "; …" : ""));
    }
    return absl::OkStatus();
  });
}

}  // namespace

void AddLineCheckCommands(CLI::App& line, Dispatch& dispatch) {
  AddStatus(line, dispatch);
  AddReconcile(line, dispatch);
}

}  // namespace clade::cli
