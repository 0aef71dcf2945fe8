// zsclip tokenize: CLIP BPE token ids of texts, as OpenAI's clip.tokenize gives them.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "zsclip/config.h"
#include "zsclip/error.h"
#include "zsclip/tokenizer.h"

namespace zsclip::cli {
namespace {

int run_tokenize(const Args& args) {
  if (args.has("--vocab") == args.has("--model"))
    throw UsageError("give exactly one of --vocab FILE or --model DIR");
  Tokenizer tok = [&] {
    if (args.has("--vocab")) return Tokenizer::from_file(args.get("--vocab"));
    return Tokenizer::from_config(ModelConfig::load(args.get("--model")));
  }();
  int64_t context = 77;
  if (args.has("--model") && !args.has("--context-length"))
    context = ModelConfig::load(args.get("--model")).text.context_length;
  context = args.get_int("--context-length", static_cast<int>(context), 2, 1 << 20);
  const bool truncate = !args.has("--no-truncate");
  const bool bpe_only = args.has("--bpe-only");

  std::vector<std::string> texts = args.positional();
  if (texts.empty()) throw UsageError("no TEXT given (use - to read JSON strings from standard input)");
  if (texts.size() == 1 && texts[0] == "-") {
    texts.clear();
    std::string line;
    for (size_t n = 1; std::getline(std::cin, line); ++n) {
      if (line.empty()) continue;
      try {
        nlohmann::json j = nlohmann::json::parse(line);
        if (!j.is_string()) throw Error(ErrorCode::kInvalidArgument, "");
        texts.push_back(j.get<std::string>());
      } catch (const std::exception&) {
        throw Error(ErrorCode::kInvalidArgument,
                    "standard input line " + std::to_string(n) + ": expected one JSON string per line");
      }
    }
  }
  int status = 0;
  for (const auto& text : texts) {
    try {
      std::vector<int32_t> ids = bpe_only ? tok.encode(text) : tok.encode_with_specials(text, context, truncate);
      std::cout << nlohmann::json(ids).dump() << "\n";
    } catch (const Error& e) {
      std::cout.flush();
      std::cerr << "zsclip tokenize: error [" << error_code_name(e.code()) << "]: " << e.what() << "\n";
      status = 1;
    }
  }
  return status;
}

ZSCLIP_COMMAND(Command{
    "tokenize",
    "(--vocab FILE | --model DIR) [--context-length N] [--no-truncate] [--bpe-only] TEXT...",
    "print CLIP BPE token ids of each TEXT, one JSON array a line",
    "Ids include the start and end tokens and no padding (as clip.tokenize, without its zeros),\n"
    "unless --bpe-only, which prints SimpleTokenizer.encode(TEXT). With - as the only TEXT, texts\n"
    "are read from standard input, one JSON string a line, so any text can be passed.",
    {{"--vocab", "FILE", "BPE merges file (gzip as OpenAI ships it, or plain text)"},
     {"--model", "DIR", "take the vocabulary and context length from DIR/config.json"},
     {"--context-length", "N", "context length (default 77, or the model's)"},
     {"--no-truncate", "", "fail on texts longer than the context instead of truncating"},
     {"--bpe-only", "", "print the BPE ids alone: no start/end tokens, no truncation"}},
    run_tokenize});

}  // namespace
}  // namespace zsclip::cli
