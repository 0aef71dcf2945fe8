// Bad model directories and heads: each is a zsclip::Error with a code, naming the file and field.
#include <gtest/gtest.h>

#include <fstream>

#include "model_util.h"
#include "zsclip/classifier.h"
#include "zsclip/model.h"
#include "zsclip/zero_shot.h"

namespace zsclip {
namespace {

namespace fs = std::filesystem;
using namespace ::zsclip::testing;
using json = nlohmann::json;

class BadModels : public ::testing::Test {
 protected:
  void SetUp() override { ZSCLIP_REQUIRE_TINY_EXPORTS(); }
  // A copy of the exported tiny model that a test may damage.
  std::string copy(const std::string& name) {
    std::string dir = temp_dir("bad_models/" + name);
    fs::copy(tiny_export("state_dict"), dir,
             fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    return dir;
  }
  json config(const std::string& dir) { return json::parse(read_file(dir + "/config.json")); }
  void write_config(const std::string& dir, const json& j) {
    std::ofstream(dir + "/config.json") << j.dump(2);
  }
  // Loading fails with `code`, and the message contains every one of `parts`.
  void expect_error(const std::string& dir, ErrorCode code, std::vector<std::string> parts,
                    ModelOptions options = {}) {
    try {
      Model::load(dir, options);
      ADD_FAILURE() << dir << " loaded";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << error_code_name(e.code()) << ": " << e.what();
      for (const auto& p : parts)
        EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  }
};

TEST_F(BadModels, MissingDirectoryAndConfig) {
  expect_error("/nonexistent/model", ErrorCode::kNotFound, {"/nonexistent/model"});
  std::string dir = copy("no_config");
  fs::remove(dir + "/config.json");
  expect_error(dir, ErrorCode::kNotFound, {"config.json"});
}

TEST_F(BadModels, EachMissingFileIsNamed) {
  json c = config(tiny_export("state_dict"));
  for (const char* field : {"image_encoder", "text_encoder", "projection"}) {
    std::string dir = copy(std::string("missing_") + field);
    fs::remove(dir + "/" + c["files"][field].get<std::string>());
    expect_error(dir, ErrorCode::kNotFound,
                 {c["files"][field].get<std::string>(), std::string("files.") + field});
  }
  std::string dir = copy("missing_vocab");
  fs::remove(dir + "/" + c["tokenizer"]["vocab_file"].get<std::string>());
  Model m = Model::load(dir);
  EXPECT_THROW(m.tokenizer(), Error);
}

TEST_F(BadModels, CorruptAndTruncatedTorchScript) {
  // config.json's file_checks refuse these files first (tests/file_check_test.cpp); without the
  // check (--no-verify), the TorchScript loader must still refuse them with the file named.
  ModelOptions unverified;
  unverified.verify_files = false;
  json c = config(tiny_export("state_dict"));
  std::string file = c["files"]["image_encoder"].get<std::string>();
  std::string dir = copy("corrupt_image");
  std::ofstream(dir + "/" + file, std::ios::binary) << "this is not a zip archive";
  expect_error(dir, ErrorCode::kInvalidModel, {file, "bytes", "--no-verify"});
  expect_error(dir, ErrorCode::kInvalidModel, {file, "TorchScript"}, unverified);
  dir = copy("truncated_text");
  std::string text_file = c["files"]["text_encoder"].get<std::string>();
  std::string bytes = read_file(dir + "/" + text_file);
  std::ofstream(dir + "/" + text_file, std::ios::binary | std::ios::trunc)
      << bytes.substr(0, bytes.size() / 2);
  expect_error(dir, ErrorCode::kInvalidModel, {text_file}, unverified);
  // The wrong module in a slot: the projection file given as the image encoder.
  dir = copy("swapped");
  fs::copy_file(dir + "/" + c["files"]["projection"].get<std::string>(), dir + "/" + file,
                fs::copy_options::overwrite_existing);
  expect_error(dir, ErrorCode::kInvalidModel, {file}, unverified);
}

TEST_F(BadModels, MalformedConfig) {
  std::string dir = copy("not_json");
  std::ofstream(dir + "/config.json") << "{\"format_version\": 1, ";
  expect_error(dir, ErrorCode::kInvalidConfig, {"config.json", "not valid JSON"});

  json good = config(tiny_export("state_dict"));
  dir = copy("missing_field");
  json j = good;
  j["vision"].erase("width");
  write_config(dir, j);
  expect_error(dir, ErrorCode::kInvalidConfig, {"config.json", "vision.width", "missing"});

  dir = copy("wrong_type");
  j = good;
  j["embed_dim"] = "sixty-four";
  write_config(dir, j);
  expect_error(dir, ErrorCode::kInvalidConfig, {"embed_dim", "integer"});

  dir = copy("bad_mean");
  j = good;
  j["preprocess"]["std"] = {0.2, 0.0, 0.3};
  write_config(dir, j);
  expect_error(dir, ErrorCode::kInvalidConfig, {"preprocess.std"});

  dir = copy("newer_format");
  j = good;
  j["format_version"] = 99;
  write_config(dir, j);
  expect_error(dir, ErrorCode::kUnsupported, {"format_version 99", "newer"});
}

TEST_F(BadModels, ShapesThatDisagreeWithTheModules) {
  json good = config(tiny_export("state_dict"));
  struct Case {
    const char* name;
    std::function<void(json&)> edit;
    std::string field;
  };
  std::vector<Case> cases = {
      {"embed_dim", [](json& j) { j["embed_dim"] = j["embed_dim"].get<int>() * 2; }, "embed_dim"},
      {"vision_width", [](json& j) { j["vision"]["width"] = 96; }, "vision.width"},
      {"text_width", [](json& j) { j["text"]["width"] = 32; }, "text.width"},
      {"context",
       [](json& j) {
         j["text"]["context_length"] = 40;
         if (j["tokenizer"].contains("context_length")) j["tokenizer"]["context_length"] = 40;
       },
       "text.context_length"},
      {"image_size",
       [](json& j) {
         j["vision"]["image_size"] = 192;
         j["preprocess"]["image_size"] = 192;
       },
       "image_encoder"},
  };
  for (const auto& c : cases) {
    std::string dir = copy(std::string("shape_") + c.name);
    json j = good;
    c.edit(j);
    write_config(dir, j);
    expect_error(dir, ErrorCode::kInvalidModel, {c.field});
  }
}

TEST_F(BadModels, VocabularyThatDoesNotMatchTheTextEncoder) {
  std::string dir = copy("vocab_mismatch");
  json j = config(dir);
  j["tokenizer"]["num_merges"] = 1000;
  j["text"]["vocab_size"] = 1514;  // consistent with num_merges, not with the embedding
  write_config(dir, j);
  expect_error(dir, ErrorCode::kInvalidModel, {"token_embedding", "text.vocab_size"});
}

TEST_F(BadModels, DeviceAndDtypeOptions) {
  ModelOptions o;
  o.device = "tpu";
  expect_error(tiny_export("state_dict"), ErrorCode::kInvalidArgument, {"tpu"}, o);
  if (!cuda_available()) {
    o.device = "cuda";
    expect_error(tiny_export("state_dict"), ErrorCode::kUnsupported, {"cuda"}, o);
  }
  o = {};
  o.dtype = "float16";
  expect_error(tiny_export("state_dict"), ErrorCode::kUnsupported, {"float16"}, o);
}

TEST_F(BadModels, HeadFromAnotherModelIsRefused) {
  Model a = Model::load(tiny_export("state_dict"));
  ZeroShotHead head = ZeroShotHead::build(a, {"cat", "dog"}, {"a photo of a {}."});
  std::string dir = copy("other_model");
  json j = config(dir);
  j["fingerprint"] = "0000another";
  write_config(dir, j);
  std::string path = temp_dir("other_head") + "/h.zshead";
  head.save(path);
  try {
    ZeroShotClassifier::from_head(dir, path);
    ADD_FAILURE() << "a head of another model was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
    EXPECT_NE(std::string(e.what()).find("h.zshead"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fingerprint"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(ZeroShotClassifier::from_head(tiny_export("state_dict"), path));
}

TEST_F(BadModels, ProcessWideRuntimeSettingsCannotChange) {
  // The first load fixes LibTorch's threads and engine for the process (here: the defaults).
  Model first = Model::load(tiny_export("state_dict"));
  EXPECT_EQ(first.runtime(), Runtime::default_runtime());
  RuntimeOptions more_intra;
  more_intra.intra_op_threads = 2;
  ModelOptions o;
  o.runtime = Runtime::create(more_intra);
  expect_error(tiny_export("state_dict"), ErrorCode::kInvalidArgument,
               {"intra_op_threads 2", "process-wide"}, o);
  // Per-runtime settings (the thread count) may differ freely.
  RuntimeOptions two;
  two.threads = 2;
  o.runtime = Runtime::create(two);
  Model second = Model::load(tiny_export("state_dict"), o);
  EXPECT_EQ(second.runtime(), o.runtime);
  EXPECT_EQ(second.runtime()->threads(), 2);
  // A classifier made from it uses the model's runtime unless it is given one.
  ZeroShotClassifier clf(second, ZeroShotHead::build(second, {"cat", "dog"}, {"a photo of a {}."}));
  EXPECT_EQ(clf.runtime(), o.runtime);
  EXPECT_EQ(clf.preprocessor().runtime(), o.runtime);
  // streams must not be negative.
  o.streams = -1;
  expect_error(tiny_export("state_dict"), ErrorCode::kInvalidArgument, {"streams"}, o);
}

TEST_F(BadModels, ImageOnlyLoadingRefusesText) {
  ModelOptions o;
  o.load_text_encoder = false;
  Model m = Model::load(tiny_export("state_dict"), o);
  EXPECT_FALSE(m.has_text_encoder());
  EXPECT_THROW(m.encode_texts(IdTensor({1, m.context_length()})), Error);
  // Image-only loading works without the text encoder file.
  std::string dir = copy("image_only");
  fs::remove(dir + "/" + config(dir)["files"]["text_encoder"].get<std::string>());
  EXPECT_NO_THROW(Model::load(dir, o));
}

TEST_F(BadModels, BadInputsToTheEncoders) {
  Model m = Model::load(tiny_export("state_dict"));
  EXPECT_THROW(m.encode_images(FloatTensor({1, 3, 32, 32})), Error);
  IdTensor ids({1, m.context_length()});
  ids.at(0, 0) = m.config().text.vocab_size;  // out of range
  EXPECT_THROW(m.encode_texts(ids), Error);
  EXPECT_EQ(m.encode_images(FloatTensor({0, 3, m.image_size(), m.image_size()})).size(0), 0);
}

}  // namespace
}  // namespace zsclip
