// Helpers of the model tests: the openai-tiny exports and reference.json.
#pragma once

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.h"
#include "zsclip/tensor.h"

namespace zsclip::testing {

// Exports made by tests/export_fixtures.sh (the export_fixtures ctest fixture).
inline std::string tiny_export(const std::string& kind) {
  return std::string(ZSCLIP_FIXTURE_DIR) + "/openai-tiny-" + kind;
}
inline const std::vector<std::string>& tiny_kinds() {
  static const std::vector<std::string> kinds = {"jit_archive", "state_dict"};
  return kinds;
}
inline nlohmann::json reference() {
  return nlohmann::json::parse(read_file(shared_path("clip/openai-tiny/reference.json")));
}

// max |a - b| <= tol * max |b|, and the same argmax.
inline ::testing::AssertionResult close_rel(const std::vector<float>& a,
                                            const std::vector<double>& b, double tol,
                                            const std::string& what) {
  if (a.size() != b.size())
    return ::testing::AssertionFailure() << what << ": size " << a.size() << " vs " << b.size();
  double max_ref = 0, max_err = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    max_ref = std::max(max_ref, std::abs(b[i]));
    max_err = std::max(max_err, std::abs(double(a[i]) - b[i]));
  }
  auto am = std::max_element(a.begin(), a.end()) - a.begin();
  auto bm = std::max_element(b.begin(), b.end()) - b.begin();
  if (max_err > tol * max_ref || am != bm)
    return ::testing::AssertionFailure() << what << ": max abs error " << max_err << " vs allowed "
                                         << tol * max_ref << ", argmax " << am << " vs " << bm;
  return ::testing::AssertionSuccess();
}

// The smallest cosine similarity between the rows of a and b ([N, D] each).
inline double min_row_cosine(const FloatTensor& a, const FloatTensor& b) {
  double worst = 1.0;
  for (int64_t i = 0; i < a.size(0); ++i) {
    double dot = 0, na = 0, nb = 0;
    for (int64_t k = 0; k < a.size(1); ++k) {
      dot += double(a.at(i, k)) * b.at(i, k);
      na += double(a.at(i, k)) * a.at(i, k);
      nb += double(b.at(i, k)) * b.at(i, k);
    }
    worst = std::min(worst, dot / std::sqrt(na * nb));
  }
  return worst;
}

}  // namespace zsclip::testing

#define ZSCLIP_REQUIRE_TINY_EXPORTS()                                                          \
  do {                                                                                         \
    ZSCLIP_REQUIRE_SHARED("clip/openai-tiny/reference.json");                                  \
    for (const auto& k : ::zsclip::testing::tiny_kinds())                                      \
      ASSERT_TRUE(std::filesystem::exists(::zsclip::testing::tiny_export(k) + "/config.json")) \
          << "run the export_fixtures test first (ctest runs it as a fixture)";                \
  } while (0)

namespace zsclip::testing {

struct CliResult {
  int status = -1;
  std::string out, err;
};

// Runs `zsclip ARGS` (a shell-quoted string) and captures its status, stdout and stderr.
inline CliResult run_cli(const std::string& args, const std::string& stdin_text = "") {
  static int counter = 0;
  const std::string dir = std::string(ZSCLIP_BINARY_DIR) + "/tmp/cli";
  std::filesystem::create_directories(dir);
  const std::string base =
      dir + "/run" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  std::string cmd =
      std::string("'") + ZSCLIP_CLI + "' " + args + " > '" + base + ".out' 2> '" + base + ".err'";
  if (!stdin_text.empty()) {
    std::ofstream(base + ".in", std::ios::binary) << stdin_text;
    cmd += " < '" + base + ".in'";
  } else {
    cmd += " < /dev/null";
  }
  CliResult r;
  int raw = std::system(("timeout 120 " + cmd).c_str());
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  r.out = read_file(base + ".out");
  r.err = read_file(base + ".err");
  return r;
}

// Single-quotes a string for the shell.
inline std::string sh(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace zsclip::testing
