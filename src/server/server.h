// zsclip's inference server: the KServe v2 HTTP/REST protocol (with Triton's binary tensor data
// extension) over one loaded CLIP model, with dynamic batching. Used by `zsclip serve`.
//
// Models served (GET /v2/models/NAME describes each):
//   image_encoder  IMAGE (BYTES [N]: encoded image files; base64 strings in plain JSON, raw bytes
//                  as binary data) or PIXELS (FP32 [N,3,n,n], preprocessed) -> IMAGE_EMBEDDING
//                  (FP32 [N,D])
//   text_encoder   TEXT (BYTES [N]) -> TEXT_EMBEDDING (FP32 [N,D])
//   zero_shot      IMAGE or PIXELS, LABELS (BYTES [C]), optional TEMPLATES (BYTES [T]: templates
//                  with "{}", or one built-in set name; default "simple") -> PROBS (FP32 [N,C]) and
//                  TOP_LABEL (BYTES [N]). Heads are built once per (labels, templates) and cached
//                  (LRU).
// Embeddings are projected and not normalised, as `zsclip embed` prints them.
//
// Images are decoded and preprocessed on the HTTP worker threads, so a bad image fails its own
// request (400) before it can join a batch; batches of images (image_encoder and zero_shot
// together) and of texts are run by one thread each. Depends on zsclip's public API only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "zsclip/model.h"

namespace zsclip::server {

struct ServerOptions {
  std::string model_dir;
  std::string host = "127.0.0.1";
  int port = 8080;                           // 0: any free port (bind() returns it)
  int max_batch = 32;                        // items (images or texts) per encoder call
  double max_delay_ms = 5.0;                 // the longest a request waits for others to batch with
  int max_queue = 256;                       // requests admitted and waiting, per encoder; then 503
  uint64_t max_request_bytes = 64ull << 20;  // larger bodies: 413
  int http_threads = 64;  // HTTP worker threads: requests (heads complete) handled at once
  // Connections: open at once (more: 503 and closed); a request head must arrive within
  // header_seconds (of the accept, or of its first byte on a kept-alive connection) and a body
  // within body_seconds, else 408; stop() closes idle connections, answers with "Connection:
  // close" and shuts down what is still open after drain_seconds.
  int max_connections = 512;
  double header_seconds = 10;
  double body_seconds = 60;
  double drain_seconds = 30;
  // Memory (README "Memory"): inference requests read, parsed, decoded and run at once (others
  // wait, their bodies unread), and images decoded at once.
  int max_inflight = 16;
  int max_decodes = 2;
  int head_cache = 64;    // zero-shot heads kept
  int max_labels = 1000;  // LABELS per zero_shot request (TEMPLATES: at most 100)
  // Texts and prompts longer than the context: false (default) answers 400 naming the text and its
  // token count; true cuts them as clip.tokenize(truncate=True) does (`zsclip serve --truncate`).
  bool truncate = false;
  ModelOptions model;  // device, precision, runtime (its cores) of the model served
};

class Server {
 public:
  // Loads the model (throws zsclip::Error) and sets up the routes.
  explicit Server(const ServerOptions& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket and returns its port. Throws zsclip::Error(kIo) when it cannot.
  int bind();
  // Serves until stop(); returns once the in-flight requests have been answered.
  void serve();
  // Stops accepting connections; serve() then drains and returns. Thread-safe, idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zsclip::server
