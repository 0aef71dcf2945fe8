// `zsclip tokenize --model DIR` on a model folder whose config.json (format_version 3) names a
// SentencePiece tokenizer: the ids of ../shared/clip/siglip-tiny/reference.json.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "model_util.h"
#include "sentencepiece_util.h"

namespace zsclip {
namespace {

using namespace ::zsclip::testing;
using json = nlohmann::json;

std::string siglip_tokenizer_dir() {
  const std::string dir = temp_dir("cli_sentencepiece");
  std::filesystem::copy_file(shared_path("clip/siglip-tiny/spiece.model"), dir + "/spiece.model");
  const json cfg = siglip_tiny_tokenizer_config();
  std::ofstream(dir + "/config.json") << cfg.dump();
  return dir;
}

TEST(CliSentencePiece, TokenizePrintsTheReferenceIds) {
  ZSCLIP_REQUIRE_SHARED("clip/siglip-tiny/reference.json");
  const std::string dir = siglip_tokenizer_dir();
  const json ref = json::parse(read_file(shared_path("clip/siglip-tiny/reference.json")));
  std::string input, want;
  for (const auto& t : ref.at("texts")) {
    input += t.at("text").dump() + "\n";
    want += t.at("tokens").dump() + "\n";
  }
  const CliResult r = run_cli("tokenize --model " + sh(dir) + " -", input);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, want);
  // --bpe-only: the pieces alone, no eos.
  const CliResult bare =
      run_cli("tokenize --bpe-only --model " + sh(dir) + " " + sh("a photo of a cat."));
  EXPECT_EQ(bare.out, "[11,1289,35,118,26,11,98,90]\n") << bare.err;
}

}  // namespace
}  // namespace zsclip
