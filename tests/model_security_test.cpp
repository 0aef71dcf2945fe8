// Model folders that cannot be verified: a config.json without "file_checks" or without a
// "fingerprint" loads with one warning on standard error (once per process and folder), and an
// empty fingerprint matches no fingerprint, not even another empty one (heads, indexes).
// Uses copies of the shipped models/shapes (no exported fixture needed).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "fake_encoder.h"
#include "model_util.h"
#include "zsclip/classifier.h"
#include "zsclip/index.h"
#include "zsclip/model.h"
#include "zsclip/pipeline.h"
#include "zsclip/zero_shot.h"

namespace zsclip {
namespace {

namespace fs = std::filesystem;
using namespace ::zsclip::testing;
using json = nlohmann::json;

// A copy of models/shapes with config.json's `drop` keys removed.
std::string shapes_copy(const std::string& name, const std::vector<std::string>& drop) {
  const std::string dir = temp_dir("model_security/" + name);
  fs::copy(source_path("models/shapes"), dir,
           fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  json c = json::parse(read_file(dir + "/config.json"));
  for (const auto& k : drop) c.erase(k);
  std::ofstream(dir + "/config.json") << c.dump(2);
  return dir;
}

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = 0; (pos = text.find(needle, pos)) != std::string::npos; pos += needle.size())
    ++n;
  return n;
}

ModelOptions quick() {
  ModelOptions o;
  o.warmup = false;
  o.optimize = false;
  return o;
}

TEST(ModelSecurity, WarnsOncePerProcessAndFolder) {
  const std::string bare = shapes_copy("bare", {"file_checks", "fingerprint"});
  const std::string no_fp = shapes_copy("no_fingerprint", {"fingerprint"});
  const std::string no_checks = shapes_copy("no_file_checks", {"file_checks"});
  ::testing::internal::CaptureStderr();
  Model::load(bare, quick());
  Model::load(bare, quick());
  Model::load(bare + "/.", quick());  // the same folder spelled differently
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(count(err, "zsclip: warning:"), 1u) << err;
  EXPECT_NE(err.find(bare + "/config.json"), std::string::npos) << err;
  EXPECT_NE(err.find("\"file_checks\""), std::string::npos) << err;
  EXPECT_NE(err.find("image_encoder.pt"), std::string::npos) << err;
  EXPECT_NE(err.find("\"fingerprint\""), std::string::npos) << err;
  EXPECT_NE(err.find("Security"), std::string::npos) << err;

  ::testing::internal::CaptureStderr();
  Model::load(no_fp, quick());
  Model::load(no_fp, quick());
  err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(count(err, "zsclip: warning:"), 1u) << err;
  EXPECT_NE(err.find("\"fingerprint\""), std::string::npos) << err;
  EXPECT_EQ(err.find("file_checks"), std::string::npos) << err;

  ::testing::internal::CaptureStderr();
  Model::load(no_checks, quick());
  ModelOptions unverified = quick();
  unverified.verify_files = false;
  Model::load(no_checks, unverified);
  err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(count(err, "zsclip: warning:"), 1u) << err;
  EXPECT_NE(err.find("has no \"file_checks\""), std::string::npos) << err;
  EXPECT_EQ(err.find("\"fingerprint\""), std::string::npos) << err;

  ::testing::internal::CaptureStderr();
  Model::load(source_path("models/shapes"), quick());
  err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "");
}

TEST(ModelSecurity, PartialFileChecksNameTheUncheckedFile) {
  const std::string dir = shapes_copy("partial", {});
  json c = json::parse(read_file(dir + "/config.json"));
  c["file_checks"].erase("image_encoder.pt");
  std::ofstream(dir + "/config.json") << c.dump(2);
  ::testing::internal::CaptureStderr();
  Model::load(dir, quick());
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("no \"file_checks\" entry for image_encoder.pt"), std::string::npos) << err;
  EXPECT_EQ(err.find("projection.pt"), std::string::npos) << err;
}

TEST(ModelSecurity, CliWarnsOnceOnStandardError) {
  const std::string bare = shapes_copy("cli_bare", {"file_checks", "fingerprint"});
  CliResult r = run_cli("info --model " + sh(bare));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count(r.err, "zsclip: warning:"), 1u) << r.err;
  EXPECT_NE(r.err.find("\"file_checks\""), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\"fingerprint\""), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("warning"), std::string::npos) << r.out;  // stdout stays JSON
  // classify --labels builds its head in memory from the same model: it still works.
  r = run_cli("classify --model " + sh(bare) + " --labels 'red circle,blue star' " +
              sh(test_data("preprocess/bin_41x23.png")));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count(r.err, "zsclip: warning:"), 1u) << r.err;
  // bench makes a head of random class weights for the model: it still works.
  r = run_cli("bench --model " + sh(bare) + " --batch-size 1 --iterations 1 --images " +
              sh(test_data("preprocess/bin_41x23.png")));
  EXPECT_EQ(r.status, 0) << r.err;
  // The shipped model records both: no warning.
  r = run_cli("info --model " + sh(source_path("models/shapes")));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
}

// A head file written by hand (the format of ZeroShotHead::save), recording `fingerprint`.
void write_head(const std::string& path, const std::string& fingerprint, int64_t d) {
  json h = {{"format_version", 1},      {"labels", {"a", "b"}}, {"model_fingerprint", fingerprint},
            {"logit_scale_exp", 100.0}, {"num_classes", 2},     {"embed_dim", d}};
  const std::string text = h.dump();
  std::string bytes = "ZSHEAD01";
  for (int i = 0; i < 8; ++i) bytes += static_cast<char>((text.size() >> (8 * i)) & 0xFF);
  bytes += text;
  std::vector<float> w(static_cast<size_t>(2 * d), 0.f);
  w[0] = 1.f;
  w[static_cast<size_t>(d) + 1] = 1.f;
  bytes.append(reinterpret_cast<const char*>(w.data()), w.size() * sizeof(float));
  std::ofstream(path, std::ios::binary) << bytes;
}

TEST(ModelSecurity, EmptyFingerprintMatchesNoFingerprint) {
  FloatTensor w({2, 3}, {1, 0, 0, 0, 1, 0});  // the fake encoder's embed_dim is 3
  ZeroShotHead empty = ZeroShotHead::from_weights({"a", "b"}, w, 100.f, "");
  ZeroShotHead named = ZeroShotHead::from_weights({"a", "b"}, w, 100.f, "fp-1");
  FakeImageEncoder no_fp(8, ""), fp(8, "fp-1");
  for (auto [head, enc] : {std::pair{&empty, &no_fp}, {&empty, &fp}, {&named, &no_fp}}) {
    try {
      ZeroShotPipeline pipeline(std::shared_ptr<const ImageEncoder>(enc, [](auto*) {}), *head);
      ADD_FAILURE() << "head \"" << head->model_fingerprint() << "\" accepted for encoder \""
                    << enc->fingerprint() << "\"";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidModel) << e.what();
      EXPECT_NE(std::string(e.what()).find("no fingerprint"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(named.check_compatible(fp));
  // Class weights given for this very encoder (zsclip bench's random head) are its own.
  EXPECT_NO_THROW(ZeroShotHead::from_weights({"a", "b"}, w, 100.f, no_fp).check_compatible(no_fp));
  // A head without a fingerprint cannot be saved: it could never be matched again.
  const std::string dir = temp_dir("model_security/heads");
  try {
    empty.save(dir + "/empty.head");
    ADD_FAILURE() << "a head without a model fingerprint was saved";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
    EXPECT_NE(std::string(e.what()).find("fingerprint"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir + "/empty.head"));
}

TEST(ModelSecurity, HeadFileWithEmptyFingerprintIsRefusedForModelWithout) {
  const std::string bare = shapes_copy("head_bare", {"fingerprint"});
  const int64_t d = json::parse(read_file(bare + "/config.json")).at("embed_dim").get<int64_t>();
  const std::string dir = temp_dir("model_security/head_files");
  const std::string head = dir + "/empty.head";
  write_head(head, "", d);
  ASSERT_EQ(ZeroShotHead::load(head).model_fingerprint(), "");
  try {
    ZeroShotClassifier::from_head(bare, head, quick());
    ADD_FAILURE() << "a head recording \"\" was accepted for a model whose fingerprint is \"\"";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidModel) << e.what();
    EXPECT_NE(std::string(e.what()).find(head), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no fingerprint"), std::string::npos) << e.what();
  }
  CliResult r = run_cli("classify --model " + sh(bare) + " --head " + sh(head) + " " +
                        sh(test_data("preprocess/bin_41x23.png")));
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.err.find("no fingerprint"), std::string::npos) << r.err;
  // `zsclip head` refuses to save one for such a model.
  r = run_cli("head --model " + sh(bare) + " --labels a,b --out " + sh(dir + "/new.head"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("fingerprint"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/new.head"));
}

TEST(ModelSecurity, IndexesRefuseAnEmptyFingerprint) {
  try {
    EmbeddingIndex::create("", 4, IndexDtype::kFloat32, "m");
    ADD_FAILURE() << "an index without a model fingerprint was created";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidModel) << e.what();
  }
  EmbeddingIndex index = EmbeddingIndex::create("fp-1", 4, IndexDtype::kFloat32, "m");
  FloatTensor w({2, 4}, {1, 0, 0, 0, 0, 1, 0, 0});
  EXPECT_THROW(index.check_compatible(ZeroShotHead::from_weights({"a", "b"}, w, 1.f, "")), Error);
  EXPECT_NO_THROW(index.check_compatible(ZeroShotHead::from_weights({"a", "b"}, w, 1.f, "fp-1")));
  // `zsclip index build` with a model without a fingerprint: refused before anything is written.
  const std::string bare = shapes_copy("index_bare", {"fingerprint"});
  const std::string out = temp_dir("model_security/index") + "/idx";
  CliResult r = run_cli("index build --model " + sh(bare) + " --out " + sh(out) + " " +
                        sh(test_data("preprocess/bin_41x23.png")));
  EXPECT_NE(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("has no fingerprint"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out + "/index.json"));
}

}  // namespace
}  // namespace zsclip
