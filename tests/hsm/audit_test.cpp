// The audit log: entries chained by SHA-256, checkpoints every 64 entries and at every export, an
// export checked offline against a group — and the attacks on an export, each refused by name.
// The attacker of most tests is a compromised member: it holds its own identity key, decodes its
// export, changes it and signs it again.
#include "hsm/audit.h"

#include <set>

#include "clade/v1/audit.pb.h"
#include "crypto/signature.h"
#include "hsm/group.h"
#include "world.h"

namespace clade::hsm {
namespace {

using ::clade::testing::StatusIs;
using testing::Bytes;
using ::testing::HasSubstr;

constexpr absl::StatusCode kDenied = absl::StatusCode::kPermissionDenied;

std::span<const uint8_t> Span(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class AuditTest : public testing::World {
 protected:
  void SetUp() override {
    World::SetUp();
    a_ = &Make("SN-A");
    b_ = &Make("SN-B");
    c_ = &Make("SN-C");
    g_ = Found(*a_, "alpha");
    g2_ = Found(*a_, "beta");
    other_ = Found(*c_, "gamma");
    ASSERT_EQ(Enroll(*a_, *b_, g_), "1.1");
  }

  // Appends `events` in one transaction, as an operation of the HSM would.
  void Append(Hsm& h, const std::vector<AuditEvent>& events, int64_t now) {
    ASSERT_OK_AND_ASSIGN(crypto::PrivateKey key, h.IdentityKey());
    ASSERT_OK(h.state().Update([&](store::Transaction& tx) -> absl::Status {
      for (const AuditEvent& e : events) {
        RETURN_IF_ERROR(internal::AppendAudit(tx, key, e, now));
      }
      return absl::OkStatus();
    }));
  }
  // `n` entries cycling through: this group (`op`), group g2_, and an HSM-level provision.
  std::vector<AuditEvent> Mixed(size_t n, const std::string& group_id, const std::string& id) {
    std::vector<AuditEvent> out;
    for (size_t i = 0; i < n; ++i) {
      std::string subject = "dev-" + std::to_string(i);
      switch (i % 3) {
        case 0:
          out.push_back({group_id, id, audit_op::kAdmit, subject});
          break;
        case 1:
          out.push_back({g2_, "1", audit_op::kAnnounce, subject});
          break;
        default:
          out.push_back({"", "", audit_op::kProvision, subject});
      }
    }
    return out;
  }
  // The log's stored keys in `ns`, as seqs.
  std::vector<uint64_t> Stored(Hsm& h, const char* ns) {
    std::vector<uint64_t> out;
    EXPECT_OK(h.state().Read([&](store::Transaction& tx) -> absl::Status {
      ASSIGN_OR_RETURN(auto rows, tx.List(ns));
      for (const auto& [key, value] : rows) out.push_back(std::stoull(key));
      return absl::OkStatus();
    }));
    return out;
  }
  // Brings A's log to exactly 150 entries, whatever the operations' own hooks wrote.
  void FillA() {
    uint64_t have = Stored(*a_, internal::kAuditNs).size();
    ASSERT_LE(have, 150u);
    Append(*a_, Mixed(150 - have, g_, "1"), t0_ + 10);
  }
  absl::StatusOr<AuditReport> Verify(const Bytes& file, Hsm& member, const std::string& group_id) {
    ASSIGN_OR_RETURN(GroupExport g, ExportGroup(member, group_id));
    return VerifyAuditExport(file, g.group_ca_chain, supplier_->root(), FixedClock(t0_ + 100));
  }
  static v1::AuditExport Decode(const Bytes& file) {
    auto ex = testing::PayloadOf<v1::AuditExport>(file);
    EXPECT_TRUE(ex.ok()) << ex.status();
    return ex.ok() ? *ex : v1::AuditExport();
  }
  static std::vector<uint64_t> CheckpointSeqs(const v1::AuditExport& ex) {
    std::vector<uint64_t> out;
    for (const auto& cp : ex.checkpoints()) out.push_back(cp.seq());
    return out;
  }
  static v1::AuditEntry EntryAt(const v1::AuditExport& ex, int i) {
    v1::AuditEntry e;
    EXPECT_TRUE(e.ParseFromString(ex.entries(i)));
    return e;
  }
  // The compromised member: changes its own export and signs it again with its identity key.
  Bytes Forge(Hsm& signer, const Bytes& file, const std::function<void(v1::AuditExport&)>& change) {
    auto out = testing::Reseal<v1::AuditExport>(signer, kAuditExportType, file, change);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Bytes();
  }
  // Recomputes every prev_digest from entry `from` on, and re-signs every checkpoint, with
  // `signer`'s identity key: a log rewritten consistently by the HSM itself.
  static void Rechain(Hsm& signer, v1::AuditExport& ex, int from) {
    for (int i = std::max(from, 1); i < ex.entries_size(); ++i) {
      v1::AuditEntry e = EntryAt(ex, i);
      Bytes d = crypto::Sha256(Span(ex.entries(i - 1)));
      e.set_prev_digest(std::string(d.begin(), d.end()));
      *ex.mutable_entries(i) = e.SerializeAsString();
    }
    auto key = signer.IdentityKey();
    ASSERT_TRUE(key.ok()) << key.status();
    for (auto& cp : *ex.mutable_checkpoints()) {
      Bytes d = crypto::Sha256(Span(ex.entries(static_cast<int>(cp.seq()) - 1)));
      cp.set_entry_digest(std::string(d.begin(), d.end()));
      auto sig =
          crypto::SignDsse(*key, internal::kAuditCheckpointType,
                           internal::CheckpointBodyBytes(cp.seq(), d, cp.time(), ex.hsm_serial()));
      ASSERT_TRUE(sig.ok()) << sig.status();
      cp.set_signature(std::string(sig->begin(), sig->end()));
    }
  }
  // A's export of 150 entries.
  Bytes ExportA() {
    FillA();
    clock_.Set(t0_ + 20);
    auto file = ExportAudit(*a_);
    EXPECT_TRUE(file.ok()) << file.status();
    return file.ok() ? *file : Bytes();
  }

  Hsm* a_ = nullptr;  // founder of g_ (1) and g2_
  Hsm* b_ = nullptr;  // member 1.1 of g_
  Hsm* c_ = nullptr;  // founder of other_, in no group with A or B
  std::string g_, g2_, other_;
};

TEST_F(AuditTest, AppendExportVerifyCountsPerGroup) {
  clock_.Set(t0_ + 5);
  ASSERT_OK_AND_ASSIGN(Bytes before, ExportAudit(*a_));
  ASSERT_OK_AND_ASSIGN(AuditReport r0, Verify(before, *a_, g_));
  Append(*a_, Mixed(150, g_, "1"), t0_ + 10);
  clock_.Set(t0_ + 20);
  ASSERT_OK_AND_ASSIGN(Bytes file, ExportAudit(*a_));

  ASSERT_OK_AND_ASSIGN(AuditReport r, Verify(file, *a_, g_));
  EXPECT_EQ(r.hsm_serial, "SN-A");
  EXPECT_EQ(r.group_id, g_);
  EXPECT_EQ(r.member_id, "1");
  EXPECT_EQ(r.entries, r0.entries + 150);
  EXPECT_EQ(r.counts["1"][audit_op::kAdmit], r0.counts["1"][audit_op::kAdmit] + 50);
  // Entries of the other group and HSM-level entries are not counted for this group.
  EXPECT_EQ(r.counts["1"].count(audit_op::kProvision), 0u);
  EXPECT_EQ(r.counts["1"][audit_op::kAnnounce], r0.counts["1"][audit_op::kAnnounce]);

  // The same export, checked against the other group A founded, counts that group's entries.
  ASSERT_OK_AND_ASSIGN(AuditReport r2, Verify(file, *a_, g2_));
  EXPECT_EQ(r2.group_id, g2_);
  EXPECT_EQ(r2.entries, r.entries);
  EXPECT_GE(r2.counts["1"][audit_op::kAnnounce], 50u);
  EXPECT_EQ(r2.counts["1"].count(audit_op::kAdmit), 0u);

  // A member's export carries its own member id; any member's group export checks it.
  Append(*b_, {{g_, "1.1", audit_op::kAnnounce, "x"}, {g_, "1.1", audit_op::kPolicy, "SN-9"}},
         t0_ + 10);
  clock_.Set(t0_ + 20);
  ASSERT_OK_AND_ASSIGN(Bytes fb, ExportAudit(*b_));
  ASSERT_OK_AND_ASSIGN(AuditReport rb, Verify(fb, *a_, g_));
  EXPECT_EQ(rb.hsm_serial, "SN-B");
  EXPECT_EQ(rb.member_id, "1.1");
  EXPECT_GE(rb.counts["1.1"][audit_op::kPolicy], 1u);
  EXPECT_EQ(rb.counts.count("1"), 0u);
}

TEST_F(AuditTest, GroupOperationsAreLoggedUnderTheMemberIdThatActed) {
  // SetUp founded g_ on A and enrolled B through the real calls, which log themselves.
  clock_.Set(t0_ + 20);
  ASSERT_OK_AND_ASSIGN(Bytes fa, ExportAudit(*a_));
  ASSERT_OK_AND_ASSIGN(AuditReport ra, Verify(fa, *b_, g_));
  EXPECT_EQ(ra.counts["1"][audit_op::kGroupCreate], 1u);
  EXPECT_EQ(ra.counts["1"][audit_op::kAnnounce], 1u);
  EXPECT_EQ(ra.counts["1"][audit_op::kAdmit], 1u);
  clock_.Set(t0_ + 20);
  ASSERT_OK_AND_ASSIGN(Bytes fb, ExportAudit(*b_));
  ASSERT_OK_AND_ASSIGN(AuditReport rb, Verify(fb, *a_, g_));
  EXPECT_EQ(rb.counts[""][audit_op::kRequest], 1u);  // before B had a member id
  EXPECT_EQ(rb.counts["1.1"][audit_op::kJoin], 1u);
}

TEST_F(AuditTest, CheckpointEvery64EntriesAndAtExport) {
  FillA();
  EXPECT_EQ(Stored(*a_, internal::kAuditCheckpointNs), (std::vector<uint64_t>{64, 128}));
  clock_.Set(t0_ + 20);
  ASSERT_OK_AND_ASSIGN(Bytes file, ExportAudit(*a_));
  v1::AuditExport ex = Decode(file);
  EXPECT_EQ(ex.entries_size(), 150);
  EXPECT_EQ(CheckpointSeqs(ex), (std::vector<uint64_t>{64, 128, 150}));
  EXPECT_EQ(ex.hsm_serial(), "SN-A");
  EXPECT_EQ(ex.member_certs_size(), 2);  // alpha and beta
  for (int i = 0; i < ex.entries_size(); ++i) EXPECT_EQ(EntryAt(ex, i).seq(), uint64_t(i + 1));
  EXPECT_EQ(EntryAt(ex, 0).prev_digest(), std::string(32, '\0'));

  // A second export at the same head adds no checkpoint; one more entry gets its own.
  clock_.Set(t0_ + 30);
  ASSERT_OK_AND_ASSIGN(Bytes again, ExportAudit(*a_));
  EXPECT_EQ(CheckpointSeqs(Decode(again)), (std::vector<uint64_t>{64, 128, 150}));
  Append(*a_, {{g_, "1", audit_op::kPolicy, "SN-7"}}, t0_ + 40);
  clock_.Set(t0_ + 50);
  ASSERT_OK_AND_ASSIGN(Bytes more, ExportAudit(*a_));
  EXPECT_EQ(CheckpointSeqs(Decode(more)), (std::vector<uint64_t>{64, 128, 150, 151}));
  ASSERT_OK_AND_ASSIGN(AuditReport r, Verify(more, *a_, g_));
  EXPECT_EQ(r.entries, 151u);
  EXPECT_EQ(r.checkpoints, 4u);
}

TEST_F(AuditTest, AResealedUnchangedExportStillVerifies) {
  Bytes file = ExportA();
  EXPECT_OK(Verify(Forge(*a_, file, [](v1::AuditExport&) {}), *a_, g_));
}

TEST_F(AuditTest, RefusesAnEntryRemovedFromTheMiddle) {
  Bytes forged = Forge(*a_, ExportA(), [](v1::AuditExport& ex) {
    ex.mutable_entries()->erase(ex.mutable_entries()->begin() + 69);  // entry 70
  });
  EXPECT_THAT(Verify(forged, *a_, g_),
              StatusIs(kDenied, HasSubstr("audit entry missing before 71")));
}

TEST_F(AuditTest, RefusesTwoEntriesReordered) {
  Bytes forged = Forge(*a_, ExportA(), [](v1::AuditExport& ex) {
    ex.mutable_entries(9)->swap(*ex.mutable_entries(10));  // entries 10 and 11
  });
  EXPECT_THAT(Verify(forged, *a_, g_),
              StatusIs(kDenied, HasSubstr("audit entry 11 is out of order")));
}

TEST_F(AuditTest, RefusesAnEditedEntry) {
  Bytes forged = Forge(*a_, ExportA(), [](v1::AuditExport& ex) {
    v1::AuditEntry e = EntryAt(ex, 19);  // entry 20
    e.set_subject("someone else");
    *ex.mutable_entries(19) = e.SerializeAsString();
  });
  EXPECT_THAT(
      Verify(forged, *a_, g_),
      StatusIs(kDenied, HasSubstr("audit entry 21: previous digest does not match entry 20")));
}

TEST_F(AuditTest, RefusesTheLastEntryRemoved) {
  Bytes forged =
      Forge(*a_, ExportA(), [](v1::AuditExport& ex) { ex.mutable_entries()->RemoveLast(); });
  EXPECT_THAT(Verify(forged, *a_, g_),
              StatusIs(kDenied, HasSubstr("checkpoint at entry 150 refers to a missing entry")));
}

TEST_F(AuditTest, RefusesTheExportCheckpointRemoved) {
  Bytes forged =
      Forge(*a_, ExportA(), [](v1::AuditExport& ex) { ex.mutable_checkpoints()->RemoveLast(); });
  EXPECT_THAT(
      Verify(forged, *a_, g_),
      StatusIs(kDenied, HasSubstr("the last audit entries are not covered by a checkpoint")));
}

TEST_F(AuditTest, RefusesAGapBetweenCheckpoints) {
  Bytes forged = Forge(*a_, ExportA(), [](v1::AuditExport& ex) {
    ex.mutable_checkpoints()->erase(ex.mutable_checkpoints()->begin());  // the one at 64
  });
  EXPECT_THAT(
      Verify(forged, *a_, g_),
      StatusIs(kDenied, HasSubstr("audit entries 1 to 128 are not covered by a checkpoint")));
}

TEST_F(AuditTest, RefusesAFlippedCheckpointSignature) {
  Bytes forged = Forge(*a_, ExportA(), [](v1::AuditExport& ex) {
    std::string& sig = *ex.mutable_checkpoints(0)->mutable_signature();
    sig[sig.size() - 3] ^= 0x01;
  });
  EXPECT_THAT(
      Verify(forged, *a_, g_),
      StatusIs(kDenied,
               HasSubstr("checkpoint at entry 64 is not signed by a member of group " + g_)));
}

TEST_F(AuditTest, RefusesACheckpointForAnotherEntry) {
  Bytes forged = Forge(*a_, ExportA(), [](v1::AuditExport& ex) {
    Bytes d = crypto::Sha256(Span(ex.entries(62)));  // entry 63's digest, claimed for 64
    ex.mutable_checkpoints(0)->set_entry_digest(std::string(d.begin(), d.end()));
  });
  EXPECT_THAT(Verify(forged, *a_, g_),
              StatusIs(kDenied, HasSubstr("checkpoint at entry 64 does not match the entry")));
}

TEST_F(AuditTest, RefusesAnExportResignedByAnHsmOfAnotherGroup) {
  Bytes file = ExportA();
  // C (founder of another group) signs A's log as its own, serial and all.
  Bytes forged = Forge(*c_, file, [](v1::AuditExport& ex) { ex.set_hsm_serial("SN-C"); });
  EXPECT_THAT(Verify(forged, *a_, g_),
              StatusIs(kDenied, HasSubstr("the audit export is not from a member of group " + g_)));
  // C's own genuine export, checked against A's group.
  clock_.Set(t0_ + 20);
  ASSERT_OK_AND_ASSIGN(Bytes cs, ExportAudit(*c_));
  EXPECT_OK(Verify(cs, *c_, other_));
  EXPECT_THAT(Verify(cs, *a_, g_),
              StatusIs(kDenied, HasSubstr("the audit export is not from a member of group " + g_)));
  // A's genuine export, checked against C's group.
  EXPECT_THAT(
      Verify(file, *c_, other_),
      StatusIs(kDenied, HasSubstr("the audit export is not from a member of group " + other_)));
}

TEST_F(AuditTest, RefusesAnotherMembersCertificate) {
  // B puts the founder's member certificate in its export: it does not certify B's key.
  ASSERT_OK_AND_ASSIGN(GroupExport founder, ExportGroup(*a_, g_));
  clock_.Set(t0_ + 20);
  ASSERT_OK_AND_ASSIGN(Bytes fb, ExportAudit(*b_));
  Bytes forged = Forge(*b_, fb, [&](v1::AuditExport& ex) {
    ex.clear_member_certs();
    ex.add_member_certs(testing::DerString(founder.member));
  });
  EXPECT_THAT(Verify(forged, *a_, g_),
              StatusIs(kDenied, HasSubstr("the audit export is not from a member of group " + g_)));
}

TEST_F(AuditTest, RefusesAnEntryClaimingAnotherMemberId) {
  Append(*b_, Mixed(100, g_, "1.1"), t0_ + 10);
  clock_.Set(t0_ + 20);
  ASSERT_OK_AND_ASSIGN(Bytes fb, ExportAudit(*b_));
  ASSERT_OK(Verify(fb, *a_, g_));
  // B, member 1.1, rewrites one of its entries as the founder's, re-chains every later entry and
  // re-signs every checkpoint with its own identity key: the chain holds, the lie does not.
  uint64_t claimed = 0;
  Bytes forged = Forge(*b_, fb, [&](v1::AuditExport& ex) {
    for (int i = 0; i < ex.entries_size(); ++i) {
      v1::AuditEntry e = EntryAt(ex, i);
      if (e.seq() > 40 && e.group_id() == g_ && e.member_id() == "1.1") {
        e.set_member_id("1");
        *ex.mutable_entries(i) = e.SerializeAsString();
        claimed = e.seq();
        Rechain(*b_, ex, i + 1);
        return;
      }
    }
  });
  ASSERT_GT(claimed, 0u);
  EXPECT_THAT(Verify(forged, *a_, g_),
              StatusIs(kDenied, HasSubstr("audit entry " + std::to_string(claimed) +
                                          " claims member id 1, the signer is 1.1")));
}

TEST_F(AuditTest, EmptyMemberIdOnlyForARequest) {
  Append(*b_, {{g_, "", audit_op::kRequest, "SN-A"}}, t0_ + 10);
  clock_.Set(t0_ + 20);
  ASSERT_OK_AND_ASSIGN(Bytes ok, ExportAudit(*b_));
  ASSERT_OK_AND_ASSIGN(AuditReport r, Verify(ok, *a_, g_));
  EXPECT_GE(r.counts[""][audit_op::kRequest], 1u);

  Append(*b_, {{g_, "", audit_op::kAdmit, "SN-X"}}, t0_ + 30);
  clock_.Set(t0_ + 40);
  ASSERT_OK_AND_ASSIGN(Bytes bad, ExportAudit(*b_));
  EXPECT_THAT(Verify(bad, *a_, g_),
              StatusIs(kDenied, HasSubstr("(group.admit) names no member id, the signer is 1.1")));
}

TEST_F(AuditTest, RefusesABitFlippedEnvelope) {
  Bytes flipped = testing::FlipPayloadBit(ExportA());
  EXPECT_THAT(Verify(flipped, *a_, g_),
              StatusIs(kDenied, HasSubstr("message signature does not verify")));
}

TEST_F(AuditTest, AppendIsAtomicWithItsTransaction) {
  uint64_t before = Stored(*a_, internal::kAuditNs).size();
  ASSERT_OK_AND_ASSIGN(crypto::PrivateKey key, a_->IdentityKey());
  absl::Status s = a_->state().Update([&](store::Transaction& tx) -> absl::Status {
    RETURN_IF_ERROR(internal::AppendAudit(tx, key, {g_, "1", audit_op::kPolicy, "SN-1"}, t0_));
    return absl::AbortedError("the operation failed after logging");
  });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kAborted, HasSubstr("after logging")));
  EXPECT_EQ(Stored(*a_, internal::kAuditNs).size(), before);
  Append(*a_, {{g_, "1", audit_op::kPolicy, "SN-1"}}, t0_);
  EXPECT_EQ(Stored(*a_, internal::kAuditNs).size(), before + 1);
  clock_.Set(t0_ + 5);
  ASSERT_OK_AND_ASSIGN(Bytes file, ExportAudit(*a_));
  EXPECT_OK(Verify(file, *a_, g_));
}

// ---------------------------------------------------------------------------------------------
// Filtered exports: what an operator of one group gets online.

TEST_F(AuditTest, GroupExportHoldsOnlyThatGroupsEntriesAndStillVerifies) {
  FillA();
  clock_.Set(t0_ + 20);
  ASSERT_OK_AND_ASSIGN(Bytes file, ExportGroupAudit(*a_, g2_));
  v1::AuditExport ex = Decode(file);
  EXPECT_EQ(ex.group_id(), g2_);
  ASSERT_GT(ex.entries_size(), 0);
  ASSERT_GT(ex.elided_size(), 0);
  EXPECT_EQ(ex.entries_size() + ex.elided_size(), 150);
  for (int i = 0; i < ex.entries_size(); ++i) EXPECT_EQ(EntryAt(ex, i).group_id(), g2_) << i;
  // No byte of an entry of alpha travels: not its subjects, not its group id.
  std::string payload = ex.SerializeAsString();
  EXPECT_EQ(payload.find(g_), std::string::npos);
  EXPECT_EQ(payload.find("dev-0"), std::string::npos);  // subject of the first alpha entry
  EXPECT_EQ(ex.member_certs_size(), 1);                 // beta's only
  EXPECT_EQ(CheckpointSeqs(ex), (std::vector<uint64_t>{64, 128, 150}));

  ASSERT_OK_AND_ASSIGN(AuditReport r, Verify(file, *a_, g2_));
  EXPECT_EQ(r.entries, 150u);
  EXPECT_EQ(r.elided, static_cast<uint64_t>(ex.elided_size()));
  clock_.Set(t0_ + 30);
  ASSERT_OK_AND_ASSIGN(Bytes whole, ExportAudit(*a_));
  ASSERT_OK_AND_ASSIGN(AuditReport rw, Verify(whole, *a_, g2_));
  EXPECT_EQ(r.counts, rw.counts);  // the group's own view is complete

  // Checked against the group it is not filtered to: refused, even though A is in alpha too.
  EXPECT_THAT(Verify(file, *a_, g_),
              StatusIs(kDenied, HasSubstr("the audit export is not from a member of group " + g_)));
  clock_.Set(t0_ + 20);
  EXPECT_THAT(ExportGroupAudit(*a_, other_),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("not a member of group")));
}

TEST_F(AuditTest, FilteredExportRefusesEditedElidedOrSmuggledEntries) {
  FillA();
  clock_.Set(t0_ + 20);
  ASSERT_OK_AND_ASSIGN(Bytes file, ExportGroupAudit(*a_, g2_));
  v1::AuditExport ex = Decode(file);
  // An elided entry whose digest was changed breaks the link to the next position.
  uint64_t seq = ex.elided(3).seq();
  EXPECT_THAT(Verify(Forge(*a_, file,
                           [](v1::AuditExport& e) {
                             std::string* d = e.mutable_elided(3)->mutable_digest();
                             (*d)[0] = static_cast<char>((*d)[0] ^ 1);
                           }),
                     *a_, g2_),
              StatusIs(kDenied,
                       HasSubstr("audit entry " + std::to_string(seq + 1) +
                                 ": previous digest does not match entry " + std::to_string(seq))));
  // One elided entry dropped: a gap.
  EXPECT_THAT(
      Verify(Forge(*a_, file, [](v1::AuditExport& e) { e.mutable_elided()->DeleteSubrange(3, 1); }),
             *a_, g2_),
      StatusIs(kDenied, HasSubstr("audit entry missing before")));
  // A position both shown and elided.
  EXPECT_THAT(
      Verify(Forge(*a_, file,
                   [&](v1::AuditExport& e) { e.mutable_elided(0)->set_seq(EntryAt(ex, 0).seq()); }),
             *a_, g2_),
      StatusIs(kDenied, HasSubstr("is both shown and elided")));
  // An export claiming the whole log may not elide, and a filtered one may not name another
  // group than the one checked.
  EXPECT_THAT(Verify(Forge(*a_, file, [](v1::AuditExport& e) { e.clear_group_id(); }), *a_, g2_),
              StatusIs(kDenied, HasSubstr("the audit export is of the whole log but elides")));
  EXPECT_THAT(Verify(Forge(*a_, file, [&](v1::AuditExport& e) { e.set_group_id(g_); }), *a_, g2_),
              StatusIs(kDenied, HasSubstr("the audit export is filtered to group " + g_ +
                                          ", not group " + g2_)));
}

TEST_F(AuditTest, RefusesAnExportWithAnUnknownFieldResignedByTheMember) {
  // The member signs again what it changed: only the field this version does not know is wrong,
  // at the top, in a checkpoint, or inside an entry's own bytes.
  Bytes file = ExportA();
  using ::testing::Eq;
  constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
  std::string before = testing::StateDump(*a_);
  EXPECT_THAT(Verify(Forge(*a_, file, [](v1::AuditExport& e) { testing::AddUnknownField(&e, 99); }),
                     *a_, g_),
              StatusIs(kInvalid,
                       Eq("malformed message: clade.v1.AuditExport payload has unknown field 99")));
  EXPECT_THAT(Verify(Forge(*a_, file,
                           [](v1::AuditExport& e) {
                             testing::AddUnknownField(e.mutable_checkpoints(1), 40);
                           }),
                     *a_, g_),
              StatusIs(kInvalid, Eq("malformed message: clade.v1.AuditExport payload has unknown "
                                    "field 40 in checkpoints[1]")));
  EXPECT_THAT(Verify(Forge(*a_, file,
                           [](v1::AuditExport& e) {
                             v1::AuditEntry entry = EntryAt(e, 2);
                             testing::AddUnknownField(&entry, 30);
                             *e.mutable_entries(2) = entry.SerializeAsString();
                           }),
                     *a_, g_),
              StatusIs(kInvalid, Eq("audit entry at position 3 has unknown field 30")));
  EXPECT_EQ(testing::StateDump(*a_), before);
  EXPECT_OK(Verify(file, *a_, g_));
}

}  // namespace
}  // namespace clade::hsm
