#!/usr/bin/env bash
# Groups through the `clade` command: the FIG. 4 member tree, enrollment with message files,
# losing the founder, refused message files, two groups on the same HSMs; certificates checked with
# openssl and GnuTLS certtool, JSON with python.
source "$(dirname "$0")/lib.sh"
M="$T/msg"
mkdir -p "$M"

# expect_line LINE — the last command's stdout must hold exactly this line.
expect_line() {
  grep -qxF -- "$1" "$T/out" || { cat "$T/out" >&2; fail "expected an output line '$1'"; }
  checks=$((checks + 1))
}

# expect_fields STATE GROUP_NAME [KEY=VALUE...] — one `group list --json`, one python: the HSM
# is in exactly one group of that name, and each KEY has VALUE (null for none, lists as
# Python prints them). Leaves every KEY=VALUE of the group in $T/fields.
expect_fields() {
  local state=$1 name=$2
  shift 2
  "$CLADE" group list --state "$T/$state" --json >"$T/list.json" || fail "group list on $state"
  /usr/bin/python3 - "$T/list.json" "$name" "$T/fields" "$@" <<'PY' || fail "$state: group $name"
import json, sys
groups = [g for g in json.load(open(sys.argv[1])) if g["name"] == sys.argv[2]]
assert len(groups) == 1, groups
show = lambda v: "null" if v is None else str(v)
with open(sys.argv[3], "w") as f:
    for k, v in groups[0].items():
        f.write(f"{k}={show(v)}\n")
for kv in sys.argv[4:]:
    k, want = kv.split("=", 1)
    got = show(groups[0][k])
    assert got == want, f"{k} is '{got}', expected '{want}'"
PY
  checks=$((checks + $#))
}

# snapshot STATE — `group list --json`, to show that a refused step changed nothing.
snapshot() { "$CLADE" group list --state "$T/$1" --json; }

# enroll SPONSOR CANDIDATE GROUP WANT_ID — announce → request → admit → join, through files.
enroll() {
  local sp=$1 cand=$2 group=$3 want=$4 f="$M/$2-$3"
  expect_ok "$CLADE" group announce --state "$T/$sp" --group "$group" --out "$f.ann"
  expect_ok "$CLADE" group request --state "$T/$cand" --announcement "$f.ann" --out "$f.req"
  expect_ok "$CLADE" group admit --state "$T/$sp" --request "$f.req" --out "$f.resp"
  expect_line "member id: $want"
  expect_ok "$CLADE" group join --state "$T/$cand" --response "$f.resp"
  expect_line "member id: $want"
}

# flip FILE OUT — OUT is FILE with one bit of its middle byte flipped.
flip() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[len(b) // 2] ^= 0x01
open(sys.argv[2], "wb").write(bytes(b))
PY
}

# Help and usage.
expect_ok "$CLADE" group --help
for verb in create announce request admit join; do expect_out "$verb"; done
expect_ok "$CLADE" group admit --help
expect_out "air gap"
expect_ok "$CLADE" msg show --help
expect_out "NOT checked"
expect_fail 2 "usage error" "$CLADE" group
expect_fail 2 "usage error" "$CLADE" group list
expect_fail 2 "usage error" "$CLADE" group create --name x

# A supplier and five HSMs.
expect_ok "$CLADE" supplier init --dir "$T/s" --name "Acme HSM Works"
for i in 1 2 3 4 5 6 7 8 9; do
  expect_ok "$CLADE" hsm init --state "$T/h$i" --supplier "$T/s" --serial "SN-$i"
done
expect_ok "$CLADE" group list --state "$T/h1" --json
[ "$(tr -d ' \n' <"$T/out")" = "[]" ] || fail "a new HSM lists groups"

# FIG. 4: 1 → 1.1, 1.2; 1.1 → 1.1.1; 1.2 → 1.2.1.
expect_ok "$CLADE" group create --state "$T/h1" --name fig4
expect_line "member id: 1"
expect_line "name: fig4"
gid=$(sed -n 's/^group id: //p' "$T/out")
[ ${#gid} -eq 32 ] || fail "group id '$gid' is not 32 hex characters"
expect_fail 1 "not a member of group 'nosuch'" "$CLADE" group announce --state "$T/h1" \
  --group nosuch --out "$M/x"
enroll h1 h2 fig4 1.1
enroll h1 h3 "$gid" 1.2
enroll h2 h4 "${gid:0:8}" 1.1.1
enroll h3 h5 fig4 1.2.1
expect_fields h1 fig4 member_id=1 role=founder children_enrolled=2 group_id="$gid"
enc=$(sed -n 's/^encryption_key_fingerprint=//p' "$T/fields")
[ ${#enc} -eq 64 ] || fail "encryption key fingerprint '$enc'"
expect_fields h2 fig4 member_id=1.1 role=member children_enrolled=1
expect_fields h3 fig4 member_id=1.2 children_enrolled=1
expect_fields h4 fig4 member_id=1.1.1 children_enrolled=0
expect_fields h5 fig4 member_id=1.2.1
for h in h2 h3 h4 h5; do
  expect_fields "$h" fig4 encryption_key_fingerprint="$enc" group_id="$gid" \
    oem_root_fingerprint=null
done
expect_ok "$CLADE" group list --state "$T/h4"
expect_out "member id: 1.1.1"
expect_out "OEM root: none"

# Exports verify with openssl and GnuTLS: group certificates and every member certificate chain
# to the supplier root.
for i in 1 2 3 4 5; do
  e="$T/exp/h$i"
  expect_ok "$CLADE" group export --state "$T/h$i" --group fig4 --out "$e"
  expect_out "$e/member.crt"
  expect_ok openssl verify -CAfile "$e/supplier-root.crt" -untrusted "$e/group-ca-chain.pem" \
    "$e/member.crt"
  expect_out "OK"
  cat "$e/member.crt" "$e/group-ca-chain.pem" >"$e/member-chain.pem"
  expect_ok certtool --verify --load-ca-certificate "$e/supplier-root.crt" \
    --infile "$e/member-chain.pem"
  cmp -s "$e/group-enc.crt" "$T/exp/h1/group-enc.crt" || fail "h$i exports another group-enc.crt"
done
e="$T/exp/h1"
for c in group-enc.crt group-sign.crt; do
  expect_ok openssl verify -CAfile "$e/supplier-root.crt" -untrusted "$e/group-ca-chain.pem" "$e/$c"
  expect_out "OK"
  cat "$e/$c" "$e/group-ca-chain.pem" >"$T/chain.pem"
  expect_ok certtool --verify --load-ca-certificate "$e/supplier-root.crt" --infile "$T/chain.pem"
done
cmp -s "$e/supplier-root.crt" "$T/s/root.crt" || fail "exported supplier root is not the supplier's"
openssl x509 -in "$T/exp/h4/member.crt" -noout -text | grep -q "1.3.6.1.4.1.32473.4210.1.8" ||
  fail "member certificate lacks the member kind"

# The founder is lost: 1.1 still enrolls, and its new member is a full member.
rm -rf "$T/h1"
enroll h2 h6 fig4 1.1.2
enroll h6 h7 fig4 1.1.2.1
expect_fields h6 fig4 member_id=1.1.2 children_enrolled=1 encryption_key_fingerprint="$enc"
expect_fields h7 fig4 member_id=1.1.2.1 encryption_key_fingerprint="$enc"
expect_fields h2 fig4 children_enrolled=2
expect_ok "$CLADE" group export --state "$T/h7" --group fig4 --out "$T/exp/h7"
expect_ok openssl verify -CAfile "$T/s/root.crt" -untrusted "$T/exp/h7/group-ca-chain.pem" \
  "$T/exp/h7/member.crt"

# msg show: readable JSON, certificates as subjects, secrets only as a size.
expect_ok "$CLADE" msg show "$M/h7-fig4.ann"
/usr/bin/python3 - "$T/out" "$gid" <<'PY' || fail "msg show of an announcement is not as expected"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["type"] == "clade.v1.GroupAnnouncement", j
assert j["signature"] == "valid", j
assert "SN-6" in j["signer"]["subject"] and len(j["signer"]["fingerprint"]) == 64, j
assert len(j["signer_chain"]) == 2, j
p = j["payload"]
assert p["group_id"] == sys.argv[2] and p["group_name"] == "fig4", p
assert p["sponsor_member_id"] == "1.1.2", p
assert len(p["group_ca_chain"]) == 3 and all("subject" in c for c in p["group_ca_chain"]), p
assert "subject" in p["sponsor_member_cert"], p
assert len(p["nonce"]) == 64 and int(p["nonce"], 16) >= 0, p
assert p["expires_at"].endswith("Z") and p["issued_at"] < p["expires_at"], p
PY
expect_ok "$CLADE" msg show "$M/h7-fig4.req"
expect_out '"type": "clade.v1.EnrollmentRequest"'
expect_ok "$CLADE" msg show "$M/h7-fig4.resp"
/usr/bin/python3 - "$T/out" <<'PY' || fail "msg show of a response is not as expected"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["type"] == "clade.v1.EnrollmentResponse", j
p = j["payload"]
assert p["member_id"] == "1.1.2.1", p
assert set(p["wrapped_secrets"]) == {"cms_bytes"} and p["wrapped_secrets"]["cms_bytes"] > 0, p
assert "subject" in p["member_cert"] and "subject" in p["group"]["encryption_cert"], p
assert len(p["request_digest"]) == 64, p
PY
if grep -q "PRIVATE" "$T/out"; then fail "msg show printed key material"; fi
expect_fail 1 "clade: error:" "$CLADE" msg show "$T/s/root.crt"

# Refused message files; each refusal leaves the state as it was. Sponsor h2 (1.1), candidate h8.
expect_ok "$CLADE" group announce --state "$T/h2" --group fig4 --out "$M/a8.ann"
before=$(snapshot h8)
flip "$M/a8.ann" "$M/a8-flipped.ann"
expect_fail 1 "clade: error:" "$CLADE" group request --state "$T/h8" \
  --announcement "$M/a8-flipped.ann" --out "$M/x.req"
[ "$(snapshot h8)" = "$before" ] || fail "a refused announcement changed the candidate"
expect_ok "$CLADE" group request --state "$T/h8" --announcement "$M/a8.ann" --out "$M/a8.req"

before=$(snapshot h2)
flip "$M/a8.req" "$M/a8-flipped.req"
expect_fail 1 "clade: error:" "$CLADE" group admit --state "$T/h2" --request "$M/a8-flipped.req" \
  --out "$M/x.resp"
[ "$(snapshot h2)" = "$before" ] || fail "a refused request changed the sponsor"
# The announcement is still unused: the intact request is admitted.
expect_ok "$CLADE" group admit --state "$T/h2" --request "$M/a8.req" --out "$M/a8.resp"
expect_line "member id: 1.1.3"
expect_line "candidate serial: SN-8"

before=$(snapshot h8)
flip "$M/a8.resp" "$M/a8-flipped.resp"
expect_fail 1 "clade: error:" "$CLADE" group join --state "$T/h8" --response "$M/a8-flipped.resp"
[ "$(snapshot h8)" = "$before" ] || fail "a refused response changed the candidate"
expect_ok "$CLADE" group join --state "$T/h8" --response "$M/a8.resp"
expect_line "member id: 1.1.3"
# The same response again.
expect_fail 1 "clade: error:" "$CLADE" group join --state "$T/h8" --response "$M/a8.resp"

# The announcement admitted h8; a second candidate on it is refused at admit.
expect_ok "$CLADE" group request --state "$T/h9" --announcement "$M/a8.ann" --out "$M/a9.req"
before=$(snapshot h2)
expect_fail 1 "already used" "$CLADE" group admit --state "$T/h2" --request "$M/a9.req" \
  --out "$M/x.resp"
[ "$(snapshot h2)" = "$before" ] || fail "a replayed announcement changed the sponsor"
# h8's response replayed to h9.
before=$(snapshot h9)
expect_fail 1 "does not answer a pending request" "$CLADE" group join --state "$T/h9" \
  --response "$M/a8.resp"
[ "$(snapshot h9)" = "$before" ] || fail "a replayed response changed h9"

# Expired announcement.
expect_ok "$CLADE" group announce --state "$T/h2" --group fig4 --out "$M/short.ann" --valid-for 1s
# Made no later than `announced`, so it has expired once the clock is a full second past its end.
announced=$(date +%s)
wait_for 30 "the 1 s announcement to expire" clock_past $((announced + 1))
expect_fail 1 "expired" "$CLADE" group request --state "$T/h9" --announcement "$M/short.ann" \
  --out "$M/x.req"
expect_fail 1 "clade: error:" "$CLADE" group announce --state "$T/h2" --group fig4 \
  --out "$M/x.ann" --valid-for 0s
expect_fail 1 "30 days" "$CLADE" group announce --state "$T/h2" --group fig4 --out "$M/x.ann" \
  --valid-for 31d

# Denied serial.
expect_ok "$CLADE" group policy --state "$T/h2" --group fig4 --deny SN-9
expect_ok "$CLADE" group policy --state "$T/h2" --group fig4 --show
expect_out "deny: SN-9"
expect_fields h2 fig4 "deny=['SN-9']"
expect_ok "$CLADE" group announce --state "$T/h2" --group fig4 --out "$M/deny.ann"
expect_ok "$CLADE" group request --state "$T/h9" --announcement "$M/deny.ann" --out "$M/deny.req"
before=$(snapshot h2)
expect_fail 1 "deny list" "$CLADE" group admit --state "$T/h2" --request "$M/deny.req" \
  --out "$M/x.resp"
[ "$(snapshot h2)" = "$before" ] || fail "a denied admission changed the sponsor"
# Another member's copy of the policy does not deny SN-9.
enroll h3 h9 fig4 1.2.2

# A member asks again.
expect_ok "$CLADE" group announce --state "$T/h2" --group fig4 --out "$M/again.ann"
expect_fail 1 "already a member" "$CLADE" group request --state "$T/h3" \
  --announcement "$M/again.ann" --out "$M/x.req"

# An HSM of another supplier: our sponsor is not genuine under its root.
expect_ok "$CLADE" supplier init --dir "$T/s2" --name "Counterfeit Inc"
expect_ok "$CLADE" hsm init --state "$T/f1" --supplier "$T/s2" --serial SN-F1
before=$(snapshot f1)
expect_fail 1 "not a genuine HSM" "$CLADE" group request --state "$T/f1" \
  --announcement "$M/again.ann" --out "$M/x.req"
[ "$(snapshot f1)" = "$before" ] || fail "a refused announcement changed the foreign HSM"

# Two groups on the same three HSMs: a1 founds oem-a, a2 founds oem-b.
for i in 1 2 3 4; do
  expect_ok "$CLADE" hsm init --state "$T/a$i" --supplier "$T/s" --serial "SN-A$i"
done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/oem.key" \
  -out "$T/oem.crt" -subj "/CN=OEM B Root/O=OEM B" -days 365 2>/dev/null || fail "openssl req"
oem_fp=$(openssl x509 -in "$T/oem.crt" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' |
  tr 'A-F' 'a-f')
expect_ok "$CLADE" group create --state "$T/a1" --name oem-a
expect_ok "$CLADE" group create --state "$T/a2" --name oem-b --oem-root "$T/oem.crt"
expect_line "OEM root: $oem_fp"
enroll a1 a2 oem-a 1.1
enroll a1 a3 oem-a 1.2
enroll a2 a1 oem-b 1.1
enroll a2 a3 oem-b 1.2
expect_fields a1 oem-a member_id=1 role=founder children_enrolled=2
enc_a=$(sed -n 's/^encryption_key_fingerprint=//p' "$T/fields")
expect_fields a2 oem-b member_id=1 role=founder children_enrolled=2
enc_b=$(sed -n 's/^encryption_key_fingerprint=//p' "$T/fields")
expect_fields a2 oem-a member_id=1.1 role=member
expect_fields a1 oem-b member_id=1.1 role=member
expect_fields a3 oem-a member_id=1.2
expect_fields a3 oem-b member_id=1.2
[ "$enc_a" != "$enc_b" ] || fail "two groups share an encryption key"
for h in a1 a2 a3; do
  expect_fields "$h" oem-a encryption_key_fingerprint="$enc_a" oem_root_fingerprint=null
  expect_fields "$h" oem-b encryption_key_fingerprint="$enc_b" oem_root_fingerprint="$oem_fp"
  expect_ok "$CLADE" group list --state "$T/$h" --json
  /usr/bin/python3 -c 'import json,sys; assert len(json.load(open(sys.argv[1]))) == 2' "$T/out" ||
    fail "$h does not list two groups"
done
# An oem-b request taken to an oem-a sponsor, and an oem-b response to an oem-a candidate.
expect_ok "$CLADE" group announce --state "$T/a2" --group oem-b --out "$M/b4.ann"
expect_ok "$CLADE" group request --state "$T/a4" --announcement "$M/b4.ann" --out "$M/b4.req"
before=$(snapshot a1)
expect_fail 1 "does not answer an announcement of this sponsor" "$CLADE" group admit \
  --state "$T/a1" --request "$M/b4.req" --out "$M/x.resp"
[ "$(snapshot a1)" = "$before" ] || fail "a cross-group request changed a1"
expect_ok "$CLADE" group admit --state "$T/a2" --request "$M/b4.req" --out "$M/b4.resp"
expect_line "member id: 1.3"
expect_fail 1 "clade: error:" "$CLADE" group join --state "$T/a1" --response "$M/b4.resp"
expect_ok "$CLADE" group join --state "$T/a4" --response "$M/b4.resp"
expect_fields a4 oem-b member_id=1.3 encryption_key_fingerprint="$enc_b" \
  oem_root_fingerprint="$oem_fp"

# Policy and OEM root on a member's copy.
expect_ok "$CLADE" group policy --state "$T/a3" --group oem-a --show
expect_out "allow: any genuine HSM"
expect_out "deny: none"
expect_ok "$CLADE" group policy --state "$T/a3" --group oem-a --allow SN-A4
expect_out "allow: SN-A4"
expect_fields a3 oem-a "allow=['SN-A4']"
expect_fields a1 oem-a "allow=[]"
expect_ok "$CLADE" group trust-oem --state "$T/a3" --group oem-a --oem-root "$T/oem.crt"
expect_out "$oem_fp"
expect_fields a3 oem-a oem_root_fingerprint="$oem_fp"
expect_ok "$CLADE" group list --state "$T/a3"
expect_out "OEM root: $oem_fp"
expect_fail 1 "clade: error:" "$CLADE" group trust-oem --state "$T/a3" --group oem-a \
  --oem-root "$T/oem.key"
expect_fail 2 "usage error" "$CLADE" group policy --state "$T/a3" --group oem-a --allow X --deny Y
expect_fail 2 "usage error" "$CLADE" group policy --state "$T/a3" --group oem-a --show --deny Y
expect_fail 2 "usage error" "$CLADE" group policy --state "$T/a3" --group oem-a
expect_fail 2 "usage error" "$CLADE" group policy --group oem-a --show

done_checks
