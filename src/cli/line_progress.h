// How `clade line run` shows a run: the line's events on stdout, its progress on stderr (a bar on
// a terminal, plain lines otherwise, or nothing), and the one-screen summary at the end.
#pragma once

#include <chrono>
#include <ostream>
#include <string>

#include "line/runner.h"

namespace clade::cli {

enum class ProgressMode { kAuto, kBar, kPlain, kNone };

class LineReport : public line::LineObserver {
 public:
  // kAuto draws a bar when `err` is std::cerr on a terminal.
  LineReport(ProgressMode mode, std::ostream& out, std::ostream& err);
  void Say(const std::string& line) override;
  void Progress(const line::LineProgress& p, bool final) override;

 private:
  std::ostream& out_;
  std::ostream& err_;
  bool on_ = true;
  bool bar_ = false;
  std::chrono::steady_clock::time_point last_;
};

void PrintSummary(const line::LineSummary& summary, std::ostream& out);

}  // namespace clade::cli
