// The largest message each side of HsmService sends and receives, from Clade's own limits:
// gRPC's default receive limit (4 MiB) is below them, and would break a job package carrying
// firmware (ImportJob, GetJob) or the audit export of a busy member (ExportAudit). One gRPC
// server has one limit for all its methods, so each is the largest of its direction:
//   requests:  ImportJob's package ≤ hsm::kMaxJobPackage; the rest ≤ wire::kMaxMessageSize.
//   answers:   ExportAudit's export ≤ hsm::kMaxAuditExport, GetJob's package ≤
//              hsm::kMaxJobPackage; the rest small.
// The slack covers the fields around that one big field (ids, product, key mode).
#pragma once

#include <algorithm>
#include <cstddef>

#include "hsm/audit.h"
#include "hsm/job.h"
#include "wire/envelope.h"

namespace clade::rpc {

inline constexpr size_t kMessageSlack = 64 * 1024;
inline constexpr size_t kMaxRequestBytes =
    std::max(hsm::kMaxJobPackage, wire::kMaxMessageSize) + kMessageSlack;
inline constexpr size_t kMaxResponseBytes =
    std::max(hsm::kMaxAuditExport, hsm::kMaxJobPackage) + kMessageSlack;
static_assert(kMaxResponseBytes < (size_t{1} << 31), "gRPC sizes are ints");

}  // namespace clade::rpc
