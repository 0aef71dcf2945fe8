// zsclip::HostTensor — a plain, dense, row-major (C-order) array in host memory.
//
// Public headers use it instead of at::Tensor so that a program using zsclip compiles without
// LibTorch's headers. Programs that use LibTorch convert themselves: torch::from_blob(t.ptr(),
// t.shape) views a HostTensor, and a contiguous float at::Tensor's sizes() and data_ptr<float>()
// make one.
//
//   zsclip::FloatTensor t({3, 224, 224});  // zero-filled
//   t.at(0, 10, 20) = 1.0f;
//
// The fields are public, so shape and data can disagree; every zsclip function that takes a
// HostTensor checks that the product of the shape equals data.size() (and the dimensions it needs)
// and throws zsclip::Error(kInvalidArgument) otherwise, before reading any value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

namespace zsclip {

template <typename T>
struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<T> data;

  HostTensor() = default;
  explicit HostTensor(std::vector<int64_t> s, T fill = T())
      : shape(std::move(s)), data(static_cast<size_t>(count(shape)), fill) {}
  HostTensor(std::vector<int64_t> s, std::vector<T> d) : shape(std::move(s)), data(std::move(d)) {}

  static int64_t count(const std::vector<int64_t>& s) {
    return std::accumulate(s.begin(), s.end(), int64_t{1},
                           [](int64_t a, int64_t b) { return a * b; });
  }
  int64_t numel() const { return static_cast<int64_t>(data.size()); }
  int64_t dim() const { return static_cast<int64_t>(shape.size()); }
  int64_t size(int64_t i) const { return shape.at(static_cast<size_t>(i < 0 ? i + dim() : i)); }
  T* ptr() { return data.data(); }
  const T* ptr() const { return data.data(); }
  // Row i of a 2-D tensor.
  T* row(int64_t i) { return data.data() + i * shape.at(1); }
  const T* row(int64_t i) const { return data.data() + i * shape.at(1); }
  T& at(int64_t i, int64_t j) { return data[static_cast<size_t>(i * shape[1] + j)]; }
  const T& at(int64_t i, int64_t j) const { return data[static_cast<size_t>(i * shape[1] + j)]; }
  T& at(int64_t c, int64_t i, int64_t j) {
    return data[static_cast<size_t>((c * shape[1] + i) * shape[2] + j)];
  }
  const T& at(int64_t c, int64_t i, int64_t j) const {
    return data[static_cast<size_t>((c * shape[1] + i) * shape[2] + j)];
  }
};

using FloatTensor = HostTensor<float>;
using IdTensor = HostTensor<int64_t>;

}  // namespace zsclip
