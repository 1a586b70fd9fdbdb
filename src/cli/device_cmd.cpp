// `clade device …`: virtual chips on the factory line — make a tray, program a chip from what
// `clade provision` wrote, verify a whole tray against the OEM root and a job package.
#include <iostream>
#include <memory>
#include <optional>

#include "base/clock.h"
#include "base/files.h"
#include "cli/commands.h"
#include "crypto/pem_files.h"
#include "crypto/x509.h"
#include "hsm/job.h"
#include "line/bundle.h"
#include "line/runner.h"
#include "line/sim/virtual_chip.h"

namespace clade::cli {
namespace {

void AddMakeTray(CLI::App& device, Dispatch& dispatch) {
  struct Args {
    std::string dir, prefix = "CHIP-";
    size_t count = 0;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = device.add_subcommand(
      "make-tray",
      "Manufacture a tray of virtual chips: DIR/<uid>/ each with an on-chip key pair "
      "(device.key, device.pub) and a transport key (transport.key, transport.crt), unlocked.");
  cmd->add_option("--dir", a->dir, "Tray directory to create")->required();
  cmd->add_option("--count", a->count, "Number of chips")
      ->required()
      ->check(CLI::Range(size_t{1}, size_t{1000000}));
  cmd->add_option("--prefix", a->prefix, "Uid prefix (default CHIP-): CHIP-000001, …");
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(line::Tray tray, line::Tray::Make(a->dir, a->count, a->prefix));
    std::cout << "tray " << a->dir << ": " << tray.uids().size() << " chips, "
              << tray.uids().front() << " to " << tray.uids().back() << "\n";
    return absl::OkStatus();
  });
}

void AddProgram(CLI::App& device, Dispatch& dispatch) {
  struct Args {
    std::string tray, uid, from;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = device.add_subcommand(
      "program",
      "Program one virtual chip from the directory `clade provision` wrote: the chip opens "
      "device-key.cms with its transport key (hsm key mode) or keeps its own key (device key "
      "mode), checks that device.crt is for that key, writes its flash and sets the lock bit. "
      "A locked chip is refused.");
  cmd->add_option("--tray", a->tray, "Tray directory (clade device make-tray)")->required();
  cmd->add_option("--uid", a->uid, "The chip's uid")->required();
  cmd->add_option("--from", a->from, "Output directory of `clade provision`")->required();
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(line::Tray tray, line::Tray::Open(a->tray));
    ASSIGN_OR_RETURN(line::VirtualChip chip, tray.Chip(a->uid));
    if (chip.locked()) {
      // Before reading anything else: the refusal a person expects first.
      return absl::FailedPreconditionError("chip " + chip.uid() +
                                           " is locked; it was programmed at " +
                                           FormatTime(chip.programmed_at()));
    }
    ASSIGN_OR_RETURN(line::ProvisioningBundle bundle, line::ProvisioningBundle::Read(a->from));
    RETURN_IF_ERROR(chip.Program(bundle.input));
    std::cout << "chip " << chip.uid() << " programmed and locked\n";
    return absl::OkStatus();
  });
}

void AddVerify(CLI::App& device, Dispatch& dispatch) {
  struct Args {
    std::string tray, oem_root, job_package, job, db;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = device.add_subcommand(
      "verify",
      "Check every chip of a tray: lock bit set, device.crt chains to the OEM root (the anchor is "
      "FILE, never chain.pem's root), the key on the chip matches the certificate and, with "
      "--job or --job-package, firmware.bin and config.bin digests equal the job's. Exit 1 on any "
      "failure.");
  cmd->add_option("--tray", a->tray, "Tray directory")->required();
  cmd->add_option("--oem-root", a->oem_root, "The OEM root certificate (PEM)")->required();
  CLI::Option* job = cmd->add_option(
      "--job", a->job,
      "The job the tray was provisioned with: its package is read where `clade line run` keeps "
      "it, TRAY/jobs/ID.package (or, with --db, beside the line database of a run without a "
      "tray); it must be signed by the OEM root and be for job ID");
  CLI::Option* package = cmd->add_option(
      "--job-package", a->job_package,
      "The job package file (`clade oem package`), for the firmware and config digests; it must "
      "be signed by the OEM root");
  job->excludes(package);  // CLI11 records the exclusion on both options
  cmd->add_option("--db", a->db,
                  "With --job, for a line run without --tray (`line run --chips … --db FILE`): its "
                  "line database, beside which the run kept the job package (DIR/jobs/ID.package)")
      ->needs(job);
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(crypto::Certificate root, crypto::ReadCertificateFile(a->oem_root));
    line::ChipVerifyOptions options(SystemClock().Now());
    options.oem_root = &root;
    std::string package_path = a->job_package;
    if (!a->job.empty()) {
      if (a->job.find('/') != std::string::npos) {
        return absl::InvalidArgumentError("bad job id '" + a->job + "'");
      }
      // Where the line run kept it: in its tray, or beside its database when it had none.
      line::LineOptions run;
      run.job_id = a->job;
      if (a->db.empty()) {
        run.tray_dir = a->tray;
      } else {
        run.db_path = a->db;
      }
      package_path = line::KeptJobPackagePath(run);
      if (!PathExists(package_path)) {
        return absl::NotFoundError("no job package for job " + a->job + " in " +
                                   line::LineDirectory(run) +
                                   "/jobs/ (the line run saves it there); use --job-package FILE");
      }
    }
    if (!package_path.empty()) {
      ASSIGN_OR_RETURN(auto bytes, ReadFileBytes(package_path, hsm::kMaxJobPackage));
      auto digests = line::JobDigestsFromPackage(bytes, root);
      if (!digests.ok()) return Annotate(digests.status(), package_path);
      if (!a->job.empty() && digests->job_id != a->job) {
        return absl::PermissionDeniedError(package_path + " is the package of job " +
                                           digests->job_id + ", not " + a->job);
      }
      options.job = *std::move(digests);
    }
    ASSIGN_OR_RETURN(line::Tray tray, line::Tray::Open(a->tray));
    if (tray.uids().empty()) return absl::NotFoundError("no chips in tray " + a->tray);
    std::vector<line::ChipResult> results = tray.Verify(options);
    size_t failed = 0;
    std::string failed_uids;
    for (const auto& r : results) {
      if (r.failures.empty()) continue;
      ++failed;
      if (failed <= 10) failed_uids += (failed_uids.empty() ? "" : ", ") + r.uid;
      for (const auto& f : r.failures) std::cout << "FAIL " << f << "\n";
    }
    std::cout << results.size() << " chips: " << results.size() - failed << " ok, " << failed
              << " failed\n";
    if (failed > 0) {
      return absl::PermissionDeniedError(
          std::to_string(failed) + " of " + std::to_string(results.size()) +
          " chips failed verification: " + failed_uids + (failed > 10 ? ", …" : ""));
    }
    return absl::OkStatus();
  });
}

}  // namespace

void AddDeviceCommands(CLI::App& app, Dispatch& dispatch) {
  CLI::App* device = app.add_subcommand(
      "device", "Virtual chips on the factory line: make a tray, program a chip, verify a tray");
  device->require_subcommand(1);
  AddMakeTray(*device, dispatch);
  AddProgram(*device, dispatch);
  AddVerify(*device, dispatch);
}

}  // namespace clade::cli
