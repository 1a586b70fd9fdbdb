// Reconcile: the line database against the members' audit logs, by certificate serial.
#include "line/reconcile.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace clade::line {
namespace {

// One provision entry of the job in some member's audit log.
struct Issue {
  std::string member_id;
  std::string hsm_serial;
  std::string uid;
  std::string serial;  // as written
  std::string key;     // Normalized(serial)
};

// Serials compare as numbers written in hex: case and leading zeros do not matter.
std::string Normalized(std::string_view serial) {
  std::string s;
  for (char c : serial) s.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  size_t zeros = s.find_first_not_of('0');
  if (zeros == std::string::npos) return s.empty() ? s : "0";
  return s.substr(zeros);
}

// A provision subject, as src/hsm/provision.cpp writes it: "<job>/<uid> serial <hex>[ plain-key]".
// Returns false for a subject of another job; `ok` false for one of this job that does not parse.
bool ParseSubject(const std::string& subject, const std::string& job_id, std::string& uid,
                  std::string& serial, bool& ok) {
  const std::string prefix = job_id + "/";
  if (!subject.starts_with(prefix)) return false;
  std::string_view rest(subject);
  rest.remove_prefix(prefix.size());
  constexpr std::string_view kSerial = " serial ";
  size_t at = rest.find(kSerial);
  ok = at != std::string_view::npos && at > 0;
  if (!ok) return true;
  uid = std::string(rest.substr(0, at));
  rest.remove_prefix(at + kSerial.size());
  serial = std::string(rest.substr(0, rest.find(' ')));
  ok = !serial.empty() && serial.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
  return true;
}

bool IsProvision(const std::string& operation) {
  return operation == hsm::audit_op::kProvision || operation == hsm::audit_op::kReissue;
}

std::string Why(const AttemptRow& a) {
  if (!a.error.empty()) return a.error;
  return a.outcome == AttemptOutcome::kLost ? "no answer" : "programming failed";
}

}  // namespace

absl::StatusOr<ReconcileReport> Reconcile(const DeviceDb& db, const std::string& job_id,
                                          const std::vector<hsm::AuditReport>& audits) {
  ReconcileReport r;
  ASSIGN_OR_RETURN(auto devices, db.Devices(job_id));
  ASSIGN_OR_RETURN(std::vector<AttemptRow> attempts, db.Attempts(job_id));

  // 1. The audits: one per HSM, one HSM per member id, one group; their provision entries.
  std::set<std::string> hsms;
  std::map<std::string, std::string> hsm_of_member;
  std::vector<Issue> issues;
  for (const hsm::AuditReport& audit : audits) {
    if (!hsms.insert(audit.hsm_serial).second) {
      r.problems.push_back("the audit of HSM " + audit.hsm_serial +
                           " is given twice (its entries are counted once)");
      continue;
    }
    if (audit.group_id != audits.front().group_id) {
      r.problems.push_back("the audit of HSM " + audit.hsm_serial + " is of group " +
                           audit.group_id + ", the audit of HSM " + audits.front().hsm_serial +
                           " of group " + audits.front().group_id);
    }
    auto [it, fresh] = hsm_of_member.emplace(audit.member_id, audit.hsm_serial);
    if (!fresh) {
      r.problems.push_back("HSMs " + it->second + " and " + audit.hsm_serial +
                           " both claim member id " + audit.member_id);
    }
    for (const hsm::AuditEvent& e : audit.events) {
      if (!IsProvision(e.operation)) continue;
      Issue issue;
      bool parsed = false;
      if (!ParseSubject(e.subject, job_id, issue.uid, issue.serial, parsed)) continue;
      if (!parsed) {
        r.problems.push_back("the audit of HSM " + audit.hsm_serial + " has a " + e.operation +
                             " entry that names no uid and serial: '" + e.subject + "'");
        continue;
      }
      issue.member_id = e.member_id.empty() ? audit.member_id : e.member_id;
      issue.hsm_serial = audit.hsm_serial;
      issue.key = Normalized(issue.serial);
      issues.push_back(std::move(issue));
    }
  }
  r.issued = issues.size();
  std::multimap<std::string, const Issue*> by_serial;
  for (const Issue& i : issues) by_serial.emplace(i.key, &i);

  // 2. Every done device: exactly one entry names its certificate, by its member, for its uid.
  std::set<std::string> carried;  // normalized serials on done chips
  for (const auto& [uid, d] : devices) {
    if (d.status == DeviceStatus::kFailed) ++r.failed;
    if (d.status == DeviceStatus::kPending || d.status == DeviceStatus::kSent) ++r.pending;
    if (d.status != DeviceStatus::kDone) continue;
    ++r.done;
    const std::string key = Normalized(d.cert_serial);
    carried.insert(key);
    const std::string done = "device " + uid + " is done with serial " + d.cert_serial;
    auto [first, last] = by_serial.equal_range(key);
    const auto named = static_cast<size_t>(std::distance(first, last));
    if (d.cert_serial.empty()) {
      r.problems.push_back("device " + uid +
                           " is done but the line recorded no certificate serial");
    } else if (named == 0) {
      std::string hint;
      if (!hsm_of_member.contains(d.member_id)) {
        hint = " (no audit of member " + d.member_id + " was given)";
      }
      r.problems.push_back(done + " but no audit names that certificate" + hint);
    } else if (named > 1) {
      r.problems.push_back(
          absl::StrCat(done, " but that certificate is named by ", named, " audit entries"));
    } else if (first->second->member_id != d.member_id) {
      r.problems.push_back(done + " from member " + d.member_id +
                           " (per the line), but the audit of member " + first->second->member_id +
                           " names that certificate");
    } else if (first->second->uid != uid) {
      r.problems.push_back(done + " but the audit of member " + first->second->member_id +
                           " names that certificate for " + first->second->uid);
    } else {
      ++r.delivered_by_member[d.member_id];
    }
  }

  // 3. Every certificate issued that no chip carries: an attempt of this line explains it — first
  // a program-failed attempt with that very serial, then an answer with that serial the line
  // refused (answer_check.h), then any lost attempt of that uid on that member (each used once).
  std::vector<const Issue*> undelivered;
  for (const Issue& i : issues) {
    if (!carried.contains(i.key)) undelivered.push_back(&i);
  }
  r.undelivered = undelivered.size();
  std::vector<bool> used(attempts.size(), false);
  std::vector<const AttemptRow*> explained_by(undelivered.size(), nullptr);
  for (const AttemptOutcome outcome :
       {AttemptOutcome::kProgramFailed, AttemptOutcome::kRefused, AttemptOutcome::kLost}) {
    for (size_t u = 0; u < undelivered.size(); ++u) {
      if (explained_by[u] != nullptr) continue;
      const Issue& i = *undelivered[u];
      for (size_t k = 0; k < attempts.size(); ++k) {
        const AttemptRow& a = attempts[k];
        if (used[k] || a.outcome != outcome || a.uid != i.uid || a.member_id != i.member_id) {
          continue;
        }
        if (outcome != AttemptOutcome::kLost && Normalized(a.cert_serial) != i.key) {
          continue;
        }
        used[k] = true;
        explained_by[u] = &a;
        break;
      }
    }
  }
  for (size_t u = 0; u < undelivered.size(); ++u) {
    const Issue& i = *undelivered[u];
    const AttemptRow* a = explained_by[u];
    if (a == nullptr) {
      r.problems.push_back("member " + i.member_id + " issued serial " + i.serial + " for " +
                           i.uid + ", which no chip carries and no attempt of this line explains");
      continue;
    }
    ++r.undelivered_explained;
    r.explanations.push_back(absl::StrCat(i.uid, ": serial ", i.serial, " by ", i.member_id,
                                          " never delivered: ", Why(*a), " (attempt ", a->id, ")"));
  }
  return r;
}

}  // namespace clade::line
