// The line's run loop (line/core.h) driven through its seams (line/seams.h) by in-process fakes:
// members that answer from real Provisioners on the HSMs of a World (group Acme: SN-A founder 1,
// SN-B member 1.1; SN-C of another group), the real DeviceDb in the test's directory, chips and a
// programmer in memory, and a clock that moves only when the test (or the core's pause) moves it.
// Every trigger is a condition — a member holding requests, a line the core said — never a time,
// so the counts of each summary and the rows of the record are exact.
#include "line/core.h"

#include <condition_variable>
#include <list>
#include <mutex>
#include <thread>

#include "hsm/job.h"
#include "line/device_db.h"
#include "line/world.h"

namespace clade::hsm::testing {
namespace {

using ::clade::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::chrono_literals;

// How long a test waits for a condition before it calls it failed; never reached when all is well.
constexpr auto kPatience = 60s;

// Steady time that stands still until Advance (or the core's Pause, which advances it) moves it;
// a wait of the core ends when it is notified or when Advance passes its deadline.
class FakeClock : public line::LineClock {
 public:
  explicit FakeClock(int64_t unix0) : unix0_(unix0) {}
  TimePoint SteadyNow() override {
    std::lock_guard<std::mutex> l(mu_);
    return now_;
  }
  int64_t UnixNow() override {
    std::lock_guard<std::mutex> l(mu_);
    return unix0_ + std::chrono::duration_cast<std::chrono::seconds>(now_ - TimePoint()).count();
  }
  void Pause(std::chrono::milliseconds d) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      ++pauses_;
    }
    Advance(d);
  }
  void WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 TimePoint deadline) override {
    std::list<Waiter>::iterator me;
    {
      // The deadline is checked and the waiter registered at once, so an Advance is never missed.
      std::lock_guard<std::mutex> l(mu_);
      if (now_ >= deadline) return;
      me = waiters_.insert(waiters_.end(), Waiter{&cv, lock.mutex()});
    }
    registered_.notify_all();
    cv.wait(lock);
    std::lock_guard<std::mutex> l(mu_);
    waiters_.erase(me);
  }
  void Advance(std::chrono::milliseconds d) {
    std::vector<Waiter> wake;
    {
      std::lock_guard<std::mutex> l(mu_);
      now_ += d;
      wake.assign(waiters_.begin(), waiters_.end());
    }
    // Under the waiter's own mutex: it is either still before its check or inside cv.wait.
    for (const Waiter& w : wake) {
      std::lock_guard<std::mutex> l(*w.mu);
      w.cv->notify_all();
    }
  }
  // Waits until `n` waits are under way (the run loop's and the prober's): each has read the
  // time it waits from, so an Advance now reaches them all.
  bool WaitForWaiters(size_t n) {
    std::unique_lock<std::mutex> l(mu_);
    return registered_.wait_for(l, kPatience, [&] { return waiters_.size() >= n; });
  }
  int pauses() {
    std::lock_guard<std::mutex> l(mu_);
    return pauses_;
  }
  std::chrono::milliseconds Elapsed() {
    std::lock_guard<std::mutex> l(mu_);
    return std::chrono::duration_cast<std::chrono::milliseconds>(now_ - TimePoint());
  }

 private:
  struct Waiter {
    std::condition_variable* cv;
    std::mutex* mu;
  };
  const int64_t unix0_;
  std::mutex mu_;
  TimePoint now_{};
  int pauses_ = 0;
  std::list<Waiter> waiters_;
  std::condition_variable registered_;
};

// What an answer released from hold is made of.
enum class Tamper {
  kNone,
  kWrongChip,    // a certificate for another key than the chip's
  kWrongSigner,  // issued and signed by another member of the group
};

void PrintTo(Tamper t, std::ostream* os) {
  *os << (t == Tamper::kNone ? "kNone" : t == Tamper::kWrongChip ? "kWrongChip" : "kWrongSigner");
}

class FakeMembers;

// One member at one address: a real HSM of the World behind the seams, with the test's hands on
// it (down or up, requests held from the nth on, a stream that breaks).
class FakeMember {
 public:
  FakeMember(FakeMembers& all, std::string address, Hsm& hsm, std::string group_id)
      : all_(all), address_(std::move(address)), hsm_(hsm), group_id_(std::move(group_id)) {}

  // --- the test's side
  void SetDown(bool down) {
    std::lock_guard<std::mutex> l(mu_);
    down_ = down;
  }
  // Requests number n, n+1, … (counted over this member's life, from 1) get no answer until
  // Release; with `issue_first` the member issues before it holds (its answer is what is lost).
  void HoldFrom(size_t n, bool issue_first = false) {
    std::lock_guard<std::mutex> l(mu_);
    hold_from_ = n;
    issue_first_ = issue_first;
  }
  // Waits until `n` requests are held on the stream in use.
  bool WaitHeld(size_t n) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, kPatience, [&] { return pipe_ && pipe_->held.size() >= n; });
  }
  // Answers the oldest held request, made as `tamper` says, and holds no more after it.
  void Release(Tamper tamper = Tamper::kNone) {
    std::lock_guard<std::mutex> l(mu_);
    if (!pipe_ || pipe_->held.empty()) {
      ADD_FAILURE() << "nothing held at " << address_;
      return;
    }
    Held h = std::move(pipe_->held.front());
    pipe_->held.pop_front();
    pipe_->answers.push_back(h.answer ? *std::move(h.answer) : AnswerLocked(h.req, tamper));
    cv_.notify_all();
  }
  void ReleaseAll() {
    std::lock_guard<std::mutex> l(mu_);
    hold_from_ = 0;
    while (pipe_ && !pipe_->held.empty()) {
      Held h = std::move(pipe_->held.front());
      pipe_->held.pop_front();
      pipe_->answers.push_back(h.answer ? *std::move(h.answer)
                                        : AnswerLocked(h.req, Tamper::kNone));
    }
    cv_.notify_all();
  }
  // The stream in use breaks (what it held is lost); with `down`, the member answers no more.
  void Break(bool down) {
    std::lock_guard<std::mutex> l(mu_);
    if (pipe_) pipe_->broken = true;
    down_ = down;
    hold_from_ = 0;
    cv_.notify_all();
  }
  size_t received() {
    std::lock_guard<std::mutex> l(mu_);
    return received_;
  }
  const std::string& address() const { return address_; }
  Hsm& hsm() { return hsm_; }
  const std::string& group_id() const { return group_id_; }

  // --- the core's side
  absl::StatusOr<line::MemberStatus> Status();
  absl::StatusOr<std::vector<uint8_t>> FetchJob(const std::string& job_id);
  absl::Status ImportJob(const std::vector<uint8_t>& package);
  absl::StatusOr<std::unique_ptr<line::AnswerStream>> OpenStream();

 private:
  friend class FakeStream;
  struct Held {
    v1::ProvisionRequest req;
    std::optional<v1::ProvisionResponse> answer;  // issued before it was held
  };
  struct Pipe {  // one Provision stream
    std::deque<v1::ProvisionResponse> answers;
    std::deque<Held> held;
    bool done_sending = false, cancelled = false, broken = false;
  };
  v1::ProvisionResponse AnswerLocked(const v1::ProvisionRequest& req, Tamper tamper);

  FakeMembers& all_;
  const std::string address_;
  Hsm& hsm_;
  const std::string group_id_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool down_ = false;
  size_t hold_from_ = 0;
  bool issue_first_ = false;
  size_t received_ = 0;
  std::shared_ptr<Pipe> pipe_;
};

class FakeStream : public line::AnswerStream {
 public:
  FakeStream(FakeMember& m, std::shared_ptr<FakeMember::Pipe> pipe)
      : m_(m), pipe_(std::move(pipe)) {}
  bool Send(const v1::ProvisionRequest& req) override {
    std::lock_guard<std::mutex> l(m_.mu_);
    if (pipe_->broken || pipe_->cancelled) return false;
    ++m_.received_;
    if (m_.hold_from_ > 0 && m_.received_ >= m_.hold_from_) {
      FakeMember::Held h{req, std::nullopt};
      if (m_.issue_first_) h.answer = m_.AnswerLocked(req, Tamper::kNone);
      pipe_->held.push_back(std::move(h));
    } else {
      pipe_->answers.push_back(m_.AnswerLocked(req, Tamper::kNone));
    }
    m_.cv_.notify_all();
    return true;
  }
  bool Receive(v1::ProvisionResponse* answer) override {
    std::unique_lock<std::mutex> l(m_.mu_);
    m_.cv_.wait(l, [&] {
      return !pipe_->answers.empty() || pipe_->broken || pipe_->cancelled ||
             (pipe_->done_sending && pipe_->held.empty());
    });
    if (pipe_->cancelled || pipe_->answers.empty()) return false;
    *answer = std::move(pipe_->answers.front());
    pipe_->answers.pop_front();
    return true;
  }
  void DoneSending() override {
    std::lock_guard<std::mutex> l(m_.mu_);
    pipe_->done_sending = true;
    m_.cv_.notify_all();
  }
  void Cancel() override {
    std::lock_guard<std::mutex> l(m_.mu_);
    pipe_->cancelled = true;
    m_.cv_.notify_all();
  }
  absl::Status Finish() override {
    std::lock_guard<std::mutex> l(m_.mu_);
    if (pipe_->broken) return absl::UnavailableError("the member at " + m_.address_ + " went away");
    if (pipe_->cancelled) return absl::CancelledError("cancelled by the line");
    return absl::OkStatus();
  }

 private:
  FakeMember& m_;
  std::shared_ptr<FakeMember::Pipe> pipe_;
};

class FakeLink : public line::MemberLink {
 public:
  explicit FakeLink(FakeMember& m) : m_(m) {}
  absl::StatusOr<line::MemberStatus> Status(int) override { return m_.Status(); }
  absl::StatusOr<std::vector<uint8_t>> FetchJob(const std::string& job_id) override {
    return m_.FetchJob(job_id);
  }
  absl::Status ImportJob(const std::vector<uint8_t>& package) override {
    return m_.ImportJob(package);
  }
  absl::StatusOr<std::unique_ptr<line::AnswerStream>> OpenStream() override {
    return m_.OpenStream();
  }

 private:
  FakeMember& m_;
};

// The members by address. One lock over every HSM (the core, its stream readers and the test
// reach them from several threads) and one Provisioner per HSM, as a daemon keeps per stream.
class FakeMembers : public line::MemberLinks {
 public:
  FakeMember& Add(const std::string& address, Hsm& hsm, const std::string& group_id) {
    auto m = std::make_unique<FakeMember>(*this, address, hsm, group_id);
    FakeMember& ref = *m;
    by_address_[address] = std::move(m);
    return ref;
  }
  FakeMember& at(const std::string& address) { return *by_address_.at(address); }
  absl::StatusOr<std::unique_ptr<line::MemberLink>> Connect(const std::string& address) override {
    auto it = by_address_.find(address);
    if (it == by_address_.end()) return absl::UnavailableError("nothing listens at " + address);
    return std::unique_ptr<line::MemberLink>(std::make_unique<FakeLink>(*it->second));
  }

  // What member `m` answers to `req`, as a daemon does (rpc/job_calls.cpp): a refusal carries its
  // status code and message.
  v1::ProvisionResponse Answer(FakeMember& m, const v1::ProvisionRequest& req, Tamper tamper) {
    std::lock_guard<std::mutex> l(hsm_mu_);
    v1::ProvisionResponse resp;
    resp.set_tag(req.tag());
    resp.set_uid(req.uid());
    absl::Status st = AnswerLocked(m, req, tamper, &resp);
    resp.set_code(static_cast<int32_t>(st.code()));
    if (!st.ok()) resp.set_error(std::string(st.message()));
    return resp;
  }
  template <typename F>
  auto WithHsm(F f) {
    std::lock_guard<std::mutex> l(hsm_mu_);
    return f();
  }
  Hsm* impostor = nullptr;  // who issues a kWrongSigner answer

 private:
  absl::Status AnswerLocked(FakeMember& m, const v1::ProvisionRequest& req, Tamper tamper,
                            v1::ProvisionResponse* resp) {
    DeviceRequest dr;
    dr.uid = req.uid();
    dr.reissue = req.reissue();
    ASSIGN_OR_RETURN(dr.device_key, crypto::PublicKey::FromPem(req.public_key_pem()));
    if (tamper == Tamper::kWrongChip) {
      ASSIGN_OR_RETURN(auto other, crypto::PrivateKey::Generate(crypto::Curve::kP256));
      dr.device_key = other.Public();
    }
    Hsm& issuer = tamper == Tamper::kWrongSigner ? *impostor : m.hsm();
    auto& p = provisioners_[&issuer];
    if (!p) {
      ASSIGN_OR_RETURN(p, Provisioner::Create(issuer, m.group_id(), req.job_id()));
    }
    ASSIGN_OR_RETURN(ProvisioningData d, p->Provision(dr));
    resp->set_device_cert(std::string(d.device_cert_der.begin(), d.device_cert_der.end()));
    resp->set_cert_serial(d.cert_serial);
    resp->set_record(std::string(d.record.begin(), d.record.end()));
    return absl::OkStatus();
  }

  std::map<std::string, std::unique_ptr<FakeMember>> by_address_;
  std::mutex hsm_mu_;
  std::map<Hsm*, std::unique_ptr<Provisioner>> provisioners_;
};

v1::ProvisionResponse FakeMember::AnswerLocked(const v1::ProvisionRequest& req, Tamper tamper) {
  return all_.Answer(*this, req, tamper);
}

absl::StatusOr<line::MemberStatus> FakeMember::Status() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (down_) return absl::UnavailableError("nothing answers at " + address_);
  }
  return all_.WithHsm([&]() -> absl::StatusOr<line::MemberStatus> {
    ASSIGN_OR_RETURN(GroupExport ex, ExportGroup(hsm_, group_id_));
    line::MemberStatus st;
    st.state = "serving";
    st.member_cert = std::string(ex.member.Der().begin(), ex.member.Der().end());
    st.server_cert_pem = hsm_.IdentityChain()[0].Pem();
    return st;
  });
}

absl::StatusOr<std::vector<uint8_t>> FakeMember::FetchJob(const std::string& job_id) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (down_) return absl::UnavailableError("nothing answers at " + address_);
  }
  return all_.WithHsm([&] { return JobPackageBytes(hsm_, group_id_, job_id); });
}

absl::Status FakeMember::ImportJob(const std::vector<uint8_t>& package) {
  return all_.WithHsm([&] { return hsm::ImportJob(hsm_, package).status(); });
}

absl::StatusOr<std::unique_ptr<line::AnswerStream>> FakeMember::OpenStream() {
  std::lock_guard<std::mutex> l(mu_);
  if (down_) return absl::UnavailableError("nothing answers at " + address_);
  pipe_ = std::make_shared<Pipe>();
  return std::unique_ptr<line::AnswerStream>(std::make_unique<FakeStream>(*this, pipe_));
}

// Chips in memory: a key each, and the serial a programmed one carries.
class FakeChips : public line::ChipSource {
 public:
  explicit FakeChips(size_t n) {
    for (size_t i = 1; i <= n; ++i) {
      std::string uid =
          "CHIP-" + std::string(6 - std::to_string(i).size(), '0') + std::to_string(i);
      auto key = crypto::PrivateKey::Generate(crypto::Curve::kP256);
      EXPECT_TRUE(key.ok()) << key.status();
      uids_.push_back(uid);
      pem_[uid] = key->Public().ToPem();
    }
  }
  const std::vector<std::string>& Uids() const override { return uids_; }
  absl::StatusOr<std::string> RequestPem(const std::string& uid, bool hsm_mode) const override {
    if (hsm_mode) return absl::InvalidArgumentError("chip " + uid + ": no transport certificate");
    return pem_.at(uid);
  }
  absl::StatusOr<std::optional<std::string>> ProgrammedSerial(
      const std::string& uid) const override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = programmed_.find(uid);
    if (it == programmed_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  std::string Where() const override { return "the test's chips"; }
  void SetProgrammed(const std::string& uid, const std::string& serial) {
    std::lock_guard<std::mutex> l(mu_);
    programmed_[uid] = serial;
  }
  std::map<std::string, std::string> programmed() const {
    std::lock_guard<std::mutex> l(mu_);
    return programmed_;
  }

 private:
  std::vector<std::string> uids_;
  std::map<std::string, std::string> pem_;
  mutable std::mutex mu_;
  std::map<std::string, std::string> programmed_;
};

class FakeProgrammer : public line::Programmer {
 public:
  explicit FakeProgrammer(FakeChips& chips) : chips_(chips) {}
  absl::Status Program(const std::string& uid, const line::ProgramInput& input,
                       const line::ProgramContext& context) override {
    if (input.device_cert_der.empty()) return absl::InvalidArgumentError("no certificate");
    chips_.SetProgrammed(uid, context.cert_serial);
    return absl::OkStatus();
  }
  std::string Name() const override { return "fake"; }

 private:
  FakeChips& chips_;
};

// What the core said, one line each, and a wait for a line.
class Said : public line::LineObserver {
 public:
  void Say(const std::string& line) override {
    std::lock_guard<std::mutex> l(mu_);
    text_ += line + "\n";
    cv_.notify_all();
  }
  void Progress(const line::LineProgress&, bool) override {}
  bool WaitFor(const std::string& part) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, kPatience, [&] { return text_.find(part) != std::string::npos; });
  }
  std::string text() {
    std::lock_guard<std::mutex> l(mu_);
    return text_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string text_;
};

class CoreTest : public LineWorld {
 protected:
  static constexpr char kA[] = "sn-a.test:1";
  static constexpr char kB[] = "sn-b.test:2";
  static constexpr char kC[] = "sn-c.test:3";

  // The group of line/world.h, with job J-1 on SN-B too; SN-C founds group Other; 20 chips.
  void SetUp() override {
    LineWorld::SetUp();
    if (HasFatalFailure()) return;
    Hsm& a = *hsms_["SN-A"];
    Hsm& b = *hsms_["SN-B"];
    Hsm& c = Make("SN-C");
    ASSERT_OK(ImportJob(b, package_));
    other_gid_ = Found(c, "Other");
    auto group = line::LineGroupOfClient(creds_.chain_pem, creds_.root_pem);
    ASSERT_OK(group);
    group_.emplace(*std::move(group));
    members_.Add(kA, a, gid_);
    members_.Add(kB, b, gid_);
    members_.Add(kC, c, other_gid_);
    members_.impostor = &b;
    auto db = line::DeviceDb::Open(dir_.File("line.db"));
    ASSERT_OK(db);
    db_ = *std::move(db);
    record_ = line::RecordOf(*db_);
  }
  void TearDown() override {
    if (running_.joinable()) running_.join();
  }

  line::LineOptions Options(std::vector<std::string> members) {
    line::LineOptions o;
    o.job_id = "J-1";
    o.members = std::move(members);
    o.oem_root = oem_root_;
    o.db_path = dir_.File("line.db");  // the line's directory (jobs/) is the test's
    o.parallel = 1;
    o.give_up_seconds = 0;
    o.observer = &said_;
    return o;
  }
  // The job as an earlier run kept it, so that no member need give it.
  void KeepPackage() {
    ASSERT_OK(MakeDirs(dir_.File("jobs"), 0700));
    ASSERT_OK(WriteFileAtomic(dir_.File("jobs/J-1.package"), package_));
  }
  absl::StatusOr<line::LineSummary> RunCore(const line::LineOptions& o) {
    line::CoreParts parts{&chips_, &programmer_, record_.get(), &members_, &clock_, o.observer};
    line::LineCore core(o, parts, *group_);
    return core.Run();
  }
  // Runs the core on a thread of its own while the test moves the members and the clock.
  void Start(line::LineOptions o) {
    options_.emplace(std::move(o));
    running_ = std::thread([this] { result_ = RunCore(*options_); });
  }
  absl::StatusOr<line::LineSummary> Finish() {
    running_.join();
    return result_;
  }
  // Runs the core while the member at `address` holds its requests from the `from`th on (issuing
  // them first with `issue_first`); once it holds two, the whole window of parallel 1, its stream
  // breaks (and with `down` it answers no more).
  absl::StatusOr<line::LineSummary> RunAndBreak(line::LineOptions o, const std::string& address,
                                                size_t from, bool issue_first, bool down) {
    FakeMember& m = members_.at(address);
    m.HoldFrom(from, issue_first);
    Start(std::move(o));
    if (!m.WaitHeld(2)) ADD_FAILURE() << address << " never held two requests";
    m.Break(down);
    return Finish();
  }

  std::map<std::string, line::DeviceRow> Devices() {
    auto rows = db_->Devices("J-1");
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? *rows : std::map<std::string, line::DeviceRow>{};
  }
  std::vector<line::AttemptRow> Attempts() {
    auto rows = db_->Attempts("J-1");
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? *rows : std::vector<line::AttemptRow>{};
  }
  // How many attempts ended as `outcome` on the HSM `serial` ("" = any).
  size_t Count(line::AttemptOutcome outcome, const std::string& serial = "") {
    size_t n = 0;
    for (const auto& a : Attempts())
      n += a.outcome == outcome && (serial.empty() || a.member_serial == serial);
    return n;
  }
  size_t DevicesDone() {
    size_t n = 0;
    for (const auto& [uid, row] : Devices()) n += row.status == line::DeviceStatus::kDone;
    return n;
  }
  // Every done device is recorded with the serial its chip carries.
  void ExpectRecordMatchesChips() {
    auto programmed = chips_.programmed();
    for (const auto& [uid, row] : Devices()) {
      if (row.status != line::DeviceStatus::kDone) continue;
      EXPECT_EQ(row.cert_serial, programmed[uid]) << uid;
    }
  }

  std::string other_gid_;
  std::optional<line::LineGroup> group_;
  FakeMembers members_;
  FakeChips chips_{20};
  FakeProgrammer programmer_{chips_};
  FakeClock clock_{SystemClock().Now()};
  std::unique_ptr<line::DeviceDb> db_;
  std::unique_ptr<line::LineRecord> record_;
  Said said_;
  std::optional<line::LineOptions> options_;
  std::thread running_;
  absl::StatusOr<line::LineSummary> result_;
};

TEST_F(CoreTest, DeliversEveryChip) {
  auto o = Options({kA});
  o.parallel = 4;
  auto sum = RunCore(o);
  ASSERT_OK(sum);
  EXPECT_EQ(sum->selected, 20u);
  EXPECT_EQ(sum->done, 20u) << said_.text();
  EXPECT_EQ(sum->failed, 0u);
  EXPECT_EQ(sum->pending, 0u);
  EXPECT_EQ(sum->failovers, 0u);
  EXPECT_EQ(sum->resent, 0u);
  EXPECT_EQ(sum->per_member, (std::map<std::string, size_t>{{"1 (SN-A)", 20}}));
  EXPECT_EQ(chips_.programmed().size(), 20u);
  EXPECT_EQ(DevicesDone(), 20u);
  EXPECT_EQ(Attempts().size(), 20u);
  EXPECT_EQ(Count(line::AttemptOutcome::kDelivered, "SN-A"), 20u);
  ExpectRecordMatchesChips();
  EXPECT_THAT(said_.text(), HasSubstr("fetched from the member at sn-a.test:1"));
  EXPECT_THAT(said_.text(), HasSubstr("member 1 (SN-A) at sn-a.test:1 in use"));
  EXPECT_EQ(clock_.pauses(), 0);  // nothing waited
}

TEST_F(CoreTest, FailsOverWhenTheMemberInUseBreaksItsStream) {
  // SN-A answers 8 chips and holds the next two (one in flight, one more: the window of
  // parallel 1), then its stream breaks: those two go to SN-B.
  auto sum = RunAndBreak(Options({kA, kB}), kA, 9, /*issue_first=*/false, /*down=*/true);
  ASSERT_OK(sum);
  EXPECT_EQ(sum->done, 20u) << said_.text();
  EXPECT_EQ(sum->failed, 0u);
  EXPECT_EQ(sum->failovers, 1u);
  EXPECT_EQ(sum->resent, 2u);
  EXPECT_EQ(sum->per_member, (std::map<std::string, size_t>{{"1 (SN-A)", 8}, {"1.1 (SN-B)", 12}}));
  EXPECT_EQ(members_.at(kA).received(), 10u);
  EXPECT_THAT(said_.text(),
              HasSubstr("member 1 (SN-A) at sn-a.test:1 stopped answering (the member at "
                        "sn-a.test:1 went away); 2 devices in flight are sent again"));
  EXPECT_EQ(DevicesDone(), 20u);
  EXPECT_EQ(Attempts().size(), 22u);
  EXPECT_EQ(Count(line::AttemptOutcome::kDelivered, "SN-A"), 8u);
  EXPECT_EQ(Count(line::AttemptOutcome::kDelivered, "SN-B"), 12u);
  EXPECT_EQ(Count(line::AttemptOutcome::kLost, "SN-A"), 2u);
  for (const auto& a : Attempts()) {
    if (a.outcome != line::AttemptOutcome::kLost) continue;
    EXPECT_EQ(a.error, "member 1 (SN-A) stopped answering: the member at sn-a.test:1 went away");
    EXPECT_TRUE(a.uid == "CHIP-000009" || a.uid == "CHIP-000010") << a.uid;
  }
  // Sent again to another HSM, the lost devices are first issues there.
  for (const auto& a : Attempts()) EXPECT_FALSE(a.reissue) << a.uid;
  ExpectRecordMatchesChips();
}

TEST_F(CoreTest, FailsOverWhenNoAnswerComesWithinTheTimeout) {
  auto o = Options({kA, kB});
  o.answer_timeout_seconds = 20;
  o.probe_ms = 3'600'000;  // no probe back to SN-A within this test's time
  members_.at(kA).HoldFrom(4);
  Start(std::move(o));
  ASSERT_TRUE(members_.at(kA).WaitHeld(2));
  ASSERT_TRUE(clock_.WaitForWaiters(2));
  clock_.Advance(21s);
  auto sum = Finish();
  ASSERT_OK(sum);
  EXPECT_EQ(sum->done, 20u) << said_.text();
  EXPECT_EQ(sum->failovers, 1u);
  EXPECT_EQ(sum->resent, 2u);
  EXPECT_EQ(sum->per_member, (std::map<std::string, size_t>{{"1 (SN-A)", 3}, {"1.1 (SN-B)", 17}}));
  EXPECT_THAT(said_.text(), HasSubstr("member 1 (SN-A) at sn-a.test:1 stopped answering (no "
                                      "answer for 20 s); 2 devices in flight are sent again"));
  EXPECT_EQ(Count(line::AttemptOutcome::kLost, "SN-A"), 2u);
}

TEST_F(CoreTest, MovesBackToAnEarlierMemberWhenItAnswersAgain) {
  // Nothing answers at SN-A's address when the line starts; SN-B gives the job.
  members_.at(kA).SetDown(true);
  members_.at(kB).HoldFrom(6);
  auto o = Options({kA, kB});
  o.probe_ms = 500;
  Start(std::move(o));
  ASSERT_TRUE(members_.at(kB).WaitHeld(2));
  members_.at(kA).SetDown(false);
  ASSERT_TRUE(clock_.WaitForWaiters(2));
  clock_.Advance(500ms);  // the prober's turn
  ASSERT_TRUE(said_.WaitFor("member at sn-a.test:1 answers; moving to it")) << said_.text();
  members_.at(kB).ReleaseAll();  // the devices in flight are answered before the move
  auto sum = Finish();
  ASSERT_OK(sum);
  EXPECT_EQ(sum->done, 20u) << said_.text();
  EXPECT_EQ(sum->per_member, (std::map<std::string, size_t>{{"1.1 (SN-B)", 7}, {"1 (SN-A)", 13}}));
  EXPECT_EQ(sum->failovers, 0u);  // moving back is not a failover: nothing was lost
  EXPECT_EQ(sum->resent, 0u);
  EXPECT_THAT(said_.text(), HasSubstr("member at sn-a.test:1 does not answer"));
  EXPECT_THAT(said_.text(), HasSubstr("fetched from the member at sn-b.test:2"));
  EXPECT_EQ(Attempts().size(), 20u);
  EXPECT_EQ(Count(line::AttemptOutcome::kDelivered, "SN-B"), 7u);
  EXPECT_EQ(Count(line::AttemptOutcome::kDelivered, "SN-A"), 13u);
  ExpectRecordMatchesChips();
}

class CoreRefusalTest : public CoreTest, public ::testing::WithParamInterface<Tamper> {};

TEST_P(CoreRefusalTest, AnAnswerFailingTheChecksFailsTheDeviceAndStopsTheMember) {
  // SN-A's 4th answer is made wrong; its 5th request is in flight: it goes to SN-B.
  members_.at(kA).HoldFrom(4);
  Start(Options({kA, kB}));
  ASSERT_TRUE(members_.at(kA).WaitHeld(2));
  members_.at(kA).Release(GetParam());
  auto sum = Finish();
  ASSERT_OK(sum);
  EXPECT_EQ(sum->done, 19u) << said_.text();
  EXPECT_EQ(sum->failed, 1u);
  EXPECT_EQ(sum->failovers, 1u);
  EXPECT_EQ(sum->resent, 1u);
  EXPECT_EQ(sum->per_member, (std::map<std::string, size_t>{{"1 (SN-A)", 3}, {"1.1 (SN-B)", 16}}));
  ASSERT_EQ(sum->failures.size(), 1u);
  EXPECT_EQ(sum->failures[0].first, "CHIP-000004");
  EXPECT_THAT(sum->failures[0].second,
              StartsWith("the answer of member 1 (SN-A) for CHIP-000004 is refused: "));
  EXPECT_THAT(said_.text(), HasSubstr("member 1 (SN-A) at sn-a.test:1 is not used any more"));
  auto rows = Devices();
  EXPECT_EQ(rows["CHIP-000004"].status, line::DeviceStatus::kFailed);
  EXPECT_EQ(rows["CHIP-000004"].error, sum->failures[0].second);
  EXPECT_EQ(DevicesDone(), 19u);
  // The refused answer did carry a certificate: the attempt keeps its serial.
  size_t refused = 0;
  for (const auto& a : Attempts()) {
    if (a.outcome != line::AttemptOutcome::kRefused) continue;
    ++refused;
    EXPECT_EQ(a.uid, "CHIP-000004");
    EXPECT_FALSE(a.cert_serial.empty());
  }
  EXPECT_EQ(refused, 1u);
  EXPECT_EQ(Count(line::AttemptOutcome::kLost, "SN-A"), 1u);
  EXPECT_EQ(Attempts().size(), 21u);
  EXPECT_FALSE(chips_.programmed().count("CHIP-000004"));
}

INSTANTIATE_TEST_SUITE_P(Tampers, CoreRefusalTest,
                         ::testing::Values(Tamper::kWrongChip, Tamper::kWrongSigner),
                         [](const auto& info) {
                           return info.param == Tamper::kWrongChip ? std::string("WrongChip")
                                                                   : std::string("WrongSigner");
                         });

TEST_F(CoreTest, ReissuesOnTheMemberThatMayHaveIssued) {
  // SN-A issues chips 3 and 4, but their answers are lost with its stream; it answers again at
  // once, and the two are sent to it again as reissues.
  auto sum = RunAndBreak(Options({kA}), kA, 3, /*issue_first=*/true, /*down=*/false);
  ASSERT_OK(sum);
  EXPECT_EQ(sum->done, 20u) << said_.text();
  EXPECT_EQ(sum->failed, 0u);
  EXPECT_EQ(sum->failovers, 1u);
  EXPECT_EQ(sum->resent, 2u);
  EXPECT_EQ(sum->per_member, (std::map<std::string, size_t>{{"1 (SN-A)", 20}}));
  EXPECT_EQ(Attempts().size(), 22u);
  for (const auto& a : Attempts()) {
    bool again = (a.uid == "CHIP-000003" || a.uid == "CHIP-000004") &&
                 a.outcome == line::AttemptOutcome::kDelivered;
    EXPECT_EQ(a.reissue, again) << a.uid << " " << line::AttemptOutcomeName(a.outcome);
  }
  ExpectRecordMatchesChips();
}

TEST_F(CoreTest, IssuesAfreshWhenTheReissuedDeviceWasNeverIssued) {
  // The requests for chips 3 and 4 never reached SN-A's records: the reissue is refused
  // (FailedPrecondition) and each is sent again as a first issue.
  auto sum = RunAndBreak(Options({kA}), kA, 3, /*issue_first=*/false, /*down=*/false);
  ASSERT_OK(sum);
  EXPECT_EQ(sum->done, 20u) << said_.text();
  EXPECT_EQ(sum->failed, 0u);
  EXPECT_EQ(sum->resent, 2u);
  EXPECT_EQ(Attempts().size(), 24u);
  for (const std::string uid : {"CHIP-000003", "CHIP-000004"}) {
    std::vector<std::pair<line::AttemptOutcome, bool>> got;
    for (const auto& a : Attempts()) {
      if (a.uid == uid) got.emplace_back(a.outcome, a.reissue);
    }
    EXPECT_EQ(got, (std::vector<std::pair<line::AttemptOutcome, bool>>{
                       {line::AttemptOutcome::kLost, false},
                       {line::AttemptOutcome::kRefused, true},
                       {line::AttemptOutcome::kDelivered, false}}))
        << uid;
  }
  ExpectRecordMatchesChips();
}

TEST_F(CoreTest, StopsWhenNoMemberAnswersAndARerunResumesFromTheRecord) {
  // SN-A issues chips 6 and 7, their answers are lost and it answers no more: the run stops.
  auto first = RunAndBreak(Options({kA}), kA, 6, /*issue_first=*/true, /*down=*/true);
  ASSERT_OK(first);
  EXPECT_EQ(first->done, 5u) << said_.text();
  EXPECT_EQ(first->pending, 15u);
  EXPECT_EQ(first->failovers, 1u);
  EXPECT_EQ(first->resent, 2u);
  EXPECT_THAT(said_.text(), HasSubstr("no member answers; stopping with 15 devices not "
                                      "provisioned (a rerun with the same database resumes)"));
  EXPECT_EQ(DevicesDone(), 5u);
  EXPECT_EQ(Count(line::AttemptOutcome::kLost, "SN-A"), 2u);

  // As a line killed in flight leaves it: chip 8 sent (its attempt open) and programmed, chip 9
  // sent and never answered.
  auto ids = db_->BeginAttempts("J-1", {{"CHIP-000008", false}, {"CHIP-000009", false}}, "1",
                                "SN-A", kA, clock_.UnixNow());
  ASSERT_OK(ids);
  chips_.SetProgrammed("CHIP-000008", "0badc0ffee");
  members_.at(kA).SetDown(false);
  auto second = RunCore(Options({kA}));
  ASSERT_OK(second);
  EXPECT_EQ(second->selected, 20u);
  EXPECT_EQ(second->already_done, 5u);
  EXPECT_EQ(second->recovered, 1u);
  EXPECT_EQ(second->done, 14u) << said_.text();
  EXPECT_EQ(second->failed, 0u);
  EXPECT_EQ(second->pending, 0u);
  EXPECT_EQ(second->per_member, (std::map<std::string, size_t>{{"1 (SN-A)", 14}}));
  EXPECT_THAT(said_.text(), HasSubstr("resuming: 2 devices in flight when the line last stopped "
                                      "are sent again"));
  EXPECT_THAT(said_.text(), HasSubstr("5 of 20 chips were done by an earlier run; skipped"));
  EXPECT_EQ(DevicesDone(), 20u);
  EXPECT_EQ(Devices()["CHIP-000008"].cert_serial, "0badc0ffee");
  // Issued on SN-A with their answers lost (the first run's two): reissued there. Chip 9 never
  // reached SN-A: its reissue is refused, and it is issued afresh.
  for (const auto& a : Attempts()) {
    if (a.outcome != line::AttemptOutcome::kDelivered || a.uid == "CHIP-000008") continue;
    EXPECT_EQ(a.reissue, a.uid == "CHIP-000006" || a.uid == "CHIP-000007") << a.uid;
  }
  EXPECT_EQ(Count(line::AttemptOutcome::kRefused, "SN-A"), 1u);  // chip 9's reissue
}

TEST_F(CoreTest, GivesUpWhenNoMemberAnswers) {
  KeepPackage();
  members_.at(kA).SetDown(true);
  members_.at(kB).SetDown(true);
  auto o = Options({kA, kB});
  o.give_up_seconds = 2;
  o.probe_ms = 500;
  auto sum = RunCore(o);
  ASSERT_OK(sum);
  EXPECT_EQ(sum->done, 0u);
  EXPECT_EQ(sum->pending, 20u);
  EXPECT_EQ(sum->failovers, 0u);
  EXPECT_THAT(said_.text(), HasSubstr("no member answers; probing every 500 ms for up to 2 s\n"));
  EXPECT_THAT(said_.text(), HasSubstr("member at sn-b.test:2 does not answer: nothing answers at "
                                      "sn-b.test:2\n"));
  EXPECT_THAT(said_.text(), HasSubstr("no member answers; stopping with 20 devices not provisioned "
                                      "(a rerun with the same database resumes)\n"));
  // Tried at 0, 0.5, 1, 1.5 and 2 s of the line's clock, which no one but the core moved.
  EXPECT_EQ(clock_.pauses(), 4);
  EXPECT_EQ(clock_.Elapsed(), 2000ms);
  EXPECT_TRUE(Attempts().empty());
}

TEST_F(CoreTest, RefusesWhenNoMemberCanBeUsed) {
  KeepPackage();
  EXPECT_THAT(RunCore(Options({kC})),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       StartsWith("no member of --hsm can be used:\n  sn-c.test:3: member at "
                                  "sn-c.test:3 is not a member of group " +
                                  gid_ + ": ")));
  EXPECT_TRUE(Attempts().empty());
}

TEST_F(CoreTest, RefusesWhenNoMemberGivesTheJob) {
  members_.at(kA).SetDown(true);
  EXPECT_THAT(RunCore(Options({kA, kC})),
              StatusIs(absl::StatusCode::kNotFound,
                       StartsWith("no member of --hsm gave job J-1 (import it on one member: "
                                  "`clade hsm call import-job`):\n  sn-a.test:1: nothing answers "
                                  "at sn-a.test:1\n  sn-c.test:3: ")));
}

}  // namespace
}  // namespace clade::hsm::testing
