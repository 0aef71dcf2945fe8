// The connection layer in front of cpp-httplib's request handling (`zsclip serve`).
//
// libcpp-httplib 0.11 gives every accepted connection a worker thread for its whole life, so slow
// or idle clients hold every worker; it accepts without limit; it answers a request whose client
// half-closed (shutdown(SHUT_WR)) with nothing; and it reads Content-Length with strtoull ("+5",
// "5 5" and repeated headers pass). Front replaces its accept loop:
//   - one thread accepts and reads request heads for every connection with poll(): a connection
//     occupies a worker only once its request head is complete, and returns to that thread
//     between keep-alive requests. A head must be complete within header_seconds of its first byte
//     (of the accept, for a new connection): 408 and close otherwise. An idle keep-alive connection
//     is closed after idle_seconds.
//   - at most max_connections are open; more are answered 503 and closed at once.
//   - heads are checked before any handler runs: one Content-Length of plain digits (no sign,
//     space or repeat), no Content-Length together with Transfer-Encoding, only "chunked" as a
//     Transfer-Encoding, CRLF line ends, no folded or malformed header lines (400); a
//     Content-Length over max_request_bytes is answered 413 without waiting for the body.
//   - a body must arrive within body_seconds of the worker starting to read it (408).
//   - drain(): the listening socket is closed, idle connections are closed, every response says
//     "Connection: close"; after drain_seconds the connections still open are shut down.
// Handlers and routes are httplib's (this class is an httplib::Server).
#pragma once

#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace zsclip::server {

struct FrontOptions {
  int max_connections = 512;
  int workers = 64;
  double header_seconds = 10;
  double body_seconds = 60;
  double idle_seconds = 5;
  double write_seconds = 30;
  double drain_seconds = 30;
  uint64_t max_request_bytes = 64ull << 20;
  int keep_alive_max = 1000;  // requests per connection
};

// What the front layer does by itself, for /metrics. Called from the accept thread, and
// `answered` also from the worker threads (httplib's responses): the callbacks must be
// thread-safe.
struct FrontEvents {
  // Every response, before it is written; target is set for those the front answers itself
  // (httplib's handlers count their own requests).
  std::function<void(int status, const std::string& target)> answered;
  std::function<void()> refused;         // connections beyond max_connections
  std::function<void()> header_timeout;  // heads not complete in time
  std::function<void(int64_t)> open;     // open connections now
};

// A request head's verdict: 0 when it may be handled, else the status to answer and why.
struct HeadCheck {
  int status = 0;
  std::string message;
  std::string target;  // the request target, for metrics
};
// `head` is the request line and headers up to and including the blank line.
HeadCheck check_request_head(const std::string& head, uint64_t max_body);

class Front : public httplib::Server {
 public:
  Front(const FrontOptions& options, FrontEvents events);
  ~Front() override;

  // Binds and listens (backlog 1024); returns the port, or -1.
  int bind(const std::string& host, int port);
  // Serves until drain() and the drain is complete (every connection closed).
  void run();
  // Starts draining. Thread-safe; idempotent.
  void drain();
  bool draining() const { return draining_; }

  // For handlers, on the worker thread that runs them: the connection closes after this response
  // (it says "Connection: close"), e.g. when its body was not read to the end.
  static void close_after_response();
  // Whether the body read that just failed ran out of body_seconds.
  static bool body_timed_out();
  // Restarts the body deadline (a handler that waited before reading the body).
  static void restart_body_deadline();

  struct Conn;

 private:
  bool process_and_close_socket(int sock) override;  // unused: run() replaces listen()
  void worker_loop();
  void handle(std::unique_ptr<Conn> c);
  void give_back(std::unique_ptr<Conn> c);
  void wake();

  const FrontOptions opt_;
  FrontEvents events_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> open_{0};
  int wake_pipe_[2] = {-1, -1};

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Conn>> ready_;     // heads complete, for a worker
  std::deque<std::unique_ptr<Conn>> returned_;  // back from a worker, for the accept thread
  std::set<int> busy_;                          // sockets a worker holds
  bool stop_workers_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace zsclip::server
