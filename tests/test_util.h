// Helpers shared by the tests: where the reference material lives, and skipping without it.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace zsclip::testing {

// ../shared next to the source tree, or $ZSCLIP_SHARED_DIR.
inline std::string shared_dir() {
  if (const char* env = std::getenv("ZSCLIP_SHARED_DIR"); env && *env) return env;
  return ZSCLIP_SHARED_DIR;
}
inline std::string shared_path(const std::string& rel) { return shared_dir() + "/" + rel; }
inline std::string test_data(const std::string& rel) {
  return std::string(ZSCLIP_TEST_DATA_DIR) + "/" + rel;
}
inline std::string source_path(const std::string& rel) {
  return std::string(ZSCLIP_SOURCE_DIR) + "/" + rel;
}
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
// A fresh empty directory under the build tree's tmp/ (removed first if it exists).
inline std::string temp_dir(const std::string& name) {
  auto dir = std::filesystem::path(ZSCLIP_BINARY_DIR) / "tmp" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace zsclip::testing

// Skips the current test, with the reason, when a file of ../shared is absent.
#define ZSCLIP_REQUIRE_SHARED(rel)                                                 \
  do {                                                                             \
    if (!std::filesystem::exists(::zsclip::testing::shared_path(rel)))             \
      GTEST_SKIP() << "reference material " << ::zsclip::testing::shared_path(rel) \
                   << " is absent (set ZSCLIP_SHARED_DIR to the shared/ folder)";  \
  } while (0)
