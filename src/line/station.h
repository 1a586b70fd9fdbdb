// The programming station of a line run: where its chips come from (a ChipSource) and what
// programs them (a Programmer), chosen from the options of `clade line run`:
//   --tray DIR                 chips from the tray; --programmer virtual (default) or exec:CMD
//   --chips manifest:FILE      chips from a manifest a tester wrote (chip_source.h)
//   --chips exec:COMMAND       chips from a chip reader run once (chip_source.h)
// Without a tray the programmer must be exec:COMMAND: the virtual programmer writes a tray.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "line/chip_source.h"
#include "line/programmer.h"

namespace clade::line {

struct StationOptions {
  std::string tray_dir;                // "" = no tray
  std::string chips;                   // "" = the tray's; manifest:FILE or exec:COMMAND
  std::string programmer = "virtual";  // or exec:COMMAND
  std::string work_dir;                // the exec programmer's and chip reader's directories
  int timeout_seconds = 120;           // of each exec command
};

struct Station {
  std::unique_ptr<ChipSource> chips;
  std::unique_ptr<Programmer> programmer;
};

absl::StatusOr<Station> OpenStation(const StationOptions& options);

}  // namespace clade::line
