// README.md's C++ examples are copies of compiled programs (examples/readme_*.cpp): each must
// appear in README.md, from its first #include to its end, as one ```cpp block, so that the README
// shows code that compiles against today's headers.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

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

// The usage examples at the top of the public headers are the bodies of the functions of
// examples/header_examples.cpp (a compiled program): after a line "// include/zsclip/NAME.h", the
// function's lines from the one after its opening "{" to its closing "}" appear in that header as
// "// " + the line ("//" for an empty one).
TEST(Readme, HeaderExamplesAreCompiled) {
  const std::string file = read_file(source_path("examples/header_examples.cpp"));
  std::vector<std::string> headers;
  for (size_t at = file.find("\n// include/"); at != std::string::npos;
       at = file.find("\n// include/", at + 1)) {
    const size_t name_end = file.find('\n', at + 1);
    const std::string header = file.substr(at + 4, name_end - at - 4);
    const size_t body = file.find("{\n", name_end) + 2;
    const size_t end = file.find("\n}\n", body);
    ASSERT_NE(end, std::string::npos) << header;
    std::string expected;
    for (size_t line = body; line <= end;) {
      const size_t eol = file.find('\n', line);
      expected += eol == line ? "//\n" : "// " + file.substr(line, eol - line + 1);
      line = eol + 1;
    }
    EXPECT_NE(read_file(source_path(header)).find(expected), std::string::npos)
        << header << " does not show its example as examples/header_examples.cpp compiles it; its "
        << "comment should read:\n"
        << expected;
    headers.push_back(header);
  }
  EXPECT_EQ(headers.size(), 12u);
}

}  // namespace
