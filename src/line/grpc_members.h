// Members over gRPC (rpc/client.h) as the line core's MemberLinks (line/seams.h).
#pragma once

#include <memory>

#include "line/seams.h"
#include "rpc/client.h"

namespace clade::line {

// `credentials` must outlive the links.
std::unique_ptr<MemberLinks> MakeGrpcMemberLinks(const rpc::ClientCredentials& credentials);

}  // namespace clade::line
