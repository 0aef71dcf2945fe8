#include "index/npy.h"

#include "zsclip/io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <string_view>

namespace zsclip::index_detail {
namespace {

Error bad(const std::string& origin, const std::string& what) {
  return Error(ErrorCode::kInvalidConfig,
               origin + ": not a valid .npy file of float rows (" + what + ")");
}

std::string printable(std::string_view s, size_t max = 60) {
  std::string out;
  for (char c : s.substr(0, max)) out += (c >= 32 && c < 127) ? c : '?';
  return s.size() > max ? out + "..." : out;
}

// The header dict is a Python literal: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 512),
// } Keys may come in any order; the values must be these three kinds.
class DictParser {
 public:
  DictParser(std::string_view text, const std::string& origin) : s_(text), origin_(origin) {}

  NpyHeader parse() {
    NpyHeader h;
    bool has_descr = false, has_order = false, has_shape = false;
    expect('{');
    for (;;) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = string_literal();
      expect(':');
      skip_space();
      if (key == "descr") {
        const std::string d = string_literal();
        if (d == "<f4")
          h.dtype = IndexDtype::kFloat32;
        else if (d == "<f2")
          h.dtype = IndexDtype::kFloat16;
        else if (d == ">f4" || d == ">f2")
          throw bad(
              origin_,
              "dtype '" + d +
                  "' is big-endian; only little-endian float32 '<f4' and float16 '<f2' are read");
        else
          throw bad(origin_,
                    "dtype '" + printable(d) + "'; only float32 '<f4' and float16 '<f2' are read");
        has_descr = true;
      } else if (key == "fortran_order") {
        if (s_.substr(pos_, 5) == "False")
          pos_ += 5;
        else if (s_.substr(pos_, 4) == "True")
          throw bad(origin_, "fortran_order is True; rows must be C-order");
        else
          throw bad(origin_, "fortran_order is neither True nor False");
        has_order = true;
      } else if (key == "shape") {
        expect('(');
        int64_t dims[3] = {0, 0, 0};
        int n = 0;
        for (;;) {
          skip_space();
          if (peek() == ')') break;
          if (n == 3) throw bad(origin_, "shape has more than 2 dimensions");
          dims[n++] = integer();
          skip_space();
          if (peek() == ',') ++pos_;
        }
        expect(')');
        if (n != 2)
          throw bad(origin_,
                    "shape has " + std::to_string(n) + " dimension(s), expected (rows, dim)");
        h.rows = dims[0];
        h.cols = dims[1];
        has_shape = true;
      } else {
        throw bad(origin_, "unexpected header key '" + printable(key) + "'");
      }
      skip_space();
      if (peek() == ',')
        ++pos_;
      else if (peek() != '}')
        throw bad(origin_, "header dict: expected ',' or '}' at offset " + std::to_string(pos_));
    }
    ++pos_;
    if (!has_descr || !has_order || !has_shape)
      throw bad(origin_, std::string("header lacks '") +
                             (!has_descr   ? "descr"
                              : !has_order ? "fortran_order"
                                           : "shape") +
                             "'");
    for (; pos_ < s_.size(); ++pos_)
      if (s_[pos_] != ' ' && s_[pos_] != '\n' && s_[pos_] != '\0')
        throw bad(origin_, "text after the header dict");
    return h;
  }

 private:
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n')) ++pos_;
  }
  void expect(char c) {
    skip_space();
    if (peek() != c)
      throw bad(origin_,
                std::string("header dict: expected '") + c + "' at offset " + std::to_string(pos_));
    ++pos_;
  }
  std::string string_literal() {
    skip_space();
    const char q = peek();
    if (q != '\'' && q != '"')
      throw bad(origin_, "header dict: expected a quoted key at offset " + std::to_string(pos_));
    const size_t end = s_.find(q, pos_ + 1);
    if (end == std::string_view::npos) throw bad(origin_, "header dict: unterminated string");
    std::string out(s_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return out;
  }
  int64_t integer() {
    const size_t start = pos_;
    int64_t v = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      if (v > (std::numeric_limits<int64_t>::max() - 9) / 10)
        throw bad(origin_, "shape value too large");
      v = v * 10 + (s_[pos_++] - '0');
    }
    if (pos_ < s_.size() && s_[pos_] == 'L') ++pos_;  // Python 2 long
    if (pos_ == start)
      throw bad(origin_,
                "shape: expected a non-negative integer at offset " + std::to_string(start));
    return v;
  }

  std::string_view s_;
  const std::string& origin_;
  size_t pos_ = 0;
};

}  // namespace

size_t dtype_size(IndexDtype dtype) { return dtype == IndexDtype::kFloat16 ? 2 : 4; }

NpyHeader parse_npy(const uint8_t* data, size_t size, const std::string& origin) {
  static const char kMagic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
  if (size < 10) throw bad(origin, "only " + std::to_string(size) + " bytes");
  if (std::memcmp(data, kMagic, 6) != 0) throw bad(origin, "bad magic; not a NumPy .npy file");
  const int major = data[6];
  size_t header_len = 0, prefix = 0;
  if (major == 1) {
    header_len = size_t(data[8]) | size_t(data[9]) << 8;
    prefix = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) throw bad(origin, "truncated header");
    header_len =
        size_t(data[8]) | size_t(data[9]) << 8 | size_t(data[10]) << 16 | size_t(data[11]) << 24;
    prefix = 12;
  } else {
    throw bad(origin, "format version " + std::to_string(major) + "." + std::to_string(data[7]) +
                          " is not 1, 2 or 3");
  }
  if (header_len > size - prefix)
    throw bad(origin, "header of " + std::to_string(header_len) + " bytes but the file has " +
                          std::to_string(size) + " (truncated)");
  NpyHeader h =
      DictParser(std::string_view(reinterpret_cast<const char*>(data) + prefix, header_len), origin)
          .parse();
  h.data_offset = prefix + header_len;
  if (h.cols < 1)
    throw bad(origin, "shape (" + std::to_string(h.rows) + ", " + std::to_string(h.cols) +
                          "): rows must have at least one value");
  const size_t item = dtype_size(h.dtype);
  const uint64_t max_rows = (std::numeric_limits<uint64_t>::max() / 2) / (uint64_t(h.cols) * item);
  if (uint64_t(h.rows) > max_rows) throw bad(origin, "shape too large");
  const uint64_t want = h.data_offset + uint64_t(h.rows) * uint64_t(h.cols) * item;
  if (want != size)
    throw bad(origin, "shape (" + std::to_string(h.rows) + ", " + std::to_string(h.cols) + ") of " +
                          (h.dtype == IndexDtype::kFloat16 ? "float16" : "float32") + " needs " +
                          std::to_string(want) + " bytes, the file has " + std::to_string(size) +
                          (size < want ? " (truncated)" : " (trailing bytes)"));
  return h;
}

std::string npy_header(IndexDtype dtype, int64_t rows, int64_t cols) {
  std::string dict = std::string("{'descr': '") + (dtype == IndexDtype::kFloat16 ? "<f2" : "<f4") +
                     "', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                     std::to_string(cols) + "), }";
  size_t total = 10 + dict.size() + 1;
  size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict += '\n';
  const size_t len = dict.size();
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>((len >> 8) & 0xff);
  return out + dict;
}

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path) {
  // A FIFO or device is refused at once (opened without blocking, never read).
  uint64_t size = 0;
  io::Fd fd = io::open_regular_file(path, "index file", {uint64_t(1) << 44, ErrorCode::kIo}, &size);
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->size_ = static_cast<size_t>(size);
  if (m->size_ > 0) {
    void* p = mmap(nullptr, m->size_, PROT_READ, MAP_SHARED | MAP_POPULATE, fd.get(), 0);
    if (p == MAP_FAILED)
      throw Error(ErrorCode::kIo, path + ": cannot be mapped (" + std::strerror(errno) + ")");
    m->data_ = static_cast<const uint8_t*>(p);
  }
  return m;
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace zsclip::index_detail
