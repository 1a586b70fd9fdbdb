#include "line/station.h"

#include "line/sim/tray_station.h"

namespace clade::line {
namespace {

// The part after `prefix`, or nullopt when `spec` does not start with it or has nothing after.
std::optional<std::string> After(const std::string& spec, const std::string& prefix) {
  if (spec.rfind(prefix, 0) != 0 || spec.size() == prefix.size()) return std::nullopt;
  return spec.substr(prefix.size());
}

}  // namespace

absl::StatusOr<Station> OpenStation(const StationOptions& o) {
  const bool tray = !o.tray_dir.empty();
  if (tray && !o.chips.empty()) {
    return absl::InvalidArgumentError(
        "--chips and --tray exclude each other: the tray is a "
        "source of chips");
  }
  if (!tray && o.chips.empty()) {
    return absl::InvalidArgumentError(
        "no chips: give --tray DIR, or --chips manifest:FILE or --chips exec:COMMAND");
  }
  Station s;
  std::optional<std::string> exec = After(o.programmer, "exec:");
  if (o.programmer == "virtual") {
    if (!tray) {
      return absl::InvalidArgumentError(
          "--programmer virtual programs the virtual chips of a tray (--tray DIR); with --chips, "
          "give --programmer exec:COMMAND");
    }
    ASSIGN_OR_RETURN(s.programmer, MakeVirtualProgrammer(o.tray_dir));
  } else if (exec) {
    ASSIGN_OR_RETURN(s.programmer,
                     MakeExecProgrammer(*exec, o.work_dir, o.timeout_seconds, o.tray_dir));
  } else {
    return absl::InvalidArgumentError("--programmer must be 'virtual' or 'exec:COMMAND', got '" +
                                      o.programmer + "'");
  }
  if (tray) {
    ASSIGN_OR_RETURN(s.chips, MakeTrayChipSource(o.tray_dir));
  } else if (auto file = After(o.chips, "manifest:")) {
    ASSIGN_OR_RETURN(s.chips, ReadChipManifest(*file));
  } else if (auto reader = After(o.chips, "exec:")) {
    ASSIGN_OR_RETURN(s.chips, RunChipReader(*reader, o.work_dir, o.timeout_seconds));
  } else {
    return absl::InvalidArgumentError("--chips must be 'manifest:FILE' or 'exec:COMMAND', got '" +
                                      o.chips + "'");
  }
  return s;
}

}  // namespace clade::line
