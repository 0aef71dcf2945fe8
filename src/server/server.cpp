#include "server/server.h"

#include <httplib.h>
#include <malloc.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "server/base64.h"
#include "server/batcher.h"
#include "server/front.h"
#include "server/head_cache.h"
#include "server/kserve.h"
#include "server/metrics.h"
#include "zsclip/error.h"
#include "zsclip/model.h"
#include "zsclip/preprocess.h"
#include "zsclip/tokenizer.h"
#include "zsclip/version.h"
#include "zsclip/zero_shot.h"

namespace zsclip::server {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

const char* kImageEncoder = "image_encoder";
const char* kTextEncoder = "text_encoder";
const char* kZeroShot = "zero_shot";
constexpr size_t kMaxTemplates = 100;  // OpenAI's largest set has 80
const char* kInferPattern = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?/infer)";

struct ModelSpec {
  std::string name;
  std::vector<TensorSpec> inputs, outputs;
};

[[noreturn]] void bad(const std::string& message) { throw HttpError(400, message); }

int status_of(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kInvalidImage:
    case ErrorCode::kInvalidText:
    case ErrorCode::kInvalidConfig:
    case ErrorCode::kUnsupported:
      return 400;
    default:
      return 500;
  }
}

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(error_body(message), "application/json");
}

// Rows of a BYTES input given as [N] or [N, 1] (Triton's clients send [N, 1] for dims [1]).
int64_t batch_of(const InputTensor& t, int max_batch, const char* what) {
  const bool ok = t.shape.size() == 1 || (t.shape.size() == 2 && t.shape[1] == 1);
  if (!ok) bad("input '" + t.name + "': shape must be [N] or [N, 1], got " + json(t.shape).dump());
  const int64_t n = t.shape[0];
  if (n < 1) bad("input '" + t.name + "' is empty (shape " + json(t.shape).dump() + ")");
  if (n > max_batch)
    bad("input '" + t.name + "': " + std::to_string(n) + " " + what +
        " exceed the server's --max-batch " + std::to_string(max_batch) + " per request");
  return n;
}

// A list input (LABELS, TEMPLATES) given as [C] or [1, C].
void check_list_shape(const InputTensor& t) {
  const bool ok = t.shape.size() == 1 || (t.shape.size() == 2 && t.shape[0] == 1);
  if (!ok) bad("input '" + t.name + "': shape must be [C] or [1, C], got " + json(t.shape).dump());
  if (t.element_count() < 1) bad("input '" + t.name + "' is empty");
}

}  // namespace

struct Server::Impl {
  ServerOptions opt;
  Model model;
  const Tokenizer& tokenizer;  // the model's
  Preprocessor pre;
  Metrics metrics;
  std::unique_ptr<Batcher<float>> images;
  std::unique_ptr<Batcher<int64_t>> texts;
  std::unique_ptr<HeadCache> heads;
  std::vector<ModelSpec> specs;
  std::unique_ptr<Front> front;
  httplib::Server* http = nullptr;  // front's routes
  std::atomic<bool> stopping{false};
  int port = -1;
  std::mutex inflight_mu;  // --max-inflight: requests reading, parsing, decoding or running
  std::condition_variable inflight_cv;
  int inflight_slots = 0;
  std::mutex decode_mu;  // --max-decodes: images being decoded
  std::condition_variable decode_cv;
  int decode_slots = 0;

  explicit Impl(const ServerOptions& o)
      : opt(o),
        model(load(o)),
        tokenizer(model.tokenizer()),
        pre(model.preprocess_config(), model.runtime()) {
    const int64_t n = model.image_size(), d = model.embed_dim(), l = model.context_length();
    const auto delay = std::chrono::microseconds(static_cast<int64_t>(opt.max_delay_ms * 1000.0));
    Model m = model;
    images = std::make_unique<Batcher<float>>(
        "image", 3 * n * n, d, opt.max_batch, delay, opt.max_queue,
        [m](const float* in, int64_t count, float* out) { m.encode_images(in, count, out); },
        &metrics);
    texts = std::make_unique<Batcher<int64_t>>(
        "text", l, d, opt.max_batch, delay, opt.max_queue,
        [m, l, d](const int64_t* in, int64_t count, float* out) {
          IdTensor ids({count, l}, std::vector<int64_t>(in, in + count * l));
          FloatTensor f = m.encode_texts(ids);
          std::copy(f.data.begin(), f.data.end(), out);
          (void)d;
        },
        &metrics);
    heads = std::make_unique<HeadCache>(model, static_cast<size_t>(opt.head_cache), opt.truncate);
    const TensorSpec image{"IMAGE", "BYTES", {-1}}, pixels{"PIXELS", "FP32", {-1, 3, n, n}};
    specs = {{kImageEncoder, {image, pixels}, {{"IMAGE_EMBEDDING", "FP32", {-1, d}}}},
             {kTextEncoder, {{"TEXT", "BYTES", {-1}}}, {{"TEXT_EMBEDDING", "FP32", {-1, d}}}},
             {kZeroShot,
              {image, pixels, {"LABELS", "BYTES", {-1}}, {"TEMPLATES", "BYTES", {-1}}},
              {{"PROBS", "FP32", {-1, -1}}, {"TOP_LABEL", "BYTES", {-1}}}}};
    FrontOptions fo;
    fo.max_connections = opt.max_connections;
    fo.workers = opt.http_threads;
    fo.header_seconds = opt.header_seconds;
    fo.body_seconds = opt.body_seconds;
    fo.drain_seconds = opt.drain_seconds;
    fo.max_request_bytes = opt.max_request_bytes;
    FrontEvents ev;
    ev.answered = [this](int status, const std::string& target) {
      metrics.http_response(status);
      if (target.empty()) return;  // httplib's responses: their handlers count the requests
      static const std::regex infer(kInferPattern);  // compiled once, not per response
      std::smatch m;
      if (std::regex_match(target, m, infer)) {
        const std::string name = m[1];
        metrics.request_done(
            name == kImageEncoder || name == kTextEncoder || name == kZeroShot ? name : "unknown",
            status, 0.0);
      }
    };
    ev.refused = [this] { metrics.connection_refused(); };
    ev.header_timeout = [this] { metrics.header_timeout(); };
    ev.open = [this](int64_t n) { metrics.open_connections(n); };
    front = std::make_unique<Front>(fo, std::move(ev));
    http = front.get();
    inflight_slots = opt.max_inflight;
    decode_slots = opt.max_decodes;
    routes();
  }

  static Model load(const ServerOptions& o) { return Model::load(o.model_dir, o.model); }

  // The model a request path names, or an HttpError(404).
  const ModelSpec& spec_of(const httplib::Request& req) const {
    const std::string name = req.matches[1];
    const std::string version = req.matches.size() > 2 ? std::string(req.matches[2]) : "";
    for (const auto& s : specs)
      if (s.name == name) {
        if (!version.empty() && version != "1")
          throw HttpError(404,
                          "model '" + name + "' has no version '" + version + "' (versions: 1)");
        return s;
      }
    throw HttpError(
        404,
        "model '" + name + "' is not served here (models: image_encoder, text_encoder, zero_shot)");
  }

  void routes() {
    http->set_error_handler(httplib::Server::HandlerWithResponse(
        [](const httplib::Request& req, httplib::Response& res) {
          if (res.body.empty()) {
            std::string msg = res.status == 404 ? "no such endpoint: " + req.method + " " + req.path
                                                : "HTTP status " + std::to_string(res.status) +
                                                      " for " + req.method + " " + req.path;
            if (res.status == 413) msg = "request body exceeds --max-request-bytes";
            res.set_content(error_body(msg), "application/json");
          }
          return httplib::Server::HandlerResponse::Handled;
        }));
    http->set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
          std::string msg = "internal error";
          try {
            std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            msg = std::string("internal error: ") + e.what();
          } catch (...) {
          }
          send_error(res, 500, msg);
        });
    // A body on a method without one (GET, ...) is refused by the front before any route runs.

    http->Get("/v2/health/live", [](const httplib::Request&, httplib::Response& res) {
      send_json(res, 200, {{"live", true}});
    });
    http->Get("/v2/health/ready", [this](const httplib::Request&, httplib::Response& res) {
      send_json(res, stopping ? 503 : 200, {{"ready", !stopping}});
    });
    http->Get(R"(/v2/?)", [](const httplib::Request&, httplib::Response& res) {
      send_json(
          res, 200,
          {{"name", "zsclip"}, {"version", version()}, {"extensions", {"binary_tensor_data"}}});
    });
    http->Get(R"(/v2/models/([^/]+)(?:/versions/([^/]+))?/ready)", [this](
                                                                       const httplib::Request& req,
                                                                       httplib::Response& res) {
      try {
        send_json(res, stopping ? 503 : 200, {{"name", spec_of(req).name}, {"ready", !stopping}});
      } catch (const HttpError& e) {
        send_error(res, e.status, e.what());
      }
    });
    http->Get(R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)",
              [this](const httplib::Request& req, httplib::Response& res) {
                try {
                  const ModelSpec& s = spec_of(req);
                  auto tensors = [](const std::vector<TensorSpec>& v) {
                    json a = json::array();
                    for (const auto& t : v)
                      a.push_back({{"name", t.name}, {"datatype", t.datatype}, {"shape", t.shape}});
                    return a;
                  };
                  send_json(res, 200,
                            {{"name", s.name},
                             {"versions", {"1"}},
                             {"platform", "pytorch_torchscript"},
                             {"inputs", tensors(s.inputs)},
                             {"outputs", tensors(s.outputs)}});
                } catch (const HttpError& e) {
                  send_error(res, e.status, e.what());
                }
              });
    http->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.render(), "text/plain; version=0.0.4");
    });
    http->Post(kInferPattern,
               httplib::Server::HandlerWithContentReader(
                   [this](const httplib::Request& req, httplib::Response& res,
                          const httplib::ContentReader& reader) { infer(req, res, reader); }));
    // Any other body-carrying request: read it (bounded) so the connection stays usable, then 404.
    auto other = httplib::Server::HandlerWithContentReader(
        [this](const httplib::Request& req, httplib::Response& res,
               const httplib::ContentReader& reader) {
          std::string body;
          if (!read_body(req, res, reader, body)) return;
          send_error(res, 404, "no such endpoint: " + req.method + " " + req.path);
        });
    http->Post(".*", other);
    http->Put(".*", other);
    http->Patch(".*", other);
  }

  // Reads the body up to --max-request-bytes; on failure answers 413, 408 or 400 (the connection
  // then closes: the rest of the body is not read) and returns false.
  bool read_body(const httplib::Request& req, httplib::Response& res,
                 const httplib::ContentReader& reader, std::string& body) {
    if (req.has_header("Content-Length") && !req.has_header("Content-Encoding")) {
      // One allocation instead of doublings (a base64 image is often megabytes). The front has
      // checked the value: plain digits, at most --max-request-bytes.
      const std::string len = req.get_header_value("Content-Length");
      if (!len.empty() && len.size() < 19 &&
          len.find_first_not_of("0123456789") == std::string::npos)
        body.reserve(
            static_cast<size_t>(std::min<uint64_t>(std::stoull(len), opt.max_request_bytes)));
    }
    bool too_big = false;
    const bool ok = reader([&](const char* data, size_t n) {
      if (body.size() + n > opt.max_request_bytes) {
        too_big = true;
        return false;
      }
      body.append(data, n);
      return true;
    });
    if (ok) return true;
    Front::close_after_response();
    body.clear();
    body.shrink_to_fit();
    if (too_big || res.status == 413)
      send_error(
          res, 413,
          "request body exceeds --max-request-bytes " + std::to_string(opt.max_request_bytes));
    else if (Front::body_timed_out())
      send_error(res, 408,
                 "request body not received within --body-seconds " + num(opt.body_seconds));
    else
      send_error(
          res, 400,
          "could not read the request body (truncated, or a bad chunked/compressed encoding)");
    return false;
  }

  // A counting semaphore's slot, held for a scope.
  class Slot {
   public:
    Slot(std::mutex& mu, std::condition_variable& cv, int& free) : mu_(mu), cv_(cv), free_(free) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return free_ > 0; });
      --free_;
    }
    ~Slot() {
      std::lock_guard<std::mutex> lock(mu_);
      ++free_;
      cv_.notify_one();
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    std::mutex& mu_;
    std::condition_variable& cv_;
    int& free_;
  };

  static std::string num(double v) {
    std::ostringstream o;
    o << v;
    return o.str();
  }

  // The most JSON values a request for `spec` may hold: its largest inputs at --max-batch and
  // --max-labels, and room for names, shapes and parameters. Counted while parsing.
  uint64_t max_values(const ModelSpec& spec) const {
    const uint64_t b = static_cast<uint64_t>(opt.max_batch), side = model.image_size();
    uint64_t n = 1024;
    for (const auto& in : spec.inputs) {
      if (in.name == "PIXELS")
        n += b * 3 * side * side;
      else if (in.name == "LABELS")
        n += static_cast<uint64_t>(opt.max_labels);
      else if (in.name == "TEMPLATES")
        n += kMaxTemplates;
      else
        n += b;
    }
    return n;
  }

  void infer(const httplib::Request& req, httplib::Response& res,
             const httplib::ContentReader& reader) {
    const auto t0 = Clock::now();
    ++metrics.inflight;
    std::string model_name = req.matches[1];
    std::string body;
    int status = 200;
    // The slot bounds the memory of requests in flight (README: "Memory"). Waiting for it does
    // not count against --body-seconds.
    Slot slot(inflight_mu, inflight_cv, inflight_slots);
    Front::restart_body_deadline();
    size_t body_bytes = 0;
    if (!read_body(req, res, reader, body)) {
      status = res.status;
    } else {
      try {
        const ModelSpec& spec = spec_of(req);
        std::optional<uint64_t> header_length;
        if (req.has_header("Inference-Header-Content-Length"))
          header_length =
              parse_header_length(req.get_header_value("Inference-Header-Content-Length"));
        body_bytes = body.size();
        InferRequest r =
            parse_infer_request(body, header_length, spec.name, spec.inputs, max_values(spec));
        body.clear();
        body.shrink_to_fit();
        check_requested_outputs(r, spec.name, spec.outputs);
        std::vector<OutputTensor> outputs;
        if (spec.name == kImageEncoder)
          outputs = image_encoder(r);
        else if (spec.name == kTextEncoder)
          outputs = text_encoder(r);
        else
          outputs = zero_shot(r);
        EncodedResponse enc = encode_infer_response(spec.name, r, std::move(outputs));
        if (enc.header_length)
          res.set_header("Inference-Header-Content-Length", std::to_string(*enc.header_length));
        res.status = 200;
        res.set_content(std::move(enc.body), enc.content_type.c_str());
      } catch (const HttpError& e) {
        status = e.status;
        send_error(res, status, e.what());
      } catch (const Error& e) {
        status = status_of(e.code());
        send_error(res, status, std::string(error_code_name(e.code())) + ": " + e.what());
      } catch (const std::exception& e) {
        status = 500;
        send_error(res, status, std::string("internal error: ") + e.what());
      }
    }
    // A large body leaves its pages with the allocator; give them back to the system.
    if (body_bytes >= (size_t{8} << 20)) malloc_trim(0);
    --metrics.inflight;
    const std::string known =
        model_name == kImageEncoder || model_name == kTextEncoder || model_name == kZeroShot
            ? model_name
            : std::string("unknown");
    metrics.request_done(known, status, std::chrono::duration<double>(Clock::now() - t0).count());
  }

  // A place in the batcher's queue, or 503 at once (backpressure).
  template <typename In>
  void admit(Batcher<In>& b) {
    if (!b.try_admit())
      throw HttpError(503, "the " + b.name() + " queue is full (--max-queue " +
                               std::to_string(opt.max_queue) + " requests admitted); retry later");
  }

  // Image features [N, D] for the request's IMAGE or PIXELS, through the image batcher.
  std::vector<float> encode_images(const InferRequest& r, int64_t* count) {
    const InputTensor* image = r.find("IMAGE");
    const InputTensor* pixels = r.find("PIXELS");
    if (image && pixels) bad("give one of inputs 'IMAGE' and 'PIXELS', not both");
    if (!image && !pixels)
      bad("missing input 'IMAGE' (encoded image files) or 'PIXELS' (preprocessed FP32)");
    const int64_t side = model.image_size();
    const size_t per = static_cast<size_t>(3 * side * side);
    int64_t n = 0;
    if (image) {
      n = batch_of(*image, images->max_batch(), "images");
    } else {
      const auto& s = pixels->shape;
      if (s.size() != 4 || s[1] != 3 || s[2] != side || s[3] != side)
        bad("input 'PIXELS': shape must be [N, 3, " + std::to_string(side) + ", " +
            std::to_string(side) + "], got " + json(s).dump());
      n = s[0];
      if (n < 1) bad("input 'PIXELS' is empty");
      if (n > images->max_batch())
        bad("input 'PIXELS': " + std::to_string(n) + " images exceed the server's --max-batch " +
            std::to_string(images->max_batch()) + " per request");
    }
    admit(*images);
    Batcher<float>::Job job;
    try {
      job.n = n;
      if (image) {
        job.input.resize(static_cast<size_t>(n) * per);
        std::string decoded;
        for (int64_t i = 0; i < n; ++i) {
          const std::string where = "IMAGE[" + std::to_string(i) + "]";
          const std::string* bytes = &image->bytes[static_cast<size_t>(i)];
          if (!image->binary) {
            std::string err;
            if (!base64_decode(*bytes, &decoded, &err))
              bad("input 'IMAGE' element " + std::to_string(i) + ": not base64 (" + err + ")");
            bytes = &decoded;
          }
          try {
            Slot decoding(decode_mu, decode_cv, decode_slots);  // --max-decodes
            pre.from_buffer_into(bytes->data(), bytes->size(), where,
                                 job.input.data() + static_cast<size_t>(i) * per);
          } catch (const Error& e) {
            throw HttpError(status_of(e.code()), "input 'IMAGE' element " + std::to_string(i) +
                                                     ": " + error_code_name(e.code()) + ": " +
                                                     e.what());
          }
        }
      } else {
        job.input = pixels->fp32;
      }
    } catch (...) {
      images->cancel_admission();
      throw;
    }
    images->run(job);
    *count = n;
    return std::move(job.output);
  }

  std::vector<OutputTensor> image_encoder(const InferRequest& r) {
    int64_t n = 0;
    std::vector<float> f = encode_images(r, &n);
    return {{"IMAGE_EMBEDDING", "FP32", {n, model.embed_dim()}, std::move(f), {}}};
  }

  std::vector<OutputTensor> text_encoder(const InferRequest& r) {
    const InputTensor* text = r.find("TEXT");
    if (!text) bad("missing input 'TEXT'");
    const int64_t n = batch_of(*text, texts->max_batch(), "texts");
    admit(*texts);
    Batcher<int64_t>::Job job;
    try {
      job.n = n;
      job.input = tokenizer.tokenize(text->bytes, model.context_length(), opt.truncate).data;
    } catch (...) {
      texts->cancel_admission();
      throw;
    }
    texts->run(job);
    return {{"TEXT_EMBEDDING", "FP32", {n, model.embed_dim()}, std::move(job.output), {}}};
  }

  std::vector<OutputTensor> zero_shot(const InferRequest& r) {
    const InputTensor* labels = r.find("LABELS");
    if (!labels) bad("missing input 'LABELS' (the class names)");
    check_list_shape(*labels);
    if (labels->bytes.size() > static_cast<size_t>(opt.max_labels))
      bad("input 'LABELS': " + std::to_string(labels->bytes.size()) +
          " labels exceed the server's --max-labels " + std::to_string(opt.max_labels));
    validate_labels(labels->bytes, "input 'LABELS'");
    std::vector<std::string> templates = builtin_templates("simple");
    if (const InputTensor* t = r.find("TEMPLATES")) {
      check_list_shape(*t);
      if (t->bytes.size() > kMaxTemplates)
        bad("input 'TEMPLATES': " + std::to_string(t->bytes.size()) +
            " templates exceed the limit of " + std::to_string(kMaxTemplates));
      if (t->bytes.size() == 1 && t->bytes[0].find("{}") == std::string::npos) {
        try {
          templates = builtin_templates(t->bytes[0]);
        } catch (const Error& e) {
          bad("input 'TEMPLATES': \"" + t->bytes[0] + "\" has no {} and is not a built-in set (" +
              e.what() + ")");
        }
      } else {
        validate_templates(t->bytes, "input 'TEMPLATES'");
        templates = t->bytes;
      }
    }
    bool hit = false;
    std::shared_ptr<const ZeroShotHead> head = heads->get(labels->bytes, templates, &hit);
    metrics.head_cache(hit, static_cast<int64_t>(heads->size()));
    int64_t n = 0;
    FloatTensor features;
    features.data = encode_images(r, &n);
    features.shape = {n, model.embed_dim()};
    std::vector<Prediction> preds = head->classify(features, 1);
    const int64_t c = head->num_classes();
    OutputTensor probs{"PROBS", "FP32", {n, c}, {}, {}};
    OutputTensor top{"TOP_LABEL", "BYTES", {n}, {}, {}};
    probs.fp32.reserve(static_cast<size_t>(n * c));
    for (const auto& p : preds) {
      probs.fp32.insert(probs.fp32.end(), p.probs.begin(), p.probs.end());
      top.bytes.push_back(p.top.empty() ? std::string() : p.top[0].label);
    }
    return {std::move(probs), std::move(top)};
  }
};

Server::Server(const ServerOptions& options) {
  if (options.max_batch < 1)
    throw Error(ErrorCode::kInvalidArgument, "serve: max_batch must be >= 1");
  if (options.max_queue < 1)
    throw Error(ErrorCode::kInvalidArgument, "serve: max_queue must be >= 1");
  if (options.max_labels < 1)
    throw Error(ErrorCode::kInvalidArgument, "serve: max_labels must be >= 1");
  if (!(options.max_delay_ms >= 0))
    throw Error(ErrorCode::kInvalidArgument, "serve: max_delay_ms must be >= 0");
  if (options.max_connections < 1)
    throw Error(ErrorCode::kInvalidArgument, "serve: max_connections must be >= 1");
  if (options.max_inflight < 1 || options.max_decodes < 1)
    throw Error(ErrorCode::kInvalidArgument, "serve: max_inflight and max_decodes must be >= 1");
  if (!(options.header_seconds > 0) || !(options.body_seconds > 0) || !(options.drain_seconds >= 0))
    throw Error(ErrorCode::kInvalidArgument,
                "serve: header_seconds and body_seconds must be > 0, drain_seconds >= 0");
  impl_ = std::make_unique<Impl>(options);
  const ServerOptions& o = impl_->opt;
  httplib::Server& http = *impl_->http;
  http.set_payload_max_length(static_cast<size_t>(o.max_request_bytes));
  // What the Keep-Alive response header announces; the front enforces both.
  http.set_keep_alive_max_count(1000);
  http.set_keep_alive_timeout(5);
  // httplib's default options set SO_REUSEPORT, which would let a second server bind the same port;
  // SO_REUSEADDR only allows a quick restart.
  http.set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
}

Server::~Server() { stop(); }

int Server::bind() {
  Impl& s = *impl_;
  const int port = s.front->bind(s.opt.host, s.opt.port);
  if (port < 0)
    throw Error(ErrorCode::kIo, "cannot listen on " + s.opt.host + ":" +
                                    std::to_string(s.opt.port) +
                                    " (address in use, or not an address of this machine)");
  s.port = port;
  return port;
}

void Server::serve() {
  Impl& s = *impl_;
  if (s.port < 0) bind();
  s.front->run();  // returns once drained: every connection closed, every handler returned
  // Every handler has returned, so no request waits in a batcher any more.
  s.images->stop();
  s.texts->stop();
}

void Server::stop() {
  if (!impl_) return;
  impl_->stopping = true;
  impl_->front->drain();
}

}  // namespace zsclip::server
