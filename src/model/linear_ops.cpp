// zsclip's own linear layers for frozen CPU graphs: oneDNN's matmul on weights reordered once, at
// load, into the blocked layout its kernels read (LibTorch's path repacks them on every call).
//
// Why: Debian's LibTorch sends float32 linear layers to OpenBLAS, whose threads are a process-wide
// pool of their own. A single image (50 tokens in ViT-B/32) then runs either on one core or with
// OpenBLAS's threads spinning against LibTorch's OpenMP team. oneDNN threads with the calling
// thread's OpenMP team, as LibTorch's element-wise kernels do, and that team is sized per thread
// (ScopedIntraOpThreads): a batch-1 call spreads over every core, the parts of a split batch stay
// single-threaded. bfloat16: bf16 x bf16 -> float32 (AVX512_BF16): weights rounded to bf16 at
// load, activations per call; sums and outputs float32. int8: weights per output channel at load,
// each row (token) of the activations per call (symmetric, s8), int32 sums rescaled to float32
// here, by one of two kernels picked by the CPU (cpu_features(), the one place that decides):
//   vnni-s8s8 (AVX512_VNNI): s8 x s8 -> s32, oneDNN's brgemm;
//   avx2-u8s7x2 (AVX2, and AVX-512 without VNNI): the same sums, exactly, without saturating.
//     There oneDNN multiplies with vpmaddubsw, which adds two u8 x s8 products into a saturating
//     int16: 2 x 255 x 127 overflows it (oneDNN 2.6 treats s8 activations as u8 + 128 and clips;
//     measured), 2 x 255 x 64 = 32640 cannot. So each 8-bit weight q is split in two 7-bit halves,
//     a = clamp(q, -64, 64) and b = q - a (|b| <= 63), the weights are [a | b] (2K columns), the
//     activations are u = q_x + 128 written twice [u | u], and sum u a + sum u b - 128 sum_k q =
//     sum q_x q: the VNNI kernel's int32 sums, bit for bit, at twice the products (u8 inputs run
//     3x faster than s8 on oneDNN's AVX2 kernels, so still ahead of float32).
// The primitive (float32 and bf16; cpu_features() picks it by ISA): from AVX-512 up, oneDNN's
// matmul (its brgemm kernels, fastest there); below, the 1x1 convolution over an M x 1 image (the
// same row-major buffers), because oneDNN 2.6's AVX2 matmul is its gemm:jit sgemm, which repacks
// the weights on every call (50 x 768 x 3072, one thread: 53 GFLOP/s against 99 for the
// convolution's jit_1x1:avx2 kernel on weights blocked at load). A layer whose weights' layout the
// convolution would run on oneDNN's reference loops at some row count stays on matmul.
// Everything outside the linear layers (LayerNorm, softmax, attention's batched products,
// residuals) stays float32. Measurements: benchmarks/README.md.
#include <ATen/Parallel.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/custom_class.h>
#include <torch/library.h>

#include <omp.h>

#ifdef ZSCLIP_WITH_ONEDNN
#include <dnnl.hpp>
#endif

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "model/model_impl.h"
#include "model/rows_kernel.h"

namespace zsclip::detail {

#ifdef ZSCLIP_WITH_ONEDNN
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// Primitives kept per layer (one per row count and team size): row counts come from the inputs
// (texts' lengths, batch sizes), so a long-running process could otherwise collect thousands. A
// full cache starts over; oneDNN's own primitive cache makes re-creating a recent one cheap.
constexpr size_t kMaxPrimitives = 64;

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& thread_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

// One linear layer's weights, reordered once (at load) into the blocked layout oneDNN's matmul
// kernels read, and the matmul primitives made for each row count M seen (a few: the batch parts'
// token counts). y = x . w^T + b, computed in float32, bf16 (x rounded per call) or int8 (x's rows
// quantised per call; int32 sums rescaled here).
struct PackedLinear : torch::CustomClassHolder {
  LinearPrecision precision = LinearPrecision::kFloat32;
  LinearPrimitive kind = LinearPrimitive::kMatmul;  // which oneDNN primitive runs it
  Int8Kernel kernel = Int8Kernel::kNone;  // int8: which scheme (the weights were packed for it)
  int64_t n = 0, k = 0;
  int64_t kk = 0;  // the matmul's K: k, or 2k for avx2-u8s7x2 (each weight in two halves)
  dnnl::memory::desc weights_md;
  dnnl::memory weights;
  at::Tensor bias;     // float32 [N] or undefined
  at::Tensor w_scale;  // int8: float32 [N], max |w_row| / 127
  at::Tensor w_sum;    // avx2-u8s7x2: int32 [N], sum_k q[n, k] (the +128's share)
  bool fused_bias = false;
  // float32 on AVX2's 1x1 convolution weights (OIhw8i8o): calls of at most this many rows run
  // zsclip's own kernel (rows_kernel.h) on the same packed weights. 0: none.
  int64_t rows_kernel_rows = 0;
  // An activation the pass folded in (SiLU, exact or tanh GELU): a post-op of the matmul, or for
  // int8 one oneDNN pass over the rescaled output. undef: none.
  dnnl::algorithm activation = dnnl::algorithm::undef;
  std::mutex mu;
  std::map<std::pair<int64_t, int>, std::shared_ptr<dnnl::eltwise_forward>> activations;
  struct Prim {
    dnnl::primitive primitive;
    dnnl::memory::desc scratchpad;  // this call's working memory (per call: calls run concurrently)
  };
  // By (rows, threads): oneDNN plans a primitive's work split for the OpenMP team size at creation.
  std::map<std::pair<int64_t, int>, std::shared_ptr<Prim>> by_rows;

  dt src_type() const {
    if (precision == LinearPrecision::kInt8)
      return kernel == Int8Kernel::kAvx2Split ? dt::u8 : dt::s8;
    return precision == LinearPrecision::kBFloat16 ? dt::bf16 : dt::f32;
  }
  dt dst_type() const { return precision == LinearPrecision::kInt8 ? dt::s32 : dt::f32; }

  // The same row-major buffers, [M, K] in and [M, N] out, described as each primitive reads them:
  // matmul x[M, K] . W[K, N]; inner product x[M, K] . W[N, K]^T; 1x1 convolution over an M x 1
  // image with K channels (nhwc: the channels of a pixel are contiguous, so again x[M, K]).
  dnnl::memory::desc src_md(int64_t m) const {
    if (kind == LinearPrimitive::kConv1x1) return {{1, kk, m, 1}, src_type(), tag::nhwc};
    return {{m, kk}, src_type(), tag::ab};
  }
  dnnl::memory::desc dst_md(int64_t m) const {
    if (kind == LinearPrimitive::kConv1x1) return {{1, n, m, 1}, dst_type(), tag::nhwc};
    return {{m, n}, dst_type(), tag::ab};
  }
  dnnl::memory::desc bias_md() const {
    if (kind == LinearPrimitive::kMatmul) return {{1, n}, dt::f32, tag::ab};
    return {{n}, dt::f32, tag::a};
  }
  // The weights [N, K] row-major (w_in's layout) as the primitive's weights tensor; tag::any lets
  // oneDNN pick its blocked layout.
  dnnl::memory::desc weights_md_as(dt type, bool any) const {
    switch (kind) {
      case LinearPrimitive::kMatmul:
        return {{kk, n}, type, any ? tag::any : tag::ba};
      case LinearPrimitive::kInnerProduct:
        return {{n, kk}, type, any ? tag::any : tag::ab};
      case LinearPrimitive::kConv1x1:
        break;
    }
    return {{n, kk, 1, 1}, type, any ? tag::any : tag::oihw};
  }

  dnnl::primitive_desc describe(int64_t m, const dnnl::memory::desc& w_md) const {
    // The caller passes the scratchpad: oneDNN's own is shared, and streams call one layer at once.
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (activation != dnnl::algorithm::undef && precision != LinearPrecision::kInt8) {
      dnnl::post_ops po;
      po.append_eltwise(1.f, activation, 1.f, 0.f);
      attr.set_post_ops(po);
    }
    const dnnl::memory::desc src = src_md(m), dst = dst_md(m);
    const dnnl::memory::desc bias = fused_bias ? bias_md() : dnnl::memory::desc();
    const auto inference = dnnl::prop_kind::forward_inference;
    switch (kind) {
      case LinearPrimitive::kMatmul:
        return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, w_md, bias, dst), attr,
                                            cpu_engine());
      case LinearPrimitive::kInnerProduct:
        return dnnl::inner_product_forward::primitive_desc(
            dnnl::inner_product_forward::desc(inference, src, w_md, bias, dst), attr, cpu_engine());
      case LinearPrimitive::kConv1x1:
        break;
    }
    return dnnl::convolution_forward::primitive_desc(
        dnnl::convolution_forward::desc(inference, dnnl::algorithm::convolution_direct, src, w_md,
                                        bias, dst, {1, 1}, {0, 0}, {0, 0}),
        attr, cpu_engine());
  }

  // w: [N, K] in the weights' type (float32, bf16 or int8 in [-127, 127]), contiguous.
  PackedLinear(LinearPrecision p, LinearPrimitive prim, Int8Kernel kern, const at::Tensor& w_in,
               const c10::optional<at::Tensor>& b, at::Tensor scale)
      : precision(p),
        kind(prim),
        kernel(kern),
        n(w_in.size(0)),
        k(w_in.size(1)),
        w_scale(std::move(scale)) {
    if (b) bias = b->to(at::kFloat).contiguous().clone();
    at::Tensor w = w_in;
    kk = k;
    if (kernel == Int8Kernel::kAvx2Split) {
      w_sum = w_in.sum(1, false, at::kInt).contiguous();
      const at::Tensor a = w_in.clamp(-64, 64);
      w = at::cat({a, w_in - a}, 1).contiguous();
      kk = 2 * k;
    }
    fused_bias = bias.defined() && precision != LinearPrecision::kInt8;
    const dt wt = precision == LinearPrecision::kInt8 ? dt::s8 : src_type();
    weights_md = describe(64, weights_md_as(wt, true)).weights_desc();
    if (kind != LinearPrimitive::kMatmul && !fast_for_every_row_count()) {
      kind = LinearPrimitive::kMatmul;
      weights_md = describe(64, weights_md_as(wt, true)).weights_desc();
    }
    if (precision == LinearPrecision::kFloat32 && kind == LinearPrimitive::kConv1x1 &&
        weights_md == dnnl::memory::desc({n, kk, 1, 1}, dt::f32, tag::OIhw8i8o))
      rows_kernel_rows = cpu_features().rows_kernel_rows;
    weights = dnnl::memory(weights_md, cpu_engine());
    dnnl::memory plain(weights_md_as(wt, false), cpu_engine(), w.data_ptr());
    dnnl::reorder(plain, weights).execute(thread_stream(), plain, weights);
    thread_stream().wait();
  }

  // Whether oneDNN runs this layer's packed weights on an optimised kernel at typical row counts
  // (one token to several batch parts of long images). The weights' layout is chosen once, for 64
  // rows; a primitive whose fast kernel wants another layout for some row count falls back to
  // oneDNN's reference loops (seen: the AVX-512 1x1 convolution at 50 rows, 500x slower). Matmul
  // keeps one layout for every row count.
  bool fast_for_every_row_count() const {
    for (int64_t m : {1, 7, 9, 50, 64, 77, 196, 257, 400, 1568}) {
      const std::string impl = describe(m, weights_md).impl_info_str();
      if (impl.rfind("ref", 0) == 0) return false;
    }
    return true;
  }

  // The activation over the float32 output [m, n], in place (int8 and the rows kernel: the
  // matmul and convolution apply it as a post-op).
  void apply_activation(float* out, int64_t m) {
    if (activation == dnnl::algorithm::undef) return;
    dnnl::memory o({{m, n}, dt::f32, tag::ab}, cpu_engine(), out);
    activation_primitive(m)->execute(thread_stream(), {{DNNL_ARG_SRC, o}, {DNNL_ARG_DST, o}});
    thread_stream().wait();
  }

  std::shared_ptr<dnnl::eltwise_forward> activation_primitive(int64_t m) {
    const std::pair<int64_t, int> key(m, omp_get_max_threads());
    std::lock_guard<std::mutex> lock(mu);
    auto it = activations.find(key);
    if (it != activations.end()) return it->second;
    const dnnl::eltwise_forward::primitive_desc pd(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, activation,
                                    dnnl::memory::desc({m, n}, dt::f32, tag::ab), 1.f, 0.f),
        cpu_engine());
    auto prim = std::make_shared<dnnl::eltwise_forward>(pd);
    if (activations.size() >= kMaxPrimitives) activations.clear();
    activations.emplace(key, prim);
    return prim;
  }

  std::shared_ptr<Prim> primitive(int64_t m) {
    const std::pair<int64_t, int> key(m, omp_get_max_threads());
    std::lock_guard<std::mutex> lock(mu);
    auto it = by_rows.find(key);
    if (it != by_rows.end()) return it->second;
    const dnnl::primitive_desc pd = describe(m, weights_md);
    auto prim = std::make_shared<Prim>(Prim{dnnl::primitive(pd), pd.scratchpad_desc()});
    if (by_rows.size() >= kMaxPrimitives) by_rows.clear();
    by_rows.emplace(key, prim);
    return prim;
  }
};

// Row r of x [rows, K] -> q (int8, symmetric: round(x / s), s = max |x_r| / 127) and s. Returns
// false for a NaN or infinite value. With u8_twice (avx2-u8s7x2), q is uint8 rows of 2K: q + 128,
// twice. Plain loops the compiler vectorises, built for AVX-512, AVX2 and baseline x86-64 and
// picked at load (target_clones). Rounding: half away from zero.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ZSCLIP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ZSCLIP_CLONES
#endif
ZSCLIP_CLONES bool quantize_rows(const float* x, int64_t r0, int64_t r1, int64_t K, void* q,
                                 float* scales, bool u8_twice) {
  bool finite = true;
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = x + r * K;
    float amax = 0.f;
#pragma omp simd reduction(max : amax)
    for (int64_t i = 0; i < K; ++i) amax = std::max(amax, std::abs(row[i]));
    if (!(amax <= std::numeric_limits<float>::max())) finite = false;  // NaN or infinity
    const float scale = amax > 0.f && finite ? amax / 127.f : 1.f;
    const float inv = 127.f / (amax > 0.f && finite ? amax : 127.f);
    if (u8_twice) {
      uint8_t* out = static_cast<uint8_t*>(q) + r * 2 * K;
#pragma omp simd
      for (int64_t i = 0; i < K; ++i) {
        const float v = row[i] * inv;
        const auto u =
            static_cast<uint8_t>(static_cast<int32_t>(v + (v >= 0.f ? 0.5f : -0.5f)) + 128);
        out[i] = u;
        out[K + i] = u;
      }
    } else {
      int8_t* out = static_cast<int8_t*>(q) + r * K;
#pragma omp simd
      for (int64_t i = 0; i < K; ++i) {
        const float v = row[i] * inv;
        out[i] = static_cast<int8_t>(static_cast<int32_t>(v + (v >= 0.f ? 0.5f : -0.5f)));
      }
    }
    scales[r] = scale;
  }
  return finite;
}

// out[r, c] = acc[r, c] * (row_scale[r] * col_scale[c]) + bias[c] for rows [r0, r1); with w_sum
// (avx2-u8s7x2), acc[r, c] - 128 * w_sum[c] in place of acc[r, c].
ZSCLIP_CLONES void dequantize_rows(const int32_t* acc, int64_t r0, int64_t r1, int64_t N,
                                   const float* row_scale, const float* col_scale,
                                   const float* bias, const int32_t* w_sum, float* out) {
  for (int64_t r = r0; r < r1; ++r) {
    const float rs = row_scale[r];
    const int32_t* a = acc + r * N;
    float* o = out + r * N;
    if (w_sum) {
      if (bias) {
#pragma omp simd
        for (int64_t c = 0; c < N; ++c)
          o[c] = static_cast<float>(a[c] - 128 * w_sum[c]) * (rs * col_scale[c]) + bias[c];
      } else {
#pragma omp simd
        for (int64_t c = 0; c < N; ++c)
          o[c] = static_cast<float>(a[c] - 128 * w_sum[c]) * (rs * col_scale[c]);
      }
    } else if (bias) {
#pragma omp simd
      for (int64_t c = 0; c < N; ++c)
        o[c] = static_cast<float>(a[c]) * (rs * col_scale[c]) + bias[c];
    } else {
#pragma omp simd
      for (int64_t c = 0; c < N; ++c) o[c] = static_cast<float>(a[c]) * (rs * col_scale[c]);
    }
  }
}

void lazy_team() {
  // A thread's OpenMP team size comes from LibTorch's per-thread setup (intra_op_threads, 1 by
  // default) unless ScopedIntraOpThreads widened it; run that setup before oneDNN reads it.
  at::internal::lazy_init_num_threads();
}

// x [..., K] float32 -> [..., N] float32.
at::Tensor packed_linear(const at::Tensor& x_in, const c10::intrusive_ptr<PackedLinear>& w) {
  TORCH_CHECK(x_in.scalar_type() == at::kFloat,
              "zsclip::packed_linear: input must be float32, got ", x_in.scalar_type());
  const int64_t K = w->k, N = w->n;
  TORCH_CHECK(x_in.dim() >= 1 && x_in.size(-1) == K, "zsclip::packed_linear: input ", x_in.sizes(),
              " does not match the layer's ", K, " inputs");
  lazy_team();
  std::vector<int64_t> out_shape = x_in.sizes().vec();
  out_shape.back() = N;
  at::Tensor x = x_in.reshape({-1, K}).contiguous();
  const int64_t M = x.size(0);
  at::Tensor out = at::empty({M, N}, x_in.options());
  if (M == 0) return out.view(out_shape);
  at::Tensor xs;  // int8: per-row scales
  if (w->precision == LinearPrecision::kBFloat16) {
    x = x.to(at::kBFloat16);
  } else if (w->precision == LinearPrecision::kInt8) {
    const bool twice = w->kernel == Int8Kernel::kAvx2Split;
    at::Tensor xq = at::empty({M, w->kk}, x.options().dtype(twice ? at::kByte : at::kChar));
    xs = at::empty({M}, x.options());
    const float* xp = x.data_ptr<float>();
    void* qp = xq.data_ptr();
    float* sp = xs.data_ptr<float>();
    std::atomic<bool> finite{true};
    at::parallel_for(0, M, 16, [&](int64_t r0, int64_t r1) {
      if (!quantize_rows(xp, r0, r1, K, qp, sp, twice)) finite = false;
    });
    TORCH_CHECK(finite.load(), "zsclip::packed_linear: the input has a NaN or infinite value");
    x = xq;
  }
  if (M <= w->rows_kernel_rows) {
    float* op = out.data_ptr<float>();
    rows_linear_avx2(x.data_ptr<float>(), M, K,
                     static_cast<const float*>(w->weights.get_data_handle()), N,
                     w->bias.defined() ? w->bias.data_ptr<float>() : nullptr, op);
    w->apply_activation(op, M);
    return out.view(out_shape);
  }
  const bool int8 = w->precision == LinearPrecision::kInt8;
  at::Tensor acc = int8 ? at::empty({M, N}, x.options().dtype(at::kInt)) : out;
  std::shared_ptr<PackedLinear::Prim> prim = w->primitive(M);
  at::Tensor scratch = at::empty({static_cast<int64_t>(prim->scratchpad.get_size())},
                                 x_in.options().dtype(at::kByte));
  dnnl::memory src(w->src_md(M), cpu_engine(), x.data_ptr());
  dnnl::memory dst(w->dst_md(M), cpu_engine(), acc.data_ptr());
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, src},
      {DNNL_ARG_WEIGHTS, w->weights},
      {DNNL_ARG_DST, dst},
      {DNNL_ARG_SCRATCHPAD, dnnl::memory(prim->scratchpad, cpu_engine(), scratch.data_ptr())}};
  if (w->fused_bias)
    args.emplace(DNNL_ARG_BIAS, dnnl::memory(w->bias_md(), cpu_engine(), w->bias.data_ptr()));
  prim->primitive.execute(thread_stream(), args);
  thread_stream().wait();
  if (int8) {
    const int32_t* ap = acc.data_ptr<int32_t>();
    const float* sp = xs.data_ptr<float>();
    const float* wsp = w->w_scale.data_ptr<float>();
    const float* bp = w->bias.defined() ? w->bias.data_ptr<float>() : nullptr;
    const int32_t* wsum = w->w_sum.defined() ? w->w_sum.data_ptr<int32_t>() : nullptr;
    float* op = out.data_ptr<float>();
    at::parallel_for(0, M, 8, [&](int64_t r0, int64_t r1) {
      dequantize_rows(ap, r0, r1, N, sp, wsp, bp, wsum, op);
    });
    w->apply_activation(op, M);
  }
  return out.view(out_shape);
}

at::Tensor packed_linear_op(const at::Tensor& x, const c10::intrusive_ptr<PackedLinear>& w) {
  try {
    return packed_linear(x, w);
  } catch (const dnnl::error& e) {
    TORCH_CHECK(false, "zsclip::packed_linear: oneDNN: ", e.what(), " (status ",
                static_cast<int>(e.status), ")");
  }
}

// Attention's batched products ([heads x batch] small matrices, 50 x 64 x 50 in ViT-B/32): one
// oneDNN matmul over the whole batch, read through the operands' strides (k^T is a view), in the
// calling thread's team. LibTorch 1.13 loops over the batch with one OpenBLAS call per matrix.
struct BatchedMatmuls {
  struct Prim {
    dnnl::matmul matmul;
    dnnl::memory::desc scratchpad;
  };
  std::mutex mu;
  std::map<std::vector<int64_t>, std::shared_ptr<Prim>> cache;
};

bool onednn_strides(const at::Tensor& t) {
  for (int64_t s : t.strides())
    if (s <= 0) return false;
  return true;
}

at::Tensor onednn_bmm(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != at::kFloat || b.scalar_type() != at::kFloat || a.dim() != 3 ||
      b.dim() != 3 || a.size(0) != b.size(0) || a.size(2) != b.size(1) || a.numel() == 0 ||
      b.numel() == 0 || !onednn_strides(a) || !onednn_strides(b))
    return at::bmm(a, b);
  lazy_team();
  static BatchedMatmuls shared;
  const int64_t B = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  const dnnl::memory::desc a_md({B, M, K}, dt::f32, {a.stride(0), a.stride(1), a.stride(2)});
  const dnnl::memory::desc b_md({B, K, N}, dt::f32, {b.stride(0), b.stride(1), b.stride(2)});
  const dnnl::memory::desc c_md({B, M, N}, dt::f32, tag::abc);
  const std::vector<int64_t> key = {
      B,           M,           K,           N,           a.stride(0),          a.stride(1),
      a.stride(2), b.stride(0), b.stride(1), b.stride(2), omp_get_max_threads()};
  std::shared_ptr<BatchedMatmuls::Prim> prim;
  {
    std::lock_guard<std::mutex> lock(shared.mu);
    auto it = shared.cache.find(key);
    if (it != shared.cache.end()) {
      prim = it->second;
    } else {
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr,
                                            cpu_engine());
      prim = std::make_shared<BatchedMatmuls::Prim>(
          BatchedMatmuls::Prim{dnnl::matmul(pd), pd.scratchpad_desc()});
      if (shared.cache.size() >= 16 * kMaxPrimitives) shared.cache.clear();
      shared.cache.emplace(key, prim);
    }
  }
  at::Tensor out = at::empty({B, M, N}, a.options());
  at::Tensor scratch =
      at::empty({static_cast<int64_t>(prim->scratchpad.get_size())}, a.options().dtype(at::kByte));
  prim->matmul.execute(
      thread_stream(),
      {{DNNL_ARG_SRC, dnnl::memory(a_md, cpu_engine(), a.data_ptr())},
       {DNNL_ARG_WEIGHTS, dnnl::memory(b_md, cpu_engine(), b.data_ptr())},
       {DNNL_ARG_DST, dnnl::memory(c_md, cpu_engine(), out.data_ptr())},
       {DNNL_ARG_SCRATCHPAD, dnnl::memory(prim->scratchpad, cpu_engine(), scratch.data_ptr())}});
  thread_stream().wait();
  return out;
}

at::Tensor onednn_bmm_op(const at::Tensor& a, const at::Tensor& b) {
  try {
    return onednn_bmm(a, b);
  } catch (const dnnl::error& e) {
    TORCH_CHECK(false, "zsclip::bmm: oneDNN: ", e.what(), " (status ", static_cast<int>(e.status),
                ")");
  }
}

const auto packed_linear_class = torch::class_<PackedLinear>("zsclip", "PackedLinear");

TORCH_LIBRARY(zsclip, m) {
  m.def("packed_linear(Tensor x, __torch__.torch.classes.zsclip.PackedLinear w) -> Tensor");
  m.def("bmm(Tensor a, Tensor b) -> Tensor");
}
TORCH_LIBRARY_IMPL(zsclip, CPU, m) {
  m.impl("packed_linear", packed_linear_op);
  m.impl("bmm", onednn_bmm_op);
}

c10::optional<at::Tensor> constant_tensor(torch::jit::Value* v) {
  if (v->node()->kind() != c10::prim::Constant) return c10::nullopt;
  c10::optional<c10::IValue> iv = torch::jit::toIValue(v);
  if (!iv || !iv->isTensor()) return c10::nullopt;
  return iv->toTensor();
}

bool is_none(torch::jit::Value* v) {
  return v->node()->kind() == c10::prim::Constant && v->type()->kind() == c10::TypeKind::NoneType;
}

struct Rewrite {
  torch::jit::Graph* graph;
  LinearPrecision precision;
  Int8Kernel int8_kernel;
  LinearPrimitive primitive;  // of the float32 and bf16 layers; int8 runs on matmul
  int count = 0;
  int kept_on_matmul = 0;  // float layers that stayed on matmul (fast_for_every_row_count)

  // Replaces `node` (output = x . w^T + b) with zsclip::linear (or linear_int8 for the linear
  // layers of an int8 graph; `int8` is false for the patch embedding, which stays float32) on
  // constants made from w and b.
  void replace(torch::jit::Node* node, torch::jit::Value* x, const at::Tensor& w,
               const c10::optional<at::Tensor>& b, bool int8) {
    torch::jit::WithInsertPoint guard(node);
    c10::intrusive_ptr<PackedLinear> packed;
    const at::Tensor wf = w.to(at::kFloat).contiguous();
    if (int8) {
      // Per output channel, symmetric: scale = max |w_row| / 127.
      at::Tensor scale = std::get<0>(wf.abs().max(1)).div(127.f);
      scale = at::where(scale > 0, scale, at::ones_like(scale)).contiguous();
      const at::Tensor q =
          wf.div(scale.unsqueeze(1)).round().clamp(-127, 127).to(at::kChar).contiguous();
      packed = c10::make_intrusive<PackedLinear>(LinearPrecision::kInt8, LinearPrimitive::kMatmul,
                                                 int8_kernel, q, b, scale);
    } else if (precision == LinearPrecision::kBFloat16) {
      packed = c10::make_intrusive<PackedLinear>(
          LinearPrecision::kBFloat16, primitive, Int8Kernel::kNone,
          wf.to(at::kBFloat16).contiguous(), b, at::Tensor());
    } else {
      packed = c10::make_intrusive<PackedLinear>(LinearPrecision::kFloat32, primitive,
                                                 Int8Kernel::kNone, wf, b, at::Tensor());
    }
    if (!int8 && packed->kind != primitive) ++kept_on_matmul;
    torch::jit::Value* wv = graph->insertConstant(c10::IValue(packed));
    torch::jit::Node* lin = graph->insertNode(
        graph->create(c10::Symbol::fromQualString("zsclip::packed_linear"), {x, wv}));
    lin->output()->setType(node->output()->type());
    node->output()->replaceAllUsesWith(lin->output());
    // The node and its weight constants go now: each layer's float32 weights are freed as soon as
    // its packed copy exists (Model::load holds no other reference), which bounds peak memory.
    std::vector<torch::jit::Node*> inputs;
    for (torch::jit::Value* v : node->inputs()) inputs.push_back(v->node());
    node->destroy();
    for (torch::jit::Node* in : inputs)
      if (in->kind() == c10::prim::Constant && !in->hasUses()) in->destroy();
    ++count;
  }

  static bool float_weight(const at::Tensor& w) {
    return w.dim() == 2 && w.scalar_type() == at::kFloat && w.device().is_cpu() && w.numel() > 0;
  }

  // aten::silu / aten::gelu of a zsclip::packed_linear output used nowhere else: the activation
  // becomes part of that layer (oneDNN's swish with alpha 1 is SiLU; gelu_erf / gelu_tanh).
  void fuse_activations(torch::jit::Block* block) {
    for (auto it = block->nodes().begin(); it != block->nodes().end();) {
      torch::jit::Node* node = *it++;
      for (torch::jit::Block* sub : node->blocks()) fuse_activations(sub);
      dnnl::algorithm alg = dnnl::algorithm::undef;
      if (node->kind() == c10::aten::silu && node->inputs().size() == 1) {
        alg = dnnl::algorithm::eltwise_swish;
      } else if (node->kind() == c10::aten::gelu && node->inputs().size() == 2) {
        c10::optional<c10::IValue> approx = torch::jit::toIValue(node->input(1));
        if (!approx || !approx->isString()) continue;
        if (approx->toStringRef() == "none") alg = dnnl::algorithm::eltwise_gelu_erf;
        if (approx->toStringRef() == "tanh") alg = dnnl::algorithm::eltwise_gelu_tanh;
      }
      if (alg == dnnl::algorithm::undef) continue;
      torch::jit::Value* in = node->input(0);
      torch::jit::Node* lin = in->node();
      if (lin->kind() != c10::Symbol::fromQualString("zsclip::packed_linear") ||
          in->uses().size() != 1)
        continue;
      c10::optional<c10::IValue> obj = torch::jit::toIValue(lin->input(1));
      if (!obj || !obj->isCustomClass()) continue;
      auto packed = obj->toCustomClass<PackedLinear>();
      if (packed->activation != dnnl::algorithm::undef) continue;
      packed->activation = alg;
      if (packed->kind != LinearPrimitive::kMatmul && !packed->fast_for_every_row_count()) {
        packed->activation = dnnl::algorithm::undef;  // the post-op would cost the fast kernel
        continue;
      }
      node->output()->replaceAllUsesWith(in);
      node->destroy();
    }
  }

  void run(torch::jit::Block* block) {
    for (auto it = block->nodes().begin(); it != block->nodes().end();) {
      torch::jit::Node* node = *it++;  // replace() destroys it
      for (torch::jit::Block* sub : node->blocks()) run(sub);
      if (node->kind() == c10::aten::linear && node->inputs().size() == 3) {
        c10::optional<at::Tensor> w = constant_tensor(node->input(1));
        if (!w || !float_weight(*w)) continue;
        c10::optional<at::Tensor> b;
        if (!is_none(node->input(2))) {
          b = constant_tensor(node->input(2));
          if (!b || b->dim() != 1 || b->size(0) != w->size(0) || b->scalar_type() != at::kFloat)
            continue;
        }
        replace(node, node->input(0), *w, b, precision == LinearPrecision::kInt8);
      } else if (node->kind() == c10::aten::bmm && node->inputs().size() == 2) {
        torch::jit::WithInsertPoint guard(node);
        torch::jit::Node* mm = graph->insertNode(graph->create(
            c10::Symbol::fromQualString("zsclip::bmm"), {node->input(0), node->input(1)}));
        mm->output()->setType(node->output()->type());
        node->output()->replaceAllUsesWith(mm->output());
      } else if (node->kind() == c10::aten::matmul && node->inputs().size() == 2) {
        // x . B with a constant 2-D B (the patch embedding as a GEMM): a linear layer with w = B^T.
        c10::optional<at::Tensor> B = constant_tensor(node->input(1));
        if (!B || !float_weight(*B)) continue;
        replace(node, node->input(0), B->t(), c10::nullopt, false);
      }
    }
  }
};

}  // namespace

bool onednn_linear_built() { return true; }

at::Tensor run_packed_linear(const at::Tensor& x, const at::Tensor& w,
                             const c10::optional<at::Tensor>& b, LinearPrecision precision,
                             Int8Kernel int8_kernel) {
  auto graph = std::make_shared<torch::jit::Graph>();
  Rewrite r{graph.get(), precision, int8_kernel, cpu_features().linear_primitive};
  torch::jit::Value* in = graph->addInput("x");
  torch::jit::Node* lin = graph->insertNode(graph->create(
      c10::aten::linear,
      {in, graph->insertConstant(w), graph->insertConstant(b ? c10::IValue(*b) : c10::IValue())}));
  graph->registerOutput(lin->output());
  r.replace(lin, in, w, b, precision == LinearPrecision::kInt8);
  c10::optional<c10::IValue> packed = torch::jit::toIValue(graph->outputs()[0]->node()->input(1));
  TORCH_CHECK(packed && packed->isCustomClass(), "run_packed_linear: no packed layer");
  return packed_linear_op(x, packed->toCustomClass<PackedLinear>());
}

int route_linear_layers(torch::jit::Module& module, LinearPrecision precision,
                        Int8Kernel int8_kernel, LinearPrimitive primitive, int* kept_on_matmul) {
  TORCH_CHECK(precision != LinearPrecision::kInt8 || int8_kernel != Int8Kernel::kNone,
              "zsclip: int8 linear layers without an int8 kernel");
  std::shared_ptr<torch::jit::Graph> graph = module.get_method("forward").graph();
  Rewrite r{graph.get(), precision, int8_kernel, primitive};
  r.run(graph->block());
  if (kept_on_matmul) *kept_on_matmul += r.kept_on_matmul;
  if (r.count > 0) {
    torch::jit::EliminateDeadCode(graph);
    r.fuse_activations(graph->block());
  }
  return r.count;
}

#else  // no oneDNN headers at build time: LibTorch's own kernels

bool onednn_linear_built() { return false; }
int route_linear_layers(torch::jit::Module&, LinearPrecision, Int8Kernel, LinearPrimitive, int*) {
  return 0;
}
at::Tensor run_packed_linear(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&,
                             LinearPrecision, Int8Kernel) {
  TORCH_CHECK(false, "run_packed_linear: zsclip was built without oneDNN");
}

#endif

// OpenMP's thread count is per thread: this changes the team of the calling thread only.
ScopedIntraOpThreads::ScopedIntraOpThreads(int threads) {
  at::internal::lazy_init_num_threads();  // LibTorch's own per-thread setup first, or it undoes
                                          // ours
  previous_ = omp_get_max_threads();
  omp_set_num_threads(threads);
}
ScopedIntraOpThreads::~ScopedIntraOpThreads() { omp_set_num_threads(previous_); }

// --- What this CPU runs: the one place that decides (Model::load asks it once per load) ---------
namespace {

// Calls of at most this many rows run the AVX2 rows kernel (rows_kernel.h) by default: a prompt
// (9-10 tokens), one B/32 image (50), a stream's part of a batch (8 B/32 images: 400 rows), the
// last blocks' pooled rows. Faster than the 1x1 convolution at every count measured up to 400 rows
// (2x at 9, 3-10 % at 80-400; benchmarks/README.md).
constexpr int64_t kRowsKernelRows = 512;

// Levels in order; each implies the ones before it (as oneDNN's ISA masks do).
constexpr const char* kIsaNames[] = {"baseline", "avx2", "avx512_core", "avx512_core_vnni",
                                     "avx512_core_bf16"};
enum IsaLevel { kBaseline = 0, kAvx2, kAvx512Core, kAvx512Vnni, kAvx512Bf16 };

bool env_on(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}

int hardware_level() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return kBaseline;
  if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")))
    return kAvx2;
  if (!__builtin_cpu_supports("avx512vnni")) return kAvx512Core;
  return __builtin_cpu_supports("avx512bf16") ? kAvx512Bf16 : kAvx512Vnni;
#else
  return kBaseline;
#endif
}

// $ZSCLIP_MAX_CPU_ISA: one of kIsaNames (any case; "all" = no limit), or -1 when unset.
int zsclip_max_level() {
  const char* v = std::getenv("ZSCLIP_MAX_CPU_ISA");
  if (!v || !*v) return -1;
  std::string s(v);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "all") return kAvx512Bf16;
  for (int i = 0; i <= kAvx512Bf16; ++i)
    if (s == kIsaNames[i]) return i;
  throw Error(ErrorCode::kInvalidArgument,
              std::string("$ZSCLIP_MAX_CPU_ISA \"") + v +
                  "\": expected baseline, avx2, avx512_core, avx512_core_vnni, avx512_core_bf16 "
                  "or all");
}

#ifdef ZSCLIP_WITH_ONEDNN
// The level oneDNN's kernels run at: honours $ONEDNN_MAX_CPU_ISA, and $ZSCLIP_MAX_CPU_ISA when it
// was set before oneDNN's first use in this process (passed on to dnnl::set_max_cpu_isa).
int onednn_level(int zsclip_max) {
  static const bool applied = [&] {
    if (zsclip_max < 0) return false;
    constexpr dnnl::cpu_isa to_onednn[] = {dnnl::cpu_isa::sse41, dnnl::cpu_isa::avx2,
                                           dnnl::cpu_isa::avx512_core,
                                           dnnl::cpu_isa::avx512_core_vnni, dnnl::cpu_isa::all};
    try {
      return dnnl::set_max_cpu_isa(to_onednn[zsclip_max]) == dnnl::status::success;
    } catch (const dnnl::error&) {
      return false;  // oneDNN was used already: its own level stands (reported by cpu_isa)
    }
  }();
  (void)applied;
  const unsigned isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  auto has = [&](unsigned mask) { return (isa & mask) == mask; };
  if (has(dnnl_cpu_isa_avx512_core_bf16)) return kAvx512Bf16;
  if (has(dnnl_cpu_isa_avx512_core_vnni)) return kAvx512Vnni;
  if (has(dnnl_cpu_isa_avx512_core)) return kAvx512Core;
  if (has(dnnl_cpu_isa_avx2)) return kAvx2;
  return kBaseline;
}
#endif

}  // namespace

CpuFeatures cpu_features() {
  static const int hardware = hardware_level();
  const int zsclip_max = zsclip_max_level();
  int level = hardware;
  std::string limits;
  auto limit = [&](int to, const std::string& why) {
    if (to >= level) return;
    level = to;
    limits += (limits.empty() ? "" : ", ") + why;
  };
#ifdef ZSCLIP_WITH_ONEDNN
  const int onednn = onednn_level(zsclip_max);  // first: it hands $ZSCLIP_MAX_CPU_ISA to oneDNN
#endif
  if (zsclip_max >= 0) limit(zsclip_max, "$ZSCLIP_MAX_CPU_ISA");
#ifdef ZSCLIP_WITH_ONEDNN
  limit(onednn, "oneDNN's effective ISA ($ONEDNN_MAX_CPU_ISA)");
#endif
  // For tests and comparisons: behave as on a CPU without the instructions.
  if (env_on("ZSCLIP_CPU_NO_VNNI")) limit(kAvx512Core, "$ZSCLIP_CPU_NO_VNNI");
  if (env_on("ZSCLIP_CPU_NO_BF16")) limit(kAvx512Vnni, "$ZSCLIP_CPU_NO_BF16");
  CpuFeatures f;
  f.isa = kIsaNames[level];
  f.hardware_isa = kIsaNames[hardware];
  f.limited_by = limits;
  f.avx2 = level >= kAvx2;
  f.avx512_vnni = level >= kAvx512Vnni;
  f.avx512_bf16 = level >= kAvx512Bf16;
  if (onednn_linear_built())
    f.int8 = f.avx512_vnni ? Int8Kernel::kVnniS8S8
             : f.avx2      ? Int8Kernel::kAvx2Split
                           : Int8Kernel::kNone;
  f.linear_primitive = level >= kAvx512Core ? LinearPrimitive::kMatmul : LinearPrimitive::kConv1x1;
  // AVX2 level only: from AVX-512 up the layers are on matmul, and oneDNN packs the convolution's
  // weights in 16-blocks there.
  f.rows_kernel_rows = level == kAvx2 && rows_kernel_available() ? kRowsKernelRows : 0;
  if (const char* v = std::getenv("ZSCLIP_ROWS_KERNEL_MAX"); v && *v) {
    char* end = nullptr;
    errno = 0;
    const long long rows = std::strtoll(v, &end, 10);
    if (*end != '\0' || errno != 0 || rows < 0 || !std::isdigit(static_cast<unsigned char>(*v)))
      throw Error(ErrorCode::kInvalidArgument, std::string("$ZSCLIP_ROWS_KERNEL_MAX \"") + v +
                                                   "\": expected a row count (0: never)");
    if (f.rows_kernel_rows > 0 || rows == 0) f.rows_kernel_rows = rows;
  }
  if (const char* v = std::getenv("ZSCLIP_LINEAR_PRIMITIVE"); v && *v) {
    const std::string name(v);
    if (name == "matmul") {
      f.linear_primitive = LinearPrimitive::kMatmul;
    } else if (name == "inner_product") {
      f.linear_primitive = LinearPrimitive::kInnerProduct;
    } else if (name == "conv1x1") {
      f.linear_primitive = LinearPrimitive::kConv1x1;
    } else {
      throw Error(ErrorCode::kInvalidArgument, "$ZSCLIP_LINEAR_PRIMITIVE \"" + name +
                                                   "\": expected matmul, inner_product or conv1x1");
    }
  }
  return f;
}

const char* linear_primitive_name(LinearPrimitive p) {
  switch (p) {
    case LinearPrimitive::kMatmul:
      return "matmul";
    case LinearPrimitive::kInnerProduct:
      return "inner_product";
    case LinearPrimitive::kConv1x1:
      break;
  }
  return "conv1x1";
}

const char* int8_kernel_name(Int8Kernel k) {
  switch (k) {
    case Int8Kernel::kVnniS8S8:
      return "vnni-s8s8";
    case Int8Kernel::kAvx2Split:
      return "avx2-u8s7x2";
    case Int8Kernel::kNone:
      break;
  }
  return "none";
}

bool cpu_has_avx512_bf16() { return cpu_features().avx512_bf16; }

}  // namespace zsclip::detail
