// The calls about this member and its groups: enrollment (Announce, Admit), group statements
// (PushStatement), Status and ExportAudit.
#include "clade/v1/group.pb.h"
#include "clade/v1/statement.pb.h"
#include "hsm/audit.h"
#include "hsm/enrollment.h"
#include "hsm/group.h"
#include "hsm/group_statement.h"
#include "rpc/internal/daemon.h"

namespace clade::rpc {

using grpc::ServerContext;

grpc::Status Daemon::Impl::PushStatement(ServerContext* ctx, const v1::PushStatementRequest* req,
                                         v1::PushStatementResponse* resp) {
  std::lock_guard<std::mutex> l(mu);
  Caller c;
  if (auto s = Authorize(ctx, "PushStatement", {CallerKind::kOperator, CallerKind::kPeerHsm}, &c);
      !s.ok()) {
    return s;
  }
  auto group = GroupOfMessage<v1::GroupStatement>(req->statement(), hsm::kStatementType,
                                                  hsm::kMaxStatementSize);
  if (!group.ok()) return ToGrpc(group.status());
  // A peer HSM acts for no group, but passing a statement on is not acting: the statement is
  // checked against this member's own group CA (signed by the group signing key), and what
  // comes back is only the newest statement of a group whose statement the peer already holds.
  if (!c.IsPeerHsm()) {
    if (auto s = c.MayActFor(*group); !s.ok()) return s;
  }
  auto r = hsm::AcceptStatement(*hsm, crypto::AsBytes(req->statement()));
  if (!r.ok()) {
    Log("statement.refused",
        {{"rpc", "PushStatement"}, {"reason", std::string(r.status().message())}});
    return ToGrpc(r.status());
  }
  resp->set_adopted(r->outcome == hsm::Adoption::kAdopted);
  resp->set_statement(std::string(r->statement.message.begin(), r->statement.message.end()));
  resp->set_sequence(r->statement.sequence);
  Log("statement.push", {{"group", *group},
                         {"sequence", std::to_string(r->statement.sequence)},
                         {"adopted", resp->adopted() ? "yes" : "no"},
                         {"caller", c.Name()}});
  return grpc::Status::OK;
}

grpc::Status Daemon::Impl::Announce(ServerContext* ctx, const v1::AnnounceRequest* req,
                                    v1::AnnounceResponse* resp) {
  std::lock_guard<std::mutex> l(mu);
  Caller c;
  // An announcement is an invitation: only the group's operator asks for one.
  if (auto s = Authorize(ctx, "Announce", {CallerKind::kOperator}, &c); !s.ok()) return s;
  auto gid = hsm::ResolveGroup(*hsm, req->group());
  if (!gid.ok()) return ToGrpc(gid.status());
  if (auto s = c.MayActFor(*gid); !s.ok()) return s;
  hsm::AnnounceOptions opts;
  if (req->valid_for() > 0) opts.valid_for = req->valid_for();
  opts.for_serial = req->for_serial();
  auto msg = hsm::Announce(*hsm, *gid, opts);
  if (!msg.ok()) return ToGrpc(msg.status());
  resp->set_announcement(std::string(msg->begin(), msg->end()));
  Log("announce", {{"group", *gid},
                   {"for", opts.for_serial.empty() ? "any" : opts.for_serial},
                   {"caller", c.Name()}});
  return grpc::Status::OK;
}

grpc::Status Daemon::Impl::Admit(ServerContext* ctx, const v1::AdmitRequest* req,
                                 v1::AdmitResponse* resp) {
  std::lock_guard<std::mutex> l(mu);
  Caller c;
  if (auto s = Authorize(ctx, "Admit", {CallerKind::kOperator, CallerKind::kPeerHsm}, &c);
      !s.ok()) {
    return s;
  }
  if (!c.IsPeerHsm()) {
    auto group = GroupOfMessage<v1::EnrollmentRequest>(req->request(), hsm::kRequestType,
                                                       wire::kMaxMessageSize);
    if (!group.ok()) return ToGrpc(group.status());
    if (auto s = c.MayActFor(*group); !s.ok()) return s;
  }
  std::vector<uint8_t> bytes(req->request().begin(), req->request().end());
  // A peer HSM sends only its own request, on an announcement made for it (hsm::Admit checks).
  auto adm = hsm::Admit(*hsm, bytes, c.hsm_identity ? &*c.hsm_identity : nullptr);
  if (!adm.ok()) {
    Log("admit.refused", {{"caller", c.Name()}, {"reason", std::string(adm.status().message())}});
    return ToGrpc(adm.status());
  }
  resp->set_response(std::string(adm->response.begin(), adm->response.end()));
  resp->set_member_id(adm->member_id);
  Log("admit",
      {{"candidate", adm->candidate_serial}, {"new_member", adm->member_id}, {"caller", c.Name()}});
  return grpc::Status::OK;
}

grpc::Status Daemon::Impl::Status(ServerContext* ctx, const v1::StatusRequest*,
                                  v1::StatusResponse* resp) {
  std::lock_guard<std::mutex> l(mu);
  Caller c;
  if (auto s = Authorize(ctx, "Status",
                         {CallerKind::kLine, CallerKind::kOperator, CallerKind::kPeerHsm}, &c);
      !s.ok()) {
    return s;
  }
  resp->set_serial(serial);
  auto groups = hsm::ListGroups(*hsm);
  if (!groups.ok()) return ToGrpc(groups.status());
  // Only the caller's own group: a client of one group learns nothing of the others, a peer HSM
  // nothing of any.
  for (const auto& g : *groups) {
    if (!c.IsPeerHsm() && g.group_id == c.group_id) {
      v1::Membership* m = resp->add_memberships();
      m->set_group_id(g.group_id);
      m->set_member_id(g.member_id);
    }
  }
  if (!c.group_id.empty()) {
    // The line's proof that this HSM is a member of its group (docs/protocol.md).
    auto g = hsm::ExportGroup(*hsm, c.group_id);
    if (!g.ok()) return ToGrpc(g.status());
    resp->set_member_cert(std::string(g->member.Der().begin(), g->member.Der().end()));
  }
  resp->set_state(stopping ? "stopping" : "serving");
  Log("status", {{"caller", c.Name()}});
  return grpc::Status::OK;
}

grpc::Status Daemon::Impl::ExportAudit(ServerContext* ctx, const v1::ExportAuditRequest*,
                                       v1::ExportAuditResponse* resp) {
  std::lock_guard<std::mutex> l(mu);
  Caller c;
  if (auto s = Authorize(ctx, "ExportAudit", {CallerKind::kOperator}, &c); !s.ok()) return s;
  auto exp = hsm::ExportGroupAudit(*hsm, c.group_id);
  if (!exp.ok()) return ToGrpc(exp.status());
  resp->set_export_message(std::string(exp->begin(), exp->end()));
  Log("audit.export",
      {{"group", c.group_id}, {"bytes", std::to_string(exp->size())}, {"caller", c.Name()}});
  return grpc::Status::OK;
}

}  // namespace clade::rpc
