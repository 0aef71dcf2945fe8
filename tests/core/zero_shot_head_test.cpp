// The torch-free zero-shot head: prompt sets, validation, scoring, and the head file format.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "fake_encoder.h"
#include "test_util.h"
#include "zsclip/error.h"
#include "zsclip/zero_shot.h"

namespace zsclip {
namespace {

using ::zsclip::testing::temp_dir;

ZeroShotHead small_head() {
  FloatTensor w({3, 2}, std::vector<float>{1, 0, 0, 2, -1, -1});
  return ZeroShotHead::from_weights({"east", "north", "southwest"}, w, 10.f, "fp-1", {"a {}."});
}

TEST(Templates, BuiltInSetsHaveClipsCounts) {
  EXPECT_EQ(builtin_templates("openai-cifar").size(), 18u);
  EXPECT_EQ(builtin_templates("openai-imagenet").size(), 80u);
  ASSERT_EQ(builtin_templates("simple").size(), 1u);
  EXPECT_EQ(builtin_templates("simple")[0], "a photo of a {}.");
  EXPECT_EQ(builtin_templates("openai-cifar")[0], "a photo of a {}.");
  EXPECT_EQ(builtin_classes("cifar100").size(), 100u);
  EXPECT_EQ(builtin_classes("cifar100")[1], "aquarium fish");
  EXPECT_EQ(builtin_classes("imagenet").size(), 1000u);
  EXPECT_EQ(builtin_classes("cifar10").size(), 10u);
  EXPECT_THROW(builtin_templates("nope"), Error);
  EXPECT_THROW(builtin_classes("mnist"), Error);
}

TEST(Templates, FillReplacesEveryPlaceholder) {
  EXPECT_EQ(fill_template("a photo of a {}.", "cat"), "a photo of a cat.");
  EXPECT_EQ(fill_template("{} and {}", "x"), "x and x");
  EXPECT_EQ(fill_template("{}", "{}"), "{}");
}

TEST(Templates, ValidationNamesTheProblem) {
  try {
    validate_templates({"a photo of a {}.", "no placeholder"}, "t.txt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("t.txt: template 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(validate_templates({}, "t"), Error);
  EXPECT_THROW(validate_labels({}, "l"), Error);
  EXPECT_THROW(validate_labels({"a", " "}, "l"), Error);
  try {
    validate_labels({"cat", "dog", "cat"}, "labels");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"cat\" appears twice"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(validate_labels({std::string(100000, 'x'), "y"}, "l"));
  // Empty once cleaned as CLIP's tokenizer cleans: a no-break space, an ideographic space, a
  // byte-order mark, an HTML entity of a no-break space.
  for (const char* blank : {"\xC2\xA0", "\xE3\x80\x80", " \xEF\xBB\xBF ", "&nbsp;"}) {
    try {
      validate_labels({"cat", blank}, "labels");
      ADD_FAILURE() << "accepted " << blank;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("labels: label 2 is empty"), std::string::npos)
          << e.what();
    }
  }
}

// A labels or templates file saved with a UTF-8 byte-order mark: the mark is no part of the first
// line (it would be printed in every output, and make "cat" and "\uFEFFcat" two labels).
TEST(Templates, AByteOrderMarkIsStripped) {
  auto dir = temp_dir("labels_bom");
  std::ofstream(dir + "/labels.txt", std::ios::binary) << "\xEF\xBB\xBF"
                                                       << "cat\ndog\n";
  EXPECT_EQ(load_labels_file(dir + "/labels.txt"), (std::vector<std::string>{"cat", "dog"}));
  std::ofstream(dir + "/t.txt", std::ios::binary) << "\xEF\xBB\xBF"
                                                  << "a {}.\n";
  EXPECT_EQ(load_templates_file(dir + "/t.txt"), (std::vector<std::string>{"a {}."}));
  // Only at the start of the file.
  std::ofstream(dir + "/later.txt", std::ios::binary) << "cat\n\xEF\xBB\xBF"
                                                      << "dog\n";
  EXPECT_EQ(load_labels_file(dir + "/later.txt")[1],
            "\xEF\xBB\xBF"
            "dog");
}

// Labels the tokenizer cleans to the same text would get one weight vector and split every score
// 0.5/0.5: building the head refuses them, naming both.
TEST(Head, LabelsEqualAfterCleaningAreRefusedNamingBoth) {
  ::zsclip::testing::FakeTextEncoder text;
  const std::vector<std::pair<std::string, std::string>> same = {
      {"red", "Red"},      {"red", " red"},       {"red", "red "}, {"blue sky", "blue   sky"},
      {"red", "&#114;ed"}, {"red", "RED\xC2\xA0"}};
  for (const auto& [a, b] : same) {
    try {
      ZeroShotHead::build(text, {"green", a, b}, {"a {} thing.", "{}"});
      ADD_FAILURE() << "accepted \"" << a << "\" and \"" << b << "\"";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << msg;
      EXPECT_NE(msg.find("labels 2 \"" + a + "\" and 3 \"" + b + "\""), std::string::npos) << msg;
    }
  }
  // With truncation too; distinct labels are fine.
  HeadBuildOptions truncate;
  truncate.truncate = true;
  EXPECT_THROW(ZeroShotHead::build(text, {"red", "RED"}, {"{}"}, truncate), Error);
  EXPECT_NO_THROW(ZeroShotHead::build(text, {"red", "red green"}, {"{}"}));
}

TEST(Templates, FilesAreReadLineByLine) {
  auto dir = temp_dir("templates_files");
  std::ofstream(dir + "/t.txt") << "a {}.\r\n\n  \nthe {} again\n";
  auto t = load_templates_file(dir + "/t.txt");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[1], "the {} again");
  EXPECT_EQ(resolve_templates(dir + "/t.txt"), t);
  std::ofstream(dir + "/empty.txt") << "\n";
  EXPECT_THROW(load_templates_file(dir + "/empty.txt"), Error);
  EXPECT_THROW(resolve_templates(dir + "/missing.txt"), Error);
  EXPECT_THROW(load_labels_file(dir), Error);  // a directory
}

TEST(Head, ScoresAreScaledCosineSoftmax) {
  ZeroShotHead h = small_head();
  // Weights are normalised on construction.
  EXPECT_FLOAT_EQ(h.weights().at(1, 1), 1.f);
  EXPECT_NEAR(h.weights().at(2, 0), -std::sqrt(0.5f), 1e-6);
  FloatTensor x({1, 2}, std::vector<float>{3, 4});  // |x| = 5
  FloatTensor logits = h.logits(x);
  EXPECT_NEAR(logits.at(0, 0), 10.f * 3 / 5, 1e-5);
  EXPECT_NEAR(logits.at(0, 1), 10.f * 4 / 5, 1e-5);
  EXPECT_NEAR(logits.at(0, 2), 10.f * (-7 / 5.f) * std::sqrt(0.5f), 1e-5);
  auto preds = h.classify(x, 2);
  ASSERT_EQ(preds.size(), 1u);
  ASSERT_EQ(preds[0].top.size(), 2u);
  EXPECT_EQ(preds[0].top[0].label, "north");
  EXPECT_EQ(preds[0].top[1].label, "east");
  double sum = 0, z = 0;
  for (int j = 0; j < 3; ++j) z += std::exp(logits.at(0, j));
  for (int j = 0; j < 3; ++j) {
    EXPECT_NEAR(preds[0].probs[j], std::exp(logits.at(0, j)) / z, 1e-6);
    sum += preds[0].probs[j];
  }
  EXPECT_NEAR(sum, 1.0, 1e-6);
  EXPECT_NEAR(preds[0].top[0].logit, logits.at(0, 1), 1e-5);
  // top_k is clamped to the number of classes.
  EXPECT_EQ(h.classify(x, 99)[0].top.size(), 3u);
  EXPECT_THROW(h.logits(FloatTensor({1, 3})), Error);
}

TEST(Head, RejectsBadWeights) {
  EXPECT_THROW(ZeroShotHead::from_weights({"a", "b"}, FloatTensor({3, 2}, 1.f), 1.f, ""), Error);
  EXPECT_THROW(ZeroShotHead::from_weights({"a"}, FloatTensor({1, 2}, 0.f), 1.f, ""), Error);
  EXPECT_THROW(ZeroShotHead::from_weights({"a"}, FloatTensor({1, 2}, 1.f), -1.f, ""), Error);
  EXPECT_THROW(ZeroShotHead::from_weights({"a"}, FloatTensor({1, 2}, NAN), 1.f, ""), Error);
}

TEST(Head, SaveLoadRoundTrip) {
  auto dir = temp_dir("head_roundtrip");
  ZeroShotHead h = small_head();
  h.save(dir + "/h.zshead");
  ZeroShotHead g = ZeroShotHead::load(dir + "/h.zshead");
  EXPECT_EQ(g.labels(), h.labels());
  EXPECT_EQ(g.templates(), h.templates());
  EXPECT_EQ(g.model_fingerprint(), "fp-1");
  EXPECT_EQ(g.logit_scale_exp(), 10.f);
  EXPECT_EQ(g.weights().data, h.weights().data);
}

TEST(Head, CorruptFilesAreRefusedWithTheFileName) {
  auto dir = temp_dir("head_corrupt");
  small_head().save(dir + "/h.zshead");
  std::string bytes = ::zsclip::testing::read_file(dir + "/h.zshead");
  auto expect_refused = [&](const std::string& name, const std::string& content) {
    std::ofstream(dir + "/" + name, std::ios::binary) << content;
    try {
      ZeroShotHead::load(dir + "/" + name);
      ADD_FAILURE() << name << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  };
  expect_refused("truncated.zshead", bytes.substr(0, bytes.size() - 3));
  expect_refused("longer.zshead", bytes + "x");
  expect_refused("empty.zshead", "");
  expect_refused("magic.zshead", "NOTAHEAD" + bytes.substr(8));
  std::string bad_json = bytes;
  bad_json[17] = '!';
  expect_refused("json.zshead", bad_json);
  // Header integers: checked as what they are, not narrowed to int (2^40 read as 0, 1.5 as 1).
  const uint64_t n = [&] {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    return v;
  }();
  const std::string header = bytes.substr(16, n), weights = bytes.substr(16 + n);
  auto with_header = [&](const std::string& key, const std::string& value) {
    nlohmann::json h = nlohmann::json::parse(header);
    h[key] = nlohmann::json::parse(value);
    const std::string text = h.dump();
    std::string out = bytes.substr(0, 8);
    for (int i = 0; i < 8; ++i) out += static_cast<char>(uint64_t(text.size()) >> (8 * i));
    return out + text + weights;
  };
  EXPECT_NO_THROW(ZeroShotHead::load(dir + "/h.zshead"));
  std::ofstream(dir + "/same.zshead", std::ios::binary) << with_header("format_version", "1");
  EXPECT_NO_THROW(ZeroShotHead::load(dir + "/same.zshead"));  // the rewriting itself is sound
  int k = 0;
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"format_version", "1099511627776"},  // 2^40
           {"format_version", "4294967297"},     // 2^32 + 1
           {"format_version", "-5"},
           {"format_version", "0"},
           {"format_version", "1.5"},
           {"format_version", "true"},
           {"num_classes", "18446744073709551619"},
           {"num_classes", "4294967299"},
           {"embed_dim", "2.0"},
           {"logit_scale_exp", "1e300"}})
    expect_refused("int" + std::to_string(k++) + ".zshead", with_header(key, value));

  EXPECT_THROW(ZeroShotHead::load(dir + "/missing.zshead"), Error);
}

}  // namespace
}  // namespace zsclip
