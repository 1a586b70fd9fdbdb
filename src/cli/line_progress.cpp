#include "cli/line_progress.h"

#include <unistd.h>

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace clade::cli {

LineReport::LineReport(ProgressMode mode, std::ostream& out, std::ostream& err)
    : out_(out), err_(err), last_(std::chrono::steady_clock::now()) {
  switch (mode) {
    case ProgressMode::kNone:
      on_ = false;
      break;
    case ProgressMode::kBar:
      bar_ = true;
      break;
    case ProgressMode::kPlain:
      break;
    case ProgressMode::kAuto:
      bar_ = &err == &std::cerr && ::isatty(STDERR_FILENO);
      break;
  }
}

void LineReport::Say(const std::string& line) { out_ << line << std::endl; }

void LineReport::Progress(const line::LineProgress& p, bool final) {
  if (!on_) return;
  double interval = bar_ ? 0.2 : 2.0;
  auto now = std::chrono::steady_clock::now();
  if (!final && std::chrono::duration<double>(now - last_).count() < interval) return;
  last_ = now;
  double rate = p.seconds > 0 ? p.done / p.seconds : 0;
  size_t left = p.total - std::min(p.total, p.done_all + p.failed);
  int pct = p.total ? static_cast<int>(100.0 * p.done_all / p.total) : 100;
  std::ostringstream eta;
  if (rate > 0 && left > 0) {
    int s = static_cast<int>(left / rate + 0.5);
    eta << " ETA " << s / 60 << ":" << std::setw(2) << std::setfill('0') << s % 60;
  }
  std::ostringstream line;
  line << p.done_all << "/" << p.total << " " << pct << "% " << std::fixed << std::setprecision(0)
       << rate << "/s" << eta.str() << " member " << p.member;
  if (p.failed > 0) line << " failed " << p.failed;
  if (bar_) {
    const int width = 30;
    int filled = p.total ? static_cast<int>(width * p.done_all / p.total) : width;
    err_ << "\r[" << std::string(filled, '#') << std::string(width - filled, '.') << "] "
         << line.str() << "   " << (final ? "\n" : "") << std::flush;
  } else {
    err_ << "progress " << line.str() << std::endl;
  }
}

void PrintSummary(const line::LineSummary& s, std::ostream& out) {
  out << "\nline summary\n";
  out << "  chips selected     " << s.selected << "\n";
  out << "  done by this run   " << s.done;
  if (s.already_done > 0) out << " (and " << s.already_done << " done by an earlier run)";
  out << "\n";
  if (s.recovered > 0)
    out << "  recovered          " << s.recovered << " (programmed, not recorded)\n";
  out << "  failed             " << s.failed << "\n";
  if (s.pending > 0) out << "  not provisioned    " << s.pending << " (no member answered)\n";
  for (const auto& [member, n] : s.per_member) {
    out << "  member " << std::left << std::setw(22) << member << std::right << n << "\n";
  }
  out << "  failovers          " << s.failovers;
  if (s.resent > 0) out << " (" << s.resent << " devices in flight sent again)";
  out << "\n";
  out << "  time               " << std::fixed << std::setprecision(1) << s.seconds << " s";
  if (s.seconds > 0 && s.done > 0) {
    out << " (" << std::setprecision(0) << s.done / s.seconds << " devices/s)";
  }
  out << "\n";
  if (!s.failures.empty()) {
    out << "failures:\n";
    size_t shown = 0;
    for (const auto& [uid, why] : s.failures) {
      if (++shown > 20) {
        out << "  … and " << s.failures.size() - 20 << " more (clade line status)\n";
        break;
      }
      out << "  " << uid << ": " << why << "\n";
    }
  }
}

}  // namespace clade::cli
