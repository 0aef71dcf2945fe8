// Every precision and thread setting of the CPU encoders gives the same answers within its
// documented tolerance (include/zsclip/model.h, benchmarks/README.md "bf16"):
//   - zsclip's oneDNN linear kernels against LibTorch's (OpenBLAS): 1e-5 of the largest value;
//   - a single image spread over the runtime's threads against one thread: 1e-5;
//   - bfloat16 linear layers against float32: cosine >= 0.999 per row, and the same top-1 class
//     on the trained shapes model;
//   - dynamic int8 linear layers against float32: the same bounds (image tower; the text tower
//     with int8_text, else bit for bit float32), with each kernel this CPU can run (vnni-s8s8,
//     avx2-u8s7x2), which give the same answers bit for bit; a row's result does not depend on the
//     batch it is in (its own scale, exact int32 sums); the kernel is the one the CPU's ISA calls
//     for;
//   - avx2-u8s7x2 does not saturate: extreme weights and activations against a float reference
//     and the VNNI kernel (the ctest precision_test_avx2 runs this binary with
//     $ONEDNN_MAX_CPU_ISA=AVX2, as on a CPU without AVX-512, where oneDNN multiplies with
//     vpmaddubsw's saturating int16 pair sums);
//   - bfloat16 without AVX512_BF16, int8 below AVX2: float32, bit for bit, and a note saying why.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "model/model_impl.h"
#include "model/rows_kernel.h"
#include "model_util.h"
#include "zsclip/error.h"
#include "zsclip/model.h"
#include "zsclip/preprocess.h"
#include "zsclip/tokenizer.h"
#include "zsclip/zero_shot.h"

namespace zsclip {
namespace {

using namespace ::zsclip::testing;

float largest(const FloatTensor& x) {
  float m = 0.f;
  for (float v : x.data) m = std::max(m, std::abs(v));
  return m;
}

::testing::AssertionResult near_all(const FloatTensor& a, const FloatTensor& b, double tol,
                                    const std::string& what) {
  if (a.shape != b.shape) return ::testing::AssertionFailure() << what << ": shapes differ";
  const double allowed = tol * largest(b);
  double worst = 0;
  for (size_t k = 0; k < a.data.size(); ++k)
    worst = std::max(worst, std::abs(double(a.data[k]) - b.data[k]));
  if (worst > allowed)
    return ::testing::AssertionFailure()
           << what << ": max abs difference " << worst << " > " << allowed;
  return ::testing::AssertionSuccess();
}

std::shared_ptr<Runtime> runtime_with(int threads) {
  RuntimeOptions ro;
  ro.threads = threads;
  return Runtime::create(ro);
}

class Inputs : public ::testing::Test {
 protected:
  void SetUp() override {
    ZSCLIP_REQUIRE_TINY_EXPORTS();
    dir_ = tiny_export("state_dict");
    ref_ = reference();
    Model m = Model::load(dir_);
    Preprocessor pre(m.config().preprocess);
    std::vector<std::string> paths;
    for (const auto& im : ref_["images"])
      paths.push_back(shared_path("images/" + im["file"].get<std::string>()));
    pixels_ = pre.batch_files(paths, nullptr);
    std::vector<std::string> texts;
    for (const auto& x : ref_["texts"]) texts.push_back(x["text"].get<std::string>());
    ids_ = m.tokenizer().tokenize(texts, m.context_length());
  }
  FloatTensor first_image() const {
    FloatTensor one({1, pixels_.size(1), pixels_.size(2), pixels_.size(3)});
    std::copy_n(pixels_.ptr(), one.numel(), one.ptr());
    return one;
  }
  std::string dir_;
  nlohmann::json ref_;
  FloatTensor pixels_;
  IdTensor ids_;
};

TEST_F(Inputs, OneDnnLinearKernelsMatchLibTorchs) {
  ModelOptions aten;
  aten.linear_kernels = "aten";
  Model a = Model::load(dir_, aten);
  EXPECT_EQ(a.linear_kernels(), "aten");
  ModelOptions dn;
  dn.linear_kernels = "onednn";
  Model d = [&] {
    try {
      return Model::load(dir_, dn);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
      throw;
    }
  }();
  EXPECT_EQ(d.linear_kernels(), "onednn");
  EXPECT_TRUE(near_all(d.encode_images(pixels_), a.encode_images(pixels_), 1e-5, "images"));
  EXPECT_TRUE(near_all(d.encode_texts(ids_), a.encode_texts(ids_), 1e-5, "texts"));
  // And both against OpenAI's reference features.
  const FloatTensor f = d.encode_images(pixels_);
  for (int64_t i = 0; i < f.size(0); ++i) {
    std::vector<float> got(f.row(i), f.row(i) + f.size(1));
    EXPECT_TRUE(close_rel(got, ref_["images"][i]["image_features"].get<std::vector<double>>(), 1e-4,
                          ref_["images"][i]["file"].get<std::string>()));
  }
}

TEST_F(Inputs, ASingleImageSpreadOverTheThreadsMatchesOneThread) {
  for (const char* kernels : {"onednn", "aten"}) {
    ModelOptions spread;
    spread.runtime = runtime_with(2);
    spread.linear_kernels = kernels;
    spread.spread_min_mflop = 0;  // the tiny model is below the default threshold
    ModelOptions alone = spread;
    alone.spread_single = false;
    Model s = Model::load(dir_, spread), o = Model::load(dir_, alone);
    const FloatTensor one = first_image();
    EXPECT_TRUE(near_all(s.encode_images(one), o.encode_images(one), 1e-5, kernels));
    IdTensor id1({1, ids_.size(1)});
    std::copy_n(ids_.ptr(), ids_.size(1), id1.ptr());
    EXPECT_TRUE(near_all(s.encode_texts(id1), o.encode_texts(id1), 1e-5, kernels));
    // A batch is split into parts as before; both settings give the batch's answers.
    EXPECT_TRUE(near_all(s.encode_images(pixels_), o.encode_images(pixels_), 1e-5, kernels));
  }
}

TEST_F(Inputs, Bfloat16AgreesWithFloat32) {
  Model f32 = Model::load(dir_);
  ModelOptions bo;
  bo.dtype = "bfloat16";
  Model bf = Model::load(dir_, bo);
  if (bf.dtype() != "bfloat16") {
    EXPECT_EQ(bf.dtype(), "float32");
    EXPECT_NE(bf.precision_note().find("float32"), std::string::npos) << bf.precision_note();
    GTEST_SKIP() << "no bfloat16 here: " << bf.precision_note();
  }
  EXPECT_TRUE(bf.precision_note().empty()) << bf.precision_note();
  const FloatTensor a = f32.encode_images(pixels_), b = bf.encode_images(pixels_);
  EXPECT_GE(min_row_cosine(b, a), 0.999);
  EXPECT_GE(min_row_cosine(bf.encode_texts(ids_), f32.encode_texts(ids_)), 0.999);
  // Not float32 in disguise: bf16 products differ somewhere.
  EXPECT_FALSE(near_all(b, a, 1e-7, "bf16 vs float32"));
  // Single image, spread over two threads, and the batch's rows agree.
  ModelOptions spread = bo;
  spread.runtime = runtime_with(2);
  spread.spread_min_mflop = 0;
  Model bs = Model::load(dir_, spread);
  const FloatTensor one = first_image();
  FloatTensor row0({1, b.size(1)});
  std::copy_n(b.ptr(), b.size(1), row0.ptr());
  EXPECT_TRUE(near_all(bs.encode_images(one), row0, 1e-5, "bf16 single vs batch row"));
}

// Sets an environment variable for its lifetime ("" leaves it alone).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (*name_) ::setenv(name_, value, 1);
  }
  ~ScopedEnv() {
    if (*name_) ::unsetenv(name_);
  }

 private:
  const char* name_;
};

// The int8 kernel the CPU's ISA (as zsclip sees it, lowered by the variables) calls for.
std::string expected_int8_kernel(const std::string& isa) {
  if (!detail::onednn_linear_built() || isa == "baseline") return "none";
  return isa == "avx512_core_vnni" || isa == "avx512_core_bf16" ? "vnni-s8s8" : "avx2-u8s7x2";
}

// Each kernel this CPU can run: as it is, and held below VNNI ($ZSCLIP_CPU_NO_VNNI: the AVX2
// scheme, which oneDNN then runs with the CPU's best instructions; the ctest
// precision_test_avx2 runs it on oneDNN's AVX2 kernels).
class Int8Kernels : public Inputs, public ::testing::WithParamInterface<const char*> {};

TEST_P(Int8Kernels, AgreeWithFloat32AndDoNotDependOnTheBatch) {
  Model f32 = Model::load(dir_);
  ScopedEnv env(GetParam(), "1");
  ModelOptions qo;
  qo.dtype = "int8";
  Model q = Model::load(dir_, qo);
  EXPECT_EQ(q.int8_kernel(), q.dtype() == "int8" ? expected_int8_kernel(q.cpu_isa()) : "none")
      << q.cpu_isa();
  if (q.dtype() != "int8") {
    EXPECT_EQ(q.dtype(), "float32");
    GTEST_SKIP() << "no int8 here: " << q.precision_note();
  }
  EXPECT_TRUE(q.precision_note().empty()) << q.precision_note();
  if (*GetParam()) EXPECT_EQ(q.int8_kernel(), "avx2-u8s7x2");
  const FloatTensor a = f32.encode_images(pixels_), b = q.encode_images(pixels_);
  if (*GetParam()) {  // the same int32 sums as the CPU's own kernel: the same answers
    ::unsetenv(GetParam());
    EXPECT_TRUE(near_all(b, Model::load(dir_, qo).encode_images(pixels_), 0.0, "kernels"));
    ::setenv(GetParam(), "1", 1);
  }
  EXPECT_GE(min_row_cosine(b, a), 0.999) << q.int8_kernel();
  EXPECT_FALSE(near_all(b, a, 1e-7, "int8 vs float32"));
  // The text tower stays float32 unless int8_text.
  const FloatTensor t32 = f32.encode_texts(ids_);
  EXPECT_TRUE(near_all(q.encode_texts(ids_), t32, 0.0, "int8 model's float32 text tower"));
  ModelOptions qt = qo;
  qt.int8_text = true;
  const FloatTensor t8 = Model::load(dir_, qt).encode_texts(ids_);
  EXPECT_GE(min_row_cosine(t8, t32), 0.999) << q.int8_kernel();
  EXPECT_FALSE(near_all(t8, t32, 1e-7, "int8 text vs float32"));
  ModelOptions spread = qo;
  spread.runtime = runtime_with(2);
  spread.spread_min_mflop = 0;
  Model qs = Model::load(dir_, spread);
  FloatTensor row0({1, b.size(1)});
  std::copy_n(b.ptr(), b.size(1), row0.ptr());
  EXPECT_TRUE(near_all(qs.encode_images(first_image()), row0, 1e-6, "int8 single vs batch row"));
}
INSTANTIATE_TEST_SUITE_P(Cpu, Int8Kernels, ::testing::Values("", "ZSCLIP_CPU_NO_VNNI"));

// Extreme weights (every entry +-max of its row, so each quantises to +-127) and activations (each
// row's values at +-its largest, so each quantises to +-127: 255 or 1 after the +128), in sign
// patterns that make neighbouring products add up: vpmaddubsw's int16 pair sums would clip
// 2 x 255 x 127 to 32767, a third of some sums gone; with the weights in 7-bit halves
// (2 x 255 x 64 = 32640) every sum is exact, and the only error left is the quantisation's, under
// 1 % here. Both kernels make the same int32 sums: the same outputs, bit for bit.
TEST(Int8Saturation, ExtremeWeightsAndActivationsMatchAFloatReference) {
  if (!detail::onednn_linear_built()) GTEST_SKIP() << "built without oneDNN";
  const detail::CpuFeatures cpu = detail::cpu_features();
  std::vector<detail::Int8Kernel> kernels;
  if (cpu.avx512_vnni) kernels.push_back(detail::Int8Kernel::kVnniS8S8);
  if (cpu.avx2) kernels.push_back(detail::Int8Kernel::kAvx2Split);
  if (kernels.empty()) GTEST_SKIP() << "no int8 kernel below AVX2 (" << cpu.isa << ")";
  const int64_t K = 768, N = 96, M = 7;
  torch::Tensor w = torch::empty({N, K});
  torch::Tensor x = torch::empty({M, K});
  auto wa = w.accessor<float, 2>();
  auto xa = x.accessor<float, 2>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      // Row patterns: all +, all -, pairs alike (++--), alternating, and a per-row mix.
      const int64_t pattern = n % 5;
      const bool plus = pattern == 0   ? true
                        : pattern == 1 ? false
                        : pattern == 2 ? (k / 2) % 2 == 0
                        : pattern == 3 ? k % 2 == 0
                                       : ((k * 7 + n) / 3) % 2 == 0;
      wa[n][k] = (plus ? 1.f : -1.f) * (0.5f + 0.01f * float(n));
    }
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) {
      // Rows: all at the top (0 in range: quantised 255, zero point 0), top and bottom by pairs,
      // strictly positive, strictly negative, mixed magnitudes.
      float v = 0.f;
      switch (m) {
        case 0:
          v = 3.f;
          break;
        case 1:
          v = (k / 2) % 2 == 0 ? 4.f : -4.f;
          break;
        case 2:
          v = k % 2 == 0 ? 2.f : -1.f;
          break;
        case 3:
          v = (k == 0) ? 0.f : 5.f;
          break;
        case 4:
          v = -2.5f;
          break;
        case 5:
          v = ((k * 5) / 2) % 3 == 0 ? -6.f : 6.f;
          break;
        default:
          v = k % 4 < 2 ? 1.5f : -0.25f;
          break;
      }
      xa[m][k] = v;
    }
  const torch::Tensor b = torch::linspace(-1.f, 1.f, N);
  const torch::Tensor want =
      torch::addmm(b.to(torch::kDouble), x.to(torch::kDouble), w.to(torch::kDouble).t())
          .to(torch::kFloat);
  torch::Tensor first;
  for (detail::Int8Kernel k : kernels) {
    const torch::Tensor got = detail::run_packed_linear(x, w, b, detail::LinearPrecision::kInt8, k);
    if (!first.defined()) first = got;
    EXPECT_TRUE(torch::equal(got, first)) << detail::int8_kernel_name(k);
    // Each output against its own size: sum_k |x| |w| (exact sums are within 1 % of it).
    const torch::Tensor mass =
        torch::mm(x.abs().to(torch::kDouble), w.abs().to(torch::kDouble).t()).to(torch::kFloat);
    const torch::Tensor rel = ((got - want).abs() / mass);
    EXPECT_LT(rel.max().item<float>(), 0.01f) << detail::int8_kernel_name(k) << " on " << cpu.isa
                                              << ": worst output " << rel.argmax().item<int64_t>();
  }
}

// cpu_features() refuses a bad value of one of its variables, naming it.
void expect_refused_by_name(const char* variable, const char* value) {
  ScopedEnv env(variable, value);
  try {
    detail::cpu_features();
    FAIL() << variable << "=" << value << " accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(std::string(variable) + " \"" + value + "\""),
              std::string::npos)
        << e.what();
  }
}

TEST(Int8Saturation, ABadIsaLimitIsRefusedByName) {
  expect_refused_by_name("ZSCLIP_MAX_CPU_ISA", "avx9");
}

TEST(LinearPrimitive, ABadNameIsRefusedByName) {
  expect_refused_by_name("ZSCLIP_LINEAR_PRIMITIVE", "gemm");
}

// The primitive follows the ISA zsclip runs at: matmul from AVX-512 up (oneDNN's brgemm matmul),
// the 1x1 convolution below (oneDNN 2.6's matmul there is an sgemm that repacks the weights on
// every call).
TEST(LinearPrimitive, FollowsTheIsa) {
  EXPECT_EQ(detail::linear_primitive_name(detail::cpu_features().linear_primitive),
            detail::cpu_features().isa.rfind("avx512", 0) == 0 ? std::string("matmul")
                                                               : std::string("conv1x1"));
  ScopedEnv env("ZSCLIP_MAX_CPU_ISA", "avx2");
  EXPECT_EQ(detail::cpu_features().linear_primitive, detail::LinearPrimitive::kConv1x1);
}

TEST(RowsKernel, ABadRowCountIsRefusedByName) {
  expect_refused_by_name("ZSCLIP_ROWS_KERNEL_MAX", "-3");
  expect_refused_by_name("ZSCLIP_ROWS_KERNEL_MAX", "16 rows");
  ScopedEnv env("ZSCLIP_ROWS_KERNEL_MAX", "0");
  EXPECT_EQ(detail::cpu_features().rows_kernel_rows, 0);
}

// The AVX2 few-rows kernel on weights packed as oneDNN's OIhw8i8o (packed here by hand), against
// a double-precision reference, at every row count up to 13 (two row groups with every
// remainder) and sizes that are not multiples of 8 (partial blocks, short K), with and without
// bias, on one thread and two.
TEST(RowsKernel, MatchesADoubleReferenceAtEveryRowCountAndSize) {
  if (!detail::rows_kernel_available()) GTEST_SKIP() << "no AVX2 and FMA on this CPU";
  torch::manual_seed(3);
  for (const auto& [K, N] :
       std::vector<std::pair<int64_t, int64_t>>{{8, 8}, {13, 5}, {64, 40}, {100, 27}, {512, 72}}) {
    const torch::Tensor w = torch::randn({N, K}), bias = torch::randn({N});
    const int64_t KB = (K + 7) / 8, NB = (N + 7) / 8;
    std::vector<float> packed(static_cast<size_t>(NB * KB * 64), 0.f);
    const auto wa = w.accessor<float, 2>();
    for (int64_t o = 0; o < N; ++o)
      for (int64_t i = 0; i < K; ++i)
        packed[size_t(((o / 8) * KB + i / 8) * 64 + (i % 8) * 8 + o % 8)] = wa[o][i];
    for (int64_t M = 1; M <= 13; ++M)
      for (int threads : {1, 2})
        for (bool with_bias : {true, false}) {
          const torch::Tensor x = torch::randn({M, K});
          torch::Tensor want = torch::matmul(x.to(torch::kDouble), w.to(torch::kDouble).t());
          if (with_bias) want = want + bias.to(torch::kDouble);
          torch::Tensor got = torch::full({M, N}, std::nanf(""));
          {
            detail::ScopedIntraOpThreads team(threads);
            detail::rows_linear_avx2(x.data_ptr<float>(), M, K, packed.data(), N,
                                     with_bias ? bias.data_ptr<float>() : nullptr,
                                     got.data_ptr<float>());
          }
          const double err = (got.to(torch::kDouble) - want).abs().max().item<double>();
          const double scale = want.abs().max().item<double>();
          EXPECT_LE(err, 1e-5 * scale) << "M " << M << " K " << K << " N " << N << " threads "
                                       << threads << (with_bias ? " bias" : "");
        }
  }
}

// Through the layer as the models run it: oneDNN's packed weights, on the CPU's primitive, every
// row count from 1 to 20 (the AVX2 rows kernel takes those up to its limit where the layer runs
// on AVX2's 1x1 convolution, as in the ctest precision_test_avx2), against LibTorch's linear.
TEST(RowsKernel, PackedLayersMatchLibTorchAtEveryRowCount) {
  if (!detail::onednn_linear_built()) GTEST_SKIP() << "built without oneDNN";
  torch::manual_seed(4);
  const torch::Tensor w = torch::randn({200, 96}), b = torch::randn({200});
  for (int64_t M = 1; M <= 20; ++M) {
    const torch::Tensor x = torch::randn({M, 96});
    const torch::Tensor want = at::linear(x, w, b);
    const torch::Tensor got = detail::run_packed_linear(x, w, b, detail::LinearPrecision::kFloat32,
                                                        detail::Int8Kernel::kNone);
    EXPECT_LE((got - want).abs().max().item<float>(), 1e-5f * want.abs().max().item<float>())
        << "M " << M << " (" << detail::cpu_features().isa << ")";
  }
}

// Each primitive computes the same layers: float32 within 1e-5 of LibTorch's kernels, a single
// image spread over two threads too, a batch of rows of every length the texts give.
TEST_F(Inputs, EveryLinearPrimitiveMatchesLibTorchs) {
  if (!detail::onednn_linear_built()) GTEST_SKIP() << "built without oneDNN";
  ModelOptions aten;
  aten.linear_kernels = "aten";
  Model a = Model::load(dir_, aten);
  const FloatTensor images = a.encode_images(pixels_), texts = a.encode_texts(ids_);
  const FloatTensor one = first_image();
  const FloatTensor one_image = a.encode_images(one);
  for (const char* name : {"matmul", "inner_product", "conv1x1"}) {
    ScopedEnv env("ZSCLIP_LINEAR_PRIMITIVE", name);
    ModelOptions o;
    o.runtime = runtime_with(2);
    o.linear_kernels = "onednn";
    o.spread_min_mflop = 0;
    Model d = Model::load(dir_, o);
    // "conv1x1 (N layers on matmul)" where oneDNN would run a layer on its reference loops.
    EXPECT_EQ(d.linear_primitive().rfind(name, 0), 0u) << d.linear_primitive();
    EXPECT_TRUE(near_all(d.encode_images(pixels_), images, 1e-5, std::string(name) + " images"));
    EXPECT_TRUE(near_all(d.encode_texts(ids_), texts, 1e-5, std::string(name) + " texts"));
    EXPECT_TRUE(near_all(d.encode_images(one), one_image, 1e-5, std::string(name) + " one image"));
  }
}

class ShapesTopClass : public ::testing::TestWithParam<std::string> {};

TEST_P(ShapesTopClass, SameAsFloat32OnTheTrainedShapesModel) {
  const std::string dir = std::string(ZSCLIP_SOURCE_DIR) + "/models/shapes";
  Model f32 = Model::load(dir);
  ModelOptions bo;
  bo.dtype = GetParam();
  Model bf = Model::load(dir, bo);
  if (bf.dtype() != GetParam())
    GTEST_SKIP() << "no " << GetParam() << " here: " << bf.precision_note();
  std::vector<std::string> classes;
  for (const char* colour :
       {"red", "green", "blue", "yellow", "orange", "purple", "white", "black"})
    for (const char* shape : {"circle", "square", "triangle", "star", "hexagon", "cross"})
      classes.push_back(std::string(colour) + " " + shape);
  const std::vector<std::string> templates = {"a photo of a {}."};
  ZeroShotHead h32 = ZeroShotHead::build(f32, classes, templates);
  ZeroShotHead hbf = ZeroShotHead::build(bf, classes, templates);
  Preprocessor pre(f32.config().preprocess);
  std::vector<std::string> paths;
  for (const auto& e :
       std::filesystem::directory_iterator(std::string(ZSCLIP_SOURCE_DIR) + "/examples/images"))
    paths.push_back(e.path().string());
  ASSERT_GE(paths.size(), 6u);
  FloatTensor pixels = pre.batch_files(paths, nullptr);
  const FloatTensor f_32 = f32.encode_images(pixels), f_bf = bf.encode_images(pixels);
  std::vector<float> a(classes.size()), b(classes.size());
  for (int64_t i = 0; i < f_32.size(0); ++i) {
    h32.probs(f_32.row(i), a.data());
    hbf.probs(f_bf.row(i), b.data());
    EXPECT_EQ(std::max_element(a.begin(), a.end()) - a.begin(),
              std::max_element(b.begin(), b.end()) - b.begin())
        << paths[size_t(i)];
    for (size_t k = 0; k < a.size(); ++k) EXPECT_NEAR(a[k], b[k], 0.02) << paths[size_t(i)];
  }
}
INSTANTIATE_TEST_SUITE_P(Precisions, ShapesTopClass, ::testing::Values("bfloat16", "int8"));

TEST_F(Inputs, WithoutTheInstructionsItIsFloat32BitForBit) {
  // dtype, the variable that hides the instructions, and what the note must name.
  const std::vector<std::array<const char*, 3>> cases = {
      {"bfloat16", "ZSCLIP_CPU_NO_BF16", "AVX512_BF16"}, {"int8", "ZSCLIP_MAX_CPU_ISA", "AVX2"}};
  for (const auto& [dtype, variable, named] : cases) {
    // float32 as this CPU (as the variable makes it) runs it: below AVX2 zsclip's own AVX2 kernel
    // for few rows is off too.
    ::setenv(variable, std::string(variable) == "ZSCLIP_MAX_CPU_ISA" ? "baseline" : "1", 1);
    ModelOptions o;
    o.dtype = dtype;
    Model m = Model::load(dir_, o);
    const FloatTensor want = Model::load(dir_).encode_images(pixels_);
    ::unsetenv(variable);
    EXPECT_EQ(m.dtype(), "float32") << dtype;
    // Without oneDNN the note names that instead.
    EXPECT_NE(m.precision_note().find(detail::onednn_linear_built() ? named : "oneDNN"),
              std::string::npos)
        << m.precision_note();
    EXPECT_TRUE(near_all(m.encode_images(pixels_), want, 0.0, dtype));
  }
}

TEST_F(Inputs, ManyRowCountsOutgrowThePrimitiveCachesSafely) {
  // Each batch size is a new row count for every layer (one primitive each, 64 kept per layer):
  // 70 sizes make the caches start over; every answer still matches the one-row answer.
  ModelOptions o;
  o.streams = 1;
  Model m = Model::load(dir_, o);
  IdTensor one({1, ids_.size(1)});
  std::copy_n(ids_.ptr(), ids_.size(1), one.ptr());
  const FloatTensor want = m.encode_texts(one);
  for (int64_t n = 1; n <= 70; ++n) {
    IdTensor many({n, ids_.size(1)});
    for (int64_t r = 0; r < n; ++r)
      std::copy_n(one.ptr(), one.size(1), many.ptr() + r * one.size(1));
    const FloatTensor got = m.encode_texts(many);
    FloatTensor last({1, got.size(1)});
    std::copy_n(got.row(n - 1), got.size(1), last.ptr());
    ASSERT_TRUE(near_all(last, want, 1e-5, "batch " + std::to_string(n)));
  }
}

TEST_F(Inputs, BadPrecisionOptionsAreRefusedByName) {
  auto code_of = [&](const std::string& dir, ModelOptions o) {
    try {
      Model::load(dir, o);
    } catch (const Error& e) {
      return std::make_pair(e.code(), std::string(e.what()));
    }
    return std::make_pair(ErrorCode::kInternal, std::string("loaded"));
  };
  ModelOptions o;
  o.linear_kernels = "blas";
  auto r = code_of(dir_, o);
  EXPECT_EQ(r.first, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.second.find("\"blas\""), std::string::npos) << r.second;
  o = {};
  o.dtype = "bfloat16";
  o.optimize = false;
  r = code_of(dir_, o);
  EXPECT_EQ(r.first, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.second.find("bfloat16"), std::string::npos) << r.second;
  o = {};
  o.dtype = "bfloat16";
  o.linear_kernels = "aten";
  EXPECT_EQ(code_of(dir_, o).first, ErrorCode::kInvalidArgument);
  o = {};
  o.dtype = "int8";
  o.optimize = false;
  EXPECT_EQ(code_of(dir_, o).first, ErrorCode::kInvalidArgument);
  o = {};
  o.dtype = "int8";
  r = code_of(tiny_export("int8"), o);
  EXPECT_EQ(r.first, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.second.find("int8"), std::string::npos) << r.second;
  // An old export-time int8 model still loads, saying how to re-export for the int8 kernels.
  Model legacy = Model::load(tiny_export("int8"));
  EXPECT_EQ(legacy.int8_kernel(), "libtorch-dynamic");
  EXPECT_NE(legacy.precision_note().find("--precision int8"), std::string::npos)
      << legacy.precision_note();
  o = {};
  o.dtype = "bfloat16";
  o.device = "cuda";
  EXPECT_NE(code_of(dir_, o).second, "loaded");
}

}  // namespace
}  // namespace zsclip
