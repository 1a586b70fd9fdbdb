// A tray of virtual chips (virtual_chip.h) as the line sees it: a ChipSource standing in for a
// chip reader (each chip's device.pub or transport.crt; the serial of the certificate a locked
// chip carries) and the virtual programmer (VirtualChip::Program).
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "line/chip_source.h"
#include "line/programmer.h"

namespace clade::line {

// The tray's chips, in uid order; Where() is "tray DIR".
absl::StatusOr<std::unique_ptr<ChipSource>> MakeTrayChipSource(const std::string& tray_dir);

// Programs the tray's chips: each Program opens its own VirtualChip (nothing mutable is shared
// between threads).
absl::StatusOr<std::unique_ptr<Programmer>> MakeVirtualProgrammer(const std::string& tray_dir);

}  // namespace clade::line
