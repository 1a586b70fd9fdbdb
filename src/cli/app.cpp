#include <cstdio>
#include <exception>
#include <iostream>

#include "cli/commands.h"

namespace clade::cli {

void OnRun(CLI::App& verb, Dispatch& dispatch, Action action) {
  verb.callback([&dispatch, action = std::move(action)] { dispatch.action = action; });
}

void OnRun(CLI::App& verb, Dispatch& dispatch, std::function<void()> check, Action action) {
  verb.callback([&dispatch, check = std::move(check), action = std::move(action)] {
    check();
    dispatch.action = action;
  });
}

CLI::Option* AddStateOption(CLI::App& verb, std::string& state, const std::string& help) {
  return verb.add_option("--state", state, help)->required();
}

CLI::Option* AddGroupOption(CLI::App& verb, std::string& group) {
  return verb.add_option("--group", group, "Group: full id, unique id prefix, or name")->required();
}

int Run(int argc, char** argv) {
  CLI::App app{
      "Clade: groups of genuine HSMs that provision chips, so that losing one HSM never stops "
      "a production line.\n\nActors: `clade supplier` (the HSM supplier's offline CA), "
      "`clade hsm` (one HSM; `clade hsm serve` runs it as a daemon), `clade group` (found a "
      "group, enroll members, revoke), `clade oem` (the OEM's CAs and job packages), `clade job` "
      "and `clade provision` (jobs and devices on a member), `clade line` (the production line "
      "over a group's daemons: run, status, reconcile), `clade device` (virtual chips), "
      "`clade audit` (export and verify the audit log), `clade record` (check a provisioning "
      "record), `clade msg` (read message files). Run `clade <command> --help` for each.",
      "clade"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "clade 0.1.0");
  Dispatch dispatch;
  AddSupplierCommands(app, dispatch);
  AddHsmCommands(app, dispatch);
  AddGroupCommands(app, dispatch);
  AddMsgCommands(app, dispatch);
  AddAuditCommands(app, dispatch);
  AddOemCommands(app, dispatch);
  AddJobCommands(app, dispatch);
  AddDeviceCommands(app, dispatch);
  AddServeCommands(app, dispatch);
  AddLineCommands(app, dispatch);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "clade: usage error: " << e.what() << "\n(see `clade --help`)\n";
    return 2;
  }
  if (!dispatch.action) {
    std::cerr << "clade: usage error: no command given (see `clade --help`)\n";
    return 2;
  }
  absl::Status status;
  try {
    status = dispatch.action();
  } catch (const std::exception& e) {
    // No exception is meant to get here; if one does, report it instead of crashing.
    status = absl::InternalError(std::string("unexpected failure: ") + e.what());
  }
  if (!status.ok()) {
    std::cerr << "clade: error: " << status.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace clade::cli
