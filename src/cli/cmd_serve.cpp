// zsclip serve: the KServe v2 inference server (src/server/). Built when ZSCLIP_BUILD_SERVER is on.
#ifdef ZSCLIP_WITH_SERVER
#include <signal.h>
#include <sys/select.h>
#include <unistd.h>

#include <cerrno>

#include <cstdlib>
#include <iostream>
#include <thread>

#include "cli/cli.h"
#include "server/server.h"
#include "zsclip/error.h"
#include "zsclip/model.h"

namespace zsclip::cli {
namespace {

double get_double(const Args& args, const std::string& name, double lo, double hi) {
  const std::string s = args.get(name);
  try {
    size_t used = 0;
    double v = std::stod(s, &used);
    if (used == s.size() && v >= lo && v <= hi) return v;
  } catch (const std::exception&) {
  }
  throw UsageError(name + " expects a number between " + std::to_string(lo) + " and " +
                   std::to_string(hi) + ", got \"" + s + "\"");
}

uint64_t get_bytes(const Args& args, const std::string& name) {
  const std::string s = args.get(name);
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
  const std::string suffix = s.substr(digits);
  uint64_t mult = 0;
  if (suffix.empty())
    mult = 1;
  else if (suffix == "K" || suffix == "KiB")
    mult = 1ull << 10;
  else if (suffix == "M" || suffix == "MiB")
    mult = 1ull << 20;
  else if (suffix == "G" || suffix == "GiB")
    mult = 1ull << 30;
  if (digits == 0 || digits > 12 || mult == 0)
    throw UsageError(
        name + " expects a size in bytes, optionally with K, M or G (e.g. 64M), got \"" + s + "\"");
  const uint64_t v = std::stoull(s.substr(0, digits)) * mult;
  if (v < 1024) throw UsageError(name + " must be at least 1024 bytes, got \"" + s + "\"");
  return v;
}

int g_signal_pipe[2] = {-1, -1};

extern "C" void on_signal(int sig) {
  const char c = static_cast<char>(sig);
  const int saved = errno;
  (void)!write(g_signal_pipe[1], &c, 1);
  errno = saved;
}

int run_serve(const Args& args) {
  if (!args.positional().empty())
    throw UsageError("unexpected argument \"" + args.positional()[0] + "\"");
  server::ServerOptions o;
  o.model_dir = args.get("--model", default_model_dir());
  o.host = args.get("--host");
  o.port = args.get_int("--port", 0, 65535);
  o.max_batch = args.get_int("--max-batch", 1, 4096);
  o.max_delay_ms = get_double(args, "--max-delay-ms", 0, 60000);
  o.max_queue = args.get_int("--max-queue", 1, 1 << 20);
  o.max_request_bytes = get_bytes(args, "--max-request-bytes");
  o.http_threads = args.get_int("--http-threads", 1, 4096);
  o.head_cache = args.get_int("--head-cache", 1, 1 << 20);
  o.max_labels = args.get_int("--max-labels", 1, 1 << 20);
  o.max_connections = args.get_int("--max-connections", 1, FD_SETSIZE - 32);
  o.header_seconds = get_double(args, "--header-seconds", 0.01, 3600);
  o.body_seconds = get_double(args, "--body-seconds", 0.01, 3600);
  o.drain_seconds = get_double(args, "--drain-seconds", 0, 3600);
  o.max_inflight = args.get_int("--max-inflight", 1, 4096);
  o.max_decodes = args.get_int("--max-decodes", 1, 4096);
  o.truncate = args.has("--truncate");
  o.model = model_options(args, true);

  // SIGINT/SIGTERM: the handler (on whichever thread the kernel picks: LibTorch and OpenBLAS start
  // threads of their own) writes the signal number to a pipe; a watcher thread reads it and asks
  // the server to drain. A 0 byte wakes the watcher when serving has ended.
  if (pipe(g_signal_pipe) != 0) throw Error(ErrorCode::kIo, "serve: cannot create the signal pipe");
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not end the server

  server::Server srv(o);
  const int port = srv.bind();
  std::thread watcher([&] {
    char c = 0;
    while (read(g_signal_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    if (c == 0) return;
    std::cerr << "zsclip serve: " << (c == SIGINT ? "SIGINT" : "SIGTERM")
              << ": no new connections; finishing the requests in flight" << std::endl;
    srv.stop();
  });
  std::cout << "zsclip serve: listening on http://" << o.host << ":" << port << std::endl;
  std::cerr << "zsclip serve: model " << o.model_dir << ", max batch " << o.max_batch
            << ", max delay " << o.max_delay_ms << " ms, max queue " << o.max_queue
            << ", max request " << o.max_request_bytes << " bytes" << std::endl;
  srv.serve();
  const char zero = 0;
  (void)!write(g_signal_pipe[1], &zero, 1);  // wakes the watcher if no signal came
  watcher.join();
  std::cerr << "zsclip serve: stopped" << std::endl;
  return 0;
}

ZSCLIP_COMMAND(Command{
    "serve",
    "[--model DIR] [--host ADDR] [--port N] [--max-batch N] [--max-delay-ms T] [--max-queue Q] "
    "[--max-request-bytes B] [--threads N] [--http-threads N] [--head-cache N] [--max-labels N] "
    "[--max-connections N] [--header-seconds S] [--body-seconds S] [--drain-seconds S] "
    "[--max-inflight N] [--max-decodes N] [--truncate]",
    "serve the model over HTTP: KServe v2 inference protocol with dynamic batching",
    "Endpoints: GET /v2/health/live, /v2/health/ready, /v2 (server metadata), /v2/models/NAME "
    "(model metadata), /v2/models/NAME/ready, /metrics (Prometheus); POST "
    "/v2/models/NAME/infer.\nModels: image_encoder (IMAGE: BYTES encoded files, base64 in JSON, or "
    "PIXELS: FP32 [N,3,n,n] -> IMAGE_EMBEDDING), text_encoder (TEXT -> TEXT_EMBEDDING), zero_shot "
    "(IMAGE or PIXELS, LABELS, optional TEMPLATES -> PROBS, TOP_LABEL). Triton's binary tensor "
    "data extension is accepted and, when asked for, returned. Concurrent requests are batched up "
    "to --max-batch items or --max-delay-ms; a full queue answers 503, a body over "
    "--max-request-bytes 413, a bad request 400 naming the field. --port 0 picks a free port; the "
    "bound address is printed on stdout.\nSlow clients: a request head must arrive within "
    "--header-seconds and a body within --body-seconds (else 408); connections beyond "
    "--max-connections are answered 503. Memory: at most --max-inflight requests are read, parsed "
    "and run at once, --max-decodes images decoded at once (README, \"Memory\").\nSIGINT/SIGTERM: "
    "stop accepting, close idle connections, answer the requests in flight with \"Connection: "
    "close\", and exit 0; connections still open after --drain-seconds are shut down.",
    run_serve});

}  // namespace
}  // namespace zsclip::cli
#endif  // ZSCLIP_WITH_SERVER
