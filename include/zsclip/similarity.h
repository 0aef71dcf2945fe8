// zsclip/similarity.h — unit-length embeddings and cosine similarity, so that no caller writes its
// own.
//
//   std::vector<float> a = clf.embed_file("cat.jpg");  // unit length
//   std::vector<float> b = clf.embed_file("dog.jpg");
//   float s = zsclip::cosine_similarity(a, b);  // in [-1, 1]
//   // images [N, D], texts [M, D] -> [N, M]
//   zsclip::FloatTensor sim = zsclip::cosine_similarity(images, texts);
//
// Sums are taken in double. A zero vector stays zero and has similarity 0 with everything.
// Free functions without state: safe from several threads.
#pragma once

#include <cstdint>
#include <vector>

#include "zsclip/tensor.h"

namespace zsclip {

// v / |v| (v itself when |v| is 0).
std::vector<float> normalized(std::vector<float> v);
// Every row of a 2-D [N, D] tensor to unit length. Throws Error(kInvalidArgument) unless 2-D.
void normalize_rows(FloatTensor& x);

// <a, b> / (|a| |b|) over d floats; 0 when either is zero.
float cosine_similarity(const float* a, const float* b, int64_t d);
// Throws Error(kInvalidArgument) when the sizes differ.
float cosine_similarity(const std::vector<float>& a, const std::vector<float>& b);
// Row i of a [N, D] against row j of b [M, D] -> [N, M]. Throws unless both are 2-D with equal D.
FloatTensor cosine_similarity(const FloatTensor& a, const FloatTensor& b);

}  // namespace zsclip
