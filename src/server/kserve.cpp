#include "server/kserve.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string_view>

namespace zsclip::server {
namespace {

using json = nlohmann::json;

constexpr int kMaxJsonDepth = 32;  // objects/arrays nested deeper are refused before parsing
constexpr int64_t kMaxDim = int64_t{1} << 40;

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

[[noreturn]] void bad(const std::string& message) { throw HttpError(400, message); }

// Row-major leaves of a (possibly nested) JSON array.
void flatten(const json& j, std::vector<const json*>& out, const std::string& what) {
  if (!j.is_array()) {
    out.push_back(&j);
    return;
  }
  for (const auto& e : j) {
    if (e.is_array())
      flatten(e, out, what);
    else
      out.push_back(&e);
  }
}

std::optional<bool> bool_param(const json& params, const char* key, const std::string& where) {
  auto it = params.find(key);
  if (it == params.end()) return std::nullopt;
  if (!it->is_boolean()) bad(where + ": parameter '" + key + "' must be a boolean");
  return it->get<bool>();
}

uint32_t read_u32le(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t(u[0]) | (uint32_t(u[1]) << 8) | (uint32_t(u[2]) << 16) | (uint32_t(u[3]) << 24);
}

void append_u32le(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// nlohmann's parser reads a string character by character (17 ms for a 1 MB base64 image, more than
// decoding the image). Long strings of plain printable ASCII (base64 always is) are therefore cut
// out of the JSON text before parsing and replaced by short placeholders "\u0000<nonce>:<index>";
// strings are restored from them when read. The nonce is random per request, so a client cannot
// forge a placeholder; strings with escapes or non-ASCII bytes are left to the parser.
// Whether every byte is printable ASCII (0x20-0x7e); written without an early exit to vectorise.
bool printable_ascii(const char* p, size_t n) {
  size_t bad_bytes = 0;
  for (size_t k = 0; k < n; ++k)
    bad_bytes += static_cast<uint8_t>(static_cast<uint8_t>(p[k]) - 0x20) >= 0x5f;
  return bad_bytes == 0;
}

class LongStrings {
 public:
  static constexpr size_t kMinLength = 1024;

  // Returns the JSON text with long plain strings replaced ("" when there were none: parse the
  // original, no copy of the body is made). Also refuses JSON nested deeper than
  // kMaxJsonDepth (a body of a million '[' would otherwise cost recursion in the code that walks
  // it).
  std::string cut(const char* p, size_t n) {
    std::string out;
    size_t copied = 0;
    int depth = 0;
    for (size_t i = 0; i < n;) {
      const char c = p[i];
      if (c != '"') {
        if (c == '[' || c == '{') {
          if (++depth > kMaxJsonDepth)
            bad("request JSON is nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
        } else if (c == ']' || c == '}') {
          --depth;
        }
        ++i;
        continue;
      }
      // A string from i + 1 to its closing quote j (memchr: strings are most of a body's bytes).
      size_t j = i + 1;
      bool escapes = false;
      for (;;) {
        const char* q = static_cast<const char*>(std::memchr(p + j, '"', n - j));
        if (!q) {
          j = n;  // unterminated: the parser will say so
          break;
        }
        const size_t e = static_cast<size_t>(q - p);
        const char* b = static_cast<const char*>(std::memchr(p + j, '\\', e - j));
        if (!b) {
          j = e;
          break;
        }
        escapes = true;
        j = static_cast<size_t>(b - p) + 2;  // past the escaped character
        if (j >= n) {
          j = n;
          break;
        }
      }
      const size_t len = j - (i + 1);
      if (!escapes && j < n && len >= kMinLength && printable_ascii(p + i + 1, len)) {
        if (out.empty()) out.reserve(n / 8 + 64);
        out.append(p + copied, i - copied);
        out += "\"\\u0000" + nonce_ + ":" + std::to_string(pieces_.size()) + "\"";
        pieces_.emplace_back(p + i + 1, len);
        copied = j + 1;
      }
      i = j + 1;
    }
    if (pieces_.empty()) return std::string();
    out.append(p + copied, n - copied);
    return out;
  }

  std::string get(const json& s) const {
    const std::string& v = s.get_ref<const std::string&>();
    if (!pieces_.empty() && v.size() > nonce_.size() + 2 && v[0] == '\0' &&
        v.compare(1, nonce_.size(), nonce_) == 0 && v[1 + nonce_.size()] == ':') {
      const size_t k = std::stoul(v.substr(2 + nonce_.size()));
      if (k < pieces_.size()) return std::string(pieces_[k]);
    }
    return v;
  }

 private:
  std::string nonce_ = [] {
    std::random_device rd;
    return std::to_string(rd()) + std::to_string(rd());
  }();
  std::vector<std::string_view> pieces_;
};

void fill_from_json(InputTensor& t, const json& data, const std::string& where,
                    const LongStrings& strings) {
  std::vector<const json*> leaves;
  flatten(data, leaves, where);
  const int64_t want = t.element_count();
  if (static_cast<int64_t>(leaves.size()) != want)
    bad(where + ": shape " + shape_str(t.shape) + " holds " + std::to_string(want) +
        " elements, but 'data' has " + std::to_string(leaves.size()));
  if (t.datatype == "BYTES") {
    t.bytes.reserve(leaves.size());
    for (size_t i = 0; i < leaves.size(); ++i) {
      if (!leaves[i]->is_string())
        bad(where + ": data element " + std::to_string(i) + " is not a string (BYTES)");
      t.bytes.push_back(strings.get(*leaves[i]));
    }
  } else if (t.datatype == "FP32") {
    t.fp32.reserve(leaves.size());
    for (size_t i = 0; i < leaves.size(); ++i) {
      if (!leaves[i]->is_number())
        bad(where + ": data element " + std::to_string(i) + " is not a number (FP32)");
      const double v = leaves[i]->get<double>();
      if (!std::isfinite(v) || std::abs(v) > FLT_MAX)
        bad(where + ": data element " + std::to_string(i) + " is outside the FP32 range");
      t.fp32.push_back(static_cast<float>(v));
    }
  } else if (t.datatype == "INT64") {
    t.int64.reserve(leaves.size());
    for (size_t i = 0; i < leaves.size(); ++i) {
      const json& v = *leaves[i];
      if (v.is_number_integer() &&
          !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)))
        t.int64.push_back(v.get<int64_t>());
      else
        bad(where + ": data element " + std::to_string(i) + " is not a 64-bit integer (INT64)");
    }
  }
}

void fill_from_binary(InputTensor& t, const char* p, size_t n, const std::string& where) {
  const int64_t count = t.element_count();
  if (t.datatype == "BYTES") {
    size_t off = 0;
    while (off < n) {
      if (n - off < 4)
        bad(where + ": binary BYTES element " + std::to_string(t.bytes.size()) +
            " has a truncated 4-byte length");
      const uint32_t len = read_u32le(p + off);
      off += 4;
      if (len > n - off)
        bad(where + ": binary BYTES element " + std::to_string(t.bytes.size()) + " declares " +
            std::to_string(len) + " bytes, but only " + std::to_string(n - off) +
            " remain in its binary_data_size");
      t.bytes.emplace_back(p + off, len);
      off += len;
      if (static_cast<int64_t>(t.bytes.size()) > count) break;
    }
    if (static_cast<int64_t>(t.bytes.size()) != count || off != n)
      bad(where + ": shape " + shape_str(t.shape) + " holds " + std::to_string(count) +
          " elements, but the binary data does not hold exactly that many length-prefixed "
          "elements");
    return;
  }
  const size_t width = t.datatype == "FP32" ? 4 : 8;
  if (static_cast<uint64_t>(count) * width != n)
    bad(where + ": binary_data_size " + std::to_string(n) + " does not match shape " +
        shape_str(t.shape) + " of " + t.datatype + " (" +
        std::to_string(static_cast<uint64_t>(count) * width) + " bytes)");
  if (t.datatype == "FP32") {
    t.fp32.resize(static_cast<size_t>(count));
    std::memcpy(t.fp32.data(), p, n);  // little-endian host (x86-64, aarch64)
    for (size_t i = 0; i < t.fp32.size(); ++i)
      if (!std::isfinite(t.fp32[i]))
        bad(where + ": element " + std::to_string(i) + " is not finite");
  } else {
    t.int64.resize(static_cast<size_t>(count));
    std::memcpy(t.int64.data(), p, n);
  }
}

}  // namespace

std::string serialize_bytes(const std::vector<std::string>& elements) {
  std::string s;
  for (const auto& e : elements) {
    append_u32le(s, static_cast<uint32_t>(e.size()));
    s += e;
  }
  return s;
}

std::string error_body(const std::string& message) {
  return json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

int64_t InputTensor::element_count() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // dimensions are checked at parse time: no overflow
  return n;
}

const InputTensor* InferRequest::find(const std::string& name) const {
  for (const auto& t : inputs)
    if (t.name == name) return &t;
  return nullptr;
}

uint64_t parse_header_length(const std::string& value) {
  if (value.empty() || value.size() > 18 ||
      value.find_first_not_of("0123456789") != std::string::npos)
    bad("header Inference-Header-Content-Length: expected a non-negative integer, got \"" +
        value.substr(0, 40) + "\"");
  return std::stoull(value);
}

InferRequest parse_infer_request(const std::string& body, std::optional<uint64_t> header_length,
                                 const std::string& model, const std::vector<TensorSpec>& specs,
                                 uint64_t max_values) {
  size_t json_len = body.size();
  if (header_length) {
    if (*header_length == 0)
      bad("raw binary requests (Inference-Header-Content-Length: 0) are not supported; send a JSON "
          "header");
    if (*header_length > body.size())
      bad("header Inference-Header-Content-Length is " + std::to_string(*header_length) +
          ", but the body has only " + std::to_string(body.size()) + " bytes");
    json_len = static_cast<size_t>(*header_length);
  }
  if (json_len == 0) bad("empty request body (expected a KServe v2 inference request JSON object)");
  LongStrings strings;
  json j;
  try {
    const std::string cut = strings.cut(body.data(), json_len);
    const char* first = cut.empty() ? body.data() : cut.data();
    const char* last = cut.empty() ? body.data() + json_len : cut.data() + cut.size();
    uint64_t values = 0;
    j = json::parse(first, last, [&](int, json::parse_event_t event, json&) {
      if (event == json::parse_event_t::value || event == json::parse_event_t::array_start ||
          event == json::parse_event_t::object_start) {
        if (++values > max_values)
          bad("the request holds more than " + std::to_string(max_values) +
              " JSON values, more than model '" + model +
              "' accepts at the server's --max-batch and --max-labels");
      }
      return true;
    });
  } catch (const json::exception& e) {
    bad(std::string("malformed JSON in the request body: ") + e.what());
  }
  if (!j.is_object()) bad("the request body must be a JSON object");

  InferRequest r;
  if (auto it = j.find("id"); it != j.end()) {
    if (!it->is_string()) bad("field 'id' must be a string");
    r.id = strings.get(*it);
  }
  if (auto it = j.find("parameters"); it != j.end()) {
    if (!it->is_object()) bad("field 'parameters' must be an object");
    r.binary_data_output = bool_param(*it, "binary_data_output", "request").value_or(false);
  }
  auto inputs = j.find("inputs");
  if (inputs == j.end()) bad("field 'inputs' is missing");
  if (!inputs->is_array()) bad("field 'inputs' must be an array");
  if (inputs->empty()) bad("field 'inputs' is empty");

  std::string names;
  for (const auto& s : specs) names += (names.empty() ? "" : ", ") + s.name;
  const char* binary = header_length ? body.data() + json_len : nullptr;
  const size_t binary_size = header_length ? body.size() - json_len : 0;
  size_t binary_used = 0;

  for (size_t k = 0; k < inputs->size(); ++k) {
    const json& in = (*inputs)[k];
    const std::string at = "inputs[" + std::to_string(k) + "]";
    if (!in.is_object()) bad(at + " must be an object");
    auto name = in.find("name");
    if (name == in.end() || !name->is_string())
      bad(at + ": field 'name' is missing or not a string");
    InputTensor t;
    t.name = strings.get(*name);
    const std::string where = "input '" + t.name + "'";
    const TensorSpec* spec = nullptr;
    for (const auto& s : specs)
      if (s.name == t.name) spec = &s;
    if (!spec) bad(where + ": model '" + model + "' has no such input (its inputs: " + names + ")");
    if (r.find(t.name)) bad(where + " is given twice");

    auto dt = in.find("datatype");
    if (dt == in.end() || !dt->is_string())
      bad(where + ": field 'datatype' is missing or not a string");
    t.datatype = strings.get(*dt);
    if (t.datatype != spec->datatype)
      bad(where + ": field 'datatype' must be " + spec->datatype + ", got \"" + t.datatype + "\"");

    auto shape = in.find("shape");
    if (shape == in.end() || !shape->is_array())
      bad(where + ": field 'shape' is missing or not an array");
    if (shape->size() > 8) bad(where + ": field 'shape' has more than 8 dimensions");
    int64_t count = 1;
    for (const auto& d : *shape) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() > kMaxDim)
        bad(where + ": field 'shape' must hold non-negative integers, got " + shape->dump());
      t.shape.push_back(d.get<int64_t>());
      // Checked before multiplying: [2^32, 2^32] must not overflow (to 0) past this check.
      if (t.shape.back() > 0 && count > kMaxDim / t.shape.back())
        bad(where + ": field 'shape' " + shape->dump() + " holds too many elements");
      count *= t.shape.back();
    }
    if (static_cast<uint64_t>(count) > max_values)
      bad(where + ": field 'shape' " + shape->dump() + " holds more elements than model '" + model +
          "' accepts at the server's --max-batch and --max-labels");

    std::optional<uint64_t> binary_data_size;
    if (auto p = in.find("parameters"); p != in.end()) {
      if (!p->is_object()) bad(where + ": field 'parameters' must be an object");
      if (auto b = p->find("binary_data_size"); b != p->end()) {
        if (!b->is_number_integer() || b->get<int64_t>() < 0)
          bad(where + ": parameter 'binary_data_size' must be a non-negative integer");
        binary_data_size = b->get<uint64_t>();
      }
      if (p->contains("shared_memory_region"))
        bad(where + ": shared-memory inputs are not supported by this server");
    }
    auto data = in.find("data");
    if (binary_data_size) {
      if (data != in.end()) bad(where + ": has both 'data' and parameter 'binary_data_size'");
      if (!header_length)
        bad(where +
            ": parameter 'binary_data_size' needs the Inference-Header-Content-Length header");
      if (*binary_data_size > binary_size - binary_used)
        bad(where + ": binary_data_size " + std::to_string(*binary_data_size) +
            " runs past the end of the body (" + std::to_string(binary_size - binary_used) +
            " binary bytes left)");
      t.binary = true;
      fill_from_binary(t, binary + binary_used, static_cast<size_t>(*binary_data_size), where);
      binary_used += static_cast<size_t>(*binary_data_size);
    } else {
      if (data == in.end())
        bad(where + ": field 'data' is missing (nor is there a binary_data_size parameter)");
      fill_from_json(t, *data, where, strings);
    }
    r.inputs.push_back(std::move(t));
  }
  if (binary_used != binary_size)
    bad(std::to_string(binary_size - binary_used) +
        " bytes of binary data follow the JSON header but no input's binary_data_size accounts for "
        "them");

  if (auto outs = j.find("outputs"); outs != j.end()) {
    if (!outs->is_array()) bad("field 'outputs' must be an array");
    for (size_t k = 0; k < outs->size(); ++k) {
      const json& o = (*outs)[k];
      const std::string at = "outputs[" + std::to_string(k) + "]";
      if (!o.is_object()) bad(at + " must be an object");
      auto name = o.find("name");
      if (name == o.end() || !name->is_string())
        bad(at + ": field 'name' is missing or not a string");
      RequestedOutput ro;
      ro.name = strings.get(*name);
      if (auto p = o.find("parameters"); p != o.end()) {
        if (!p->is_object()) bad("output '" + ro.name + "': field 'parameters' must be an object");
        ro.binary = bool_param(*p, "binary_data", "output '" + ro.name + "'");
        if (p->contains("classification"))
          bad("output '" + ro.name +
              "': the classification extension is not supported (use zero_shot's TOP_LABEL)");
        if (p->contains("shared_memory_region"))
          bad("output '" + ro.name + "': shared-memory outputs are not supported by this server");
      }
      for (const auto& seen : r.outputs)
        if (seen.name == ro.name) bad("output '" + ro.name + "' is requested twice");
      r.outputs.push_back(std::move(ro));
    }
  }
  return r;
}

void check_requested_outputs(const InferRequest& request, const std::string& model,
                             const std::vector<TensorSpec>& outputs) {
  std::string names;
  for (const auto& s : outputs) names += (names.empty() ? "" : ", ") + s.name;
  for (const auto& o : request.outputs) {
    bool known = false;
    for (const auto& s : outputs) known |= s.name == o.name;
    if (!known)
      bad("output '" + o.name + "': model '" + model +
          "' has no such output (its outputs: " + names + ")");
  }
}

EncodedResponse encode_infer_response(const std::string& model, const InferRequest& request,
                                      std::vector<OutputTensor> outputs) {
  struct Chosen {
    OutputTensor* t;
    bool binary;
  };
  std::vector<Chosen> chosen;
  if (request.outputs.empty()) {
    for (auto& o : outputs) chosen.push_back({&o, request.binary_data_output});
  } else {
    for (const auto& ro : request.outputs)
      for (auto& o : outputs)
        if (o.name == ro.name)
          chosen.push_back({&o, ro.binary.value_or(request.binary_data_output)});
  }
  json j = {{"model_name", model}};
  if (request.id) j["id"] = *request.id;
  j["outputs"] = json::array();
  std::string binary;
  for (const auto& c : chosen) {
    json o = {{"name", c.t->name}, {"datatype", c.t->datatype}, {"shape", c.t->shape}};
    if (c.binary) {
      const size_t before = binary.size();
      if (c.t->datatype == "FP32") {
        binary.append(reinterpret_cast<const char*>(c.t->fp32.data()),
                      c.t->fp32.size() * sizeof(float));
      } else {
        binary += serialize_bytes(c.t->bytes);
      }
      o["parameters"] = {{"binary_data_size", binary.size() - before}};
    } else if (c.t->datatype == "FP32") {
      o["data"] = c.t->fp32;
    } else {
      o["data"] = c.t->bytes;
    }
    j["outputs"].push_back(std::move(o));
  }
  EncodedResponse r;
  r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (binary.empty() &&
      std::none_of(chosen.begin(), chosen.end(), [](const Chosen& c) { return c.binary; })) {
    r.content_type = "application/json";
  } else {
    r.header_length = r.body.size();
    r.body += binary;
    r.content_type = "application/octet-stream";
  }
  return r;
}

}  // namespace zsclip::server
