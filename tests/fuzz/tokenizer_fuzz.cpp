// libFuzzer target: arbitrary bytes through encode, decode and tokenize of CLIP's tokenizer.
// The vocabulary comes from $ZSCLIP_VOCAB, else ../shared/clip/bpe_simple_vocab_16e6.txt.gz next to
// the source tree, else a small built-in merge list (so the target always runs).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "zsclip/error.h"
#include "zsclip/tokenizer.h"

namespace {

const zsclip::Tokenizer& tokenizer() {
  static const zsclip::Tokenizer tok = [] {
    std::string path;
    if (const char* env = std::getenv("ZSCLIP_VOCAB"); env && *env) {
      path = env;
    } else {
      // The build defines no source-dir macro for fuzzers: find the repository from this file's
      // path.
      std::string root = __FILE__;
      const auto cut = root.rfind("tests/fuzz/");
      root = cut == std::string::npos ? std::string(".") : root.substr(0, cut);
      path = root + "../shared/clip/bpe_simple_vocab_16e6.txt.gz";
    }
    try {
      zsclip::TokenizerOptions o;
      o.num_merges = 48894;
      o.cache_capacity = 4096;
      return zsclip::Tokenizer::from_file(path, o);
    } catch (const zsclip::Error&) {
      return zsclip::Tokenizer::from_merges({{"t", "h"}, {"th", "e</w>"}, {"a", "n"}, {"i", "n"}});
    }
  }();
  return tok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const zsclip::Tokenizer& tok = tokenizer();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const std::vector<int32_t> ids = tok.encode(text);
    for (int32_t id : ids) {
      if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
    }
    const std::string decoded = tok.decode(ids);
    // Re-encoding the decoded text must not fail either.
    (void)tok.encode(decoded);
    const auto with = tok.encode_with_specials(text, 77, true);
    if (with.size() > 77 || with.front() != tok.sot_id() || with.back() != tok.eot_id())
      __builtin_trap();
    const zsclip::IdTensor t = tok.tokenize({std::string(text)}, 16, size % 2 == 0);
    if (t.numel() != 16) __builtin_trap();
    // Arbitrary ids (from the input bytes), some out of range: only zsclip::Error may escape.
    std::vector<int32_t> raw;
    for (size_t i = 0; i + 2 <= size && raw.size() < 64; i += 2) {
      raw.push_back(static_cast<int32_t>(data[i] | (data[i + 1] << 8)) % 50000);
    }
    (void)tok.decode(raw);
  } catch (const zsclip::Error&) {
  }
  return 0;
}
