// The world of tests/hsm/world.h with a daemon: one HSM's state served in-process on a loopback
// port chosen at run time, clients connecting with a group's client certificate or an HSM's
// identity, and OEM job packages for a group.
#pragma once

#include <grpc/grpc.h>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "hsm/client_cert.h"
#include "hsm/job.h"
#include "hsm/world.h"
#include "oem/oem.h"
#include "rpc/client.h"
#include "rpc/server.h"

namespace clade::hsm::testing {

// gRPC cleans up its internals once the last channel or server is gone, possibly in a thread of
// its own (grpc/grpc.h, grpc_shutdown). A test process could then exit with that cleanup still
// running, and LeakSanitizer reports what gRPC's threads still held: OpenSSL memory
// (CRYPTO_zalloc) after a test had passed (grpc/grpc issue 38539). So a test binary that talks
// gRPC holds the library for its whole run and lets go last, after every test, waiting until the
// cleanup is done.
class GrpcHeldForTheRun : public ::testing::Environment {
 public:
  void SetUp() override { grpc_init(); }
  void TearDown() override { grpc_shutdown_blocking(); }
};
inline ::testing::Environment* const kGrpcHeldForTheRun =
    ::testing::AddGlobalTestEnvironment(new GrpcHeldForTheRun);

inline rpc::ClientCredentials ClientCredsOf(const IssuedClient& c) {
  return {crypto::Certificate::ChainToPem(c.chain), c.key.ToPkcs8Pem(), c.supplier_root.Pem()};
}

inline constexpr char kDaemonDeviceProfile[] =
    R"({"product": "Sensor", "subject": {"CN": "{product} {uid}"}, )"
    R"("validity": {"days": 30}, "key_usage": ["digitalSignature"], "key_mode": "device"})";

class DaemonWorld : public World {
 protected:
  // Starts a daemon on an HSM's state (closing the test's own handle to it first).
  void Serve(const std::string& serial) {
    hsms_[serial].reset();
    auto d = rpc::Daemon::Start(StateDir(serial), "127.0.0.1:0", log_);
    ASSERT_OK(d);
    daemon_ = *std::move(d);
  }
  // Stops the daemon; its log is complete afterwards.
  void Stop() {
    if (daemon_) daemon_->Shutdown(1);
    daemon_.reset();
  }
  std::unique_ptr<rpc::HsmClient> Connect(const rpc::ClientCredentials& c) {
    auto client = rpc::HsmClient::Connect(daemon_->address(), c);
    EXPECT_TRUE(client.ok()) << client.status();
    if (!client.ok()) std::abort();
    return *std::move(client);
  }
  void TearDown() override { Stop(); }

  // An OEM package of job `job_id` for `group_id`, by a new OEM whose root `h` (the group's
  // founder, before the daemon opens its state) is made to trust.
  std::vector<uint8_t> PackageFor(Hsm& h, const std::string& group_id, const std::string& job_id,
                                  std::vector<uint8_t> firmware = {}) {
    auto o = oem::Oem::Init(dir_.File("oem-" + job_id), "Acme Devices");
    EXPECT_TRUE(o.ok()) << o.status();
    if (!o.ok()) return {};
    EXPECT_OK(TrustOem(h, group_id, o->root()));
    auto ex = ExportGroup(h, group_id);
    EXPECT_TRUE(ex.ok()) << ex.status();
    if (!ex.ok()) return {};
    oem::PackageOptions opts;
    opts.job_id = job_id;
    opts.group_export_dir = dir_.File("gx-" + job_id);
    opts.pinned_supplier_root = supplier_->root();
    EXPECT_OK(WriteGroupExport(*ex, opts.group_export_dir));
    opts.profile_json = kDaemonDeviceProfile;
    opts.firmware = std::move(firmware);
    auto pkg = o->Package(opts);
    EXPECT_TRUE(pkg.ok()) << pkg.status();
    return pkg.ok() ? pkg->package : std::vector<uint8_t>{};
  }

  static v1::ProvisionRequest Device(const std::string& job_id, const std::string& uid,
                                     uint64_t tag) {
    v1::ProvisionRequest r;
    r.set_job_id(job_id);
    r.set_uid(uid);
    auto key = crypto::PrivateKey::Generate(crypto::Curve::kP256);
    EXPECT_TRUE(key.ok()) << key.status();
    if (key.ok()) r.set_public_key_pem(key->Public().ToPem());
    r.set_tag(tag);
    return r;
  }

  std::ostringstream log_;
  std::unique_ptr<rpc::Daemon> daemon_;
};

}  // namespace clade::hsm::testing
