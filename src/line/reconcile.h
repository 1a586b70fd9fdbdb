// Reconciling a line's devices with what the members say they issued: every chip done carries a
// certificate exactly one member's audit log names, and every certificate a member issued for the
// job that no chip carries is explained by an attempt of this line (the member's answer never
// arrived, or programming the chip failed). Anything else is a problem for a person to look at:
// a certificate no one accounts for, or a chip whose certificate no audit names.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "hsm/audit.h"
#include "line/device_db.h"

namespace clade::line {

struct ReconcileReport {
  size_t done = 0, failed = 0, pending = 0;  // devices of the job (pending includes sent)
  // Done devices whose certificate exactly one audit entry names, by that entry's member id.
  std::map<std::string, size_t> delivered_by_member;
  size_t issued = 0;  // provision entries of the job in all audits (each export counted once)
  // Issued certificates (provision entries) whose serial no done chip carries, and how many of
  // them an attempt of this line explains; the others are problems.
  size_t undelivered = 0;
  size_t undelivered_explained = 0;
  // One line per explained certificate: "U: serial S by 1.2 never delivered: WHY (attempt 17)".
  std::vector<std::string> explanations;
  std::vector<std::string> problems;
  bool ok() const { return problems.empty(); }
};

// `audits` are the verified exports of the members of the job's group (hsm::VerifyAuditExport),
// one per HSM. The rules:
//  - every done device has exactly one provision entry (provision or provision.reissue) with its
//    cert serial, by the member id the database names, for its uid;
//  - every provision entry of the job whose serial no done device carries is explained by an
//    attempt of that uid on that member id: program-failed with that serial, or lost (each lost
//    attempt explains at most one entry);
//  - each HSM's export is given once, no two exports claim the same member id, and all are of
//    one group.
// Failed and pending devices are counted, not problems. The error is for a database that cannot
// be read.
absl::StatusOr<ReconcileReport> Reconcile(const DeviceDb& db, const std::string& job_id,
                                          const std::vector<hsm::AuditReport>& audits);

}  // namespace clade::line
