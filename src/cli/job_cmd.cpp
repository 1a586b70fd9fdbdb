// `clade job …` and `clade provision`: jobs on a member, and devices provisioned with them.
#include <iostream>
#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/files.h"
#include "cli/commands.h"
#include "cli/offline_trust.h"
#include "crypto/digest.h"
#include "hsm/group.h"
#include "hsm/job.h"
#include "line/bundle.h"
#include "wire/envelope.h"

namespace clade::cli {
namespace {

// The group a job command acts in: --group when given, else the one group the job is imported
// for (so that command lines of an HSM in one group need no --group).
absl::StatusOr<std::string> JobGroup(hsm::Hsm& h, const std::string& group,
                                     const std::string& job_id) {
  if (!group.empty()) return hsm::ResolveGroup(h, group);
  return hsm::GroupOfJob(h, job_id);
}

void AddImport(CLI::App& job, Dispatch& dispatch) {
  struct Args {
    std::string state, package;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = job.add_subcommand(
      "import",
      "Import an OEM job package on a member of its target group: checks the OEM signature "
      "against the OEM root the group trusts, the group id, the expiry, the device CA chain and "
      "that the CA key is wrapped for the group. The secrets stay wrapped at rest.");
  AddStateOption(*cmd, a->state);
  cmd->add_option("--package", a->package, "Job package file from `clade oem package`")->required();
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
    ASSIGN_OR_RETURN(auto bytes, ReadFileBytes(a->package, hsm::kMaxJobPackage));
    ASSIGN_OR_RETURN(auto job, hsm::ImportJob(*h, bytes));
    std::cout << "imported job " << job.job_id << " for group " << job.group_id << "\n"
              << "product: " << job.product << ", device key mode: " << job.key_mode << "\n"
              << "device CA: " << job.device_ca_subject << "\n";
    return absl::OkStatus();
  });
}

void AddList(CLI::App& job, Dispatch& dispatch) {
  struct Args {
    std::string state, group;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = job.add_subcommand(
      "list", "List the jobs imported on this HSM, for every group it is in or for one");
  AddStateOption(*cmd, a->state);
  cmd->add_option("--group", a->group, "Only this group's jobs: full id, unique id prefix, name");
  cmd->add_flag("--json", a->json, "Print JSON");
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
    std::string gid;
    if (!a->group.empty()) {
      ASSIGN_OR_RETURN(gid, hsm::ResolveGroup(*h, a->group));
    }
    ASSIGN_OR_RETURN(auto jobs, hsm::ListJobs(*h, gid));
    nlohmann::json out = nlohmann::json::array();
    for (const auto& j : jobs) {
      if (a->json) {
        out.push_back({{"job_id", j.job_id},
                       {"group_id", j.group_id},
                       {"product", j.product},
                       {"key_mode", j.key_mode},
                       {"device_ca", j.device_ca_subject},
                       {"expires_at", j.expires_at ? FormatTime(j.expires_at) : "none"},
                       {"devices_provisioned", j.devices_provisioned},
                       {"firmware", j.has_firmware},
                       {"config", j.has_config}});
      } else {
        std::cout << "job " << j.job_id << "\n  group: " << j.group_id
                  << "\n  product: " << j.product << "\n  key mode: " << j.key_mode
                  << "\n  device CA: " << j.device_ca_subject
                  << "\n  expires: " << (j.expires_at ? FormatTime(j.expires_at) : "never")
                  << "\n  devices provisioned here: " << j.devices_provisioned << "\n";
      }
    }
    if (a->json) std::cout << out.dump(2) << "\n";
    if (!a->json && jobs.empty()) std::cout << "no jobs\n";
    return absl::OkStatus();
  });
}

void AddProvision(CLI::App& app, Dispatch& dispatch) {
  struct Args {
    std::string state, group, job, uid, public_key, csr, transport_key, out;
    bool generate = false, reissue = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "provision",
      "Provision one device with an imported job. Writes to OUT: device.crt and chain.pem "
      "(device-issuing CA, OEM root), device-key.cms (the member-made key, CMS to the device's "
      "transport key) or device-key.pem (only if the profile allows plain keys), firmware.bin "
      "and config.bin when the job has them, and record.msg, the member's signed record. A uid "
      "already provisioned for the job is refused unless --reissue.");
  AddStateOption(*cmd, a->state);
  cmd->add_option("--job", a->job, "Job id")->required();
  cmd->add_option("--group", a->group,
                  "The job's group, when this HSM holds jobs of that id for several groups");
  cmd->add_option("--device-uid", a->uid, "The device's unique id")->required();
  auto* pk = cmd->add_option("--public-key", a->public_key,
                             "Device key mode: the chip's public key (PEM)");
  auto* csr = cmd->add_option("--csr", a->csr,
                              "Device key mode: the chip's PKCS#10 request (its self-signature "
                              "is checked)");
  auto* gen =
      cmd->add_flag("--generate-key", a->generate, "HSM key mode: the member makes the key");
  cmd->add_option("--transport-key", a->transport_key,
                  "With --generate-key: the device's transport certificate or public key (PEM) "
                  "to wrap the key to");
  cmd->add_flag("--reissue", a->reissue, "Issue again for a uid already provisioned (logged)");
  cmd->add_option("--out", a->out, "Output directory")->required();
  pk->excludes(csr)->excludes(gen);
  csr->excludes(gen);
  OnRun(
      *cmd, dispatch,
      [a] {
        if (a->public_key.empty() && a->csr.empty() && !a->generate) {
          throw CLI::ValidationError("provision",
                                     "give one of --public-key, --csr or --generate-key");
        }
        if (!a->transport_key.empty() && !a->generate) {
          throw CLI::ValidationError("provision", "--transport-key goes with --generate-key");
        }
      },
      [a]() -> absl::Status {
        ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
        hsm::DeviceRequest req;
        req.uid = a->uid;
        req.reissue = a->reissue;
        if (!a->public_key.empty()) {
          ASSIGN_OR_RETURN(std::string pem, ReadFileString(a->public_key, crypto::kMaxKeyEncoding));
          ASSIGN_OR_RETURN(req.device_key, crypto::PublicKey::FromPem(pem));
        }
        if (!a->csr.empty()) {
          ASSIGN_OR_RETURN(std::string pem, ReadFileString(a->csr, 64 * 1024));
          ASSIGN_OR_RETURN(req.device_key, crypto::VerifiedCsrKey(pem));
        }
        if (!a->transport_key.empty()) {
          ASSIGN_OR_RETURN(std::string pem, ReadFileString(a->transport_key, crypto::kMaxChainPem));
          if (pem.find("BEGIN CERTIFICATE") != std::string::npos) {
            ASSIGN_OR_RETURN(req.transport_cert, crypto::Certificate::FromPem(pem));
          } else {
            ASSIGN_OR_RETURN(req.transport_key, crypto::PublicKey::FromPem(pem));
          }
        }
        ASSIGN_OR_RETURN(std::string gid, JobGroup(*h, a->group, a->job));
        ASSIGN_OR_RETURN(auto p, hsm::Provisioner::Create(*h, gid, a->job));
        ASSIGN_OR_RETURN(auto data, p->Provision(req));
        const std::string& d = a->out;
        ASSIGN_OR_RETURN(crypto::Certificate device_cert, data.DeviceCertificate());
        RETURN_IF_ERROR(line::ProvisioningBundle::From(data).Write(d, line::BundleWrite::kDurable));
        std::cout << "device " << a->uid << " provisioned by member " << p->member_id() << "\n"
                  << "certificate serial: " << data.cert_serial << "\n"
                  << "subject: " << device_cert.Subject() << "\n"
                  << "written to " << d << "\n";
        if (!data.plain_key.empty()) {
          std::cout << "warning: the device key was written in clear (" << d
                    << "/device-key.pem), as the job's profile allows; this is logged\n";
        }
        return absl::OkStatus();
      });
}

void AddRecordVerify(CLI::App& app, Dispatch& dispatch) {
  struct Args {
    std::string file;
    OfflineTrustFlags trust;
  };
  auto a = std::make_shared<Args>();
  CLI::App* record = app.add_subcommand(
      "record", "Provisioning records: what a member says it handed to one device");
  record->require_subcommand(1);
  CLI::App* cmd = record->add_subcommand(
      "verify",
      "Check a record.msg against a group: signed by a member certificate of that group (up to "
      "the supplier root), naming the member id that certificate carries. Prints the record.");
  cmd->add_option("file", a->file, "record.msg written by `clade provision`")->required();
  AddOfflineTrustOptions(*cmd, a->trust);
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(OfflineTrust trust, LoadOfflineTrust(a->trust));
    ASSIGN_OR_RETURN(auto bytes, ReadFileBytes(a->file, wire::kMaxMessageSize));
    ASSIGN_OR_RETURN(auto rec, hsm::VerifyProvisioningRecord(bytes, trust.group_ca_chain(),
                                                             trust.supplier_root()));
    if (trust.statement) {
      RETURN_IF_ERROR(hsm::CheckActBeforeRevocation(*trust.statement, rec.member_id,
                                                    rec.provisioned_at, "provisioning record"));
    }
    std::cout << "record verified: signed by member " << rec.member_id << " of group "
              << rec.group_id << "\n"
              << "job: " << rec.job_id << "\ndevice uid: " << rec.device_uid
              << "\ncertificate serial: " << rec.cert_serial
              << "\ncertificate sha256: " << crypto::Hex(rec.cert_sha256)
              << "\nkey mode: " << rec.key_mode << "\n";
    return absl::OkStatus();
  });
}

}  // namespace

void AddJobCommands(CLI::App& app, Dispatch& dispatch) {
  CLI::App* job =
      app.add_subcommand("job", "OEM jobs on a member: import a package, list what is imported");
  job->require_subcommand(1);
  AddImport(*job, dispatch);
  AddList(*job, dispatch);
  AddProvision(app, dispatch);
  AddRecordVerify(app, dispatch);
}

}  // namespace clade::cli
