// The HSM daemon in-process on a loopback port chosen at run time, and client certificates:
// issuing and checking them, and the authorization of each call by the caller's certificate —
// including a counterfeit HSM presenting a chain the TLS layer alone would not judge.
#include <sstream>

#include "hsm/client_cert.h"
#include "hsm/world.h"
#include "rpc/client.h"
#include "rpc/server.h"

namespace clade::hsm::testing {
namespace {

using ::clade::testing::StatusIs;
using ::testing::HasSubstr;

std::string Pem(const crypto::SecretBytes& s) { return std::string(s.RevealSecretAsString()); }

rpc::ClientCredentials ClientCreds(const IssuedClient& c) {
  return {crypto::Certificate::ChainToPem(c.chain), Pem(c.key.ToPkcs8Pem()), c.supplier_root.Pem()};
}

rpc::ClientCredentials HsmCreds(const Hsm& h, const crypto::Certificate& root) {
  auto key = h.IdentityKey();
  EXPECT_TRUE(key.ok());
  return {crypto::Certificate::ChainToPem(h.IdentityChain()), Pem(key->ToPkcs8Pem()), root.Pem()};
}

class ClientCertTest : public World {};

TEST_F(ClientCertTest, IssuedCertVerifiesWithItsRoleOnEveryMember) {
  Hsm& a = Make("SN-A");
  Hsm& b = Make("SN-B");
  std::string gid = Found(a, "Acme");
  Enroll(a, b, gid);
  auto line = IssueClientCert(a, gid, kRoleLine);
  ASSERT_OK(line);
  ASSERT_EQ(line->chain.size(), 4u);
  for (Hsm* h : {&a, &b}) {
    auto v = VerifyClientCert(*h, line->chain[0]);
    ASSERT_OK(v);
    EXPECT_EQ(v->role, "line");
    EXPECT_EQ(v->group_id, gid);
  }
}

TEST_F(ClientCertTest, RefusesAnotherGroupAnUnknownRoleAndOtherKinds) {
  Hsm& a = Make("SN-A");
  Hsm& c = Make("SN-C");
  std::string gid = Found(a, "Acme");
  Found(c, "Other");
  auto op = IssueClientCert(a, gid, kRoleOperator);
  ASSERT_OK(op);
  EXPECT_THAT(VerifyClientCert(c, op->chain[0]),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("is not issued by the CA of any group of this HSM")));
  EXPECT_THAT(IssueClientCert(a, gid, "admin"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("role 'admin'")));
  // An HSM identity certificate is not a client certificate.
  EXPECT_FALSE(VerifyClientCert(a, a.identity().identity).ok());
}

class DaemonTest : public World {
 protected:
  // Starts a daemon on SN-A's state (closing the test's own handle to it first).
  void Serve(const std::string& serial) {
    hsms_[serial].reset();
    auto d = rpc::Daemon::Start(StateDir(serial), "127.0.0.1:0", log_);
    ASSERT_OK(d);
    daemon_ = *std::move(d);
    ASSERT_THAT(daemon_->address(), HasSubstr("127.0.0.1:"));
    EXPECT_THAT(daemon_->address(), ::testing::Not(::testing::EndsWith(":0")));
  }
  std::unique_ptr<rpc::HsmClient> Connect(const rpc::ClientCredentials& c) {
    auto client = rpc::HsmClient::Connect(daemon_->address(), c);
    EXPECT_TRUE(client.ok()) << client.status();
    return *std::move(client);
  }
  void TearDown() override {
    if (daemon_) daemon_->Shutdown(1);
  }
  std::ostringstream log_;
  std::unique_ptr<rpc::Daemon> daemon_;
};

TEST_F(DaemonTest, EveryCallChecksTheCallersCertificateAndRole) {
  Hsm& a = Make("SN-A");
  Hsm& b = Make("SN-B");
  Hsm& fake = Make("CF-1", /*counterfeit=*/true);
  std::string gid = Found(a, "Acme");
  crypto::Certificate root = a.supplier_root();
  auto line = IssueClientCert(a, gid, kRoleLine);
  auto op = IssueClientCert(a, gid, kRoleOperator);
  ASSERT_OK(line);
  ASSERT_OK(op);
  rpc::ClientCredentials peer = HsmCreds(b, root);
  rpc::ClientCredentials counterfeit = HsmCreds(fake, root);
  Serve("SN-A");

  auto as_line = Connect(ClientCreds(*line));
  auto status = as_line->Status();
  ASSERT_OK(status);
  EXPECT_EQ(status->serial(), "SN-A");
  EXPECT_EQ(status->state(), "serving");
  EXPECT_THAT(as_line->ExportAudit(), StatusIs(absl::StatusCode::kPermissionDenied,
                                               HasSubstr("role 'line' may not call ExportAudit")));
  v1::AnnounceRequest ann;
  ann.set_group("Acme");
  EXPECT_THAT(as_line->Announce(ann), StatusIs(absl::StatusCode::kPermissionDenied,
                                               HasSubstr("role 'line' may not call Announce")));

  auto as_op = Connect(ClientCreds(*op));
  auto exp = as_op->ExportAudit();
  ASSERT_OK(exp);
  EXPECT_FALSE(exp->export_message().empty());

  // A genuine peer HSM may ask for status; a counterfeit one is refused by the server itself.
  ASSERT_OK(Connect(peer)->Status());
  EXPECT_THAT(Connect(counterfeit)->Status(),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("peer HSM is not genuine")));
  // No client certificate: the handshake fails.
  EXPECT_FALSE(Connect({"", "", root.Pem()})->Status().ok());

  daemon_->Shutdown(1);
  daemon_.reset();
  std::string log = log_.str();
  EXPECT_THAT(log, HasSubstr("hsm=SN-A member=1 event=start"));
  EXPECT_THAT(log, HasSubstr("event=refused rpc=ExportAudit"));
  EXPECT_THAT(log, HasSubstr("event=stopped"));
}

TEST_F(DaemonTest, OnlineEnrollmentRunsTheSameChecks) {
  Hsm& a = Make("SN-A");
  std::string gid = Found(a, "Acme");
  Hsm& b = Make("SN-B");
  crypto::Certificate root = a.supplier_root();
  Serve("SN-A");
  auto client = Connect(HsmCreds(b, root));
  v1::AnnounceRequest ann_req;
  ann_req.set_group(gid);
  auto ann = client->Announce(ann_req);
  ASSERT_OK(ann);
  auto request = RequestEnrollment(b, AsSpan(ann->announcement()));
  ASSERT_OK(request);
  v1::AdmitRequest adm_req;
  adm_req.set_request(AsString(*request));
  auto adm = client->Admit(adm_req);
  ASSERT_OK(adm);
  EXPECT_EQ(adm->member_id(), "1.1");
  auto joined = Join(b, AsSpan(adm->response()));
  ASSERT_OK(joined);
  EXPECT_EQ(joined->member_id, "1.1");
  // The same request again: the announcement is used up.
  EXPECT_FALSE(client->Admit(adm_req).ok());
}

// An HSM in two groups keeps them apart on the network too: a client of one group cannot act
// for the other, even with the right role.
TEST_F(DaemonTest, ClientOfOneGroupCannotActForAnother) {
  Hsm& a = Make("SN-A");
  Hsm& b = Make("SN-B");
  Hsm& c = Make("SN-C");
  std::string acme = Found(a, "Acme");
  std::string other = Found(b, "Other");
  Enroll(b, a, other);  // SN-A is in both groups
  auto op = IssueClientCert(a, acme, kRoleOperator);
  ASSERT_OK(op);
  crypto::Certificate root = a.supplier_root();
  rpc::ClientCredentials candidate = HsmCreds(c, root);
  Serve("SN-A");
  auto as_op = Connect(ClientCreds(*op));
  v1::AnnounceRequest ann;
  ann.set_group(other);
  EXPECT_THAT(as_op->Announce(ann), StatusIs(absl::StatusCode::kPermissionDenied,
                                             HasSubstr("(role operator) is a client of group " +
                                                       acme + ", not of group " + other)));
  // A request for the other group, announced to a peer HSM, cannot be admitted by this operator.
  auto as_peer = Connect(candidate);
  auto real = as_peer->Announce(ann);
  ASSERT_OK(real);
  daemon_->Shutdown(1);
  daemon_.reset();
  Hsm& c_again = Reopen("SN-C");
  auto request = RequestEnrollment(c_again, AsSpan(real->announcement()));
  ASSERT_OK(request);
  Serve("SN-A");
  v1::AdmitRequest adm;
  adm.set_request(AsString(*request));
  EXPECT_THAT(Connect(ClientCreds(*op))->Admit(adm),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("not of group " + other)));
}

}  // namespace
}  // namespace clade::hsm::testing
