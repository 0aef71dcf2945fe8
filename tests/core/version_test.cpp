// Versioning: the library, the headers and the config format agree.
#include <gtest/gtest.h>

#include <string>

#include "zsclip/config.h"
#include "zsclip/error.h"
#include "zsclip/version.h"

TEST(Version, LibraryMatchesHeaders) {
  EXPECT_EQ(std::string(zsclip::version()), ZSCLIP_VERSION);
  EXPECT_EQ(std::string(ZSCLIP_VERSION), std::to_string(ZSCLIP_VERSION_MAJOR) + "." +
                                             std::to_string(ZSCLIP_VERSION_MINOR) + "." +
                                             std::to_string(ZSCLIP_VERSION_PATCH));
}

TEST(Version, NewerConfigFormatIsRefusedWithTheVersion) {
  const std::string cfg =
      R"({"format_version": )" + std::to_string(zsclip::kConfigFormatVersion + 1) + "}";
  try {
    zsclip::ModelConfig::parse(cfg, "m/config.json");
    FAIL() << "a newer format was accepted";
  } catch (const zsclip::Error& e) {
    EXPECT_EQ(e.code(), zsclip::ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("m/config.json: format_version " +
                                         std::to_string(zsclip::kConfigFormatVersion + 1)),
              std::string::npos)
        << e.what();
  }
}
