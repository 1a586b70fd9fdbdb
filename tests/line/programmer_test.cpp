// Programmers on the factory line: a tray's chip source hands out a chip's request material, the
// virtual programmer programs it from what a real group member provisioned (both key modes), reads
// back the serial of a programmed chip and passes on a locked chip's refusal; the exec programmer
// runs real /bin/sh scripts with the provisioned files and the CLADE_* environment, reports a
// failing, crashing or hanging command with its own words, never leaves a plain key behind, and
// runs in parallel.
#include "line/programmer.h"

#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include "base/clock.h"
#include "base/files.h"
#include "hsm/group.h"
#include "hsm/job.h"
#include "hsm/world.h"
#include "line/sim/tray_station.h"
#include "line/sim/virtual_chip.h"
#include "oem/oem.h"

namespace clade::line {
namespace {

using ::clade::testing::StatusIs;
using hsm::testing::Bytes;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kDeviceProfile[] =
    R"({"product": "Sensor", "subject": {"CN": "{product} {uid}", "O": "Acme"}, )"
    R"("validity": {"days": 30}, "key_usage": ["digitalSignature"], "key_mode": "device"})";
constexpr char kHsmProfile[] =
    R"({"product": "Gateway", "subject": {"CN": "{product} {uid}"}, "validity": {"days": 30}, )"
    R"("key_usage": ["digitalSignature"], "key_mode": "hsm"})";
constexpr char kPlainProfile[] =
    R"({"product": "Legacy", "subject": {"CN": "{uid}"}, "validity": {"days": 1}, )"
    R"("key_mode": "hsm", "allow_plain_keys": true})";

Bytes ToBytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

// Whether a process still runs (a zombie waiting for a reaper does not count).
bool Running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  if (text.empty()) return false;
  size_t paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] != 'Z';
}

bool GoneWithin(pid_t pid, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (Running(pid)) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

class ProgrammerTest : public hsm::testing::World {
 protected:
  void SetUp() override {
    World::SetUp();
    if (HasFatalFailure()) return;
    auto o = oem::Oem::Init(dir_.File("oem"), "Acme Devices");
    ASSERT_OK(o);
    oem_.emplace(*std::move(o));
    member_ = &Make("SN-1");
    g_ = Found(*member_, "Acme");
    ASSERT_FALSE(g_.empty());
    ASSERT_OK(hsm::TrustOem(*member_, g_, oem_->root()));
    auto ex = hsm::ExportGroup(*member_, g_);
    ASSERT_OK(ex);
    ASSERT_OK(hsm::WriteGroupExport(*ex, dir_.File("gx")));
    for (const auto& [job, profile] :
         {std::pair{"J-DEV", kDeviceProfile}, std::pair{"J-HSM", kHsmProfile},
          std::pair{"J-PLAIN", kPlainProfile}}) {
      oem::PackageOptions po;
      po.job_id = job;
      po.group_export_dir = dir_.File("gx");
      po.pinned_supplier_root = supplier_->root();
      po.profile_json = profile;
      po.firmware = ToBytes("firmware image v1.2.3");
      po.config = ToBytes("register settings");
      auto pkg = oem_->Package(po);
      ASSERT_OK(pkg);
      ASSERT_OK(hsm::ImportJob(*member_, pkg->package));
    }
    tray_dir_ = dir_.File("tray");
    auto tray = Tray::Make(tray_dir_, 8);
    ASSERT_OK(tray);
    auto chips = MakeTrayChipSource(tray_dir_);
    ASSERT_OK(chips);
    chips_ = *std::move(chips);
  }

  // What the member issues for `uid`, asked with the material the tray's chip source hands out.
  absl::StatusOr<hsm::ProvisioningData> ProvisionFor(const std::string& uid,
                                                     const std::string& job) {
    bool hsm_mode = job != "J-DEV";
    ASSIGN_OR_RETURN(auto p, hsm::Provisioner::Create(*member_, g_, job));
    hsm::DeviceRequest req;
    req.uid = uid;
    if (job != "J-PLAIN") {
      ASSIGN_OR_RETURN(std::string pem, chips_->RequestPem(uid, hsm_mode));
      if (hsm_mode) {
        ASSIGN_OR_RETURN(req.transport_cert, crypto::Certificate::FromPem(pem));
      } else {
        ASSIGN_OR_RETURN(req.device_key, crypto::PublicKey::FromPem(pem));
      }
    }
    ASSIGN_OR_RETURN(auto data, p->Provision(req));
    provisioners_.push_back(std::move(p));  // firmware and config are views into its job
    return data;
  }

  static ProgramContext ContextOf(const hsm::ProvisioningData& data, const std::string& job) {
    return ProgramContext{job, "1.1", data.cert_serial, data.record};
  }

  VirtualChip Chip(const std::string& uid) {
    auto c = VirtualChip::Open(tray_dir_ + "/" + uid);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) std::abort();
    return *std::move(c);
  }

  ChipVerifyOptions Options() {
    ChipVerifyOptions o(SystemClock().Now());
    o.oem_root = &oem_->root();
    return o;
  }

  // Writes an executable script; returns the command that runs it.
  std::string Script(const std::string& name, const std::string& body) {
    std::string path = dir_.File(name);
    clade::testing::WriteText(path, "#!/bin/sh\n" + body);
    ::chmod(path.c_str(), 0755);
    return path;
  }

  std::unique_ptr<Programmer> Exec(const std::string& command, int timeout = 30) {
    auto p = MakeExecProgrammer(command, work_, timeout, tray_dir_);
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) std::abort();
    return *std::move(p);
  }

  // The work directories left in WORK.
  std::vector<std::string> WorkDirs() {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(work_, ec)) {
      out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::optional<oem::Oem> oem_;
  hsm::Hsm* member_ = nullptr;
  std::string g_;
  std::string tray_dir_;
  std::unique_ptr<ChipSource> chips_;
  std::string work_ = dir_.File("work");
  std::vector<std::unique_ptr<hsm::Provisioner>> provisioners_;
};

TEST_F(ProgrammerTest, TrayChipSourceHandsOutRequestMaterialOfBothModes) {
  auto virt = MakeVirtualProgrammer(tray_dir_);
  ASSERT_OK(virt);
  EXPECT_EQ((*virt)->Name(), "virtual");
  auto p = MakeTrayChipSource(tray_dir_);
  ASSERT_OK(p);
  EXPECT_EQ((*p)->Where(), "tray " + tray_dir_);
  ASSERT_EQ((*p)->Uids().size(), 8u);
  EXPECT_EQ((*p)->Uids().front(), "CHIP-000001");
  auto pub_pem = (*p)->RequestPem("CHIP-000002", false);
  ASSERT_OK(pub_pem);
  auto pub = crypto::PublicKey::FromPem(*pub_pem);
  ASSERT_OK(pub);
  auto on_chip = Chip("CHIP-000002").DevicePublicKey();
  ASSERT_OK(on_chip);
  EXPECT_TRUE(pub->Equals(*on_chip));
  auto t_pem = (*p)->RequestPem("CHIP-000002", true);
  ASSERT_OK(t_pem);
  auto t = crypto::Certificate::FromPem(*t_pem);
  ASSERT_OK(t);
  EXPECT_THAT(t->Subject(), HasSubstr("CHIP-000002 transport"));
  EXPECT_THAT((*p)->RequestPem("CHIP-000042", false),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no chip CHIP-000042")));
  EXPECT_THAT(MakeVirtualProgrammer(dir_.File("no-tray")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("cannot open tray")));
  EXPECT_THAT(MakeTrayChipSource(dir_.File("no-tray")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("cannot open tray")));
}

TEST_F(ProgrammerTest, VirtualProgrammerProgramsBothKeyModesAndReadsTheSerialBack) {
  auto p = MakeVirtualProgrammer(tray_dir_);
  ASSERT_OK(p);
  for (const auto& [uid, job] :
       {std::pair{"CHIP-000001", "J-DEV"}, std::pair{"CHIP-000002", "J-HSM"}}) {
    auto before = chips_->ProgrammedSerial(uid);
    ASSERT_OK(before);
    EXPECT_EQ(*before, std::nullopt) << uid;
    auto data = ProvisionFor(uid, job);
    ASSERT_OK(data);
    ASSERT_OK((*p)->Program(uid, ProgramInput::From(*data), ContextOf(*data, job)));
    auto after = chips_->ProgrammedSerial(uid);
    ASSERT_OK(after);
    ASSERT_NE(*after, std::nullopt) << uid;
    EXPECT_EQ(**after, data->cert_serial);
    EXPECT_THAT(Chip(uid).Verify(Options()), IsEmpty()) << uid;
  }
  // A locked chip refuses, with the chip's own words; its flash is unchanged.
  Bytes crt = clade::testing::ReadBinary(tray_dir_ + "/CHIP-000001/flash/device.crt");
  auto again = hsm::Provisioner::Create(*member_, g_, "J-DEV");
  ASSERT_OK(again);
  hsm::DeviceRequest req;
  req.uid = "CHIP-000001";
  req.reissue = true;
  auto pub = Chip("CHIP-000001").DevicePublicKey();
  ASSERT_OK(pub);
  req.device_key = *pub;
  auto data2 = (*again)->Provision(req);
  ASSERT_OK(data2);
  EXPECT_THAT((*p)->Program("CHIP-000001", ProgramInput::From(*data2), ContextOf(*data2, "J-DEV")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("chip CHIP-000001 is locked; it was programmed at ")));
  EXPECT_EQ(clade::testing::ReadBinary(tray_dir_ + "/CHIP-000001/flash/device.crt"), crt);
  // A certificate for another chip's key: the error names the chip.
  auto other = ProvisionFor("CHIP-000003", "J-DEV");
  ASSERT_OK(other);
  EXPECT_THAT((*p)->Program("CHIP-000004", ProgramInput::From(*other), ContextOf(*other, "J-DEV")),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("certificate does not match the key on chip CHIP-000004")));
  auto still = chips_->ProgrammedSerial("CHIP-000004");
  ASSERT_OK(still);
  EXPECT_EQ(*still, std::nullopt);
}

TEST_F(ProgrammerTest, ExecProgrammerGivesTheCommandEveryFileAndVariable) {
  std::string seen = dir_.File("seen");
  std::string cmd = Script("check.sh", R"sh(set -e
test "$CLADE_UID" = CHIP-000002
test "$CLADE_JOB" = J-PLAIN
test "$CLADE_MEMBER" = 1.1
test -n "$CLADE_CERT_SERIAL"
test "$(pwd)" = "$CLADE_DATA_DIR"
test "$CLADE_TRAY" = ")sh" + tray_dir_ + R"sh("
for f in device.crt chain.pem device-key.pem firmware.bin config.bin record.msg; do
  test -s "$CLADE_DATA_DIR/$f"
done
test ! -e device-key.cms
test "$(stat -c %a device-key.pem)" = 600
test "$(cat firmware.bin)" = "firmware image v1.2.3"
grep -q "BEGIN CERTIFICATE" device.crt
test "$(grep -c "BEGIN CERTIFICATE" chain.pem)" = 2
test -z "${INHERITED_FROM_PARENT+set}"
echo "$CLADE_CERT_SERIAL $CLADE_DATA_DIR" > )sh" +
                                           seen + R"sh(
echo "programmed $CLADE_UID"
)sh");
  ::setenv("INHERITED_FROM_PARENT", "yes", 1);
  auto p = Exec(cmd);
  EXPECT_EQ(p->Name(), "exec");
  EXPECT_EQ(chips_->Uids().size(), 8u);
  auto serial = chips_->ProgrammedSerial("CHIP-000002");
  ASSERT_OK(serial);
  EXPECT_EQ(*serial, std::nullopt);
  auto data = ProvisionFor("CHIP-000002", "J-PLAIN");
  ASSERT_OK(data);
  ASSERT_FALSE(data->plain_key.empty());
  ASSERT_OK(p->Program("CHIP-000002", ProgramInput::From(*data), ContextOf(*data, "J-PLAIN")));
  std::string line = clade::testing::ReadText(seen);
  EXPECT_EQ(line.substr(0, line.find(' ')), data->cert_serial);
  std::string data_dir = line.substr(line.find(' ') + 1);
  data_dir.pop_back();  // newline
  EXPECT_EQ(data_dir.rfind(work_ + "/CHIP-000002.", 0), 0u) << data_dir;
  EXPECT_FALSE(PathExists(data_dir));  // removed after success
  EXPECT_THAT(WorkDirs(), IsEmpty());
  struct stat st {};
  ASSERT_EQ(::stat(work_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

// The line's environment holds what unlocks the HSM states (CLADE_KEK_PASSPHRASE) and whatever
// else its operator set; a programmer command, often a vendor's tool, gets none of it.
TEST_F(ProgrammerTest, ExecProgrammerGivesTheCommandAMinimalEnvironment) {
  std::string dump = dir_.File("env.txt");
  auto p = Exec(Script("env.sh", "env > " + dump + "\n"));
  auto saved = [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    return v ? std::optional<std::string>(v) : std::nullopt;
  };
  auto restore = [](const char* name, const std::optional<std::string>& v) {
    if (v) {
      ::setenv(name, v->c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  };
  std::optional<std::string> home = saved("HOME"), lc_all = saved("LC_ALL");
  ::setenv("CLADE_KEK_PASSPHRASE", "correct horse battery staple", 1);
  ::setenv("VENDOR_TOKEN", "s3cret", 1);
  ::setenv("HOME", "/home/line", 1);
  ::setenv("LC_ALL", "C.UTF-8", 1);
  ::setenv("CLADE_UID", "CHIP-FORGED", 1);  // a device variable is this device's, never inherited
  auto data = ProvisionFor("CHIP-000007", "J-DEV");
  ASSERT_OK(data);
  absl::Status programmed =
      p->Program("CHIP-000007", ProgramInput::From(*data), ContextOf(*data, "J-DEV"));
  ::unsetenv("CLADE_KEK_PASSPHRASE");
  ::unsetenv("VENDOR_TOKEN");
  ::unsetenv("CLADE_UID");
  restore("HOME", home);
  restore("LC_ALL", lc_all);
  ASSERT_OK(programmed);
  std::string env = clade::testing::ReadText(dump);
  EXPECT_THAT(env, Not(HasSubstr("CLADE_KEK_PASSPHRASE")));
  EXPECT_THAT(env, Not(HasSubstr("correct horse")));
  EXPECT_THAT(env, Not(HasSubstr("VENDOR_TOKEN")));
  EXPECT_THAT(env, Not(HasSubstr("CHIP-FORGED")));
  EXPECT_THAT(env, AllOf(HasSubstr("\nHOME=/home/line\n"), HasSubstr("\nLC_ALL=C.UTF-8\n"),
                         HasSubstr("PATH="), HasSubstr("CLADE_UID=CHIP-000007\n"),
                         HasSubstr("CLADE_JOB=J-DEV\n"), HasSubstr("CLADE_MEMBER=1.1\n")));
  // Every variable is one the programmer documents, or one the shell sets itself.
  const std::set<std::string> allowed = {"PATH", "HOME",   "LANG",  "LC_ALL", "TMPDIR",
                                         "PWD",  "OLDPWD", "SHLVL", "_"};
  std::istringstream lines(env);
  for (std::string line; std::getline(lines, line);) {
    std::string name = line.substr(0, line.find('='));
    EXPECT_TRUE(allowed.count(name) == 1 || name.rfind("CLADE_", 0) == 0) << line;
  }
}

TEST_F(ProgrammerTest, ExecProgrammerFilesProgramAChipThroughTheirReader) {
  // The files carry the names ProvisioningBundle::Read reads: a command that programs the
  // chip from them (what `clade device program --from "$CLADE_DATA_DIR"` does) yields a good chip.
  std::string copy = dir_.File("copy");
  auto p = Exec(Script("copy.sh", "cp -r \"$CLADE_DATA_DIR\" " + copy + "\n"));
  auto data = ProvisionFor("CHIP-000003", "J-HSM");
  ASSERT_OK(data);
  ASSERT_OK(p->Program("CHIP-000003", ProgramInput::From(*data), ContextOf(*data, "J-HSM")));
  EXPECT_EQ(clade::testing::ReadBinary(copy + "/record.msg"), data->record);
  ASSERT_TRUE(PathExists(copy + "/programmer.log"));  // the one other file a bundle may hold
  auto in = ProvisioningBundle::Read(copy);
  ASSERT_OK(in);
  EXPECT_EQ(in->input.key_envelope, data->key_envelope);
  EXPECT_EQ(in->record, data->record);
  VirtualChip chip = Chip("CHIP-000003");
  ASSERT_OK(chip.Program(in->input));
  EXPECT_THAT(Chip("CHIP-000003").Verify(Options()), IsEmpty());
}

TEST_F(ProgrammerTest, ExecProgrammerReportsAFailureInTheCommandsWords) {
  auto p = Exec(Script("fail.sh", R"(echo "opening socket 3"
echo "no contact with socket 3" >&2
echo "" >&2
exit 3
)"));
  auto data = ProvisionFor("CHIP-000004", "J-PLAIN");
  ASSERT_OK(data);
  absl::Status s = p->Program("CHIP-000004", ProgramInput::From(*data), ContextOf(*data, "J"));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kAborted,
                          HasSubstr("programmer failed for chip CHIP-000004: exit status 3: no "
                                    "contact with socket 3")));
  // The directory stays for the operator, with the log, but without the plain key.
  auto dirs = WorkDirs();
  ASSERT_EQ(dirs.size(), 1u);
  EXPECT_EQ(dirs[0].rfind("CHIP-000004.", 0), 0u);
  std::string kept = work_ + "/" + dirs[0];
  EXPECT_TRUE(PathExists(kept + "/device.crt"));
  EXPECT_FALSE(PathExists(kept + "/device-key.pem"));
  EXPECT_THAT(clade::testing::ReadText(kept + "/programmer.log"),
              AllOf(HasSubstr("opening socket 3"), HasSubstr("no contact with socket 3")));
  // A retry gets a fresh directory, also from a new programmer (as after a restart of the line).
  auto p2 = Exec(Script("fail2.sh", "exit 1\n"));
  EXPECT_THAT(p2->Program("CHIP-000004", ProgramInput::From(*data), ContextOf(*data, "J")),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("exit status 1")));
  EXPECT_EQ(WorkDirs().size(), 2u);
  // A uid that could leave WORK is refused before anything runs.
  EXPECT_THAT(
      p2->Program("../CHIP-000004", ProgramInput::From(*data), ContextOf(*data, "J")),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad chip uid '../CHIP-000004'")));
  EXPECT_EQ(WorkDirs().size(), 2u);
}

TEST_F(ProgrammerTest, ExecProgrammerKillsAHangingCommand) {
  std::string pids = dir_.File("pids");
  auto p = Exec(Script("hang.sh", "echo $$ > " + pids + ".sh\nsleep 30 &\necho $! > " + pids +
                                      ".sleep\nwait\n"),
                /*timeout=*/1);
  auto data = ProvisionFor("CHIP-000005", "J-DEV");
  ASSERT_OK(data);
  absl::Status s = p->Program("CHIP-000005", ProgramInput::From(*data), ContextOf(*data, "J"));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kDeadlineExceeded,
                          HasSubstr("programmer command timed out after 1s for chip CHIP-000005")));
  // The script and the 30 s sleep it waits on are gone: the whole process group was killed, not
  // waited for (both, reparented once their shell is reaped, may take a moment to be reaped).
  for (const char* which : {".sh", ".sleep"}) {
    std::string text = clade::testing::ReadText(pids + which);
    pid_t pid = static_cast<pid_t>(std::stol(text));
    EXPECT_TRUE(GoneWithin(pid, std::chrono::seconds(5))) << which << " " << pid;
  }
  EXPECT_EQ(WorkDirs().size(), 1u);
}

TEST_F(ProgrammerTest, ExecProgrammerReportsACrash) {
  // The command's shell itself dies of the signal.
  auto p = Exec("echo \"writing flash\" >&2; kill -SEGV $$");
  auto data = ProvisionFor("CHIP-000006", "J-DEV");
  ASSERT_OK(data);
  EXPECT_THAT(p->Program("CHIP-000006", ProgramInput::From(*data), ContextOf(*data, "J")),
              StatusIs(absl::StatusCode::kAborted,
                       AllOf(HasSubstr("programmer failed for chip CHIP-000006: killed by signal "
                                       "11 (SIGSEGV)"),
                             HasSubstr("writing flash"))));
  // A script the shell runs dies of it: the shell says 128+11, the error reads it as the signal.
  auto script = Exec(Script("crash.sh", "echo \"writing flash\" >&2\nkill -SEGV $$\n"));
  EXPECT_THAT(script->Program("CHIP-000006", ProgramInput::From(*data), ContextOf(*data, "J")),
              StatusIs(absl::StatusCode::kAborted,
                       HasSubstr("programmer failed for chip CHIP-000006: exit status 139 (a "
                                 "command it ran was killed by signal 11 (SIGSEGV)?)")));
  EXPECT_EQ(WorkDirs().size(), 2u);
}

TEST_F(ProgrammerTest, ExecProgrammerRefusesBadSettings) {
  EXPECT_THAT(MakeExecProgrammer("", work_, 5),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("command is empty")));
  EXPECT_THAT(MakeExecProgrammer("true", work_, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least 1 second")));
  EXPECT_THAT(
      MakeExecProgrammer("true", "", 5),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no programmer work directory")));
}

TEST_F(ProgrammerTest, ExecProgrammerRunsInParallel) {
  // Each command marks that it started, then waits until every command of the tray has (a
  // condition, not a time: commands run one after another never all start, and exit 8 after 20 s),
  // and checks it sees its own files only.
  std::string started = dir_.File("started");
  ASSERT_OK(MakeDirs(started, 0700));
  auto p = Exec(Script("slow.sh", R"sh(set -e
started=)sh" + started + R"sh(
: > "$started/$CLADE_UID"
n=0
until [ "$(ls "$started" | wc -l)" -ge 8 ]; do
  n=$((n + 1)); [ "$n" -lt 400 ] || exit 8
  sleep 0.05
done
case "$CLADE_DATA_DIR" in */"$CLADE_UID".*) ;; *) exit 9 ;; esac
test "$(basename "$(pwd)")" = "$(basename "$CLADE_DATA_DIR")"
)sh"));
  ASSERT_EQ(chips_->Uids().size(), 8u);
  std::vector<hsm::ProvisioningData> data;
  for (const std::string& uid : chips_->Uids()) {
    auto d = ProvisionFor(uid, "J-DEV");
    ASSERT_OK(d);
    data.push_back(*std::move(d));
  }
  std::vector<absl::Status> results(data.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < data.size(); ++i) {
    threads.emplace_back([&, i] {
      results[i] =
          p->Program(chips_->Uids()[i], ProgramInput::From(data[i]), ContextOf(data[i], "J"));
    });
  }
  for (auto& t : threads) t.join();
  // Every command saw all eight started: they overlapped, not one after another.
  for (size_t i = 0; i < results.size(); ++i) EXPECT_OK(results[i]) << chips_->Uids()[i];
  EXPECT_THAT(WorkDirs(), IsEmpty());
}

TEST_F(ProgrammerTest, VirtualProgrammerProgramsInParallel) {
  auto p = MakeVirtualProgrammer(tray_dir_);
  ASSERT_OK(p);
  std::vector<hsm::ProvisioningData> data;
  for (size_t i = 0; i < chips_->Uids().size(); ++i) {
    auto d = ProvisionFor(chips_->Uids()[i], i % 2 ? "J-HSM" : "J-DEV");
    ASSERT_OK(d);
    data.push_back(*std::move(d));
  }
  std::vector<absl::Status> results(data.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < data.size(); ++i) {
    threads.emplace_back([&, i] {
      results[i] =
          (*p)->Program(chips_->Uids()[i], ProgramInput::From(data[i]), ContextOf(data[i], "J"));
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < results.size(); ++i) EXPECT_OK(results[i]) << chips_->Uids()[i];
  auto tray = Tray::Open(tray_dir_);
  ASSERT_OK(tray);
  for (const auto& r : tray->Verify(Options())) EXPECT_THAT(r.failures, IsEmpty()) << r.uid;
}

}  // namespace
}  // namespace clade::line
