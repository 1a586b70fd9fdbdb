#include "rpc/server.h"

#include <grpc/grpc_security.h>
#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>

#include "base/clock.h"
#include "clade/v1/group.pb.h"
#include "clade/v1/hsm_service.grpc.pb.h"
#include "clade/v1/job.pb.h"
#include "clade/v1/statement.pb.h"
#include "crypto/signature.h"
#include "crypto/x509.h"
#include "hsm/audit.h"
#include "hsm/client_cert.h"
#include "hsm/enrollment.h"
#include "hsm/group.h"
#include "hsm/group_statement.h"
#include "hsm/hsm.h"
#include "hsm/job.h"
#include "rpc/limits.h"
#include "wire/envelope.h"

// gRPC 1.51 (Debian bookworm) offers no public way to set a server's minimum TLS version; its
// SSL server credentials have the setter, exported from libgrpc. It is declared here to be
// called: only the symbol matters, and a gRPC without it fails at link time, not silently.
struct grpc_ssl_server_credentials {
  void set_min_tls_version(grpc_tls_version min_tls_version);
};

namespace clade::rpc {
namespace {

// Server credentials made through the C API, so that TLS 1.3 can be the minimum: a client
// offering only TLS 1.2 fails the handshake. The client certificate is required; Clade's own
// verifiers judge it per call (Authorize), against the supplier root and the groups.
class Tls13Credentials final : public grpc::ServerCredentials {
 public:
  explicit Tls13Credentials(grpc_server_credentials* c) : c_(c) {}
  ~Tls13Credentials() override { grpc_server_credentials_release(c_); }
  Tls13Credentials(const Tls13Credentials&) = delete;
  Tls13Credentials& operator=(const Tls13Credentials&) = delete;
  void SetAuthMetadataProcessor(const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {}

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    return grpc_server_add_http2_port(server, addr.c_str(), c_);
  }
  grpc_server_credentials* c_;
};

// `key_pem` is NUL-terminated, for the C API.
std::shared_ptr<grpc::ServerCredentials> Tls13ServerCredentials(const std::string& root_pem,
                                                                const crypto::SecretBytes& key_pem,
                                                                const std::string& chain_pem) {
  grpc_ssl_pem_key_cert_pair pair{reinterpret_cast<const char*>(key_pem.RevealSecret().data()),
                                  chain_pem.c_str()};
  grpc_server_credentials* c = grpc_ssl_server_credentials_create_ex(
      root_pem.c_str(), &pair, 1, GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_BUT_DONT_VERIFY,
      nullptr);
  // The object made by grpc_ssl_server_credentials_create_ex is a grpc_ssl_server_credentials,
  // whose grpc_server_credentials base sits at offset 0 (single inheritance).
  reinterpret_cast<grpc_ssl_server_credentials*>(c)->set_min_tls_version(TLS1_3);
  return std::make_shared<Tls13Credentials>(c);
}

using grpc::ServerContext;
using grpc::StatusCode;

grpc::Status ToGrpc(const absl::Status& s) {
  StatusCode code = StatusCode::UNKNOWN;
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
      code = StatusCode::INVALID_ARGUMENT;
      break;
    case absl::StatusCode::kNotFound:
      code = StatusCode::NOT_FOUND;
      break;
    case absl::StatusCode::kAlreadyExists:
      code = StatusCode::ALREADY_EXISTS;
      break;
    case absl::StatusCode::kPermissionDenied:
      code = StatusCode::PERMISSION_DENIED;
      break;
    case absl::StatusCode::kFailedPrecondition:
      code = StatusCode::FAILED_PRECONDITION;
      break;
    case absl::StatusCode::kUnauthenticated:
      code = StatusCode::UNAUTHENTICATED;
      break;
    case absl::StatusCode::kUnavailable:
      code = StatusCode::UNAVAILABLE;
      break;
    case absl::StatusCode::kDeadlineExceeded:
      code = StatusCode::DEADLINE_EXCEEDED;
      break;
    default:
      code = StatusCode::INTERNAL;
      break;
  }
  return grpc::Status(code, std::string(s.message()));
}

std::string Timestamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Values with spaces or quotes are quoted, so a line stays one key=value list.
std::string Quote(const std::string& v) {
  if (!v.empty() && v.find_first_of(" \"=\n\t") == std::string::npos) return v;
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += (c == '\n' || c == '\t') ? ' ' : c;
  }
  return out + "\"";
}

// Who called.
struct Caller {
  std::string kind;  // "hsm", "line" or "operator"
  std::string who;   // HSM serial, or the client certificate's subject
  std::string group_id;
  std::optional<crypto::Certificate> hsm_identity;  // a peer HSM's identity certificate

  // A line or operator client acts for the one group that issued its certificate; an HSM keeps
  // its groups strictly apart, so a client of one never touches another. A peer HSM acts for no
  // group: what it may do (Status, sending its own enrollment request) is checked apart.
  grpc::Status MayActFor(const std::string& group) const {
    if (kind == "hsm") {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          "a peer HSM (" + who + ") acts for no group, not for group " + group);
    }
    if (group == group_id) return grpc::Status::OK;
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "the caller (role " + kind + ") is a client of group " + group_id +
                            ", not of group " + group);
  }
};

// The group a message file is for, read before anything acts on it.
template <typename M>
absl::StatusOr<std::string> GroupOfMessage(const std::string& bytes, const char* type,
                                           size_t limit) {
  ASSIGN_OR_RETURN(wire::Envelope env, wire::OpenMessage(crypto::AsBytes(bytes), type, limit));
  M m;
  if (!m.ParseFromArray(env.payload.data(), static_cast<int>(env.payload.size()))) {
    return absl::InvalidArgumentError(std::string("malformed message: ") + type);
  }
  return m.group_id();
}

// Group statements ride in this metadata entry both ways (docs/decisions/0006-group-statements.md).
constexpr char kStatementKey[] = "clade-statement-bin";

// gRPC's own log lines (e.g. a refused TLS handshake) go through the running daemon's log, as
// structured lines; only one daemon per process logs them.
std::atomic<Daemon::Impl*> g_logging_daemon{nullptr};
void GrpcLog(gpr_log_func_args* args);

}  // namespace

struct Daemon::Impl final : public v1::HsmService::Service {
  std::unique_ptr<hsm::Hsm> hsm;
  std::mutex mu;  // serializes every use of `hsm`
  std::ostream* log = nullptr;
  std::mutex log_mu;
  std::string members;  // this HSM's member ids, for every log line
  std::string serial;
  std::string address;
  // The identity key as PKCS#8 PEM and a NUL, for gRPC's C API; wiped when the server goes.
  crypto::SecretBytes key_pem;
  std::unique_ptr<grpc::Server> server;
  std::atomic<bool> stopping{false};

  void Log(const std::string& event, const std::vector<std::pair<std::string, std::string>>& kv) {
    std::string line =
        "ts=" + Timestamp() + " hsm=" + serial + " member=" + Quote(members) + " event=" + event;
    for (const auto& [k, v] : kv) line += " " + k + "=" + Quote(v);
    std::lock_guard<std::mutex> l(log_mu);
    *log << line << std::endl;
  }

  void RefreshMembers() {
    auto groups = hsm::ListGroups(*hsm);
    members.clear();
    if (!groups.ok()) return;
    for (const auto& g : *groups) {
      if (!members.empty()) members += ",";
      members += g.member_id;
    }
    if (members.empty()) members = "none";
  }

  // Statements a caller brings are adopted before its own authorization is judged, so that a
  // revocation reaches this member with the first call that carries it. Returns their groups.
  std::vector<std::string> AdoptCallerStatements(ServerContext* ctx, const char* rpc) {
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

  // The newest statement of `group_id` goes back with the answer (trailing metadata).
  void ReturnStatement(ServerContext* ctx, const std::string& group_id) {
    auto held = hsm::HeldStatement(*hsm, group_id);
    if (!held.ok() || !*held) return;
    const auto& m = (*held)->message;
    ctx->AddTrailingMetadata(kStatementKey, std::string(m.begin(), m.end()));
  }

  // Checks the caller's certificate, the group statements, and that its kind/role is in
  // `allowed`. Call with `mu` held.
  grpc::Status Authorize(ServerContext* ctx, const char* rpc,
                         std::initializer_list<const char*> allowed, Caller* out) {
    std::vector<std::string> brought = AdoptCallerStatements(ctx, rpc);
    auto auth = ctx->auth_context();
    std::vector<grpc::string_ref> leaf_pem;
    if (auth) leaf_pem = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
    auto refuse = [&](StatusCode code, const std::string& why) {
      Log("refused", {{"rpc", rpc}, {"peer", ctx->peer()}, {"reason", why}});
      return grpc::Status(code, why);
    };
    if (leaf_pem.empty()) return refuse(StatusCode::UNAUTHENTICATED, "no client certificate");
    auto leaf = crypto::Certificate::FromPem(std::string(leaf_pem[0].data(), leaf_pem[0].size()));
    if (!leaf.ok()) {
      return refuse(StatusCode::UNAUTHENTICATED,
                    "client certificate does not parse: " + std::string(leaf.status().message()));
    }
    Caller c;
    auto kind = hsm::KindOf(*leaf);
    if (kind.ok() && *kind == hsm::CertKind::kHsmIdentity) {
      // A peer HSM: genuine under our supplier root, with the issuing CA from its chain.
      std::vector<crypto::Certificate> chain;
      for (const auto& ref : auth->FindPropertyValues(GRPC_X509_PEM_CERT_CHAIN_PROPERTY_NAME)) {
        auto certs = crypto::Certificate::ChainFromPem(std::string(ref.data(), ref.size()));
        if (certs.ok()) chain.insert(chain.end(), certs->begin(), certs->end());
      }
      absl::Status last = absl::PermissionDeniedError("its chain holds no supplier issuing CA");
      bool ok = false;
      for (const auto& issuing : chain) {
        auto k = hsm::KindOf(issuing);
        if (!k.ok() || *k != hsm::CertKind::kSupplierIssuing) continue;
        auto genuine = hsm::VerifyGenuineHsm(*leaf, issuing, hsm->supplier_root());
        if (genuine.ok()) {
          c = Caller{"hsm", genuine->serial, "", *leaf};
          ok = true;
          break;
        }
        last = genuine.status();
      }
      if (!ok) {
        return refuse(StatusCode::PERMISSION_DENIED,
                      "peer HSM is not genuine: " + std::string(last.message()));
      }
      if (auto st = hsm::CheckPeerHsm(*hsm, c.who); !st.ok()) {
        return refuse(StatusCode::PERMISSION_DENIED, std::string(st.message()));
      }
    } else {
      auto client = hsm::VerifyClientCert(*hsm, *leaf);
      if (!client.ok()) {
        return refuse(StatusCode::PERMISSION_DENIED, std::string(client.status().message()));
      }
      c = Caller{client->role, client->subject, client->group_id, std::nullopt};
    }
    bool permitted = false;
    for (const char* a : allowed) permitted = permitted || c.kind == a;
    if (!permitted) {
      std::string names;
      for (const char* a : allowed) names += std::string(names.empty() ? "" : ", ") + a;
      return refuse(
          StatusCode::PERMISSION_DENIED,
          std::string("role '") + c.kind + "' may not call " + rpc + " (allowed: " + names + ")");
    }
    if (c.kind == "hsm") {
      std::sort(brought.begin(), brought.end());
      brought.erase(std::unique(brought.begin(), brought.end()), brought.end());
      for (const auto& g : brought) ReturnStatement(ctx, g);
    } else {
      ReturnStatement(ctx, c.group_id);
    }
    *out = c;
    return grpc::Status::OK;
  }

  grpc::Status PushStatement(ServerContext* ctx, const v1::PushStatementRequest* req,
                             v1::PushStatementResponse* resp) override {
    std::lock_guard<std::mutex> l(mu);
    Caller c;
    if (auto s = Authorize(ctx, "PushStatement", {"operator", "hsm"}, &c); !s.ok()) return s;
    auto group = GroupOfMessage<v1::GroupStatement>(req->statement(), hsm::kStatementType,
                                                    hsm::kMaxStatementSize);
    if (!group.ok()) return ToGrpc(group.status());
    // A peer HSM acts for no group, but passing a statement on is not acting: the statement is
    // checked against this member's own group CA (signed by the group signing key), and what
    // comes back is only the newest statement of a group whose statement the peer already holds.
    if (c.kind != "hsm") {
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
                           {"caller", c.kind + ":" + c.who}});
    return grpc::Status::OK;
  }

  grpc::Status Announce(ServerContext* ctx, const v1::AnnounceRequest* req,
                        v1::AnnounceResponse* resp) override {
    std::lock_guard<std::mutex> l(mu);
    Caller c;
    // An announcement is an invitation: only the group's operator asks for one.
    if (auto s = Authorize(ctx, "Announce", {"operator"}, &c); !s.ok()) return s;
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
                     {"caller", c.kind + ":" + c.who}});
    return grpc::Status::OK;
  }

  grpc::Status Admit(ServerContext* ctx, const v1::AdmitRequest* req,
                     v1::AdmitResponse* resp) override {
    std::lock_guard<std::mutex> l(mu);
    Caller c;
    if (auto s = Authorize(ctx, "Admit", {"operator", "hsm"}, &c); !s.ok()) return s;
    if (c.kind != "hsm") {
      auto group = GroupOfMessage<v1::EnrollmentRequest>(req->request(), hsm::kRequestType,
                                                         wire::kMaxMessageSize);
      if (!group.ok()) return ToGrpc(group.status());
      if (auto s = c.MayActFor(*group); !s.ok()) return s;
    }
    std::vector<uint8_t> bytes(req->request().begin(), req->request().end());
    // A peer HSM sends only its own request, on an announcement made for it (hsm::Admit checks).
    auto adm = hsm::Admit(*hsm, bytes, 0, c.hsm_identity ? &*c.hsm_identity : nullptr);
    if (!adm.ok()) {
      Log("admit.refused",
          {{"caller", c.kind + ":" + c.who}, {"reason", std::string(adm.status().message())}});
      return ToGrpc(adm.status());
    }
    resp->set_response(std::string(adm->response.begin(), adm->response.end()));
    resp->set_member_id(adm->member_id);
    Log("admit", {{"candidate", adm->candidate_serial},
                  {"new_member", adm->member_id},
                  {"caller", c.kind + ":" + c.who}});
    return grpc::Status::OK;
  }

  grpc::Status ImportJob(ServerContext* ctx, const v1::ImportJobRequest* req,
                         v1::ImportJobResponse* resp) override {
    std::lock_guard<std::mutex> l(mu);
    Caller c;
    if (auto s = Authorize(ctx, "ImportJob", {"operator", "line"}, &c); !s.ok()) return s;
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
    Log("job.import",
        {{"job", job->job_id}, {"group", job->group_id}, {"caller", c.kind + ":" + c.who}});
    return grpc::Status::OK;
  }

  grpc::Status GetJob(ServerContext* ctx, const v1::GetJobRequest* req,
                      v1::GetJobResponse* resp) override {
    std::lock_guard<std::mutex> l(mu);
    Caller c;
    if (auto s = Authorize(ctx, "GetJob", {"line", "operator"}, &c); !s.ok()) return s;
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
    Log("job.get",
        {{"job", job->job_id}, {"group", job->group_id}, {"caller", c.kind + ":" + c.who}});
    return grpc::Status::OK;
  }

  grpc::Status Provision(
      ServerContext* ctx,
      grpc::ServerReaderWriter<v1::ProvisionResponse, v1::ProvisionRequest>* stream) override {
    Caller c;
    {
      std::lock_guard<std::mutex> l(mu);
      if (auto s = Authorize(ctx, "Provision", {"line", "operator"}, &c); !s.ok()) return s;
    }
    std::map<std::string, std::unique_ptr<hsm::Provisioner>> provisioners;
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

  absl::Status ProvisionOne(const v1::ProvisionRequest& req, const Caller& c,
                            std::map<std::string, std::unique_ptr<hsm::Provisioner>>& provs,
                            v1::ProvisionResponse* resp) {
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
    Log("provision", {{"job", req.job_id()},
                      {"uid", req.uid()},
                      {"serial", d.cert_serial},
                      {"caller", c.kind + ":" + c.who}});
    return absl::OkStatus();
  }

  grpc::Status Status(ServerContext* ctx, const v1::StatusRequest*,
                      v1::StatusResponse* resp) override {
    std::lock_guard<std::mutex> l(mu);
    Caller c;
    if (auto s = Authorize(ctx, "Status", {"line", "operator", "hsm"}, &c); !s.ok()) return s;
    resp->set_serial(serial);
    auto groups = hsm::ListGroups(*hsm);
    if (!groups.ok()) return ToGrpc(groups.status());
    // Only the caller's own group: a client of one group learns nothing of the others, a peer HSM
    // nothing of any.
    for (const auto& g : *groups) {
      if (c.kind != "hsm" && g.group_id == c.group_id) {
        resp->add_groups(g.group_id + " " + g.member_id);
      }
    }
    if (!c.group_id.empty()) {
      // The line's proof that this HSM is a member of its group (docs/protocol.md).
      auto g = hsm::ExportGroup(*hsm, c.group_id);
      if (!g.ok()) return ToGrpc(g.status());
      resp->set_member_cert(std::string(g->member.Der().begin(), g->member.Der().end()));
    }
    resp->set_state(stopping ? "stopping" : "serving");
    Log("status", {{"caller", c.kind + ":" + c.who}});
    return grpc::Status::OK;
  }

  grpc::Status ExportAudit(ServerContext* ctx, const v1::ExportAuditRequest*,
                           v1::ExportAuditResponse* resp) override {
    std::lock_guard<std::mutex> l(mu);
    Caller c;
    if (auto s = Authorize(ctx, "ExportAudit", {"operator"}, &c); !s.ok()) return s;
    auto exp = hsm::ExportGroupAudit(*hsm, c.group_id);
    if (!exp.ok()) return ToGrpc(exp.status());
    resp->set_export_message(std::string(exp->begin(), exp->end()));
    Log("audit.export", {{"group", c.group_id},
                         {"bytes", std::to_string(exp->size())},
                         {"caller", c.kind + ":" + c.who}});
    return grpc::Status::OK;
  }
};

namespace {
void GrpcLog(gpr_log_func_args* args) {
  Daemon::Impl* d = g_logging_daemon.load();
  if (d == nullptr || args->severity < GPR_LOG_SEVERITY_ERROR) return;
  std::string msg = args->message ? args->message : "";
  // The client names the server by address (SNI); HSM certificates carry no host names.
  if (msg.find("No match found for server name") != std::string::npos) return;
  d->Log("grpc.error", {{"msg", msg}});
}
}  // namespace

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Daemon::~Daemon() {
  if (impl_ && impl_->server) Shutdown(0);
}
const std::string& Daemon::address() const { return impl_->address; }

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(const std::string& state_dir,
                                                      const std::string& listen,
                                                      std::ostream& log) {
  auto impl = std::make_unique<Impl>();
  impl->log = &log;
  ASSIGN_OR_RETURN(impl->hsm, hsm::Hsm::Open(state_dir));
  impl->serial = impl->hsm->identity().serial;
  impl->RefreshMembers();
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError("--listen must be HOST:PORT, got '" + listen + "'");
  }
  std::string host = listen.substr(0, colon);
  {
    ASSIGN_OR_RETURN(crypto::PrivateKey key, impl->hsm->IdentityKey());
    crypto::SecretBytes pem = key.ToPkcs8Pem();
    impl->key_pem = crypto::SecretBytes(pem.size() + 1);  // zero-filled: the last byte is the NUL
    std::copy(pem.RevealSecret().begin(), pem.RevealSecret().end(),
              impl->key_pem.RevealSecretMutable().begin());
  }
  std::string root_pem = impl->hsm->supplier_root().Pem();
  std::string chain_pem = crypto::Certificate::ChainToPem(impl->hsm->IdentityChain());
  int port = 0;
  grpc::ServerBuilder builder;
  // Clade's message limits, not gRPC's 4 MiB default (src/rpc/limits.h).
  builder.SetMaxReceiveMessageSize(static_cast<int>(kMaxRequestBytes));
  builder.SetMaxSendMessageSize(static_cast<int>(kMaxResponseBytes));
  builder.AddListeningPort(listen, Tls13ServerCredentials(root_pem, impl->key_pem, chain_pem),
                           &port);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, hsm::kMaxStatementMetadata);
  builder.RegisterService(impl.get());
  impl->server = builder.BuildAndStart();
  if (!impl->server || port == 0) {
    return absl::UnavailableError("cannot listen on " + listen);
  }
  impl->address = host + ":" + std::to_string(port);
  impl->Log("start", {{"listen", impl->address}});
  Impl* expected = nullptr;
  if (g_logging_daemon.compare_exchange_strong(expected, impl.get())) gpr_set_log_function(GrpcLog);
  return std::unique_ptr<Daemon>(new Daemon(std::move(impl)));
}

void Daemon::Shutdown(int grace_seconds) {
  if (!impl_->server) return;
  impl_->stopping = true;
  impl_->Log("stopping", {{"grace_seconds", std::to_string(grace_seconds)}});
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(grace_seconds));
  impl_->server->Wait();
  impl_->server.reset();
  impl_->Log("stopped", {});
  Impl* self = impl_.get();
  g_logging_daemon.compare_exchange_strong(self, nullptr);
}

}  // namespace clade::rpc
