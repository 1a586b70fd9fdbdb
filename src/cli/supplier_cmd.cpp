// `clade supplier …`: the HSM supplier's offline CA.
#include <iostream>

#include "cli/commands.h"
#include "supplier/supplier.h"

namespace clade::cli {

void AddSupplierCommands(CLI::App& app, Dispatch& dispatch) {
  CLI::App* supplier =
      app.add_subcommand("supplier",
                         "The HSM supplier's offline CA: a root CA and an HSM issuing CA that "
                         "certify genuine HSMs");
  supplier->require_subcommand(1);

  struct InitArgs {
    std::string dir;
    std::string name = "Clade Supplier";
  };
  auto args = std::make_shared<InitArgs>();
  CLI::App* init = supplier->add_subcommand(
      "init",
      "Create a supplier root CA (P-384) and HSM issuing CA in DIR: root.crt, issuing.crt "
      "(PEM) and root.key, issuing.key (PKCS#8 PEM, mode 0600). Refuses to overwrite.");
  init->add_option("--dir", args->dir, "Directory for the supplier's CA files")->required();
  init->add_option("--name", args->name, "Supplier name, put in every certificate's O")
      ->capture_default_str();
  OnRun(*init, dispatch, [args]() -> absl::Status {
    ASSIGN_OR_RETURN(auto s, supplier::Supplier::Init(args->dir, args->name));
    std::cout << "supplier root CA:   " << args->dir << "/root.crt\n"
              << "  subject:          " << s.root().Subject() << "\n"
              << "  fingerprint:      " << s.root().Fingerprint() << "\n"
              << "HSM issuing CA:     " << args->dir << "/issuing.crt\n"
              << "  subject:          " << s.issuing().Subject() << "\n"
              << "keys (mode 0600):   " << args->dir << "/root.key, " << args->dir
              << "/issuing.key\n";
    return absl::OkStatus();
  });
}

}  // namespace clade::cli
