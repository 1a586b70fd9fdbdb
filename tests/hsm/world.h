// A small world for group and enrollment tests: a genuine supplier, a counterfeit one, HSMs made
// by either, each in its own state directory under one TempDir, and helpers to enroll, to forge
// messages (decode a message file, change its payload, re-sign it as some HSM) and to take a
// snapshot of an HSM's whole state so a test can show that a refusal changed nothing. Every HSM of
// the world is opened with the world's one FixedClock (`clock_`, set to the real time at SetUp):
// a test that acts "at T" sets it to T before the call.
#pragma once

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "clade/v1/group.pb.h"
#include "crypto/digest.h"
#include "crypto/key.h"
#include "crypto/x509.h"
#include "google/protobuf/unknown_field_set.h"
#include "hsm/enrollment.h"
#include "hsm/group.h"
#include "hsm/hsm.h"
#include "hsm/member_id.h"
#include "hsm/pki.h"
#include "store/state_store.h"
#include "supplier/supplier.h"
#include "support/testing.h"
#include "wire/envelope.h"

namespace clade::hsm::testing {

// The device profile the job tests package: one sensor, a 30-day certificate, a device-made key.
inline constexpr char kSensorProfile[] =
    R"({"product": "Sensor", "subject": {"CN": "{product} {uid}"}, )"
    R"("validity": {"days": 30}, "key_usage": ["digitalSignature"], "key_mode": "device"})";

using Bytes = std::vector<uint8_t>;

inline std::span<const uint8_t> AsSpan(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string AsString(std::span<const uint8_t> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// The payload of a message file, decoded as Msg. The envelope's signature must verify.
template <typename Msg>
absl::StatusOr<Msg> PayloadOf(std::span<const uint8_t> file) {
  ASSIGN_OR_RETURN(wire::Envelope env, wire::OpenAnyMessage(file));
  Msg m;
  if (!m.ParseFromArray(env.payload.data(), static_cast<int>(env.payload.size()))) {
    return absl::InternalError("test: payload does not parse");
  }
  return m;
}

// Signs `m` as `signer` (its identity key and identity chain): a genuine HSM saying something.
template <typename Msg>
absl::StatusOr<Bytes> SealAs(const Hsm& signer, const std::string& type, const Msg& m) {
  std::string payload = m.SerializeAsString();
  ASSIGN_OR_RETURN(crypto::PrivateKey key, signer.IdentityKey());
  return wire::SealMessage(type, AsSpan(payload), key, signer.IdentityChain());
}

// Decodes `file`, lets `change` edit the payload, and re-signs it as `signer`.
template <typename Msg>
absl::StatusOr<Bytes> Reseal(const Hsm& signer, const std::string& type,
                             std::span<const uint8_t> file,
                             const std::function<void(Msg&)>& change) {
  ASSIGN_OR_RETURN(Msg m, PayloadOf<Msg>(file));
  change(m);
  return SealAs(signer, type, m);
}

// Adds field `number` (a varint), which this version does not know, to `m`: what a newer or a
// hostile sender could add, to be refused by the strict decoder (wire/strict.h).
inline void AddUnknownField(google::protobuf::Message* m, int number) {
  m->GetReflection()->MutableUnknownFields(m)->AddVarint(number, 1);
}

// SHA-256 of a message file, as a bytes field holds it.
inline std::string DigestOf(std::span<const uint8_t> file) {
  Bytes d = crypto::Sha256(file);
  return std::string(d.begin(), d.end());
}

inline std::string DerString(const crypto::Certificate& c) {
  return std::string(c.Der().begin(), c.Der().end());
}

// Flips one bit in the middle of the signed payload of a message file.
inline Bytes FlipPayloadBit(const Bytes& file) {
  Bytes out = file;
  auto env = wire::OpenAnyMessage(file);
  size_t pos = file.size() / 2;
  if (env.ok() && !env->payload.empty()) {
    auto it = std::search(file.begin(), file.end(), env->payload.begin(), env->payload.end());
    if (it != file.end()) pos = static_cast<size_t>(it - file.begin()) + env->payload.size() / 2;
  }
  out[pos] ^= 0x10;
  return out;
}

// Every row of every table of the state, sorted: equal dumps mean nothing was written.
inline std::string StateDump(Hsm& h) {
  std::vector<std::string> rows;
  absl::Status s = h.state().Read([&](store::Transaction& tx) -> absl::Status {
    sqlite3* db = tx.db();
    std::vector<std::string> tables;
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table'", -1, &st,
                           nullptr) != SQLITE_OK) {
      return absl::InternalError("test: cannot list tables");
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
      tables.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
    }
    sqlite3_finalize(st);
    for (const std::string& t : tables) {
      std::string sql = "SELECT * FROM \"" + t + "\"";
      if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
        return absl::InternalError("test: cannot read table " + t);
      }
      while (sqlite3_step(st) == SQLITE_ROW) {
        std::string row = t + ":";
        for (int i = 0; i < sqlite3_column_count(st); ++i) {
          int type = sqlite3_column_type(st, i);
          std::string value;
          if (type == SQLITE_TEXT) {
            value = reinterpret_cast<const char*>(sqlite3_column_text(st, i));
          } else if (const void* blob = sqlite3_column_blob(st, i)) {
            size_t n = static_cast<size_t>(sqlite3_column_bytes(st, i));
            value = crypto::Hex({static_cast<const uint8_t*>(blob), n});
          }
          absl::StrAppend(&row, "|", type, ":", value);
        }
        rows.push_back(std::move(row));
      }
      sqlite3_finalize(st);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) {
    ADD_FAILURE() << "state dump: " << s;
    return "";
  }
  std::sort(rows.begin(), rows.end());
  std::string out;
  for (const auto& r : rows) out += r + "\n";
  return out;
}

// What ListGroups says, as one comparable string.
inline std::string GroupsSnapshot(Hsm& h) {
  auto groups = ListGroups(h);
  if (!groups.ok()) return "ListGroups failed: " + std::string(groups.status().message());
  std::string out;
  for (const GroupSummary& g : *groups) {
    out += g.group_id + " " + g.name + " " + g.member_id + " " + g.role + " " +
           std::to_string(g.children_enrolled) + " " + g.encryption_key_fingerprint + " " +
           g.oem_root_fingerprint.value_or("-") + " allow:";
    for (const auto& s : g.allow_serials) out += s + ",";
    out += " deny:";
    for (const auto& s : g.deny_serials) out += s + ",";
    out += "\n";
  }
  return out;
}

// Both views of a state: what ListGroups reports, and every stored row.
struct Snapshot {
  std::string groups;
  std::string rows;
  bool operator==(const Snapshot& o) const { return groups == o.groups && rows == o.rows; }
};
inline Snapshot Take(Hsm& h) { return {GroupsSnapshot(h), StateDump(h)}; }
inline std::ostream& operator<<(std::ostream& os, const Snapshot& s) {
  return os << "groups:\n" << s.groups << "(" << s.rows.size() << " bytes of rows)";
}

class World : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_.Set(SystemClock().Now());
    t0_ = clock_.Now();
    auto s = supplier::Supplier::Init(dir_.File("supplier"), "Acme HSM Works");
    ASSERT_OK(s);
    supplier_.emplace(*std::move(s));
    auto other = supplier::Supplier::Init(dir_.File("other-supplier"), "Counterfeit Inc");
    ASSERT_OK(other);
    other_.emplace(*std::move(other));
  }

  static Certifier By(const supplier::Supplier& s) {
    return [&s](const IdentityRequest& r) { return s.CertifyHsm(r); };
  }
  std::string StateDir(const std::string& serial) const { return dir_.File("hsm-" + serial); }

  // Manufactures an HSM (by the genuine supplier unless `counterfeit`) and keeps it.
  Hsm& Make(const std::string& serial, bool counterfeit = false) {
    auto h = Hsm::Init(StateDir(serial), store::KekConfig{}, serial,
                       By(counterfeit ? *other_ : *supplier_), clock_);
    EXPECT_TRUE(h.ok()) << h.status();
    if (!h.ok()) std::abort();
    hsms_[serial] = *std::move(h);
    return *hsms_[serial];
  }
  // Closes an HSM's state and opens it again.
  Hsm& Reopen(const std::string& serial) {
    hsms_[serial].reset();
    auto h = Hsm::Open(StateDir(serial), clock_);
    EXPECT_TRUE(h.ok()) << h.status();
    if (!h.ok()) std::abort();
    hsms_[serial] = *std::move(h);
    return *hsms_[serial];
  }

  // Founds a group on `h`; returns its id.
  std::string Found(Hsm& h, const std::string& name) {
    clock_.Set(t0_);
    auto g = CreateGroup(h, name, std::nullopt);
    EXPECT_TRUE(g.ok()) << g.status();
    return g.ok() ? g->group_id : std::string();
  }

  // Announce → RequestEnrollment → Admit → Join at time t0_ (+ a few seconds per step).
  absl::StatusOr<std::string> TryEnroll(Hsm& sponsor, Hsm& candidate, const std::string& group_id) {
    clock_.Set(t0_);
    ASSIGN_OR_RETURN(Bytes ann, Announce(sponsor, group_id, kDefaultAnnouncementValidity));
    clock_.Set(t0_ + 1);
    ASSIGN_OR_RETURN(Bytes req, RequestEnrollment(candidate, ann));
    clock_.Set(t0_ + 2);
    ASSIGN_OR_RETURN(Admission adm, Admit(sponsor, req));
    clock_.Set(t0_ + 3);
    ASSIGN_OR_RETURN(Joined joined, Join(candidate, adm.response));
    if (joined.member_id != adm.member_id) {
      return absl::InternalError("test: joined as " + joined.member_id + ", admitted as " +
                                 adm.member_id);
    }
    if (joined.group_id != group_id) return absl::InternalError("test: joined another group");
    return joined.member_id;
  }
  std::string Enroll(Hsm& sponsor, Hsm& candidate, const std::string& group_id) {
    auto id = TryEnroll(sponsor, candidate, group_id);
    EXPECT_TRUE(id.ok()) << "enrolling " << candidate.Info().serial << " by "
                         << sponsor.Info().serial << ": " << id.status();
    return id.ok() ? *id : std::string();
  }

  // This HSM's member id in a group ("" if not a member).
  static std::string MemberIdIn(Hsm& h, const std::string& group_id) {
    auto groups = ListGroups(h);
    if (!groups.ok()) return "";
    for (const auto& g : *groups) {
      if (g.group_id == group_id) return g.member_id;
    }
    return "";
  }

  int64_t t0_ = 0;
  FixedClock clock_{0};  // declared before hsms_: every Hsm keeps a reference to it
  clade::testing::TempDir dir_;
  std::optional<supplier::Supplier> supplier_;
  std::optional<supplier::Supplier> other_;
  std::map<std::string, std::unique_ptr<Hsm>> hsms_;
};

}  // namespace clade::hsm::testing
