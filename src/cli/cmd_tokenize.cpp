// zsclip tokenize: token ids of texts, as OpenAI's clip.tokenize gives them (CLIP BPE), or as the
// model's own tokenizer does (SentencePiece: SigLIP, SigLIP2; see zsclip/tokenizer.h).
#include <unistd.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/cli.h"
#include "zsclip/config.h"
#include "zsclip/error.h"
#include "zsclip/io.h"
#include "zsclip/tokenizer.h"

namespace zsclip::cli {
namespace {

// Texts given as standard input: at most this much is read.
constexpr uint64_t kMaxStdinBytes = uint64_t{256} << 20;

int run_tokenize(const Args& args) {
  if (args.has("--vocab") && args.has("--model"))
    throw UsageError("give only one of --vocab FILE or --model DIR");
  int64_t context = 77;
  Tokenizer tok = [&] {
    if (args.has("--vocab")) return Tokenizer::from_file(args.get("--vocab"));
    ModelConfig cfg = ModelConfig::load(model_dir(args));
    context = cfg.text.context_length;
    return Tokenizer::from_config(cfg);
  }();
  context = args.get_int("--context-length", static_cast<int>(context), 2, 1 << 20);
  const bool truncate = !args.has("--no-truncate");
  const bool bpe_only = args.has("--bpe-only");

  std::vector<std::string> texts = args.positional();
  if (texts.empty())
    throw UsageError("no TEXT given (use - to read JSON strings from standard input)");
  if (texts.size() == 1 && texts[0] == "-") {
    texts.clear();
    std::istringstream in(io::read_stream(STDIN_FILENO, "standard input",
                                          {kMaxStdinBytes, ErrorCode::kInvalidArgument}));
    std::string line;
    for (size_t n = 1; std::getline(in, line); ++n) {
      if (line.empty()) continue;
      try {
        nlohmann::json j = nlohmann::json::parse(line);
        if (!j.is_string()) throw Error(ErrorCode::kInvalidArgument, "");
        texts.push_back(j.get<std::string>());
      } catch (const std::exception&) {
        throw Error(ErrorCode::kInvalidArgument, "standard input line " + std::to_string(n) +
                                                     ": expected one JSON string per line");
      }
    }
  }
  int status = 0;
  for (const auto& text : texts) {
    try {
      std::vector<int32_t> ids =
          bpe_only ? tok.encode(text) : tok.encode_with_specials(text, context, truncate);
      std::cout << nlohmann::json(ids).dump() << "\n";
    } catch (const Error& e) {
      std::cout.flush();
      std::cerr << "zsclip tokenize: error [" << error_code_name(e.code()) << "]: " << e.what()
                << "\n";
      status = 1;
    }
  }
  return status;
}

ZSCLIP_COMMAND(Command{
    "tokenize",
    "[--vocab FILE | --model DIR] [--context-length N] [--no-truncate] [--bpe-only] TEXT...",
    "print the token ids of each TEXT (CLIP BPE, or the model's SentencePiece), one JSON array a "
    "line",
    "Ids include the start and end tokens and no padding (as clip.tokenize, without its zeros; "
    "SigLIP/SigLIP2 models: the pieces and the end token, as open_clip or HF tokenize them, "
    "without the padding), unless --bpe-only, which prints the vocabulary's ids alone "
    "(SimpleTokenizer.encode(TEXT); SentencePiece: the pieces). With - as the only TEXT, texts are "
    "read from standard input (at most 256 MiB), one JSON string a line, so any text can be "
    "passed. Without --vocab, the vocabulary and context length are the model's (--model, whose "
    "default is $ZSCLIP_MODEL, else the shipped models/shapes).",
    run_tokenize});

}  // namespace
}  // namespace zsclip::cli
