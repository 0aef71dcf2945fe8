// The zsclip command-line tool, run as a user runs it.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "model_util.h"

namespace zsclip {
namespace {

using namespace ::zsclip::testing;
using json = nlohmann::json;

TEST(Cli, HelpDescribesEverySubcommand) {
  CliResult r = run_cli("--help");
  EXPECT_EQ(r.status, 0);
  for (const char* sub : {"tokenize", "preprocess", "embed", "head", "classify", "info"}) {
    EXPECT_NE(r.out.find(sub), std::string::npos) << sub;
    CliResult h = run_cli(std::string(sub) + " --help");
    EXPECT_EQ(h.status, 0) << sub;
    EXPECT_NE(h.out.find("usage: zsclip " + std::string(sub)), std::string::npos) << h.out;
  }
  CliResult bad = run_cli("classify --no-such-option x.png");
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("--no-such-option"), std::string::npos) << bad.err;
  EXPECT_EQ(run_cli("frobnicate").status, 2);
}

TEST(Cli, TokenizeMatchesOpenAI) {
  ZSCLIP_REQUIRE_SHARED("clip/tokenizer_cases.jsonl");
  const std::string vocab = sh(shared_path("clip/bpe_simple_vocab_16e6.txt.gz"));
  std::istringstream cases(read_file(shared_path("clip/tokenizer_cases.jsonl")));
  std::string line, input;
  std::vector<json> want;
  for (int n = 0; std::getline(cases, line) && n < 200; ++n) {
    json c = json::parse(line);
    input += json(c["text"]).dump() + "\n";
    want.push_back(c);
  }
  CliResult r = run_cli("tokenize --vocab " + vocab + " -", input);
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream out(r.out);
  for (const auto& c : want) {
    ASSERT_TRUE(std::getline(out, line));
    EXPECT_EQ(json::parse(line), c["tokens"]) << c["text"];
  }
  CliResult bpe = run_cli("tokenize --bpe-only --vocab " + vocab + " " + sh("A photo of a CAT."));
  EXPECT_EQ(json::parse(bpe.out), json::parse("[320, 1125, 539, 320, 2368, 269]"));
  CliResult too_long = run_cli("tokenize --no-truncate --context-length 4 --vocab " + vocab + " " +
                               sh("one two three four five"));
  EXPECT_EQ(too_long.status, 1);
  EXPECT_NE(too_long.err.find("one two"), std::string::npos) << too_long.err;
  EXPECT_EQ(run_cli("tokenize --vocab /nonexistent/vocab.gz hi").status, 1);
  EXPECT_EQ(run_cli("tokenize --context-length 1 --vocab " + vocab + " hi").status, 2);
}

TEST(Cli, PreprocessWritesOpenAIsTensor) {
  ZSCLIP_REQUIRE_SHARED("clip/openai-tiny/pixels/astronaut.f32");
  const std::string out = temp_dir("cli_preprocess") + "/a.f32";
  CliResult r = run_cli("preprocess --image-size 224 --out " + sh(out) + " " +
                        sh(shared_path("images/astronaut.png")));
  ASSERT_EQ(r.status, 0) << r.err;
  std::string got = read_file(out),
              want = read_file(shared_path("clip/openai-tiny/pixels/astronaut.f32"));
  ASSERT_EQ(got.size(), want.size());
  const float* g = reinterpret_cast<const float*>(got.data());
  const float* w = reinterpret_cast<const float*>(want.data());
  double max_diff = 0;
  for (size_t i = 0; i < got.size() / 4; ++i)
    max_diff = std::max(max_diff, double(std::abs(g[i] - w[i])));
  EXPECT_LT(max_diff, 1e-6);
  CliResult bad = run_cli("preprocess --image-size 224 --out " + sh(out) + " " +
                          sh(shared_path("images/truncated.jpg")));
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("truncated.jpg"), std::string::npos) << bad.err;
}

TEST(Cli, EmbedMatchesTheReference) {
  ZSCLIP_REQUIRE_TINY_EXPORTS();
  json ref = reference();
  // --truncate: one reference text is longer than the context (OpenAI's reference cut it).
  std::string args =
      "embed --truncate --model " + sh(tiny_export("jit_archive")) + " --batch-size 3";
  for (const auto& im : ref["images"])
    args += " --image " + sh(shared_path("images/" + im["file"].get<std::string>()));
  for (const auto& t : ref["texts"]) args += " --text " + sh(t["text"].get<std::string>());
  CliResult r = run_cli(args);
  ASSERT_EQ(r.status, 0) << r.err;
  json out = json::parse(r.out);
  ASSERT_EQ(out["images"].size(), ref["images"].size());
  for (size_t i = 0; i < ref["images"].size(); ++i) {
    EXPECT_TRUE(close_rel(out["images"][i]["features"].get<std::vector<float>>(),
                          ref["images"][i]["image_features"].get<std::vector<double>>(), 1e-4,
                          "image"));
    EXPECT_TRUE(close_rel(out["logits_per_image"][i].get<std::vector<float>>(),
                          ref["logits_per_image"][i].get<std::vector<double>>(), 1e-4, "logits"));
  }
  for (size_t j = 0; j < ref["texts"].size(); ++j) {
    EXPECT_EQ(out["texts"][j]["tokens"], ref["texts"][j]["tokens"]);
    EXPECT_TRUE(close_rel(out["texts"][j]["features"].get<std::vector<float>>(),
                          ref["texts"][j]["text_features"].get<std::vector<double>>(), 1e-4,
                          "text"));
  }
}

TEST(Cli, ClassifyReportsABadImageAndClassifiesTheOthers) {
  ZSCLIP_REQUIRE_TINY_EXPORTS();
  json ref = reference();
  const auto& zs = ref["zero_shot"];
  const std::string dir = temp_dir("cli_classify");
  {
    std::ofstream t(dir + "/templates.txt");
    for (const auto& s : zs["templates"]) t << s.get<std::string>() << "\n";
    std::ofstream l(dir + "/labels.txt");
    for (const auto& s : zs["classes"]) l << s.get<std::string>() << "\n";
  }
  std::string images;
  for (const auto& im : ref["images"])
    images += " " + sh(shared_path("images/" + im["file"].get<std::string>()));
  const std::string common =
      " --model " + sh(tiny_export("state_dict")) + " --templates " + sh(dir + "/templates.txt");
  for (int bs : {1, 3, 16}) {
    CliResult r = run_cli("classify --json --top-k 3 --batch-size " + std::to_string(bs) + common +
                          " --labels-file " + sh(dir + "/labels.txt") + images + " " +
                          sh(shared_path("images/truncated.jpg")));
    EXPECT_EQ(r.status, 1) << "a bad image makes the exit status non-zero";
    EXPECT_NE(r.err.find("truncated.jpg"), std::string::npos) << r.err;
    json out = json::parse(r.out);
    ASSERT_EQ(out.size(), ref["images"].size() + 1);
    for (size_t i = 0; i < ref["images"].size(); ++i) {
      EXPECT_TRUE(close_rel(out[i]["probs"].get<std::vector<float>>(),
                            zs["probs"][i].get<std::vector<double>>(), 1e-4,
                            "batch " + std::to_string(bs)));
      EXPECT_EQ(out[i]["top"].size(), 3u);
    }
    EXPECT_TRUE(out.back().contains("error"));
  }
  // A saved head gives the same answers without the text encoder.
  std::string head = dir + "/tiny.zshead";
  CliResult h =
      run_cli("head" + common + " --labels-file " + sh(dir + "/labels.txt") + " --out " + sh(head));
  ASSERT_EQ(h.status, 0) << h.err;
  CliResult r = run_cli("classify --json --model " + sh(tiny_export("state_dict")) + " --head " +
                        sh(head) + images);
  ASSERT_EQ(r.status, 0) << r.err;
  json out = json::parse(r.out);
  for (size_t i = 0; i < ref["images"].size(); ++i)
    EXPECT_TRUE(close_rel(out[i]["probs"].get<std::vector<float>>(),
                          zs["probs"][i].get<std::vector<double>>(), 1e-4, "from head"));
  // The table output names each file and its best label.
  CliResult table =
      run_cli("classify --top-k 1" + common + " --labels-file " + sh(dir + "/labels.txt") + images);
  EXPECT_EQ(table.status, 0) << table.err;
  EXPECT_NE(table.out.find("astronaut.png"), std::string::npos);
}

}  // namespace
}  // namespace zsclip

namespace zsclip {
namespace {

using namespace ::zsclip::testing;
using json = nlohmann::json;

std::string shipped_image(const std::string& name) {
  return source_path("examples/images/" + name + ".png");
}

// A sigmoid-scored model's table (issue 23): every label printed as 0.0000 and no word of
// "sigmoid". The table now says which scoring it shows and gives each score with enough digits to
// read it back.
TEST(Cli, SigmoidTableSaysSoAndShowsTheScores) {
  const std::string model = std::string(ZSCLIP_FIXTURE_DIR) + "/openclip-knobs";
  if (!std::filesystem::exists(model + "/config.json"))
    GTEST_SKIP() << model << " is absent (../shared/clip/openclip-knobs; export_fixtures makes it)";
  const std::string args = "classify --model " + sh(model) +
                           " --labels 'red circle,blue star,green triangle' --top-k 3 " +
                           sh(shipped_image("red_circle"));
  CliResult table = run_cli(args);
  ASSERT_EQ(table.status, 0) << table.err;
  CliResult lines = run_cli(args + " --jsonl");
  ASSERT_EQ(lines.status, 0) << lines.err;
  std::istringstream in(lines.out);
  std::string header, row;
  ASSERT_TRUE(std::getline(in, header) && std::getline(in, row));
  ASSERT_EQ(json::parse(header)["scoring"], "sigmoid");
  const json top = json::parse(row)["top"];
  EXPECT_NE(table.out.find("sigmoid"), std::string::npos) << table.out;
  // Each "  SCORE  LABEL" line reads back as the JSON's score, to 4 significant digits.
  std::istringstream t(table.out);
  size_t seen = 0;
  for (std::string line; std::getline(t, line);) {
    for (const auto& s : top) {
      const std::string label = s["label"].get<std::string>();
      if (line.size() < label.size() + 2 ||
          line.compare(line.size() - label.size(), label.size(), label) != 0 ||
          line.rfind("  ", 0) != 0)
        continue;
      const double printed = std::stod(line.substr(2, line.size() - label.size() - 4));
      const double want = s["prob"].get<double>();
      EXPECT_NEAR(printed, want, 1e-3 * std::abs(want)) << line;
      EXPECT_GT(printed, 0.0) << line;
      ++seen;
    }
  }
  EXPECT_EQ(seen, 3u) << table.out;
}

// Labels that are one label once cleaned (case, spaces, HTML entities) are refused, naming both;
// a label that is only a no-break space is empty; a labels file's byte-order mark is stripped.
TEST(Cli, LabelsAreDistinctAfterCleaning) {
  const std::string img = sh(shipped_image("red_circle"));
  CliResult r = run_cli("classify --labels 'red circle,Red Circle' " + img);
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("labels 1 \"red circle\" and 2 \"Red Circle\""), std::string::npos) << r.err;
  r = run_cli("head --labels " + sh("blue star,\xC2\xA0") + " --out " +
              sh(temp_dir("cli_labels") + "/h.zshead"));
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("label 2 is empty"), std::string::npos) << r.err;
  const std::string file = temp_dir("cli_labels") + "/labels.txt";
  std::ofstream(file, std::ios::binary) << "\xEF\xBB\xBFred circle\nblue star\n";
  r = run_cli("classify --jsonl --labels-file " + sh(file) + " " + img);
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream in(r.out);
  std::string header;
  ASSERT_TRUE(std::getline(in, header));
  EXPECT_EQ(json::parse(header)["labels"], json::array({"red circle", "blue star"}));
}

}  // namespace
}  // namespace zsclip

namespace zsclip {
namespace {

using namespace ::zsclip::testing;

// README.md's C++ examples (examples/readme_*.cpp, which readme_examples_test keeps equal to the
// README) run on the shipped model from the source folder, as the README says.
TEST(Cli, ReadmeExamplesRun) {
  for (const std::string name : {"readme_api", "readme_runtime"}) {
    const std::string exe = std::string(ZSCLIP_BINARY_DIR) + "/bin/" + name;
    if (!std::filesystem::exists(exe)) GTEST_SKIP() << exe << " is not built (the examples)";
    const std::string out = temp_dir("cli_readme") + "/" + name + ".out";
    const std::string cmd = "cd " + sh(ZSCLIP_SOURCE_DIR) + " && " + sh(exe) + " > " + sh(out) +
                            " 2> /dev/null < /dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << name;
    const std::string text = read_file(out);
    EXPECT_EQ(text.rfind(name == "readme_api" ? "red circle " : "blue star\n", 0), 0u)
        << name << ": " << text;
  }
}

}  // namespace
}  // namespace zsclip
