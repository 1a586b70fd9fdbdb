#!/usr/bin/env bash
# Supplier → HSM through the `clade` command, checked with openssl, GnuTLS certtool and python.
source "$(dirname "$0")/lib.sh"

# Help and usage.
expect_ok "$CLADE" --help
expect_out "clade supplier"
expect_out "clade line"
expect_out "clade record"
expect_ok "$CLADE" hsm init --help
expect_out "--supplier"
expect_fail 2 "usage error" "$CLADE" hsm init --supplier "$T/s"
expect_fail 2 "usage error" "$CLADE" frobnicate
expect_fail 2 "usage error" "$CLADE"

# Supplier CA.
expect_ok "$CLADE" supplier init --dir "$T/s" --name "Acme HSM Works"
expect_out "fingerprint"
[ "$(stat -c %a "$T/s/root.key")" = 600 ] || fail "root.key is not 0600"
[ "$(stat -c %a "$T/s/issuing.key")" = 600 ] || fail "issuing.key is not 0600"
expect_fail 1 "refusing to overwrite" "$CLADE" supplier init --dir "$T/s"
expect_ok openssl verify -CAfile "$T/s/root.crt" "$T/s/issuing.crt"
openssl x509 -in "$T/s/root.crt" -noout -text | grep -q "NIST CURVE: P-384" || fail "root is not P-384"

# A new HSM.
expect_ok "$CLADE" hsm init --state "$T/h1" --supplier "$T/s" --serial SN-0001
expect_out "new HSM SN-0001"
expect_fail 1 "refusing to overwrite" "$CLADE" hsm init --state "$T/h1" --supplier "$T/s"
[ "$(stat -c %a "$T/h1/kek.key")" = 600 ] || fail "kek.key is not 0600"
if grep -a -q "PRIVATE KEY" "$T/h1"/state.db*; then fail "a private key is in the state in clear"; fi

expect_ok "$CLADE" hsm info --state "$T/h1"
expect_out "HSM serial:         SN-0001"
expect_out "groups:             none"
expect_ok "$CLADE" hsm info --state "$T/h1" --json
/usr/bin/python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["serial"] == "SN-0001", j
assert j["groups"] == [], j
assert len(j["identity"]["fingerprint"]) == 64, j
assert j["kek"].startswith("key file"), j
' "$T/out" || fail "hsm info --json is not as expected"

# Export and check with tools we did not write.
expect_ok "$CLADE" hsm export-identity --state "$T/h1" --out "$T/id"
openssl x509 -in "$T/id/identity-chain.pem" -out "$T/identity.crt"
expect_ok openssl verify -CAfile "$T/s/root.crt" -untrusted "$T/id/identity-chain.pem" "$T/identity.crt"
expect_out "OK"
expect_ok openssl verify -CAfile "$T/s/root.crt" -untrusted "$T/id/identity-chain.pem" "$T/id/wrap.crt"
expect_ok certtool --verify --load-ca-certificate "$T/s/root.crt" --infile "$T/id/identity-chain.pem"
cat "$T/id/identity-chain.pem" "$T/s/root.crt" >"$T/full-chain.pem"
expect_ok certtool --verify-chain --infile "$T/full-chain.pem"
openssl x509 -in "$T/identity.crt" -noout -text >"$T/text"
grep -q "CA:TRUE, pathlen:1" "$T/text" || fail "identity cert is not CA:TRUE pathlen:1"
grep -q "1.3.6.1.4.1.32473.4210.1.3" "$T/text" || fail "no HSM identity kind"
openssl x509 -in "$T/id/wrap.crt" -noout -text | grep -q "Key Agreement" || fail "wrap cert lacks keyAgreement"
/usr/bin/python3 - "$T/identity.crt" <<'PY' || fail "python cryptography does not parse the identity"
import sys
from cryptography import x509
from cryptography.x509.oid import NameOID
c = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
assert c.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "SN-0001"
assert c.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 1
PY

# Not genuine: an identity from another supplier does not verify under ours.
expect_ok "$CLADE" supplier init --dir "$T/other" --name "Counterfeit Inc"
expect_ok "$CLADE" hsm init --state "$T/h2" --supplier "$T/other" --serial SN-0002
expect_ok "$CLADE" hsm export-identity --state "$T/h2" --out "$T/id2"
expect_fail 2 "" openssl verify -CAfile "$T/s/root.crt" -untrusted "$T/id2/identity-chain.pem" "$T/id2/wrap.crt"

# KEK: a readable key file is refused; a passphrase KEK opens only with its passphrase.
chmod 644 "$T/h1/kek.key"
expect_fail 1 "must not be readable" "$CLADE" hsm info --state "$T/h1"
chmod 600 "$T/h1/kek.key"
expect_fail 1 "CLADE_KEK_PASSPHRASE" env -u CLADE_KEK_PASSPHRASE "$CLADE" hsm init --state "$T/h3" --supplier "$T/s" --kek passphrase
[ ! -e "$T/h3/state.db" ] || fail "a failed init left a state behind"
expect_ok env CLADE_KEK_PASSPHRASE="correct horse battery" "$CLADE" hsm init --state "$T/h3" --supplier "$T/s" --kek passphrase
expect_ok env CLADE_KEK_PASSPHRASE="correct horse battery" "$CLADE" hsm info --state "$T/h3"
expect_out "passphrase"
expect_fail 1 "wrong KEK" env CLADE_KEK_PASSPHRASE="wrong horse battery" "$CLADE" hsm info --state "$T/h3"
expect_fail 1 "unknown KEK provider" "$CLADE" hsm init --state "$T/h4" --supplier "$T/s" --kek tpm

# A supplier whose issuing key others can read is refused.
chmod 644 "$T/s/issuing.key"
expect_fail 1 "chmod 600" "$CLADE" hsm init --state "$T/h5" --supplier "$T/s"
expect_fail 1 "holds no HSM state" "$CLADE" hsm info --state "$T/nowhere"

done_checks
