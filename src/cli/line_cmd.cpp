// `clade line run`: the provisioning equipment server of one production line.
#include <iostream>
#include <memory>
#include <optional>

#include "base/files.h"
#include "cli/client_dir.h"
#include "cli/commands.h"
#include "cli/line_progress.h"
#include "crypto/x509.h"
#include "line/runner.h"

namespace clade::cli {
namespace {

constexpr char kRunHelp[] =
    "Provision the chips of a tray with a job through the HSM daemons of a group, and program "
    "each chip as its answer arrives.\n"
    "  --hsm is an order of preference: the line uses the first member that answers. When the "
    "member in use stops answering (connection lost, or no answer for --answer-timeout seconds), "
    "the devices in flight are sent again to the next member that answers. Members earlier in the "
    "list are probed every 2 s and the line moves back to the first that answers — a replacement "
    "HSM started at a dead member's address joins the line this way.\n"
    "  The chips come from a tray (--tray) or, on a real line, from a chip manifest or a chip "
    "reader (--chips; docs/operations.md, the programmer contract), programmed by "
    "--programmer exec:COMMAND.\n"
    "  Every device is recorded in the line database (SQLite, default TRAY/line.db) before it is "
    "sent and after its chip is programmed; a rerun with the same database skips done chips.\n"
    "  The job package is fetched from a member holding the job, kept as TRAY/jobs/<job>.package "
    "(beside --db without a tray; for `clade device verify --job`, given the same --db then), "
    "and imported on members that lack it. Fetched or kept, it is checked as `clade job import` "
    "checks it: signed by the OEM root (--oem-root, default "
    "CLIENT/oem-root.crt), for the group of the line's client certificate, not expired.\n"
    "  Nothing a member says is believed unchecked: each member must show a member certificate "
    "of the group for the key of its TLS certificate, and each answer must carry a device "
    "certificate of the job's device-issuing CA (for the chip's own key in device key mode) and "
    "the member's signed record of this job, uid, certificate, firmware and config. A member "
    "that fails a check is not used again in the run (the device fails with the reason); the "
    "line moves on to the next.\n"
    "  Exit status: 0 when every selected chip is done, 1 when any failed or was left "
    "unprovisioned (the summary names each), 2 for a usage error.";

void AddRun(CLI::App& line, Dispatch& dispatch) {
  struct Args {
    std::string job, hsm, client, tray, chips, db, programmer = "virtual", progress = "auto",
                                                   oem_root;
    size_t devices = 0;
    int parallel = 8, answer_timeout = 20, give_up = 60, programmer_timeout = 120;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = line.add_subcommand("run", "Run the line: provision a tray of chips");
  cmd->footer(kRunHelp);
  cmd->add_option("--job", a->job, "The job id (imported on at least one member)")->required();
  cmd->add_option("--hsm", a->hsm,
                  "Members' daemons, HOST:PORT[,HOST:PORT…], in order of preference")
      ->required();
  cmd->add_option("--client", a->client,
                  "Client directory of role line (`clade group issue-client --role line`)")
      ->required();
  CLI::Option* tray =
      cmd->add_option("--tray", a->tray, "Tray directory (`clade device make-tray`)");
  CLI::Option* chips = cmd->add_option(
      "--chips", a->chips,
      "Chips without a tray: manifest:FILE (one JSON record per chip: uid, public_key or "
      "transport_cert) or exec:COMMAND (a chip reader printing such a manifest); needs --db "
      "and --programmer exec:COMMAND (docs/operations.md, the programmer contract)");
  tray->excludes(chips);
  cmd->add_option("--oem-root", a->oem_root,
                  "PEM of the OEM root the job package must be signed by (default: oem-root.crt "
                  "of the --client directory, written by `clade group issue-client`)");
  cmd->add_option("--devices", a->devices, "Provision the first N chips of the tray (default all)");
  cmd->add_option("--db", a->db, "Line database (default TRAY/line.db; required with --chips)");
  cmd->add_option("--programmer", a->programmer,
                  "virtual (default: the tray's virtual chips) or exec:COMMAND — run /bin/sh -c "
                  "COMMAND per device in a directory holding device.crt, chain.pem, "
                  "device-key.cms, firmware.bin, config.bin, record.msg, with CLADE_UID, "
                  "CLADE_JOB, CLADE_MEMBER, CLADE_CERT_SERIAL, CLADE_DATA_DIR and (with --tray) "
                  "CLADE_TRAY set; "
                  "exit 0 = programmed, anything else fails the chip with the last line of its "
                  "output; killed after --programmer-timeout");
  cmd->add_option("--programmer-timeout", a->programmer_timeout,
                  "exec: seconds a command may run for one chip before it is killed (default 120)")
      ->check(CLI::Range(1, 86400));
  cmd->add_option("--parallel", a->parallel,
                  "Chips programmed at once; twice as many devices may be in flight to the member "
                  "(default 8)")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--progress", a->progress,
                  "auto (a bar on a terminal, plain lines otherwise), bar, plain or none")
      ->check(CLI::IsMember({"auto", "bar", "plain", "none"}));
  cmd->add_option("--answer-timeout", a->answer_timeout,
                  "Seconds without an answer, with devices in flight, after which the member in "
                  "use counts as not answering (default 20)")
      ->check(CLI::Range(1, 3600));
  cmd->add_option("--give-up", a->give_up,
                  "Seconds to keep probing when no member answers, before stopping with the rest "
                  "not provisioned (default 60)")
      ->check(CLI::Range(0, 86400));
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    line::LineOptions o;
    o.job_id = a->job;
    size_t start = 0;
    while (start <= a->hsm.size()) {
      size_t comma = a->hsm.find(',', start);
      if (comma == std::string::npos) comma = a->hsm.size();
      o.members.push_back(a->hsm.substr(start, comma - start));
      start = comma + 1;
    }
    ASSIGN_OR_RETURN(o.credentials, ReadClientDirectory(a->client));
    std::optional<std::string> oem_pem;
    if (!a->oem_root.empty()) {
      ASSIGN_OR_RETURN(oem_pem, ReadFileString(a->oem_root, crypto::kMaxChainPem));
    } else {
      ASSIGN_OR_RETURN(oem_pem, ReadClientOemRoot(a->client));
    }
    if (oem_pem) {
      auto root = crypto::Certificate::FromPem(*oem_pem);
      if (!root.ok()) {
        return Annotate(root.status(),
                        a->oem_root.empty() ? a->client + "/" + kClientOemRootFile : a->oem_root);
      }
      o.oem_root = *std::move(root);
    }
    o.tray_dir = a->tray;
    o.chips = a->chips;
    o.devices = a->devices;
    o.db_path = a->db;
    o.programmer = a->programmer;
    o.parallel = a->parallel;
    o.programmer_timeout_seconds = a->programmer_timeout;
    o.answer_timeout_seconds = a->answer_timeout;
    o.give_up_seconds = a->give_up;
    ProgressMode mode = a->progress == "bar"     ? ProgressMode::kBar
                        : a->progress == "plain" ? ProgressMode::kPlain
                        : a->progress == "none"  ? ProgressMode::kNone
                                                 : ProgressMode::kAuto;
    LineReport report(mode, std::cout, std::cerr);
    o.observer = &report;
    ASSIGN_OR_RETURN(line::LineSummary sum, line::RunLine(o));
    PrintSummary(sum, std::cout);
    if (sum.failed > 0 || sum.pending > 0) {
      return absl::AbortedError(std::to_string(sum.failed) + " chips failed and " +
                                std::to_string(sum.pending) +
                                " were not provisioned (see the summary; a rerun resumes)");
    }
    return absl::OkStatus();
  });
}

}  // namespace

void AddLineCommands(CLI::App& app, Dispatch& dispatch) {
  CLI::App* line = app.add_subcommand(
      "line", "The factory line: run it over a tray of chips, look at and reconcile its records");
  line->require_subcommand(1);
  AddRun(*line, dispatch);
  AddLineCheckCommands(*line, dispatch);
}

}  // namespace clade::cli
