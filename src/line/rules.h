// The line's rules as pure functions (no clock, no threads, no I/O): how many devices to send
// next, to which member, whether a send is a reissue, and what an answer means. The run loop
// (line/core.h) only carries out what these say; tests/line/rules_test.cpp checks them from tables.
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

namespace clade::line {

// How the next send of a device is made.
enum class ReissueChoice {
  kByRule,     // reissue when an earlier attempt to the same HSM may have issued (lost or refused)
  kReissue,    // the member said this HSM did issue before (AlreadyExists): issue again
  kNoReissue,  // the member said nothing was issued before (FailedPrecondition): a first issue
};

// Whether a send is a reissue. `lost_here`: an earlier attempt for this device ended on this
// HSM without an answer the line could use (the member may have issued).
bool SendsReissue(ReissueChoice choice, bool lost_here);

// How many devices to send now on the stream. Up to 2 × parallel devices are in flight or being
// programmed; the line refills in batches of about half that window, so the line's database
// records a batch of sends in one transaction rather than one per device.
size_t DevicesToSend(size_t queued, size_t in_flight, size_t programming, int parallel);

// The order in which members are tried: from `from` round the list, skipping those not usable.
std::vector<size_t> MemberOrder(size_t from, const std::vector<bool>& usable);

// Whether the line moves to member `answered` (which answered a probe) from member `active`:
// only to a usable member earlier in the list, and only while devices wait to be sent.
bool MovesTo(size_t answered, size_t active, bool answered_usable, bool devices_queued);

// What one answer of a member says about the device.
struct AnswerFacts {
  bool refused = false;        // the member answered with an error, or for another uid
  int code = 0;                // absl::StatusCode of a refusal
  bool sent_reissue = false;   // the send was a reissue
  bool lost_here = false;      // an earlier attempt on this HSM may have issued
  bool passed_checks = false;  // not refused: the answer passed line/answer_check.h
};

enum class Verdict {
  kDeliver,                  // program the chip with the answer
  kRetryWithReissue,         // send again (front of the queue) as a reissue
  kRetryWithoutReissue,      // send again as a first issue
  kFailDevice,               // the device fails with the member's reason
  kFailDeviceAndStopMember,  // the answer failed a check: the device fails, the member is not
                             // believed again in this run and its stream is cancelled
};

Verdict JudgeAnswer(const AnswerFacts& facts);

}  // namespace clade::line
