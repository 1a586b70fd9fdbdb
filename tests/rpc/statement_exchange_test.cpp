// Group statements over the network, with two daemons in-process on loopback ports chosen at run
// time: a client keeps the newest statement a member returns (trailing metadata) in its statement
// file and hands it to the next member it calls, which adopts it before it judges the caller;
// PushStatement names its refusals.
#include <filesystem>
#include <sstream>

#include "base/files.h"
#include "hsm/client_cert.h"
#include "hsm/group_statement.h"
#include "hsm/world.h"
#include "rpc/client.h"
#include "rpc/server.h"

namespace clade::hsm::testing {
namespace {

using ::clade::testing::StatusIs;
using ::testing::HasSubstr;

class StatementExchangeTest : public World {
 protected:
  void SetUp() override {
    World::SetUp();
    if (HasFatalFailure()) return;
    Hsm& a = Make("SN-A");
    Hsm& b = Make("SN-B");
    Hsm& c = Make("SN-C");
    g_ = Found(a, "Acme");
    ASSERT_EQ(Enroll(a, b, g_), "1.1");
    ASSERT_EQ(Enroll(a, c, g_), "1.2");
    auto op = IssueClientCert(a, g_, ClientRole::kOperator);
    ASSERT_OK(op);
    op_ = rpc::ClientCredentials{crypto::Certificate::ChainToPem(op->chain), op->key.ToPkcs8Pem(),
                                 op->supplier_root.Pem(), dir_.File("op-statement.msg")};
    auto line = IssueClientCert(b, g_, ClientRole::kLine);
    ASSERT_OK(line);
    line_of_b_ = rpc::ClientCredentials{crypto::Certificate::ChainToPem(line->chain),
                                        line->key.ToPkcs8Pem(), line->supplier_root.Pem()};
    auto st1 = RevokeMember(a, g_, "1.1", "");
    ASSERT_OK(st1);
    st1_ = AsString(st1->message);
    auto st2 = RevokeClient(a, g_, "c0ffee");
    ASSERT_OK(st2);
    st2_ = AsString(st2->message);
    for (const char* s : {"SN-A", "SN-C"}) hsms_[s].reset();
    auto da = rpc::Daemon::Start(StateDir("SN-A"), "127.0.0.1:0", log_a_);
    ASSERT_OK(da);
    a_ = *std::move(da);
    auto dc = rpc::Daemon::Start(StateDir("SN-C"), "127.0.0.1:0", log_c_);
    ASSERT_OK(dc);
    c_ = *std::move(dc);
  }
  void TearDown() override {
    if (a_) a_->Shutdown(1);
    if (c_) c_->Shutdown(1);
  }
  std::unique_ptr<rpc::HsmClient> Connect(const rpc::Daemon& d, const rpc::ClientCredentials& c) {
    auto client = rpc::HsmClient::Connect(d.address(), c);
    EXPECT_TRUE(client.ok()) << client.status();
    return *std::move(client);
  }

  std::string g_, st1_, st2_;
  rpc::ClientCredentials op_, line_of_b_;
  std::ostringstream log_a_, log_c_;
  std::unique_ptr<rpc::Daemon> a_, c_;
};

TEST_F(StatementExchangeTest, AClientCarriesTheNewestStatementFromOneMemberToTheNext) {
  ASSERT_FALSE(std::filesystem::exists(op_.statement_file));
  // 1.2 knows nothing yet: 1.1's line is served.
  ASSERT_OK(Connect(*c_, line_of_b_)->Status());
  // The founder hands its statement back with the answer; the client keeps it.
  ASSERT_OK(Connect(*a_, op_)->Status());
  auto kept = ReadFileString(op_.statement_file, kMaxStatementSize);
  ASSERT_OK(kept);
  EXPECT_EQ(*kept, st2_);
  // The next call, to 1.2, carries it; 1.2 adopts it before it judges the caller.
  ASSERT_OK(Connect(*c_, op_)->Status());
  EXPECT_THAT(log_c_.str(), HasSubstr("event=statement.adopted rpc=Status"));
  EXPECT_THAT(log_c_.str(), HasSubstr("sequence=2"));
  EXPECT_THAT(Connect(*c_, line_of_b_)->Status(),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("was issued by member 1.1, revoked in group " + g_)));
}

TEST_F(StatementExchangeTest, PushStatementAdoptsOnceAndNamesItsRefusals) {
  auto op = Connect(
      *c_, rpc::ClientCredentials{op_.chain_pem, crypto::SecretBytes(op_.key_pem.RevealSecret()),
                                  op_.root_pem});
  auto first = op->PushStatement(st1_);
  ASSERT_OK(first);
  EXPECT_TRUE(first->adopted());
  EXPECT_EQ(first->sequence(), 1u);
  auto newer = op->PushStatement(st2_);
  ASSERT_OK(newer);
  EXPECT_TRUE(newer->adopted());
  auto again = op->PushStatement(st2_);
  ASSERT_OK(again);
  EXPECT_FALSE(again->adopted());
  EXPECT_EQ(again->statement(), st2_);
  EXPECT_THAT(op->PushStatement(st1_),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("statement 1 is older than the held statement 2")));
  EXPECT_THAT(op->PushStatement(st2_.substr(0, st2_.size() / 2)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed message")));
  EXPECT_THAT(log_c_.str(), HasSubstr("event=statement.refused rpc=PushStatement"));
}

TEST_F(StatementExchangeTest, ARevokedMembersHsmIsRefusedAsAPeer) {
  Hsm& b = *hsms_["SN-B"];
  auto key = b.IdentityKey();
  ASSERT_OK(key);
  rpc::ClientCredentials peer{crypto::Certificate::ChainToPem(b.IdentityChain()), key->ToPkcs8Pem(),
                              b.supplier_root().Pem()};
  EXPECT_THAT(Connect(*a_, peer)->Status(),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("peer HSM SN-B is member 1.1, revoked in group " + g_)));
}

}  // namespace
}  // namespace clade::hsm::testing
