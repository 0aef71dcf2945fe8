// zsclip preprocess: the model's input tensor for one image, as float32 C-order 3 x n x n.
#include <fstream>
#include <iostream>

#include "cli/cli.h"
#include "zsclip/config.h"
#include "zsclip/error.h"
#include "zsclip/preprocess.h"

namespace zsclip::cli {
namespace {

int run_preprocess(const Args& args) {
  if (args.has("--model") == args.has("--image-size"))
    throw UsageError("give exactly one of --model DIR or --image-size N");
  if (!args.has("--out")) throw UsageError("--out FILE.f32 is required");
  if (args.positional().size() != 1) throw UsageError("exactly one IMAGE expected");
  PreprocessConfig cfg;
  if (args.has("--model")) cfg = ModelConfig::load(args.get("--model")).preprocess;
  else cfg.image_size = args.get_int("--image-size", 224, 1, 8192);
  if (args.has("--exif")) cfg.apply_exif_orientation = true;
  Preprocessor pre(cfg);
  FloatTensor t = pre.from_file(args.positional()[0]);
  const std::string out = args.get("--out");
  std::ofstream f(out, std::ios::binary | std::ios::trunc);
  if (!f) throw Error(ErrorCode::kIo, out + ": cannot be opened for writing");
  f.write(reinterpret_cast<const char*>(t.ptr()), static_cast<std::streamsize>(t.data.size() * sizeof(float)));
  if (!f) throw Error(ErrorCode::kIo, out + ": write failed");
  return 0;
}

ZSCLIP_COMMAND(Command{
    "preprocess",
    "(--model DIR | --image-size N) --out FILE.f32 IMAGE",
    "write the preprocessed image tensor (float32, C order, 3 x n x n)",
    "The pipeline is OpenAI CLIP's: Pillow-exact bicubic resize of the shorter side to n, center\n"
    "crop, RGB, /255, normalise by mean and std. --image-size N uses OpenAI's mean and std.",
    {{"--model", "DIR", "take the pipeline from DIR/config.json"},
     {"--image-size", "N", "OpenAI's pipeline at size N"},
     {"--out", "FILE", "output file (raw float32)"},
     {"--exif", "", "apply the EXIF orientation (Pillow's Image.open ignores it; so does the default)"}},
    run_preprocess});

}  // namespace
}  // namespace zsclip::cli
