// zsclip preprocess: the model's input tensor for one image, as float32 C-order 3 x n x n.
#include "cli/cli.h"
#include "zsclip/config.h"
#include "zsclip/error.h"
#include "zsclip/io.h"
#include "zsclip/preprocess.h"

namespace zsclip::cli {
namespace {

int run_preprocess(const Args& args) {
  if (args.has("--model") && args.has("--image-size"))
    throw UsageError("give only one of --model DIR or --image-size N");
  if (!args.has("--out")) throw UsageError("--out FILE.f32 is required");
  if (args.positional().size() != 1) throw UsageError("exactly one IMAGE expected");
  PreprocessConfig cfg;
  if (args.has("--image-size"))
    cfg.image_size = args.get_int("--image-size", 1, 8192);
  else
    cfg = ModelConfig::load(model_dir(args)).preprocess;
  if (args.has("--exif")) cfg.apply_exif_orientation = true;
  Preprocessor pre(cfg);
  FloatTensor t = pre.from_file(args.positional()[0]);
  io::write_file_atomic(args.get("--out"), "output file", t.ptr(), t.data.size() * sizeof(float));
  return 0;
}

ZSCLIP_COMMAND(Command{
    "preprocess", "[--model DIR | --image-size N] --out FILE.f32 IMAGE",
    "write the preprocessed image tensor (float32, C order, 3 x n x n)",
    "The pipeline is OpenAI CLIP's: Pillow-exact bicubic resize of the shorter side to n, center "
    "crop, RGB, /255, normalise by mean and std. --image-size N uses OpenAI's mean and std. The "
    "output file is written whole or not at all (a temporary file renamed onto it).",
    run_preprocess});

}  // namespace
}  // namespace zsclip::cli
