// zsclip's own linear layers for frozen CPU graphs: oneDNN's single-threaded GEMM kernels on column
// blocks of the output, one block per OpenMP thread of the calling thread's team.
//
// Why: Debian's LibTorch sends float32 linear layers to OpenBLAS, whose threads are a process-wide
// pool of their own. A single image (50 tokens in ViT-B/32) then runs either on one core or with
// OpenBLAS's threads spinning against LibTorch's OpenMP team. Here the GEMM and LibTorch's
// element-wise kernels share one OpenMP team, sized per calling thread (ScopedIntraOpThreads), so
// a batch-1 call spreads over every core and the parts of a split batch stay single-threaded.
// bfloat16: the same, with oneDNN's bf16 x bf16 -> f32 GEMM (AVX512_BF16): weights are rounded to
// bf16 once at load, activations per call; accumulation and outputs stay float32, and everything
// outside the linear layers (LayerNorm, softmax, attention's batched products, residuals) runs in
// float32. Measurements: benchmarks/README.md.
#include <ATen/Parallel.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/library.h>

#include <omp.h>

#ifdef ZSCLIP_WITH_ONEDNN
#include <dnnl.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "model/model_impl.h"

#ifdef ZSCLIP_WITH_ONEDNN
// oneDNN 2.x exports its bf16 GEMM (bf16 A and B, float32 C, row-major like dnnl_sgemm) but its
// public header declares only the float and int8 ones.
extern "C" dnnl_status_t dnnl_gemm_bf16bf16f32(char transa, char transb, dnnl_dim_t M, dnnl_dim_t N,
                                               dnnl_dim_t K, float alpha, const uint16_t* A,
                                               dnnl_dim_t lda, const uint16_t* B, dnnl_dim_t ldb,
                                               float beta, float* C, dnnl_dim_t ldc);
#endif

namespace zsclip::detail {

#ifdef ZSCLIP_WITH_ONEDNN
namespace {

// out[M, N] (+)= x[M, K] . w[N, K]^T on columns [n0, n1) of out.
void gemm_block(const at::Tensor& x, const at::Tensor& w, at::Tensor& out, int64_t n0, int64_t n1,
                float beta, dnnl_status_t* status) {
  const int64_t M = x.size(0), K = x.size(1), N = out.size(1);
  float* c = out.data_ptr<float>() + n0;
  if (w.scalar_type() == at::kBFloat16)
    *status = dnnl_gemm_bf16bf16f32(
        'N', 'T', M, n1 - n0, K, 1.f, reinterpret_cast<const uint16_t*>(x.data_ptr()), K,
        reinterpret_cast<const uint16_t*>(w.data_ptr()) + n0 * K, K, beta, c, N);
  else
    *status = dnnl_sgemm('N', 'T', M, n1 - n0, K, 1.f, x.data_ptr<float>(), K,
                         w.data_ptr<float>() + n0 * K, K, beta, c, N);
}

// x [..., K] float32; w [N, K] float32 or bfloat16 (contiguous, a frozen constant); b [N] float32
// or none -> [..., N] float32.
at::Tensor zsclip_linear(const at::Tensor& x_in, const at::Tensor& w,
                         const c10::optional<at::Tensor>& b) {
  TORCH_CHECK(x_in.scalar_type() == at::kFloat, "zsclip::linear: input must be float32, got ",
              x_in.scalar_type());
  TORCH_CHECK(w.dim() == 2 && w.is_contiguous(), "zsclip::linear: weight must be a 2-D constant");
  TORCH_CHECK(x_in.dim() >= 1 && x_in.size(-1) == w.size(1), "zsclip::linear: input ", x_in.sizes(),
              " does not match weight ", w.sizes());
  const int64_t K = w.size(1), N = w.size(0);
  std::vector<int64_t> out_shape = x_in.sizes().vec();
  out_shape.back() = N;
  at::Tensor x = x_in.reshape({-1, K});
  x = (w.scalar_type() == at::kBFloat16 ? x.to(at::kBFloat16) : x).contiguous();
  const int64_t M = x.size(0);
  at::Tensor out = at::empty({M, N}, x_in.options());
  if (M == 0) return out.view(out_shape);
  float beta = 0.f;
  if (b && b->defined()) {
    TORCH_CHECK(b->dim() == 1 && b->size(0) == N && b->scalar_type() == at::kFloat,
                "zsclip::linear: bias must be float32 [", N, "]");
    out.copy_(b->view({1, N}).expand({M, N}));
    beta = 1.f;
  }
  // One column block per thread of this thread's team (1 inside a stream's part, every core in a
  // widened single-image call); blocks are multiples of 16 columns (one AVX-512 register).
  const int threads = at::in_parallel_region() ? 1 : at::get_num_threads();
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(threads, N / 64));
  dnnl_status_t status = dnnl_success;
  if (blocks == 1) {
    gemm_block(x, w, out, 0, N, beta, &status);
  } else {
    const int64_t step = ((N + blocks - 1) / blocks + 15) / 16 * 16;
    std::vector<dnnl_status_t> st(static_cast<size_t>(blocks), dnnl_success);
#pragma omp parallel for num_threads(static_cast <int>(blocks)) schedule(static, 1)
    for (int64_t i = 0; i < blocks; ++i) {
      const int64_t n0 = i * step, n1 = std::min(N, n0 + step);
      if (n1 > n0) gemm_block(x, w, out, n0, n1, beta, &st[static_cast<size_t>(i)]);
    }
    for (dnnl_status_t s : st)
      if (s != dnnl_success) status = s;
  }
  TORCH_CHECK(status == dnnl_success, "zsclip::linear: oneDNN GEMM failed with status ",
              static_cast<int>(status), " (M ", M, ", N ", N, ", K ", K, ")");
  return out.view(out_shape);
}

// Dynamic int8: x's rows quantised symmetrically each call (one scale per row: a token's outlier
// does not coarsen the others), w per output channel at load; int32 sums (VNNI), then
// out = sum * x_scale[row] * w_scale[col] + b.
// x [..., K] float32; w [N, K] int8; w_scale [N] float32; b [N] float32 or none.
at::Tensor zsclip_linear_int8(const at::Tensor& x_in, const at::Tensor& w,
                              const at::Tensor& w_scale, const c10::optional<at::Tensor>& b) {
  TORCH_CHECK(x_in.scalar_type() == at::kFloat, "zsclip::linear_int8: input must be float32, got ",
              x_in.scalar_type());
  TORCH_CHECK(w.dim() == 2 && w.is_contiguous() && w.scalar_type() == at::kChar,
              "zsclip::linear_int8: weight must be a 2-D int8 constant");
  const int64_t K = w.size(1), N = w.size(0);
  TORCH_CHECK(x_in.dim() >= 1 && x_in.size(-1) == K, "zsclip::linear_int8: input ", x_in.sizes(),
              " does not match weight ", w.sizes());
  TORCH_CHECK(w_scale.dim() == 1 && w_scale.size(0) == N && w_scale.scalar_type() == at::kFloat,
              "zsclip::linear_int8: weight scales must be float32 [", N, "]");
  const bool has_bias = b && b->defined();
  if (has_bias)
    TORCH_CHECK(b->dim() == 1 && b->size(0) == N && b->scalar_type() == at::kFloat,
                "zsclip::linear_int8: bias must be float32 [", N, "]");
  std::vector<int64_t> out_shape = x_in.sizes().vec();
  out_shape.back() = N;
  const at::Tensor x = x_in.reshape({-1, K}).contiguous();
  const int64_t M = x.size(0);
  at::Tensor out = at::empty({M, N}, x_in.options());
  if (M == 0) return out.view(out_shape);
  at::Tensor xq = at::empty({M, K}, x.options().dtype(at::kChar));
  at::Tensor xs = at::empty({M}, x.options());
  at::Tensor acc = at::empty({M, N}, x.options().dtype(at::kInt));
  const float* xp = x.data_ptr<float>();
  int8_t* qp = xq.data_ptr<int8_t>();
  float* sp = xs.data_ptr<float>();
  const int8_t* wp = w.data_ptr<int8_t>();
  const float* wsp = w_scale.data_ptr<float>();
  const float* bp = has_bias ? b->data_ptr<float>() : nullptr;
  int32_t* ap = acc.data_ptr<int32_t>();
  float* op = out.data_ptr<float>();
  bool finite = true;
  at::parallel_for(0, M, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = xp + r * K;
      float amax = 0.f;
      for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::abs(row[k]));
      if (!std::isfinite(amax)) finite = false;
      const float scale = amax > 0.f && std::isfinite(amax) ? amax / 127.f : 1.f;
      const float inv = 1.f / scale;
      int8_t* q = qp + r * K;
      for (int64_t k = 0; k < K; ++k)
        q[k] = static_cast<int8_t>(std::max(-127.f, std::min(127.f, std::nearbyint(row[k] * inv))));
      sp[r] = scale;
    }
  });
  TORCH_CHECK(finite, "zsclip::linear_int8: the input has a NaN or infinite value");
  const int threads = at::in_parallel_region() ? 1 : at::get_num_threads();
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(threads, N / 64));
  const int64_t step = ((N + blocks - 1) / blocks + 15) / 16 * 16;
  std::vector<dnnl_status_t> st(static_cast<size_t>(blocks), dnnl_success);
  const int32_t zero = 0;
#pragma omp parallel for num_threads(static_cast <int>(blocks)) schedule(static, 1) if (blocks > 1)
  for (int64_t i = 0; i < blocks; ++i) {
    const int64_t n0 = i * step, n1 = std::min(N, n0 + step);
    if (n1 <= n0) continue;
    st[static_cast<size_t>(i)] = dnnl_gemm_s8s8s32('N', 'T', 'F', M, n1 - n0, K, 1.f, qp, K, 0,
                                                   wp + n0 * K, K, 0, 0.f, ap + n0, N, &zero);
    for (int64_t r = 0; r < M; ++r) {
      const float rs = sp[r];
      const int32_t* a = ap + r * N;
      float* o = op + r * N;
      for (int64_t n = n0; n < n1; ++n)
        o[n] = static_cast<float>(a[n]) * (rs * wsp[n]) + (bp ? bp[n] : 0.f);
    }
  }
  for (dnnl_status_t s : st)
    TORCH_CHECK(s == dnnl_success, "zsclip::linear_int8: oneDNN GEMM failed with status ",
                static_cast<int>(s), " (M ", M, ", N ", N, ", K ", K, ")");
  return out.view(out_shape);
}

TORCH_LIBRARY(zsclip, m) {
  m.def("linear(Tensor x, Tensor w, Tensor? b) -> Tensor");
  m.def("linear_int8(Tensor x, Tensor w, Tensor w_scale, Tensor? b) -> Tensor");
}
TORCH_LIBRARY_IMPL(zsclip, CPU, m) {
  m.impl("linear", zsclip_linear);
  m.impl("linear_int8", zsclip_linear_int8);
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
  int count = 0;

  // Replaces `node` (output = x . w^T + b) with zsclip::linear (or linear_int8 for the linear
  // layers of an int8 graph; `int8` is false for the patch embedding, which stays float32) on
  // constants made from w and b.
  void replace(torch::jit::Node* node, torch::jit::Value* x, const at::Tensor& w,
               const c10::optional<at::Tensor>& b, bool int8) {
    torch::jit::WithInsertPoint guard(node);
    std::vector<torch::jit::Value*> in{x};
    const char* op = "zsclip::linear";
    if (int8) {
      // Per output channel, symmetric: scale = max |w_row| / 127.
      const at::Tensor wf = w.to(at::kFloat).contiguous();
      at::Tensor scale = std::get<0>(wf.abs().max(1)).div(127.f);
      scale = at::where(scale > 0, scale, at::ones_like(scale));
      const at::Tensor q =
          wf.div(scale.unsqueeze(1)).round().clamp(-127, 127).to(at::kChar).contiguous();
      in.push_back(graph->insertConstant(q));
      in.push_back(graph->insertConstant(scale.contiguous()));
      op = "zsclip::linear_int8";
    } else {
      const bool bf16 = precision == LinearPrecision::kBFloat16;
      in.push_back(graph->insertConstant(
          (bf16 ? w.to(at::kBFloat16) : w.to(at::kFloat)).contiguous().clone()));
    }
    in.push_back(b ? graph->insertConstant(b->to(at::kFloat).contiguous().clone())
                   : graph->insertConstant(c10::IValue()));
    torch::jit::Node* lin = graph->insertNode(graph->create(c10::Symbol::fromQualString(op), in));
    lin->output()->setType(node->output()->type());
    node->output()->replaceAllUsesWith(lin->output());
    ++count;
  }

  static bool float_weight(const at::Tensor& w) {
    return w.dim() == 2 && w.scalar_type() == at::kFloat && w.device().is_cpu() && w.numel() > 0;
  }

  void run(torch::jit::Block* block) {
    for (torch::jit::Node* node : block->nodes()) {
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

int route_linear_layers(torch::jit::Module& module, LinearPrecision precision) {
  std::shared_ptr<torch::jit::Graph> graph = module.get_method("forward").graph();
  Rewrite r{graph.get(), precision};
  r.run(graph->block());
  if (r.count > 0) torch::jit::EliminateDeadCode(graph);
  return r.count;
}

#else  // no oneDNN headers at build time: LibTorch's own kernels

bool onednn_linear_built() { return false; }
int route_linear_layers(torch::jit::Module&, LinearPrecision) { return 0; }

#endif

// OpenMP's thread count is per thread: this changes the team of the calling thread only.
ScopedIntraOpThreads::ScopedIntraOpThreads(int threads) {
  at::internal::lazy_init_num_threads();  // LibTorch's own per-thread setup first, or it undoes
                                          // ours
  previous_ = omp_get_max_threads();
  omp_set_num_threads(threads);
}
ScopedIntraOpThreads::~ScopedIntraOpThreads() { omp_set_num_threads(previous_); }

bool cpu_has_vnni() {
  const char* off = std::getenv("ZSCLIP_CPU_NO_VNNI");
  if (off && *off && std::strcmp(off, "0") != 0) return false;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vnni") || __builtin_cpu_supports("avxvnni");
#else
  return false;
#endif
}

bool cpu_has_avx512_bf16() {
  // For tests and comparisons: behave as on a CPU without the instructions.
  const char* off = std::getenv("ZSCLIP_CPU_NO_BF16");
  if (off && *off && std::strcmp(off, "0") != 0) return false;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

}  // namespace zsclip::detail
