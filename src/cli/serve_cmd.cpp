// `clade hsm serve` (the HSM daemon), `clade hsm call` (one call to a daemon), and the online
// parts of `clade group`: `issue-client` (a line/operator client certificate) and `enroll`
// (request → admit → join against a running member, on an announcement its operator made).
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "base/files.h"
#include "cli/client_dir.h"
#include "cli/commands.h"
#include "crypto/pem_files.h"
#include "crypto/signature.h"
#include "crypto/x509.h"
#include "hsm/client_cert.h"
#include "hsm/enrollment.h"
#include "hsm/group.h"
#include "hsm/group_statement.h"
#include "hsm/hsm.h"
#include "hsm/job.h"
#include "rpc/client.h"
#include "rpc/server.h"
#include "wire/envelope.h"

namespace clade::cli {
namespace {

// Credentials of an HSM itself: its identity chain and key, trusting its supplier root.
absl::StatusOr<rpc::ClientCredentials> HsmCredentials(hsm::Hsm& h) {
  rpc::ClientCredentials c;
  ASSIGN_OR_RETURN(crypto::PrivateKey key, h.IdentityKey());
  c.key_pem = key.ToPkcs8Pem();
  c.chain_pem = crypto::Certificate::ChainToPem(h.IdentityChain());
  c.root_pem = h.supplier_root().Pem();
  return c;
}

void AddServe(CLI::App& hsm_cmd, Dispatch& dispatch) {
  struct Args {
    std::string state, listen;
    int grace = 30;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = hsm_cmd.add_subcommand(
      "serve",
      "Run the HSM daemon: gRPC over TLS with required client certificates (see "
      "proto/clade/v1/hsm_service.proto). The server presents this HSM's identity certificate. "
      "Callers: peer HSMs (identity certificates of the same supplier) and line servers / "
      "operators (`clade group issue-client`); every call checks the caller's role. Prints "
      "\"listening on HOST:PORT\" once bound; logs one line per event on stderr. SIGTERM or "
      "SIGINT stops it gracefully: calls in flight finish (up to --grace seconds), then it exits "
      "0.");
  AddStateOption(*cmd, a->state);
  cmd->add_option("--listen", a->listen, "HOST:PORT to listen on (port 0 = any free port)")
      ->required();
  cmd->add_option("--grace", a->grace, "Seconds calls in flight may take to finish on stop")
      ->check(CLI::Range(0, 3600));
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    // Block the stop signals in every thread (gRPC's threads inherit the mask), then wait for
    // them here.
    std::signal(SIGTERM, SIG_DFL);  // a shell may start background jobs with SIGINT ignored
    std::signal(SIGINT, SIG_DFL);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    ASSIGN_OR_RETURN(auto daemon, rpc::Daemon::Start(a->state, a->listen, std::cerr));
    std::cout << "listening on " << daemon->address() << std::endl;
    int sig = 0;
    sigwait(&stop, &sig);
    daemon->Shutdown(a->grace);
    return absl::OkStatus();
  });
}

void AddCall(CLI::App& hsm_cmd, Dispatch& dispatch) {
  struct Args {
    std::string connect, client, state, root, call, group, for_serial, package, job, public_key,
        out, statement;
    std::vector<std::string> uids;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = hsm_cmd.add_subcommand(
      "call",
      "Make one call to a running HSM daemon: status, announce (--group, --for, --out), "
      "import-job (--package), provision (--job, --uid…, --public-key; one stream for all uids), "
      "export-audit (--out), push-statement (--statement FILE, or with --state and --group this "
      "HSM's own newest group statement; the member answers with the newest it holds, which "
      "--state adopts). With --client, the newest group statement seen is kept in "
      "DIR/statement.msg and sent with every call. Credentials: --client DIR (from `clade group "
      "issue-client`), or --state S (this HSM's identity), or only --root FILE (no client "
      "certificate).");
  cmd->add_option("--connect", a->connect, "HOST:PORT of the daemon")->required();
  cmd->add_option("call", a->call,
                  "status|announce|import-job|provision|export-audit|push-statement")
      ->required()
      ->check(CLI::IsMember(
          {"status", "announce", "import-job", "provision", "export-audit", "push-statement"}));
  cmd->add_option("--client", a->client,
                  "Client directory: client.key, client-chain.pem, "
                  "supplier-root.crt");
  cmd->add_option("--state", a->state, "Call as this HSM (its identity certificate)");
  cmd->add_option("--root", a->root, "Supplier root PEM (with neither --client nor --state)");
  cmd->add_option("--group", a->group, "announce, push-statement (with --state): the group");
  cmd->add_option("--for", a->for_serial, "announce: the serial of the one HSM it admits");
  cmd->add_option("--package", a->package, "import-job: the job package file");
  cmd->add_option("--job", a->job, "provision: the job id");
  cmd->add_option("--uid", a->uids, "provision: device uids (repeatable)");
  cmd->add_option("--public-key", a->public_key, "provision: device public key PEM file");
  cmd->add_option("--out", a->out, "announce / export-audit / push-statement: file to write");
  cmd->add_option("--statement", a->statement, "push-statement: the group statement file");
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    rpc::ClientCredentials creds;
    std::unique_ptr<hsm::Hsm> self;  // with --state: the calling HSM
    if (!a->client.empty()) {
      ASSIGN_OR_RETURN(creds, ReadClientDirectory(a->client));
    } else if (!a->state.empty()) {
      ASSIGN_OR_RETURN(self, hsm::Hsm::Open(a->state));
      ASSIGN_OR_RETURN(creds, HsmCredentials(*self));
    } else if (!a->root.empty()) {
      ASSIGN_OR_RETURN(creds.root_pem, ReadFileString(a->root, crypto::kMaxChainPem));
    } else {
      return absl::InvalidArgumentError("give --client DIR, --state S or --root FILE");
    }
    ASSIGN_OR_RETURN(auto client, rpc::HsmClient::Connect(a->connect, creds));
    if (a->call == "status") {
      ASSIGN_OR_RETURN(auto s, client->Status());
      std::cout << "serial: " << s.serial() << "\nstate: " << s.state() << "\n";
      for (const auto& m : s.memberships()) {
        std::cout << "group: " << m.group_id() << " " << m.member_id() << "\n";
      }
    } else if (a->call == "announce") {
      v1::AnnounceRequest req;
      req.set_group(a->group);
      req.set_for_serial(a->for_serial);
      ASSIGN_OR_RETURN(auto r, client->Announce(req));
      if (a->out.empty()) return absl::InvalidArgumentError("announce needs --out");
      RETURN_IF_ERROR(WriteFileAtomic(a->out, r.announcement()));
      std::cout << "wrote " << a->out << "\n";
    } else if (a->call == "import-job") {
      v1::ImportJobRequest req;
      ASSIGN_OR_RETURN(*req.mutable_package(), ReadFileString(a->package, 64 * 1024 * 1024));
      ASSIGN_OR_RETURN(auto r, client->ImportJob(req));
      std::cout << "job id: " << r.job_id() << "\ngroup id: " << r.group_id() << "\n";
    } else if (a->call == "provision") {
      std::string pub;
      if (!a->public_key.empty()) {
        ASSIGN_OR_RETURN(pub, ReadFileString(a->public_key, 64 * 1024));
      }
      std::vector<v1::ProvisionRequest> reqs;
      for (size_t i = 0; i < a->uids.size(); ++i) {
        v1::ProvisionRequest r;
        r.set_job_id(a->job);
        r.set_uid(a->uids[i]);
        r.set_public_key_pem(pub);
        r.set_tag(i);
        reqs.push_back(r);
      }
      ASSIGN_OR_RETURN(auto answers, client->Provision(reqs));
      int failed = 0;
      for (const auto& r : answers) {
        if (r.error().empty()) {
          std::cout << "device " << r.uid() << ": serial " << r.cert_serial() << "\n";
        } else {
          std::cout << "device " << r.uid() << ": refused: " << r.error() << "\n";
          ++failed;
        }
      }
      if (failed > 0) {
        return absl::FailedPreconditionError(std::to_string(failed) + " device(s) refused");
      }
    } else if (a->call == "push-statement") {
      std::string st;
      if (!a->statement.empty()) {
        ASSIGN_OR_RETURN(st, ReadFileString(a->statement, hsm::kMaxStatementSize));
      } else if (self && !a->group.empty()) {
        // Member to member: this HSM's own newest statement of the group.
        ASSIGN_OR_RETURN(std::string gid, hsm::ResolveGroup(*self, a->group));
        ASSIGN_OR_RETURN(auto held, hsm::HeldStatement(*self, gid));
        if (!held) return absl::NotFoundError("this HSM holds no statement of group " + gid);
        st.assign(held->message.begin(), held->message.end());
      } else {
        return absl::InvalidArgumentError(
            "push-statement needs --statement FILE, or --state S and --group G");
      }
      ASSIGN_OR_RETURN(auto r, client->PushStatement(st));
      std::cout << (r.adopted() ? "adopted" : "already held") << "; the member holds statement "
                << r.sequence() << "\n";
      if (self && r.statement() != st) {
        // The other member held a newer one: adopt it here too.
        auto back = hsm::AcceptStatement(*self, crypto::AsBytes(r.statement()));
        if (!back.ok()) return Annotate(back.status(), "the member's answer");
        std::cout << "this HSM now holds statement " << back->statement.sequence << "\n";
      }
      if (!a->out.empty()) {
        RETURN_IF_ERROR(WriteFileAtomic(a->out, r.statement()));
        std::cout << "wrote " << a->out << "\n";
      }
    } else {
      ASSIGN_OR_RETURN(auto r, client->ExportAudit());
      if (a->out.empty()) return absl::InvalidArgumentError("export-audit needs --out");
      RETURN_IF_ERROR(WriteFileAtomic(a->out, r.export_message()));
      std::cout << "wrote " << a->out << "\n";
    }
    return absl::OkStatus();
  });
}

void AddIssueClient(CLI::App& group, Dispatch& dispatch) {
  struct Args {
    std::string state, group, role, out;
    int64_t days = hsm::kDefaultClientValidity / (24 * 3600);
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = group.add_subcommand(
      "issue-client",
      "Issue a client certificate for a line server or an operator, signed by the group CA, "
      "for calling HSM daemons of this group (`clade hsm serve`). Writes DIR/client.key "
      "(keep it secret), DIR/client-chain.pem (client cert, group CA, founder identity, "
      "supplier issuing CA), DIR/supplier-root.crt (to check the daemons' certificates) and, "
      "when the group accepts an OEM root, DIR/oem-root.crt (what `clade line run` checks its "
      "job package against). The certificate names this member as its issuer: revoking the "
      "member (`clade group revoke --member`) revokes it too. Valid 30 days unless --days says "
      "otherwise; re-issue before it expires.");
  AddStateOption(*cmd, a->state, "HSM state directory (any member of the group)");
  AddGroupOption(*cmd, a->group);
  std::vector<std::string> roles;
  for (hsm::ClientRole r : hsm::kClientRoles) roles.emplace_back(hsm::RoleName(r));
  cmd->add_option("--role", a->role, "line (provision, import jobs, status) or operator (all)")
      ->required()
      ->check(CLI::IsMember(roles));
  cmd->add_option("--out", a->out, "Output directory (created if missing)")->required();
  cmd->add_option("--days", a->days, "Validity in days (default 30, capped by the group CA)")
      ->check(CLI::Range(1, 36500));
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(hsm::ClientRole role, hsm::ParseRole(a->role));
    ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
    ASSIGN_OR_RETURN(std::string gid, hsm::ResolveGroup(*h, a->group));
    ASSIGN_OR_RETURN(hsm::IssuedClient c, hsm::IssueClientCert(*h, gid, role, a->days * 24 * 3600));
    RETURN_IF_ERROR(MakeDirs(a->out, 0700));
    RETURN_IF_ERROR(crypto::WritePrivateKeyFile(a->out + "/client.key", c.key));
    RETURN_IF_ERROR(
        WriteFileAtomic(a->out + "/client-chain.pem", crypto::Certificate::ChainToPem(c.chain)));
    RETURN_IF_ERROR(WriteFileAtomic(a->out + "/supplier-root.crt", c.supplier_root.Pem()));
    // The OEM root the group accepts: `line run` checks its job package against it.
    ASSIGN_OR_RETURN(auto oem_root, hsm::AcceptedOemRoot(*h, gid));
    std::string oem_path = a->out + "/" + kClientOemRootFile;
    if (oem_root) {
      RETURN_IF_ERROR(WriteFileAtomic(oem_path, oem_root->Pem()));
    } else if (::unlink(oem_path.c_str()) != 0 && errno != ENOENT) {
      return absl::FailedPreconditionError("cannot remove " + oem_path + ": " +
                                           std::strerror(errno));
    }
    std::cout << "client certificate for role " << a->role << " in group " << gid << "\n"
              << "subject: " << c.chain[0].Subject() << "\n"
              << "fingerprint: " << c.chain[0].Fingerprint() << "\n"
              << "wrote " << a->out << "/client.key, client-chain.pem, supplier-root.crt"
              << (oem_root ? ", oem-root.crt" : "") << "\n";
    return absl::OkStatus();
  });
}

void AddEnroll(CLI::App& group, Dispatch& dispatch) {
  struct Args {
    std::string state, sponsor, announcement;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = group.add_subcommand(
      "enroll",
      "Enroll this HSM online, invited by the sponsor's operator: with an announcement made for "
      "this HSM's serial (`clade group announce --for SERIAL`, offline on the sponsor or online "
      "with an operator client), run request → admit → join against the sponsor's daemon "
      "(`clade hsm serve`), with the same checks as the message-file flow. Connects with this "
      "HSM's identity certificate; the sponsor's certificate must chain to this HSM's supplier "
      "root, and the sponsor admits this HSM only on that announcement.");
  AddStateOption(*cmd, a->state, "State directory of the candidate HSM");
  cmd->add_option("--sponsor", a->sponsor, "HOST:PORT of the sponsoring member's daemon")
      ->required();
  cmd->add_option("--announcement", a->announcement,
                  "Announcement file from the sponsor's operator (made --for this HSM's serial)")
      ->required();
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(auto ann_bytes, ReadFileBytes(a->announcement, wire::kMaxMessageSize));
    ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
    ASSIGN_OR_RETURN(auto creds, HsmCredentials(*h));
    ASSIGN_OR_RETURN(auto client, rpc::HsmClient::Connect(a->sponsor, creds));
    ASSIGN_OR_RETURN(auto request, hsm::RequestEnrollment(*h, ann_bytes));
    v1::AdmitRequest adm_req;
    adm_req.set_request(std::string(request.begin(), request.end()));
    ASSIGN_OR_RETURN(auto adm, client->Admit(adm_req));
    std::vector<uint8_t> resp_bytes(adm.response().begin(), adm.response().end());
    ASSIGN_OR_RETURN(hsm::Joined j, hsm::Join(*h, resp_bytes));
    std::cout << "joined group " << j.group_id << " (" << j.group_name << ")\n"
              << "member id: " << j.member_id << "\n";
    return absl::OkStatus();
  });
}

}  // namespace

void AddServeCommands(CLI::App& app, Dispatch& dispatch) {
  CLI::App* hsm_cmd = app.get_subcommand("hsm");
  CLI::App* group_cmd = app.get_subcommand("group");
  AddServe(*hsm_cmd, dispatch);
  AddCall(*hsm_cmd, dispatch);
  AddIssueClient(*group_cmd, dispatch);
  AddEnroll(*group_cmd, dispatch);
}

}  // namespace clade::cli
