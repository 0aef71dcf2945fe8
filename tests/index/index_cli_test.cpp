// The embedding index with a model, through the CLI as a user runs it (and build_index's recovery
// through the API): search against a ranking computed independently from `zsclip embed`, shards
// merged against one run, resuming, damaged files, and an index of another model.
#include <gtest/gtest.h>
#include <utime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <set>
#include <thread>

#include "model_util.h"
#include "zsclip/index.h"
#include "zsclip/model.h"

namespace zsclip {
namespace {

namespace fs = std::filesystem;
using namespace ::zsclip::testing;
using json = nlohmann::json;

std::string shapes() { return source_path("models/shapes"); }
std::string model_arg() { return " --model " + sh(shapes()); }

// The six shipped example images and their mirror images (12 files), plus a broken one.
std::vector<std::string> make_images(const std::string& dir, bool with_broken = true) {
  std::vector<std::string> out;
  for (const char* f : {"red_circle", "blue_star", "green_triangle", "yellow_square",
                        "orange_circle", "black_star"}) {
    const std::string src = source_path(std::string("examples/images/") + f + ".png");
    fs::copy_file(src, dir + "/" + f + ".png", fs::copy_options::overwrite_existing);
    cv::Mat m = cv::imread(src, cv::IMREAD_COLOR), flipped;
    cv::flip(m, flipped, 1);
    cv::imwrite(dir + "/" + f + "_mirror.png", flipped);
    out.push_back(dir + "/" + f + ".png");
    out.push_back(dir + "/" + f + "_mirror.png");
  }
  if (with_broken) {
    std::ofstream(dir + "/broken.png", std::ios::binary) << "\x89PNG\r\n\x1a\nnot really";
    out.push_back(dir + "/broken.png");
  }
  return out;
}

std::string join(const std::vector<std::string>& paths) {
  std::string s;
  for (const auto& p : paths) s += " " + sh(p);
  return s;
}

std::vector<double> unit(const std::vector<float>& v) {
  double n = 0;
  for (float x : v) n += double(x) * x;
  std::vector<double> out;
  for (float x : v) out.push_back(x / std::sqrt(n));
  return out;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Checks `search --json` output against cosines computed here from `zsclip embed` features.
void expect_ranking(const json& hits, const std::map<std::string, std::vector<double>>& images,
                    const std::vector<double>& query, double tol) {
  std::vector<std::pair<double, std::string>> want;
  for (const auto& [path, f] : images) want.push_back({dot(f, query), path});
  std::sort(want.begin(), want.end(), [](auto& a, auto& b) { return a.first > b.first; });
  ASSERT_EQ(hits.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(hits[i]["score"].get<double>(), want[i].first, tol) << "rank " << i;
    // Equal paths, unless two cosines are within the tolerance of each other.
    if (hits[i]["path"] != want[i].second)
      EXPECT_NEAR(dot(images.at(hits[i]["path"].get<std::string>()), query), want[i].first, 2 * tol)
          << "rank " << i;
  }
}

TEST(IndexCli, SearchEqualsARankingComputedFromEmbed) {
  const std::string dir = temp_dir("index_cli_search");
  const auto images = make_images(dir, false);
  const std::string templates = dir + "/templates.txt";
  std::ofstream(templates) << "a photo of a {}.\na drawing of a {}.\n";

  std::string args = "embed" + model_arg();
  for (const auto& p : images) args += " --image " + sh(p);
  for (const char* t : {"red circle", "a photo of a blue star.", "a drawing of a blue star."})
    args += " --text " + sh(t);
  CliResult e = run_cli(args);
  ASSERT_EQ(e.status, 0) << e.err;
  json emb = json::parse(e.out);
  std::map<std::string, std::vector<double>> feats;
  for (const auto& im : emb["images"])
    feats[im["file"]] = unit(im["features"].get<std::vector<float>>());
  const auto text = unit(emb["texts"][0]["features"].get<std::vector<float>>());
  // A templated query: the mean of the normalised template embeddings.
  auto t1 = unit(emb["texts"][1]["features"].get<std::vector<float>>()),
       t2 = unit(emb["texts"][2]["features"].get<std::vector<float>>());
  std::vector<float> mean;
  for (size_t k = 0; k < t1.size(); ++k) mean.push_back(static_cast<float>((t1[k] + t2[k]) / 2));
  const auto templated = unit(mean);

  for (const std::string dtype : {"float32", "float16"}) {
    const double tol = dtype == "float32" ? 1e-5 : 2e-3;
    const std::string idx = dir + "/idx-" + dtype;
    CliResult b = run_cli("index build --out " + sh(idx) + " --dtype " + dtype + " --batch-size 5" +
                          model_arg() + join(images));
    ASSERT_EQ(b.status, 0) << b.err;
    EXPECT_NE(b.err.find("12 added"), std::string::npos) << b.err;
    const std::string common = "search --json --top-k 12 --index " + sh(idx) + model_arg();
    CliResult s = run_cli(common + " --text " + sh("red circle"));
    ASSERT_EQ(s.status, 0) << s.err;
    expect_ranking(json::parse(s.out), feats, text, tol);
    CliResult st = run_cli(common + " --text " + sh("blue star") + " --templates " + sh(templates));
    ASSERT_EQ(st.status, 0) << st.err;
    expect_ranking(json::parse(st.out), feats, templated, tol);
    CliResult si = run_cli(common + " --image " + sh(images[3]));
    ASSERT_EQ(si.status, 0) << si.err;
    json hits = json::parse(si.out);
    expect_ranking(hits, feats, feats[images[3]], tol);
    EXPECT_EQ(hits[0]["path"], images[3]);  // an indexed image finds itself first
    EXPECT_EQ(hits[0]["row"], 3);
    // The table form and --top-k.
    CliResult table = run_cli("search --top-k 2 --index " + sh(idx) + model_arg() + " --text " +
                              sh("red circle"));
    ASSERT_EQ(table.status, 0);
    EXPECT_EQ(std::count(table.out.begin(), table.out.end(), '\n'), 2);
  }
}

TEST(IndexCli, ShardedThenMergedEqualsOneRun) {
  const std::string dir = temp_dir("index_cli_shards");
  const auto images = make_images(dir);
  const std::string list = dir + "/list.txt";
  {
    std::ofstream l(list);
    for (const auto& p : images) l << p << "\n";
  }
  ASSERT_EQ(run_cli("index build --dtype float32 --out " + sh(dir + "/single") + model_arg() +
                    " --images-from " + sh(list))
                .status,
            0);
  std::string shards, fullest;  // fullest: the shard with the most rows (which shard gets a path
  int64_t shard_rows = 0, most = -1;  // depends on the path, so on where the tests run)
  for (int k = 0; k < 3; ++k) {
    const std::string out = dir + "/shard" + std::to_string(k);
    CliResult r = run_cli("index build --dtype float32 --shard " + std::to_string(k) + "/3 --out " +
                              sh(out) + model_arg() + " --images-from - ",
                          [&] {
                            std::string s;
                            for (const auto& p : images) s += p + "\n";
                            return s;
                          }());
    ASSERT_EQ(r.status, 0) << r.err;
    const int64_t rows = EmbeddingIndex::open(out).size();
    shard_rows += rows;
    if (rows > most) most = rows, fullest = out;
    shards += " " + sh(out);
  }
  EXPECT_EQ(shard_rows, 12);
  CliResult m = run_cli("index merge --out " + sh(dir + "/merged") + shards);
  ASSERT_EQ(m.status, 0) << m.err;
  EmbeddingIndex single = EmbeddingIndex::open(dir + "/single"),
                 merged = EmbeddingIndex::open(dir + "/merged");
  ASSERT_EQ(merged.size(), single.size());
  ASSERT_EQ(merged.failures().size(), 1u);
  EXPECT_EQ(merged.failures()[0].path, dir + "/broken.png");
  EXPECT_EQ(merged.model_fingerprint(), single.model_fingerprint());
  for (int64_t i = 0; i < single.size(); ++i) {
    const int64_t j = merged.find(single.rows()[size_t(i)].path);
    ASSERT_GE(j, 0) << single.rows()[size_t(i)].path;
    EXPECT_EQ(merged.rows()[size_t(j)].stamp, single.rows()[size_t(i)].stamp);
    const auto a = single.row(i), b = merged.row(j);
    for (size_t k = 0; k < a.size(); ++k) EXPECT_NEAR(a[k], b[k], 1e-6);
  }
  CliResult s1 = run_cli("search --json --top-k 12 --index " + sh(dir + "/single") + model_arg() +
                         " --text star");
  CliResult s2 = run_cli("search --json --top-k 12 --index " + sh(dir + "/merged") + model_arg() +
                         " --text star");
  json a = json::parse(s1.out), b = json::parse(s2.out);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["path"], b[i]["path"]);
    EXPECT_NEAR(a[i]["score"].get<double>(), b[i]["score"].get<double>(), 1e-6);
  }
  // The same (non-empty) shard twice: duplicate paths.
  ASSERT_GT(most, 0);
  CliResult dup =
      run_cli("index merge --out " + sh(dir + "/dup") + " " + sh(fullest) + " " + sh(fullest));
  EXPECT_EQ(dup.status, 1);
  EXPECT_NE(dup.err.find("duplicate paths"), std::string::npos) << dup.err;
  EXPECT_FALSE(fs::exists(dir + "/dup"));
}

void set_mtime(const std::string& path, time_t t) {
  utimbuf u{t, t};
  ASSERT_EQ(utime(path.c_str(), &u), 0);
}

TEST(IndexCli, ResumeAddsOnlyNewOrChangedFiles) {
  const std::string dir = temp_dir("index_cli_resume");
  const auto images = make_images(dir, false);
  const std::string idx = dir + "/idx";
  std::vector<std::string> first(images.begin(), images.begin() + 6);
  CliResult a = run_cli("index build --out " + sh(idx) + model_arg() + join(first));
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_NE(a.err.find("6 added, 0 replaced, 0 unchanged"), std::string::npos) << a.err;
  const EmbeddingIndex before = EmbeddingIndex::open(idx);

  // images[0]: new content (another image's bytes); images[1]: same bytes, new mtime; 2 new files.
  fs::copy_file(images[10], images[0], fs::copy_options::overwrite_existing);
  set_mtime(images[1], 1000000000);
  std::vector<std::string> second(images.begin(), images.begin() + 8);
  CliResult b = run_cli("index build --out " + sh(idx) + model_arg() + join(second));
  ASSERT_EQ(b.status, 0) << b.err;
  EXPECT_NE(b.err.find("8 inputs: 2 added, 2 replaced, 4 unchanged, 0 failed; 8 rows"),
            std::string::npos)
      << b.err;
  EmbeddingIndex after = EmbeddingIndex::open(idx);
  ASSERT_EQ(after.size(), 8);
  for (int i = 2; i < 6; ++i)  // unchanged rows keep their features
    EXPECT_EQ(after.row(after.find(images[size_t(i)])), before.row(before.find(images[size_t(i)])));
  EXPECT_NE(after.row(after.find(images[0])), before.row(before.find(images[0])));
  EXPECT_EQ(after.rows()[size_t(after.find(images[1]))].stamp.mtime, 1e9);
  // Nothing new: nothing embedded, the folder rewritten only when needed.
  CliResult c = run_cli("index build --out " + sh(idx) + model_arg() + join(second));
  EXPECT_NE(c.err.find("0 added, 0 replaced, 8 unchanged"), std::string::npos) << c.err;
}

TEST(IndexApi, AnInterruptedRunIsPickedUpWithoutEmbeddingAgain) {
  const std::string dir = temp_dir("index_api_resume");
  const auto images = make_images(dir, false);
  const std::string idx = dir + "/idx";
  Model model = Model::load(shapes(), [] {
    ModelOptions o;
    o.load_text_encoder = false;
    return o;
  }());
  IndexBuildOptions o;
  o.dtype = IndexDtype::kFloat32;
  IndexBuildReport r = build_index(idx, model, {images[0], images[1]}, o);
  EXPECT_EQ(r.added, 2);
  // What a run killed after committing one batch leaves: a segment under pending/ (here with
  // features that are not images[2]'s own, to see that they are not computed again), a segment
  // whose save was cut short, and a half-written replacement folder beside the index.
  EmbeddingIndex seg = EmbeddingIndex::create(model, IndexDtype::kFloat32);
  std::vector<float> marker(static_cast<size_t>(model.embed_dim()), 0.f);
  marker[0] = 1.f;
  seg.add({images[2], stamp_of(images[2])}, marker.data());
  seg.save(idx + "/pending/seg-00000001");
  fs::create_directories(idx + "/pending/.seg-00000002.tmp-1-0");
  fs::create_directories(dir + "/.idx.tmp-1-0");
  EXPECT_EQ(EmbeddingIndex::open(idx).size(), 2);  // still a valid index meanwhile
  r = build_index(idx, model, {images[0], images[1], images[2], images[3]}, o);
  EXPECT_EQ(r.recovered, 1);
  EXPECT_EQ(r.unchanged, 3);
  EXPECT_EQ(r.added, 1);
  EmbeddingIndex done = EmbeddingIndex::open(idx);
  ASSERT_EQ(done.size(), 4);
  EXPECT_EQ(done.row(done.find(images[2]))[0], 1.f);
  EXPECT_FALSE(fs::exists(idx + "/pending"));
  EXPECT_FALSE(fs::exists(dir + "/.idx.tmp-1-0"));
  // A second writer is refused while one holds the lock.
  {
    IndexBuildOptions slow = o;
    std::atomic<bool> inside{false}, release{false};
    slow.progress = [&](int64_t, int64_t) {
      inside = true;
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    };
    std::thread t([&] { build_index(idx, model, {images[4]}, slow); });
    while (!inside) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    try {
      build_index(idx, model, {images[5]}, o);
      ADD_FAILURE() << "two builds wrote one index";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("another zsclip index build"), std::string::npos)
          << e.what();
    }
    release = true;
    t.join();
  }
  EXPECT_EQ(EmbeddingIndex::open(idx).size(), 5);
}

TEST(IndexCli, DamagedFilesAreRefusedWithTheirName) {
  const std::string dir = temp_dir("index_cli_damaged");
  const auto images = make_images(dir, false);
  const std::string idx = dir + "/idx";
  ASSERT_EQ(run_cli("index build --out " + sh(idx) + model_arg() + join(images)).status, 0);
  const std::string npy = read_file(idx + "/embeddings.npy"),
                    manifest = read_file(idx + "/manifest.jsonl");
  std::ofstream(idx + "/embeddings.npy", std::ios::binary) << npy.substr(0, npy.size() - 100);
  for (const std::string cmd : {"search --text star --index ", "classify --labels a,b --index "}) {
    CliResult r = run_cli(cmd + sh(idx) + model_arg());
    EXPECT_EQ(r.status, 1) << cmd;
    EXPECT_NE(r.err.find("embeddings.npy"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  std::ofstream(idx + "/embeddings.npy", std::ios::binary) << npy;
  std::string broken = manifest;
  broken.insert(broken.find('\n') + 1, "{\"row\": 1, \"path\": ");
  std::ofstream(idx + "/manifest.jsonl", std::ios::binary) << broken;
  CliResult r = run_cli("search --text star --index " + sh(idx) + model_arg());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("manifest.jsonl: line 2"), std::string::npos) << r.err;
  // index build refuses to add to it too, rather than rewriting it.
  CliResult b = run_cli("index build --out " + sh(idx) + model_arg() + join(images));
  EXPECT_EQ(b.status, 1);
  EXPECT_NE(b.err.find("manifest.jsonl: line 2"), std::string::npos) << b.err;
}

TEST(IndexCli, AnIndexOfAnotherModelIsRefused) {
  const std::string dir = temp_dir("index_cli_other_model");
  const auto images = make_images(dir, false);
  const std::string idx = dir + "/idx";
  ASSERT_EQ(run_cli("index build --out " + sh(idx) + model_arg() + join(images)).status, 0);
  // The same weights under another fingerprint stand for another model.
  const std::string other = dir + "/other_model";
  fs::copy(shapes(), other, fs::copy_options::recursive);
  json cfg = json::parse(read_file(other + "/config.json"));
  cfg["fingerprint"] = "another-model-fingerprint";
  std::ofstream(other + "/config.json") << cfg.dump(2);
  const std::string m = " --model " + sh(other);
  for (const std::string cmd : {"search --text star --index " + sh(idx) + m,
                                "search --image " + sh(images[0]) + " --index " + sh(idx) + m,
                                "classify --labels a,b --index " + sh(idx) + m,
                                "index build --out " + sh(idx) + m + " " + sh(images[0])}) {
    CliResult r = run_cli(cmd);
    EXPECT_EQ(r.status, 1) << cmd;
    EXPECT_NE(r.err.find("another-model-fingerprint"), std::string::npos) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("invalid_model"), std::string::npos) << r.err;
  }
  ASSERT_EQ(run_cli("head --labels a,b --out " + sh(dir + "/other.zshead") + m).status, 0);
  CliResult h = run_cli("classify --head " + sh(dir + "/other.zshead") + " --index " + sh(idx));
  EXPECT_EQ(h.status, 1);
  EXPECT_NE(h.err.find("another-model-fingerprint"), std::string::npos) << h.err;
}

TEST(IndexCli, ClassifyIndexGivesWhatClassifyGivesWithoutDecoding) {
  const std::string dir = temp_dir("index_cli_classify");
  const auto images = make_images(dir);
  const std::string idx = dir + "/idx";
  ASSERT_EQ(
      run_cli("index build --dtype float32 --out " + sh(idx) + model_arg() + join(images)).status,
      0);
  const std::string labels =
      " --labels " + sh("red circle,blue star,green triangle,yellow square,orange circle");
  CliResult a = run_cli("classify --json --top-k 2" + model_arg() + labels + join(images));
  // The images are gone: classify --index does not read them.
  for (const auto& p : images) fs::remove(p);
  CliResult b = run_cli("classify --json --top-k 2" + model_arg() + labels + " --index " + sh(idx));
  EXPECT_EQ(a.status, 1);  // the broken image, in both
  EXPECT_EQ(b.status, 1) << b.err;
  EXPECT_NE(b.err.find("broken.png"), std::string::npos) << b.err;
  json ja = json::parse(a.out), jb = json::parse(b.out);
  ASSERT_EQ(ja.size(), jb.size());
  for (size_t i = 0; i < ja.size(); ++i) {
    EXPECT_EQ(ja[i]["file"], jb[i]["file"]);
    EXPECT_EQ(ja[i].contains("error"), jb[i].contains("error"));
    if (ja[i].contains("error")) continue;
    EXPECT_EQ(ja[i]["top"][0]["label"], jb[i]["top"][0]["label"]);
    const auto pa = ja[i]["probs"].get<std::vector<float>>(),
               pb = jb[i]["probs"].get<std::vector<float>>();
    for (size_t k = 0; k < pa.size(); ++k) EXPECT_NEAR(pa[k], pb[k], 1e-5);
  }
  // A saved head works too, without loading a model.
  ASSERT_EQ(run_cli("head" + model_arg() + labels + " --out " + sh(dir + "/h.zshead")).status, 0);
  CliResult c =
      run_cli("classify --json --top-k 2 --head " + sh(dir + "/h.zshead") + " --index " + sh(idx));
  EXPECT_EQ(json::parse(c.out)[0]["probs"], jb[0]["probs"]);
}

TEST(IndexCli, UsageErrorsAndApproximateSearch) {
  const std::string dir = temp_dir("index_cli_usage");
  const auto images = make_images(dir, false);
  const std::string idx = dir + "/idx";
  EXPECT_EQ(run_cli("index").status, 2);
  EXPECT_EQ(run_cli("index frobnicate").status, 2);
  EXPECT_EQ(run_cli("index build " + sh(images[0])).status, 2);  // no --out
  EXPECT_EQ(run_cli("index build --out " + sh(idx)).status, 2);  // no images
  EXPECT_EQ(run_cli("index build --shard 3/2 --out " + sh(idx) + " " + sh(images[0])).status, 2);
  EXPECT_EQ(run_cli("index build --shard x --out " + sh(idx) + " " + sh(images[0])).status, 2);
  EXPECT_EQ(run_cli("index build --ann bogus --out " + sh(idx) + " " + sh(images[0])).status, 2);
  EXPECT_EQ(run_cli("index merge --shard 0/2 --out " + sh(idx) + " a").status, 2);
  EXPECT_EQ(run_cli("search --index " + sh(idx)).status, 2);
  EXPECT_EQ(run_cli("search --index " + sh(idx) + " --text a --image b").status, 2);
  EXPECT_EQ(run_cli("classify --index " + sh(idx) + " --labels a,b " + sh(images[0])).status, 2);
  CliResult missing = run_cli("search --text a --index " + sh(dir + "/nope") + model_arg());
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(idx));

  CliResult b = run_cli("index build --ann hnsw --out " + sh(idx) + model_arg() + join(images));
  if (!ann_available()) {
    EXPECT_EQ(b.status, 1);
    EXPECT_NE(b.err.find("without FAISS"), std::string::npos) << b.err;
    return;
  }
  ASSERT_EQ(b.status, 0) << b.err;
  json meta = json::parse(read_file(idx + "/index.json"));
  EXPECT_EQ(meta["ann"]["kind"], "hnsw");
  EXPECT_EQ(meta["ann"]["count"], 12);
  for (const char* q : {"red circle", "green triangle"}) {
    CliResult approx =
        run_cli("search --json --top-k 3 --index " + sh(idx) + model_arg() + " --text " + sh(q));
    CliResult exact = run_cli("search --json --exact --top-k 3 --index " + sh(idx) + model_arg() +
                              " --text " + sh(q));
    ASSERT_EQ(approx.status, 0) << approx.err;
    EXPECT_EQ(json::parse(approx.out), json::parse(exact.out));  // 12 rows: HNSW finds them all
  }
  // Adding rows rebuilds the approximate part over all of them.
  ASSERT_EQ(run_cli("index build --out " + sh(idx) + model_arg() + " " +
                    sh(source_path("examples/images/red_circle.png")))
                .status,
            0);
  EXPECT_EQ(json::parse(read_file(idx + "/index.json"))["ann"]["count"], 13);
  ASSERT_EQ(run_cli("index ann --ann ivf " + sh(idx)).status, 0);
  EXPECT_EQ(json::parse(read_file(idx + "/index.json"))["ann"]["kind"], "ivf");
}

// `imgs`, `./imgs`, `$PWD/imgs` and a linked folder are one folder: one row a file.
TEST(IndexCli, OneFileSpelledManyWaysIsOneRow) {
  const std::string dir = temp_dir("index_cli_alias");
  const std::string imgs = dir + "/imgs";
  fs::create_directories(imgs);
  const auto images = make_images(imgs, false);
  fs::create_directory_symlink(imgs, dir + "/link");
  const std::string rel = fs::relative(imgs, fs::current_path()).string();
  const std::string idx = dir + "/idx";
  CliResult b = run_cli("index build --out " + sh(idx) + model_arg() + " " + sh(rel) + " " +
                        sh("./" + rel) + " " + sh(imgs) + " " + sh(dir + "/link") + " " +
                        sh(imgs + "/../imgs/red_circle.png"));
  ASSERT_EQ(b.status, 0) << b.err;
  EXPECT_NE(b.err.find("12 inputs: 12 added"), std::string::npos) << b.err;
  EmbeddingIndex index = EmbeddingIndex::open(idx);
  ASSERT_EQ(index.size(), 12);
  EXPECT_GE(index.find(fs::canonical(images[0]).string()), 0);
  CliResult s = run_cli("search --json --top-k 50 --index " + sh(idx) + model_arg() + " --text " +
                        sh("a red circle"));
  ASSERT_EQ(s.status, 0) << s.err;
  std::set<std::string> paths;
  for (const auto& h : json::parse(s.out)) paths.insert(h["path"].get<std::string>());
  EXPECT_EQ(paths.size(), 12u);
  // Built again through the link: nothing new.
  CliResult again = run_cli("index build --out " + sh(idx) + model_arg() + " " + sh(dir + "/link"));
  EXPECT_NE(again.err.find("0 added, 0 replaced, 12 unchanged"), std::string::npos) << again.err;
  // Two shards holding the file as `imgs/x.png` and `./imgs/x.png`: merge refuses the pair.
  ASSERT_EQ(run_cli("index build --out " + sh(dir + "/s1") + model_arg() + " " +
                    sh(rel + "/red_circle.png"))
                .status,
            0);
  ASSERT_EQ(run_cli("index build --out " + sh(dir + "/s2") + model_arg() + " " +
                    sh("./" + rel + "/red_circle.png"))
                .status,
            0);
  CliResult m = run_cli("index merge --out " + sh(dir + "/m") + " " + sh(dir + "/s1") + " " +
                        sh(dir + "/s2"));
  EXPECT_EQ(m.status, 1);
  EXPECT_NE(m.err.find("duplicate paths"), std::string::npos) << m.err;
  EXPECT_FALSE(fs::exists(dir + "/m"));
}

// merge --out never replaces an existing index (least of all one of its inputs) unless --force.
TEST(IndexCli, MergeReplacesAnExistingIndexOnlyWithForce) {
  const std::string dir = temp_dir("index_cli_merge_out");
  const auto images = make_images(dir, false);
  const std::string a = dir + "/a", b = dir + "/b";
  ASSERT_EQ(run_cli("index build --out " + sh(a) + model_arg() +
                    join({images.begin(), images.begin() + 8}))
                .status,
            0);
  ASSERT_EQ(
      run_cli("index build --out " + sh(b) + model_arg() + join({images.begin() + 8, images.end()}))
          .status,
      0);
  CliResult self = run_cli("index merge --out " + sh(a) + " " + sh(b) + " " + sh(a));
  EXPECT_EQ(self.status, 1);
  EXPECT_NE(self.err.find("--force"), std::string::npos) << self.err;
  CliResult other = run_cli("index merge --out " + sh(a) + " " + sh(b));
  EXPECT_EQ(other.status, 1);
  EXPECT_NE(other.err.find("exists"), std::string::npos) << other.err;
  EXPECT_EQ(EmbeddingIndex::open(a).size(), 8);
  CliResult forced = run_cli("index merge --force --out " + sh(a) + " " + sh(a) + " " + sh(b));
  ASSERT_EQ(forced.status, 0) << forced.err;
  EXPECT_EQ(EmbeddingIndex::open(a).size(), 12);
}

// Two builds through different names of one folder (the folder and a link to it) take one lock,
// inside the real folder; nothing is left beside it.
TEST(IndexApi, ABuildThroughALinkTakesTheSameLock) {
  const std::string dir = temp_dir("index_api_link_lock");
  const auto images = make_images(dir, false);
  const std::string idx = dir + "/idx", link = dir + "/link";
  Model model = Model::load(shapes(), [] {
    ModelOptions o;
    o.load_text_encoder = false;
    return o;
  }());
  ASSERT_EQ(build_index(idx, model, {images[0]}).added, 1);
  fs::create_directory_symlink(idx, link);
  IndexBuildOptions slow;
  std::atomic<bool> inside{false}, release{false};
  slow.progress = [&](int64_t, int64_t) {
    inside = true;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  };
  std::thread t([&] { build_index(idx, model, {images[1], images[2]}, slow); });
  while (!inside) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  try {
    build_index(link, model, {images[3]});
    ADD_FAILURE() << "two builds wrote one index, one through a link";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another zsclip index build"), std::string::npos)
        << e.what();
  }
  release = true;
  t.join();
  EXPECT_EQ(EmbeddingIndex::open(idx).size(), 3);
  EXPECT_TRUE(fs::is_symlink(link));
  build_index(link, model, {images[3]});  // through the link once the first is done
  EXPECT_EQ(EmbeddingIndex::open(idx).size(), 4);
  EXPECT_TRUE(fs::is_symlink(link));
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    EXPECT_EQ(name.find(".lock"), std::string::npos) << name << " left beside the index";
  }
  EXPECT_TRUE(fs::exists(idx + "/.zsclip-build.lock"));
}

// HNSW over many copies of few images (4847 rows of 1058 vectors in /usr/share/icons gave a top
// score of -0.11 against 0.55): the approximate search gives what --exact gives.
TEST(IndexCli, ApproximateSearchOverCopiesEqualsExact) {
  if (!ann_available()) GTEST_SKIP() << "built without FAISS";
  const std::string dir = temp_dir("index_cli_copies");
  const auto images = make_images(dir, false);
  std::vector<std::string> all;
  for (int c = 0; c < 6; ++c)
    for (size_t i = 0; i < images.size(); ++i) {
      const std::string copy = dir + "/copy" + std::to_string(c) + "_" + std::to_string(i) + ".png";
      fs::copy_file(images[i], copy);
      all.push_back(copy);
    }
  const std::string idx = dir + "/idx";
  CliResult b = run_cli("index build --ann hnsw --out " + sh(idx) + model_arg() + join(all));
  ASSERT_EQ(b.status, 0) << b.err;
  EXPECT_NE(b.err.find("recall@10"), std::string::npos) << b.err;
  const json meta = json::parse(read_file(idx + "/index.json"));
  EXPECT_EQ(meta["ann"]["count"], 72);
  EXPECT_EQ(meta["ann"]["distinct"], 12);
  for (const char* q : {"a red circle", "a black star"})
    for (int k : {10, 30}) {
      const std::string args = " --json --top-k " + std::to_string(k) + " --index " + sh(idx) +
                               model_arg() + " --text " + sh(q);
      CliResult approx = run_cli("search" + args), exact = run_cli("search --exact" + args);
      ASSERT_EQ(approx.status, 0) << approx.err;
      EXPECT_EQ(json::parse(approx.out), json::parse(exact.out)) << q << " top " << k;
    }
}

// An approximate part below the measured recall: `index build` keeps the rows and says why it
// searches exactly; `index ann` refuses. FAISS's own training warning never reaches the user.
TEST(IndexCli, ApproximatePartBelowTheMeasuredRecallIsNotKept) {
  if (!ann_available()) GTEST_SKIP() << "built without FAISS";
  const std::string dir = temp_dir("index_cli_recall");
  const auto images = make_images(dir, false);
  const std::string idx = dir + "/idx";
  CliResult ivf = run_cli("index build --ann ivf --out " + sh(idx) + model_arg() + join(images));
  ASSERT_EQ(ivf.status, 0) << ivf.err;
  EXPECT_EQ(ivf.err.find("please provide"), std::string::npos) << ivf.err;
  const size_t note = ivf.err.find("fewer than 39 a cell");
  EXPECT_NE(note, std::string::npos) << ivf.err;
  EXPECT_EQ(ivf.err.find("fewer than 39 a cell", note + 1), std::string::npos) << ivf.err;
  json meta = json::parse(read_file(idx + "/index.json"));
  EXPECT_EQ(meta["ann"]["kind"], "ivf");
  EXPECT_EQ(meta["ann"]["recall_at_10"], 1.0);
  // An approximate part written before recall was measured: search says so.
  meta["ann"].erase("recall_at_10");
  meta["ann"].erase("recall_queries");
  std::ofstream(idx + "/index.json", std::ios::trunc) << meta.dump(2);
  CliResult old = run_cli("search --text star --index " + sh(idx) + model_arg());
  ASSERT_EQ(old.status, 0) << old.err;
  EXPECT_NE(old.err.find("before zsclip measured its recall"), std::string::npos) << old.err;

  // One probed cell of twelve: a recall far below 0.9.
  CliResult ann = run_cli("index ann --ann ivf --ivf-lists 12 --ivf-probe 1 " + sh(idx));
  EXPECT_EQ(ann.status, 1);
  EXPECT_NE(ann.err.find("recall@10"), std::string::npos) << ann.err;
  EXPECT_EQ(json::parse(read_file(idx + "/index.json"))["ann"]["ivf_lists"], 3);  // unchanged

  const std::string idx2 = dir + "/idx2";
  CliResult b = run_cli("index build --ann ivf --ivf-lists 12 --ivf-probe 1 --out " + sh(idx2) +
                        model_arg() + join(images));
  ASSERT_EQ(b.status, 0) << b.err;
  EXPECT_NE(b.err.find("recall@10"), std::string::npos) << b.err;
  EXPECT_NE(b.err.find("searches stay exact"), std::string::npos) << b.err;
  EXPECT_TRUE(json::parse(read_file(idx2 + "/index.json"))["ann"].is_null());
  EXPECT_EQ(EmbeddingIndex::open(idx2).size(), 12);
}

// A row holding NaN in an index written before zsclip refused such rows: classify --index fails
// that row alone, search says which row it leaves out, merge refuses, and a build embeds it again.
TEST(IndexCli, ANanRowFailsAloneAndIsEmbeddedAgain) {
  const std::string dir = temp_dir("index_cli_nan");
  const auto images = make_images(dir, false);
  const std::string idx = dir + "/idx";
  ASSERT_EQ(run_cli("index build --out " + sh(idx) + model_arg() + join(images)).status, 0);
  std::string npy = read_file(idx + "/embeddings.npy");
  const size_t header = npy.size() - size_t(12 * EmbeddingIndex::open(idx).dim() * 2);
  const int64_t row = EmbeddingIndex::open(idx).find(images[2]);
  ASSERT_GE(row, 0);
  npy[header + size_t(row * EmbeddingIndex::open(idx).dim() * 2) + 1] = '\x7e';  // float16 NaN
  npy[header + size_t(row * EmbeddingIndex::open(idx).dim() * 2)] = '\x00';
  std::ofstream(idx + "/embeddings.npy", std::ios::binary | std::ios::trunc) << npy;

  CliResult c = run_cli("classify --json --top-k 1" + model_arg() + " --labels " +
                        sh("red circle,blue star") + " --index " + sh(idx));
  EXPECT_EQ(c.status, 1) << c.err;
  const json out = json::parse(c.out);
  ASSERT_EQ(out.size(), 12u);
  int good = 0;
  for (const auto& r : out) {
    if (r.contains("error")) {
      EXPECT_EQ(r["file"], images[2]);
      EXPECT_NE(r["error"].get<std::string>().find("row " + std::to_string(row)), std::string::npos)
          << r;
    } else {
      ++good;
    }
  }
  EXPECT_EQ(good, 11);
  CliResult s = run_cli("search --json --top-k 12 --index " + sh(idx) + model_arg() + " --text " +
                        sh("a green triangle"));
  ASSERT_EQ(s.status, 0) << s.err;
  EXPECT_EQ(json::parse(s.out).size(), 11u);
  EXPECT_NE(s.err.find("row " + std::to_string(row) + " (" + images[2] + ")"), std::string::npos)
      << s.err;
  CliResult m = run_cli("index merge --out " + sh(dir + "/m") + " " + sh(idx));
  EXPECT_EQ(m.status, 1);
  EXPECT_NE(m.err.find("NaN or Inf"), std::string::npos) << m.err;
  CliResult b = run_cli("index build --out " + sh(idx) + model_arg() + join(images));
  ASSERT_EQ(b.status, 0) << b.err;
  EXPECT_NE(b.err.find("0 added, 1 replaced, 11 unchanged"), std::string::npos) << b.err;
  EXPECT_TRUE(EmbeddingIndex::open(idx).nonfinite_rows().empty());
}

}  // namespace
}  // namespace zsclip
