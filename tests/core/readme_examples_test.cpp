// README.md's C++ examples are copies of compiled programs (examples/readme_*.cpp): each must
// appear in README.md, from its first #include to its end, as one ```cpp block, so that the README
// shows code that compiles against today's headers.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "test_util.h"

namespace {

using ::zsclip::testing::read_file;
using ::zsclip::testing::source_path;

TEST(Readme, CppExamplesAreTheCompiledFiles) {
  const std::string readme = read_file(source_path("README.md"));
  int checked = 0;
  for (const char* name : {"readme_api.cpp", "readme_runtime.cpp"}) {
    const std::string file = read_file(source_path(std::string("examples/") + name));
    const size_t start = file.find("\n#include") + 1;  // after the header comment
    ASSERT_GT(start, 0u) << name;
    const std::string block = "```cpp\n" + file.substr(start) + "```\n";
    EXPECT_NE(readme.find(block), std::string::npos)
        << "README.md does not show examples/" << name << " as written; it should read:\n"
        << block;
    ++checked;
  }
  EXPECT_EQ(checked, 2);
}

}  // namespace
