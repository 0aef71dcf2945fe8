// A classifier under stress: bad text inputs, one classifier shared by many threads, and memory over
// many calls.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "model_util.h"
#include "zsclip/classifier.h"
#include "zsclip/tokenizer.h"

namespace zsclip {
namespace {

using namespace ::zsclip::testing;

std::string shapes_model() { return source_path("models/shapes"); }
std::vector<std::string> example_images() {
  std::vector<std::string> out;
  for (const char* f : {"red_circle", "blue_star", "green_triangle", "yellow_square",
                        "orange_circle", "black_star"})
    out.push_back(source_path(std::string("examples/images/") + f + ".png"));
  return out;
}
const std::vector<std::string> kLabels = {"red circle",    "blue star",     "green triangle",
                                          "yellow square", "orange circle", "black star",
                                          "white hexagon", "purple cross"};

long rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string key;
  long value = 0;
  while (in >> key) {
    if (key == "VmRSS:") {
      in >> value;
      return value;
    }
    in.ignore(4096, '\n');
  }
  return -1;
}

TEST(Reliability, BadLabelsAndTemplatesAreErrorsNotCrashes) {
  Model model = Model::load(shapes_model());
  auto expect_invalid = [&](const std::vector<std::string>& labels,
                            const std::vector<std::string>& templates, const std::string& needle) {
    try {
      ZeroShotHead::build(model, labels, templates);
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_invalid({}, {"a {}"}, "no labels");
  expect_invalid({"red circle", "red circle"}, {"a {}"}, "appears twice");
  expect_invalid({"red circle"}, {"a photo"}, "has no \"{}\"");
  expect_invalid({"red circle"}, {}, "no templates");
  // A 100,000-character label is cut only when asked (input_output_test has the details); invalid
  // UTF-8 is refused up front.
  std::string huge(100000, 'x');
  HeadBuildOptions truncate;
  truncate.truncate = true;
  ZeroShotHead head =
      ZeroShotHead::build(model, {huge, "blue star"}, {"a photo of a {}."}, truncate);
  EXPECT_EQ(head.num_classes(), 2);
  EXPECT_EQ(head.truncated_prompts(), 1);
  for (float w : head.weights().data) ASSERT_TRUE(std::isfinite(w));
  EXPECT_THROW(ZeroShotHead::build(model, {huge, "blue star"}, {"a photo of a {}."}), Error);
  EXPECT_THROW(
      ZeroShotHead::build(model, {"red \xff\xfe circle \xc3", "blue star"}, {"a {}"}, truncate),
      Error);
}

TEST(Reliability, CliReportsBadTextInputs) {
  const std::string img = sh(example_images()[0]);
  const std::string dir = temp_dir("reliability_cli_text");
  std::ofstream(dir + "/empty_templates.txt") << "\n\n";
  std::ofstream(dir + "/empty_labels.txt") << "";
  struct Case {
    std::string args;
    std::string needle;
  };
  std::vector<Case> cases = {
      {"classify --labels '' " + img, "empty"},
      {"classify --labels 'a,b,a' " + img, "appears twice"},
      {"classify --labels 'a,b' --templates " + sh(dir + "/empty_templates.txt") + " " + img,
       "no templates"},
      {"classify --labels-file " + sh(dir + "/empty_labels.txt") + " " + img, "no labels"},
      {"classify --labels-file /nonexistent/labels.txt " + img, "/nonexistent/labels.txt"},
      {"classify --labels a,b --templates no-such-set " + img, "no-such-set"},
      {"classify --model /nonexistent/model --labels a,b " + img, "/nonexistent/model"},
  };
  for (const auto& c : cases) {
    CliResult r = run_cli(c.args);
    EXPECT_EQ(r.status, 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.args << "\n" << r.err;
  }
}

TEST(Reliability, EightThreadsShareOneClassifier) {
  ClassifierOptions co;
  co.top_k = 3;
  auto clf =
      ZeroShotClassifier::create(shapes_model(), kLabels, builtin_templates("simple"), {}, co);
  const auto images = example_images();
  std::vector<Classification> expected;
  for (const auto& p : images) expected.push_back(clf.classify_file(p));
  std::vector<std::vector<Classification>> got(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep)
        for (size_t i = 0; i < images.size(); ++i) {
          // Alternate single calls and batches so both paths run concurrently.
          if ((t + rep) % 2 == 0) {
            got[t].push_back(clf.classify_file(images[i]));
          } else if (i == 0) {
            auto batch = clf.classify_files(images);
            got[t].insert(got[t].end(), batch.begin(), batch.end());
          }
        }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) {
    ASSERT_EQ(got[t].size(), 5 * images.size());
    for (size_t k = 0; k < got[t].size(); ++k) {
      const auto& a = got[t][k];
      const auto& b = expected[k % images.size()];
      ASSERT_TRUE(a.ok) << a.error;
      EXPECT_EQ(a.top[0].label, b.top[0].label);
      // Single calls are bit-identical; batches may differ by GEMM rounding only.
      for (size_t j = 0; j < a.probs.size(); ++j) ASSERT_NEAR(a.probs[j], b.probs[j], 1e-5);
    }
  }
}

TEST(Reliability, MemoryStaysFlatOverTenThousandCalls) {
  auto clf = ZeroShotClassifier::create(shapes_model(), kLabels, builtin_templates("simple"));
  const std::string image = read_file(example_images()[1]);
  // Warm up: allocator pools, TorchScript's first-call work.
  for (int i = 0; i < 500; ++i) clf.classify_buffer(image.data(), image.size(), "blue_star.png");
  const long before = rss_kb();
  ASSERT_GT(before, 0)
      << "VmRSS cannot be read from /proc/self/status: the test would measure nothing";
  for (int i = 0; i < 10000; ++i) {
    Classification c = clf.classify_buffer(image.data(), image.size(), "blue_star.png");
    ASSERT_TRUE(c.ok);
  }
  const long after = rss_kb();
  // A leak of even 1 KiB per call would add ~10 MiB; noise is well under 4 MiB.
  EXPECT_LT(after - before, 4096) << "RSS grew from " << before << " kB to " << after << " kB";
}

}  // namespace
}  // namespace zsclip
