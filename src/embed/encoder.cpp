// The non-virtual helpers of the encoder interfaces.
#include "zsclip/encoder.h"

#include "base/tensor_check.h"
#include "zsclip/error.h"
#include "zsclip/similarity.h"

namespace zsclip {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

const std::shared_ptr<Runtime>& ImageEncoder::runtime() const {
  static const std::shared_ptr<Runtime> none;
  return none;
}

void ImageEncoder::encode_images(const float* pixels, int64_t n_images, float* out) const {
  if (n_images < 0) throw Error(ErrorCode::kInvalidArgument, "encode_images: negative image count");
  if (n_images == 0) return;
  if (pixels == nullptr || out == nullptr)
    throw Error(ErrorCode::kInvalidArgument, "encode_images: null buffer");
  const size_t per_image = static_cast<size_t>(3) * static_cast<size_t>(image_size()) *
                           static_cast<size_t>(image_size());
  // A NaN or infinite pixel would come out as NaN probabilities that look like an answer.
  detail::check_finite(pixels, static_cast<size_t>(n_images) * per_image, per_image,
                       "encode_images: pixels");
  do_encode_images(pixels, n_images, out);
}

FloatTensor ImageEncoder::encode_images(const FloatTensor& pixels) const {
  detail::check_tensor(pixels, "encode_images: pixels");
  const int64_t n = image_size();
  const bool one =
      pixels.dim() == 3 && pixels.size(0) == 3 && pixels.size(1) == n && pixels.size(2) == n;
  const bool batch =
      pixels.dim() == 4 && pixels.size(1) == 3 && pixels.size(2) == n && pixels.size(3) == n;
  if (!one && !batch)
    throw Error(ErrorCode::kInvalidArgument,
                "encode_images: pixels must be [N, 3, " + std::to_string(n) + ", " +
                    std::to_string(n) + "] or [3, " + std::to_string(n) + ", " + std::to_string(n) +
                    "], got " + shape_str(pixels.shape));
  const int64_t count = one ? 1 : pixels.size(0);
  FloatTensor out({count, embed_dim()});
  if (count > 0) encode_images(pixels.ptr(), count, out.ptr());
  return out;
}

FloatTensor TextEncoder::encode_texts(const IdTensor& ids) const {
  detail::check_tensor(ids, "encode_texts: ids");
  const int64_t l = context_length();
  if (ids.dim() != 2 || ids.size(1) != l)
    throw Error(ErrorCode::kInvalidArgument, "encode_texts: ids must be [N, " + std::to_string(l) +
                                                 "], got " + shape_str(ids.shape));
  if (ids.size(0) == 0) return FloatTensor({0, embed_dim()});
  FloatTensor out = do_encode_texts(ids);
  if (out.shape != std::vector<int64_t>{ids.size(0), embed_dim()})
    throw Error(ErrorCode::kInternal, "encode_texts: the encoder returned " + shape_str(out.shape) +
                                          ", expected [" + std::to_string(ids.size(0)) + ", " +
                                          std::to_string(embed_dim()) + "]");
  return out;
}

FloatTensor TextEncoder::embed_texts(const std::vector<std::string>& texts) const {
  FloatTensor features =
      encode_texts(tokenizer().tokenize(texts, context_length(), /*truncate=*/true));
  normalize_rows(features);
  return features;
}

}  // namespace zsclip
