// The line run (`clade line run`): provisions the chips of a tray with a job through the members
// of a group, in an order of preference, and programs each chip as its answer arrives.
//  - Devices in flight: up to `parallel` on one Provision stream to the member in use, and up to
//    `parallel` chips being programmed at once.
//  - Every send is an attempt in the DeviceDb before it goes on the wire; a device is done only
//    after its chip is programmed, and a rerun skips done devices (resume). One run per database:
//    a second run on the same database is refused while the first holds DB.lock.
//  - Failover: when the member in use stops answering (stream broken, or no answer for
//    `answer_timeout_seconds` while devices are in flight), its devices in flight are sent again
//    to the next member of the list that answers; members earlier in the list are probed every
//    `probe_ms` and the line moves back to the first that answers (a replacement at a dead
//    member's address joins the line this way).
//  - The job package is fetched from the first member (in list order) that holds the job, kept as
//    TRAY/jobs/<job>.package (without a tray: beside the database; for `clade device verify
//    --job`), and imported on any member that lacks the job before it is used. The package, fetched
//    or kept, is checked as `job import` checks it, against `oem_root` and the group of the line's
//    client certificate.
//  - Nothing a member says is believed unchecked (line/answer_check.h): a server that does not
//    prove it is a member of the group, or an answer that fails a check, is a refusal by that
//    member (the device fails with the reason) and the line moves on to the next member.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "crypto/x509.h"
#include "rpc/client.h"

namespace clade::line {

class LineObserver;

struct LineOptions {
  std::string job_id;
  std::vector<std::string> members;  // HOST:PORT, in order of preference
  rpc::ClientCredentials credentials;
  // The OEM root the job package must be signed by (from the client directory or --oem-root);
  // a run that needs the package refuses to start without one.
  std::optional<crypto::Certificate> oem_root;
  std::string tray_dir;                  // "" = no tray: chips from `chips`, db_path required
  std::string chips;                     // "" = the tray's; manifest:FILE or exec:COMMAND
  size_t devices = 0;                    // the first N chips; 0 = all
  std::string db_path;                   // "" = TRAY/line.db
  std::string programmer = "virtual";    // or "exec:COMMAND"
  int programmer_timeout_seconds = 120;  // exec: a command running longer is killed
  int parallel = 8;
  int answer_timeout_seconds = 20;
  int probe_ms = 2000;
  // With no member answering, the line waits this long (probing) before it stops with the
  // remaining devices pending.
  int give_up_seconds = 60;
  // Told what happens (the CLI prints it: src/cli/line_progress.h); nullptr = told to no one.
  LineObserver* observer = nullptr;
};

struct LineSummary {
  size_t selected = 0;      // chips this run was asked for
  size_t already_done = 0;  // done before this run started
  size_t recovered = 0;     // found programmed on the chip, recorded as done
  size_t done = 0;          // provisioned and programmed by this run
  size_t failed = 0;
  size_t pending = 0;  // left not done (no member answered)
  size_t failovers = 0;
  size_t resent = 0;  // devices in flight sent again after a member stopped answering
  std::map<std::string, size_t> per_member;  // "1.2 (SN-0003)" → devices done by this run
  std::vector<std::pair<std::string, std::string>> failures;  // uid, reason
  double seconds = 0;
};

// Where the run stands, for a progress display.
struct LineProgress {
  size_t total = 0;     // chips selected
  size_t done_all = 0;  // done, by this run or before it (recovered included)
  size_t done = 0;      // done by this run
  size_t failed = 0;
  std::string member;  // the member id in use, "-" for none
  double seconds = 0;  // since the run started
};

// What the run tells as it goes: one line per event (a member in use, a failover, a resume…),
// and where it stands. Called from the run's thread only.
class LineObserver {
 public:
  virtual ~LineObserver() = default;
  virtual void Say(const std::string& line) = 0;
  // Called often (each turn of the run loop); `final` once at the end.
  virtual void Progress(const LineProgress& progress, bool final) = 0;
};

// Runs the line; the error is for what stops the whole run before it starts (bad options, no tray,
// the job found on no member). Devices that fail are in the summary, not the status.
// Where the line keeps its own files (jobs/, exec-work/, the default line.db): the tray, or
// without one the directory of the line database.
std::string LineDirectory(const LineOptions& options);
// Where the line keeps the job package it fetched: LineDirectory/jobs/JOB.package (read back on a
// rerun, and by `clade device verify --job`).
std::string KeptJobPackagePath(const LineOptions& options);

absl::StatusOr<LineSummary> RunLine(const LineOptions& options);

}  // namespace clade::line
