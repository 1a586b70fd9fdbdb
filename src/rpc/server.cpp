// The daemon itself: TLS 1.3 credentials, start and graceful stop, the structured log. The calls
// are in authorize.cpp, member_calls.cpp and job_calls.cpp (rpc/internal/daemon.h).
#include "rpc/server.h"

#include <grpc/grpc_security.h>
#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>

#include "hsm/group.h"
#include "hsm/group_statement.h"
#include "rpc/internal/daemon.h"
#include "rpc/limits.h"

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

// gRPC's own log lines (e.g. a refused TLS handshake) go through the running daemon's log, as
// structured lines; only one daemon per process logs them.
std::atomic<Daemon::Impl*> g_logging_daemon{nullptr};
void GrpcLog(gpr_log_func_args* args);

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

}  // namespace

void Daemon::Impl::Log(const std::string& event, const Fields& kv) {
  std::string line =
      "ts=" + Timestamp() + " hsm=" + serial + " member=" + Quote(members) + " event=" + event;
  for (const auto& [k, v] : kv) line += " " + k + "=" + Quote(v);
  std::lock_guard<std::mutex> l(log_mu);
  *log << line << std::endl;
}

void Daemon::Impl::RefreshMembers() {
  auto groups = hsm::ListGroups(*hsm);
  members.clear();
  if (!groups.ok()) return;
  for (const auto& g : *groups) {
    if (!members.empty()) members += ",";
    members += g.member_id;
  }
  if (members.empty()) members = "none";
}

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
