// The HSM daemon in-process on a loopback port chosen at run time, and client certificates:
// issuing and checking them, and the authorization of each call by the caller's certificate —
// including a counterfeit HSM presenting a chain the TLS layer alone would not judge. Then jobs
// over the network (GetJob), Provision streams (order, per-device codes, cancel) and a client
// that finds a stopped daemon gone and its restart at the same address.
#include <sstream>
#include <thread>

#include "hsm/client_cert.h"
#include "hsm/job.h"
#include "hsm/world.h"
#include "oem/oem.h"
#include "rpc/client.h"
#include "rpc/server.h"

namespace clade::hsm::testing {
namespace {

using ::clade::testing::StatusIs;
using ::testing::HasSubstr;

rpc::ClientCredentials ClientCreds(const IssuedClient& c) {
  return {crypto::Certificate::ChainToPem(c.chain), c.key.ToPkcs8Pem(), c.supplier_root.Pem()};
}

rpc::ClientCredentials HsmCreds(const Hsm& h, const crypto::Certificate& root) {
  auto key = h.IdentityKey();
  EXPECT_TRUE(key.ok());
  return {crypto::Certificate::ChainToPem(h.IdentityChain()), key->ToPkcs8Pem(), root.Pem()};
}

constexpr char kDeviceProfile[] =
    R"({"product": "Sensor", "subject": {"CN": "{product} {uid}"}, )"
    R"("validity": {"days": 30}, "key_usage": ["digitalSignature"], "key_mode": "device"})";

std::string NewPublicKeyPem() {
  auto key = crypto::PrivateKey::Generate(crypto::Curve::kP256);
  EXPECT_TRUE(key.ok()) << key.status();
  return key.ok() ? key->Public().ToPem() : "";
}

class ClientCertTest : public World {};

TEST_F(ClientCertTest, IssuedCertVerifiesWithItsRoleOnEveryMember) {
  Hsm& a = Make("SN-A");
  Hsm& b = Make("SN-B");
  std::string gid = Found(a, "Acme");
  Enroll(a, b, gid);
  auto line = IssueClientCert(a, gid, ClientRole::kLine);
  ASSERT_OK(line);
  ASSERT_EQ(line->chain.size(), 4u);
  for (Hsm* h : {&a, &b}) {
    auto v = VerifyClientCert(*h, line->chain[0]);
    ASSERT_OK(v);
    EXPECT_EQ(v->role, ClientRole::kLine);
    EXPECT_EQ(RoleName(v->role), "line");
    EXPECT_EQ(v->group_id, gid);
  }
}

TEST_F(ClientCertTest, RefusesAnotherGroupAnUnknownRoleAndOtherKinds) {
  Hsm& a = Make("SN-A");
  Hsm& c = Make("SN-C");
  std::string gid = Found(a, "Acme");
  Found(c, "Other");
  auto op = IssueClientCert(a, gid, ClientRole::kOperator);
  ASSERT_OK(op);
  EXPECT_THAT(VerifyClientCert(c, op->chain[0]),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("is not issued by the CA of any group of this HSM")));
  // A role is issued only as a ClientRole; its text is read only through ParseRole.
  EXPECT_THAT(ParseRole("admin"),
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
  // An OEM package of job `job_id` for `group_id`, whose founder `h` is made to trust the OEM
  // (before the daemon opens its state).
  std::string PackageFor(Hsm& h, const std::string& group_id, const std::string& job_id) {
    auto o = oem::Oem::Init(dir_.File("oem-" + job_id), "Acme Devices");
    EXPECT_TRUE(o.ok()) << o.status();
    if (!o.ok()) return "";
    absl::Status trusted = TrustOem(h, group_id, o->root());
    EXPECT_OK(trusted);
    auto ex = ExportGroup(h, group_id);
    EXPECT_TRUE(ex.ok()) << ex.status();
    if (!ex.ok()) return "";
    oem::PackageOptions opts;
    opts.job_id = job_id;
    opts.group_export_dir = dir_.File("gx-" + job_id);
    opts.pinned_supplier_root = supplier_->root();
    absl::Status written = WriteGroupExport(*ex, opts.group_export_dir);
    EXPECT_OK(written);
    opts.profile_json = kDeviceProfile;
    auto pkg = o->Package(opts);
    EXPECT_TRUE(pkg.ok()) << pkg.status();
    return pkg.ok() ? AsString(pkg->package) : "";
  }
  static v1::ProvisionRequest Device(const std::string& uid, uint64_t tag, bool reissue = false) {
    v1::ProvisionRequest r;
    r.set_job_id("J-1");
    r.set_uid(uid);
    r.set_public_key_pem(NewPublicKeyPem());
    r.set_tag(tag);
    r.set_reissue(reissue);
    return r;
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
  auto line = IssueClientCert(a, gid, ClientRole::kLine);
  auto op = IssueClientCert(a, gid, ClientRole::kOperator);
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

  // A line client sees its own group only.
  ASSERT_EQ(status->memberships_size(), 1);
  EXPECT_EQ(status->memberships(0).group_id(), gid);
  EXPECT_EQ(status->memberships(0).member_id(), "1");
  // A genuine peer HSM may ask for status, and learns no group; it may not announce (only the
  // group's operator invites). A counterfeit one is refused by the server itself.
  ASSERT_OK_AND_ASSIGN(v1::StatusResponse peer_status, Connect(peer)->Status());
  EXPECT_EQ(peer_status.serial(), "SN-A");
  EXPECT_EQ(peer_status.memberships_size(), 0);
  EXPECT_THAT(Connect(peer)->Announce(ann),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("role 'hsm' may not call Announce (allowed: operator)")));
  EXPECT_THAT(Connect(counterfeit)->Status(),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("peer HSM is not genuine")));
  // No client certificate: the handshake fails.
  EXPECT_FALSE(Connect({"", {}, root.Pem()})->Status().ok());

  daemon_->Shutdown(1);
  daemon_.reset();
  std::string log = log_.str();
  EXPECT_THAT(log, HasSubstr("hsm=SN-A member=1 event=start"));
  EXPECT_THAT(log, HasSubstr("event=refused rpc=ExportAudit"));
  EXPECT_THAT(log, HasSubstr("event=stopped"));
}

TEST_F(DaemonTest, OnlineEnrollmentNeedsTheOperatorsInvitationForThatSerial) {
  Hsm& a = Make("SN-A");
  std::string gid = Found(a, "Acme");
  Hsm& b = Make("SN-B");
  Hsm& c = Make("SN-C");
  crypto::Certificate root = a.supplier_root();
  auto op = IssueClientCert(a, gid, ClientRole::kOperator);
  ASSERT_OK(op);
  Serve("SN-A");
  auto as_op = Connect(ClientCreds(*op));
  auto as_b = Connect(HsmCreds(b, root));
  auto as_c = Connect(HsmCreds(c, root));

  // An announcement that names no HSM is not an online invitation.
  v1::AnnounceRequest open_req;
  open_req.set_group(gid);
  ASSERT_OK_AND_ASSIGN(v1::AnnounceResponse open_ann, as_op->Announce(open_req));
  ASSERT_OK_AND_ASSIGN(Bytes open_request, RequestEnrollment(b, AsSpan(open_ann.announcement())));
  v1::AdmitRequest open_adm;
  open_adm.set_request(AsString(open_request));
  EXPECT_THAT(as_b->Admit(open_adm),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("the announcement names no HSM; online, an HSM is admitted only "
                                 "on an announcement made for its serial")));

  // The operator invites SN-B.
  v1::AnnounceRequest ann_req;
  ann_req.set_group(gid);
  ann_req.set_for_serial("SN-B");
  ASSERT_OK_AND_ASSIGN(v1::AnnounceResponse ann, as_op->Announce(ann_req));
  // SN-C, not invited, refuses the announcement itself, and the sponsor refuses SN-B's request
  // sent by SN-C.
  EXPECT_THAT(RequestEnrollment(c, AsSpan(ann.announcement())),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("the announcement admits only SN-B, not SN-C")));
  ASSERT_OK_AND_ASSIGN(Bytes request, RequestEnrollment(b, AsSpan(ann.announcement())));
  v1::AdmitRequest adm_req;
  adm_req.set_request(AsString(request));
  EXPECT_THAT(as_c->Admit(adm_req),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("request is signed by SN-B, not by the HSM that sent it")));
  ASSERT_OK_AND_ASSIGN(v1::AdmitResponse adm, as_b->Admit(adm_req));
  EXPECT_EQ(adm.member_id(), "1.1");
  auto joined = Join(b, AsSpan(adm.response()));
  ASSERT_OK(joined);
  EXPECT_EQ(joined->member_id, "1.1");
  // The same request again: the announcement is used up.
  EXPECT_THAT(as_b->Admit(adm_req), StatusIs(absl::StatusCode::kPermissionDenied,
                                             HasSubstr("announcement was already used")));
  daemon_->Shutdown(1);
  daemon_.reset();
  EXPECT_THAT(log_.str(), HasSubstr("event=announce group=" + gid + " for=SN-B"));
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
  auto op = IssueClientCert(a, acme, ClientRole::kOperator);
  ASSERT_OK(op);
  Serve("SN-A");
  auto as_op = Connect(ClientCreds(*op));
  v1::AnnounceRequest ann;
  ann.set_group(other);
  EXPECT_THAT(as_op->Announce(ann), StatusIs(absl::StatusCode::kPermissionDenied,
                                             HasSubstr("(role operator) is a client of group " +
                                                       acme + ", not of group " + other)));
  // A request for the other group, announced by that group's operator (here offline), cannot be
  // admitted by this operator.
  daemon_->Shutdown(1);
  daemon_.reset();
  ASSERT_OK_AND_ASSIGN(Bytes real, Announce(Reopen("SN-A"), other, AnnounceOptions{3600, "SN-C"}));
  auto request = RequestEnrollment(c, real);
  ASSERT_OK(request);
  Serve("SN-A");
  v1::AdmitRequest adm;
  adm.set_request(AsString(*request));
  EXPECT_THAT(Connect(ClientCreds(*op))->Admit(adm),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("not of group " + other)));
}

TEST_F(DaemonTest, GetJobReturnsThePackageAsImportedToClientsOfItsGroup) {
  Hsm& a = Make("SN-A");
  Hsm& b = Make("SN-B");
  std::string acme = Found(a, "Acme");
  std::string other = Found(b, "Other");
  Enroll(b, a, other);  // SN-A is in both groups
  std::string package = PackageFor(a, acme, "J-1");
  ASSERT_FALSE(package.empty());
  auto line = IssueClientCert(a, acme, ClientRole::kLine);
  auto other_line = IssueClientCert(b, other, ClientRole::kLine);
  ASSERT_OK(line);
  ASSERT_OK(other_line);
  rpc::ClientCredentials peer = HsmCreds(b, a.supplier_root());
  Serve("SN-A");

  auto as_line = Connect(ClientCreds(*line));
  v1::ImportJobRequest imp;
  imp.set_package(package);
  ASSERT_OK(as_line->ImportJob(imp));
  ASSERT_OK_AND_ASSIGN(v1::GetJobResponse job, as_line->GetJob("J-1"));
  EXPECT_EQ(job.package(), package);
  EXPECT_EQ(job.group_id(), acme);
  EXPECT_EQ(job.product(), "Sensor");
  EXPECT_EQ(job.key_mode(), "device");

  EXPECT_THAT(
      as_line->GetJob("J-404"),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("job J-404 is not imported on this member")));
  // A line of the other group of the same HSM does not see the job: its group selects.
  EXPECT_THAT(Connect(ClientCreds(*other_line))->GetJob("J-1"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("job J-1 is not imported on this member for group " + other)));
  // Jobs travel from the OEM to the line, not between HSMs over this call.
  EXPECT_THAT(Connect(peer)->GetJob("J-1"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("role 'hsm' may not call GetJob (allowed: line, operator)")));

  daemon_->Shutdown(1);
  daemon_.reset();
  EXPECT_THAT(log_.str(), HasSubstr("event=job.get job=J-1 group=" + acme + " caller=\"line:"));
}

TEST_F(DaemonTest, ProvisionStreamAnswersInOrderWithACodePerDevice) {
  Hsm& a = Make("SN-A");
  std::string acme = Found(a, "Acme");
  std::string package = PackageFor(a, acme, "J-1");
  ASSERT_OK(ImportJob(a, AsSpan(package)));
  auto line = IssueClientCert(a, acme, ClientRole::kLine);
  ASSERT_OK(line);
  Serve("SN-A");
  auto client = Connect(ClientCreds(*line));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<rpc::ProvisionStream> stream, client->OpenProvisionStream());
  client.reset();  // the stream holds the channel

  // Every request goes out before the first answer is read: all 20 in flight at once.
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(stream->Write(Device("DEV-" + std::to_string(i), 100 + i)));
  }
  ASSERT_TRUE(stream->Write(Device("DEV-3", 200)));
  ASSERT_TRUE(stream->Write(Device("DEV-NEW", 201, /*reissue=*/true)));
  stream->WritesDone();
  EXPECT_FALSE(stream->Write(Device("DEV-LATE", 202)));
  for (int i = 0; i < 20; ++i) {
    v1::ProvisionResponse r;
    ASSERT_TRUE(stream->Read(&r)) << i;
    EXPECT_EQ(r.tag(), 100u + i);
    EXPECT_EQ(r.uid(), "DEV-" + std::to_string(i));
    EXPECT_EQ(r.code(), 0) << r.error();
    EXPECT_EQ(r.error(), "");
    EXPECT_FALSE(r.cert_serial().empty());
    EXPECT_FALSE(r.device_cert().empty());
    EXPECT_FALSE(r.record().empty());
  }
  v1::ProvisionResponse dup;
  ASSERT_TRUE(stream->Read(&dup));
  EXPECT_EQ(dup.tag(), 200u);
  EXPECT_EQ(dup.code(), static_cast<int>(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(dup.error(), HasSubstr("device uid DEV-3 was already provisioned for job J-1"));
  EXPECT_TRUE(dup.device_cert().empty());
  v1::ProvisionResponse never;
  ASSERT_TRUE(stream->Read(&never));
  EXPECT_EQ(never.tag(), 201u);
  EXPECT_EQ(never.code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(never.error(), HasSubstr("device uid DEV-NEW was never provisioned for job J-1"));
  v1::ProvisionResponse none;
  EXPECT_FALSE(stream->Read(&none));
  EXPECT_OK(stream->Finish());
}

TEST_F(DaemonTest, StatusShowsAClientTheMemberCertificateForTheKeyOfItsTlsCertificate) {
  Hsm& a = Make("SN-A");
  Hsm& b = Make("SN-B");
  std::string gid = Found(a, "Acme");
  crypto::Certificate root = a.supplier_root();
  crypto::Certificate identity = a.IdentityChain()[0];
  auto line = IssueClientCert(a, gid, ClientRole::kLine);
  ASSERT_OK(line);
  auto ex = ExportGroup(a, gid);
  ASSERT_OK(ex);
  rpc::ClientCredentials peer = HsmCreds(b, root);
  Serve("SN-A");

  std::string server_pem;
  auto status = Connect(ClientCreds(*line))->Status(5, &server_pem);
  ASSERT_OK(status);
  EXPECT_EQ(AsString(ex->member.Der()), status->member_cert());
  ASSERT_OK_AND_ASSIGN(auto server_cert, crypto::Certificate::FromPem(server_pem));
  EXPECT_EQ(server_cert, identity);
  EXPECT_TRUE(ex->member.SubjectKey().Equals(server_cert.SubjectKey()));
  // A peer HSM belongs to no group of the caller's: no member certificate.
  auto peer_status = Connect(peer)->Status(5);
  ASSERT_OK(peer_status);
  EXPECT_TRUE(peer_status->member_cert().empty());
}

TEST_F(DaemonTest, CancelFromAnotherThreadEndsAProvisionStream) {
  Hsm& a = Make("SN-A");
  std::string acme = Found(a, "Acme");
  std::string package = PackageFor(a, acme, "J-1");
  ASSERT_OK(ImportJob(a, AsSpan(package)));
  auto line = IssueClientCert(a, acme, ClientRole::kLine);
  ASSERT_OK(line);
  Serve("SN-A");
  auto client = Connect(ClientCreds(*line));
  ASSERT_OK_AND_ASSIGN(auto stream, client->OpenProvisionStream());
  ASSERT_TRUE(stream->Write(Device("DEV-1", 1)));
  v1::ProvisionResponse r;
  ASSERT_TRUE(stream->Read(&r));
  EXPECT_EQ(r.code(), 0) << r.error();

  // Whether the cancel lands before or during the Read below, the Read ends without an answer.
  std::thread canceller([&stream] { stream->Cancel(); });
  EXPECT_FALSE(stream->Read(&r));
  canceller.join();
  EXPECT_FALSE(stream->Write(Device("DEV-2", 2)));
  EXPECT_THAT(stream->Finish(), StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  // The daemon goes on serving.
  EXPECT_OK(client->Status(5));
  // A stream dropped unfinished is cancelled by its destructor.
  ASSERT_OK_AND_ASSIGN(auto dropped, client->OpenProvisionStream());
  ASSERT_TRUE(dropped->Write(Device("DEV-3", 3)));
  dropped.reset();
  EXPECT_OK(client->Status(5));
}

TEST_F(DaemonTest, StatusFindsAStoppedDaemonGoneAndItsRestartBack) {
  Hsm& a = Make("SN-A");
  std::string acme = Found(a, "Acme");
  auto line = IssueClientCert(a, acme, ClientRole::kLine);
  ASSERT_OK(line);
  Serve("SN-A");
  std::string address = daemon_->address();
  auto client = Connect(ClientCreds(*line));
  ASSERT_OK(client->Status(5));

  daemon_->Shutdown(0);
  daemon_.reset();
  auto gone = client->Status(2);
  ASSERT_FALSE(gone.ok());
  EXPECT_THAT(gone.status().code(), ::testing::AnyOf(absl::StatusCode::kUnavailable,
                                                     absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(gone.status().message(), HasSubstr("Status on " + address));

  // The same client reaches a daemon started again at the same address (the channel retries
  // within a second; each probe fails fast until then).
  auto again = rpc::Daemon::Start(StateDir("SN-A"), address, log_);
  ASSERT_OK(again);
  daemon_ = *std::move(again);
  absl::StatusOr<v1::StatusResponse> back = absl::UnknownError("not probed");
  for (int i = 0; i < 60 && !back.ok(); ++i) {
    back = client->Status(2);
    if (!back.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  ASSERT_OK(back);
  EXPECT_EQ(back->serial(), "SN-A");
}

}  // namespace
}  // namespace clade::hsm::testing
