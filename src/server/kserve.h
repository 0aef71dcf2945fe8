// The KServe v2 (Open Inference Protocol) HTTP/REST wire format, with Triton's binary tensor data
// extension: parsing inference requests and encoding responses. No HTTP and no model here.
//
// A request body is a JSON object, optionally followed by binary tensor data when the request has
// an Inference-Header-Content-Length header (the JSON's length). An input whose parameters carry
// "binary_data_size" takes that many bytes of the binary part, in the order of the inputs: raw
// little-endian values for numbers, and for BYTES each element as a 4-byte little-endian length and
// the bytes. In plain JSON, BYTES elements are JSON strings (the server decides what they mean:
// zsclip reads IMAGE elements as base64).
//
// Every malformed body is an HttpError(400) whose message names the field or input.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace zsclip::server {

// A failure that becomes an HTTP status and a KServe error body {"error": message}.
struct HttpError : std::runtime_error {
  HttpError(int status_code, const std::string& message)
      : std::runtime_error(message), status(status_code) {}
  int status;
};

// The {"error": "..."} body.
std::string error_body(const std::string& message);

// An input or output of a model, as model metadata lists it ("shape": -1 = any size).
struct TensorSpec {
  std::string name;
  std::string datatype;  // "BYTES", "FP32" or "INT64"
  std::vector<int64_t> shape;
};

struct InputTensor {
  std::string name, datatype;
  std::vector<int64_t> shape;
  bool binary = false;             // the data came as binary data (Triton's extension)
  std::vector<std::string> bytes;  // BYTES elements, row-major
  std::vector<float> fp32;         // FP32
  std::vector<int64_t> int64;      // INT64
  int64_t element_count() const;   // product of shape
};

struct RequestedOutput {
  std::string name;
  std::optional<bool> binary;  // parameters.binary_data
};

struct InferRequest {
  std::optional<std::string> id;
  std::vector<InputTensor> inputs;
  std::vector<RequestedOutput> outputs;  // empty: every output
  bool binary_data_output = false;       // parameters.binary_data_output
  const InputTensor* find(const std::string& name) const;
};

// Parses an inference request for `model`, whose inputs are `specs` (unknown input names, repeated
// names and datatypes other than the spec's are refused). `header_length` is the value of the
// Inference-Header-Content-Length header when present. The JSON may hold at most `max_values`
// values (scalars, arrays and objects), counted while it is parsed, so that a body of millions of
// tiny elements is refused before it is held in memory. Throws HttpError(400).
InferRequest parse_infer_request(const std::string& body, std::optional<uint64_t> header_length,
                                 const std::string& model, const std::vector<TensorSpec>& specs,
                                 uint64_t max_values = UINT64_MAX);

// BYTES elements in the binary data extension's layout: each as a 4-byte little-endian length, then
// its bytes.
std::string serialize_bytes(const std::vector<std::string>& elements);

// Parses an Inference-Header-Content-Length value (a decimal integer). Throws HttpError(400).
uint64_t parse_header_length(const std::string& value);

// Throws HttpError(400) when the request asks for an output `model` does not have.
void check_requested_outputs(const InferRequest& request, const std::string& model,
                             const std::vector<TensorSpec>& outputs);

struct OutputTensor {
  std::string name, datatype;  // "FP32" (fp32) or "BYTES" (bytes)
  std::vector<int64_t> shape;
  std::vector<float> fp32;
  std::vector<std::string> bytes;
};

struct EncodedResponse {
  std::string body;
  std::string content_type;  // application/json, or application/octet-stream with binary data
  std::optional<uint64_t>
      header_length;  // Inference-Header-Content-Length when binary data follows
};

// The inference response: the requested outputs (all when none were named, in `outputs` order),
// each as JSON data or, when asked (parameters.binary_data, or binary_data_output), as binary data.
EncodedResponse encode_infer_response(const std::string& model, const InferRequest& request,
                                      std::vector<OutputTensor> outputs);

}  // namespace zsclip::server
