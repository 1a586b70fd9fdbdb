// Members over gRPC (rpc/client.h), as the core's MemberLinks (line/seams.h).
#include "line/grpc_members.h"

#include <memory>

namespace clade::line {
namespace {

class GrpcStream : public AnswerStream {
 public:
  explicit GrpcStream(std::unique_ptr<rpc::ProvisionStream> s) : s_(std::move(s)) {}
  bool Send(const v1::ProvisionRequest& req) override { return s_->Write(req); }
  bool Receive(v1::ProvisionResponse* answer) override { return s_->Read(answer); }
  void DoneSending() override { s_->WritesDone(); }
  void Cancel() override { s_->Cancel(); }
  absl::Status Finish() override { return s_->Finish(); }

 private:
  std::unique_ptr<rpc::ProvisionStream> s_;
};

// The one place the line reads a member's Status message.
MemberStatus FromStatusResponse(const v1::StatusResponse& st, std::string server_cert_pem) {
  MemberStatus m;
  m.state = st.state();
  m.member_cert = st.member_cert();
  m.server_cert_pem = std::move(server_cert_pem);
  return m;
}

class GrpcMember : public MemberLink {
 public:
  explicit GrpcMember(std::unique_ptr<rpc::HsmClient> c) : c_(std::move(c)) {}
  absl::StatusOr<MemberStatus> Status(int timeout_seconds) override {
    std::string pem;
    ASSIGN_OR_RETURN(v1::StatusResponse st, c_->Status(timeout_seconds, &pem));
    return FromStatusResponse(st, std::move(pem));
  }
  absl::StatusOr<std::vector<uint8_t>> FetchJob(const std::string& job_id) override {
    ASSIGN_OR_RETURN(v1::GetJobResponse got, c_->GetJob(job_id));
    return std::vector<uint8_t>(got.package().begin(), got.package().end());
  }
  absl::Status ImportJob(const std::vector<uint8_t>& package) override {
    v1::ImportJobRequest req;
    req.set_package(std::string(package.begin(), package.end()));
    return c_->ImportJob(req).status();
  }
  absl::StatusOr<std::unique_ptr<AnswerStream>> OpenStream() override {
    ASSIGN_OR_RETURN(std::unique_ptr<rpc::ProvisionStream> s, c_->OpenProvisionStream());
    return std::unique_ptr<AnswerStream>(std::make_unique<GrpcStream>(std::move(s)));
  }

 private:
  std::unique_ptr<rpc::HsmClient> c_;
};

class GrpcMemberLinks : public MemberLinks {
 public:
  explicit GrpcMemberLinks(const rpc::ClientCredentials& creds) : creds_(creds) {}
  absl::StatusOr<std::unique_ptr<MemberLink>> Connect(const std::string& address) override {
    ASSIGN_OR_RETURN(std::unique_ptr<rpc::HsmClient> c, rpc::HsmClient::Connect(address, creds_));
    return std::unique_ptr<MemberLink>(std::make_unique<GrpcMember>(std::move(c)));
  }

 private:
  const rpc::ClientCredentials& creds_;
};

}  // namespace

std::unique_ptr<MemberLinks> MakeGrpcMemberLinks(const rpc::ClientCredentials& credentials) {
  return std::make_unique<GrpcMemberLinks>(credentials);
}

}  // namespace clade::line
