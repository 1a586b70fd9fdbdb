// Writing the audit log: entries chained by SHA-256, signed checkpoints, and the signed export.
// Checking an export offline: audit_verify.cpp.
#include "hsm/audit.h"

#include <cstdio>

#include "base/clock.h"
#include "clade/v1/audit.pb.h"
#include "crypto/digest.h"
#include "crypto/signature.h"
#include "hsm/internal/group_records.h"
#include "wire/envelope.h"

namespace clade::hsm {
namespace internal {
namespace {

constexpr char kHeadKey[] = "head";
constexpr size_t kDigestSize = 32;
// The HSM serial, as Hsm::Init stores it.
constexpr char kHsmNs[] = "hsm";
constexpr char kSerialKey[] = "serial";

std::vector<uint8_t> ToVector(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

std::string ToString(std::span<const uint8_t> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

absl::StatusOr<v1::AuditHead> LoadHead(const store::Transaction& tx) {
  v1::AuditHead head;
  ASSIGN_OR_RETURN(auto bytes, tx.Get(kAuditHeadNs, kHeadKey));
  if (!bytes) {
    head.set_digest(std::string(kDigestSize, '\0'));
    return head;
  }
  ASSIGN_OR_RETURN(head, ParseStoredRow<v1::AuditHead>(*bytes, "audit head"));
  if (head.digest().size() != kDigestSize) {
    return absl::DataLossError("the HSM state holds a damaged audit head");
  }
  return head;
}

absl::StatusOr<std::string> LoadSerial(const store::Transaction& tx) {
  ASSIGN_OR_RETURN(auto serial, tx.GetString(kHsmNs, kSerialKey));
  if (!serial || serial->empty()) {
    return absl::DataLossError("the HSM state holds no serial number");
  }
  return *serial;
}

absl::Status WriteCheckpoint(store::Transaction& tx, const crypto::PrivateKey& identity_key,
                             uint64_t seq, const std::string& entry_digest, int64_t now) {
  ASSIGN_OR_RETURN(std::string serial, LoadSerial(tx));
  std::vector<uint8_t> body = CheckpointBodyBytes(seq, crypto::AsBytes(entry_digest), now, serial);
  ASSIGN_OR_RETURN(std::vector<uint8_t> sig,
                   crypto::SignDsse(identity_key, kAuditCheckpointType, body));
  v1::AuditCheckpoint cp;
  cp.set_seq(seq);
  cp.set_entry_digest(entry_digest);
  cp.set_time(now);
  cp.set_signature(ToString(sig));
  return tx.Put(kAuditCheckpointNs, AuditKey(seq), ToVector(cp.SerializeAsString()));
}

}  // namespace

std::string AuditKey(uint64_t seq) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020llu", static_cast<unsigned long long>(seq));
  return buf;
}

std::vector<uint8_t> CheckpointBodyBytes(uint64_t seq, std::span<const uint8_t> entry_digest,
                                         int64_t time, const std::string& hsm_serial) {
  v1::CheckpointBody body;
  body.set_seq(seq);
  body.set_entry_digest(ToString(entry_digest));
  body.set_time(time);
  body.set_hsm_serial(hsm_serial);
  return ToVector(body.SerializeAsString());
}

absl::Status AppendAudit(store::Transaction& tx, const crypto::PrivateKey& identity_key,
                         const AuditEvent& event, int64_t now) {
  if (event.operation.empty()) {
    return absl::InvalidArgumentError("an audit entry needs an operation");
  }
  ASSIGN_OR_RETURN(v1::AuditHead head, LoadHead(tx));
  v1::AuditEntry entry;
  entry.set_seq(head.seq() + 1);
  entry.set_time(now);
  entry.set_group_id(event.group_id);
  entry.set_member_id(event.member_id);
  entry.set_operation(event.operation);
  entry.set_subject(event.subject);
  entry.set_prev_digest(head.digest());
  std::vector<uint8_t> bytes = ToVector(entry.SerializeAsString());
  RETURN_IF_ERROR(tx.Put(kAuditNs, AuditKey(entry.seq()), bytes));

  std::vector<uint8_t> digest = crypto::Sha256(bytes);
  head.set_seq(entry.seq());
  head.set_digest(ToString(digest));
  RETURN_IF_ERROR(tx.Put(kAuditHeadNs, kHeadKey, ToVector(head.SerializeAsString())));
  if (entry.seq() % kCheckpointInterval == 0) {
    RETURN_IF_ERROR(WriteCheckpoint(tx, identity_key, entry.seq(), head.digest(), now));
  }
  return absl::OkStatus();
}

}  // namespace internal

namespace {

// The whole log (`group_id` empty), or the log as group `group_id` may see it: its own entries
// whole, every other entry reduced to its place in the chain (seq and digests), and only its own
// member certificate (docs/state.md, "Audit log").
absl::StatusOr<std::vector<uint8_t>> Export(Hsm& hsm, const std::string& group_id) {
  const int64_t now = hsm.clock().Now();
  // Unsealed before the transaction: the store refuses a transaction inside another.
  ASSIGN_OR_RETURN(crypto::PrivateKey identity_key, hsm.IdentityKey());
  v1::AuditExport out;
  out.set_hsm_serial(hsm.identity().serial);
  out.set_exported_at(now);
  out.set_group_id(group_id);
  RETURN_IF_ERROR(hsm.state().Update([&](store::Transaction& tx) -> absl::Status {
    if (!group_id.empty()) {
      ASSIGN_OR_RETURN(auto m, internal::LoadMembership(tx, group_id));
      if (!m) return absl::NotFoundError("this HSM is not a member of group '" + group_id + "'");
    }
    ASSIGN_OR_RETURN(v1::AuditHead head, internal::LoadHead(tx));
    if (head.seq() > 0) {
      ASSIGN_OR_RETURN(auto existing,
                       tx.Get(internal::kAuditCheckpointNs, internal::AuditKey(head.seq())));
      if (!existing) {
        RETURN_IF_ERROR(
            internal::WriteCheckpoint(tx, identity_key, head.seq(), head.digest(), now));
      }
    }
    size_t total = 0;
    auto add_size = [&](size_t n) -> absl::Status {
      total += n;
      if (total > kMaxAuditExport) {
        return absl::ResourceExhaustedError("the audit log is larger than the export limit of " +
                                            std::to_string(kMaxAuditExport) + " bytes");
      }
      return absl::OkStatus();
    };

    ASSIGN_OR_RETURN(auto entries, tx.List(internal::kAuditNs));
    if (entries.size() != head.seq()) {
      return absl::DataLossError(
          "the HSM state holds a damaged audit log: " + std::to_string(entries.size()) +
          " entries stored, the head is " + std::to_string(head.seq()));
    }
    for (const auto& [key, bytes] : entries) {
      if (!group_id.empty()) {
        ASSIGN_OR_RETURN(auto e,
                         internal::ParseStoredRow<v1::AuditEntry>(bytes, "audit entry " + key));
        if (e.group_id() != group_id) {
          v1::ElidedAuditEntry* el = out.add_elided();
          el->set_seq(e.seq());
          el->set_prev_digest(e.prev_digest());
          el->set_digest(internal::ToString(crypto::Sha256(bytes)));
          RETURN_IF_ERROR(add_size(80));
          continue;
        }
      }
      RETURN_IF_ERROR(add_size(bytes.size()));
      out.add_entries(internal::ToString(bytes));
    }
    ASSIGN_OR_RETURN(auto checkpoints, tx.List(internal::kAuditCheckpointNs));
    for (const auto& [key, bytes] : checkpoints) {
      RETURN_IF_ERROR(add_size(bytes.size()));
      ASSIGN_OR_RETURN(*out.add_checkpoints(), internal::ParseStoredRow<v1::AuditCheckpoint>(
                                                   bytes, "audit checkpoint " + key));
    }
    ASSIGN_OR_RETURN(auto memberships, internal::LoadAllMemberships(tx));
    for (const auto& m : memberships) {
      if (!group_id.empty() && m.group().group_id() != group_id) continue;
      RETURN_IF_ERROR(add_size(m.member_cert().size()));
      out.add_member_certs(m.member_cert());
    }
    return absl::OkStatus();
  }));
  std::string payload = out.SerializeAsString();
  if (payload.size() + 64 * 1024 > kMaxAuditExport) {
    return absl::ResourceExhaustedError("the audit log is larger than the export limit of " +
                                        std::to_string(kMaxAuditExport) + " bytes");
  }
  return wire::SealMessage(kAuditExportType, crypto::AsBytes(payload), identity_key,
                           hsm.IdentityChain());
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> ExportAudit(Hsm& hsm) { return Export(hsm, ""); }

absl::StatusOr<std::vector<uint8_t>> ExportGroupAudit(Hsm& hsm, const std::string& group_id) {
  if (group_id.empty()) return absl::InvalidArgumentError("a group audit export needs a group");
  return Export(hsm, group_id);
}

}  // namespace clade::hsm
