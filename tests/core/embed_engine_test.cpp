// The embedding engine with fake encoders: results in input order with an error per bad item,
// bounded look-ahead, no thread started by a call, and the runtime it decodes on. No LibTorch.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "fake_encoder.h"
#include "test_util.h"
#include "zsclip/embed.h"

namespace zsclip {
namespace {

using namespace ::zsclip::testing;

// The PNGs of examples/images, sorted.
std::vector<std::string> example_images() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(source_path("examples/images")))
    out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Options with a runtime of its own.
EmbedOptions options(int batch_size, int threads, int queue_batches = 2) {
  EmbedOptions o;
  o.batch_size = batch_size;
  o.queue_batches = queue_batches;
  o.runtime = Runtime::create(RuntimeOptions{threads, 0, 0, "auto"});
  return o;
}

// Item i: a solid 5 x 4 picture of grey level 3 * i + 1; every item with i % 5 == 3 is bad.
struct Items {
  explicit Items(size_t n) : pixels(n) {
    for (size_t i = 0; i < n; ++i) pixels[i].assign(5 * 4 * 3, static_cast<uint8_t>(3 * i + 1));
  }
  static bool bad(size_t i) { return i % 5 == 3; }
  ImageView view(size_t i) const { return {pixels[i].data(), 5, 4, 0, PixelFormat::kRGB}; }
  EmbeddingEngine::ItemFn fn(const EmbeddingEngine& engine) {
    return [this, &engine](size_t i, float* out) {
      for (size_t seen = started.load();
           i >= seen && !started.compare_exchange_weak(seen, i + 1);) {
      }
      if (bad(i)) throw Error(ErrorCode::kInvalidImage, "item " + std::to_string(i) + " is bad");
      engine.preprocessor().from_view_into(view(i), out);
    };
  }
  std::vector<std::vector<uint8_t>> pixels;
  std::atomic<size_t> started{0};  // 1 + the highest item index preprocessing has begun
};

std::string name_of(size_t i) { return "item " + std::to_string(i); }

TEST(EmbeddingEngine, BatchesComeInInputOrderWithAnErrorPerBadItem) {
  auto image = std::make_shared<FakeImageEncoder>();
  const EmbeddingEngine engine(image, options(3, 3));
  Items items(17);
  size_t next = 0;
  engine.run(17, items.fn(engine), name_of, [&](EmbeddedBatch& b) {
    ASSERT_EQ(b.begin, next);
    ASSERT_EQ(b.status.size(), std::min<size_t>(3, 17 - next));
    std::vector<size_t> good;
    for (size_t i = 0; i < b.status.size(); ++i) {
      const size_t item = b.begin + i;
      EXPECT_EQ(b.status[i].ok, !Items::bad(item)) << item;
      if (Items::bad(item)) {
        EXPECT_EQ(b.status[i].code, ErrorCode::kInvalidImage);
        EXPECT_EQ(b.status[i].error, "item " + std::to_string(item) + " is bad");
      } else {
        good.push_back(item);
      }
    }
    ASSERT_EQ(b.encoded, good);
    ASSERT_EQ(b.features.shape, (std::vector<int64_t>{int64_t(good.size()), 3}));
    for (size_t j = 0; j < good.size(); ++j) {  // bit for bit what one image alone gives
      const std::vector<float> one =
          engine.encode(engine.preprocessor().from_view(items.view(good[j])).ptr());
      EXPECT_EQ(std::vector<float>(b.features.row(int64_t(j)), b.features.row(int64_t(j)) + 3), one)
          << good[j];
    }
    next += b.status.size();
  });
  EXPECT_EQ(next, 17u);
}

TEST(EmbeddingEngine, FilesKeepTheirOrderAndABadFileLosesNothingElse) {
  auto image = std::make_shared<FakeImageEncoder>();
  const EmbeddingEngine engine(image, options(2, 0));
  const std::string dir = temp_dir("embed_engine_files");
  const std::string junk = dir + "/junk.png";
  std::ofstream(junk) << "not an image";
  std::vector<std::string> paths = example_images();
  paths.insert(paths.begin() + 1, dir + "/missing.png");
  paths.insert(paths.begin() + 4, junk);
  std::vector<std::vector<float>> got(paths.size());
  std::vector<std::string> errors(paths.size());
  engine.run_files(paths, [&](EmbeddedBatch& b) {
    for (size_t i = 0; i < b.status.size(); ++i)
      if (!b.status[i].ok) errors[b.begin + i] = b.status[i].error;
    for (size_t j = 0; j < b.encoded.size(); ++j)
      got[b.encoded[j]].assign(b.features.row(int64_t(j)), b.features.row(int64_t(j)) + 3);
  });
  for (size_t i = 0; i < paths.size(); ++i) {
    if (i == 1 || i == 4) {
      EXPECT_TRUE(got[i].empty()) << i;
      EXPECT_NE(errors[i].find(paths[i]), std::string::npos) << errors[i];
    } else {
      EXPECT_EQ(errors[i], "") << i;
      EXPECT_EQ(got[i], engine.encode_file(paths[i])) << paths[i];
    }
  }
  // embed_files: the same rows, normalised; a bad file is the call's error.
  const std::vector<std::string> good = example_images();
  const FloatTensor rows = engine.embed_files(good);
  for (size_t i = 0; i < good.size(); ++i)
    EXPECT_EQ(std::vector<float>(rows.row(int64_t(i)), rows.row(int64_t(i)) + 3),
              engine.embed_file(good[i]));
  EXPECT_THROW(engine.embed_files(paths), Error);
}

TEST(EmbeddingEngine, LooksAheadAtMostQueueBatches) {
  // While batch k is passed on, batches k+1 .. k+queue_batches may preprocess, never one more.
  auto image = std::make_shared<FakeImageEncoder>();
  for (int queue : {1, 2}) {
    const EmbeddingEngine engine(image, options(2, 4, queue));
    Items items(40);
    size_t k = 0;
    size_t max_ahead = 0;
    engine.run(40, items.fn(engine), name_of, [&](EmbeddedBatch& b) {
      const size_t limit = std::min<size_t>((k + 1 + queue) * 2, 40);
      if (k == 0) {  // the workers run ahead up to the limit while this batch is held
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (items.started.load() < limit && std::chrono::steady_clock::now() < end)
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      EXPECT_LE(items.started.load(), limit) << "batch " << k << ", queue " << queue;
      max_ahead = std::max(max_ahead, items.started.load() - b.begin);
      ++k;
    });
    EXPECT_EQ(k, 20u);
    EXPECT_EQ(max_ahead, size_t(2 * (queue + 1))) << "queue " << queue;
  }
}

TEST(EmbeddingEngine, CallsStartNoThreads) {
  auto image = std::make_shared<FakeImageEncoder>();
  auto text = std::make_shared<FakeTextEncoder>();
  const EmbeddingEngine engine(image, options(2, 3), text);
  const int threads_before = process_threads();
  std::atomic<int> most{0};
  Items items(23);
  const auto paths = example_images();
  for (int rep = 0; rep < 5; ++rep) {
    engine.run(23, items.fn(engine), name_of,
               [&](EmbeddedBatch&) { most = std::max(most.load(), process_threads()); });
    ASSERT_EQ(engine.embed_files(paths).size(0), int64_t(paths.size()));
    ASSERT_EQ(engine.embed({items.view(0), items.view(1), items.view(2)}).size(0), 3);
    ASSERT_EQ(engine.embed_texts({"red", "blue"}).size(0), 2);
  }
  EXPECT_EQ(most.load(), threads_before);
  EXPECT_EQ(image->log.max_process_threads(), threads_before);
  EXPECT_EQ(process_threads(), threads_before);
  EXPECT_LE(image->log.distinct_threads(), 3u);  // the caller and the runtime's two workers
}

TEST(EmbeddingEngine, AnErrorFromTheConsumerEndsTheCallCleanly) {
  auto image = std::make_shared<FakeImageEncoder>();
  const EmbeddingEngine engine(image, options(2, 3));
  Items items(30);
  size_t calls = 0;
  EXPECT_THROW(engine.run(30, items.fn(engine), name_of,
                          [&](EmbeddedBatch&) {
                            if (++calls == 3) throw Error(ErrorCode::kIo, "consumer failed");
                          }),
               Error);
  EXPECT_EQ(calls, 3u);
  image->fail_after = 3;  // the encoder's own error ends the call the same way
  EXPECT_THROW(engine.run(30, items.fn(engine), name_of, [](EmbeddedBatch&) {}), Error);
  image->fail_after = -1;
  size_t rows = 0;
  engine.run(30, items.fn(engine), name_of, [&](EmbeddedBatch& b) { rows += b.encoded.size(); });
  EXPECT_EQ(rows, 24u);  // 30 items, six of them bad
}

TEST(EmbeddingEngine, ConstructorChecksItsInputsAndTakesTheEncodersRuntime) {
  auto image = std::make_shared<FakeImageEncoder>();
  for (auto change :
       {+[](EmbedOptions& o) { o.batch_size = 0; }, +[](EmbedOptions& o) { o.queue_batches = 0; },
        +[](EmbedOptions& o) { o.preprocess_threads = -1; }}) {
    EmbedOptions o;
    change(o);
    EXPECT_THROW(EmbeddingEngine(image, o), Error);
  }
  EXPECT_THROW(EmbeddingEngine(nullptr), Error);
  struct WideText : FakeTextEncoder {
    int64_t embed_dim() const override { return 4; }
  };
  EXPECT_THROW(EmbeddingEngine(image, {}, std::make_shared<WideText>()), Error);
  EXPECT_THROW(EmbeddingEngine(image).embed_text("red"), Error);  // no text encoder

  EXPECT_EQ(EmbeddingEngine(image).runtime(), Runtime::default_runtime());
  struct WithRuntime : FakeImageEncoder {
    std::shared_ptr<Runtime> own = Runtime::create(RuntimeOptions{2, 0, 0, "auto"});
    const std::shared_ptr<Runtime>& runtime() const override { return own; }
  };
  auto with = std::make_shared<WithRuntime>();
  const EmbeddingEngine engine(with);
  EXPECT_EQ(engine.runtime(), with->own);
  EXPECT_EQ(engine.preprocessor().runtime(), with->own);
  EmbedOptions o;
  o.runtime = Runtime::create(RuntimeOptions{1, 0, 0, "auto"});
  EXPECT_EQ(EmbeddingEngine(with, o).runtime(), o.runtime);  // an explicit one wins
}

}  // namespace
}  // namespace zsclip
