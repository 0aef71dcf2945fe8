// The embedding index without a model: float16, the search kernels, the .npy reader, the folder
// format and its checks, merging, exact search against brute force, and the FAISS part.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "fake_encoder.h"
#include "index/kernels.h"
#include "index/npy.h"
#include "test_util.h"
#include "zsclip/index.h"

namespace zsclip {
namespace {

namespace fs = std::filesystem;
using namespace index_detail;
using ::zsclip::testing::read_file;
using ::zsclip::testing::temp_dir;

void write_file(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

// Clustered unit vectors: `clusters` random centres, each row a centre plus noise, normalised.
std::vector<float> clustered(int64_t n, int64_t d, int clusters, uint32_t seed,
                             float noise = 0.5f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> centres(static_cast<size_t>(clusters * d)), out(static_cast<size_t>(n * d));
  for (auto& c : centres) c = g(rng);
  for (int64_t i = 0; i < n; ++i) {
    const float* c = centres.data() + (i % clusters) * d;
    double norm = 0;
    for (int64_t k = 0; k < d; ++k)
      norm += double(out[size_t(i * d + k)] = c[k] + noise * g(rng)) * out[size_t(i * d + k)];
    for (int64_t k = 0; k < d; ++k)
      out[size_t(i * d + k)] = static_cast<float>(out[size_t(i * d + k)] / std::sqrt(norm));
  }
  return out;
}

EmbeddingIndex make_index(const std::vector<float>& rows, int64_t d, IndexDtype dtype,
                          const std::string& prefix = "img",
                          const std::string& fingerprint = "fp-test") {
  EmbeddingIndex index = EmbeddingIndex::create(fingerprint, d, dtype, "test-model");
  const int64_t n = static_cast<int64_t>(rows.size()) / d;
  for (int64_t i = 0; i < n; ++i)
    index.add({prefix + std::to_string(i) + ".png", {uint64_t(100 + i), 1.7e9 + double(i) * 0.25}},
              rows.data() + i * d);
  return index;
}

// Brute force in double: every row's cosine with the query, best first, ties to the lower row.
std::vector<std::pair<double, int64_t>> brute_force(const EmbeddingIndex& index, const float* q) {
  const int64_t d = index.dim();
  double qn = 0;
  for (int64_t k = 0; k < d; ++k) qn += double(q[k]) * q[k];
  std::vector<std::pair<double, int64_t>> out;
  for (int64_t i = 0; i < index.size(); ++i) {
    std::vector<float> r = index.row(i);
    double s = 0;
    for (int64_t k = 0; k < d; ++k) s += double(r[size_t(k)]) * q[k];
    out.push_back({s / std::sqrt(qn), i});
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  return out;
}

TEST(Half, EveryHalfRoundTripsThroughFloat) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_EQ(float_to_half(f) & 0x7c00, 0x7c00) << h;
      continue;
    }
    ASSERT_EQ(float_to_half(f), h) << "half 0x" << std::hex << h << " -> " << f;
  }
  EXPECT_EQ(half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(half_to_float(0xc000), -2.0f);
  EXPECT_EQ(half_to_float(0x7bff), 65504.0f);
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));
}

TEST(Half, RoundsToNearestEvenLikeTheHardware) {
  EXPECT_EQ(float_to_half(65520.f), 0x7c00);  // overflows to inf
  EXPECT_EQ(float_to_half(65519.f), 0x7bff);
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.f, -11)), 0x3c00);  // tie -> even
  EXPECT_EQ(float_to_half(1.0f + 3 * std::ldexp(1.f, -11)), 0x3c02);
  EXPECT_EQ(float_to_half(std::ldexp(1.f, -25)),
            0x0000);  // tie between 0 and the smallest subnormal
  EXPECT_EQ(float_to_half(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(float_to_half(-0.f), 0x8000);
  // The portable conversion equals the F16C instructions on random floats of every magnitude.
  std::mt19937 rng(7);
  std::vector<float> x(100000);
  for (auto& v : x) {
    uint32_t bits = rng();
    std::memcpy(&v, &bits, 4);
  }
  std::vector<uint16_t> fast(x.size());
  narrow_to_half(x.data(), static_cast<int64_t>(x.size()), fast.data());
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) continue;
    ASSERT_EQ(fast[i], float_to_half(x[i])) << x[i];
  }
}

TEST(Kernels, SimdAndPortableLoopsAgreeWithDoubleSums) {
  std::mt19937 rng(3);
  std::normal_distribution<float> g;
  for (int64_t d : {1, 7, 8, 9, 31, 64, 515}) {
    const int64_t n = 11, nq = 5;
    std::vector<float> rows(size_t(n * d)), q(size_t(nq * d));
    for (auto& v : rows) v = g(rng);
    for (auto& v : q) v = g(rng);
    std::vector<uint16_t> half(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) half[i] = float_to_half(rows[i]);
    for (bool portable : {false, true}) {
      force_portable_kernels(portable);
      for (IndexDtype dt : {IndexDtype::kFloat32, IndexDtype::kFloat16}) {
        const void* r =
            dt == IndexDtype::kFloat32 ? static_cast<const void*>(rows.data()) : half.data();
        std::vector<float> one(static_cast<size_t>(n)), many(static_cast<size_t>(n * nq));
        dot_rows_multi(r, dt, n, d, q.data(), nq, many.data());
        for (int64_t j = 0; j < nq; ++j) {
          dot_rows(r, dt, n, d, q.data() + j * d, one.data());
          for (int64_t i = 0; i < n; ++i) {
            double want = 0, mag = 0;
            for (int64_t k = 0; k < d; ++k) {
              const double v = dt == IndexDtype::kFloat32 ? rows[size_t(i * d + k)]
                                                          : half_to_float(half[size_t(i * d + k)]);
              want += v * q[size_t(j * d + k)];
              mag += std::abs(v * q[size_t(j * d + k)]);
            }
            EXPECT_NEAR(one[size_t(i)], want, 1e-5 * mag + 1e-6)
                << "d " << d << " portable " << portable;
            EXPECT_NEAR(many[size_t(i * nq + j)], want, 1e-5 * mag + 1e-6)
                << "d " << d << " portable " << portable;
          }
        }
      }
    }
  }
  force_portable_kernels(false);
}

std::string npy_with(const std::string& dict, const std::string& data, int version = 1) {
  std::string header = dict;
  const size_t prefix = version == 1 ? 10 : 12;
  while ((prefix + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(version);
  out += '\0';
  const size_t len = header.size();
  for (size_t i = 0; i < (version == 1 ? 2u : 4u); ++i)
    out += static_cast<char>((len >> (8 * i)) & 0xff);
  return out + header + data;
}

NpyHeader parse(const std::string& file) {
  return parse_npy(reinterpret_cast<const uint8_t*>(file.data()), file.size(), "x.npy");
}

std::string parse_error(const std::string& file) {
  try {
    parse(file);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidConfig);
    return e.what();
  }
  ADD_FAILURE() << "accepted a bad .npy file";
  return "";
}

TEST(Npy, ReadsWhatNumpyWrites) {
  const std::string data(2 * 3 * 4, '\0');
  NpyHeader h =
      parse(npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data));
  EXPECT_EQ(h.rows, 2);
  EXPECT_EQ(h.cols, 3);
  EXPECT_EQ(h.dtype, IndexDtype::kFloat32);
  EXPECT_EQ(h.data_offset, 128u);  // numpy pads 10 + 60 + 1 bytes to 128
  // Other key orders, no trailing comma, version 2 headers, float16.
  h = parse(npy_with("{'shape': (3, 2), 'fortran_order': False, 'descr': '<f2'}",
                     std::string(12, '\0'), 2));
  EXPECT_EQ(h.dtype, IndexDtype::kFloat16);
  EXPECT_EQ(h.rows, 3);
  h = parse(npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 512), }", ""));
  EXPECT_EQ(h.rows, 0);
  // Our own writer.
  const std::string ours = npy_header(IndexDtype::kFloat16, 5, 7);
  EXPECT_EQ(ours.size() % 64, 0u);
  h = parse(ours + std::string(5 * 7 * 2, '\0'));
  EXPECT_EQ(h.rows, 5);
  EXPECT_EQ(h.cols, 7);
}

TEST(Npy, RefusesWhatItCannotReadWithTheReason) {
  const std::string ok_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  const std::string data(24, '\0');
  EXPECT_NE(parse_error(std::string("\x93NUMPZ\x01\x00\x10\x00", 10)).find("bad magic"),
            std::string::npos);
  EXPECT_NE(parse_error("abc").find("only 3 bytes"), std::string::npos);
  EXPECT_NE(parse_error(npy_with(ok_dict, data.substr(0, 20))).find("truncated"),
            std::string::npos);
  EXPECT_NE(parse_error(npy_with(ok_dict, data + "xx")).find("trailing bytes"), std::string::npos);
  EXPECT_NE(parse_error(npy_with(ok_dict, data).substr(0, 40)).find("truncated"),
            std::string::npos);
  EXPECT_NE(
      parse_error(npy_with("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", data))
          .find("big-endian"),
      std::string::npos);
  EXPECT_NE(
      parse_error(npy_with("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", data))
          .find("'<f8'"),
      std::string::npos);
  EXPECT_NE(
      parse_error(npy_with("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", data))
          .find("fortran_order"),
      std::string::npos);
  EXPECT_NE(
      parse_error(npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 1), }", data))
          .find("dimension"),
      std::string::npos);
  EXPECT_NE(
      parse_error(npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (24,), }", data))
          .find("1 dimension"),
      std::string::npos);
  EXPECT_NE(
      parse_error(npy_with("{'descr': '<f4', 'shape': (2, 3), }", data)).find("fortran_order"),
      std::string::npos);
  EXPECT_NE(
      parse_error(
          npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 3), }",
                   data))
          .find("too large"),
      std::string::npos);
  EXPECT_NE(parse_error(
                npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", data))
                .find("'x'"),
            std::string::npos);
  std::string bad_version = npy_with(ok_dict, data);
  bad_version[6] = 9;
  EXPECT_NE(parse_error(bad_version).find("format version 9"), std::string::npos);
}

TEST(Index, SavesWhatNumpyAndTheManifestDescribeAndOpensItBack) {
  const int64_t d = 24;
  auto v = clustered(50, d, 5, 1);
  for (IndexDtype dt : {IndexDtype::kFloat32, IndexDtype::kFloat16}) {
    EmbeddingIndex index = make_index(v, d, dt);
    index.add_failure({"broken.jpg", "image 'broken.jpg': truncated", ErrorCode::kInvalidImage});
    const std::string dir = temp_dir("index_roundtrip") + "/idx";
    index.save(dir);
    EmbeddingIndex back = EmbeddingIndex::open(dir);
    ASSERT_EQ(back.size(), 50);
    EXPECT_EQ(back.dim(), d);
    EXPECT_EQ(back.dtype(), dt);
    EXPECT_EQ(back.model_fingerprint(), "fp-test");
    EXPECT_EQ(back.model_name(), "test-model");
    ASSERT_EQ(back.failures().size(), 1u);
    EXPECT_EQ(back.failures()[0].code, ErrorCode::kInvalidImage);
    EXPECT_EQ(back.failures()[0].path, "broken.jpg");
    for (int64_t i = 0; i < 50; ++i) {
      EXPECT_EQ(back.rows()[size_t(i)].path, index.rows()[size_t(i)].path);
      EXPECT_EQ(back.rows()[size_t(i)].stamp,
                index.rows()[size_t(i)].stamp);  // mtime exact through JSON
      EXPECT_EQ(back.find(index.rows()[size_t(i)].path), i);
      const auto a = back.row(i), b = index.row(i);
      for (int64_t k = 0; k < d; ++k) {
        EXPECT_EQ(a[size_t(k)], b[size_t(k)]);
        EXPECT_NEAR(a[size_t(k)], v[size_t(i * d + k)], dt == IndexDtype::kFloat32 ? 1e-6 : 1e-3);
      }
    }
    EXPECT_EQ(back.find("nope.png"), -1);
    // Raw file layout: the header, then rows in order.
    const std::string npy = read_file(dir + "/embeddings.npy");
    NpyHeader h = parse(npy);
    EXPECT_EQ(h.rows, 50);
    if (dt == IndexDtype::kFloat32) {
      float f;
      std::memcpy(&f, npy.data() + h.data_offset + 4 * (3 * d + 2), 4);
      EXPECT_EQ(f, index.row(3)[2]);
    }
    std::ifstream man(dir + "/manifest.jsonl");
    std::string first;
    std::getline(man, first);
    EXPECT_EQ(first.rfind("{\"row\":0,\"path\":\"img0.png\",\"bytes\":100,\"mtime\":", 0), 0u)
        << first;
  }
}

TEST(Index, AddNormalisesAndRefusesBadRows) {
  EmbeddingIndex index = EmbeddingIndex::create("fp", 3, IndexDtype::kFloat32);
  const float a[3] = {3, 0, 4};
  index.add({"a.png", {}}, a);
  EXPECT_NEAR(index.row(0)[0], 0.6f, 1e-7);
  EXPECT_NEAR(index.row(0)[2], 0.8f, 1e-7);
  EXPECT_THROW(index.add({"a.png", {}}, a), Error);  // duplicate
  const float zero[3] = {0, 0, 0};
  const float nan[3] = {NAN, 0, 1};
  EXPECT_THROW(index.add({"z.png", {}}, zero), Error);
  EXPECT_THROW(index.add({"n.png", {}}, nan), Error);
  EXPECT_THROW(index.add({"", {}}, a), Error);
  EXPECT_THROW(index.add({std::string("bad\xff.png"), {}}, a), Error);  // manifest.jsonl is UTF-8
  EXPECT_EQ(index.size(), 1);
  EXPECT_THROW(index.row(1), Error);
  EXPECT_THROW(EmbeddingIndex::create("fp", 0), Error);
  EXPECT_THROW(parse_index_dtype("float64"), Error);
}

TEST(Index, ExactSearchEqualsBruteForce) {
  const int64_t d = 40;
  auto v = clustered(3000, d, 20, 2);
  auto queries = clustered(6, d, 3, 99, 2.0f);
  for (IndexDtype dt : {IndexDtype::kFloat32, IndexDtype::kFloat16}) {
    EmbeddingIndex index = make_index(v, d, dt);
    const std::string dir = temp_dir("index_search") + "/idx";
    index.save(dir);
    EmbeddingIndex opened = EmbeddingIndex::open(dir);  // mapped rows, not the in-memory tail
    FloatTensor q({6, d}, queries);
    for (int threads : {1, 2, 3}) {
      SearchOptions so;
      so.threads = threads;
      auto batched = opened.search(q, 25, so);
      for (int64_t j = 0; j < 6; ++j) {
        std::vector<float> scaled(queries.begin() + j * d, queries.begin() + (j + 1) * d);
        for (auto& x : scaled) x *= 7.5f;  // queries are normalised by the search
        auto hits = opened.search(scaled.data(), 25, so);
        auto want = brute_force(opened, queries.data() + j * d);
        ASSERT_EQ(hits.size(), 25u);
        for (size_t i = 0; i < hits.size(); ++i) {
          EXPECT_EQ(hits[i].row, want[i].second)
              << "query " << j << " rank " << i << " threads " << threads;
          EXPECT_NEAR(hits[i].score, want[i].first, 1e-5);
          EXPECT_EQ(hits[i].path, opened.rows()[size_t(hits[i].row)].path);
          EXPECT_EQ(batched[size_t(j)][i].row, hits[i].row);
          EXPECT_NEAR(batched[size_t(j)][i].score, hits[i].score, 1e-5);
        }
      }
    }
  }
}

TEST(Index, SearchBreaksTiesByRowAndClampsTopK) {
  EmbeddingIndex index = EmbeddingIndex::create("fp", 2, IndexDtype::kFloat32);
  const float x[2] = {1, 0}, y[2] = {0, 1};
  for (int i = 0; i < 5; ++i) index.add({"p" + std::to_string(i), {}}, i % 2 ? y : x);
  auto hits = index.search(x, 100);
  ASSERT_EQ(hits.size(), 5u);
  EXPECT_EQ(hits[0].row, 0);
  EXPECT_EQ(hits[1].row, 2);
  EXPECT_EQ(hits[2].row, 4);
  EXPECT_EQ(hits[3].row, 1);
  EXPECT_THROW(index.search(x, 0), Error);
  FloatTensor wrong({1, 3});
  EXPECT_THROW(index.search(wrong, 1), Error);
  EXPECT_TRUE(EmbeddingIndex::create("fp", 2).search(x, 3).empty());
}

TEST(Index, ConcurrentSearchesGiveTheSameResults) {
  const int64_t d = 32;
  auto v = clustered(20000, d, 50, 4);
  EmbeddingIndex index = make_index(v, d, IndexDtype::kFloat16);
  auto q = clustered(8, d, 8, 5, 1.0f);
  std::vector<std::vector<SearchHit>> want;
  for (int j = 0; j < 8; ++j) want.push_back(index.search(q.data() + j * d, 10));
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep)
        for (int j = 0; j < 8; ++j) {
          auto hits = index.search(q.data() + ((j + t) % 8) * d, 10);
          for (size_t i = 0; i < hits.size(); ++i)
            if (hits[i].row != want[size_t((j + t) % 8)][i].row) ++mismatches;
        }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(Index, ExactSearchRunsOnTheRuntimeAndStartsNoThread) {
  const int64_t d = 256;
  auto v = clustered(8000, d, 20, 7);
  EmbeddingIndex index = make_index(v, d, IndexDtype::kFloat16);
  SearchOptions so;
  so.exact = true;
  so.threads = 3;                                    // three parts, whatever the cores
  const auto first = index.search(v.data(), 5, so);  // the first call may make the runtime
  const int before = ::zsclip::testing::process_threads();
  const int most = ::zsclip::testing::max_threads_during([&] {
    for (int i = 0; i < 50; ++i) EXPECT_EQ(index.search(v.data(), 5, so)[0].row, first[0].row);
  });
  EXPECT_EQ(most, before);
}

TEST(Index, ClassifyEqualsTheHeadOnTheStoredRows) {
  const int64_t d = 16;
  auto v = clustered(300, d, 4, 6);
  EmbeddingIndex index = make_index(v, d, IndexDtype::kFloat16, "img", "fp-head");
  index.add_failure({"bad.png", "cannot decode", ErrorCode::kInvalidImage});
  auto w = clustered(4, d, 4, 7);
  ZeroShotHead head =
      ZeroShotHead::from_weights({"a", "b", "c", "d"}, FloatTensor({4, d}, w), 50.f, "fp-head");
  auto results = index.classify(head, 2);
  ASSERT_EQ(results.size(), 301u);
  for (int64_t i = 0; i < 300; ++i) {
    const auto& r = results[size_t(i)];
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.source, index.rows()[size_t(i)].path);
    Prediction p = head.classify_one(index.row(i).data(), 2);
    ASSERT_EQ(r.top.size(), 2u);
    EXPECT_EQ(r.top[0].label, p.top[0].label);
    for (size_t c = 0; c < 4; ++c) EXPECT_NEAR(r.probs[c], p.probs[c], 1e-6);
  }
  EXPECT_FALSE(results.back().ok);
  EXPECT_EQ(results.back().code, ErrorCode::kInvalidImage);
  ZeroShotHead other = ZeroShotHead::from_weights(
      {"a"}, FloatTensor({1, d}, std::vector<float>(d, 1.f)), 50.f, "fp-other");
  try {
    index.classify(other);
    ADD_FAILURE() << "a head of another model was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
    EXPECT_NE(std::string(e.what()).find("fp-other"), std::string::npos) << e.what();
  }
}

TEST(Index, MergeConcatenatesShardsAndRefusesMismatches) {
  const int64_t d = 8;
  const std::string base = temp_dir("index_merge");
  auto v = clustered(30, d, 3, 8);
  make_index(std::vector<float>(v.begin(), v.begin() + 10 * d), d, IndexDtype::kFloat16, "a")
      .save(base + "/s0");
  make_index(std::vector<float>(v.begin() + 10 * d, v.end()), d, IndexDtype::kFloat32, "b")
      .save(base + "/s1");
  EmbeddingIndex m = merge_indexes({base + "/s0", base + "/s1"});
  ASSERT_EQ(m.size(), 30);
  EXPECT_EQ(m.dtype(), IndexDtype::kFloat16);  // the first shard's
  EXPECT_EQ(m.rows()[10].path, "b0.png");
  m.save(base + "/merged");
  EmbeddingIndex back = EmbeddingIndex::open(base + "/merged");
  EXPECT_EQ(back.size(), 30);
  EXPECT_NEAR(back.row(12)[3], v[size_t(12 * d + 3)], 1e-3);  // the float32 shard narrowed
  // Duplicate paths, another model, another dimension.
  auto expect_refused = [&](const std::vector<std::string>& dirs, ErrorCode code,
                            const std::string& text) {
    try {
      merge_indexes(dirs);
      ADD_FAILURE() << "merged " << text;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code);
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  };
  expect_refused({base + "/s0", base + "/s1", base + "/s0"}, ErrorCode::kInvalidArgument,
                 "path a0.png is in both " + base + "/s0 and " + base + "/s0");
  make_index(std::vector<float>(v.begin(), v.begin() + d), d, IndexDtype::kFloat16, "c", "fp-other")
      .save(base + "/other");
  expect_refused({base + "/s0", base + "/other"}, ErrorCode::kInvalidModel, "fp-other");
  make_index(std::vector<float>(16, 1.f), 16, IndexDtype::kFloat16, "e").save(base + "/wide");
  expect_refused({base + "/s0", base + "/wide"}, ErrorCode::kInvalidModel, "dimension 16");
}

TEST(Index, MergeWithReplaceKeepsTheNewerRow) {
  const int64_t d = 4;
  EmbeddingIndex a = EmbeddingIndex::create("fp", d, IndexDtype::kFloat32);
  const float e0[4] = {1, 0, 0, 0}, e1[4] = {0, 1, 0, 0}, e2[4] = {0, 0, 1, 0};
  a.add({"x", {1, 1}}, e0);
  a.add({"y", {1, 1}}, e1);
  a.add_failure({"z", "bad", ErrorCode::kInvalidImage});
  EmbeddingIndex b = EmbeddingIndex::create("fp", d, IndexDtype::kFloat32);
  b.add({"x", {2, 2}}, e2);
  b.add({"z", {3, 3}}, e1);
  a.merge_from(b, /*replace=*/true);
  ASSERT_EQ(a.size(), 3);
  EXPECT_EQ(a.rows()[0].path, "y");
  EXPECT_EQ(a.rows()[1].path, "x");
  EXPECT_EQ(a.rows()[1].stamp.bytes, 2u);
  EXPECT_EQ(a.row(1)[2], 1.f);
  EXPECT_EQ(a.find("x"), 1);
  EXPECT_TRUE(a.failures().empty());  // z now has a row
}

class CorruptIndex : public ::testing::Test {
 protected:
  void SetUp() override {
    // One folder per test: ctest runs the tests of this suite as parallel processes.
    dir_ = temp_dir(std::string("index_corrupt_") +
                    ::testing::UnitTest::GetInstance()->current_test_info()->name()) +
           "/idx";
    auto v = clustered(10, 8, 2, 9);
    EmbeddingIndex idx = make_index(v, 8, IndexDtype::kFloat16);
    idx.add_failure({"bad.png", "broken", ErrorCode::kInvalidImage});
    idx.save(dir_);
  }
  std::string open_error(ErrorCode want = ErrorCode::kInvalidConfig) {
    try {
      EmbeddingIndex::open(dir_);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), want) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "a damaged index was opened";
    return "";
  }
  void edit(const std::string& file, const std::function<void(std::string&)>& f) {
    std::string s = read_file(dir_ + "/" + file);
    f(s);
    write_file(dir_ + "/" + file, s);
  }
  std::string dir_;
};

TEST_F(CorruptIndex, TruncatedEmbeddings) {
  edit("embeddings.npy", [](std::string& s) { s.resize(s.size() - 2); });
  const std::string e = open_error();
  EXPECT_NE(e.find("embeddings.npy"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
}

TEST_F(CorruptIndex, EmbeddingsOfAnotherShapeOrDtype) {
  const std::string f16 = read_file(dir_ + "/embeddings.npy");
  write_file(dir_ + "/embeddings.npy",
             npy_header(IndexDtype::kFloat16, 9, 8) + std::string(9 * 8 * 2, '\0'));
  std::string e = open_error();
  EXPECT_NE(e.find("shape (9, 8)"), std::string::npos) << e;
  EXPECT_NE(e.find("count 10"), std::string::npos) << e;
  write_file(dir_ + "/embeddings.npy",
             npy_header(IndexDtype::kFloat32, 10, 8) + std::string(10 * 8 * 4, '\0'));
  e = open_error();
  EXPECT_NE(e.find("dtype float32"), std::string::npos) << e;
  write_file(dir_ + "/embeddings.npy", "garbage");
  EXPECT_NE(open_error().find("embeddings.npy"), std::string::npos);
  fs::remove(dir_ + "/embeddings.npy");
  EXPECT_NE(open_error(ErrorCode::kNotFound).find("embeddings.npy"), std::string::npos);
}

TEST_F(CorruptIndex, MalformedManifestLine) {
  edit("manifest.jsonl", [](std::string& s) {
    const size_t l3 = s.find('\n', s.find('\n') + 1) + 1;
    s.replace(l3, 5, "{\"ro");
  });
  std::string e = open_error();
  EXPECT_NE(e.find("manifest.jsonl: line 3"), std::string::npos) << e;
}

TEST_F(CorruptIndex, ManifestRowsOutOfOrderOrMissing) {
  edit("manifest.jsonl", [](std::string& s) { s.erase(0, s.find('\n') + 1); });  // drop row 0
  EXPECT_NE(open_error().find("line 1 has row 1, expected 0"), std::string::npos);
  SetUp();
  edit("manifest.jsonl", [](std::string& s) {  // drop the last row line (row 9) only
    const size_t fail = s.find("{\"path\"");
    const size_t row9 = s.rfind("{\"row\"", fail);
    s.erase(row9, fail - row9);
  });
  std::string e = open_error();
  EXPECT_NE(e.find("9 rows, but index.json and embeddings.npy have 10"), std::string::npos) << e;
  SetUp();
  edit("manifest.jsonl", [](std::string& s) { s.resize(s.size() - 10); });  // a truncated last line
  EXPECT_NE(open_error().find("truncated"), std::string::npos);
  SetUp();
  edit("manifest.jsonl", [](std::string& s) { s += "[1,2]\n"; });
  EXPECT_NE(open_error().find("line 12 is not a JSON object"), std::string::npos);
  SetUp();
  edit("manifest.jsonl",
       [](std::string& s) { s += "{\"path\":\"q\",\"error\":\"x\",\"code\":\"weird\"}\n"; });
  EXPECT_NE(open_error().find("unknown error code"), std::string::npos);
  SetUp();
  edit("manifest.jsonl", [](std::string& s) {
    const size_t p = s.find("img1.png");
    s.replace(p, 8, "img0.png");
  });
  EXPECT_NE(open_error().find("appears at rows 0 and 1"), std::string::npos);
}

TEST_F(CorruptIndex, IndexJsonDisagreesOrIsNewer) {
  edit("index.json",
       [](std::string& s) { s.replace(s.find("\"count\": 10"), 11, "\"count\": 11"); });
  EXPECT_NE(open_error().find("count 11"), std::string::npos);
  SetUp();
  edit("index.json", [](std::string& s) {
    s.replace(s.find("\"format_version\": 1"), 19, "\"format_version\": 7");
  });
  EXPECT_NE(open_error(ErrorCode::kUnsupported).find("format_version 7"), std::string::npos);
  SetUp();
  edit("index.json", [](std::string& s) { s.resize(s.size() / 2); });
  EXPECT_NE(open_error().find("index.json: malformed"), std::string::npos);
  SetUp();
  edit("index.json",
       [](std::string& s) { s.replace(s.find("\"failed\": 1"), 11, "\"failed\": 0"); });
  EXPECT_NE(open_error().find("1 failure lines, but index.json says 0"), std::string::npos);
  fs::remove(dir_ + "/index.json");
  EXPECT_NE(open_error(ErrorCode::kNotFound).find("no index.json"), std::string::npos);
}

// index.json's integers are read as what they are: 2^32 + 1 is not format_version 1 (get<int>
// narrowed it), 1.5 is not 1, and 2^64 - 1 is not count -1.
TEST_F(CorruptIndex, IndexJsonIntegersAreNotNarrowed) {
  for (const char* fv : {"4294967297", "1.5", "-4294967295", "true"}) {
    SetUp();
    edit("index.json", [&](std::string& s) {
      s.replace(s.find("\"format_version\": 1"), 19, std::string("\"format_version\": ") + fv);
    });
    const bool integer = std::string(fv) != "1.5" && std::string(fv) != "true";
    const std::string e = open_error(integer ? ErrorCode::kUnsupported : ErrorCode::kInvalidConfig);
    EXPECT_NE(e.find("format_version"), std::string::npos) << fv << ": " << e;
  }
  SetUp();
  edit("index.json", [](std::string& s) {
    s.replace(s.find("\"failed\": 1"), 11, "\"failed\": 18446744073709551615");
  });
  EXPECT_NE(open_error().find("failed"), std::string::npos);
}

TEST(Index, SaveReplacesTheFolderWholeAndKeepsOpenReadersValid) {
  const std::string base = temp_dir("index_swap");
  auto v = clustered(20, 8, 2, 10);
  make_index(v, 8, IndexDtype::kFloat32, "old").save(base + "/idx");
  EmbeddingIndex reader = EmbeddingIndex::open(base + "/idx");
  const auto before = reader.row(5);
  make_index(std::vector<float>(v.rbegin(), v.rend()), 8, IndexDtype::kFloat16, "new")
      .save(base + "/idx");
  EXPECT_EQ(reader.row(5), before);  // still the old, mapped file
  EXPECT_EQ(reader.rows()[0].path, "old0.png");
  EmbeddingIndex now = EmbeddingIndex::open(base + "/idx");
  EXPECT_EQ(now.rows()[0].path, "new0.png");
  EXPECT_EQ(now.dtype(), IndexDtype::kFloat16);
  for (const auto& e : fs::directory_iterator(base))  // no temporary or old folder left beside it
    EXPECT_EQ(e.path().filename(), "idx");
  // A folder that holds something else is not replaced.
  fs::create_directories(base + "/photos");
  write_file(base + "/photos/cat.jpg", "x");
  EXPECT_THROW(now.save(base + "/photos"), Error);
  EXPECT_TRUE(fs::exists(base + "/photos/cat.jpg"));
}

TEST(Shard, EveryPathIsInExactlyOneShardAndTheHashIsFixed) {
  for (int n : {1, 2, 3, 7}) {
    std::vector<int> per(static_cast<size_t>(n));
    for (int i = 0; i < 500; ++i) {
      const std::string p = "photos/" + std::to_string(i) + ".jpg";
      int hits = 0;
      for (int k = 0; k < n; ++k)
        if (path_in_shard(p, k, n)) ++hits, ++per[size_t(k)];
      EXPECT_EQ(hits, 1);
    }
    for (int c : per) EXPECT_GT(c, 500 / n / 2);  // roughly even
  }
  // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c: even, and 1 modulo 3.
  EXPECT_TRUE(path_in_shard("a", 0, 2));
  EXPECT_TRUE(path_in_shard("a", 1, 3));
  EXPECT_THROW(path_in_shard("a", 2, 2), Error);
  EXPECT_THROW(path_in_shard("a", 0, 0), Error);
}

TEST(Ann, RecallAgainstExactSearchAndSavedWithTheIndex) {
  if (!ann_available()) {
    EmbeddingIndex index = make_index(clustered(10, 8, 2, 11), 8, IndexDtype::kFloat16);
    try {
      index.build_ann({});
      ADD_FAILURE() << "built an ANN without FAISS";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
      EXPECT_NE(std::string(e.what()).find("FAISS"), std::string::npos);
    }
    GTEST_SKIP() << "built without FAISS";
  }
  const int64_t d = 32, n = 5000;
  auto v = clustered(n, d, 50, 12);
  auto queries = clustered(40, d, 40, 13, 0.7f);
  for (const std::string kind : {"hnsw", "ivf"}) {
    EmbeddingIndex index = make_index(v, d, IndexDtype::kFloat16);
    AnnOptions o;
    o.kind = kind;
    index.build_ann(o);
    ASSERT_TRUE(index.has_ann());
    const std::string dir = temp_dir("index_ann") + "/idx";
    index.save(dir);
    EmbeddingIndex back = EmbeddingIndex::open(dir);
    ASSERT_TRUE(back.has_ann()) << kind;
    EXPECT_TRUE(fs::exists(dir + "/ann.faiss"));
    int found = 0;
    for (int j = 0; j < 40; ++j) {
      SearchOptions exact;
      exact.exact = true;
      auto want = back.search(queries.data() + j * d, 10, exact);
      auto got = back.search(queries.data() + j * d, 10);
      const auto all = brute_force(back, queries.data() + j * d);
      for (const auto& g : got) {
        for (const auto& w : want) found += g.row == w.row;
        // Candidates are rescored exactly: the score is the row's true cosine.
        const auto it =
            std::find_if(all.begin(), all.end(), [&](auto& p) { return p.second == g.row; });
        EXPECT_NEAR(g.score, it->first, 1e-5);
      }
    }
    EXPECT_GE(found / 400.0, 0.9) << kind << " recall@10";
    // A stale ann.faiss (rows added since) is refused when it is used.
    EmbeddingIndex small =
        make_index(std::vector<float>(v.begin(), v.begin() + 100 * d), d, IndexDtype::kFloat16);
    small.save(dir + "2");
    fs::copy_file(dir + "/ann.faiss", dir + "2/ann.faiss");
    std::string meta = read_file(dir + "/index.json");
    meta.replace(meta.find("\"count\": 5000"), 13, "\"count\": 100");
    meta.replace(meta.find("\"count\": 5000"), 13, "\"count\": 100");
    write_file(dir + "2/index.json", meta);
    EmbeddingIndex stale = EmbeddingIndex::open(dir + "2");
    EXPECT_THROW(stale.search(queries.data(), 5), Error) << kind;
    SearchOptions exact;
    exact.exact = true;
    EXPECT_EQ(stale.search(queries.data(), 5, exact).size(), 5u);
  }
}

// Many rows with equal features (copies of a photo, bursts): HNSW keeps one node per distinct
// vector, and the approximate search gives what the exact search gives.
TEST(Ann, DuplicateVectorsGiveWhatExactSearchGives) {
  if (!ann_available()) GTEST_SKIP() << "built without FAISS";
  const int64_t d = 32, distinct = 250, copies = 20;
  const auto base = clustered(distinct, d, 25, 31);
  std::vector<float> v;
  for (int64_t i = 0; i < distinct * copies; ++i)  // row i holds vector i % distinct
    v.insert(v.end(), base.begin() + (i % distinct) * d, base.begin() + (i % distinct + 1) * d);
  const auto queries = clustered(40, d, 40, 32, 0.8f);
  EmbeddingIndex index = make_index(v, d, IndexDtype::kFloat16);
  AnnOptions o;
  o.kind = "hnsw";
  index.build_ann(o);
  ASSERT_TRUE(index.has_ann());
  EXPECT_GE(index.ann_options().recall, 0.9);
  EXPECT_EQ(index.ann_options().recall_queries, 100);
  const std::string dir = temp_dir("index_ann_dups") + "/idx";
  index.save(dir);
  const nlohmann::json meta = nlohmann::json::parse(read_file(dir + "/index.json"));
  EXPECT_EQ(meta["ann"]["count"], distinct * copies);
  EXPECT_EQ(meta["ann"]["distinct"], distinct);
  EXPECT_EQ(fs::file_size(dir + "/ann_rows.bin"), uint64_t(distinct * copies * 8));
  EXPECT_GE(meta["ann"]["recall_at_10"].get<double>(), 0.9);
  EmbeddingIndex back = EmbeddingIndex::open(dir);
  ASSERT_TRUE(back.has_ann());
  for (const EmbeddingIndex* idx : {&index, &back})
    for (int top_k : {10, 65}) {
      for (int j = 0; j < 40; ++j) {
        SearchOptions exact;
        exact.exact = true;
        const auto want = idx->search(queries.data() + j * d, top_k, exact);
        const auto got = idx->search(queries.data() + j * d, top_k);
        ASSERT_EQ(got.size(), want.size());
        for (size_t i = 0; i < want.size(); ++i) {
          EXPECT_EQ(got[i].path, want[i].path) << "query " << j << " rank " << i;
          EXPECT_NEAR(got[i].score, want[i].score, 1e-5) << "query " << j << " rank " << i;
        }
      }
    }
  // A damaged row map is refused by name when the approximate part is used.
  write_file(dir + "/ann_rows.bin", std::string(16, '\0'));
  EmbeddingIndex damaged = EmbeddingIndex::open(dir);
  try {
    damaged.search(queries.data(), 5);
    ADD_FAILURE() << "a truncated ann_rows.bin was used";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ann_rows.bin"), std::string::npos) << e.what();
  }
}

// Below the minimum recall the approximate part is refused with the figure, and the index keeps
// what it had (here: none).
TEST(Ann, MeasuredRecallBelowTheMinimumIsRefused) {
  if (!ann_available()) GTEST_SKIP() << "built without FAISS";
  const int64_t d = 32;
  EmbeddingIndex index = make_index(clustered(3000, d, 300, 33, 1.0f), d, IndexDtype::kFloat16);
  AnnOptions o;
  o.kind = "ivf";
  o.ivf_lists = 64;
  o.ivf_probe = 1;  // one cell of 64: most true neighbours are elsewhere
  try {
    index.build_ann(o);
    ADD_FAILURE() << "an approximate part of poor recall was kept";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("recall@10"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("below the minimum 0.900"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(index.has_ann());
  o.min_recall = 0;  // accepted when asked for, with its figure
  index.build_ann(o);
  EXPECT_TRUE(index.has_ann());
  EXPECT_LT(index.ann_options().recall, 0.9);
  EXPECT_NE(index.ann_description().find("recall@10"), std::string::npos);
  o.min_recall = 1.5;
  EXPECT_THROW(index.build_ann(o), Error);
}

// One rule for rows holding NaN or Inf: reported by row and path, left out of searches, a failed
// entry in classify (the other rows classified), refused by merge and build_ann.
TEST(Index, NonFiniteRowsAreReportedAndNeverLoseTheGoodRows) {
  const int64_t d = 8, n = 20;
  const auto v = clustered(n, d, 4, 41);
  const std::string dir = temp_dir("index_nonfinite") + "/idx";
  make_index(v, d, IndexDtype::kFloat32).save(dir);
  std::string npy = read_file(dir + "/embeddings.npy");
  const size_t off = parse(npy).data_offset;
  const float nan = NAN, inf = INFINITY;
  std::memcpy(&npy[off + (3 * d + 1) * 4], &nan, 4);
  int64_t pos = 0;  // row 7: +Inf where row 7 itself is positive, so its score with itself is +Inf
  while (v[size_t(7 * d + pos)] <= 0) ++pos;
  std::memcpy(&npy[off + size_t(7 * d + pos) * 4], &inf, 4);
  write_file(dir + "/embeddings.npy", npy);
  EmbeddingIndex index = EmbeddingIndex::open(dir);
  EXPECT_EQ(index.nonfinite_rows(), (std::vector<int64_t>{3, 7}));
  const std::string report = index.nonfinite_report();
  EXPECT_NE(report.find("row 3 (img3.png), row 7 (img7.png)"), std::string::npos) << report;
  const auto hits = index.search(v.data() + 7 * d, int(n));
  EXPECT_EQ(hits.size(), size_t(n - 2));
  for (const auto& h : hits) {
    EXPECT_TRUE(std::isfinite(h.score)) << h.path;
    EXPECT_NE(h.row, 3);
    EXPECT_NE(h.row, 7);
  }
  // An exact search finds them on its way (a fresh copy of the index, nothing remembered yet).
  EmbeddingIndex fresh = EmbeddingIndex::open(dir);
  fresh.search(v.data(), 3);
  EXPECT_EQ(fresh.nonfinite_rows(), (std::vector<int64_t>{3, 7}));
  // classify: 18 rows classified, rows 3 and 7 failed by name.
  ZeroShotHead head = ZeroShotHead::from_weights(
      {"a", "b"}, FloatTensor({2, d}, std::vector<float>(v.begin(), v.begin() + 2 * d)), 50.f,
      index.model_fingerprint());
  const auto c = index.classify(head, 1);
  ASSERT_EQ(c.size(), size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(c[size_t(i)].source, "img" + std::to_string(i) + ".png");
    EXPECT_EQ(c[size_t(i)].ok, i != 3 && i != 7) << i;
    if (i == 3 || i == 7) {
      EXPECT_EQ(c[size_t(i)].code, ErrorCode::kInvalidConfig);
      EXPECT_NE(c[size_t(i)].error.find("row " + std::to_string(i)), std::string::npos);
    } else {
      EXPECT_EQ(c[size_t(i)].top.size(), 1u);
    }
  }
  try {
    merge_indexes({dir});
    ADD_FAILURE() << "merge copied NaN rows";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 3 (img3.png)"), std::string::npos) << e.what();
  }
  if (ann_available()) {
    try {
      index.build_ann({});
      ADD_FAILURE() << "an approximate part over NaN rows";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("row 7 (img7.png)"), std::string::npos) << e.what();
    }
  }
}

// index.json, manifest.jsonl, embeddings.npy or ann.faiss as a FIFO: refused at once, not waited
// on (a writer is opened after 10 s so that a failing check ends instead of hanging).
TEST(Index, AFifoInPlaceOfAFileIsRefusedAtOnce) {
  for (const char* name : {"index.json", "manifest.jsonl", "embeddings.npy", "ann.faiss"}) {
    const std::string dir = temp_dir("index_fifo") + "/idx";
    EmbeddingIndex index = make_index(clustered(30, 8, 3, 51), 8, IndexDtype::kFloat32);
    if (std::string(name) == "ann.faiss") {
      if (!ann_available()) continue;
      index.build_ann({});
    }
    index.save(dir);
    const std::string fifo = dir + "/" + name;
    fs::remove(fifo);
    ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
    auto attempt = std::async(std::launch::async, [&] {
      EmbeddingIndex opened = EmbeddingIndex::open(dir);
      opened.search(clustered(1, 8, 1, 52).data(), 3);
    });
    if (attempt.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      ADD_FAILURE() << name << " as a FIFO: still waiting after 10 s";
      const int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
      if (w >= 0) ::close(w);
    }
    try {
      attempt.get();
      ADD_FAILURE() << name << " as a FIFO was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("regular file"), std::string::npos) << e.what();
    }
  }
}

// One file under two spellings is one file: merge refuses it; save through a symbolic link
// replaces the real folder and keeps the link.
TEST(Index, MergeKeysPathsByTheFileAndSaveFollowsLinks) {
  const std::string base = temp_dir("index_alias");
  const auto v = clustered(4, 8, 2, 61);
  EmbeddingIndex a = EmbeddingIndex::create("fp", 8, IndexDtype::kFloat32);
  a.add({base + "/x.png", {}}, v.data());
  a.save(base + "/a");
  for (const std::string alias : {base + "/./x.png", base + "/sub/../x.png"}) {
    fs::create_directories(base + "/sub");
    EmbeddingIndex b = EmbeddingIndex::create("fp", 8, IndexDtype::kFloat32);
    b.add({alias, {}}, v.data() + 8);
    fs::remove_all(base + "/b");
    b.save(base + "/b");
    try {
      merge_indexes({base + "/a", base + "/b"});
      ADD_FAILURE() << alias << " merged beside " << base << "/x.png";
    } catch (const Error& e) {
      EXPECT_NE(
          std::string(e.what()).find("(in " + base + "/a as " + base + "/x.png: the same file)"),
          std::string::npos)
          << e.what();
    }
  }
  fs::create_directory_symlink(base + "/a", base + "/link");
  EmbeddingIndex c = EmbeddingIndex::create("fp", 8, IndexDtype::kFloat32);
  c.add({base + "/y.png", {}}, v.data() + 16);
  c.save(base + "/link");
  EXPECT_TRUE(fs::is_symlink(base + "/link"));
  EXPECT_EQ(EmbeddingIndex::open(base + "/a").rows()[0].path, base + "/y.png");
}

}  // namespace
}  // namespace zsclip
