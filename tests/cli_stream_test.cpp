// `zsclip classify` output for long runs: --jsonl (a labels header, then one flushed line per
// image),
// --images-from FILE|- (paths one a line), and the "labels" field of --json objects.
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model_util.h"
#include "zsclip/config.h"
#include "zsclip/index.h"
#include "zsclip/zero_shot.h"

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

// ---- --json is streamed: written as results come, never held whole (issue 23, item 5) ----

// Runs zsclip with `args` (no shell), standard output to `out_path`, standard error to `err_path`;
// returns the exit status and the peak resident memory of that process (kB, its ru_maxrss).
// zsclip is started by a small Python process, not forked from this one: Linux keeps a process's
// resident high-water mark from before its exec in ru_maxrss, so a child forked from this test
// process would report at least this process's own memory, which grows with the tests that ran
// before in the same process (parsing a 256 x 5,000-label output leaves ~100 MB here).
std::pair<int, long> run_cli_peak(const std::vector<std::string>& args, const std::string& out_path,
                                  const std::string& err_path) {
  static const char* kSpawner =
      "import os, sys\n"
      "pid = os.fork()\n"
      "if pid == 0:\n"
      "    os.execv(sys.argv[2], sys.argv[2:])\n"
      "_, status, usage = os.wait4(pid, 0)\n"
      "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
      "code = os.waitstatus_to_exitcode(status)\n"
      "sys.exit(code if code >= 0 else 128 - code)\n";
  const std::string rss_path = out_path + ".maxrss";
  std::remove(rss_path.c_str());
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int in = ::open("/dev/null", O_RDONLY);
    if (out < 0 || err < 0 || in < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> argv{const_cast<char*>(ZSCLIP_PYTHON), const_cast<char*>("-c"),
                            const_cast<char*>(kSpawner), const_cast<char*>(rss_path.c_str()),
                            const_cast<char*>(ZSCLIP_CLI)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(ZSCLIP_PYTHON, argv.data());
    ::_exit(127);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return {-1, 0};
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  const std::string rss = read_file(rss_path);
  return {code, rss.empty() ? 0 : std::stol(rss)};
}

// A head of `classes` classes with deterministic weights, for the shipped model.
std::string big_head(const std::string& dir, int classes) {
  const ModelConfig config = ModelConfig::load(source_path("models/shapes"));
  std::vector<std::string> labels;
  for (int c = 0; c < classes; ++c) labels.push_back("class " + std::to_string(c));
  FloatTensor w({classes, config.embed_dim});
  uint32_t state = 12345;
  for (float& x : w.data) {
    state = state * 1664525u + 1013904223u;
    x = static_cast<float>(state >> 8) / float(1 << 24) - 0.5f;
  }
  const std::string path = dir + "/big.zshead";
  ZeroShotHead::from_weights(labels, w, 100.f, config.fingerprint, {"a photo of a {}."}).save(path);
  return path;
}

// An index of `rows` rows (files that exist, features deterministic) for the shipped model.
std::string index_of(const std::string& dir, int rows) {
  const ModelConfig config = ModelConfig::load(source_path("models/shapes"));
  EmbeddingIndex index = EmbeddingIndex::create(config.fingerprint, config.embed_dim,
                                                IndexDtype::kFloat32, config.name);
  std::filesystem::create_directories(dir + "/files");
  std::vector<float> f(static_cast<size_t>(config.embed_dim));
  for (int r = 0; r < rows; ++r) {
    const std::string path = dir + "/files/img" + std::to_string(r) + ".png";
    std::ofstream(path) << r;
    for (size_t k = 0; k < f.size(); ++k) f[k] = std::sin(float(r * 31 + k));
    index.add({path, stamp_of(path)}, f.data());
  }
  const std::string out = dir + "/rows" + std::to_string(rows) + ".idx";
  index.save(out);
  return out;
}

// Runs `args_for(n)` for the two counts: each --json output must be n elements, byte for byte
// what one dump of the whole array gives, and the peak RSS must not grow by 30 MB from the first
// count to the second.
void expect_flat_json_memory(const std::string& dir, int small, int large,
                             const std::function<std::vector<std::string>(int)>& args_for) {
  long peak[2] = {0, 0};
  const int counts[2] = {small, large};
  for (int k = 0; k < 2; ++k) {
    const auto [status, rss] = run_cli_peak(args_for(counts[k]), dir + "/out.json", dir + "/err");
    ASSERT_EQ(status, 0) << read_file(dir + "/err");
    peak[k] = rss;
    const std::string out = read_file(dir + "/out.json");
    const json j = json::parse(out);
    ASSERT_EQ(j.size(), size_t(counts[k]));
    EXPECT_EQ(j[1]["labels"].size(), 5000u);
    EXPECT_EQ(out, j.dump(2) + "\n");  // what the whole array gave
  }
  EXPECT_LT(peak[1] - peak[0], 30 * 1024)
      << "peak RSS " << peak[0] << " kB for " << small << ", " << peak[1] << " kB for " << large;
}

// A 5,000-class head over 16 and then 256 images: --json's peak memory must not grow with the
// images (it held every element until the end: about 0.4 MB an image here, 24 GB seen for 3,000
// rows x 100,000 classes).
TEST(CliStream, JsonMemoryDoesNotGrowWithTheImages) {
  const std::string dir = temp_dir("cli_stream_json_memory");
  const std::string head = big_head(dir, 5000);
  expect_flat_json_memory(dir, 16, 256, [&](int n) {
    std::ofstream list(dir + "/list.txt");
    for (int i = 0; i < n; ++i) list << example(i % 2 ? "red_circle.png" : "blue_star.png") << "\n";
    return std::vector<std::string>{
        "classify", "--head", head, "--json", "--top-k", "2", "--images-from", dir + "/list.txt"};
  });
}

// The same for classify --index (every row's result was held, then the whole array).
TEST(CliStream, IndexJsonMemoryDoesNotGrowWithTheRows) {
  const std::string dir = temp_dir("cli_stream_index_memory");
  const std::string head = big_head(dir, 5000);
  // 256 rows fill one block of EmbeddingIndex::classify (its own, bounded, memory).
  expect_flat_json_memory(dir, 256, 1024, [&](int n) {
    return std::vector<std::string>{"classify", "--index", index_of(dir, n), "--head",
                                    head,       "--json",  "--top-k",        "2"};
  });
}

// --images-from a pipe: the first element of --json's array is written while the list is still
// open (it was written only after the whole list had been read and every image classified).
TEST(CliStream, JsonIsWrittenBeforeTheListEnds) {
  std::signal(SIGPIPE, SIG_IGN);
  int in[2], out[2];
  ASSERT_EQ(::pipe(in), 0);
  ASSERT_EQ(::pipe(out), 0);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 2);
    ::close(in[1]);
    ::close(out[0]);
    ::execl(ZSCLIP_CLI, ZSCLIP_CLI, "classify", "--labels", "red circle,green triangle", "--json",
            "--batch-size", "1", "--images-from", "-", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ASSERT_GT(pid, 0);
  ::close(in[0]);
  ::close(out[1]);
  const std::string first = example("red_circle.png") + "\n";
  ASSERT_EQ(::write(in[1], first.data(), first.size()), ssize_t(first.size()));
  // Wait (up to 90 s) for the first element, the list still open.
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (got.find("\n  }") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    pollfd p{out[0], POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  const bool early = got.find("\n  }") != std::string::npos;
  const std::string second = example("green_triangle.png") + "\n";
  ASSERT_EQ(::write(in[1], second.data(), second.size()), ssize_t(second.size()));
  ::close(in[1]);
  char buf[4096];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) got.append(buf, size_t(n));
  ::close(out[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_TRUE(early) << "nothing was written before the list ended";
  const json j = json::parse(got);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["top"][0]["label"], "red circle");
  EXPECT_EQ(j[1]["top"][0]["label"], "green triangle");
  EXPECT_EQ(got, j.dump(2) + "\n");
}

// embed writes its images as each batch is done; the document is still what one dump gives, with
// its keys in the same order.
TEST(CliStream, EmbedOutputIsOneCompactDocument) {
  CliResult r = run_cli("embed --batch-size 1 --image " + sh(example("red_circle.png")) +
                        " --image " + sh(example("missing.png")) + " --image " +
                        sh(example("blue_star.png")) + " --text 'a red circle' --text 'a star'");
  EXPECT_EQ(r.status, 1) << r.err;  // the missing image
  const json j = json::parse(r.out);
  EXPECT_EQ(r.out, j.dump() + "\n");
  ASSERT_EQ(j["images"].size(), 3u);
  ASSERT_EQ(j["logits_per_image"].size(), 3u);
  EXPECT_TRUE(j["logits_per_image"][1].is_null());
  EXPECT_EQ(j["logits_per_image"][0].size(), 2u);
  EXPECT_EQ(j["texts"].size(), 2u);
  EXPECT_GT(j["logits_per_image"][0][0].get<double>(), j["logits_per_image"][0][1].get<double>());
  CliResult texts_only = run_cli("embed --text 'a red circle'");
  ASSERT_EQ(texts_only.status, 0) << texts_only.err;
  EXPECT_EQ(texts_only.out, json::parse(texts_only.out).dump() + "\n");
  EXPECT_TRUE(json::parse(texts_only.out)["images"].empty());
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
