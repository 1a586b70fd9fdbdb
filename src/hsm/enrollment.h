// Enrollment (docs/protocol.md; patent FIG. 2): announce → request → admit → join. Each step takes
// and returns message-file bytes (a SignedMessage), so the same calls serve a USB stick and a
// network. Every check that fails names what failed and changes no state.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "hsm/hsm.h"

namespace clade::hsm {

inline constexpr char kAnnouncementType[] = "clade.v1.GroupAnnouncement";
inline constexpr char kRequestType[] = "clade.v1.EnrollmentRequest";
inline constexpr char kResponseType[] = "clade.v1.EnrollmentResponse";
inline constexpr int64_t kDefaultAnnouncementValidity = 24 * 3600;
inline constexpr int64_t kMaxAnnouncementValidity = 30 * 24 * 3600;
// Tolerated clock difference between HSMs for "issued in the future" checks.
inline constexpr int64_t kClockSkew = 300;

// Each step decides at the HSM's clock (Hsm::clock()), read once when it starts.

// An announcement is an invitation: only the sponsor's operator makes one (the offline CLI on the
// sponsor, or an operator client of the group online), never a peer HSM (docs/operations.md).
struct AnnounceOptions {
  int64_t valid_for = kDefaultAnnouncementValidity;  // seconds, 1 s .. 30 days
  // The serial of the one HSM the announcement admits; empty = any the group policy allows.
  std::string for_serial;
};
// Sponsor: an announcement for `group_id`. It is recorded so that it admits exactly one candidate
// (and, with `for_serial`, only that HSM).
absl::StatusOr<std::vector<uint8_t>> Announce(Hsm& sponsor, const std::string& group_id,
                                              const AnnounceOptions& options);
inline absl::StatusOr<std::vector<uint8_t>> Announce(
    Hsm& sponsor, const std::string& group_id, int64_t valid_for = kDefaultAnnouncementValidity) {
  return Announce(sponsor, group_id, AnnounceOptions{valid_for, ""});
}

// Candidate: checks the announcement — signature, expiry, sponsor genuine under this HSM's
// supplier root, group CA genuine (issued by a genuine founder) with the announced id, sponsor's
// member cert issued by the group CA for the sponsor's identity key, made for this HSM's serial if
// it names one — refuses a group it is already in, records the pending request, and returns the
// request.
absl::StatusOr<std::vector<uint8_t>> RequestEnrollment(Hsm& candidate,
                                                       std::span<const uint8_t> announcement);

struct Admission {
  std::vector<uint8_t> response;
  std::string member_id;         // allocated to the candidate
  std::string candidate_serial;  // the HSM admitted
};
// Sponsor: checks the request — candidate genuine, wrap cert genuine and of the same HSM, bound
// to an unexpired, unused announcement of this sponsor, made for the candidate's serial if it
// names one, allowed by the policy, not already enrolled here — then, in one transaction, marks
// the announcement used, allocates the next child id and persists the counter; issues the member
// cert; wraps the group secrets for the candidate's wrap cert only.
// `online_candidate` is the identity certificate of a peer HSM that sent its request itself (the
// Admit RPC): the request must then be signed with that certificate, and answer an announcement
// made for that HSM's serial — a peer's call alone never admits an HSM nobody named.
absl::StatusOr<Admission> Admit(Hsm& sponsor, std::span<const uint8_t> request,
                                const crypto::Certificate* online_candidate = nullptr);

struct Joined {
  std::string group_id;
  std::string group_name;
  std::string member_id;
};
// Candidate: checks the response against its pending request — same sponsor, same group and
// group CA, member cert for this HSM's identity key with an id directly below the sponsor's —
// unwraps the group secrets, checks every key against its certificate, and adopts the group.
absl::StatusOr<Joined> Join(Hsm& candidate, std::span<const uint8_t> response);

}  // namespace clade::hsm
