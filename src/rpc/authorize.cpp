// Who called, and may it: every RPC starts here (src/rpc/README.md, docs/protocol.md).
#include <grpc/grpc_security.h>

#include <algorithm>

#include "hsm/enrollment.h"
#include "hsm/group_statement.h"
#include "hsm/pki.h"
#include "rpc/internal/daemon.h"

namespace clade::rpc {

grpc::Status ToGrpc(const absl::Status& s) {
  using absl::StatusCode;
  // The codes a caller acts on; gRPC numbers them as absl does.
  static constexpr StatusCode kPassed[] = {
      StatusCode::kInvalidArgument,  StatusCode::kNotFound,           StatusCode::kAlreadyExists,
      StatusCode::kPermissionDenied, StatusCode::kFailedPrecondition, StatusCode::kUnauthenticated,
      StatusCode::kUnavailable,      StatusCode::kDeadlineExceeded,
  };
  bool passed = std::find(std::begin(kPassed), std::end(kPassed), s.code()) != std::end(kPassed);
  auto code = passed ? static_cast<grpc::StatusCode>(s.code()) : grpc::StatusCode::INTERNAL;
  return grpc::Status(code, std::string(s.message()));
}

std::string_view CallerKindName(CallerKind kind) {
  switch (kind) {
    case CallerKind::kPeerHsm:
      return "hsm";
    case CallerKind::kLine:
      return "line";
    case CallerKind::kOperator:
      return "operator";
  }
  return "unknown";
}

CallerKind CallerKindOf(hsm::ClientRole role) {
  switch (role) {
    case hsm::ClientRole::kLine:
      return CallerKind::kLine;
    case hsm::ClientRole::kOperator:
      return CallerKind::kOperator;
  }
  return CallerKind::kLine;  // unreachable: every role is named above
}

std::string Caller::Name() const { return std::string(CallerKindName(kind)) + ":" + who; }

grpc::Status Caller::MayActFor(const std::string& group) const {
  if (IsPeerHsm()) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "a peer HSM (" + who + ") acts for no group, not for group " + group);
  }
  if (group == group_id) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      "the caller (role " + std::string(CallerKindName(kind)) +
                          ") is a client of group " + group_id + ", not of group " + group);
}

std::vector<std::string> Daemon::Impl::AdoptCallerStatements(grpc::ServerContext* ctx,
                                                             const char* rpc) {
  std::vector<std::string> groups;
  const auto& md = ctx->client_metadata();
  auto [begin, end] = md.equal_range(kStatementKey);
  for (auto it = begin; it != end; ++it) {
    std::string bytes(it->second.data(), it->second.size());
    auto r = hsm::AcceptStatement(*hsm, crypto::AsBytes(bytes));
    if (absl::IsNotFound(r.status())) continue;  // a group this HSM is not in: not its business
    if (!r.ok()) {
      Log("statement.refused", {{"rpc", rpc}, {"reason", std::string(r.status().message())}});
      continue;
    }
    groups.push_back(r->statement.group_id);
    if (r->outcome == hsm::Adoption::kAdopted) {
      Log("statement.adopted", {{"rpc", rpc},
                                {"group", r->statement.group_id},
                                {"sequence", std::to_string(r->statement.sequence)}});
    }
  }
  return groups;
}

void Daemon::Impl::ReturnStatement(grpc::ServerContext* ctx, const std::string& group_id) {
  auto held = hsm::HeldStatement(*hsm, group_id);
  if (!held.ok() || !*held) return;
  const auto& m = (*held)->message;
  ctx->AddTrailingMetadata(kStatementKey, std::string(m.begin(), m.end()));
}

absl::StatusOr<Caller> Daemon::Impl::Identify(grpc::ServerContext* ctx,
                                              const crypto::Certificate& leaf) {
  auto kind = hsm::KindOf(leaf);
  if (!kind.ok() || *kind != hsm::CertKind::kHsmIdentity) {
    auto client = hsm::VerifyClientCert(*hsm, leaf);
    if (!client.ok()) return absl::PermissionDeniedError(client.status().message());
    return Caller{CallerKindOf(client->role), client->subject, client->group_id, std::nullopt};
  }
  // A peer HSM: genuine under our supplier root, with the issuing CA from its chain.
  std::vector<crypto::Certificate> chain;
  for (const auto& ref :
       ctx->auth_context()->FindPropertyValues(GRPC_X509_PEM_CERT_CHAIN_PROPERTY_NAME)) {
    auto certs = crypto::Certificate::ChainFromPem(std::string(ref.data(), ref.size()));
    if (certs.ok()) chain.insert(chain.end(), certs->begin(), certs->end());
  }
  absl::Status last = absl::PermissionDeniedError("its chain holds no supplier issuing CA");
  for (const auto& issuing : chain) {
    auto k = hsm::KindOf(issuing);
    if (!k.ok() || *k != hsm::CertKind::kSupplierIssuing) continue;
    auto genuine = hsm::VerifyGenuineHsm(leaf, issuing, hsm->supplier_root(), hsm->clock().Now());
    if (!genuine.ok()) {
      last = genuine.status();
      continue;
    }
    if (auto st = hsm::CheckPeerHsm(*hsm, genuine->serial); !st.ok()) {
      return absl::PermissionDeniedError(st.message());
    }
    return Caller{CallerKind::kPeerHsm, genuine->serial, "", leaf};
  }
  return absl::PermissionDeniedError("peer HSM is not genuine: " + std::string(last.message()));
}

grpc::Status Daemon::Impl::Authorize(grpc::ServerContext* ctx, const char* rpc,
                                     std::initializer_list<CallerKind> allowed, Caller* out) {
  std::vector<std::string> brought = AdoptCallerStatements(ctx, rpc);
  auto auth = ctx->auth_context();
  std::vector<grpc::string_ref> leaf_pem;
  if (auth) leaf_pem = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  auto refuse = [&](const absl::Status& why) {
    Log("refused", {{"rpc", rpc}, {"peer", ctx->peer()}, {"reason", std::string(why.message())}});
    return ToGrpc(why);
  };
  if (leaf_pem.empty()) return refuse(absl::UnauthenticatedError("no client certificate"));
  auto leaf = crypto::Certificate::FromPem(std::string(leaf_pem[0].data(), leaf_pem[0].size()));
  if (!leaf.ok()) {
    return refuse(absl::UnauthenticatedError("client certificate does not parse: " +
                                             std::string(leaf.status().message())));
  }
  absl::StatusOr<Caller> c = Identify(ctx, *leaf);
  if (!c.ok()) return refuse(c.status());
  if (std::find(allowed.begin(), allowed.end(), c->kind) == allowed.end()) {
    std::string names;
    for (CallerKind a : allowed) {
      names += std::string(names.empty() ? "" : ", ") + std::string(CallerKindName(a));
    }
    return refuse(
        absl::PermissionDeniedError(std::string("role '") + std::string(CallerKindName(c->kind)) +
                                    "' may not call " + rpc + " (allowed: " + names + ")"));
  }
  if (c->IsPeerHsm()) {
    std::sort(brought.begin(), brought.end());
    brought.erase(std::unique(brought.begin(), brought.end()), brought.end());
    for (const auto& g : brought) ReturnStatement(ctx, g);
  } else {
    ReturnStatement(ctx, c->group_id);
  }
  *out = *std::move(c);
  return grpc::Status::OK;
}

}  // namespace clade::rpc
