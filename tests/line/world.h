// The group the line's tests work for, made in process (on hsm/world.h): group Acme, where SN-A
// founds it (1) and SN-B is enrolled (1.1); the group trusts an OEM whose job J-1 (device key
// mode) is imported on SN-A only; a line client certificate of the group.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "hsm/client_cert.h"
#include "hsm/job.h"
#include "hsm/world.h"
#include "oem/oem.h"
#include "rpc/client.h"

namespace clade::hsm::testing {

class LineWorld : public World {
 protected:
  void SetUp() override {
    World::SetUp();
    Hsm& a = Make("SN-A");
    Hsm& b = Make("SN-B");
    gid_ = Found(a, "Acme");
    auto o = oem::Oem::Init(dir_.File("oem"), "Acme Devices");
    ASSERT_OK(o);
    oem_root_ = o->root();
    // Trusted before SN-B joins, so SN-B holds the OEM root in its group context too.
    ASSERT_OK(TrustOem(a, gid_, o->root()));
    Enroll(a, b, gid_);
    auto ex = ExportGroup(a, gid_);
    ASSERT_OK(ex);
    group_ca_chain_ = ex->group_ca_chain;
    oem::PackageOptions opts;
    opts.job_id = "J-1";
    opts.group_export_dir = dir_.File("gx");
    opts.pinned_supplier_root = supplier_->root();
    ASSERT_OK(WriteGroupExport(*ex, opts.group_export_dir));
    opts.profile_json = kSensorProfile;
    auto pkg = o->Package(opts);
    ASSERT_OK(pkg);
    ASSERT_OK(ImportJob(a, pkg->package));
    package_ = pkg->package;
    auto client = IssueClientCert(a, gid_, ClientRole::kLine);
    ASSERT_OK(client);
    creds_ = {crypto::Certificate::ChainToPem(client->chain), client->key.ToPkcs8Pem(),
              client->supplier_root.Pem()};
  }

  std::string gid_;
  std::vector<uint8_t> package_;
  std::optional<crypto::Certificate> oem_root_;
  std::vector<crypto::Certificate> group_ca_chain_;
  rpc::ClientCredentials creds_;
};

}  // namespace clade::hsm::testing
