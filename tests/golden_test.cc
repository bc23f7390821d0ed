// Golden files: the generated assembly for every spec in specs/ and both
// syntaxes, compared with golden/<spec>.<syntax>.s. UPDATE_GOLDEN=1 rewrites
// them; a mismatch prints a unified diff.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "test_util.h"

namespace asmsrv::test {
namespace {

using Param = std::tuple<std::string, std::string>;  // spec, syntax

class Golden : public ::testing::TestWithParam<Param> {};

TEST_P(Golden, MatchesTheGeneratedAssembly) {
  const auto& [spec, syntax] = GetParam();
  CmdResult r = asmsrv({"gen", "specs/" + spec + ".json", "--syntax", syntax});
  ASSERT_EQ(r.status, 0) << r.err;
  std::string golden = source_dir() + "/golden/" + spec + "." + syntax + ".s";
  const char* update = std::getenv("UPDATE_GOLDEN");
  if (update && std::string(update) == "1") {
    write(golden, r.out);
    GTEST_SKIP() << "rewrote " << golden;
  }
  ASSERT_TRUE(exists(golden)) << golden << " is missing; run: UPDATE_GOLDEN=1 ctest -R Golden";
  std::string expected = read(golden);
  if (expected != r.out) {
    std::string actual = temp_dir() + "/" + spec + "." + syntax + ".s";
    write(actual, r.out);
    CmdResult diff = run({"diff", "-u", golden, actual});
    FAIL() << "the generated assembly differs from " << golden << ":\n"
           << diff.out << "\nIf the change is intended, run: UPDATE_GOLDEN=1 ctest -R Golden"
           << " (and commit the goldens on their own)";
  }
}

TEST_P(Golden, IsDeterministic) {
  const auto& [spec, syntax] = GetParam();
  CmdResult a = asmsrv({"gen", "specs/" + spec + ".json", "--syntax", syntax});
  CmdResult b = asmsrv({"gen", "specs/" + spec + ".json", "--syntax", syntax});
  ASSERT_EQ(a.status, 0);
  EXPECT_EQ(a.out, b.out);
}

INSTANTIATE_TEST_SUITE_P(Specs, Golden,
                         ::testing::Combine(::testing::ValuesIn(spec_names()),
                                            ::testing::Values("nasm", "gas")),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" + std::get<1>(info.param);
                         });

// Every golden belongs to a spec: none is left behind when a spec goes.
TEST(GoldenFiles, EachHasItsSpec) {
  for (const auto& e : std::filesystem::directory_iterator(source_dir() + "/golden")) {
    std::string name = e.path().filename().string();
    std::string spec = name.substr(0, name.find('.'));
    EXPECT_TRUE(exists(source_dir() + "/specs/" + spec + ".json")) << name << " has no spec";
  }
}

}  // namespace
}  // namespace asmsrv::test
