#include <gtest/gtest.h>

#include "fixtures.h"
#include "strata/profiles/sysfs.h"

namespace strata::profiles {
namespace {

using testing::fixture;

TEST(SysTree, ReadsUnderTheRootAndTrims) {
  SysTree sys(fixture("rpi4b"));
  EXPECT_FALSE(sys.live());
  const auto model = sys.read("/proc/device-tree/model");
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  EXPECT_EQ(*model, "Raspberry Pi 4 Model B Rev 1.4");  // trailing NUL of the DT string gone
  const auto temp = sys.read_int("/sys/class/thermal/thermal_zone0/temp");
  ASSERT_TRUE(temp.ok());
  EXPECT_EQ(*temp, 48686);
}

TEST(SysTree, MissingFileIsNotFoundNamingThePath) {
  SysTree sys(fixture("vm"));
  const auto r = sys.read("/sys/class/powercap/intel-rapl:0/energy_uj");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("intel-rapl:0/energy_uj"), std::string::npos);
}

TEST(SysTree, RecordedDeniedFileReadsAsPermissionDenied) {
  SysTree sys(fixture("intel-laptop"));
  const std::string path = "/sys/class/powercap/intel-rapl:1/energy_uj";
  EXPECT_TRUE(sys.exists(path));
  EXPECT_EQ(sys.read(path).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(sys.check_readable(path).code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(sys.check_readable("/sys/class/powercap/intel-rapl:0/energy_uj").ok());
}

TEST(SysTree, DenySeamRefusesAReadableFile) {
  SysTree sys(fixture("rpi4b"));
  ASSERT_TRUE(sys.read("/proc/meminfo").ok());
  sys.deny("/proc/meminfo");
  EXPECT_EQ(sys.read("/proc/meminfo").status().code(), StatusCode::kPermissionDenied);
}

TEST(SysTree, SeriesReplaysOneValuePerReadAndRepeatsTheLast) {
  SysTree sys(fixture("jetson-orin-nano"));
  const std::string path = "/sys/class/hwmon/hwmon1/curr1_input";
  EXPECT_TRUE(sys.exists(path));
  // check_readable must not consume a value.
  EXPECT_TRUE(sys.check_readable(path).ok());
  for (int k = 0; k < 11; ++k) EXPECT_EQ(*sys.read_int(path), 1000 + 100 * k);
  EXPECT_EQ(*sys.read_int(path), 2000);
  // list() shows the file under its plain name.
  const auto files = sys.list("/sys/class/hwmon/hwmon1");
  EXPECT_NE(std::find(files.begin(), files.end(), "curr1_input"), files.end());
}

TEST(SysTree, NonIntegerIsCorrupt) {
  SysTree sys(fixture("rpi4b"));
  EXPECT_EQ(sys.read_int("/sys/class/thermal/thermal_zone0/type").status().code(),
            StatusCode::kCorrupt);
}

TEST(SysTree, LiveRootIsSlash) {
  SysTree sys("/");
  EXPECT_TRUE(sys.live());
  EXPECT_EQ(sys.host_path("/proc/meminfo"), "/proc/meminfo");
  EXPECT_TRUE(sys.read("/proc/meminfo").ok());
}

}  // namespace
}  // namespace strata::profiles
