// Checking an audit export offline against a group: who signed it, the hash chain, the
// checkpoints, and the member id every entry of the group claims. Every refusal names the entry.
#include <optional>
#include <set>

#include "base/clock.h"
#include "clade/v1/audit.pb.h"
#include "crypto/digest.h"
#include "crypto/signature.h"
#include "hsm/audit.h"
#include "hsm/group_statement.h"
#include "hsm/internal/group_records.h"
#include "wire/envelope.h"
#include "wire/strict.h"

namespace clade::hsm {
namespace {

constexpr size_t kDigestSize = 32;

std::span<const uint8_t> Span(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

absl::Status Refuse(const std::string& what) { return absl::PermissionDeniedError(what); }

std::string Entry(uint64_t seq) { return "audit entry " + std::to_string(seq); }
std::string Checkpoint(uint64_t seq) { return "checkpoint at entry " + std::to_string(seq); }

// Operations an HSM records before it has a member id in the group.
bool IsPreMembership(const std::string& operation) { return operation == audit_op::kRequest; }

// The member certificate, among the export's, that the group issued for the signer's key.
absl::StatusOr<std::pair<crypto::Certificate, MemberId>> FindMemberCert(
    const v1::AuditExport& ex, const crypto::PublicKey& signer_key,
    const internal::VerifiedGroupCa& group, const crypto::Certificate& root, int64_t now) {
  for (int i = 0; i < ex.member_certs_size(); ++i) {
    auto cert = internal::CertFromBytes(ex.member_certs(i), "member certificate");
    if (!cert.ok()) continue;
    if (!cert->SubjectKey().Equals(signer_key)) continue;
    if (!internal::VerifyIssuedByGroup(*cert, CertKind::kMember, group, root, now).ok()) continue;
    auto id = internal::MemberIdOf(*cert);
    if (!id.ok()) continue;
    return std::make_pair(*std::move(cert), *std::move(id));
  }
  return Refuse("the audit export is not from a member of group " + group.group_id);
}

// One position of the log as the export shows it: a whole entry, or (filtered exports) an entry
// of another group reduced to its links.
struct Position {
  uint64_t seq = 0;
  std::string prev_digest;
  std::vector<uint8_t> digest;
  const v1::AuditEntry* entry = nullptr;  // null for an elided entry
};

// Entry `seq` is not where it should be: out of order if the expected one comes later, else
// missing.
absl::Status MisplacedEntry(const std::vector<Position>& log, size_t pos) {
  uint64_t want = pos + 1;
  for (size_t j = pos + 1; j < log.size(); ++j) {
    if (log[j].seq == want) return Refuse(Entry(log[pos].seq) + " is out of order");
  }
  if (log[pos].seq < want) return Refuse(Entry(log[pos].seq) + " is out of order");
  return Refuse("audit entry missing before " + std::to_string(log[pos].seq));
}

// The entries shown and the entries elided, merged by seq (each list as the export orders it).
absl::StatusOr<std::vector<Position>> MergeLog(const v1::AuditExport& ex,
                                               const std::vector<v1::AuditEntry>& entries) {
  std::vector<Position> log;
  log.reserve(entries.size() + static_cast<size_t>(ex.elided_size()));
  size_t i = 0;
  int j = 0;
  while (i < entries.size() || j < ex.elided_size()) {
    bool take_entry =
        j == ex.elided_size() || (i < entries.size() && entries[i].seq() <= ex.elided(j).seq());
    if (take_entry) {
      if (j < ex.elided_size() && entries[i].seq() == ex.elided(j).seq()) {
        return Refuse(Entry(entries[i].seq()) + " is both shown and elided");
      }
      log.push_back(Position{entries[i].seq(), entries[i].prev_digest(),
                             crypto::Sha256(Span(ex.entries(static_cast<int>(i)))), &entries[i]});
      ++i;
    } else {
      const v1::ElidedAuditEntry& el = ex.elided(j);
      if (el.digest().size() != kDigestSize || el.prev_digest().size() != kDigestSize) {
        return absl::InvalidArgumentError("elided " + Entry(el.seq()) +
                                          " does not carry two 32-byte digests");
      }
      log.push_back(Position{el.seq(), el.prev_digest(),
                             std::vector<uint8_t>(el.digest().begin(), el.digest().end()),
                             nullptr});
      ++j;
    }
  }
  return log;
}

}  // namespace

absl::StatusOr<AuditReport> VerifyAuditExport(
    std::span<const uint8_t> export_bytes, const std::vector<crypto::Certificate>& group_ca_chain,
    const crypto::Certificate& supplier_root, const Clock& clock,
    const VerifiedStatement* statement) {
  const int64_t now = clock.Now();
  // 1. The envelope, signed by a genuine HSM.
  ASSIGN_OR_RETURN(wire::Envelope env,
                   wire::OpenMessage(export_bytes, kAuditExportType, kMaxAuditExport));
  if (env.signer_chain.size() != 2) {
    return Refuse(
        "the audit export's signer chain must be HSM identity, supplier issuing CA; it has " +
        std::to_string(env.signer_chain.size()) + " certificates");
  }
  auto signer = VerifyGenuineHsm(env.signer_chain[0], env.signer_chain[1], supplier_root, now);
  if (!signer.ok()) {
    return Refuse("the audit export is not signed by a genuine HSM: " +
                  std::string(signer.status().message()));
  }
  const crypto::PublicKey& signer_key = signer->identity.SubjectKey();
  ASSIGN_OR_RETURN(auto ex, wire::ParsePayload<v1::AuditExport>(env, kMaxAuditExport));

  // 2. The signer is a member of the group checked.
  ASSIGN_OR_RETURN(internal::VerifiedGroupCa group,
                   internal::VerifyGroupCaChain(group_ca_chain, supplier_root, now));
  ASSIGN_OR_RETURN(auto member, FindMemberCert(ex, signer_key, group, supplier_root, now));
  const std::string member_id = member.second.ToString();
  if (ex.hsm_serial() != signer->serial) {
    return Refuse("the audit export names HSM '" + ex.hsm_serial() + "' but is signed by HSM '" +
                  signer->serial + "'");
  }

  // A filtered export is for the group it names; only a filtered export elides entries.
  if (!ex.group_id().empty() && ex.group_id() != group.group_id) {
    return Refuse("the audit export is filtered to group " + ex.group_id() + ", not group " +
                  group.group_id);
  }
  if (ex.group_id().empty() && ex.elided_size() > 0) {
    return Refuse("the audit export is of the whole log but elides " +
                  std::to_string(ex.elided_size()) + " entries");
  }

  AuditReport report;
  report.hsm_serial = signer->serial;
  report.group_id = group.group_id;
  report.member_id = member_id;
  if (statement != nullptr && statement->group_id != group.group_id) {
    return Refuse("the group statement is for group " + statement->group_id +
                  ", the audit is checked against group " + group.group_id);
  }

  // 3. The entries: consecutive, each chained to the one before.
  std::vector<v1::AuditEntry> entries(static_cast<size_t>(ex.entries_size()));
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string& bytes = ex.entries(static_cast<int>(i));
    RETURN_IF_ERROR(wire::ParseStrict(crypto::AsBytes(bytes), entries[i],
                                      "audit entry at position " + std::to_string(i + 1),
                                      kMaxAuditExport));
  }
  ASSIGN_OR_RETURN(std::vector<Position> log, MergeLog(ex, entries));
  std::vector<std::vector<uint8_t>> digests;
  digests.reserve(log.size());
  for (size_t i = 0; i < log.size(); ++i) {
    const Position& p = log[i];
    const uint64_t seq = i + 1;
    if (p.seq != seq) return MisplacedEntry(log, i);
    if (seq == 1) {
      if (p.prev_digest != std::string(kDigestSize, '\0')) {
        return Refuse(Entry(1) + ": previous digest is not the zero digest of a first entry");
      }
    } else if (!crypto::ConstantTimeEquals(Span(p.prev_digest), digests.back())) {
      return Refuse(Entry(seq) + ": previous digest does not match entry " +
                    std::to_string(seq - 1));
    }
    digests.push_back(p.digest);
    if (p.entry == nullptr) continue;
    const v1::AuditEntry& e = *p.entry;
    if (!ex.group_id().empty() && e.group_id() != ex.group_id()) {
      return Refuse(Entry(seq) + " is of group " + e.group_id() + ", outside the export's group " +
                    ex.group_id());
    }
    if (e.group_id() != group.group_id) continue;
    if (e.member_id().empty()) {
      if (!IsPreMembership(e.operation())) {
        return Refuse(Entry(seq) + " (" + e.operation() + ") names no member id, the signer is " +
                      member_id);
      }
    } else if (e.member_id() != member_id) {
      return Refuse(Entry(seq) + " claims member id " + e.member_id() + ", the signer is " +
                    member_id);
    }
    if (statement != nullptr) {
      RETURN_IF_ERROR(CheckActBeforeRevocation(*statement, e.member_id(), e.time(),
                                               Entry(seq) + " (" + e.operation() + ")"));
    }
    ++report.counts[e.member_id()][e.operation()];
    report.events.push_back(AuditEvent{e.group_id(), e.member_id(), e.operation(), e.subject()});
  }
  const uint64_t n = log.size();

  // 4. The checkpoints: in order, each at an entry it matches, signed by the signer's identity
  // key, none further than kCheckpointInterval from the one before, the last at the last entry.
  uint64_t last = 0;
  for (const v1::AuditCheckpoint& cp : ex.checkpoints()) {
    const uint64_t seq = cp.seq();
    if (seq <= last) return Refuse(Checkpoint(seq) + " is out of order");
    if (seq > n) return Refuse(Checkpoint(seq) + " refers to a missing entry");
    if (!crypto::ConstantTimeEquals(Span(cp.entry_digest()), digests[seq - 1])) {
      return Refuse(Checkpoint(seq) + " does not match the entry");
    }
    std::vector<uint8_t> body =
        internal::CheckpointBodyBytes(seq, Span(cp.entry_digest()), cp.time(), ex.hsm_serial());
    if (!crypto::VerifyDsse(signer_key, internal::kAuditCheckpointType, body, Span(cp.signature()))
             .ok()) {
      return Refuse(Checkpoint(seq) + " is not signed by a member of group " + group.group_id);
    }
    if (seq - last > kCheckpointInterval) {
      return Refuse("audit entries " + std::to_string(last + 1) + " to " + std::to_string(seq) +
                    " are not covered by a checkpoint every " +
                    std::to_string(kCheckpointInterval) + " entries");
    }
    last = seq;
  }
  if (last != n) return Refuse("the last audit entries are not covered by a checkpoint");

  report.entries = n;
  report.elided = static_cast<uint64_t>(ex.elided_size());
  report.checkpoints = static_cast<uint64_t>(ex.checkpoints_size());
  return report;
}

}  // namespace clade::hsm
