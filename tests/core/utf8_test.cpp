// Text that ends up in JSON or a head file: UTF-8 checks (include/zsclip/utf8.h), labels and templates
// refused up front with a message that names which, and no nlohmann exception out of the library.
#include "zsclip/utf8.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "test_util.h"
#include "zsclip/config.h"
#include "zsclip/error.h"
#include "zsclip/zero_shot.h"

namespace zsclip {
namespace {

using ::zsclip::testing::temp_dir;

TEST(Utf8, FirstInvalidByte) {
  const size_t npos = std::string::npos;
  EXPECT_EQ(utf8::first_invalid(""), npos);
  EXPECT_EQ(utf8::first_invalid("plain ascii"), npos);
  EXPECT_EQ(utf8::first_invalid("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), npos);  // é € 😀
  EXPECT_EQ(utf8::first_invalid("\xEF\xBF\xBD"), npos);  // a literal U+FFFD is valid
  EXPECT_EQ(utf8::first_invalid("a\xFF"), 1u);
  EXPECT_EQ(utf8::first_invalid("\xC0\xAF"), 0u);          // overlong '/'
  EXPECT_EQ(utf8::first_invalid("\xED\xA0\x80"), 0u);      // a surrogate
  EXPECT_EQ(utf8::first_invalid("\xF4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(utf8::first_invalid("xy\xE2\x82"), 2u);        // cut short
  EXPECT_EQ(utf8::first_invalid("ab\xE2\x82\xACx\x80"), 6u);
}

TEST(Utf8, ReplacementIsPythons) {
  // bytes.decode("utf-8", errors="replace"), checked with Python 3.11.
  EXPECT_EQ(utf8::replace_invalid("a\xF0\x9F\x98"
                                  "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(utf8::replace_invalid("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(utf8::replace_invalid("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(utf8::replace_invalid("ok \xC3\xA9"), "ok \xC3\xA9");
  EXPECT_EQ(utf8::hex(std::string("a\xFF\0z", 4)), "61ff007a");
  EXPECT_EQ(utf8::printable("red \xFF circle"), "red \\xFF circle");
  EXPECT_EQ(utf8::printable(std::string(200, 'x'), 10), "xxxxxxxxxx...(200 bytes)");
}

template <typename Fn>
void expect_invalid_text(Fn fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidText) << e.what();
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(Utf8, LabelsAndTemplatesAreCheckedUpFront) {
  expect_invalid_text(
      [] {
        validate_labels({"red circle", "blue \xFF star"}, "--labels");
      },
      {"--labels: label 2", "not valid UTF-8", "0xFF at offset 5", "blue \\xFF star"});
  expect_invalid_text([] { validate_templates({"a photo of a {}\xC3"}, "t.txt"); },
                      {"t.txt: template 1", "offset 15"});
  const std::string dir = temp_dir("utf8_files");
  std::ofstream(dir + "/labels.txt", std::ios::binary) << "cat\n\ndog \xFE\n";
  expect_invalid_text([&] { load_labels_file(dir + "/labels.txt"); },
                      {dir + "/labels.txt", "label 2"});
  // A head can only hold UTF-8: from_weights refuses the rest, so save() cannot fail on it.
  const FloatTensor w({1, 2}, std::vector<float>{1, 0});
  expect_invalid_text([&] { ZeroShotHead::from_weights({"cat\xFF"}, w, 1.f, "fp"); }, {"label 1"});
  expect_invalid_text([&] { ZeroShotHead::from_weights({"cat"}, w, 1.f, "fp", {"{}\xFF"}); },
                      {"template 1"});
  expect_invalid_text([&] { ZeroShotHead::from_weights({"cat"}, w, 1.f, "fp\xFF"); },
                      {"fingerprint"});
}

// A head file with the given JSON header and `floats` weights.
std::string head_bytes(const std::string& header, size_t floats) {
  std::string out = "ZSHEAD01";
  for (int i = 0; i < 8; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  out += header;
  out += std::string(floats * sizeof(float), '\0');
  return out;
}

TEST(Utf8, NoJsonExceptionLeavesTheLibrary) {
  const std::string dir = temp_dir("utf8_json");
  const std::vector<std::pair<std::string, std::string>> heads = {
      {"labels_not_strings",
       R"({"format_version":1,"labels":[1,2],"model_fingerprint":"f","logit_scale_exp":1,"num_classes":2,"embed_dim":1})"},
      {"bad_utf8",
       "{\"format_version\":1,\"labels\":[\"a\xFF\"],\"model_fingerprint\":\"f\",\"logit_scale_"
       "exp\":1,\"num_classes\":1,\"embed_dim\":1}"},
      {"scale_is_text",
       R"({"format_version":1,"labels":["a"],"model_fingerprint":"f","logit_scale_exp":"x","num_classes":1,"embed_dim":1})"},
      {"not_an_object", R"([1,2,3])"},
  };
  for (const auto& [name, header] : heads) {
    std::ofstream(dir + "/" + name, std::ios::binary) << head_bytes(header, 2);
    try {
      ZeroShotHead::load(dir + "/" + name);
      ADD_FAILURE() << name << " loaded";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidConfig) << name << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << name << ": not a zsclip::Error: " << e.what();
    }
  }
  for (const std::string& text :
       {std::string("{\"format_version\":1,\"name\":\"\xFF\"}"),
        std::string("{\"format_version\":1e999}"), std::string("[\"\xC0\"]")}) {
    try {
      ModelConfig::parse(text, "cfg");
      ADD_FAILURE() << text << " parsed";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidConfig) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not a zsclip::Error: " << e.what();
    }
  }
}

}  // namespace
}  // namespace zsclip
