// The `clade` command tree. Each actor file adds its sub-commands to the app; a verb sets the
// action that main runs after parsing, so parsing errors (exit 2) and operation errors (exit 1)
// stay apart.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "base/status.h"

namespace clade::cli {

using Action = std::function<absl::Status()>;

// Where a verb's callback stores what main should run.
struct Dispatch {
  Action action;
};

// Makes `action` what main runs when `verb` is the command given.
void OnRun(CLI::App& verb, Dispatch& dispatch, Action action);
// The same, with `check` first, at parse time: it throws CLI::ValidationError for a combination of
// options CLI11 cannot express (a usage error, exit 2), or settles what the options chose.
void OnRun(CLI::App& verb, Dispatch& dispatch, std::function<void()> check, Action action);

// --state DIR, required: the HSM state directory the verb opens.
CLI::Option* AddStateOption(CLI::App& verb, std::string& state,
                            const std::string& help = "HSM state directory");
// --group, required: "Group: full id, unique id prefix, or name" (hsm::ResolveGroup).
CLI::Option* AddGroupOption(CLI::App& verb, std::string& group);

void AddSupplierCommands(CLI::App& app, Dispatch& dispatch);
void AddHsmCommands(CLI::App& app, Dispatch& dispatch);
void AddGroupCommands(CLI::App& app, Dispatch& dispatch);  // group_cmd.cpp
// statement_cmd.cpp: `group revoke`, `group accept-statement`, `group statement`.
void AddStatementCommands(CLI::App& group, Dispatch& dispatch);
void AddMsgCommands(CLI::App& app, Dispatch& dispatch);    // msg_cmd.cpp
void AddAuditCommands(CLI::App& app, Dispatch& dispatch);  // audit_cmd.cpp
void AddOemCommands(CLI::App& app, Dispatch& dispatch);    // oem_cmd.cpp
void AddJobCommands(CLI::App& app, Dispatch& dispatch);    // job_cmd.cpp: job, provision
// device_cmd.cpp: `device make-tray`, `device program`, `device verify` (virtual chips).
void AddDeviceCommands(CLI::App& app, Dispatch& dispatch);
// serve_cmd.cpp: `hsm serve`, `hsm call`, `group issue-client`, `group enroll`; call after the
// hsm and group commands exist.
void AddServeCommands(CLI::App& app, Dispatch& dispatch);
// line_cmd.cpp: `line run`; line_check_cmd.cpp adds `line status` and `line reconcile` to it.
void AddLineCommands(CLI::App& app, Dispatch& dispatch);
void AddLineCheckCommands(CLI::App& line, Dispatch& dispatch);

// Runs the command line; returns the process exit code.
int Run(int argc, char** argv);

}  // namespace clade::cli
