// `clade group revoke`, `clade group accept-statement`, `clade group statement`: group-wide
// revocation by signed group statements (docs/operations.md, "Revocation").
#include <iostream>
#include <memory>
#include <string>

#include "base/clock.h"
#include "base/files.h"
#include "cli/commands.h"
#include "hsm/group.h"
#include "hsm/group_statement.h"
#include "hsm/hsm.h"

namespace clade::cli {
namespace {

constexpr char kRevocationHelp[] =
    "Revocation is group-wide. `revoke` (and `policy --deny`) signs the group's next statement "
    "with the group signing key: a numbered list of everything the group has revoked (members "
    "with the time of revocation, client certificate serials, denied HSM serials). Members "
    "accept only a newer statement that keeps every earlier revocation, and pass it on: in "
    "enrollment responses, on every online call (clients keep the newest in their client "
    "directory, statement.msg), and as message files:\n"
    "  on any member:      clade group revoke --state A --group G --member 1.2 --out st.msg\n"
    "  on every member:    clade group accept-statement --state B --statement st.msg\n"
    "  or online:          clade hsm call push-statement --connect HOST:PORT --client OPS "
    "--statement st.msg\n"
    "A revoked member's peer calls, the client certificates it issued and its records dated "
    "after the revocation are refused. Revoke from one member at a time: two statements with "
    "the same number from two members are a fork, and the second is refused.";

void PrintStatement(const hsm::VerifiedStatement& s) {
  std::cout << "group " << s.group_id << ", statement " << s.sequence << " by member "
            << s.issuer_member_id << " at " << FormatTime(s.issued_at) << "\n";
  for (const auto& m : s.members) {
    std::cout << "  revoked member " << m.member_id << " (HSM " << m.hsm_serial << ") since "
              << FormatTime(m.revoked_at) << "\n";
  }
  for (const auto& c : s.clients) {
    std::cout << "  revoked client serial " << c.cert_serial << " since "
              << FormatTime(c.revoked_at) << "\n";
  }
  for (const auto& d : s.denied_serials) std::cout << "  denied HSM " << d << "\n";
}

void AddRevoke(CLI::App& group, Dispatch& dispatch) {
  struct Args {
    std::string state, group, member, serial, client, out;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = group.add_subcommand(
      "revoke",
      "Revoke a member (--member ID: its peer calls, every client certificate it issued, and its "
      "records and audit entries dated from now on are refused by every member that holds the "
      "statement) or one client certificate (--client SERIAL, the hex serial `openssl x509 "
      "-noout -serial` prints). Signs the group's next statement, keeps it on this member, and "
      "with --out writes it as a message file to carry to the other members.");
  cmd->footer(kRevocationHelp);
  AddStateOption(*cmd, a->state, "HSM state directory (any member not revoked)");
  AddGroupOption(*cmd, a->group);
  CLI::Option* member = cmd->add_option("--member", a->member, "Member id to revoke, e.g. 1.2");
  cmd->add_option("--serial", a->serial,
                  "With --member: the member's HSM serial, when this member did not enroll it");
  CLI::Option* client = cmd->add_option("--client", a->client, "Client certificate serial (hex)");
  member->excludes(client);
  cmd->add_option("--out", a->out, "Also write the new statement to this message file");
  OnRun(
      *cmd, dispatch,
      [a, member, client] {
        if (member->count() + client->count() != 1) {
          throw CLI::ValidationError("revoke", "give exactly one of --member, --client");
        }
      },
      [a]() -> absl::Status {
        ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
        ASSIGN_OR_RETURN(std::string gid, hsm::ResolveGroup(*h, a->group));
        absl::StatusOr<hsm::IssuedStatement> st =
            a->member.empty() ? hsm::RevokeClient(*h, gid, a->client)
                              : hsm::RevokeMember(*h, gid, a->member, a->serial);
        if (!st.ok()) return st.status();
        if (!st->changed) std::cout << "already revoked; the held statement says so\n";
        if (!a->out.empty()) {
          RETURN_IF_ERROR(WriteFileAtomic(a->out, st->message));
          std::cout << "wrote " << a->out << "\n";
        }
        ASSIGN_OR_RETURN(auto held, hsm::HeldStatement(*h, gid));
        if (held) PrintStatement(*held);
        return absl::OkStatus();
      });
}

void AddAcceptStatement(CLI::App& group, Dispatch& dispatch) {
  struct Args {
    std::string state, statement;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = group.add_subcommand(
      "accept-statement",
      "Adopt a group statement file (e.g. carried on a USB stick): checked against the group "
      "CA this member holds (signed by the group signing key), and kept only if its number is "
      "higher than the held one's and it keeps every revocation the held one has. The same "
      "statement again is a no-op; an older one, a fork (same number, other content), a forged "
      "one or one of another group is refused and changes nothing.");
  cmd->footer(kRevocationHelp);
  AddStateOption(*cmd, a->state);
  cmd->add_option("--statement", a->statement, "Statement message file")->required();
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(Bytes bytes, ReadFileBytes(a->statement, hsm::kMaxStatementSize));
    ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
    auto r = hsm::AcceptStatement(*h, bytes);
    if (!r.ok()) return Annotate(r.status(), a->statement);
    std::cout << (r->outcome == hsm::Adoption::kAdopted ? "adopted\n"
                                                        : "already held; nothing changed\n");
    PrintStatement(r->statement);
    return absl::OkStatus();
  });
}

void AddShowStatement(CLI::App& group, Dispatch& dispatch) {
  struct Args {
    std::string state, group, out;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = group.add_subcommand(
      "statement",
      "Print the newest group statement this member holds, and with --out write it as a message "
      "file (for `accept-statement` on another member, or `--statement` of the verifiers).");
  cmd->footer(kRevocationHelp);
  AddStateOption(*cmd, a->state);
  AddGroupOption(*cmd, a->group);
  cmd->add_option("--out", a->out, "Message file to write");
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    ASSIGN_OR_RETURN(auto h, hsm::Hsm::Open(a->state));
    ASSIGN_OR_RETURN(std::string gid, hsm::ResolveGroup(*h, a->group));
    ASSIGN_OR_RETURN(auto held, hsm::HeldStatement(*h, gid));
    if (!held) {
      if (!a->out.empty()) {
        return absl::NotFoundError("group " + gid + " has no statement on this member");
      }
      std::cout << "group " << gid << ": no statement (nothing revoked)\n";
      return absl::OkStatus();
    }
    if (!a->out.empty()) {
      RETURN_IF_ERROR(WriteFileAtomic(a->out, held->message));
      std::cout << "wrote " << a->out << "\n";
    }
    PrintStatement(*held);
    return absl::OkStatus();
  });
}

}  // namespace

void AddStatementCommands(CLI::App& group, Dispatch& dispatch) {
  AddRevoke(group, dispatch);
  AddAcceptStatement(group, dispatch);
  AddShowStatement(group, dispatch);
}

}  // namespace clade::cli
