#include "zsclip/tokenizer.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "text/bpe.h"
#include "text/clean.h"
#include "text/tokenizer_impl.h"
#include "text/unicode.h"
#include "zsclip/config.h"
#include "zsclip/error.h"
#include "zsclip/io.h"
#include "zsclip/utf8.h"

namespace zsclip {
namespace {

constexpr size_t kOpenAIMaxMerges = 48894;

constexpr const char* kEow = "</w>";
constexpr size_t kMaxVocabFileBytes = size_t{256} << 20;  // refuse gzip bombs

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to U+0100 onwards,
// in this order (which is also the order of the first 256 vocabulary entries).
struct ByteAlphabet {
  std::array<uint8_t, 256> order{};     // vocab index -> byte
  std::array<char32_t, 256> to_char{};  // byte -> code point
  std::unordered_map<char32_t, uint8_t> to_byte;
  ByteAlphabet() {
    std::array<bool, 256> printable{};
    int k = 0;
    for (int b = 0; b < 256; ++b) {
      printable[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    }
    for (int b = 0; b < 256; ++b) {
      if (printable[b]) {
        order[k++] = static_cast<uint8_t>(b);
        to_char[b] = static_cast<char32_t>(b);
      }
    }
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      if (!printable[b]) {
        order[k++] = static_cast<uint8_t>(b);
        to_char[b] = static_cast<char32_t>(256 + n++);
      }
    }
    for (int b = 0; b < 256; ++b) to_byte[to_char[b]] = static_cast<uint8_t>(b);
  }
};

const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}

std::string byte_symbol(uint8_t b) {
  std::string s;
  utf8::append(s, alphabet().to_char[b]);
  return s;
}

// Bounded BPE cache, sharded so that threads rarely wait on one another.
class BpeCache {
 public:
  explicit BpeCache(int64_t capacity)
      : per_shard_(capacity <= 0 ? 0 : static_cast<size_t>((capacity + kShards - 1) / kShards)) {}
  bool enabled() const { return per_shard_ > 0; }
  bool get(const std::string& key, size_t hash, std::vector<int32_t>& out) const {
    Shard& s = shards_[hash % kShards];
    std::lock_guard<std::mutex> lock(s.mutex);
    auto it = s.map.find(key);
    if (it == s.map.end()) return false;
    out.insert(out.end(), it->second.begin(), it->second.end());
    return true;
  }
  void put(const std::string& key, size_t hash, const int32_t* ids, size_t n) const {
    Shard& s = shards_[hash % kShards];
    std::lock_guard<std::mutex> lock(s.mutex);
    // A full shard starts over: simple, bounded, and typical text refills it with what it uses.
    if (s.map.size() >= per_shard_) s.map.clear();
    s.map.emplace(key, std::vector<int32_t>(ids, ids + n));
  }

 private:
  static constexpr int64_t kShards = 64;
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>> map;
  };
  size_t per_shard_;
  mutable std::array<Shard, kShards> shards_;
};

std::string shorten(std::string_view s, size_t max_bytes = 80) {
  if (s.size() <= max_bytes) return std::string(s);
  size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // whole characters
  return std::string(s.substr(0, cut)) + "...";
}

}  // namespace

namespace {

// A vocabulary given as {token: id} (HuggingFace's vocab.json), instead of derived from the merges.
using ExplicitVocab = std::unordered_map<std::string, int32_t>;

// CLIP's byte-level BPE (type "clip_bpe").
class ClipBpe final : public Tokenizer::Impl {
 public:
  ClipBpe(const std::vector<std::pair<std::string, std::string>>& merges, const std::string& source,
          const TokenizerOptions& options, const ExplicitVocab* explicit_vocab = nullptr)
      : sot_token_(options.sot_token),
        eot_token_(options.eot_token),
        cache_(options.cache_capacity) {
    for (const std::string* special : {&sot_token_, &eot_token_}) {
      bool ascii = special->size() >= 2 && (*special)[0] == '<' && special->back() == '>';
      for (char ch : *special) ascii = ascii && ch > ' ' && static_cast<unsigned char>(ch) < 0x7F;
      if (!ascii || sot_token_ == eot_token_)
        throw Error(ErrorCode::kInvalidArgument,
                    "tokenizer special tokens must be distinct printable-ASCII "
                    "<...> strings, got '" +
                        shorten(*special) + "'");
      std::u32string u;
      for (char ch : *special) u.push_back(static_cast<char32_t>(ch));
      (special == &sot_token_ ? specials_.sot : specials_.eot) = u;
    }
    if (explicit_vocab != nullptr) {
      init_explicit(merges, source, *explicit_vocab);
    } else {
      init_derived(merges, source);
    }
    type = "clip_bpe";
    sot_token = sot_token_;
    eot_token = eot_token_;
    sot = sot_;
    eot = eot_;
    pad = 0;
    vocab_size = static_cast<int64_t>(vocab_.size());
    num_merges = num_merges_;
  }

  // OpenAI's vocabulary: byte symbols, the same with </w>, one token per merge, the specials.
  void init_derived(const std::vector<std::pair<std::string, std::string>>& merges,
                    const std::string& source) {
    const ByteAlphabet& ab = alphabet();
    vocab_.reserve(512 + merges.size() + 2);
    for (int i = 0; i < 256; ++i) vocab_.push_back(byte_symbol(ab.order[i]));
    for (int i = 0; i < 256; ++i) vocab_.push_back(byte_symbol(ab.order[i]) + kEow);
    for (size_t i = 0; i < merges.size(); ++i) {
      const auto& [a, b] = merges[i];
      if (a.empty() || b.empty() || !utf8::is_valid(a) || !utf8::is_valid(b)) {
        throw Error(ErrorCode::kInvalidConfig,
                    source + ": merge " + std::to_string(i + 1) + " is empty or not UTF-8");
      }
      for (const std::string* part : {&a, &b}) {
        for (char32_t c : utf8::decode(*part)) {
          if (ab.to_byte.find(c) == ab.to_byte.end()) {
            throw Error(ErrorCode::kInvalidConfig,
                        source + ": merge " + std::to_string(i + 1) + " ('" + shorten(a) + " " +
                            shorten(b) + "') has a character outside the byte alphabet");
          }
        }
      }
      vocab_.push_back(a + b);
    }
    vocab_.push_back(sot_token_);
    vocab_.push_back(eot_token_);
    // dict(zip(vocab, range(len(vocab)))): a repeated token keeps its last id.
    encoder_.reserve(vocab_.size());
    for (size_t i = 0; i < vocab_.size(); ++i) encoder_[vocab_[i]] = static_cast<int32_t>(i);
    for (int b = 0; b < 256; ++b) {
      byte_id_[b] = encoder_.at(byte_symbol(static_cast<uint8_t>(b)));
      byte_eow_id_[b] = encoder_.at(byte_symbol(static_cast<uint8_t>(b)) + kEow);
    }
    // dict(zip(merges, range(len(merges)))): a repeated pair keeps its last rank.
    for (size_t i = 0; i < merges.size(); ++i) {
      const auto& [a, b] = merges[i];
      auto ia = encoder_.find(a), ib = encoder_.find(b);
      if (ia == encoder_.end() || ib == encoder_.end()) continue;  // can never be adjacent symbols
      merges_.set(ia->second, ib->second, static_cast<int32_t>(i), encoder_.at(a + b));
    }
    num_merges_ = static_cast<int64_t>(merges.size());
    sot_ = encoder_.at(sot_token_);
    eot_ = encoder_.at(eot_token_);
    init_bytes();
  }

  // vocab.json gives every id; the merges only rank pairs. Every byte symbol (with and without
  // </w>), both specials and every merge result must be in it, ids 0..n-1 each used once.
  void init_explicit(const std::vector<std::pair<std::string, std::string>>& merges,
                     const std::string& source, const ExplicitVocab& vocab) {
    vocab_.assign(vocab.size(), std::string());
    std::vector<bool> used(vocab.size(), false);
    for (const auto& [tok, id] : vocab) {
      if (id < 0 || static_cast<size_t>(id) >= vocab.size() || used[static_cast<size_t>(id)])
        throw Error(ErrorCode::kInvalidConfig,
                    source + ": id " + std::to_string(id) + " of token '" + shorten(tok) +
                        "' is repeated or outside 0.." + std::to_string(vocab.size() - 1) +
                        " (ids must number the tokens 0..n-1)");
      used[static_cast<size_t>(id)] = true;
      vocab_[static_cast<size_t>(id)] = tok;
    }
    encoder_ = vocab;
    auto need = [&](const std::string& tok, const std::string& what) {
      auto it = encoder_.find(tok);
      if (it == encoder_.end())
        throw Error(ErrorCode::kInvalidConfig,
                    source + ": " + what + " '" + shorten(tok) + "' is not in the vocabulary");
      return it->second;
    };
    for (int b = 0; b < 256; ++b) {
      byte_id_[b] = need(byte_symbol(static_cast<uint8_t>(b)), "byte symbol");
      byte_eow_id_[b] = need(byte_symbol(static_cast<uint8_t>(b)) + kEow, "byte symbol");
    }
    for (size_t i = 0; i < merges.size(); ++i) {
      const auto& [a, b] = merges[i];
      if (a.empty() || b.empty() || !utf8::is_valid(a) || !utf8::is_valid(b))
        throw Error(ErrorCode::kInvalidConfig,
                    source + ": merge " + std::to_string(i + 1) + " is empty or not UTF-8");
      auto ia = encoder_.find(a), ib = encoder_.find(b);
      if (ia == encoder_.end() || ib == encoder_.end()) continue;  // can never be adjacent symbols
      merges_.set(ia->second, ib->second, static_cast<int32_t>(i),
                  need(a + b, "merge " + std::to_string(i + 1) + " result"));
    }
    num_merges_ = static_cast<int64_t>(merges.size());
    sot_ = need(sot_token_, "special token");
    eot_ = need(eot_token_, "special token");
    init_bytes();
  }

  void init_bytes() {
    const ByteAlphabet& ab = alphabet();
    // What decode() emits per id: the token's bytes, with a literal "</w>" kept for later.
    bytes_.reserve(vocab_.size());
    for (const std::string& tok : vocab_) {
      std::string raw;
      for (char32_t c : utf8::decode(tok)) {
        auto it = ab.to_byte.find(c);
        raw.push_back(static_cast<char>(it != ab.to_byte.end() ? it->second : '?'));
      }
      bytes_.push_back(std::move(raw));
    }
  }

  std::vector<int32_t> encode(std::string_view input) const override {
    std::vector<int32_t> ids;
    std::string piece;
    std::vector<int32_t> word;
    std::string ascii;
    if (text::ascii_fast_path(input, ascii)) {
      ids.reserve(ascii.size() / 3 + 4);
      for (const text::Piece& p : text::split_pieces(std::string_view(ascii), specials_)) {
        piece.assign(ascii, p.begin, p.end - p.begin);
        encode_any_piece(piece, ids, word);
      }
      return ids;
    }
    const std::u32string norm = text::normalize_text(input);
    const std::vector<text::Piece> pieces = text::split_pieces(norm, specials_);
    ids.reserve(norm.size() / 2 + 4);
    for (const text::Piece& p : pieces) {
      piece.clear();
      for (size_t i = p.begin; i < p.end; ++i) utf8::append(piece, norm[i]);
      encode_any_piece(piece, ids, word);
    }
    return ids;
  }

  void encode_any_piece(const std::string& piece, std::vector<int32_t>& ids,
                        std::vector<int32_t>& word) const {
    // SimpleTokenizer's cache starts with the two specials mapped to themselves.
    if (piece.size() >= 2 && piece[0] == '<') {
      if (piece == sot_token_) {
        ids.push_back(sot_);
        return;
      }
      if (piece == eot_token_) {
        ids.push_back(eot_);
        return;
      }
    }
    encode_piece(piece, ids, word);
  }

  void encode_piece(const std::string& piece, std::vector<int32_t>& ids,
                    std::vector<int32_t>& word) const {
    const bool use_cache = cache_.enabled() && piece.size() <= kMaxCachedPieceBytes;
    size_t hash = 0;
    if (use_cache) {
      hash = std::hash<std::string>{}(piece);
      if (cache_.get(piece, hash, ids)) return;
    }
    word.clear();
    for (size_t i = 0; i < piece.size(); ++i) {
      const auto b = static_cast<uint8_t>(piece[i]);
      word.push_back(i + 1 == piece.size() ? byte_eow_id_[b] : byte_id_[b]);
    }
    text::bpe_merge(merges_, word);
    if (use_cache) cache_.put(piece, hash, word.data(), word.size());
    ids.insert(ids.end(), word.begin(), word.end());
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string raw;
    for (int32_t id : ids) raw += bytes_of(id);
    std::string text = utf8::encode(utf8::decode(raw));
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      if (text.compare(i, 4, kEow) == 0) {
        out.push_back(' ');
        i += 4;
      } else {
        out.push_back(text[i++]);
      }
    }
    return out;
  }

  const std::string& bytes_of(int32_t id) const {
    check_id(id);
    return bytes_[static_cast<size_t>(id)];
  }
  std::string token(int32_t id) const override {
    check_id(id);
    return vocab_[static_cast<size_t>(id)];
  }
  void check_id(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= vocab_.size()) {
      throw Error(ErrorCode::kInvalidArgument, "token id " + std::to_string(id) +
                                                   " is outside the vocabulary [0, " +
                                                   std::to_string(vocab_.size()) + ")");
    }
  }

  std::string sot_token_, eot_token_;
  text::Specials specials_;
  int32_t sot_ = 0, eot_ = 0;
  int64_t num_merges_ = 0;
  std::vector<std::string> vocab_;
  std::vector<std::string> bytes_;

 private:
  static constexpr size_t kMaxCachedPieceBytes = 256;
  std::unordered_map<std::string, int32_t> encoder_;
  std::array<int32_t, 256> byte_id_{}, byte_eow_id_{};
  text::MergeTable merges_;
  BpeCache cache_;
};

std::string read_vocab_file(const std::string& path) {
  io::Fd fd = io::open_regular_file(path, "BPE vocabulary file",
                                    {kMaxVocabFileBytes, ErrorCode::kInvalidConfig}, nullptr);
  gzFile f = gzdopen(fd.get(), "rb");
  if (f == nullptr)
    throw Error(ErrorCode::kIo, "BPE vocabulary file '" + path + "': cannot read it with zlib");
  fd.release();  // gzclose closes it
  std::string data;
  std::array<char, 1 << 16> buf;
  for (;;) {
    const int n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int errnum = 0;
      const std::string msg = gzerror(f, &errnum);
      gzclose(f);
      throw Error(ErrorCode::kInvalidConfig,
                  "BPE vocabulary file '" + path + "' is corrupt: " + msg);
    }
    if (n == 0) break;
    data.append(buf.data(), static_cast<size_t>(n));
    if (data.size() > kMaxVocabFileBytes) {
      gzclose(f);
      throw Error(ErrorCode::kInvalidConfig, "BPE vocabulary file '" + path + "' is larger than " +
                                                 std::to_string(kMaxVocabFileBytes >> 20) + " MiB");
    }
  }
  int errnum = 0;
  const char* msg = gzerror(f, &errnum);
  if (errnum != Z_OK) {
    const std::string m = msg;
    gzclose(f);
    throw Error(ErrorCode::kInvalidConfig, "BPE vocabulary file '" + path + "' is corrupt: " + m);
  }
  gzclose(f);
  return data;
}

bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

}  // namespace

namespace {

// The merge pairs of a merges file's text (header line first), as SimpleTokenizer and
// CLIPTokenizer read them: at most 48894 unless num_merges says how many.
std::vector<std::pair<std::string, std::string>> parse_merges(const std::string& data,
                                                              const std::string& path,
                                                              int64_t num_merges) {
  if (data.empty())
    throw Error(ErrorCode::kInvalidConfig, "BPE vocabulary file '" + path + "' is empty");
  if (!utf8::is_valid(data)) {
    throw Error(ErrorCode::kInvalidConfig, "BPE vocabulary file '" + path + "' is not valid UTF-8");
  }
  std::vector<std::string_view> lines;
  for (size_t pos = 0;;) {
    const size_t nl = data.find('\n', pos);
    if (nl == std::string::npos) {
      lines.emplace_back(data.data() + pos, data.size() - pos);
      break;
    }
    lines.emplace_back(data.data() + pos, nl - pos);
    pos = nl + 1;
  }
  // Python's split('\n') leaves one empty string after a final newline; it is no merge.
  size_t available = lines.size() - 1;
  if (available > 0 && lines.back().empty()) --available;
  // SimpleTokenizer reads at most 49152 - 256 - 2 = 48894 merges whatever the file holds; a
  // smaller vocabulary of a model's own BPE is read whole.
  size_t wanted = std::min<size_t>(available, kOpenAIMaxMerges);
  if (num_merges >= 0) {
    if (static_cast<uint64_t>(num_merges) > available) {
      throw Error(ErrorCode::kInvalidConfig,
                  "BPE vocabulary file '" + path + "' has " + std::to_string(available) +
                      " merge lines, fewer than num_merges = " + std::to_string(num_merges));
    }
    wanted = static_cast<size_t>(num_merges);
  }
  if (wanted == 0 && num_merges != 0) {
    throw Error(ErrorCode::kInvalidConfig, "BPE vocabulary file '" + path + "' has no merge lines");
  }
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(wanted);
  for (size_t i = 1; i <= wanted; ++i) {
    std::string_view line = lines[i];
    std::vector<std::string_view> parts;
    size_t k = 0;
    while (k < line.size()) {
      while (k < line.size() && is_ascii_space(line[k])) ++k;
      const size_t start = k;
      while (k < line.size() && !is_ascii_space(line[k])) ++k;
      if (k > start) parts.push_back(line.substr(start, k - start));
    }
    if (parts.size() != 2) {
      throw Error(ErrorCode::kInvalidConfig,
                  "BPE vocabulary file '" + path + "' line " + std::to_string(i + 1) +
                      " is not a merge of two symbols: '" + shorten(line) + "'");
    }
    merges.emplace_back(std::string(parts[0]), std::string(parts[1]));
  }
  return merges;
}

void check_options(const TokenizerOptions& options) {
  if (options.context_length < 2)
    throw Error(ErrorCode::kInvalidArgument,
                "TokenizerOptions.context_length must be at least 2 (sot and eot), got " +
                    std::to_string(options.context_length));
  if (options.num_merges < -1) {
    throw Error(ErrorCode::kInvalidArgument,
                "TokenizerOptions.num_merges must be -1 or >= 0, got " +
                    std::to_string(options.num_merges));
  }
}

}  // namespace

Tokenizer Tokenizer::from_file(const std::string& path, const TokenizerOptions& options) {
  check_options(options);
  const std::string data = read_vocab_file(path);
  return Tokenizer(std::make_shared<const ClipBpe>(parse_merges(data, path, options.num_merges),
                                                   "BPE vocabulary file '" + path + "'", options),
                   options.context_length);
}

Tokenizer Tokenizer::from_hf_files(const std::string& vocab_json, const std::string& merges_txt,
                                   const TokenizerOptions& options) {
  check_options(options);
  const std::string merges_data = read_vocab_file(merges_txt);
  auto merges = parse_merges(merges_data, merges_txt, options.num_merges);
  const std::string vocab_data = read_vocab_file(vocab_json);
  const std::string origin = "vocabulary file '" + vocab_json + "'";
  ExplicitVocab vocab;
  try {
    const nlohmann::json j = nlohmann::json::parse(vocab_data);
    if (!j.is_object() || j.empty())
      throw Error(ErrorCode::kInvalidConfig,
                  origin + ": expected a non-empty JSON object {token: id}");
    vocab.reserve(j.size());
    for (const auto& [tok, id] : j.items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
        throw Error(ErrorCode::kInvalidConfig, origin + ": token '" + shorten(tok) + "' has id " +
                                                   shorten(id.dump()) +
                                                   ", not a non-negative integer");
      vocab.emplace(tok, static_cast<int32_t>(id.get<int64_t>()));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kInvalidConfig, origin + ": not valid JSON (" + e.what() + ")");
  }
  return Tokenizer(std::make_shared<const ClipBpe>(
                       merges, "'" + vocab_json + "' + '" + merges_txt + "'", options, &vocab),
                   options.context_length);
}

Tokenizer Tokenizer::from_config(const ModelConfig& c, int64_t cache_capacity) {
  if (c.tokenizer.type == "sentencepiece") {
    SentencePieceOptions o;
    o.clean = c.tokenizer.clean == "canonicalize" ? TextCleaning::kCanonicalize
              : c.tokenizer.clean == "siglip_hf"  ? TextCleaning::kSiglipHF
                                                  : TextCleaning::kNone;
    o.ftfy = c.tokenizer.ftfy;
    o.context_length = c.text.context_length;
    o.pad_id = static_cast<int32_t>(c.tokenizer.pad_id);
    o.eos_id = static_cast<int32_t>(c.tokenizer.eos_id);
    o.bos_id = static_cast<int32_t>(c.tokenizer.bos_id);
    o.add_eos = c.tokenizer.add_eos;
    Tokenizer tok = from_sentencepiece(c.tokenizer_path(), o);
    // The embedding may have more rows than the vocabulary has pieces, never fewer.
    if (c.text.vocab_size > 0 && tok.vocab_size() > c.text.vocab_size)
      throw Error(ErrorCode::kInvalidModel,
                  c.tokenizer_path() + ": vocabulary has " + std::to_string(tok.vocab_size()) +
                      " tokens, more than " + c.path_of("config.json") +
                      " field 'text.vocab_size' (" + std::to_string(c.text.vocab_size) + ")");
    return tok;
  }
  TokenizerOptions o;
  o.num_merges = c.tokenizer.num_merges;
  o.cache_capacity = cache_capacity;
  o.sot_token = c.tokenizer.sot_token;
  o.eot_token = c.tokenizer.eot_token;
  if (c.text.context_length > 0) o.context_length = c.text.context_length;
  Tokenizer tok = c.tokenizer.format == TokenizerFormat::kHF
                      ? from_hf_files(c.tokenizer_path(), c.merges_path(), o)
                      : from_file(c.tokenizer_path(), o);
  if (c.text.vocab_size > 0 && tok.vocab_size() != c.text.vocab_size)
    throw Error(ErrorCode::kInvalidModel,
                c.tokenizer_path() + ": vocabulary has " + std::to_string(tok.vocab_size()) +
                    " tokens, but " + c.path_of("config.json") + " field 'text.vocab_size' is " +
                    std::to_string(c.text.vocab_size));
  return tok;
}

Tokenizer Tokenizer::from_merges(const std::vector<std::pair<std::string, std::string>>& merges,
                                 const TokenizerOptions& options) {
  check_options(options);
  return Tokenizer(std::make_shared<const ClipBpe>(merges, "merges", options),
                   options.context_length);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const { return impl_->encode(text); }

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const { return impl_->decode(ids); }

namespace {

int64_t special_count(const Tokenizer::Impl& impl) {
  return (impl.sot >= 0 ? 1 : 0) + (impl.eot >= 0 ? 1 : 0);
}

void check_context(const Tokenizer::Impl& impl, int64_t context_length) {
  const int64_t least = std::max<int64_t>(1, special_count(impl));
  if (context_length < least)
    throw Error(ErrorCode::kInvalidArgument,
                "context_length must be at least " + std::to_string(least) +
                    (impl.sot >= 0 && impl.eot >= 0 ? " (sot and eot)" : "") + ", got " +
                    std::to_string(context_length));
}

}  // namespace

std::vector<int32_t> Tokenizer::encode_with_specials(std::string_view text, int64_t context_length,
                                                     bool truncate, int64_t* full_length) const {
  if (context_length == 0) context_length = context_length_;
  check_context(*impl_, context_length);
  std::vector<int32_t> body = impl_->encode(text);
  // [sot] + body + [eot], cut to the context by dropping body ids: clip.tokenize(truncate=True)
  // (keep context_length ids, the last replaced by eot) and HF's truncation (body[:context -
  // specials], then the specials) give the same ids.
  const int64_t specials = special_count(*impl_);
  const int64_t full = static_cast<int64_t>(body.size()) + specials;
  if (full_length != nullptr) *full_length = full;
  if (full > context_length) {
    if (!truncate) {
      throw Error(ErrorCode::kInvalidText,
                  "Input '" + shorten(text) + "' is too long for context length " +
                      std::to_string(context_length) + ": " + std::to_string(full) + " tokens");
    }
    body.resize(static_cast<size_t>(context_length - specials));
  }
  std::vector<int32_t> ids;
  ids.reserve(body.size() + 2);
  if (impl_->sot >= 0) ids.push_back(impl_->sot);
  ids.insert(ids.end(), body.begin(), body.end());
  if (impl_->eot >= 0 && !(impl_->eot_if_absent && !body.empty() && body.back() == impl_->eot))
    ids.push_back(impl_->eot);
  return ids;
}

IdTensor Tokenizer::tokenize(const std::vector<std::string>& texts, int64_t context_length,
                             bool truncate) const {
  if (context_length == 0) context_length = context_length_;
  check_context(*impl_, context_length);
  IdTensor out({static_cast<int64_t>(texts.size()), context_length}, impl_->pad);
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<int32_t> ids = encode_with_specials(texts[i], context_length, truncate);
    int64_t* row = out.row(static_cast<int64_t>(i));
    for (size_t j = 0; j < ids.size(); ++j) row[j] = ids[j];
  }
  return out;
}

const std::string& Tokenizer::type() const { return impl_->type; }
const std::string& Tokenizer::sot_token() const { return impl_->sot_token; }
const std::string& Tokenizer::eot_token() const { return impl_->eot_token; }
int32_t Tokenizer::sot_id() const { return impl_->sot; }
int32_t Tokenizer::eot_id() const { return impl_->eot; }
int32_t Tokenizer::pad_id() const { return impl_->pad; }
int64_t Tokenizer::vocab_size() const { return impl_->vocab_size; }
int64_t Tokenizer::num_merges() const { return impl_->num_merges; }
std::string Tokenizer::token(int32_t id) const { return impl_->token(id); }

}  // namespace zsclip
