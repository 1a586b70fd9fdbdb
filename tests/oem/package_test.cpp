// `oem package` trusts the supplier root the OEM pinned, never the copy inside a group export: a
// group forged under another supplier, exported with that supplier's root beside it, gets no
// package — whether the export's root is the forger's or a copy of the genuine one.
#include <filesystem>

#include "hsm/group.h"
#include "hsm/world.h"
#include "oem/oem.h"

namespace clade::hsm::testing {
namespace {

using ::clade::testing::StatusIs;
using ::testing::HasSubstr;

class OemPackageTest : public World {
 protected:
  void SetUp() override {
    World::SetUp();
    auto o = oem::Oem::Init(dir_.File("oem"), "Acme Devices");
    ASSERT_OK(o);
    oem_.emplace(*std::move(o));
    Hsm& genuine = Make("SN-1");
    genuine_gx_ = ExportTo(genuine, Found(genuine, "Acme"), "gx");
    // The forger's HSM, by another supplier, founds a group of the same name: its chain is
    // complete and verifies, to the forger's supplier root.
    Hsm& forged = Make("CF-1", /*counterfeit=*/true);
    forged_gx_ = ExportTo(forged, Found(forged, "Acme"), "gx-forged");
  }
  std::string ExportTo(Hsm& h, const std::string& group, const std::string& name) {
    auto ex = ExportGroup(h, group);
    EXPECT_TRUE(ex.ok()) << ex.status();
    std::string dir = dir_.File(name);
    if (ex.ok()) {
      EXPECT_OK(WriteGroupExport(*ex, dir));
    }
    return dir;
  }
  oem::PackageOptions Options(const std::string& export_dir) {
    oem::PackageOptions o;
    o.job_id = "J-1";
    o.group_export_dir = export_dir;
    o.pinned_supplier_root = supplier_->root();
    o.profile_json = kSensorProfile;
    return o;
  }
  std::optional<oem::Oem> oem_;
  std::string genuine_gx_, forged_gx_;
};

TEST_F(OemPackageTest, PackagesAGroupGenuineUnderThePinnedRoot) {
  ASSERT_OK_AND_ASSIGN(oem::PackageSummary s, oem_->Package(Options(genuine_gx_)));
  EXPECT_FALSE(s.package.empty());
  EXPECT_EQ(s.supplier_root_fingerprint, supplier_->root().Fingerprint());
}

TEST_F(OemPackageTest, RefusesAForgedGroupThatBringsItsOwnSupplierRoot) {
  EXPECT_THAT(oem_->Package(Options(forged_gx_)),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("the group export's supplier root (" + forged_gx_ +
                                 "/supplier-root.crt, SHA-256 " + other_->root().Fingerprint() +
                                 ") is not the supplier root you pinned (SHA-256 " +
                                 supplier_->root().Fingerprint())));
}

TEST_F(OemPackageTest, RefusesAForgedGroupWhoseSupplierRootFileWasSwappedForTheGenuineOne) {
  std::filesystem::copy_file(genuine_gx_ + "/supplier-root.crt", forged_gx_ + "/supplier-root.crt",
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_THAT(oem_->Package(Options(forged_gx_)),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("the group in " + forged_gx_ + " is not genuine")));
}

TEST_F(OemPackageTest, RefusesWithoutAPinnedSupplierRoot) {
  oem::PackageOptions o = Options(genuine_gx_);
  o.pinned_supplier_root.reset();
  EXPECT_THAT(oem_->Package(o),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("no supplier root pinned")));
}

}  // namespace
}  // namespace clade::hsm::testing
