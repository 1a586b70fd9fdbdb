// `clade group …`: found a group and enroll genuine HSMs into it with message files.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/files.h"
#include "clade/v1/group.pb.h"
#include "clade/v1/hsm_service.pb.h"
#include "cli/client_dir.h"
#include "cli/commands.h"
#include "crypto/pem_files.h"
#include "crypto/x509.h"
#include "hsm/enrollment.h"
#include "hsm/group.h"
#include "hsm/group_statement.h"
#include "hsm/hsm.h"
#include "rpc/client.h"
#include "wire/envelope.h"
#include "wire/strict.h"

namespace clade::cli {
namespace {

constexpr char kFlowHelp[] =
    "Enrollment flow (each step exchanges one signed message file, so the files can cross an "
    "air gap on a USB stick). Only the sponsor's operator invites: nothing else makes an "
    "announcement.\n"
    "  1. sponsor (any member):  clade group announce --state A --group G [--for SN] --out "
    "ann.msg\n"
    "  2. candidate (new HSM):   clade group request  --state B --announcement ann.msg "
    "--out req.msg\n"
    "  3. sponsor:               clade group admit    --state A --request req.msg --out "
    "resp.msg\n"
    "  4. candidate:             clade group join     --state B --response resp.msg\n"
    "Online instead: the operator of the group announces through the sponsor's daemon "
    "(`clade group announce --hsm HOST:PORT --client OPDIR --group G --for SN --out ann.msg`), "
    "then the candidate runs `clade group enroll --state B --sponsor HOST:PORT --announcement "
    "ann.msg` (request, admit and join in one go).\n"
    "The new member's id is the sponsor's id plus one more part (1 admits 1.1, 1.2, …; 1.1 "
    "admits 1.1.1, …).";

absl::StatusOr<Bytes> ReadMessageFile(const std::string& path) {
  return ReadFileBytes(path, wire::kMaxMessageSize);
}

absl::StatusOr<hsm::GroupSummary> FindSummary(hsm::Hsm& h, const std::string& group_id) {
  ASSIGN_OR_RETURN(std::vector<hsm::GroupSummary> groups, hsm::ListGroups(h));
  for (auto& g : groups) {
    if (g.group_id == group_id) return g;
  }
  return absl::NotFoundError("this HSM is not a member of group '" + group_id + "'");
}

std::string JoinOrNone(const std::vector<std::string>& v, const char* none) {
  if (v.empty()) return none;
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

nlohmann::json SummaryJson(const hsm::GroupSummary& g) {
  nlohmann::json j = {{"group_id", g.group_id},
                      {"name", g.name},
                      {"member_id", g.member_id},
                      {"role", g.role},
                      {"children_enrolled", g.children_enrolled},
                      {"oem_root_fingerprint", nullptr},
                      {"encryption_key_fingerprint", g.encryption_key_fingerprint},
                      {"allow", g.allow_serials},
                      {"deny", g.deny_serials}};
  if (g.oem_root_fingerprint) j["oem_root_fingerprint"] = *g.oem_root_fingerprint;
  return j;
}

void PrintPolicy(const hsm::GroupSummary& g) {
  std::cout << "  allow: " << JoinOrNone(g.allow_serials, "any genuine HSM") << "\n"
            << "  deny: " << JoinOrNone(g.deny_serials, "none") << "\n";
}

void PrintSummary(const hsm::GroupSummary& g) {
  std::cout << "group " << g.group_id << "\n"
            << "  name: " << g.name << "\n"
            << "  member id: " << g.member_id << "\n"
            << "  role: " << g.role << "\n"
            << "  children enrolled: " << g.children_enrolled << "\n"
            << "  OEM root: " << g.oem_root_fingerprint.value_or("none") << "\n"
            << "  encryption key: " << g.encryption_key_fingerprint << "\n";
  PrintPolicy(g);
}

void AddCreate(CLI::App& group, Dispatch& dispatch) {
  struct Args {
    std::string state, name, oem_root;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = group.add_subcommand(
      "create",
      "Found a new group on this HSM, which becomes its member 1 (the founder). The "
      "HSM makes the group CA (certified by its own identity key), the group "
      "encryption, signing and symmetric keys, and its own member certificate; the "
      "group id is derived from the group CA key. Other HSMs join later through the "
      "enrollment flow.");
  cmd->footer(kFlowHelp);
  AddStateOption(*cmd, a->state, "State directory of the founding HSM");
  cmd->add_option("--name", a->name, "Group name, 1 to 64 characters (e.g. the OEM's name)")
      ->required();
  cmd->add_option("--oem-root", a->oem_root,
                  "PEM file of the OEM root certificate the group accepts job packages from "
                  "(can be set later with `clade group trust-oem`)");
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    std::optional<crypto::Certificate> oem;
    if (!a->oem_root.empty()) {
      ASSIGN_OR_RETURN(oem, crypto::ReadCertificateFile(a->oem_root));
    }
    ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
    ASSIGN_OR_RETURN(hsm::GroupSummary g, hsm::CreateGroup(*h, a->name, oem));
    std::cout << "new group, founded on this HSM\n"
              << "name: " << g.name << "\n"
              << "group id: " << g.group_id << "\n"
              << "member id: " << g.member_id << "\n"
              << "encryption key: " << g.encryption_key_fingerprint << "\n"
              << "OEM root: " << g.oem_root_fingerprint.value_or("none") << "\n";
    return absl::OkStatus();
  });
}

void AddExport(CLI::App& group, Dispatch& dispatch) {
  struct Args {
    std::string state, group, out;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = group.add_subcommand(
      "export",
      "Write the group's public certificates (PEM) to DIR: group-ca-chain.pem (group CA, "
      "founder's HSM identity, supplier issuing CA), group-enc.crt (the key an OEM wraps its "
      "secrets to), group-sign.crt, supplier-root.crt (the trust anchor) and member.crt (this "
      "HSM's member certificate). Check them with stock tools, e.g. `openssl verify -CAfile "
      "supplier-root.crt -untrusted group-ca-chain.pem group-enc.crt`.");
  AddStateOption(*cmd, a->state, "HSM state directory (any member of the group)");
  AddGroupOption(*cmd, a->group);
  cmd->add_option("--out", a->out, "Output directory (created if missing)")->required();
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
    ASSIGN_OR_RETURN(std::string gid, hsm::ResolveGroup(*h, a->group));
    ASSIGN_OR_RETURN(hsm::GroupExport g, hsm::ExportGroup(*h, gid));
    RETURN_IF_ERROR(MakeDirs(a->out));
    RETURN_IF_ERROR(hsm::WriteGroupExport(g, a->out));
    for (const char* f : {"group-ca-chain.pem", "group-enc.crt", "group-sign.crt",
                          "supplier-root.crt", "member.crt"}) {
      std::cout << a->out << "/" << f << "\n";
    }
    return absl::OkStatus();
  });
}

void AddAnnounce(CLI::App& group, Dispatch& dispatch) {
  struct Args {
    std::string state, hsm, client, group, out, for_serial, valid_for = "24h";
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = group.add_subcommand(
      "announce",
      "Step 1, the invitation, by the sponsor's operator: write an announcement message file "
      "that admits exactly one genuine HSM (with --for, only that serial) before it expires. "
      "Offline on the sponsor (--state), or online through the sponsor's daemon with an "
      "operator client of the group (--hsm, --client). Carry it to the candidate, which answers "
      "with `clade group request` (files) or `clade group enroll` (online).");
  cmd->footer(kFlowHelp);
  auto* state =
      cmd->add_option("--state", a->state, "State directory of the sponsoring member (offline)");
  auto* hsm_opt =
      cmd->add_option("--hsm", a->hsm, "HOST:PORT of the sponsoring member's daemon (online)");
  auto* client = cmd->add_option("--client", a->client,
                                 "With --hsm: an operator client directory of the group (`clade "
                                 "group issue-client --role operator`)");
  state->excludes(hsm_opt)->excludes(client);
  hsm_opt->needs(client);
  client->needs(hsm_opt);
  AddGroupOption(*cmd, a->group);
  cmd->add_option("--for", a->for_serial,
                  "Serial of the one HSM the announcement admits (any genuine HSM the policy "
                  "allows if not given; required for `clade group enroll`)");
  cmd->add_option("--out", a->out, "Announcement file to write")->required();
  cmd->add_option("--valid-for", a->valid_for,
                  "How long the announcement admits a candidate: 30s, 15m, 12h, 7d (1 s to 30 d)")
      ->capture_default_str();
  OnRun(
      *cmd, dispatch,
      [a] {
        if (a->state.empty() && a->hsm.empty()) {
          throw CLI::ValidationError("announce", "give --state (offline) or --hsm and --client");
        }
      },
      [a]() -> absl::Status {
        ASSIGN_OR_RETURN(int64_t valid_for, ParseDuration(a->valid_for));
        Bytes msg;
        if (!a->state.empty()) {
          ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
          ASSIGN_OR_RETURN(std::string gid, hsm::ResolveGroup(*h, a->group));
          ASSIGN_OR_RETURN(msg,
                           hsm::Announce(*h, gid, hsm::AnnounceOptions{valid_for, a->for_serial}));
        } else {
          ASSIGN_OR_RETURN(auto creds, ReadClientDirectory(a->client));
          ASSIGN_OR_RETURN(auto client, rpc::HsmClient::Connect(a->hsm, creds));
          v1::AnnounceRequest req;
          req.set_group(a->group);
          req.set_valid_for(valid_for);
          req.set_for_serial(a->for_serial);
          ASSIGN_OR_RETURN(auto r, client->Announce(req));
          msg.assign(r.announcement().begin(), r.announcement().end());
        }
        RETURN_IF_ERROR(WriteFileAtomic(a->out, msg));
        // Read back what was announced, for the operator.
        auto opened = wire::OpenMessageAs<clade::v1::GroupAnnouncement>(msg);
        if (!opened.ok()) {
          return absl::InternalError("the announcement just made does not open: " +
                                     std::string(opened.status().message()));
        }
        const clade::v1::GroupAnnouncement& ann = opened->message;
        std::cout << "announcement: " << a->out << "\n"
                  << "group id: " << ann.group_id() << "\n"
                  << "group name: " << ann.group_name() << "\n"
                  << "sponsor member id: " << ann.sponsor_member_id() << "\n"
                  << "admits: " << (ann.for_serial().empty() ? "any genuine HSM" : ann.for_serial())
                  << "\n"
                  << "expires: " << FormatTime(ann.expires_at()) << "\n"
                  << "next: on the candidate HSM, `clade group request --state B --announcement "
                  << a->out << " --out req.msg`";
        if (!ann.for_serial().empty()) {
          std::cout << " or, online, `clade group enroll --state B --sponsor HOST:PORT "
                       "--announcement "
                    << a->out << "`";
        }
        std::cout << "\n";
        return absl::OkStatus();
      });
}

void AddRequest(CLI::App& group, Dispatch& dispatch) {
  struct Args {
    std::string state, announcement, out;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = group.add_subcommand(
      "request",
      "Step 2, on the candidate HSM: check an announcement (signature, expiry, the "
      "sponsor and the group founder genuine under this HSM's supplier root, the "
      "sponsor a member of the announced group) and write an enrollment request "
      "carrying this HSM's identity and wrap certificates. Carry it back to the "
      "sponsor, which answers with `clade group admit`.");
  cmd->footer(kFlowHelp);
  AddStateOption(*cmd, a->state, "State directory of the candidate HSM");
  cmd->add_option("--announcement", a->announcement, "Announcement file from the sponsor")
      ->required();
  cmd->add_option("--out", a->out, "Request file to write")->required();
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(Bytes ann_bytes, ReadMessageFile(a->announcement));
    ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
    ASSIGN_OR_RETURN(Bytes req, hsm::RequestEnrollment(*h, ann_bytes));
    RETURN_IF_ERROR(WriteFileAtomic(a->out, req));
    std::cout << "request: " << a->out << "\n";
    // The announcement verified inside RequestEnrollment; show what was asked for.
    auto opened = wire::OpenMessageAs<clade::v1::GroupAnnouncement>(ann_bytes);
    if (opened.ok()) {
      const clade::v1::GroupAnnouncement& ann = opened->message;
      std::cout << "group id: " << ann.group_id() << "\n"
                << "group name: " << ann.group_name() << "\n"
                << "sponsor member id: " << ann.sponsor_member_id() << "\n";
    }
    std::cout << "next: on the sponsor, `clade group admit --state A --request " << a->out
              << " --out resp.msg`\n";
    return absl::OkStatus();
  });
}

void AddAdmit(CLI::App& group, Dispatch& dispatch) {
  struct Args {
    std::string state, request, out;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = group.add_subcommand(
      "admit",
      "Step 3, on the sponsor: check an enrollment request (candidate genuine, wrap "
      "certificate of the same HSM, bound to an unexpired announcement of this "
      "sponsor not used before, allowed by the group policy, not already enrolled), "
      "allocate the next member id below the sponsor's, issue the member "
      "certificate, wrap the group secrets to the candidate's wrap key only, and "
      "write the response. Carry it to the candidate, which finishes with `clade "
      "group join`.");
  cmd->footer(kFlowHelp);
  AddStateOption(*cmd, a->state, "State directory of the sponsoring member");
  cmd->add_option("--request", a->request, "Request file from the candidate")->required();
  cmd->add_option("--out", a->out, "Response file to write")->required();
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(Bytes req, ReadMessageFile(a->request));
    ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
    ASSIGN_OR_RETURN(hsm::Admission adm, hsm::Admit(*h, req));
    RETURN_IF_ERROR(WriteFileAtomic(a->out, adm.response));
    std::cout << "response: " << a->out << "\n"
              << "member id: " << adm.member_id << "\n"
              << "candidate serial: " << adm.candidate_serial << "\n"
              << "next: on the candidate, `clade group join --state B --response " << a->out
              << "`\n";
    return absl::OkStatus();
  });
}

void AddJoin(CLI::App& group, Dispatch& dispatch) {
  struct Args {
    std::string state, response;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = group.add_subcommand(
      "join",
      "Step 4, on the candidate HSM: check the sponsor's response against this "
      "HSM's pending request (same sponsor and group, a member certificate for this "
      "HSM with an id directly below the sponsor's), unwrap the group secrets, check "
      "each key against its certificate, and become a member. The new member can "
      "itself announce and admit further HSMs.");
  cmd->footer(kFlowHelp);
  AddStateOption(*cmd, a->state, "State directory of the candidate HSM");
  cmd->add_option("--response", a->response, "Response file from the sponsor")->required();
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(Bytes resp, ReadMessageFile(a->response));
    ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
    ASSIGN_OR_RETURN(hsm::Joined j, hsm::Join(*h, resp));
    std::cout << "joined group\n"
              << "name: " << j.group_name << "\n"
              << "group id: " << j.group_id << "\n"
              << "member id: " << j.member_id << "\n";
    return absl::OkStatus();
  });
}

void AddList(CLI::App& group, Dispatch& dispatch) {
  struct Args {
    std::string state;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = group.add_subcommand(
      "list",
      "List the groups this HSM belongs to: group id, name, this HSM's member id and role, how "
      "many members it enrolled, the OEM root it accepts, the group encryption key fingerprint "
      "(the same on every member) and its allow/deny policy.");
  AddStateOption(*cmd, a->state);
  cmd->add_flag("--json", a->json,
                "Print a JSON array of objects with keys group_id, name, member_id, role, "
                "children_enrolled, oem_root_fingerprint (null if none), "
                "encryption_key_fingerprint, allow, deny");
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
    ASSIGN_OR_RETURN(std::vector<hsm::GroupSummary> groups, hsm::ListGroups(*h));
    if (a->json) {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& g : groups) arr.push_back(SummaryJson(g));
      std::cout << arr.dump(2) << "\n";
      return absl::OkStatus();
    }
    if (groups.empty()) {
      std::cout << "no groups (found one with `clade group create`, or join one)\n";
      return absl::OkStatus();
    }
    for (const auto& g : groups) PrintSummary(g);
    return absl::OkStatus();
  });
}

void AddPolicy(CLI::App& group, Dispatch& dispatch) {
  struct Args {
    std::string state, group, allow, deny, out;
    bool show = false;
    std::optional<hsm::PolicyList> change;  // set from which flag was given
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = group.add_subcommand(
      "policy",
      "Show or change which HSMs this member admits into the group: --allow SERIAL adds a "
      "serial to the allow list (when it is non-empty, only listed serials are admitted), "
      "--deny SERIAL adds one to the deny list (never admitted), --show prints both. The policy "
      "is this member's copy; members it enrolls afterwards receive it with the group. A deny "
      "also signs the group's next statement (see `clade group revoke`), so that every member "
      "that receives it refuses the serial too; --out writes that statement to a file.");
  AddStateOption(*cmd, a->state);
  AddGroupOption(*cmd, a->group);
  CLI::Option* allow = cmd->add_option("--allow", a->allow, "HSM serial to add to the allow list");
  CLI::Option* deny = cmd->add_option("--deny", a->deny, "HSM serial to add to the deny list");
  CLI::Option* show = cmd->add_flag("--show", a->show, "Print the allow and deny lists");
  cmd->add_option("--out", a->out, "With --deny: also write the new group statement here");
  allow->excludes(deny)->excludes(show);
  deny->excludes(show);
  OnRun(
      *cmd, dispatch,
      [a, allow, deny, show] {
        if (allow->count() + deny->count() + show->count() != 1) {
          throw CLI::ValidationError("policy", "give exactly one of --allow, --deny, --show");
        }
        if (allow->count() > 0) a->change = hsm::PolicyList::kAllow;
        if (deny->count() > 0) a->change = hsm::PolicyList::kDeny;
      },
      [a]() -> absl::Status {
        ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
        ASSIGN_OR_RETURN(std::string gid, hsm::ResolveGroup(*h, a->group));
        if (a->change == hsm::PolicyList::kAllow) {
          RETURN_IF_ERROR(hsm::AddToPolicy(*h, gid, hsm::PolicyList::kAllow, a->allow));
          std::cout << "allowed " << a->allow << " in group " << gid << "\n";
        } else if (a->change == hsm::PolicyList::kDeny) {
          // The statement first: a member that may not sign one (it is revoked) changes nothing.
          ASSIGN_OR_RETURN(hsm::IssuedStatement st, hsm::DenySerial(*h, gid, a->deny));
          RETURN_IF_ERROR(hsm::AddToPolicy(*h, gid, hsm::PolicyList::kDeny, a->deny));
          std::cout << "denied " << a->deny << " in group " << gid << " (group statement "
                    << st.sequence << ")\n";
          if (!a->out.empty()) {
            RETURN_IF_ERROR(WriteFileAtomic(a->out, st.message));
            std::cout << "wrote " << a->out << "\n";
          }
        }
        ASSIGN_OR_RETURN(hsm::GroupSummary g, FindSummary(*h, gid));
        std::cout << "group " << g.group_id << " (" << g.name << ")\n";
        PrintPolicy(g);
        return absl::OkStatus();
      });
}

void AddTrustOem(CLI::App& group, Dispatch& dispatch) {
  struct Args {
    std::string state, group, oem_root;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = group.add_subcommand(
      "trust-oem",
      "Set (or replace) the OEM root certificate this member's copy of the group accepts job "
      "packages from. Members it enrolls afterwards receive it with the group.");
  AddStateOption(*cmd, a->state);
  AddGroupOption(*cmd, a->group);
  cmd->add_option("--oem-root", a->oem_root, "PEM file of the OEM root CA certificate")->required();
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(crypto::Certificate oem, crypto::ReadCertificateFile(a->oem_root));
    ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
    ASSIGN_OR_RETURN(std::string gid, hsm::ResolveGroup(*h, a->group));
    RETURN_IF_ERROR(hsm::TrustOem(*h, gid, oem));
    std::cout << "group " << gid << " now accepts OEM root\n"
              << "  subject: " << oem.Subject() << "\n"
              << "  fingerprint: " << oem.Fingerprint() << "\n";
    return absl::OkStatus();
  });
}

}  // namespace

void AddGroupCommands(CLI::App& app, Dispatch& dispatch) {
  CLI::App* group = app.add_subcommand(
      "group",
      "Groups of HSMs. One HSM founds a group (`create`, on the founder, which "
      "becomes member 1); any member then enrolls further genuine HSMs its operator "
      "invites: `announce` on any member → `request` on the candidate → `admit` on the "
      "sponsor → `join` on the candidate. Each step reads and writes one signed message "
      "file, so the files can cross an air gap on a USB stick (or: `enroll`, online). Members get "
      "hierarchical ids (1, "
      "1.1, 1.2, 1.1.1) and every member holds the same group keys, so losing any "
      "one HSM — the founder included — stops nothing.");
  group->require_subcommand(1);
  group->footer(kFlowHelp);
  AddCreate(*group, dispatch);
  AddExport(*group, dispatch);
  AddAnnounce(*group, dispatch);
  AddRequest(*group, dispatch);
  AddAdmit(*group, dispatch);
  AddJoin(*group, dispatch);
  AddList(*group, dispatch);
  AddPolicy(*group, dispatch);
  AddTrustOem(*group, dispatch);
  AddStatementCommands(*group, dispatch);
}

}  // namespace clade::cli
