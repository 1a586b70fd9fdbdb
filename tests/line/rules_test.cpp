// The line's rules, from tables: each row is one case of what the run loop must do.
#include "line/rules.h"

#include <gtest/gtest.h>

#include <vector>

#include "absl/status/status.h"

namespace clade::line {
namespace {

constexpr int kAlreadyExists = static_cast<int>(absl::StatusCode::kAlreadyExists);
constexpr int kFailedPrecondition = static_cast<int>(absl::StatusCode::kFailedPrecondition);
constexpr int kInvalidArgument = static_cast<int>(absl::StatusCode::kInvalidArgument);

TEST(RulesTest, SendsReissueByChoiceAndHistory) {
  struct Case {
    ReissueChoice choice;
    bool lost_here;
    bool reissue;
  };
  const Case cases[] = {
      {ReissueChoice::kByRule, false, false},    {ReissueChoice::kByRule, true, true},
      {ReissueChoice::kReissue, false, true},    {ReissueChoice::kReissue, true, true},
      {ReissueChoice::kNoReissue, false, false}, {ReissueChoice::kNoReissue, true, false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(SendsReissue(c.choice, c.lost_here), c.reissue)
        << "choice " << static_cast<int>(c.choice) << " lost_here " << c.lost_here;
  }
}

TEST(RulesTest, DevicesToSendRefillsInBatchesWithinTheWindow) {
  struct Case {
    size_t queued, in_flight, programming;
    int parallel;
    size_t send;
  };
  const Case cases[] = {
      {0, 0, 0, 4, 0},    // nothing queued
      {100, 0, 0, 4, 8},  // an empty window fills to 2 × parallel
      {3, 0, 0, 4, 3},    // no more than queued
      {100, 4, 0, 4, 4},  // at half the window: refill
      {100, 5, 0, 4, 0},  // over half the window with devices in flight: wait
      {100, 3, 2, 4, 0},  // programming counts too
      {100, 0, 5, 4, 3},  // nothing in flight: refill what the programmers leave
      {100, 0, 8, 4, 0},  // window full of chips being programmed
      {100, 0, 9, 4, 0},  // (more than the window cannot underflow)
      {100, 1, 0, 1, 1},  // parallel 1: window 2
  };
  for (const Case& c : cases) {
    EXPECT_EQ(DevicesToSend(c.queued, c.in_flight, c.programming, c.parallel), c.send)
        << "queued " << c.queued << " in flight " << c.in_flight << " programming " << c.programming
        << " parallel " << c.parallel;
  }
}

TEST(RulesTest, MemberOrderGoesRoundTheListSkippingUnusable) {
  struct Case {
    size_t from;
    std::vector<bool> usable;
    std::vector<size_t> order;
  };
  const Case cases[] = {
      {0, {true, true, true}, {0, 1, 2}},
      {1, {true, true, true}, {1, 2, 0}},
      {2, {true, false, true}, {2, 0}},
      {0, {false, false}, {}},
      {0, {}, {}},
  };
  for (const Case& c : cases) EXPECT_EQ(MemberOrder(c.from, c.usable), c.order) << c.from;
}

TEST(RulesTest, MovesOnlyToAnEarlierUsableMemberWhileDevicesWait) {
  struct Case {
    size_t answered, active;
    bool usable, queued, moves;
  };
  const Case cases[] = {
      {0, 1, true, true, true},   {1, 1, true, true, false},  {2, 1, true, true, false},
      {0, 1, false, true, false}, {0, 1, true, false, false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(MovesTo(c.answered, c.active, c.usable, c.queued), c.moves)
        << c.answered << " from " << c.active;
  }
}

TEST(RulesTest, JudgeAnswerSaysWhatAnAnswerMeans) {
  struct Case {
    AnswerFacts facts;
    Verdict verdict;
  };
  const Case cases[] = {
      // Answered and checked: program the chip.
      {{false, 0, false, false, true}, Verdict::kDeliver},
      {{false, 0, true, true, true}, Verdict::kDeliver},
      // Answered but a check failed: the device fails, the member is believed no more.
      {{false, 0, false, false, false}, Verdict::kFailDeviceAndStopMember},
      // AlreadyExists after an attempt lost on this HSM: it did issue; reissue.
      {{true, kAlreadyExists, false, true, false}, Verdict::kRetryWithReissue},
      // AlreadyExists with nothing lost here, or already a reissue: the device fails.
      {{true, kAlreadyExists, false, false, false}, Verdict::kFailDevice},
      {{true, kAlreadyExists, true, true, false}, Verdict::kFailDevice},
      // FailedPrecondition to a reissue: nothing was issued; a first issue.
      {{true, kFailedPrecondition, true, true, false}, Verdict::kRetryWithoutReissue},
      {{true, kFailedPrecondition, true, false, false}, Verdict::kRetryWithoutReissue},
      {{true, kFailedPrecondition, false, true, false}, Verdict::kFailDevice},
      // Any other refusal fails the device.
      {{true, kInvalidArgument, false, true, false}, Verdict::kFailDevice},
      {{true, 0, false, false, true}, Verdict::kFailDevice},
  };
  int row = 0;
  for (const Case& c : cases) {
    EXPECT_EQ(JudgeAnswer(c.facts), c.verdict) << "row " << row;
    ++row;
  }
}

}  // namespace
}  // namespace clade::line
