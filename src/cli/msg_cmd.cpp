// `clade msg …`: read message files.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/util/json_util.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "base/clock.h"
#include "base/files.h"
#include "clade/v1/group.pb.h"
#include "clade/v1/job.pb.h"
#include "clade/v1/statement.pb.h"
#include "cli/commands.h"
#include "crypto/digest.h"
#include "crypto/x509.h"
#include "hsm/job.h"
#include "wire/envelope.h"
#include "wire/strict.h"

namespace clade::cli {
namespace {

namespace pb = google::protobuf;

// Bytes fields that hold one DER certificate each (or a repeated list of them).
const std::set<std::string>& CertificateFields() {
  static const std::set<std::string> k = {"group_ca_chain", "sponsor_member_cert", "wrap_cert",
                                          "member_cert",    "encryption_cert",     "signing_cert",
                                          "oem_root",       "device_ca_chain"};
  return k;
}
// int64 fields that hold Unix seconds.
const std::set<std::string>& TimeFields() {
  static const std::set<std::string> k = {"issued_at", "expires_at", "requested_at",
                                          "provisioned_at"};
  return k;
}

nlohmann::ordered_json CertJson(const std::string& der) {
  if (der.empty()) return nullptr;
  auto cert =
      crypto::Certificate::FromDer({reinterpret_cast<const uint8_t*>(der.data()), der.size()});
  if (!cert.ok()) {
    return {{"error", "not a certificate: " + std::string(cert.status().message())},
            {"bytes", der.size()}};
  }
  return {{"subject", cert->Subject()}, {"fingerprint", cert->Fingerprint()}};
}

nlohmann::ordered_json BytesJson(const pb::FieldDescriptor& field, const std::string& value) {
  if (CertificateFields().count(field.name())) return CertJson(value);
  // Ciphertext: its size says enough; it is never decoded here.
  if (field.name() == "wrapped_secrets" || field.name() == "wrapped_ca_key" ||
      field.name() == "wrapped_firmware_key") {
    return {{"cms_bytes", value.size()}};
  }
  // Payloads handed to devices: their size (the digest fields beside them identify them).
  if (field.name() == "firmware" || field.name() == "config") return {{"bytes", value.size()}};
  // Digests, nonces and anything else: hex.
  return crypto::Hex({reinterpret_cast<const uint8_t*>(value.data()), value.size()});
}

// Replaces what MessageToJsonString made of bytes (base64) and int64 times (decimal strings)
// with readable forms, reading the values from the message itself.
void Readable(const pb::Message& msg, nlohmann::ordered_json& j) {
  const pb::Descriptor* d = msg.GetDescriptor();
  const pb::Reflection* r = msg.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    if (!j.contains(f->name())) continue;
    nlohmann::ordered_json& v = j[f->name()];
    switch (f->type()) {
      case pb::FieldDescriptor::TYPE_BYTES:
        if (f->is_repeated()) {
          v = nlohmann::ordered_json::array();
          for (int k = 0; k < r->FieldSize(msg, f); ++k) {
            std::string scratch;
            v.push_back(BytesJson(*f, r->GetRepeatedStringReference(msg, f, k, &scratch)));
          }
        } else {
          std::string scratch;
          v = BytesJson(*f, r->GetStringReference(msg, f, &scratch));
        }
        break;
      case pb::FieldDescriptor::TYPE_INT64:
        if (!f->is_repeated() && TimeFields().count(f->name())) {
          v = FormatTime(r->GetInt64(msg, f));
        }
        break;
      case pb::FieldDescriptor::TYPE_MESSAGE:
        if (f->is_repeated()) {
          for (int k = 0; k < r->FieldSize(msg, f) && k < static_cast<int>(v.size()); ++k) {
            Readable(r->GetRepeatedMessage(msg, f, k), v[k]);
          }
        } else if (r->HasField(msg, f)) {
          Readable(r->GetMessage(msg, f), v);
        }
        break;
      default:
        break;
    }
  }
}

// The message types `msg show` decodes. Other types (and never the group secrets) show only
// their size.
std::unique_ptr<pb::Message> NewKnownMessage(const std::string& type) {
  if (type == "clade.v1.GroupAnnouncement") return std::make_unique<clade::v1::GroupAnnouncement>();
  if (type == "clade.v1.EnrollmentRequest") return std::make_unique<clade::v1::EnrollmentRequest>();
  if (type == "clade.v1.EnrollmentResponse") {
    return std::make_unique<clade::v1::EnrollmentResponse>();
  }
  if (type == "clade.v1.JobPackage") return std::make_unique<clade::v1::JobPackage>();
  if (type == "clade.v1.ProvisioningRecord") {
    return std::make_unique<clade::v1::ProvisioningRecord>();
  }
  if (type == "clade.v1.GroupStatement") return std::make_unique<clade::v1::GroupStatement>();
  return nullptr;
}

absl::StatusOr<nlohmann::ordered_json> PayloadJson(const wire::Envelope& env) {
  std::unique_ptr<pb::Message> msg = NewKnownMessage(env.type);
  if (msg == nullptr) return absl::InternalError("no decoder for " + env.type);
  RETURN_IF_ERROR(wire::ParsePayload(env, *msg, hsm::kMaxJobPackage));
  pb::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string text;
  auto st = pb::util::MessageToJsonString(*msg, &text, options);
  if (!st.ok()) {
    return absl::InternalError("rendering the " + env.type + " payload as JSON: " + st.ToString());
  }
  nlohmann::ordered_json j =
      nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InternalError("protobuf produced JSON that does not parse");
  Readable(*msg, j);
  return j;
}

void AddShow(CLI::App& msg_cmd, Dispatch& dispatch) {
  struct Args {
    std::string file;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = msg_cmd.add_subcommand(
      "show",
      "Print a message file (announcement, request, response, job package, provisioning record, "
      "group statement; other types by size only) as JSON: its type, the signer "
      "(subject and SHA-256 fingerprint of the leaf certificate) and signer chain, and the "
      "payload's fields — certificates as subject and fingerprint, digests and nonces as hex, "
      "times as RFC 3339, wrapped secrets only as their size. The envelope must be well-formed "
      "and its signature must verify with the signer's own certificate, but whether that signer "
      "is TRUSTED (genuine, a member of the group) is NOT checked here: the verb that takes the "
      "message does that (`clade group request`, `admit`, `join`, `job import`, `record verify`, "
      "`group accept-statement`).");
  cmd->add_option("FILE", a->file, "Message file")->required();
  OnRun(*cmd, dispatch, [a]() -> absl::Status {
    // Job packages, with their firmware, are the largest message files.
    ASSIGN_OR_RETURN(Bytes bytes, ReadFileBytes(a->file, hsm::kMaxJobPackage));
    auto env = wire::OpenAnyMessage(bytes, hsm::kMaxJobPackage);
    if (!env.ok()) return Annotate(env.status(), a->file);
    nlohmann::ordered_json chain = nlohmann::ordered_json::array();
    for (const auto& c : env->signer_chain) chain.push_back(c.Subject());
    nlohmann::ordered_json out = {{"type", env->type}, {"signature", "valid"}};
    const crypto::Certificate& leaf = env->signer_chain.front();
    out["signer"] = {{"subject", leaf.Subject()}, {"fingerprint", leaf.Fingerprint()}};
    out["signer_chain"] = chain;
    if (NewKnownMessage(env->type) == nullptr) {
      // Not a type this command knows: its size only.
      out["payload_bytes"] = env->payload.size();
    } else {
      auto payload = PayloadJson(*env);
      if (!payload.ok()) return Annotate(payload.status(), a->file);
      out["payload"] = *payload;
    }
    std::cout << out.dump(2) << "\n";
    return absl::OkStatus();
  });
}

}  // namespace

void AddMsgCommands(CLI::App& app, Dispatch& dispatch) {
  CLI::App* msg_cmd = app.add_subcommand(
      "msg",
      "Message files: the signed messages Clade's commands write and read (enrollment steps, "
      "job packages, provisioning records, group statements), on a USB stick or over the "
      "network");
  msg_cmd->require_subcommand(1);
  AddShow(*msg_cmd, dispatch);
}

}  // namespace clade::cli
