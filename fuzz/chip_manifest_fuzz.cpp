// Untrusted input: a chip manifest, written by a tester or printed by a chip reader
// (line::ParseChipManifest). Every record is parsed, its PEMs included, before any is used.
#include <cstdint>
#include <string_view>

#include "line/chip_source.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto chips = clade::line::ParseChipManifest(
      std::string_view(reinterpret_cast<const char*>(data), size), "manifest fuzz");
  if (chips.ok()) {
    for (const auto& uid : (*chips)->Uids()) {
      (void)(*chips)->RequestPem(uid, false);
      (void)(*chips)->RequestPem(uid, true);
      (void)(*chips)->ProgrammedSerial(uid);
    }
  }
  return 0;
}
