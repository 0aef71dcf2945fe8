// Tokenizer tests: parity with OpenAI's SimpleTokenizer on ../shared/clip/tokenizer_cases.jsonl,
// and unit tests per step. Expected values in the unit tests were checked against Python 3.11
// (html, str.lower, bytes.decode) and the regex module where noted.
#include "zsclip/tokenizer.h"

#include <gtest/gtest.h>
#include <zlib.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <random>
#include <thread>

#include "test_util.h"
#include "text/bpe.h"
#include "text/clean.h"
#include "text/html_unescape.h"
#include "text/unicode.h"
#include "zsclip/error.h"

namespace zsclip {
namespace {

using testing::shared_path;
using utf8::decode;
using utf8::encode;

constexpr const char* kVocab = "clip/bpe_simple_vocab_16e6.txt.gz";
constexpr const char* kCases = "clip/tokenizer_cases.jsonl";

std::u32string U(const char* utf8) { return utf8::decode(utf8); }
std::string S(const std::u32string& s) { return utf8::encode(s); }

const Tokenizer& openai_tokenizer() {
  static const Tokenizer tok = [] {
    TokenizerOptions o;
    o.num_merges = 48894;
    return Tokenizer::from_file(shared_path(kVocab), o);
  }();
  return tok;
}

struct Case {
  std::string text;
  std::vector<int32_t> bpe, tokens;
  std::string decoded;
};

std::vector<Case> load_cases() {
  std::vector<Case> cases;
  std::ifstream in(shared_path(kCases));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    cases.push_back({j.at("text").get<std::string>(), j.at("bpe").get<std::vector<int32_t>>(),
                     j.at("tokens").get<std::vector<int32_t>>(),
                     j.at("decoded").get<std::string>()});
  }
  return cases;
}

// ---- parity with the Python reference ----

TEST(TokenizerParity, VocabularyShape) {
  ZSCLIP_REQUIRE_SHARED(kVocab);
  const Tokenizer& tok = openai_tokenizer();
  EXPECT_EQ(tok.vocab_size(), 49408);
  EXPECT_EQ(tok.num_merges(), 48894);
  EXPECT_EQ(tok.sot_id(), 49406);
  EXPECT_EQ(tok.eot_id(), 49407);
  EXPECT_EQ(tok.token(0), "!");
  EXPECT_EQ(tok.token(256), "!</w>");
  EXPECT_EQ(tok.token(49406), "<|startoftext|>");
}

TEST(TokenizerParity, AllCases) {
  ZSCLIP_REQUIRE_SHARED(kCases);
  ZSCLIP_REQUIRE_SHARED(kVocab);
  const Tokenizer& tok = openai_tokenizer();
  const auto cases = load_cases();
  ASSERT_GE(cases.size(), 900u);
  int failures = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const auto bpe = tok.encode(c.text);
    const auto tokens = tok.encode_with_specials(c.text);
    const auto decoded = tok.decode(c.bpe);
    const bool ok = bpe == c.bpe && tokens == c.tokens && decoded == c.decoded;
    if (!ok && ++failures <= 20) {
      ADD_FAILURE() << "case " << i << " text: " << nlohmann::json(c.text).dump()
                    << "\n  bpe ok: " << (bpe == c.bpe) << " tokens ok: " << (tokens == c.tokens)
                    << " decoded ok: " << (decoded == c.decoded) << "\n  got bpe "
                    << nlohmann::json(bpe).dump() << "\n want bpe " << nlohmann::json(c.bpe).dump()
                    << "\n  got decoded " << nlohmann::json(decoded).dump() << "\n  want decoded "
                    << nlohmann::json(c.decoded).dump();
    }
  }
  EXPECT_EQ(failures, 0);
}

TEST(TokenizerParity, AllCasesFromEightThreads) {
  ZSCLIP_REQUIRE_SHARED(kCases);
  ZSCLIP_REQUIRE_SHARED(kVocab);
  TokenizerOptions o;
  o.num_merges = 48894;
  o.cache_capacity = 512;  // small: the threads also race on evictions
  const Tokenizer tok = Tokenizer::from_file(shared_path(kVocab), o);
  const auto cases = load_cases();
  std::vector<int> mismatches(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round) {
        for (size_t k = 0; k < cases.size(); ++k) {
          const Case& c = cases[(k + static_cast<size_t>(t) * 97) % cases.size()];
          if (tok.encode(c.text) != c.bpe || tok.encode_with_specials(c.text) != c.tokens ||
              tok.decode(c.bpe) != c.decoded) {
            ++mismatches[t];
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

// ---- UTF-8 decoding (expected: Python's bytes.decode("utf-8", "replace")) ----

TEST(TokenizerUnicode, DecodeReplacesLikePython) {
  const std::u32string fffd(1, 0xFFFD);
  EXPECT_EQ(utf8::decode("abc"), U"abc");
  EXPECT_EQ(utf8::decode("\xff"), fffd);
  EXPECT_EQ(utf8::decode("\xe2\x82"), fffd);
  EXPECT_EQ(utf8::decode("\xe2\x82"
                         "A"),
            fffd + U"A");
  EXPECT_EQ(utf8::decode("\xf0\x80\x80"), fffd + fffd + fffd);
  EXPECT_EQ(utf8::decode("\xed\xa0\x80"), fffd + fffd + fffd);  // encoded surrogate
  EXPECT_EQ(utf8::decode(std::string("\xc0\x80", 2)), fffd + fffd);
  EXPECT_EQ(utf8::decode("\xf4\x90\x80\x80"), fffd + fffd + fffd + fffd);
  EXPECT_EQ(utf8::decode("a\xf0\x9f\x98\x80"
                         "b"),
            U"a\U0001F600b");
  EXPECT_EQ(utf8::decode("\xf0\x9f\x98"), fffd);
  EXPECT_EQ(utf8::decode("\x80\x80"), fffd + fffd);
  EXPECT_EQ(utf8::decode(std::string("a\0b", 3)), std::u32string(U"a\0b", 3));
}

TEST(TokenizerUnicode, WhitespaceIsPythonIsspace) {
  // [c for c in range(0x110000) if chr(c).isspace()] on Python 3.11.
  const std::vector<char32_t> expected = {
      0x9,    0xa,    0xb,    0xc,    0xd,    0x1c,   0x1d,   0x1e,   0x1f,   0x20,
      0x85,   0xa0,   0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006,
      0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000};
  std::vector<char32_t> got;
  for (char32_t c = 0; c < 0x110000; ++c) {
    if (text::is_py_space(c)) got.push_back(c);
  }
  EXPECT_EQ(got, expected);
}

TEST(TokenizerUnicode, LowerMatchesPythonIncludingSpecialCasing) {
  // (input, str.lower()) pairs from Python 3.11.
  const std::vector<std::pair<const char*, const char*>> cases = {{"ΣΑΣ", "σας"},
                                                                  {"ΑΣ.", "ας."},
                                                                  {"Σ", "σ"},
                                                                  {"ΑΣ'Α", "ασ'α"},
                                                                  {"Α'Σ", "α'ς"},
                                                                  {"ΑΣ\u0301", "ας\u0301"},
                                                                  {"ΑΣ\u0301Α", "ασ\u0301α"},
                                                                  {"İstanbul", "i\u0307stanbul"},
                                                                  {"ẞ", "ß"},
                                                                  {"ΑΣ ΒΣ", "ας βς"},
                                                                  {"ªΣ", "ªς"},
                                                                  {"1Σ", "1σ"},
                                                                  {"ǅ", "ǆ"},
                                                                  {"ΑΣΑ", "ασα"},
                                                                  {"HELLO World", "hello world"},
                                                                  {"ÀÉÎ", "àéî"}};
  for (const auto& [in, want] : cases) EXPECT_EQ(S(text::py_lower(U(in))), want) << in;
}

// ---- html.unescape (expected: Python 3.11's html.unescape) ----

TEST(TokenizerHtml, UnescapeMatchesPython) {
  const std::vector<std::pair<const char*, const char*>> cases = {
      {"&amp;", "&"},
      {"&amp", "&"},
      {"&ampx", "&x"},
      {"&amp;amp;", "&amp;"},
      {"&notin;", "\u2209"},
      {"&notit;", "\u00acit;"},
      {"&noti", "\u00aci"},
      {"&#39;", "'"},
      {"&#x27;", "'"},
      {"&#X27", "'"},
      {"&#0;", "\ufffd"},
      {"&#128;", "\u20ac"},
      {"&#x80;", "\u20ac"},
      {"&#129;", "\u0081"},
      {"&#1;", ""},
      {"&#xD800;", "\ufffd"},
      {"&#x110000;", "\ufffd"},
      {"&#99999999999999999999;", "\ufffd"},
      {"&#65533", "\ufffd"},
      {"&#xFFFE;", ""},
      {"&#x1FFFF;", ""},
      {"&#", "&#"},
      {"&#x;", "&#x;"},
      {"&#;", "&#;"},
      {"& amp;", "& amp;"},
      {"&;", "&;"},
      {"&nbsp;x", "\u00a0x"},
      {"&lt&gt", "<>"},
      {"&LT;", "<"},
      {"&aMp;", "&aMp;"},
      {"&copy2023", "\u00a92023"},
      {"&thinsp&", "&thinsp&"},
      {"&abcdefghijklmnopqrstuvwxyzabcdefghij;", "&abcdefghijklmnopqrstuvwxyzabcdefghij;"},
      {"&\u2135;", "&\u2135;"},
      {"x&", "x&"},
      {"&&amp;", "&&"},
      {"&#38;amp;", "&amp;"},
      {"&ne;&nbsp", "\u2260\u00a0"}};
  for (const auto& [in, want] : cases) EXPECT_EQ(S(text::html_unescape(U(in))), want) << in;
}

// ---- cleaning steps ----

TEST(TokenizerClean, WhitespaceCollapsesEveryPythonSpace) {
  EXPECT_EQ(S(text::whitespace_clean(U("  a \t\n b\u3000\u00a0c\x1c d  "))), "a b c d");
  EXPECT_EQ(S(text::whitespace_clean(U(" \u2028 "))), "");
  EXPECT_EQ(S(text::whitespace_clean(U("a\u200bb"))), "a\u200bb");  // zero-width space is no space
}

TEST(TokenizerClean, BasicCleanUnescapesTwiceAndStrips) {
  EXPECT_EQ(S(text::basic_clean(U("  &amp;amp;lt; x \n"))), "&lt; x");
  EXPECT_EQ(S(text::basic_clean(U("&amp;nbsp;"))), "");  // -> U+00A0, then stripped
}

// Expected values follow ftfy 6's documented fixes (ftfy itself is not installed here).
TEST(TokenizerClean, FtfyLikeFixes) {
  EXPECT_EQ(S(text::ftfy_fix(U("\u2018single\u2019 \u201cdouble\u201d \u201a\u201b\u201e\u201f"))),
            "'single' \"double\" ''\"\"");
  EXPECT_EQ(S(text::ftfy_fix(U("\ufb00 \ufb01 \ufb02 \ufb03 \ufb04 \ufb05 \ufb06"))),
            "ff fi fl ffi ffl \u017ft st");
  EXPECT_EQ(S(text::ftfy_fix(U("\u0149 \u01c4"))), "'n D\u017d");
  EXPECT_EQ(S(text::ftfy_fix(U("\uff21\uff42\uff43\uff11\uff01\u3000\uff5e"))), "Abc1! ~");
  EXPECT_EQ(S(text::ftfy_fix(U("\uffe1\uff76"))), "\u00a3\u30ab");  // half-width katakana -> full
  EXPECT_EQ(S(text::ftfy_fix(U("a\r\nb\rc"))), "a\nb\nc");
  EXPECT_EQ(S(text::ftfy_fix(U("e\u0301"))), "\u00e9");  // NFC
  EXPECT_EQ(S(text::ftfy_fix(std::u32string(U"a\0b\x07"
                                            "c\x0b"
                                            "d\x1f"
                                            "e\x7f\t\f\n",
                                            13))),
            "abcde\t\f\n");
  EXPECT_EQ(S(text::ftfy_fix(U("\u206a\ufeffx\ufffc"))), "x");
  EXPECT_EQ(S(text::ftfy_fix(U("\x1b[1;31mred\x1b[0m"))), "red");
  EXPECT_EQ(S(text::ftfy_fix(U("\u0080 \u0093q\u0094 \u0081"))),
            "\u20ac \"q\" \u0081");  // C1 as cp1252
}

// ---- pre-tokenisation (expected: regex.findall with CLIP's pattern, regex 2022.10.31) ----

TEST(TokenizerSplit, MatchesRegexFindall) {
  const std::vector<std::pair<const char*, std::vector<std::string>>> cases = {
      {"it's a dog's life", {"it", "'s", "a", "dog", "'s", "life"}},
      {"we'll 'em 're've'd", {"we", "'ll", "'", "em", "'re", "'ve", "'d"}},
      {"'x", {"'", "x"}},
      {"abc123def", {"abc", "1", "2", "3", "def"}},
      {"\u00bd \u00b2", {"\u00bd", "\u00b2"}},
      {"hello, world!!", {"hello", ",", "world", "!!"}},
      {"<|endoftext|>x", {"<|endoftext|>", "x"}},
      {"!<|endoftext|>", {"!<|", "endoftext", "|>"}},
      {"<|\u017ftartoftext|>", {"<|\u017ftartoftext|>"}},
      {"it'\u017f", {"it", "'\u017f"}},
      {"a\u0345b", {"a", "b"}},
      {"\u65e5\u672c\u8a9e\u30c6\u30ad\u30b9\u30c8",
       {"\u65e5\u672c\u8a9e\u30c6\u30ad\u30b9\u30c8"}},
      {"e\u0301t\u00e9", {"e", "\u0301", "t\u00e9"}},
      {"$100.50", {"$", "1", "0", "0", ".", "5", "0"}},
      {"'''s", {"'''", "s"}},
      {"a_b-c", {"a", "_", "b", "-", "c"}}};
  for (const auto& [in, want] : cases) {
    const std::u32string t = U(in);
    std::vector<std::string> got;
    for (const auto& p : text::split_pieces(t))
      got.push_back(S(t.substr(p.begin, p.end - p.begin)));
    EXPECT_EQ(got, want) << in;
  }
}

// ---- BPE on a small vocabulary ----

// Byte symbols of printable ASCII are the characters themselves, first in bytes_to_unicode's order,
// so '!' is id 0 and 'a' is id 0x61 - 0x21; with "</w>" add 256.
int32_t sym(char c) { return static_cast<int32_t>(c - '!'); }
int32_t sym_eow(char c) { return 256 + sym(c); }

TEST(TokenizerBpe, SmallVocabulary) {
  const Tokenizer tok =
      Tokenizer::from_merges({{"l", "o"}, {"lo", "w</w>"}, {"e", "r</w>"}, {"lo", "w"}});
  EXPECT_EQ(tok.vocab_size(), 512 + 4 + 2);
  EXPECT_EQ(tok.sot_id(), 516);
  EXPECT_EQ(tok.eot_id(), 517);
  EXPECT_EQ(tok.token(512), "lo");
  EXPECT_EQ(tok.token(513), "low</w>");
  EXPECT_EQ(tok.encode("low"), (std::vector<int32_t>{513}));
  EXPECT_EQ(tok.encode("lower"), (std::vector<int32_t>{515, 514}));  // "low" "er</w>"
  EXPECT_EQ(tok.encode("slow"), (std::vector<int32_t>{sym('s'), 513}));
  EXPECT_EQ(tok.encode("x"), (std::vector<int32_t>{sym_eow('x')}));
  EXPECT_EQ(tok.encode("<|endoftext|>"), (std::vector<int32_t>{517}));
  EXPECT_EQ(tok.decode({515, 514, sym('s'), 513}), "lower slow ");
  EXPECT_EQ(tok.decode({516, 513, 517}), "<|startoftext|>low <|endoftext|>");
}

TEST(TokenizerBpe, MergesEveryOccurrenceLeftToRightPerPass) {
  // "aaa" with (a, a): Python's pass gives "aa a</w>", then (aa, a</w>) applies.
  const Tokenizer tok = Tokenizer::from_merges({{"a", "a"}, {"aa", "a</w>"}, {"a", "a</w>"}});
  EXPECT_EQ(tok.encode("aaa"), (std::vector<int32_t>{513}));
  EXPECT_EQ(tok.encode("aaaa"), (std::vector<int32_t>{512, 514}));  // "aa", "aa</w>"
}

TEST(TokenizerBpe, HeapAndSimpleStrategiesAgree) {
  // Random merge tables over a 4-letter alphabet (repeated pairs and results included).
  std::mt19937 rng(1234);
  for (int round = 0; round < 300; ++round) {
    text::MergeTable table;
    const int32_t alphabet = 4;
    int32_t next_id = alphabet;
    const int nm = 1 + static_cast<int>(rng() % 30);
    for (int r = 0; r < nm; ++r) {
      const int32_t a = static_cast<int32_t>(rng() % static_cast<uint32_t>(next_id));
      const int32_t b = static_cast<int32_t>(rng() % static_cast<uint32_t>(next_id));
      table.set(a, b, r, next_id++);
    }
    std::vector<int32_t> word(1 + rng() % 300);
    for (auto& w : word) w = static_cast<int32_t>(rng() % alphabet);
    std::vector<int32_t> a = word, b = word;
    text::bpe_merge_simple(table, a);
    text::bpe_merge_heap(table, b);
    ASSERT_EQ(a, b) << "round " << round;
  }
}

TEST(TokenizerBpe, LongWordIsFast) {
  // The worst case for the simple loop: merges that grow one token a symbol at a time, so every
  // pass merges once and rescans the word. Its lookups grow as n^2 / 2; the heap's stay linear.
  text::MergeTable table;
  const int32_t n = 20000;
  table.set(0, 1, 0, 2);  // "0 1" -> 2, "2 1" -> 3, "3 1" -> 4, ...
  for (int32_t r = 1; r < n; ++r) table.set(r + 1, 1, r, r + 2);
  std::vector<int32_t> word(static_cast<size_t>(n), 1);
  word[0] = 0;
  text::BpeStats stats;
  text::bpe_merge(table, word, &stats);
  EXPECT_EQ(word, std::vector<int32_t>{n});
  EXPECT_LT(stats.lookups, size_t{20} * n) << "bpe_merge did quadratic work on a long word";
  // The simple loop really is quadratic here, so the bound above can fail.
  std::vector<int32_t> short_word(2000, 1);
  short_word[0] = 0;
  text::BpeStats simple;
  text::bpe_merge_simple(table, short_word, &simple);
  EXPECT_GT(simple.lookups, size_t{1000} * 1000);
  // And a 200,000-letter word through the real tokenizer round-trips.
  ZSCLIP_REQUIRE_SHARED(kVocab);
  std::string long_word;
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) long_word.push_back(static_cast<char>('a' + rng() % 26));
  const auto ids = openai_tokenizer().encode(long_word);
  EXPECT_GT(ids.size(), 10000u);
  EXPECT_EQ(openai_tokenizer().decode(ids), long_word + " ");
}

// ---- specials, truncation, padding ----

TEST(TokenizerSpecials, TruncationAndPadding) {
  const Tokenizer tok = Tokenizer::from_merges({{"a", "b"}});
  const int32_t sot = tok.sot_id(), eot = tok.eot_id();
  EXPECT_EQ(tok.encode_with_specials(""), (std::vector<int32_t>{sot, eot}));
  EXPECT_EQ(tok.encode_with_specials("x y z w", 4),
            (std::vector<int32_t>{sot, sym_eow('x'), sym_eow('y'), eot}));
  EXPECT_EQ(tok.encode_with_specials("x y", 4).size(), 4u);
  EXPECT_EQ(tok.encode_with_specials("x y", 2), (std::vector<int32_t>{sot, eot}));
  const IdTensor t = tok.tokenize({"x", "", "x y z w v"}, 5);
  ASSERT_EQ(t.shape, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(std::vector<int64_t>(t.row(0), t.row(0) + 5),
            (std::vector<int64_t>{sot, sym_eow('x'), eot, 0, 0}));
  EXPECT_EQ(std::vector<int64_t>(t.row(1), t.row(1) + 5),
            (std::vector<int64_t>{sot, eot, 0, 0, 0}));
  EXPECT_EQ(t.at(2, 4), eot);
  EXPECT_EQ(tok.tokenize({}, 77).shape, (std::vector<int64_t>{0, 77}));
}

TEST(TokenizerSpecials, TooLongWithoutTruncationNamesTextAndCount) {
  const Tokenizer tok = Tokenizer::from_merges({{"a", "b"}});
  try {
    tok.encode_with_specials("x y z", 4, false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidText);
    EXPECT_NE(std::string(e.what()).find("x y z"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("5 tokens"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(tok.encode_with_specials("x y", 4, false));
  const std::string huge(100000, 'q');
  try {
    tok.tokenize({"ok", huge + " " + huge}, 77, false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidText);
    EXPECT_LT(std::string(e.what()).size(), 400u);  // the text is shortened in the message
  }
}

TEST(TokenizerSpecials, ContextLengthBelowTwoIsRejected) {
  const Tokenizer tok = Tokenizer::from_merges({});
  EXPECT_EQ(tok.tokenize({"x"}, 0).shape, (std::vector<int64_t>{1, 77}));  // 0: the tokenizer's own
  for (int64_t len : {1, -1, -5}) {
    try {
      tok.encode_with_specials("x", len);
      ADD_FAILURE() << len;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
    try {
      tok.tokenize({"x"}, len);
      ADD_FAILURE() << len;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
  }
}

TEST(TokenizerDecode, BadIdsAndInvalidBytes) {
  const Tokenizer tok = Tokenizer::from_merges({});
  EXPECT_THROW(tok.decode({514}), Error);
  EXPECT_THROW(tok.decode({-1}), Error);
  const auto ids = tok.encode("\xc3\xa9");  // é: two byte symbols, the last with </w>
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(tok.decode(ids), "\u00e9 ");
  EXPECT_EQ(tok.decode({ids[0]}), "\ufffd");  // a lone lead byte, as errors="replace"
  EXPECT_EQ(tok.decode({ids[0], sym_eow('x')}), "\ufffdx ");
}

TEST(TokenizerEncode, InvalidUtf8BecomesReplacementCharacter) {
  ZSCLIP_REQUIRE_SHARED(kVocab);
  const Tokenizer& tok = openai_tokenizer();
  EXPECT_EQ(tok.encode("a\xff"
                       "b"),
            tok.encode("a\xef\xbf\xbd"
                       "b"));
  EXPECT_EQ(tok.encode("\xe2\x82"
                       "x"),
            tok.encode("\xef\xbf\xbdx"));
  EXPECT_EQ(tok.encode(std::string("a\0b", 3)), tok.encode("ab"));  // NUL is a removed control
}

TEST(TokenizerEncode, HtmlWhitespaceAndCaseEndToEnd) {
  ZSCLIP_REQUIRE_SHARED(kVocab);
  const Tokenizer& tok = openai_tokenizer();
  EXPECT_EQ(tok.encode("A&nbsp;&nbsp;Photo\u3000of\u00a0a\tCAT"), tok.encode("a photo of a cat"));
  EXPECT_EQ(tok.encode("\u201cDon\u2019t\u201d"), tok.encode("\"don't\""));
  EXPECT_EQ(tok.encode("\uff21 \ufb01sh"), tok.encode("a fish"));
}

// ---- vocabulary files ----

void write_gzip(const std::string& path, const std::string& data) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  if (!data.empty()) {
    ASSERT_EQ(gzwrite(f, data.data(), static_cast<unsigned>(data.size())),
              static_cast<int>(data.size()));
  }
  gzclose(f);
}

void expect_error(const std::string& path, ErrorCode code, const TokenizerOptions& o = {}) {
  try {
    Tokenizer::from_file(path, o);
    ADD_FAILURE() << "no error for " << path;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(TokenizerFile, PlainGzipAndNumMerges) {
  const std::string dir = testing::temp_dir("tokenizer_file");
  const std::string text = "#version: 0.2\nl o\nlo w</w>\ne r</w>\n";
  { std::ofstream(dir + "/plain.txt", std::ios::binary) << text; }
  write_gzip(dir + "/vocab.txt.gz", text);
  for (const std::string name : {"/plain.txt", "/vocab.txt.gz"}) {
    const Tokenizer all = Tokenizer::from_file(dir + name);
    EXPECT_EQ(all.num_merges(), 3);
    EXPECT_EQ(all.vocab_size(), 517);
    EXPECT_EQ(all.encode("low"), (std::vector<int32_t>{513}));
    TokenizerOptions o;
    o.num_merges = 1;
    const Tokenizer one = Tokenizer::from_file(dir + name, o);
    EXPECT_EQ(one.vocab_size(), 515);
    EXPECT_EQ(one.sot_id(), 513);
    EXPECT_EQ(one.encode("low"), (std::vector<int32_t>{512, sym_eow('w')}));
  }
}

TEST(TokenizerFile, BadFiles) {
  const std::string dir = testing::temp_dir("tokenizer_bad_files");
  expect_error(dir + "/missing.txt.gz", ErrorCode::kNotFound);
  { std::ofstream(dir + "/empty.txt"); }
  expect_error(dir + "/empty.txt", ErrorCode::kInvalidConfig);
  write_gzip(dir + "/empty.gz", "");
  expect_error(dir + "/empty.gz", ErrorCode::kInvalidConfig);
  { std::ofstream(dir + "/header_only.txt") << "#version: 0.2\n"; }
  expect_error(dir + "/header_only.txt", ErrorCode::kInvalidConfig);
  { std::ofstream(dir + "/three.txt") << "#version: 0.2\na b c\n"; }
  expect_error(dir + "/three.txt", ErrorCode::kInvalidConfig);
  { std::ofstream(dir + "/alphabet.txt") << "#version: 0.2\na \xe6\x97\xa5\n"; }
  expect_error(dir + "/alphabet.txt", ErrorCode::kInvalidConfig);
  { std::ofstream(dir + "/utf8.txt", std::ios::binary) << "#version: 0.2\na \xff\n"; }
  expect_error(dir + "/utf8.txt", ErrorCode::kInvalidConfig);
  { std::ofstream(dir + "/short.txt") << "#version: 0.2\na b\n"; }
  TokenizerOptions o;
  o.num_merges = 5;
  expect_error(dir + "/short.txt", ErrorCode::kInvalidConfig, o);
  // A gzip stream cut in half.
  std::string body = "#version: 0.2\n";
  std::mt19937 rng(3);
  for (int i = 0; i < 4000; ++i)
    body += std::string(1, static_cast<char>('a' + rng() % 26)) + " b\n";
  write_gzip(dir + "/full.gz", body);
  const std::string gz = testing::read_file(dir + "/full.gz");
  { std::ofstream(dir + "/cut.gz", std::ios::binary) << gz.substr(0, gz.size() / 2); }
  expect_error(dir + "/cut.gz", ErrorCode::kInvalidConfig);
  expect_error(dir, ErrorCode::kInvalidArgument);  // a directory, as for every file zsclip reads
}

TEST(TokenizerCopy, CopiesShareStateAndWorkWithoutCache) {
  TokenizerOptions o;
  o.cache_capacity = 0;
  const Tokenizer a = Tokenizer::from_merges({{"l", "o"}, {"lo", "w</w>"}}, o);
  const Tokenizer b = a;
  Tokenizer c = Tokenizer::from_merges({{"l", "o"}, {"lo", "w</w>"}}, o);
  EXPECT_TRUE(a.shares_state_with(b)) << "a copy must share the vocabulary and merge table";
  EXPECT_FALSE(a.shares_state_with(c));
  c = a;
  EXPECT_TRUE(c.shares_state_with(a));
  EXPECT_EQ(b.encode("low low"), (std::vector<int32_t>{513, 513}));
  EXPECT_EQ(a.encode("low"), b.encode("low"));
}

}  // namespace
}  // namespace zsclip
