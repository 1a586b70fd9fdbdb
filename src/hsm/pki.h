// Clade's PKI semantics (docs/pki.md). Every certificate Clade issues carries exactly one *kind*
// marker — a certificatePolicies OID under Clade's arc — and every verifier checks kind and
// position: a genuine HSM is exactly supplier root → supplier issuing CA → HSM identity cert. So a
// group CA (which any HSM can make) can never mint something that passes for an HSM.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "crypto/x509.h"

namespace clade::hsm {

// Clade's OID arc: a placeholder under the documentation enterprise number (RFC 5612) until
// the project registers its own; see docs/decisions/0002-oid-arc.md.
inline constexpr std::string_view kCladeArc = "1.3.6.1.4.1.32473.4210";

enum class CertKind {
  kSupplierRoot = 1,
  kSupplierIssuing = 2,
  kHsmIdentity = 3,
  kHsmWrap = 4,
  kGroupCa = 5,
  kGroupEncryption = 6,
  kGroupSigning = 7,
  kMember = 8,
  kClient = 9,
};

std::string KindOid(CertKind kind);        // kCladeArc + ".1." + number
std::string_view KindName(CertKind kind);  // "HSM identity", "group CA", …
// The one kind marker a certificate carries; NotFound / InvalidArgument if none or several.
absl::StatusOr<CertKind> KindOf(const crypto::Certificate& cert);
// "certificate 'CN=x' is a group CA certificate, expected an HSM identity certificate".
absl::Status RequireKind(const crypto::Certificate& cert, CertKind kind);

// The HSM serial number carried in the subject's serialNumber attribute.
absl::StatusOr<std::string> HsmSerialOf(const crypto::Certificate& cert);
// Letters, digits, '.', '_' and '-', 1 to 64 characters.
absl::Status CheckSerialSyntax(std::string_view serial);

// A genuine HSM, as established by VerifyGenuineHsm.
struct GenuineHsm {
  std::string serial;
  crypto::Certificate identity;  // kind HSM identity, issued by `issuing`
  crypto::Certificate issuing;   // kind supplier issuing CA, issued by the root
};

// Checks root → issuing → identity: the chain verifies to `supplier_root` (the only anchor), the
// root is of kind supplier root, `issuing` of kind supplier issuing CA, the identity of kind HSM
// identity with a serial, valid at `at_time` (unix seconds, from the caller's clock). Refusals name
// the failed check, e.g. "HSM identity 'CN=…' is not issued by the supplier root: …".
absl::StatusOr<GenuineHsm> VerifyGenuineHsm(const crypto::Certificate& identity,
                                            const crypto::Certificate& issuing,
                                            const crypto::Certificate& supplier_root,
                                            int64_t at_time);
// Checks a wrap certificate: genuine chain as above, kind HSM wrap, keyAgreement allowed, and the
// same HSM serial as `hsm`.
absl::Status VerifyHsmWrapCert(const crypto::Certificate& wrap, const GenuineHsm& hsm,
                               const crypto::Certificate& supplier_root, int64_t at_time);

}  // namespace clade::hsm
