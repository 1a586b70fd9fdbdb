#include "hsm/enrollment.h"

#include <algorithm>

#include "base/clock.h"
#include "crypto/cms.h"
#include "crypto/digest.h"
#include "crypto/random.h"
#include "crypto/signature.h"
#include "hsm/audit.h"
#include "hsm/internal/group_records.h"
#include "hsm/internal/statements.h"
#include "wire/envelope.h"
#include "wire/strict.h"

namespace clade::hsm {
namespace {

using internal::ToBytes;

absl::Status Refuse(const std::string& what) { return absl::PermissionDeniedError(what); }
absl::Status Refuse(const std::string& prefix, const absl::Status& why) {
  return absl::PermissionDeniedError(prefix + ": " + std::string(why.message()));
}

std::string Bytes(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }
std::vector<uint8_t> Digest(std::span<const uint8_t> bytes) { return crypto::Sha256(bytes); }
std::string DigestKey(const std::string& digest) {
  return crypto::Hex({reinterpret_cast<const uint8_t*>(digest.data()), digest.size()});
}

absl::Status RequireNonce(const std::string& nonce, const std::string& type) {
  if (nonce.size() != 32) {
    return absl::InvalidArgumentError("malformed message: " + type + " nonce must be 32 bytes");
  }
  return absl::OkStatus();
}

// The signer of a protocol message must be a genuine HSM: chain = [identity, supplier issuing].
absl::StatusOr<GenuineHsm> GenuineSigner(const wire::Envelope& env, const crypto::Certificate& root,
                                         int64_t now, const std::string& who) {
  if (env.signer_chain.size() != 2) {
    return Refuse(who +
                  " is not a genuine HSM: the signer chain must be an HSM identity "
                  "certificate and the supplier issuing CA");
  }
  auto genuine = VerifyGenuineHsm(env.signer_chain[0], env.signer_chain[1], root, now);
  if (!genuine.ok()) return Refuse(who + " is not a genuine HSM", genuine.status());
  return genuine;
}

template <typename M>
absl::StatusOr<std::optional<M>> GetRecord(const store::Transaction& tx, const char* ns,
                                           const std::string& key) {
  ASSIGN_OR_RETURN(auto bytes, tx.Get(ns, key));
  if (!bytes) return std::optional<M>();
  ASSIGN_OR_RETURN(M m, internal::ParseStoredRow<M>(*bytes, std::string(ns) + " record"));
  return std::optional<M>(std::move(m));
}

absl::Status PutRecord(store::Transaction& tx, const char* ns, const std::string& key,
                       const google::protobuf::MessageLite& m) {
  std::string s = m.SerializeAsString();
  return tx.Put(ns, key, std::vector<uint8_t>(s.begin(), s.end()));
}

// `key` is the HSM's identity key, unsealed by the caller before its transaction starts (the
// store does not nest transactions).
absl::StatusOr<std::vector<uint8_t>> Seal(const Hsm& hsm, const crypto::PrivateKey& key,
                                          const char* type,
                                          const google::protobuf::MessageLite& m) {
  std::string payload = m.SerializeAsString();
  return wire::SealMessage(type, crypto::AsBytes(payload), key, hsm.IdentityChain());
}

absl::Status CheckKeyMatches(const crypto::PrivateKey& key, const crypto::Certificate& cert,
                             const std::string& name) {
  if (!key.Public().Equals(cert.SubjectKey())) {
    return Refuse("unwrapped " + name + " key does not match the " + name + " certificate");
  }
  return absl::OkStatus();
}

std::string NotForYou(const std::string& for_serial, const std::string& serial) {
  return "the announcement admits only " + for_serial + ", not " + serial;
}

}  // namespace

// Enrollment (patent FIG. 2), announce: the sponsor offers its group to a candidate.
absl::StatusOr<std::vector<uint8_t>> Announce(Hsm& sponsor, const std::string& group_id,
                                              const AnnounceOptions& options) {
  const int64_t now = sponsor.clock().Now();
  const int64_t valid_for = options.valid_for;
  if (valid_for < 1 || valid_for > kMaxAnnouncementValidity) {
    return absl::InvalidArgumentError("an announcement is valid for 1 second to 30 days");
  }
  if (!options.for_serial.empty() && !CheckSerialSyntax(options.for_serial).ok()) {
    return absl::InvalidArgumentError("--for '" + options.for_serial +
                                      "' is not an HSM serial number");
  }
  if (options.for_serial == sponsor.identity().serial) {
    return absl::InvalidArgumentError("an announcement cannot be for the sponsor itself (" +
                                      options.for_serial + ")");
  }
  ASSIGN_OR_RETURN(auto identity_key, sponsor.IdentityKey());
  std::vector<uint8_t> sealed;
  RETURN_IF_ERROR(sponsor.state().Update([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto m, internal::LoadMembership(tx, group_id));
    if (!m) return absl::NotFoundError("this HSM is not a member of group '" + group_id + "'");
    v1::GroupAnnouncement ann;
    ann.set_group_id(group_id);
    ann.set_group_name(m->group().group_name());
    *ann.mutable_group_ca_chain() = m->group().group_ca_chain();
    ann.set_sponsor_member_cert(m->member_cert());
    ann.set_sponsor_member_id(m->member_id());
    ann.set_nonce(Bytes(crypto::RandomBytes(32)));
    ann.set_issued_at(now);
    ann.set_expires_at(now + valid_for);
    ann.set_for_serial(options.for_serial);
    ASSIGN_OR_RETURN(sealed, Seal(sponsor, identity_key, kAnnouncementType, ann));
    v1::IssuedAnnouncement rec;
    rec.set_group_id(group_id);
    rec.set_expires_at(ann.expires_at());
    rec.set_for_serial(options.for_serial);
    RETURN_IF_ERROR(PutRecord(tx, internal::kAnnouncementNs, crypto::Hex(Digest(sealed)), rec));
    std::string subject = "expires " + FormatTime(ann.expires_at());
    if (!options.for_serial.empty()) subject += " for " + options.for_serial;
    return internal::AppendAudit(
        tx, identity_key, AuditEvent{group_id, m->member_id(), audit_op::kAnnounce, subject}, now);
  }));
  return sealed;
}

// Enrollment (patent FIG. 2), request: the candidate answers the announcement with its request.
absl::StatusOr<std::vector<uint8_t>> RequestEnrollment(Hsm& candidate,
                                                       std::span<const uint8_t> announcement) {
  const int64_t now = candidate.clock().Now();
  const crypto::Certificate& root = candidate.supplier_root();
  ASSIGN_OR_RETURN(wire::Envelope env, wire::OpenMessage(announcement, kAnnouncementType));
  ASSIGN_OR_RETURN(auto ann, wire::ParsePayload<v1::GroupAnnouncement>(env));
  RETURN_IF_ERROR(RequireNonce(ann.nonce(), env.type));
  RETURN_IF_ERROR(internal::CheckGroupName(ann.group_name()));
  ASSIGN_OR_RETURN(GenuineHsm sponsor, GenuineSigner(env, root, now, "sponsor"));
  if (now > ann.expires_at()) {
    return Refuse("announcement expired at " + FormatTime(ann.expires_at()));
  }
  if (ann.issued_at() > now + kClockSkew) {
    return Refuse("announcement issued in the future (" + FormatTime(ann.issued_at()) + ")");
  }
  if (ann.expires_at() - ann.issued_at() > kMaxAnnouncementValidity) {
    return Refuse("announcement is valid for more than 30 days");
  }
  // Refused early, so that the candidate records no request the sponsor would refuse.
  if (!ann.for_serial().empty() && ann.for_serial() != candidate.identity().serial) {
    return Refuse(NotForYou(ann.for_serial(), candidate.identity().serial));
  }
  auto chain = internal::ChainFromBytes(ann.group_ca_chain(), "group CA chain");
  if (!chain.ok()) return Refuse("group CA is not genuine", chain.status());
  ASSIGN_OR_RETURN(auto group, internal::VerifyGroupCaChain(*chain, root, now));
  if (ann.group_id() != group.group_id) {
    return Refuse("group id " + ann.group_id() + " does not match the group CA key (" +
                  group.group_id + ")");
  }
  auto member = internal::CertFromBytes(ann.sponsor_member_cert(), "sponsor's member certificate");
  if (!member.ok()) {
    return Refuse("sponsor's member certificate is not issued by the group CA", member.status());
  }
  absl::Status issued = internal::VerifyIssuedByGroup(*member, CertKind::kMember, group, root, now);
  if (!issued.ok()) {
    return Refuse("sponsor's member certificate is not issued by the group CA", issued);
  }
  if (!member->SubjectKey().Equals(sponsor.identity.SubjectKey())) {
    return Refuse("sponsor's member certificate is not bound to the sponsor's identity key");
  }
  ASSIGN_OR_RETURN(MemberId sponsor_id, internal::MemberIdOf(*member));
  if (sponsor_id.ToString() != ann.sponsor_member_id()) {
    return Refuse("sponsor's member certificate names member id " + sponsor_id.ToString() +
                  ", the announcement " + ann.sponsor_member_id());
  }

  v1::EnrollmentRequest req;
  req.set_announcement_digest(Bytes(Digest(announcement)));
  req.set_group_id(group.group_id);
  req.set_wrap_cert(ToBytes(candidate.wrap_cert()));
  req.set_nonce(Bytes(crypto::RandomBytes(32)));
  req.set_requested_at(now);
  ASSIGN_OR_RETURN(auto identity_key, candidate.IdentityKey());
  std::vector<uint8_t> sealed;
  RETURN_IF_ERROR(candidate.state().Update([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto existing, internal::LoadMembership(tx, group.group_id));
    if (existing) {
      return Refuse("this HSM is already a member of group " + group.group_id + " (as " +
                    existing->member_id() + ")");
    }
    ASSIGN_OR_RETURN(sealed, Seal(candidate, identity_key, kRequestType, req));
    v1::PendingRequest pending;
    pending.set_group_id(group.group_id);
    pending.set_sponsor_identity(ToBytes(sponsor.identity));
    pending.set_sponsor_member_id(sponsor_id.ToString());
    pending.set_group_ca_digest(Bytes(Digest(group.group_ca.Der())));
    pending.set_announcement_expires_at(ann.expires_at());
    pending.set_requested_at(now);
    pending.set_group_name(ann.group_name());
    RETURN_IF_ERROR(PutRecord(tx, internal::kPendingNs, crypto::Hex(Digest(sealed)), pending));
    return internal::AppendAudit(
        tx, identity_key,
        AuditEvent{group.group_id, "", audit_op::kRequest,
                   "sponsor " + sponsor.serial + " (" + sponsor_id.ToString() + ")"},
        now);
  }));
  return sealed;
}

// Enrollment (patent FIG. 2), admit: the sponsor admits the candidate under the next child id.
absl::StatusOr<Admission> Admit(Hsm& sponsor, std::span<const uint8_t> request,
                                const crypto::Certificate* online_candidate) {
  const int64_t now = sponsor.clock().Now();
  const crypto::Certificate& root = sponsor.supplier_root();
  ASSIGN_OR_RETURN(wire::Envelope env, wire::OpenMessage(request, kRequestType));
  ASSIGN_OR_RETURN(auto req, wire::ParsePayload<v1::EnrollmentRequest>(env));
  RETURN_IF_ERROR(RequireNonce(req.nonce(), env.type));
  ASSIGN_OR_RETURN(GenuineHsm cand, GenuineSigner(env, root, now, "candidate"));
  if (online_candidate != nullptr && !(*online_candidate == env.signer_chain[0])) {
    return Refuse("request is signed by " + cand.serial +
                  ", not by the HSM that sent it (an HSM sends only its own request)");
  }
  auto wrap = internal::CertFromBytes(req.wrap_cert(), "candidate's wrap certificate");
  if (!wrap.ok()) return Refuse("candidate's wrap certificate is not genuine", wrap.status());
  absl::Status wrap_ok = VerifyHsmWrapCert(*wrap, cand, root, now);
  if (!wrap_ok.ok()) return Refuse("candidate's wrap certificate is not genuine", wrap_ok);
  if (cand.serial == sponsor.identity().serial ||
      cand.identity.SubjectKey().Equals(sponsor.identity().identity.SubjectKey())) {
    return Refuse("candidate " + cand.serial + " is this HSM itself");
  }

  ASSIGN_OR_RETURN(auto identity_key, sponsor.IdentityKey());
  Admission out;
  out.candidate_serial = cand.serial;
  RETURN_IF_ERROR(sponsor.state().Update([&](store::Transaction& tx) -> absl::Status {
    std::string ann_key = DigestKey(req.announcement_digest());
    ASSIGN_OR_RETURN(auto rec,
                     GetRecord<v1::IssuedAnnouncement>(tx, internal::kAnnouncementNs, ann_key));
    if (!rec) return Refuse("request does not answer an announcement of this sponsor");
    if (rec->used()) {
      return Refuse("announcement was already used (it admitted " + rec->admitted_serial() +
                    " as " + rec->admitted_member_id() + ")");
    }
    if (now > rec->expires_at()) {
      return Refuse("announcement expired at " + FormatTime(rec->expires_at()));
    }
    if (req.group_id() != rec->group_id()) {
      return Refuse("request is for group " + req.group_id() + ", the announcement for group " +
                    rec->group_id());
    }
    if (!rec->for_serial().empty() && rec->for_serial() != cand.serial) {
      return Refuse(NotForYou(rec->for_serial(), cand.serial));
    }
    if (online_candidate != nullptr && rec->for_serial().empty()) {
      return Refuse(
          "the announcement names no HSM; online, an HSM is admitted only on an announcement "
          "made for its serial (clade group announce --for " +
          cand.serial + ")");
    }
    ASSIGN_OR_RETURN(auto m, internal::LoadMembership(tx, rec->group_id()));
    if (!m)
      return absl::NotFoundError("this HSM is no longer a member of group " + rec->group_id());
    const auto& deny = m->group().deny_serials();
    const auto& allow = m->group().allow_serials();
    if (std::find(deny.begin(), deny.end(), cand.serial) != deny.end()) {
      return Refuse("candidate " + cand.serial + " is on the deny list");
    }
    if (!allow.empty() && std::find(allow.begin(), allow.end(), cand.serial) == allow.end()) {
      return Refuse("candidate " + cand.serial + " is not on the allow list");
    }
    ASSIGN_OR_RETURN(auto statement, internal::LoadStatement(tx, m->group(), root, now));
    RETURN_IF_ERROR(internal::CheckCandidate(statement, cand.serial));
    for (const auto& child : m->children()) {
      if (child.hsm_serial() == cand.serial) {
        return Refuse("candidate " + cand.serial + " is already enrolled as " + child.member_id());
      }
    }
    ASSIGN_OR_RETURN(MemberId own_id, MemberId::Parse(m->member_id()));
    ASSIGN_OR_RETURN(MemberId child_id, own_id.Child(uint64_t{m->child_counter()} + 1));
    ASSIGN_OR_RETURN(auto chain,
                     internal::ChainFromBytes(m->group().group_ca_chain(), "group CA chain"));
    ASSIGN_OR_RETURN(auto group, internal::VerifyGroupCaChain(chain, root, now));
    ASSIGN_OR_RETURN(auto keys, internal::LoadGroupKeys(tx, rec->group_id()));
    ASSIGN_OR_RETURN(auto member_cert, internal::IssueMemberCert(
                                           group, keys.group_ca, cand.identity.SubjectKey(),
                                           child_id, cand.serial, m->group().group_name(), now));
    // The group secrets are wrapped for the candidate's wrap certificate only (docs/protocol.md,
    // "Who signs with what").
    crypto::SecretBytes secrets = internal::SerializeSecrets(keys);
    ASSIGN_OR_RETURN(auto wrapped, crypto::CmsEncrypt(secrets.RevealSecret(), *wrap));

    v1::EnrollmentResponse resp;
    resp.set_request_digest(Bytes(Digest(request)));
    resp.set_member_id(child_id.ToString());
    resp.set_member_cert(ToBytes(member_cert));
    *resp.mutable_group() = m->group();
    resp.set_wrapped_secrets(Bytes(wrapped));
    resp.set_sponsor_member_id(m->member_id());
    resp.set_issued_at(now);
    if (statement) resp.set_group_statement(Bytes(statement->message));
    ASSIGN_OR_RETURN(out.response, Seal(sponsor, identity_key, kResponseType, resp));

    // Persisted in this transaction, before the response leaves: ids are never reused
    // (docs/protocol.md, "Member ids"; patent FIG. 4).
    rec->set_used(true);
    rec->set_admitted_serial(cand.serial);
    rec->set_admitted_member_id(child_id.ToString());
    RETURN_IF_ERROR(PutRecord(tx, internal::kAnnouncementNs, ann_key, *rec));
    m->set_child_counter(m->child_counter() + 1);
    v1::EnrolledChild* child = m->add_children();
    child->set_member_id(child_id.ToString());
    child->set_hsm_serial(cand.serial);
    child->set_enrolled_at(now);
    RETURN_IF_ERROR(internal::SaveMembership(tx, *m));
    out.member_id = child_id.ToString();
    return internal::AppendAudit(tx, identity_key,
                                 AuditEvent{rec->group_id(), m->member_id(), audit_op::kAdmit,
                                            cand.serial + " as " + child_id.ToString()},
                                 now);
  }));
  return out;
}

// Enrollment (patent FIG. 2), join: the candidate joins with the sponsor's response.
absl::StatusOr<Joined> Join(Hsm& candidate, std::span<const uint8_t> response) {
  const int64_t now = candidate.clock().Now();
  const crypto::Certificate& root = candidate.supplier_root();
  ASSIGN_OR_RETURN(wire::Envelope env, wire::OpenMessage(response, kResponseType));
  ASSIGN_OR_RETURN(auto resp, wire::ParsePayload<v1::EnrollmentResponse>(env));
  ASSIGN_OR_RETURN(GenuineHsm sponsor, GenuineSigner(env, root, now, "sponsor"));
  ASSIGN_OR_RETURN(auto wrap_key, candidate.WrapKey());
  ASSIGN_OR_RETURN(auto identity_key, candidate.IdentityKey());

  Joined out;
  RETURN_IF_ERROR(candidate.state().Update([&](store::Transaction& tx) -> absl::Status {
    std::string pending_key = DigestKey(resp.request_digest());
    ASSIGN_OR_RETURN(auto pending,
                     GetRecord<v1::PendingRequest>(tx, internal::kPendingNs, pending_key));
    if (!pending) return Refuse("response does not answer a pending request");
    if (ToBytes(sponsor.identity) != pending->sponsor_identity()) {
      return Refuse("response is not from the sponsor of the announcement");
    }
    const v1::GroupPublic& pub = resp.group();
    if (pub.group_id() != pending->group_id()) {
      return Refuse("response is for group " + pub.group_id() + ", the pending request for group " +
                    pending->group_id());
    }
    if (pub.group_name() != pending->group_name()) {
      return Refuse("response names the group '" + pub.group_name() + "', the announcement '" +
                    pending->group_name() + "'");
    }
    if (resp.sponsor_member_id() != pending->sponsor_member_id()) {
      return Refuse("response names sponsor " + resp.sponsor_member_id() + ", the announcement " +
                    pending->sponsor_member_id());
    }
    // The sponsor admits only on an unexpired announcement; a response dated later is not one.
    if (resp.issued_at() > pending->announcement_expires_at() + kClockSkew) {
      return Refuse("response was issued at " + FormatTime(resp.issued_at()) +
                    ", after the announcement expired at " +
                    FormatTime(pending->announcement_expires_at()));
    }
    auto chain = internal::ChainFromBytes(pub.group_ca_chain(), "group CA chain");
    if (!chain.ok()) return Refuse("group CA is not genuine", chain.status());
    if (Bytes(Digest((*chain)[0].Der())) != pending->group_ca_digest()) {
      return Refuse("response carries another group CA than was announced");
    }
    ASSIGN_OR_RETURN(auto group, internal::VerifyGroupCaChain(*chain, root, now));
    ASSIGN_OR_RETURN(auto existing, internal::LoadMembership(tx, group.group_id));
    if (existing) {
      return Refuse("this HSM is already a member of group " + group.group_id + " (as " +
                    existing->member_id() + ")");
    }
    auto member = internal::CertFromBytes(resp.member_cert(), "member certificate");
    if (!member.ok())
      return Refuse("member certificate is not issued by the group CA", member.status());
    absl::Status issued =
        internal::VerifyIssuedByGroup(*member, CertKind::kMember, group, root, now);
    if (!issued.ok()) return Refuse("member certificate is not issued by the group CA", issued);
    if (!member->SubjectKey().Equals(candidate.identity().identity.SubjectKey())) {
      return Refuse("member certificate does not bind this HSM's identity key");
    }
    ASSIGN_OR_RETURN(MemberId sponsor_id, MemberId::Parse(pending->sponsor_member_id()));
    auto id = MemberId::Parse(resp.member_id());
    if (!id.ok() || !id->IsChildOf(sponsor_id)) {
      return Refuse("member id " + resp.member_id() + " is not directly below the sponsor's id " +
                    sponsor_id.ToString());
    }
    ASSIGN_OR_RETURN(MemberId cert_id, internal::MemberIdOf(*member));
    if (!(cert_id == *id)) {
      return Refuse("member certificate names member id " + cert_id.ToString() + ", the response " +
                    id->ToString());
    }
    auto enc = internal::CertFromBytes(pub.encryption_cert(), "group encryption certificate");
    if (!enc.ok()) return Refuse("group encryption certificate is not genuine", enc.status());
    absl::Status enc_ok =
        internal::VerifyIssuedByGroup(*enc, CertKind::kGroupEncryption, group, root, now);
    if (!enc_ok.ok()) return Refuse("group encryption certificate is not genuine", enc_ok);
    auto sign = internal::CertFromBytes(pub.signing_cert(), "group signing certificate");
    if (!sign.ok()) return Refuse("group signing certificate is not genuine", sign.status());
    absl::Status sign_ok =
        internal::VerifyIssuedByGroup(*sign, CertKind::kGroupSigning, group, root, now);
    if (!sign_ok.ok()) return Refuse("group signing certificate is not genuine", sign_ok);
    if (!pub.oem_root().empty()) {
      auto oem = internal::CertFromBytes(pub.oem_root(), "OEM root");
      if (!oem.ok()) return Refuse("the group's OEM root is malformed", oem.status());
    }

    auto secrets = crypto::CmsDecrypt(crypto::AsBytes(resp.wrapped_secrets()), wrap_key,
                                      candidate.wrap_cert());
    if (!secrets.ok()) return Refuse("group secrets do not decrypt", secrets.status());
    auto keys = internal::ParseSecrets(*secrets);
    if (!keys.ok()) return Refuse("group secrets do not decrypt", keys.status());
    RETURN_IF_ERROR(CheckKeyMatches(keys->group_ca, group.group_ca, "group CA"));
    RETURN_IF_ERROR(CheckKeyMatches(keys->encryption, *enc, "group encryption"));
    RETURN_IF_ERROR(CheckKeyMatches(keys->signing, *sign, "group signing"));

    RETURN_IF_ERROR(internal::AdoptAtJoin(tx, pub, resp.group_statement(), root, now));
    v1::GroupMembership m;
    *m.mutable_group() = pub;
    m.set_member_id(id->ToString());
    m.set_member_cert(resp.member_cert());
    m.set_role("member");
    m.set_child_counter(0);
    m.set_joined_at(now);
    RETURN_IF_ERROR(internal::SaveMembership(tx, m));
    RETURN_IF_ERROR(internal::SaveGroupKeys(tx, group.group_id, *keys));
    RETURN_IF_ERROR(tx.Delete(internal::kPendingNs, pending_key));
    out = Joined{group.group_id, pub.group_name(), id->ToString()};
    return internal::AppendAudit(
        tx, identity_key,
        AuditEvent{group.group_id, id->ToString(), audit_op::kJoin,
                   "sponsor " + sponsor.serial + " (" + sponsor_id.ToString() + ")"},
        now);
  }));
  return out;
}

}  // namespace clade::hsm
