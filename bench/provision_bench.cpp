// Where the per-device time goes (docs/design.md, "The hot path"). Baselines: raw OpenSSL P-256 key
// generation and ECDSA signing. Then Clade's certificate issue alone, and the whole per-device call
// (Provisioner::Provision: issue, record signature, one SQLite transaction with fsync, audit).
#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "crypto/cert_template.h"
#include "crypto/key.h"
#include "crypto/signature.h"
#include "crypto/x509.h"
#include "hsm/enrollment.h"
#include "hsm/group.h"
#include "hsm/job.h"
#include "oem/oem.h"
#include "supplier/supplier.h"

namespace {

using namespace clade;

void BM_OpensslKeygenP256(benchmark::State& state) {
  for (auto _ : state) {
    EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    benchmark::DoNotOptimize(k);
    EVP_PKEY_free(k);
  }
}
BENCHMARK(BM_OpensslKeygenP256);

void BM_OpensslSignP256(benchmark::State& state) {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  unsigned char msg[300] = {1};
  unsigned char sig[80];
  for (auto _ : state) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    size_t len = sizeof sig;
    EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, k);
    EVP_DigestSign(ctx, sig, &len, msg, sizeof msg);
    EVP_MD_CTX_free(ctx);
    benchmark::DoNotOptimize(sig);
  }
  EVP_PKEY_free(k);
}
BENCHMARK(BM_OpensslSignP256);

void BM_CladeSignerP256(benchmark::State& state) {
  auto key = crypto::PrivateKey::Generate(crypto::Curve::kP256).value();
  auto signer = crypto::Signer::Create(key).value();
  std::vector<uint8_t> msg(300, 1);
  for (auto _ : state) benchmark::DoNotOptimize(signer.Sign(msg));
}
BENCHMARK(BM_CladeSignerP256);

void BM_CladeIssueDeviceCert(benchmark::State& state) {
  auto ca_key = crypto::PrivateKey::Generate(crypto::Curve::kP256).value();
  crypto::CertProfile ca;
  ca.subject = {{"CN", "bench CA"}};
  ca.not_after = crypto::kNoExpiry;
  ca.is_ca = true;
  ca.key_usage = {"keyCertSign"};
  auto ca_cert = crypto::IssueCertificate(ca, ca_key.Public(), nullptr, ca_key).value();
  auto dev = crypto::PrivateKey::Generate(crypto::Curve::kP256).value();
  crypto::CertProfile p;
  p.subject = {{"CN", "Sensor 0001"}, {"O", "Acme"}};
  p.not_after = crypto::kNoExpiry;
  p.key_usage = {"digitalSignature"};
  p.extended_key_usage = {"clientAuth"};
  for (auto _ : state) {
    benchmark::DoNotOptimize(crypto::IssueCertificate(p, dev.Public(), &ca_cert, ca_key));
  }
}
BENCHMARK(BM_CladeIssueDeviceCert);

// The template path (docs/design.md, "The hot path"): fixed parts encoded once, one signature per
// certificate.
void BM_CladeTemplateDeviceCert(benchmark::State& state) {
  auto ca_key = crypto::PrivateKey::Generate(crypto::Curve::kP256).value();
  crypto::CertProfile ca;
  ca.subject = {{"CN", "bench CA"}};
  ca.not_after = crypto::kNoExpiry;
  ca.is_ca = true;
  ca.key_usage = {"keyCertSign"};
  auto ca_cert = crypto::IssueCertificate(ca, ca_key.Public(), nullptr, ca_key).value();
  auto dev = crypto::PrivateKey::Generate(crypto::Curve::kP256).value();
  crypto::CertProfile p;
  p.key_usage = {"digitalSignature"};
  p.extended_key_usage = {"clientAuth"};
  auto t = crypto::CertTemplate::Create(p, ca_cert, ca_key).value();
  std::vector<std::pair<std::string, std::string>> subject = {{"CN", "Sensor 0001"}, {"O", "Acme"}};
  for (auto _ : state) {
    benchmark::DoNotOptimize(t.Issue(subject, 1700000000, crypto::kNoExpiry, dev.Public()));
  }
}
BENCHMARK(BM_CladeTemplateDeviceCert);

// The template path plus parsing the result back into a Certificate (what a caller that needs
// the object pays).
void BM_CladeTemplateDeviceCertParsed(benchmark::State& state) {
  auto ca_key = crypto::PrivateKey::Generate(crypto::Curve::kP256).value();
  crypto::CertProfile ca;
  ca.subject = {{"CN", "bench CA"}};
  ca.not_after = crypto::kNoExpiry;
  ca.is_ca = true;
  ca.key_usage = {"keyCertSign"};
  auto ca_cert = crypto::IssueCertificate(ca, ca_key.Public(), nullptr, ca_key).value();
  auto dev = crypto::PrivateKey::Generate(crypto::Curve::kP256).value();
  crypto::CertProfile p;
  p.key_usage = {"digitalSignature"};
  auto t = crypto::CertTemplate::Create(p, ca_cert, ca_key).value();
  for (auto _ : state) {
    auto issued = t.Issue({{"CN", "Sensor 0001"}}, 1700000000, crypto::kNoExpiry, dev.Public());
    benchmark::DoNotOptimize(crypto::Certificate::FromDer(issued->der));
  }
}
BENCHMARK(BM_CladeTemplateDeviceCertParsed);

// A group of one with an imported job, in a temporary directory.
struct Factory {
  std::string dir;
  std::unique_ptr<hsm::Hsm> hsm;
  std::unique_ptr<hsm::Provisioner> provisioner;
  explicit Factory(const std::string& key_mode) {
    dir = std::filesystem::temp_directory_path() / ("clade-bench-" + key_mode);
    std::filesystem::remove_all(dir);
    auto sup = supplier::Supplier::Init(dir + "/supplier", "Bench").value();
    hsm = hsm::Hsm::Init(dir + "/hsm", store::KekConfig{}, "BENCH-1",
                         [&](const hsm::IdentityRequest& r) { return sup.CertifyHsm(r); })
              .value();
    auto o = oem::Oem::Init(dir + "/oem", "Acme").value();
    auto g = hsm::CreateGroup(*hsm, "bench", o.root()).value();
    hsm::WriteGroupExport(hsm::ExportGroup(*hsm, g.group_id).value(), dir + "/gx").IgnoreError();
    oem::PackageOptions opts;
    opts.job_id = "J";
    opts.group_export_dir = dir + "/gx";
    opts.pinned_supplier_root = sup.root();
    opts.profile_json =
        R"({"product": "Sensor", "subject": {"CN": "{product} {uid}", "O": "Acme"},
            "validity": {"not_after": "99991231235959Z"}, "key_usage": ["digitalSignature"],
            "extended_key_usage": ["clientAuth"], "key_mode": ")" +
        key_mode + R"(", "allow_plain_keys": true})";
    auto pkg = o.Package(opts).value();
    hsm::ImportJob(*hsm, pkg.package).value();
    provisioner = hsm::Provisioner::Create(*hsm, g.group_id, "J").value();
  }
  ~Factory() {
    provisioner.reset();
    hsm.reset();
    std::filesystem::remove_all(dir);
  }
};

void BM_ProvisionDeviceKey(benchmark::State& state) {
  Factory f("device");
  auto dev = crypto::PrivateKey::Generate(crypto::Curve::kP256).value();
  uint64_t n = 0;
  for (auto _ : state) {
    hsm::DeviceRequest req;
    req.uid = absl::StrCat("D", n++);
    req.device_key = dev.Public();
    auto data = f.provisioner->Provision(req);
    if (!data.ok()) state.SkipWithError(std::string(data.status().message()).c_str());
  }
}
BENCHMARK(BM_ProvisionDeviceKey)->Unit(benchmark::kMicrosecond);

void BM_ProvisionHsmKeyPlain(benchmark::State& state) {
  Factory f("hsm");
  uint64_t n = 0;
  for (auto _ : state) {
    hsm::DeviceRequest req;
    req.uid = absl::StrCat("D", n++);
    auto data = f.provisioner->Provision(req);
    if (!data.ok()) state.SkipWithError(std::string(data.status().message()).c_str());
  }
}
BENCHMARK(BM_ProvisionHsmKeyPlain)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
