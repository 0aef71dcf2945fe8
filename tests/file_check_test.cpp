// Tampered model files: config.json records each file's size and XXH3-64 hash
// (models/export_clip.py writes them), Model::load checks them and refuses a mismatch naming the
// file; --no-verify skips it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model_util.h"
#include "zsclip/error.h"
#include "zsclip/model.h"

namespace zsclip {
namespace {

using namespace ::zsclip::testing;
namespace fs = std::filesystem;

std::string copy_shapes(const std::string& name) {
  const std::string dir = std::string(ZSCLIP_BINARY_DIR) + "/tmp/file_check/" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(std::string(ZSCLIP_SOURCE_DIR) + "/models/shapes"))
    fs::copy(e.path(), dir + "/" + e.path().filename().string());
  return dir;
}

void expect_refused(const std::string& dir, const ModelOptions& o,
                    const std::vector<std::string>& parts) {
  try {
    Model::load(dir, o);
    ADD_FAILURE() << dir << " loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidModel) << e.what();
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(FileChecks, ShippedModelRecordsEveryFile) {
  const ModelConfig c = ModelConfig::load(std::string(ZSCLIP_SOURCE_DIR) + "/models/shapes");
  EXPECT_EQ(c.file_checks.size(), 4u);
  for (const auto& f :
       {c.image_encoder_file, c.text_encoder_file, c.projection_file, c.tokenizer.vocab_file})
    EXPECT_EQ(c.file_checks.count(f), 1u) << f;
  EXPECT_NO_THROW(c.verify_files());
}

TEST(FileChecks, ChangedBytesAreRefusedNamingTheFile) {
  const std::string dir = copy_shapes("flipped");
  {
    // One byte inside the archive changed, size unchanged: what a swapped tensor looks like.
    std::fstream f(dir + "/image_encoder.pt", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(dir + "/image_encoder.pt") / 2));
    char c = 0;
    f.read(&c, 1);
    f.seekp(-1, std::ios::cur);
    c = static_cast<char>(c ^ 0x5a);
    f.write(&c, 1);
  }
  expect_refused(dir, {}, {"image_encoder.pt", "xxh3_64", "--no-verify"});
}

TEST(FileChecks, ChangedSizeIsRefusedBeforeHashing) {
  const std::string dir = copy_shapes("truncated");
  fs::resize_file(dir + "/text_encoder.pt", fs::file_size(dir + "/text_encoder.pt") - 100);
  expect_refused(dir, {}, {"text_encoder.pt", "bytes"});
  ModelOptions image_only;
  image_only.load_text_encoder = false;  // the text files are neither loaded nor checked then
  EXPECT_NO_THROW(Model::load(dir, image_only));
  fs::resize_file(dir + "/text_encoder.pt", fs::file_size(dir + "/text_encoder.pt") + 100);
  std::ofstream(dir + "/image_encoder.pt", std::ios::app) << "x";
  expect_refused(dir, image_only, {"image_encoder.pt", "bytes"});
}

TEST(FileChecks, NoVerifySkipsTheCheck) {
  const std::string dir = copy_shapes("edited");
  auto j = nlohmann::json::parse(read_file(dir + "/config.json"));
  j["file_checks"]["projection.pt"]["xxh3_64"] =
      "0000000000000000";  // as if the file had been edited
  std::ofstream(dir + "/config.json") << j.dump(2);
  expect_refused(dir, {}, {"projection.pt"});
  ModelOptions o;
  o.verify_files = false;
  EXPECT_NO_THROW(Model::load(dir, o));
  CliResult r = run_cli("classify --model " + sh(dir) + " --labels a,b " +
                        sh(std::string(ZSCLIP_SOURCE_DIR) + "/examples/images/red_circle.png"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("projection.pt"), std::string::npos) << r.err;
  r = run_cli("classify --no-verify --model " + sh(dir) + " --labels a,b " +
              sh(std::string(ZSCLIP_SOURCE_DIR) + "/examples/images/red_circle.png"));
  EXPECT_EQ(r.status, 0) << r.err;
}

}  // namespace
}  // namespace zsclip
