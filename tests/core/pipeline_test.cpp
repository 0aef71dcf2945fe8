// The classifier pipeline, the zero-shot head's build and the embedding calls, with fake encoders:
// batching, pipelining, bad images, in-memory pixels, similarity and many threads on one object,
// all without LibTorch.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <thread>

#include "fake_encoder.h"
#include "test_util.h"
#include "zsclip/pipeline.h"
#include "zsclip/similarity.h"

namespace zsclip {
namespace {

using namespace ::zsclip::testing;

const std::vector<std::string> kColours = {"red", "green", "blue"};

// Solid colour, w x h, in `format`, rows padded to `stride` bytes (0: packed).
struct Picture {
  std::vector<uint8_t> bytes;
  int width = 0, height = 0;
  size_t stride = 0;
  PixelFormat format = PixelFormat::kRGB;
  // Made on demand: a copied Picture must not point into the original's bytes.
  ImageView view() const {
    return ImageView{bytes.empty() ? nullptr : bytes.data(), width, height, stride, format};
  }
};
Picture solid(uint8_t r, uint8_t g, uint8_t b, PixelFormat format = PixelFormat::kRGB, int w = 13,
              int h = 9, size_t stride = 0) {
  const int c = channels_of(format);
  const size_t row = stride ? stride : size_t(w) * c;
  Picture p;
  p.bytes.assign(row * h, 0xEE);  // padding bytes must not be read as pixels
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* px = &p.bytes[y * row + size_t(x) * c];
      const uint8_t rgb[3] = {r, g, b};
      switch (format) {
        case PixelFormat::kRGB:
        case PixelFormat::kRGBA:
          px[0] = rgb[0], px[1] = rgb[1], px[2] = rgb[2];
          break;
        case PixelFormat::kBGR:
        case PixelFormat::kBGRA:
          px[0] = rgb[2], px[1] = rgb[1], px[2] = rgb[0];
          break;
        case PixelFormat::kGray:
          px[0] = r;
          break;
      }
      if (c == 4) px[3] = 255;
    }
  p.width = w, p.height = h, p.stride = stride, p.format = format;
  return p;
}

std::vector<std::string> example_images() {
  std::vector<std::string> out;
  for (const char* f : {"red_circle", "blue_star", "green_triangle", "yellow_square",
                        "orange_circle", "black_star"})
    out.push_back(source_path(std::string("examples/images/") + f + ".png"));
  return out;
}

ZeroShotHead colour_head(const FakeTextEncoder& text) {
  return ZeroShotHead::build(text, kColours, {"a {} thing."});
}

struct Fixture {
  std::shared_ptr<FakeImageEncoder> image = std::make_shared<FakeImageEncoder>();
  std::shared_ptr<FakeTextEncoder> text = std::make_shared<FakeTextEncoder>();
  ZeroShotPipeline make(ClassifierOptions o = {}) const {
    return ZeroShotPipeline(image, colour_head(*text), o, text);
  }
};

void expect_same(const Classification& a, const Classification& b, const std::string& what) {
  ASSERT_EQ(a.ok, b.ok) << what << ": " << a.error << " / " << b.error;
  EXPECT_EQ(a.source, b.source) << what;
  if (!a.ok) {
    EXPECT_EQ(a.code, b.code) << what;
    EXPECT_EQ(a.error, b.error) << what;
    return;
  }
  ASSERT_EQ(a.top.size(), b.top.size()) << what;
  for (size_t k = 0; k < a.top.size(); ++k) EXPECT_EQ(a.top[k].label, b.top[k].label) << what;
  EXPECT_EQ(a.probs, b.probs) << what;  // bit-identical: the fake encoder is per image
}

TEST(ZeroShotBuild, WorksWithAnyTextEncoder) {
  FakeTextEncoder text;
  ZeroShotHead head = ZeroShotHead::build(text, kColours, {"a {} thing.", "the {} one."});
  ASSERT_EQ(head.num_classes(), 3);
  EXPECT_EQ(head.model_fingerprint(), "fake-1");
  EXPECT_FLOAT_EQ(head.logit_scale_exp(), 10.f);
  for (int c = 0; c < 3; ++c)
    for (int k = 0; k < 3; ++k)
      EXPECT_FLOAT_EQ(head.weights().at(c, k), c == k ? 1.f : 0.f) << c << "," << k;
  // Prompts are batched (batch_size 1 gives the same head).
  HeadBuildOptions one_at_a_time;
  one_at_a_time.batch_size = 1;
  ZeroShotHead one =
      ZeroShotHead::build(text, kColours, {"a {} thing.", "the {} one."}, one_at_a_time);
  EXPECT_EQ(one.weights().data, head.weights().data);
  EXPECT_THROW(ZeroShotHead::build(text, {"red", "red"}, {"{}"}), Error);
  EXPECT_THROW(ZeroShotHead::build(text, kColours, {"no placeholder"}), Error);
}

TEST(ZeroShotBuild, CompatibilityIsCheckedAgainstTheImageEncoder) {
  FakeTextEncoder text;
  ZeroShotHead head = colour_head(text);
  EXPECT_NO_THROW(head.check_compatible(FakeImageEncoder(8, "fake-1")));
  try {
    head.check_compatible(FakeImageEncoder(8, "other"), "my.zshead");
    ADD_FAILURE() << "accepted a head of another model";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
    EXPECT_NE(std::string(e.what()).find("my.zshead"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fake image encoder"), std::string::npos) << e.what();
  }
}

TEST(Pipeline, ConstructorChecksItsInputs) {
  Fixture f;
  ClassifierOptions bad;
  bad.batch_size = 0;
  EXPECT_THROW(f.make(bad), Error);
  EXPECT_THROW(ZeroShotPipeline(nullptr, colour_head(*f.text)), Error);
  try {
    ZeroShotPipeline(std::make_shared<FakeImageEncoder>(8, "other"), colour_head(*f.text));
    ADD_FAILURE() << "accepted a head of another model";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  }
  EXPECT_EQ(f.make().runtime(), Runtime::default_runtime());
}

TEST(Pipeline, ClassifiesPixelsInMemoryInEveryFormat) {
  Fixture f;
  ZeroShotPipeline p = f.make();
  const struct {
    uint8_t r, g, b;
    const char* label;
  } colours[] = {{250, 10, 5, "red"}, {0, 200, 30, "green"}, {20, 40, 230, "blue"}};
  for (const auto& c : colours)
    for (PixelFormat fmt :
         {PixelFormat::kRGB, PixelFormat::kBGR, PixelFormat::kRGBA, PixelFormat::kBGRA}) {
      Picture packed = solid(c.r, c.g, c.b, fmt);
      Picture strided = solid(c.r, c.g, c.b, fmt, 13, 9, 13 * 4 + 7);
      Classification a = p.classify(packed.view(), "x"), b = p.classify(strided.view(), "x");
      EXPECT_EQ(a.top[0].label, c.label) << int(fmt);
      expect_same(a, b, "stride");
    }
  // Grey: all three channels equal.
  std::vector<float> g = p.embed(solid(128, 0, 0, PixelFormat::kGray).view());
  EXPECT_NEAR(g[0], g[1], 1e-6);
  EXPECT_NEAR(g[1], g[2], 1e-6);
  // Bad views are errors, not crashes.
  ImageView null_view{nullptr, 4, 4, 0, PixelFormat::kRGB};
  EXPECT_THROW(p.classify(null_view), Error);
  Picture small = solid(1, 2, 3);
  ImageView short_stride = small.view();
  short_stride.stride = 5;
  EXPECT_THROW(p.classify(short_stride), Error);
}

TEST(Pipeline, BatchesGiveTheSingleImageResults) {
  Fixture f;
  std::vector<std::string> paths = example_images();
  const std::string dir = temp_dir("pipeline_batches");
  std::ofstream(dir + "/not_an_image.png") << "hello";
  paths.insert(paths.begin() + 2, dir + "/not_an_image.png");
  paths.push_back(dir + "/missing.png");
  ZeroShotPipeline single = f.make();
  std::vector<Classification> expected;
  for (const auto& path : paths) {
    try {
      expected.push_back(single.classify_file(path));
    } catch (const Error& e) {
      Classification c;
      c.source = path;
      c.ok = false;
      c.code = e.code();
      c.error = e.what();
      expected.push_back(c);
    }
  }
  ASSERT_FALSE(expected[2].ok);
  ASSERT_FALSE(expected.back().ok);
  EXPECT_EQ(expected.back().code, ErrorCode::kNotFound);
  for (int bs : {1, 2, 3, 16})
    for (int queue : {1, 2})
      for (int prep : {0, 1, 3}) {
        ClassifierOptions o;
        o.batch_size = bs;
        o.queue_batches = queue;
        o.preprocess_threads = prep;
        std::vector<Classification> got = f.make(o).classify_files(paths);
        ASSERT_EQ(got.size(), paths.size());
        for (size_t i = 0; i < paths.size(); ++i)
          expect_same(got[i], expected[i],
                      "batch " + std::to_string(bs) + " queue " + std::to_string(queue) + " item " +
                          std::to_string(i));
      }
  EXPECT_TRUE(f.make().classify_files({}).empty());
}

TEST(Pipeline, ViewsBatchLikeSingleCalls) {
  Fixture f;
  std::vector<Picture> pics;
  for (int i = 0; i < 11; ++i)
    pics.push_back(solid(uint8_t(20 * i), uint8_t(255 - 20 * i), uint8_t(7 * i)));
  pics.push_back(Picture{});  // no pixels: a bad one
  std::vector<ImageView> views;
  for (const auto& p : pics) views.push_back(p.view());
  ClassifierOptions o;
  o.batch_size = 4;
  ZeroShotPipeline p = f.make(o);
  std::vector<Classification> got = p.classify(views);
  ASSERT_EQ(got.size(), views.size());
  for (size_t i = 0; i + 1 < views.size(); ++i)
    expect_same(got[i], p.classify(views[i], "<image " + std::to_string(i) + ">"),
                "view " + std::to_string(i));
  EXPECT_FALSE(got.back().ok);
  EXPECT_EQ(got.back().code, ErrorCode::kInvalidArgument);
  // Embeddings: unit rows equal to the single calls; a bad image throws.
  views.pop_back();
  FloatTensor e = p.embed(views);
  ASSERT_EQ(e.shape, (std::vector<int64_t>{11, 3}));
  for (size_t i = 0; i < views.size(); ++i) {
    std::vector<float> one = p.embed(views[i]);
    EXPECT_EQ(std::vector<float>(e.row(int64_t(i)), e.row(int64_t(i)) + 3), one) << i;
    double n = 0;
    for (float v : one) n += double(v) * v;
    EXPECT_NEAR(n, 1.0, 1e-6);
  }
  views.push_back(ImageView{});
  EXPECT_THROW(p.embed(views), Error);
}

TEST(Pipeline, EmbeddingsAndSimilarities) {
  Fixture f;
  ZeroShotPipeline p = f.make();
  Picture red = solid(255, 0, 0), red2 = solid(255, 0, 0, PixelFormat::kBGR, 30, 20),
          green = solid(0, 255, 0);
  EXPECT_NEAR(p.image_similarity(red.view(), red2.view()), 1.f, 1e-6);
  EXPECT_NEAR(p.image_similarity(red.view(), green.view()), 0.f, 1e-6);
  EXPECT_NEAR(p.text_image_similarity("a red thing", red.view()), 1.f, 1e-6);
  EXPECT_NEAR(p.text_image_similarity("a red thing", green.view()), 0.f, 1e-6);
  EXPECT_NEAR(p.text_image_similarity("red or green", green.view()), std::sqrt(0.5f), 1e-6);
  const std::string img = example_images()[0];
  EXPECT_NEAR(p.image_similarity(img, img), 1.f, 1e-6);
  std::vector<float> t = p.embed_text("blue");
  EXPECT_EQ(t, (std::vector<float>{0.f, 0.f, 1.f}));
  FloatTensor files = p.embed_files({img, example_images()[1]});
  EXPECT_EQ(std::vector<float>(files.row(0), files.row(0) + 3), p.embed_file(img));
  const std::string bytes = read_file(img);
  EXPECT_EQ(p.embed_buffer(bytes.data(), bytes.size()), p.embed_file(img));
  try {
    p.embed_files({img, "/nonexistent/x.png"});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.png"), std::string::npos) << e.what();
  }
  // Without a text encoder, text calls are refused with a reason.
  ZeroShotPipeline images_only(f.image, colour_head(*f.text));
  EXPECT_EQ(images_only.text_encoder(), nullptr);
  try {
    images_only.embed_text("red");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("no text encoder"), std::string::npos) << e.what();
  }
  // Pixels without a batch dimension.
  FloatTensor px = p.preprocessor().from_view(red.view());
  EXPECT_EQ(p.classify_pixels(px)[0].top[0].label, "red");
  EXPECT_EQ(f.image->encode_images(px).shape, (std::vector<int64_t>{1, 3}));
}

TEST(Similarity, CosineAndNormalisation) {
  EXPECT_NEAR(cosine_similarity(std::vector<float>{1, 0}, std::vector<float>{1, 1}),
              std::sqrt(0.5f), 1e-7);
  EXPECT_EQ(cosine_similarity(std::vector<float>{0, 0}, std::vector<float>{1, 1}), 0.f);
  EXPECT_THROW(cosine_similarity(std::vector<float>{1}, std::vector<float>{1, 2}), Error);
  EXPECT_EQ(normalized({3, 4}), (std::vector<float>{0.6f, 0.8f}));
  EXPECT_EQ(normalized({0, 0}), (std::vector<float>{0, 0}));
  FloatTensor a({2, 2}, std::vector<float>{1, 0, 0, 2}),
      b({3, 2}, std::vector<float>{2, 0, 0, 1, 1, 1});
  FloatTensor s = cosine_similarity(a, b);
  ASSERT_EQ(s.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_NEAR(s.at(0, 0), 1.f, 1e-7);
  EXPECT_NEAR(s.at(1, 0), 0.f, 1e-7);
  EXPECT_NEAR(s.at(1, 2), std::sqrt(0.5f), 1e-7);
  EXPECT_THROW(cosine_similarity(a, FloatTensor({2, 3})), Error);
  normalize_rows(b);
  EXPECT_NEAR(b.at(2, 0), std::sqrt(0.5f), 1e-7);
}

TEST(Pipeline, AnEncoderFailureEndsTheBatchCallCleanly) {
  // The encoder throws on the third batch while later batches are being preprocessed on the pool:
  // the call rethrows the encoder's error once those have finished, and the pipeline still works.
  Fixture f;
  ClassifierOptions o;
  o.batch_size = 2;
  o.queue_batches = 2;
  ZeroShotPipeline p = f.make(o);
  std::vector<std::string> paths;
  for (int rep = 0; rep < 4; ++rep)
    for (const auto& path : example_images()) paths.push_back(path);
  f.image->fail_after = 5;
  try {
    p.classify_files(paths);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "fake encoder failure");
  }
  EXPECT_EQ(f.image->images.load(), 4);  // two batches got through
  f.image->fail_after = -1;
  EXPECT_EQ(p.classify_files(paths).size(), paths.size());
}

TEST(Pipeline, CallsStartNoThreads) {
  // Every thread that computes belongs to the runtime (made before the calls) or is the caller.
  Fixture f;
  ClassifierOptions o;
  o.runtime = Runtime::create(RuntimeOptions{3, 0, 0, "auto"});
  o.batch_size = 2;
  const int threads_before = process_threads();
  ZeroShotPipeline p = f.make(o);
  const auto paths = example_images();
  for (int rep = 0; rep < 10; ++rep) ASSERT_EQ(p.classify_files(paths).size(), paths.size());
  EXPECT_EQ(f.image->log.max_process_threads(), threads_before);
  EXPECT_LE(f.image->log.distinct_threads(), 3u);
  EXPECT_TRUE(f.image->log.saw(std::this_thread::get_id()));
}

TEST(Pipeline, EightThreadsShareOneClassifier) {
  Fixture f;
  ClassifierOptions o;
  o.batch_size = 3;
  o.top_k = 2;
  o.runtime = Runtime::create(RuntimeOptions{4, 0, 0, "auto"});
  const ZeroShotPipeline p = f.make(o);
  const auto paths = example_images();
  std::vector<Picture> pics = {solid(255, 0, 0), solid(0, 255, 0, PixelFormat::kBGR),
                               solid(0, 0, 255)};
  std::vector<ImageView> views;
  for (const auto& pic : pics) views.push_back(pic.view());
  std::vector<Classification> expected_files, expected_views;
  for (const auto& path : paths) expected_files.push_back(p.classify_file(path));
  for (size_t i = 0; i < views.size(); ++i)
    expected_views.push_back(p.classify(views[i], "<image " + std::to_string(i) + ">"));
  const int threads_before = process_threads();
  std::vector<std::thread> callers;
  std::vector<std::string> failures(8);
  for (int t = 0; t < 8; ++t)
    callers.emplace_back([&, t] {
      for (int rep = 0; rep < 6; ++rep) {
        std::vector<Classification> got;
        std::vector<Classification>* want = &expected_files;
        switch ((t + rep) % 4) {
          case 0:
            for (const auto& path : paths) got.push_back(p.classify_file(path));
            break;
          case 1:
            got = p.classify_files(paths);
            break;
          case 2:
            got = p.classify(views);
            want = &expected_views;
            break;
          case 3: {
            FloatTensor e = p.embed_files(paths);
            for (size_t i = 0; i < paths.size(); ++i)
              if (std::vector<float>(e.row(int64_t(i)), e.row(int64_t(i)) + 3) !=
                  p.embed_file(paths[i]))
                failures[size_t(t)] += "embedding of " + paths[i] + " differs; ";
            continue;
          }
        }
        if (got.size() != want->size()) {
          failures[size_t(t)] += "wrong count; ";
          continue;
        }
        for (size_t i = 0; i < got.size(); ++i)
          if (!got[i].ok || got[i].probs != (*want)[i].probs || got[i].source != (*want)[i].source)
            failures[size_t(t)] += "item " + std::to_string(i) + " differs; ";
      }
    });
  for (auto& c : callers) c.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(failures[size_t(t)], "") << "thread " << t;
  // The callers computed on their own threads and the runtime's three workers, nothing more.
  EXPECT_LE(f.image->log.distinct_threads(), 8u + 3u + 1u);
  EXPECT_LE(f.image->log.max_process_threads(), threads_before + 8);
}

}  // namespace
}  // namespace zsclip

namespace zsclip {
namespace {

using namespace ::zsclip::testing;

// classify_files(paths, on_ready): results arrive in input order, a batch at a time, while later
// batches are still to be encoded (what `zsclip classify` streams), and equal the plain call's.
TEST(PipelineStreaming, ResultsArriveInOrderBeforeTheLastBatchIsEncoded) {
  std::vector<std::string> paths = example_images();
  const std::string dir = temp_dir("pipeline_streaming");
  std::ofstream(dir + "/bad.png") << "not a png";
  paths.insert(paths.begin() + 1, dir + "/bad.png");
  while (paths.size() < 12) paths.push_back(paths[paths.size() % 3]);
  auto image = std::make_shared<FakeImageEncoder>();
  auto text = std::make_shared<FakeTextEncoder>();
  ClassifierOptions o;
  o.batch_size = 2;
  o.queue_batches = 1;
  const ZeroShotPipeline p(image, colour_head(*text), o, text);
  const std::vector<Classification> plain = p.classify_files(paths);
  image->images = 0;
  size_t next = 0, calls = 0;
  int64_t encoded_at_first_call = -1;
  std::vector<Classification> streamed;
  const std::vector<Classification> all =
      p.classify_files(paths, [&](size_t first, const Classification* r, size_t n) {
        EXPECT_EQ(first, next) << "results must come in input order, each once";
        if (calls++ == 0) encoded_at_first_call = image->images.load();
        for (size_t i = 0; i < n; ++i) streamed.push_back(r[i]);
        next = first + n;
      });
  EXPECT_EQ(next, paths.size());
  EXPECT_GE(calls, 3u);
  EXPECT_GE(encoded_at_first_call, 1);
  EXPECT_LT(encoded_at_first_call, static_cast<int64_t>(paths.size() - 1))
      << "nothing was streamed early";
  ASSERT_EQ(streamed.size(), plain.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    expect_same(streamed[i], plain[i], "streamed item " + std::to_string(i));
    expect_same(all[i], plain[i], "returned item " + std::to_string(i));
  }
  EXPECT_FALSE(streamed[1].ok);
}

}  // namespace
}  // namespace zsclip
