// libFuzzer target: config.json parsing. Any bytes either parse into a config or throw
// zsclip::Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "zsclip/config.h"
#include "zsclip/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    zsclip::ModelConfig c =
        zsclip::ModelConfig::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    (void)c.path_of(c.tokenizer.vocab_file);
  } catch (const zsclip::Error&) {
  }
  return 0;
}
