// `zsclip classify` output for long runs: --jsonl (a labels header, then one flushed line per
// image),
// --images-from FILE|- (paths one a line), and the "labels" field of --json objects.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model_util.h"

namespace zsclip {
namespace {

using namespace ::zsclip::testing;
using json = nlohmann::json;

std::string example(const std::string& name) {
  return std::string(ZSCLIP_SOURCE_DIR) + "/examples/images/" + name;
}

TEST(CliStream, JsonlHasALabelsHeaderThenOneLinePerImageInOrder) {
  const std::string list = std::string(ZSCLIP_BINARY_DIR) + "/tmp/cli_stream_list.txt";
  std::ofstream(list) << example("red_circle.png") << "\n\n"
                      << example("missing.png") << "\r\n"
                      << example("green_triangle.png") << "\n";
  CliResult r = run_cli(
      "classify --labels 'red circle,green triangle' --batch-size 1 --jsonl --images-from " +
      sh(list) + " " + sh(example("yellow_square.png")));
  EXPECT_EQ(r.status, 1) << r.err;  // one image is missing
  std::istringstream lines(r.out);
  std::vector<json> rows;
  for (std::string line; std::getline(lines, line);) rows.push_back(json::parse(line));
  ASSERT_EQ(rows.size(), 5u) << r.out;
  EXPECT_EQ(rows[0]["labels"], json::array({"red circle", "green triangle"}));
  EXPECT_EQ(rows[0]["scoring"], "softmax");
  // Positional images first, then the list's, blank lines skipped, \r dropped.
  EXPECT_EQ(rows[1]["file"], example("yellow_square.png"));
  EXPECT_EQ(rows[2]["file"], example("red_circle.png"));
  EXPECT_EQ(rows[2]["top"][0]["label"], "red circle");
  EXPECT_EQ(rows[3]["code"], "not_found");
  EXPECT_EQ(rows[4]["top"][0]["label"], "green triangle");
  EXPECT_FALSE(rows[2].contains("labels"));
  EXPECT_NE(r.err.find("missing.png"), std::string::npos);
}

TEST(CliStream, ImagesFromStandardInputAndJsonLabels) {
  CliResult r = run_cli("classify --labels 'red circle,green triangle' --json --images-from -",
                        example("green_triangle.png") + "\n" + example("red_circle.png") + "\n");
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_EQ(j.size(), 2u);
  for (const auto& o : j) {
    EXPECT_EQ(o["labels"], json::array({"red circle", "green triangle"}));
    EXPECT_EQ(o["probs"].size(), 2u);
  }
  EXPECT_EQ(j[0]["top"][0]["label"], "green triangle");
  // Errors: a missing list, an empty one, --json with --jsonl.
  EXPECT_EQ(run_cli("classify --labels a,b --images-from /nonexistent/list.txt").status, 1);
  EXPECT_EQ(run_cli("classify --labels a,b --images-from -", "\n\n").status, 2);
  EXPECT_EQ(run_cli("classify --labels a,b --json --jsonl " + sh(example("red_circle.png"))).status,
            2);
}

}  // namespace
}  // namespace zsclip

namespace zsclip {
namespace {

using namespace ::zsclip::testing;

// Progress goes to standard error only when it is a terminal (util-linux's `script` gives it one).
TEST(CliStream, ProgressOnlyOnATerminal) {
  const std::string image = std::string(ZSCLIP_SOURCE_DIR) + "/examples/images/red_circle.png";
  const std::string args =
      "classify --labels 'red circle,blue star' --templates openai-cifar --truncate " + sh(image);
  CliResult plain = run_cli(args);
  ASSERT_EQ(plain.status, 0) << plain.err;
  EXPECT_EQ(plain.err.find("ETA"), std::string::npos) << plain.err;
  if (std::system("command -v script > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "util-linux's script is not installed";
  const std::string out = std::string(ZSCLIP_BINARY_DIR) + "/tmp/cli_stream_tty.txt";
  const std::string cmd = "script -qec " + sh(std::string(ZSCLIP_CLI) + " " + args) +
                          " /dev/null > " + sh(out) + " 2>&1 < /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const std::string tty = read_file(out);
  EXPECT_NE(tty.find("1 / 1 images"), std::string::npos) << tty;
  EXPECT_NE(tty.find("36 / 36 prompts"), std::string::npos) << tty;
  EXPECT_NE(tty.find("ETA"), std::string::npos) << tty;
}

}  // namespace
}  // namespace zsclip
