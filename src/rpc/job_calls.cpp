// The calls of a job: ImportJob, GetJob, and the Provision stream (one device per message).
#include <algorithm>

#include "clade/v1/job.pb.h"
#include "rpc/internal/daemon.h"

namespace clade::rpc {

using grpc::ServerContext;
using grpc::StatusCode;

grpc::Status Daemon::Impl::ImportJob(ServerContext* ctx, const v1::ImportJobRequest* req,
                                     v1::ImportJobResponse* resp) {
  std::lock_guard<std::mutex> l(mu);
  Caller c;
  if (auto s = Authorize(ctx, "ImportJob", {CallerKind::kOperator, CallerKind::kLine}, &c);
      !s.ok()) {
    return s;
  }
  auto group =
      GroupOfMessage<v1::JobPackage>(req->package(), hsm::kJobPackageType, hsm::kMaxJobPackage);
  if (!group.ok()) return ToGrpc(group.status());
  if (auto s = c.MayActFor(*group); !s.ok()) return s;
  std::vector<uint8_t> bytes(req->package().begin(), req->package().end());
  auto job = hsm::ImportJob(*hsm, bytes);
  if (!job.ok()) return ToGrpc(job.status());
  resp->set_job_id(job->job_id);
  resp->set_group_id(job->group_id);
  resp->set_product(job->product);
  Log("job.import", {{"job", job->job_id}, {"group", job->group_id}, {"caller", c.Name()}});
  return grpc::Status::OK;
}

grpc::Status Daemon::Impl::GetJob(ServerContext* ctx, const v1::GetJobRequest* req,
                                  v1::GetJobResponse* resp) {
  std::lock_guard<std::mutex> l(mu);
  Caller c;
  if (auto s = Authorize(ctx, "GetJob", {CallerKind::kLine, CallerKind::kOperator}, &c); !s.ok()) {
    return s;
  }
  if (req->job_id().empty()) {
    return grpc::Status(StatusCode::INVALID_ARGUMENT, "job_id is required");
  }
  // The caller's group selects: another group's job of the same id is not this caller's.
  auto jobs = hsm::ListJobs(*hsm, c.group_id);
  if (!jobs.ok()) return ToGrpc(jobs.status());
  auto job = std::find_if(jobs->begin(), jobs->end(),
                          [&](const hsm::JobSummary& j) { return j.job_id == req->job_id(); });
  if (job == jobs->end()) {
    return grpc::Status(
        StatusCode::NOT_FOUND,
        "job " + req->job_id() + " is not imported on this member for group " + c.group_id);
  }
  if (auto s = c.MayActFor(job->group_id); !s.ok()) return s;
  auto package = hsm::JobPackageBytes(*hsm, job->group_id, job->job_id);
  if (!package.ok()) return ToGrpc(package.status());
  resp->set_package(std::string(package->begin(), package->end()));
  resp->set_group_id(job->group_id);
  resp->set_product(job->product);
  resp->set_key_mode(job->key_mode);
  Log("job.get", {{"job", job->job_id}, {"group", job->group_id}, {"caller", c.Name()}});
  return grpc::Status::OK;
}

grpc::Status Daemon::Impl::Provision(
    ServerContext* ctx,
    grpc::ServerReaderWriter<v1::ProvisionResponse, v1::ProvisionRequest>* stream) {
  Caller c;
  {
    std::lock_guard<std::mutex> l(mu);
    if (auto s = Authorize(ctx, "Provision", {CallerKind::kLine, CallerKind::kOperator}, &c);
        !s.ok()) {
      return s;
    }
  }
  Provisioners provisioners;
  v1::ProvisionRequest req;
  while (stream->Read(&req)) {
    v1::ProvisionResponse resp;
    resp.set_tag(req.tag());
    resp.set_uid(req.uid());
    absl::Status st = ProvisionOne(req, c, provisioners, &resp);
    resp.set_code(static_cast<int32_t>(st.code()));
    if (!st.ok()) {
      resp.set_error(std::string(st.message()));
      Log("provision.refused",
          {{"job", req.job_id()}, {"uid", req.uid()}, {"reason", resp.error()}});
    }
    if (!stream->Write(resp)) break;
  }
  std::lock_guard<std::mutex> l(mu);
  provisioners.clear();  // drops the unwrapped CA keys with the Hsm lock held
  return grpc::Status::OK;
}

absl::Status Daemon::Impl::ProvisionOne(const v1::ProvisionRequest& req, const Caller& c,
                                        Provisioners& provs, v1::ProvisionResponse* resp) {
  hsm::DeviceRequest dr;
  dr.uid = req.uid();
  dr.reissue = req.reissue();
  if (!req.public_key_pem().empty()) {
    ASSIGN_OR_RETURN(auto k, crypto::PublicKey::FromPem(req.public_key_pem()));
    dr.device_key = std::move(k);
  }
  if (!req.transport_cert_pem().empty()) {
    ASSIGN_OR_RETURN(auto t, crypto::Certificate::FromPem(req.transport_cert_pem()));
    dr.transport_cert = std::move(t);
  }
  std::lock_guard<std::mutex> l(mu);
  auto it = provs.find(req.job_id());
  if (it == provs.end()) {
    // Only the caller's own group is searched: Create unwraps the job's CA key and
    // trial-issues, which a client of another group must not cause (nor learn from its
    // refusals). Another group's job of the same id is NotFound here.
    ASSIGN_OR_RETURN(auto p, hsm::Provisioner::Create(*hsm, c.group_id, req.job_id()));
    it = provs.emplace(req.job_id(), std::move(p)).first;
  }
  ASSIGN_OR_RETURN(hsm::ProvisioningData d, it->second->Provision(dr));
  resp->set_device_cert(std::string(d.device_cert_der.begin(), d.device_cert_der.end()));
  resp->set_cert_serial(d.cert_serial);
  for (const auto& cert : d.chain) {
    resp->add_chain(std::string(cert.Der().begin(), cert.Der().end()));
  }
  resp->set_key_envelope(std::string(d.key_envelope.begin(), d.key_envelope.end()));
  resp->set_record(std::string(d.record.begin(), d.record.end()));
  Log("provision",
      {{"job", req.job_id()}, {"uid", req.uid()}, {"serial", d.cert_serial}, {"caller", c.Name()}});
  return absl::OkStatus();
}

}  // namespace clade::rpc
