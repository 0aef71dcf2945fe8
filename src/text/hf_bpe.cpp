// tokenizer.json of the Gemma kind. What HF tokenizers (Rust) and transformers.js do with such a
// file, and so what this does:
//   1. the added tokens are cut out of the raw text, leftmost first, the longest where several
//      start at one place (normalized false: matched before normalization); lstrip / rstrip trim
//      whitespace from the neighbouring parts;
//   2. each other part, when not empty, is normalized (Prepend, Replace of a literal string);
//   3. the part is one word (the Split pre-tokenizer accepted here has nothing left to split) and
//      is merged from its characters: the adjacent pair with the lowest merge rank first, the
//      leftmost among equal ranks, until no pair has a rank;
//   4. each symbol maps to its id; one outside the vocabulary becomes its UTF-8 bytes as <0xNN>
//      pieces when all exist, else unk; with fuse_unk, consecutive unks are one.
#include "text/hf_bpe.h"

#include <simdjson.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <queue>

#include "text/unicode.h"
#include "zsclip/error.h"
#include "zsclip/io.h"

namespace zsclip::text {
namespace {

constexpr uint64_t kMaxJsonBytes = uint64_t{1} << 30;  // Gemma 3's is 33 MB
constexpr const char* kKind =
    " (zsclip reads tokenizer.json files of the Gemma kind only: model \"BPE\" with byte_fallback, "
    "normalizer Replace \" \" -> \"\u2581\", no pre-tokenizer or a Split on \" \")";

using simdjson::dom::element;
using simdjson::dom::element_type;

size_t hash_piece(std::string_view s) { return std::hash<std::string_view>{}(s); }

// The file, read into simdjson's padded buffer (parsed in place, not copied again).
simdjson::padded_string read_padded(const std::string& path) {
  uint64_t size = 0;
  io::Fd fd = io::open_regular_file(path, "tokenizer.json",
                                    {kMaxJsonBytes, ErrorCode::kInvalidConfig}, &size);
  simdjson::padded_string data(static_cast<size_t>(size));
  size_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd.get(), data.data() + got, static_cast<size_t>(size) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) io::throw_errno(errno, "tokenizer.json", path, "cannot read");
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got != size)
    throw Error(ErrorCode::kIo, "tokenizer.json '" + path + "': shrank while being read");
  return data;
}

uint64_t mix(uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// Open-addressing tables are at most 3/4 full.
size_t table_size(size_t n) {
  size_t cap = 16;
  while (cap / 4 * 3 < n + 1) cap <<= 1;
  return cap;
}

// JavaScript's String.prototype.trim whitespace (WhiteSpace and LineTerminator).
bool is_js_space(char32_t c) {
  return c == 0x09 || c == 0x0A || c == 0x0B || c == 0x0C || c == 0x0D || c == 0x20 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

std::string trim_js(std::string_view s, bool left, bool right) {
  std::u32string u = utf8::decode(s);
  size_t b = 0, e = u.size();
  if (left)
    while (b < e && is_js_space(u[b])) ++b;
  if (right)
    while (e > b && is_js_space(u[e - 1])) --e;
  return utf8::encode(std::u32string_view(u).substr(b, e - b));
}

size_t utf8_length(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

class Reader {
 public:
  explicit Reader(const std::string& path) : origin_("tokenizer.json '" + path + "'") {}

  [[noreturn]] void corrupt(const std::string& field, const std::string& what) const {
    throw Error(ErrorCode::kInvalidConfig, origin_ + ": field '" + field + "' " + what);
  }
  [[noreturn]] void unsupported(const std::string& field, const std::string& what) const {
    throw Error(ErrorCode::kUnsupported, origin_ + ": " + field + " " + what + kKind);
  }
  // The member `key` of `obj`, or a null element when absent.
  bool get(element obj, const char* key, element& out) const { return !obj.at_key(key).get(out); }
  element need(element obj, const std::string& path, const char* key) const {
    element out;
    if (!get(obj, key, out)) corrupt(path + key, "is missing");
    return out;
  }
  std::string_view string(element e, const std::string& field) const {
    std::string_view s;
    if (e.get_string().get(s)) corrupt(field, "must be a string");
    return s;
  }
  bool boolean(element obj, const std::string& path, const char* key, bool fallback) const {
    element e;
    if (!get(obj, key, e) || e.is_null()) return fallback;
    bool b = false;
    if (e.get_bool().get(b)) corrupt(path + key, "must be true or false");
    return b;
  }
  int32_t id(element e, const std::string& field) const {
    int64_t v = -1;
    if (e.get_int64().get(v) || v < 0 || v >= INT32_MAX)
      corrupt(field, "must be an id (a non-negative integer)");
    return static_cast<int32_t>(v);
  }
  const std::string& origin() const { return origin_; }

 private:
  std::string origin_;
};

std::string show(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 60)) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else
      out.push_back(c);
  }
  return out + (s.size() > 60 ? "...\"" : "\"");
}

}  // namespace

HfBpe::HfBpe(const std::string& path) : path_(path) {
  const simdjson::padded_string data = read_padded(path);
  const Reader r(path);
  simdjson::dom::parser parser;
  element doc;
  if (const auto err = parser.parse(data).get(doc))
    throw Error(ErrorCode::kInvalidConfig,
                r.origin() + ": not valid JSON (" + simdjson::error_message(err) + ")");
  if (!doc.is_object()) throw Error(ErrorCode::kInvalidConfig, r.origin() + ": not a JSON object");

  // ---- model ----
  const element model = r.need(doc, "", "model");
  if (!model.is_object()) r.corrupt("model", "must be an object");
  element type;
  if (!r.get(model, "type", type) || type.is_null())
    r.unsupported("model.type", "is missing (older files without it are not read)");
  const std::string_view type_name = r.string(type, "model.type");
  if (type_name != "BPE")
    r.unsupported("model.type", "\"" + std::string(type_name) + "\" is not supported");
  if (!r.boolean(model, "model.", "byte_fallback", false))
    r.unsupported("model.byte_fallback", "is not true (a byte-level or plain BPE)");
  element e;
  if (r.get(model, "dropout", e) && !e.is_null()) {
    double d = 0;
    if (e.get_double().get(d) || d != 0.0) r.unsupported("model.dropout", "is set");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (r.get(model, key, e) && !e.is_null() && !r.string(e, std::string("model.") + key).empty())
      r.unsupported(std::string("model.") + key, "is set");
  fuse_unk_ = r.boolean(model, "model.", "fuse_unk", false);
  ignore_merges_ = r.boolean(model, "model.", "ignore_merges", false);

  // ---- vocab: piece -> id, and the added tokens ----
  const element vocab = r.need(model, "model.", "vocab");
  simdjson::dom::object vocab_obj;
  if (vocab.get_object().get(vocab_obj)) r.corrupt("model.vocab", "must be an object");
  std::vector<std::pair<std::string_view, int32_t>> entries;
  entries.reserve(vocab_obj.size());
  int64_t max_id = -1;
  for (auto field : vocab_obj) {
    int64_t v = -1;
    if (field.value.get_int64().get(v) || v < 0 || v >= INT32_MAX)
      r.corrupt("model.vocab." + std::string(field.key), "must be an id (a non-negative integer)");
    const auto id = static_cast<int32_t>(v);
    entries.emplace_back(field.key, id);
    max_id = std::max<int64_t>(max_id, id);
  }
  const element added = r.need(doc, "", "added_tokens");
  simdjson::dom::array added_arr;
  if (added.get_array().get(added_arr)) r.corrupt("added_tokens", "must be an array");
  size_t k = 0;
  for (element a : added_arr) {
    const std::string field = "added_tokens[" + std::to_string(k++) + "]";
    if (!a.is_object()) r.corrupt(field, "must be an object");
    Added t;
    t.content = std::string(r.string(r.need(a, field + ".", "content"), field + ".content"));
    t.id = r.id(r.need(a, field + ".", "id"), field + ".id");
    if (t.content.empty()) r.corrupt(field + ".content", "is empty");
    t.lstrip = r.boolean(a, field + ".", "lstrip", false);
    t.rstrip = r.boolean(a, field + ".", "rstrip", false);
    if (r.boolean(a, field + ".", "single_word", false))
      r.unsupported(field + ".single_word", "is true");
    if (r.boolean(a, field + ".", "normalized", false))
      r.unsupported(field + ".normalized", "is true (" + show(t.content) + ")");
    max_id = std::max<int64_t>(max_id, t.id);
    added_.push_back(std::move(t));
  }
  if (max_id < 0) r.corrupt("model.vocab", "is empty");
  // Pieces by id; a vocabulary entry and an added token may share an id only with one content.
  std::vector<std::string_view> by_id(static_cast<size_t>(max_id) + 1);
  std::vector<bool> used(by_id.size(), false);
  for (const auto& [piece, id] : entries) {
    if (used[static_cast<size_t>(id)])
      r.corrupt("model.vocab", "gives id " + std::to_string(id) + " to " + show(piece) +
                                   " and to " + show(by_id[static_cast<size_t>(id)]));
    used[static_cast<size_t>(id)] = true;
    by_id[static_cast<size_t>(id)] = piece;
  }
  for (const Added& t : added_) {
    auto& slot = by_id[static_cast<size_t>(t.id)];
    if (used[static_cast<size_t>(t.id)] && slot != t.content)
      r.corrupt("added_tokens", "gives id " + std::to_string(t.id) + " to " + show(t.content) +
                                    ", which is " + show(slot) + " in model.vocab");
    used[static_cast<size_t>(t.id)] = true;
    slot = t.content;
  }
  size_t total = 0;
  for (std::string_view p : by_id) total += p.size();
  arena_.reserve(total);
  offsets_.reserve(by_id.size() + 1);
  for (std::string_view p : by_id) {
    offsets_.push_back(static_cast<uint32_t>(arena_.size()));
    arena_.append(p);
  }
  offsets_.push_back(static_cast<uint32_t>(arena_.size()));
  index_pieces();
  for (const auto& [piece, id] : entries)
    if (find(piece) != id) r.corrupt("model.vocab", "holds " + show(piece) + " twice");

  element unk;
  if (r.get(model, "unk_token", unk) && !unk.is_null()) {
    const std::string_view u = r.string(unk, "model.unk_token");
    unk_id_ = find(u);
    if (unk_id_ < 0) r.corrupt("model.unk_token", show(u) + " is not in model.vocab");
  }
  static const char* kHex = "0123456789ABCDEF";
  bool all_bytes = true;
  for (int b = 0; b < 256; ++b) {
    const std::string piece = std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">";
    byte_ids_[static_cast<size_t>(b)] = find(piece);
    all_bytes = all_bytes && byte_ids_[static_cast<size_t>(b)] >= 0;
  }
  if (!all_bytes && unk_id_ < 0)
    r.corrupt("model.unk_token",
              "is missing, and not every byte has its <0xNN> piece (byte fallback needs one)");

  // ---- merges ----
  const element merges = r.need(model, "model.", "merges");
  simdjson::dom::array merges_arr;
  if (merges.get_array().get(merges_arr)) r.corrupt("model.merges", "must be an array");
  merge_keys_.assign(table_size(merges_arr.size()), ~uint64_t{0});
  merge_values_.assign(merge_keys_.size(), Merge{0, 0});
  int32_t rank = 0;
  std::string joined;
  for (element m : merges_arr) {
    const auto field = [&] { return "model.merges[" + std::to_string(rank) + "]"; };
    std::string_view a, b;
    simdjson::dom::array pair;
    if (!m.get_array().get(pair)) {
      auto it = pair.begin();
      if (pair.size() != 2 || (*it).get_string().get(a) || (*++it).get_string().get(b))
        r.corrupt(field(), "must be a pair of pieces");
    } else {
      if (m.get_string().get(a)) r.corrupt(field(), "must be a pair or a string");
      const std::string_view s = a;
      const size_t space = s.find(' ');
      if (space == std::string_view::npos || s.find(' ', space + 1) != std::string_view::npos)
        r.corrupt(field(), "must be two pieces separated by one space, got " + show(s));
      a = s.substr(0, space);
      b = s.substr(space + 1);
    }
    const int32_t ia = find(a), ib = find(b);
    joined.assign(a).append(b);
    const int32_t result = find(joined);
    if (ia < 0 || ib < 0 || result < 0)
      r.corrupt(field(), "(" + show(a) + " " + show(b) + ") uses a piece not in model.vocab");
    add_merge(ia, ib, rank, result);
    ++rank;
  }
  num_merges_ = rank;

  // ---- normalizer ----
  element norm;
  if (r.get(doc, "normalizer", norm) && !norm.is_null()) {
    std::vector<std::pair<element, std::string>> steps;
    std::string_view kind = r.string(r.need(norm, "normalizer.", "type"), "normalizer.type");
    if (kind == "Sequence") {
      simdjson::dom::array list;
      if (r.need(norm, "normalizer.", "normalizers").get_array().get(list))
        r.corrupt("normalizer.normalizers", "must be an array");
      size_t i = 0;
      for (element s : list)
        steps.emplace_back(s, "normalizer.normalizers[" + std::to_string(i++) + "]");
    } else {
      steps.emplace_back(norm, "normalizer");
    }
    for (const auto& [step, field] : steps) {
      kind = r.string(r.need(step, field + ".", "type"), field + ".type");
      NormStep n;
      if (kind == "Prepend") {
        n.prepend = true;
        n.content = std::string(r.string(r.need(step, field + ".", "prepend"), field + ".prepend"));
      } else if (kind == "Replace") {
        n.prepend = false;
        const element pattern = r.need(step, field + ".", "pattern");
        element lit;
        if (!r.get(pattern, "String", lit))
          r.unsupported(field + ".pattern", "is not a literal String (a Regex)");
        n.pattern = std::string(r.string(lit, field + ".pattern.String"));
        if (n.pattern.empty()) r.unsupported(field + ".pattern.String", "is empty");
        n.content = std::string(r.string(r.need(step, field + ".", "content"), field + ".content"));
      } else {
        r.unsupported(field + ".type", "\"" + std::string(kind) + "\" is not supported");
      }
      norm_.push_back(std::move(n));
    }
  }

  // ---- pre-tokenizer: none, or a Split on a string the normalizer has replaced everywhere ----
  element pre;
  if (r.get(doc, "pre_tokenizer", pre) && !pre.is_null()) {
    const std::string_view kind =
        r.string(r.need(pre, "pre_tokenizer.", "type"), "pre_tokenizer.type");
    if (kind != "Split")
      r.unsupported("pre_tokenizer.type", "\"" + std::string(kind) + "\" is not supported");
    element lit;
    if (!r.get(r.need(pre, "pre_tokenizer.", "pattern"), "String", lit))
      r.unsupported("pre_tokenizer.pattern", "is not a literal String (a Regex)");
    const std::string_view split_on = r.string(lit, "pre_tokenizer.pattern.String");
    if (r.boolean(pre, "pre_tokenizer.", "invert", false))
      r.unsupported("pre_tokenizer.invert", "is true");
    // After a Replace of split_on (by content without it), with no later step bringing it back,
    // normalized text holds no split_on: the Split leaves each part whole.
    bool removed = false;
    for (const NormStep& n : norm_) {
      if (!n.prepend && n.pattern == split_on && n.content.find(split_on) == std::string::npos)
        removed = true;
      else if (n.content.find(split_on) != std::string::npos)
        removed = false;
    }
    if (!removed || split_on.empty())
      r.unsupported("pre_tokenizer",
                    "splits on " + show(split_on) + ", which the normalizer does not replace");
  }

  // ---- the added tokens' trie ----
  trie_next_.clear();
  node_token_.assign(1, -1);
  std::vector<std::pair<uint64_t, int32_t>> edges;
  {
    // Build with a sorted edge list, then an open-addressing table.
    std::vector<std::vector<std::pair<uint8_t, int32_t>>> children(1);
    for (size_t i = 0; i < added_.size(); ++i) {
      int32_t node = 0;
      for (unsigned char c : added_[i].content) {
        int32_t next = -1;
        for (const auto& [byte, child] : children[static_cast<size_t>(node)])
          if (byte == c) next = child;
        if (next < 0) {
          next = static_cast<int32_t>(children.size());
          children.emplace_back();
          node_token_.push_back(-1);
          children[static_cast<size_t>(node)].emplace_back(c, next);
        }
        node = next;
      }
      node_token_[static_cast<size_t>(node)] = static_cast<int32_t>(i);  // a repeat: the last
      added_first_[static_cast<unsigned char>(added_[i].content[0])] = true;
    }
    for (size_t n = 0; n < children.size(); ++n)
      for (const auto& [byte, child] : children[n])
        edges.emplace_back((uint64_t{n} << 8) | byte, child);
  }
  trie_keys_.assign(table_size(edges.size()), ~uint64_t{0});
  trie_next_.assign(trie_keys_.size(), -1);
  for (const auto& [key, child] : edges) {
    size_t i = mix(key) & (trie_keys_.size() - 1);
    while (trie_keys_[i] != ~uint64_t{0}) i = (i + 1) & (trie_keys_.size() - 1);
    trie_keys_[i] = key;
    trie_next_[i] = child;
  }
}

void HfBpe::index_pieces() {
  table_.assign(table_size(size()), Slot{-1, 0});
  const size_t mask = table_.size() - 1;
  for (int32_t id = 0; id < size(); ++id) {
    const std::string_view p = piece(id);
    if (p.empty()) continue;  // an id no token has
    const size_t h = hash_piece(p);
    const auto tag = static_cast<uint32_t>(h >> 32);
    size_t i = h & mask;
    while (table_[i].id >= 0) {
      if (table_[i].tag == tag && piece(table_[i].id) == p) break;  // a repeat: the first id
      i = (i + 1) & mask;
    }
    if (table_[i].id < 0) table_[i] = Slot{id, tag};
  }
}

int32_t HfBpe::find(std::string_view p) const {
  if (p.empty()) return -1;
  const size_t mask = table_.size() - 1;
  const size_t h = hash_piece(p);
  const auto tag = static_cast<uint32_t>(h >> 32);
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& slot = table_[i];
    if (slot.id < 0) return -1;
    if (slot.tag == tag && piece(slot.id) == p) return slot.id;
  }
}

void HfBpe::add_merge(int32_t a, int32_t b, int32_t rank, int32_t result) {
  const uint64_t key = (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
  const size_t mask = merge_keys_.size() - 1;
  size_t i = mix(key) & mask;
  while (merge_keys_[i] != ~uint64_t{0} && merge_keys_[i] != key) i = (i + 1) & mask;
  merge_keys_[i] = key;
  merge_values_[i] = Merge{rank, result};  // a repeated pair keeps its last rank, as HF's maps
}

const HfBpe::Merge* HfBpe::find_merge(int32_t a, int32_t b) const {
  const uint64_t key = (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
  const size_t mask = merge_keys_.size() - 1;
  for (size_t i = mix(key) & mask;; i = (i + 1) & mask) {
    if (merge_keys_[i] == key) return &merge_values_[i];
    if (merge_keys_[i] == ~uint64_t{0}) return nullptr;
  }
}

std::string HfBpe::normalize(std::string_view text) const {
  std::string s(text);
  for (const NormStep& n : norm_) {
    if (n.prepend) {
      s = n.content + s;
      continue;
    }
    std::string out;
    out.reserve(s.size() + s.size() / 4);
    size_t pos = 0;
    for (size_t hit; (hit = s.find(n.pattern, pos)) != std::string::npos;
         pos = hit + n.pattern.size())
      out.append(s, pos, hit - pos).append(n.content);
    out.append(s, pos, std::string::npos);
    s = std::move(out);
  }
  return s;
}

int32_t HfBpe::match_added(std::string_view text, size_t pos) const {
  if (!added_first_[static_cast<unsigned char>(text[pos])]) return -1;
  const size_t mask = trie_keys_.size() - 1;
  int32_t node = 0, best = -1;
  for (size_t j = pos; j < text.size(); ++j) {
    const uint64_t key = (uint64_t(uint32_t(node)) << 8) | static_cast<unsigned char>(text[j]);
    size_t i = mix(key) & mask;
    while (trie_keys_[i] != key && trie_keys_[i] != ~uint64_t{0}) i = (i + 1) & mask;
    if (trie_keys_[i] != key) break;
    node = trie_next_[i];
    if (node_token_[static_cast<size_t>(node)] >= 0) best = node_token_[static_cast<size_t>(node)];
  }
  return best;
}

std::vector<int32_t> HfBpe::encode(std::string_view text_in) const {
  const std::string text = utf8::encode(utf8::decode(text_in));  // invalid UTF-8 -> U+FFFD
  // 1. Sections: text between added tokens, and the added tokens (index into added_).
  struct Section {
    std::string text;
    int32_t added;
  };
  std::vector<Section> sections;
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    const int32_t t = added_.empty() ? -1 : match_added(text, i);
    if (t < 0) {
      ++i;
      continue;
    }
    if (i > start) sections.push_back({text.substr(start, i - start), -1});
    sections.push_back({std::string(), t});
    i += added_[static_cast<size_t>(t)].content.size();
    start = i;
  }
  if (start < text.size()) sections.push_back({text.substr(start), -1});
  for (size_t i = 0; i < sections.size(); ++i) {
    if (sections[i].added < 0) continue;
    const Added& t = added_[static_cast<size_t>(sections[i].added)];
    if (t.lstrip && i > 0 && sections[i - 1].added < 0)
      sections[i - 1].text = trim_js(sections[i - 1].text, false, true);
    if (t.rstrip && i + 1 < sections.size() && sections[i + 1].added < 0)
      sections[i + 1].text = trim_js(sections[i + 1].text, true, false);
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  for (const Section& s : sections) {
    if (s.added >= 0) {
      ids.push_back(added_[static_cast<size_t>(s.added)].id);
      continue;
    }
    if (s.text.empty()) continue;
    const std::string normalized = normalize(s.text);
    if (!normalized.empty()) encode_section(normalized, ids);
  }
  return ids;
}

void HfBpe::encode_section(std::string_view word, std::vector<int32_t>& ids) const {
  if (ignore_merges_) {
    const int32_t whole = find(word);
    if (whole >= 0) {
      ids.push_back(whole);
      return;
    }
  }
  // Symbols: one per character at first, a doubly linked list; id -1 outside the vocabulary.
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    uint32_t begin, end;  // bytes of `word`
    bool alive;
  };
  std::vector<Symbol> sym;
  sym.reserve(word.size());
  for (size_t i = 0; i < word.size();) {
    const size_t n = std::min(utf8_length(static_cast<unsigned char>(word[i])), word.size() - i);
    const int32_t index = static_cast<int32_t>(sym.size());
    sym.push_back(Symbol{find(word.substr(i, n)), index - 1, index + 1, static_cast<uint32_t>(i),
                         static_cast<uint32_t>(i + n), true});
    i += n;
  }
  sym.back().next = -1;
  // Candidate merges keyed by (rank, position of the left symbol's first character); stale ones
  // are skipped when popped.
  struct Candidate {
    uint64_t key;
    int32_t left, right, left_id, right_id;
    bool operator>(const Candidate& o) const { return key > o.key; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push = [&](int32_t left) {
    const int32_t right = sym[static_cast<size_t>(left)].next;
    if (right < 0) return;
    const int32_t a = sym[static_cast<size_t>(left)].id, b = sym[static_cast<size_t>(right)].id;
    if (a < 0 || b < 0) return;
    const Merge* m = find_merge(a, b);
    if (m == nullptr) return;
    queue.push(Candidate{(uint64_t(uint32_t(m->rank)) << 32) | uint32_t(left), left, right, a, b});
  };
  // Symbol indices grow with position, so `left` orders equal ranks as the character position.
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(sym.size()); ++i) push(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& l = sym[static_cast<size_t>(c.left)];
    if (!l.alive || l.next != c.right || l.id != c.left_id) continue;
    Symbol& r = sym[static_cast<size_t>(c.right)];
    if (!r.alive || r.id != c.right_id) continue;
    l.id = find_merge(c.left_id, c.right_id)->result;
    l.end = r.end;
    l.next = r.next;
    r.alive = false;
    if (l.next >= 0) sym[static_cast<size_t>(l.next)].prev = c.left;
    if (l.prev >= 0) push(l.prev);
    push(c.left);
  }
  const size_t first = ids.size();
  for (int32_t i = 0; i >= 0; i = sym[static_cast<size_t>(i)].next) {
    const Symbol& s = sym[static_cast<size_t>(i)];
    if (s.id >= 0) {
      ids.push_back(s.id);
      continue;
    }
    bool bytes = true;
    for (uint32_t k = s.begin; k < s.end; ++k)
      bytes = bytes && byte_ids_[static_cast<unsigned char>(word[k])] >= 0;
    if (bytes) {
      for (uint32_t k = s.begin; k < s.end; ++k)
        ids.push_back(byte_ids_[static_cast<unsigned char>(word[k])]);
    } else {
      ids.push_back(unk_id_);
    }
  }
  if (fuse_unk_ && unk_id_ >= 0) {
    size_t out = first;
    for (size_t i = first; i < ids.size(); ++i)
      if (!(ids[i] == unk_id_ && out > first && ids[out - 1] == unk_id_)) ids[out++] = ids[i];
    ids.resize(out);
  }
}

std::string HfBpe::decode(const std::vector<int32_t>& ids) const {
  // Gemma's decoder: "\u2581" -> " ", runs of <0xNN> pieces -> their bytes (each byte U+FFFD
  // when the run is not UTF-8), the rest verbatim.
  std::string out, run;
  auto flush = [&] {
    if (run.empty()) return;
    const std::u32string u = utf8::decode(run);
    if (std::find(u.begin(), u.end(), U'\uFFFD') != u.end()) {
      for (size_t i = 0; i < run.size(); ++i) out += "\uFFFD";
    } else {
      out += run;
    }
    run.clear();
  };
  for (int32_t id : ids) {
    if (id < 0 || id >= size())
      throw Error(ErrorCode::kInvalidArgument, "token id " + std::to_string(id) +
                                                   " is outside the vocabulary [0, " +
                                                   std::to_string(size()) + ")");
    const auto b = std::find(byte_ids_.begin(), byte_ids_.end(), id);
    if (b != byte_ids_.end()) {
      run.push_back(static_cast<char>(b - byte_ids_.begin()));
      continue;
    }
    flush();
    const std::string_view p = piece(id);
    for (size_t i = 0; i < p.size();) {
      if (p.compare(i, 3, "\u2581") == 0) {
        out.push_back(' ');
        i += 3;
      } else {
        out.push_back(p[i++]);
      }
    }
  }
  flush();
  return out;
}

}  // namespace zsclip::text
