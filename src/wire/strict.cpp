#include "wire/strict.h"

#include <climits>
#include <optional>
#include <string>
#include <vector>

#include "google/protobuf/unknown_field_set.h"

namespace clade::wire {
namespace {

namespace pb = google::protobuf;

struct UnknownField {
  int number;
  std::string path;  // "" for the message itself
};

// The first unknown field in `m` or in any message set under it, singular or repeated (map
// entries are repeated messages). The parser bounds nesting (100 levels), so this recursion is
// bounded too.
std::optional<UnknownField> FirstUnknown(const pb::Message& m, const std::string& path) {
  const pb::Reflection* r = m.GetReflection();
  const pb::UnknownFieldSet& unknown = r->GetUnknownFields(m);
  if (!unknown.empty()) return UnknownField{unknown.field(0).number(), path};
  std::vector<const pb::FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const pb::FieldDescriptor* f : fields) {
    if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    std::string name = path.empty() ? f->name() : path + "." + f->name();
    if (!f->is_repeated()) {
      if (auto found = FirstUnknown(r->GetMessage(m, f), name)) return found;
      continue;
    }
    for (int i = 0; i < r->FieldSize(m, f); ++i) {
      std::string at = name + "[" + std::to_string(i) + "]";
      if (auto found = FirstUnknown(r->GetRepeatedMessage(m, f, i), at)) return found;
    }
  }
  return std::nullopt;
}

}  // namespace

absl::Status ParseStrict(std::span<const uint8_t> bytes, pb::Message& out, std::string_view what,
                         size_t limit) {
  std::string name(what);
  if (bytes.size() > limit || bytes.size() > static_cast<size_t>(INT_MAX)) {
    return absl::InvalidArgumentError(name + " is " + std::to_string(bytes.size()) +
                                      " bytes, more than the limit of " + std::to_string(limit));
  }
  // The only ParseFrom* call of the project: everything decoded goes through here.
  if (!out.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(name + " does not parse");
  }
  if (auto found = FirstUnknown(out, "")) {
    std::string text = name + " has unknown field " + std::to_string(found->number);
    if (!found->path.empty()) text += " in " + found->path;
    return absl::InvalidArgumentError(text);
  }
  return absl::OkStatus();
}

absl::Status ParsePayload(const Envelope& env, pb::Message& out, size_t limit) {
  const std::string& expected = out.GetDescriptor()->full_name();
  if (env.type != expected) {
    return absl::InvalidArgumentError("message is a " + env.type + ", expected a " + expected);
  }
  absl::Status parsed = ParseStrict(env.payload, out, env.type + " payload", limit);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError("malformed message: " + std::string(parsed.message()));
  }
  return absl::OkStatus();
}

}  // namespace clade::wire
