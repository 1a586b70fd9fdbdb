#include "hsm/profile.h"

#include <nlohmann/json.hpp>
#include <set>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "crypto/der.h"

namespace clade::hsm {
namespace {

// ordered_json keeps the subject attributes in the order the OEM wrote them.
using Json = nlohmann::ordered_json;

absl::Status Bad(const std::string& what) { return absl::InvalidArgumentError("profile: " + what); }

absl::Status OnlyKeys(const Json& obj, const std::string& where, std::set<std::string> allowed) {
  for (const auto& [key, value] : obj.items()) {
    if (!allowed.contains(key)) {
      return Bad("unknown key '" + (where.empty() ? key : where + "." + key) + "'");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> StringList(const Json& obj, const std::string& key) {
  std::vector<std::string> out;
  if (!obj.contains(key)) return out;
  const Json& v = obj.at(key);
  if (!v.is_array()) return Bad(key + " must be a list of strings");
  for (const auto& item : v) {
    if (!item.is_string()) return Bad(key + " must be a list of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

absl::StatusOr<int64_t> ParseGeneralizedTime(const std::string& text) {
  auto bad =
      Bad("validity.not_after must be a GeneralizedTime like 99991231235959Z, not '" + text + "'");
  if (text.size() != 15 || text[14] != 'Z') return bad;
  int v[6] = {0};
  const int widths[6] = {4, 2, 2, 2, 2, 2};
  size_t at = 0;
  for (int i = 0; i < 6; ++i) {
    for (int k = 0; k < widths[i]; ++k, ++at) {
      if (text[at] < '0' || text[at] > '9') return bad;
      v[i] = v[i] * 10 + (text[at] - '0');
    }
  }
  // Fields are parsed by position: strftime-style %Y would swallow every digit.
  absl::CivilSecond cs(v[0], v[1], v[2], v[3], v[4], v[5]);
  if (cs.year() != v[0] || cs.month() != v[1] || cs.day() != v[2] || cs.hour() != v[3] ||
      cs.minute() != v[4] || cs.second() != v[5]) {
    return bad;  // normalised: the date did not exist (e.g. month 13)
  }
  return absl::ToUnixSeconds(absl::FromCivil(cs, absl::UTCTimeZone()));
}

absl::StatusOr<std::vector<uint8_t>> HexBytes(const std::string& hex, const std::string& where) {
  if (hex.empty() || hex.size() % 2 != 0) return Bad(where + " must be an even-length hex string");
  std::vector<uint8_t> out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    auto nib = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int hi = nib(hex[i]);
    int lo = nib(hex[i + 1]);
    if (hi < 0 || lo < 0) return Bad(where + " must be a hex string");
    out.push_back(static_cast<uint8_t>(hi * 16 + lo));
  }
  return out;
}

absl::StatusOr<crypto::CertProfile::RawExtension> ParseExtension(const Json& e, size_t index) {
  std::string where = "extensions[" + std::to_string(index) + "]";
  if (!e.is_object()) return Bad(where + " must be an object");
  RETURN_IF_ERROR(OnlyKeys(e, where, {"oid", "critical", "utf8", "der_hex"}));
  if (!e.contains("oid") || !e.at("oid").is_string()) return Bad(where + ".oid is required");
  crypto::CertProfile::RawExtension ext;
  ext.oid = e.at("oid").get<std::string>();
  if (e.contains("critical")) {
    if (!e.at("critical").is_boolean()) return Bad(where + ".critical must be true or false");
    ext.critical = e.at("critical").get<bool>();
  }
  bool has_utf8 = e.contains("utf8");
  bool has_der = e.contains("der_hex");
  if (has_utf8 == has_der) return Bad(where + " needs exactly one of utf8 or der_hex");
  if (has_utf8) {
    if (!e.at("utf8").is_string()) return Bad(where + ".utf8 must be a string");
    std::string v = e.at("utf8").get<std::string>();
    if (v.size() > 1024) return Bad(where + ".utf8 is too long");
    ext.value = crypto::DerUtf8String(v);
  } else {
    if (!e.at("der_hex").is_string()) return Bad(where + ".der_hex must be a string");
    ASSIGN_OR_RETURN(ext.value, HexBytes(e.at("der_hex").get<std::string>(), where + ".der_hex"));
  }
  return ext;
}

std::string Expand(std::string text, const std::string& product, const std::string& job,
                   const std::string& uid) {
  const std::pair<std::string, std::string> vars[] = {
      {"{uid}", uid}, {"{job}", job}, {"{product}", product}};
  for (const auto& [name, value] : vars) {
    for (size_t at = text.find(name); at != std::string::npos;
         at = text.find(name, at + value.size())) {
      text.replace(at, name.size(), value);
    }
  }
  return text;
}

}  // namespace

absl::StatusOr<DeviceProfile> ParseProfile(const std::string& text) {
  if (text.size() > kMaxProfileJson) return Bad("larger than 64 KiB");
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Bad("not valid JSON");
  if (!j.is_object()) return Bad("must be a JSON object");
  RETURN_IF_ERROR(OnlyKeys(j, "",
                           {"product", "subject", "validity", "key_usage", "extended_key_usage",
                            "extensions", "key_mode", "allow_plain_keys"}));
  DeviceProfile p;
  if (j.contains("product")) {
    if (!j.at("product").is_string()) return Bad("product must be a string");
    p.product = j.at("product").get<std::string>();
  }
  if (!j.contains("subject") || !j.at("subject").is_object() || j.at("subject").empty()) {
    return Bad("subject is required: an object of attributes, e.g. {\"CN\": \"{product} {uid}\"}");
  }
  for (const auto& [attr, value] : j.at("subject").items()) {
    if (!value.is_string()) return Bad("subject." + attr + " must be a string");
    p.subject.emplace_back(attr, value.get<std::string>());
  }
  if (!j.contains("validity") || !j.at("validity").is_object()) {
    return Bad("validity is required: {\"not_after\": \"99991231235959Z\"} or {\"days\": N}");
  }
  const Json& v = j.at("validity");
  RETURN_IF_ERROR(OnlyKeys(v, "validity", {"not_after", "days"}));
  if (v.contains("not_after") == v.contains("days")) {
    return Bad("validity needs exactly one of not_after or days");
  }
  if (v.contains("not_after")) {
    if (!v.at("not_after").is_string()) return Bad("validity.not_after must be a string");
    ASSIGN_OR_RETURN(p.not_after, ParseGeneralizedTime(v.at("not_after").get<std::string>()));
  } else {
    if (!v.at("days").is_number_integer() || v.at("days").get<int64_t>() < 1 ||
        v.at("days").get<int64_t>() > 36500) {
      return Bad("validity.days must be a whole number from 1 to 36500");
    }
    p.validity_days = v.at("days").get<int64_t>();
  }
  ASSIGN_OR_RETURN(p.key_usage, StringList(j, "key_usage"));
  ASSIGN_OR_RETURN(p.extended_key_usage, StringList(j, "extended_key_usage"));
  if (j.contains("extensions")) {
    if (!j.at("extensions").is_array()) return Bad("extensions must be a list");
    size_t i = 0;
    for (const auto& e : j.at("extensions")) {
      ASSIGN_OR_RETURN(auto ext, ParseExtension(e, i++));
      p.extensions.push_back(std::move(ext));
    }
  }
  if (!j.contains("key_mode") || !j.at("key_mode").is_string()) {
    return Bad("key_mode is required: 'device' or 'hsm'");
  }
  std::string mode = j.at("key_mode").get<std::string>();
  if (mode == "device") {
    p.key_mode = DeviceKeyMode::kDevice;
  } else if (mode == "hsm") {
    p.key_mode = DeviceKeyMode::kHsm;
  } else {
    return Bad("key_mode must be 'device' or 'hsm', not '" + mode + "'");
  }
  if (j.contains("allow_plain_keys")) {
    if (!j.at("allow_plain_keys").is_boolean())
      return Bad("allow_plain_keys must be true or false");
    p.allow_plain_keys = j.at("allow_plain_keys").get<bool>();
  }
  // Catch a bad key usage, OID or attribute now, at packaging and import, not per device.
  auto probe = DeviceCertProfile(p, "job", "uid", 1);
  if (!probe.ok()) return probe.status();
  return p;
}

absl::Status CheckProfileIssues(const DeviceProfile& profile, const std::string& job_id,
                                int64_t now) {
  ASSIGN_OR_RETURN(auto ca_key, crypto::PrivateKey::Generate(crypto::Curve::kP256));
  ASSIGN_OR_RETURN(auto dev_key, crypto::PrivateKey::Generate(crypto::Curve::kP256));
  crypto::CertProfile ca;
  ca.subject = {{"CN", "trial"}};
  ca.not_after = crypto::kNoExpiry;
  ca.is_ca = true;
  ca.key_usage = {"keyCertSign"};
  ASSIGN_OR_RETURN(auto ca_cert, crypto::IssueCertificate(ca, ca_key.Public(), nullptr, ca_key));
  ASSIGN_OR_RETURN(auto cp, DeviceCertProfile(profile, job_id, "TRIAL-UID-0001", now));
  auto trial = crypto::IssueCertificate(cp, dev_key.Public(), &ca_cert, ca_key);
  if (!trial.ok()) {
    return absl::InvalidArgumentError("profile does not make a valid certificate: " +
                                      std::string(trial.status().message()));
  }
  return absl::OkStatus();
}

absl::Status CheckDeviceUid(const std::string& uid) {
  if (uid.empty() || uid.size() > 128) {
    return absl::InvalidArgumentError("device uid must be 1 to 128 characters");
  }
  for (char c : uid) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError("device uid '" + uid +
                                        "' may hold only letters, digits, '.', '_', ':' and '-'");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<crypto::CertProfile> DeviceCertProfile(const DeviceProfile& p,
                                                      const std::string& job_id,
                                                      const std::string& uid, int64_t now) {
  crypto::CertProfile c;
  for (const auto& [attr, tmpl] : p.subject) {
    std::string value = Expand(tmpl, p.product, job_id, uid);
    if (value.empty() || value.size() > 256) {
      return Bad("subject." + attr + " expands to an empty or over-long value");
    }
    c.subject.emplace_back(attr, std::move(value));
  }
  c.not_before = now - 60;
  c.not_after = p.validity_days > 0 ? now + p.validity_days * 86400 : p.not_after;
  if (c.not_after <= now) return Bad("validity.not_after is in the past");
  c.key_usage = p.key_usage;
  c.extended_key_usage = p.extended_key_usage;
  c.extra_extensions = p.extensions;
  return c;
}

}  // namespace clade::hsm
