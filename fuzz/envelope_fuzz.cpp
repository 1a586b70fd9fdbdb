// Untrusted input: any message file or RPC payload, opened as an envelope; and the same bytes as
// a payload or a stored row of each message type that nests others, through the strict decoder
// (wire/strict.h) that every payload and row goes through.
#include <cstdint>
#include <span>

#include "clade/v1/audit.pb.h"
#include "clade/v1/group.pb.h"
#include "clade/v1/hsm_state.pb.h"
#include "clade/v1/job.pb.h"
#include "clade/v1/statement.pb.h"
#include "wire/envelope.h"
#include "wire/strict.h"

namespace {

template <class T>
void Decode(std::span<const uint8_t> bytes) {
  T m;
  (void)clade::wire::ParseStrict(bytes, m, T::descriptor()->full_name());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  auto env = clade::wire::OpenAnyMessage(bytes);
  if (env.ok()) (void)clade::wire::ParsePayload<clade::v1::GroupAnnouncement>(*env);
  Decode<clade::v1::AuditExport>(bytes);
  Decode<clade::v1::GroupMembership>(bytes);
  Decode<clade::v1::GroupStatement>(bytes);
  Decode<clade::v1::EnrollmentResponse>(bytes);
  Decode<clade::v1::JobPackage>(bytes);
  return 0;
}
