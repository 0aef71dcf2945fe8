#include "server/front.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>

#include "server/kserve.h"

namespace zsclip::server {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMaxHead = 16 * 1024;  // request line and headers together
constexpr double kLingerSeconds = 1.0;  // reading (and dropping) what follows a refusal

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

int ms_until(Clock::time_point t) {
  const auto d = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(d, 0, 1000));
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(const std::string& a, const char* b) {
  const size_t n = std::strlen(b);
  if (a.size() != n) return false;
  for (size_t i = 0; i < n; ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

std::string printable(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 40)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

const char* reason(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 408:
      return "Request Timeout";
    case 413:
      return "Payload Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

// A complete response with "Connection: close", written without blocking (it fits the socket's
// buffer of a fresh connection; if not, the client loses it, as it would lose the connection).
void send_canned(int fd, int status, const std::string& message) {
  const std::string body = error_body(message);
  const std::string text =
      "HTTP/1.1 " + std::to_string(status) + " " + reason(status) +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\n\r\n" + body;
  (void)!::send(fd, text.data(), text.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK); }

void ip_and_port(const sockaddr_storage& a, std::string& ip, int& port) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (a.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
    port = ntohs(in->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* in = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &in->sin6_addr, buf, sizeof(buf));
    port = ntohs(in->sin6_port);
  }
  ip = buf;
}

// The target of a request line that has arrived ("" before that), for metrics.
std::string target_of(const std::string& buf) {
  const size_t eol = buf.find("\r\n");
  if (eol == std::string::npos) return "";
  const size_t sp1 = buf.find(' ');
  const size_t sp2 = sp1 < eol ? buf.find(' ', sp1 + 1) : std::string::npos;
  return sp2 < eol ? buf.substr(sp1 + 1, sp2 - sp1 - 1) : "";
}

}  // namespace

HeadCheck check_request_head(const std::string& head, uint64_t max_body) {
  HeadCheck out;
  auto fail = [&out](int status, std::string message) {
    out.status = status;
    out.message = std::move(message);
    return out;
  };
  size_t eol = head.find("\r\n");
  const std::string line = head.substr(0, eol);
  const size_t sp1 = line.find(' ');
  out.target = target_of(head);
  if (head.find("\n\n") != std::string::npos || head.find("\r\r") != std::string::npos)
    return fail(400, "request head lines must end with CRLF");
  bool have_length = false, chunked = false;
  uint64_t length = 0;
  for (size_t pos = eol + 2; pos < head.size();) {
    const size_t end = head.find("\r\n", pos);
    if (end == std::string::npos || end == pos) break;  // the blank line
    const std::string h = head.substr(pos, end - pos);
    pos = end + 2;
    if (h[0] == ' ' || h[0] == '\t') return fail(400, "folded header lines are not accepted");
    const size_t colon = h.find(':');
    if (colon == std::string::npos || colon == 0)
      return fail(400, "malformed header line \"" + printable(h) + "\"");
    const std::string name = h.substr(0, colon);
    if (name.find_first_of(" \t") != std::string::npos)
      return fail(400, "header name \"" + printable(name) + "\" contains white space");
    const size_t v0 = h.find_first_not_of(" \t", colon + 1);
    const size_t v1 = h.find_last_not_of(" \t");
    const std::string value = v0 == std::string::npos ? "" : h.substr(v0, v1 - v0 + 1);
    if (iequals(name, "content-length")) {
      if (have_length) return fail(400, "header Content-Length is given more than once");
      have_length = true;
      if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos)
        return fail(400, "header Content-Length must be a decimal number of bytes, got \"" +
                             printable(value) + "\"");
      const size_t digits = value.size() - std::min(value.find_first_not_of('0'), value.size());
      if (digits > 19 || (length = std::stoull(value)) > max_body)
        return fail(413, "request body of " + printable(value) +
                             " bytes exceeds --max-request-bytes " + std::to_string(max_body));
    } else if (iequals(name, "transfer-encoding")) {
      if (chunked) return fail(400, "header Transfer-Encoding is given more than once");
      if (!iequals(value, "chunked"))
        return fail(
            400, "Transfer-Encoding \"" + printable(value) + "\" is not supported (only chunked)");
      chunked = true;
    }
  }
  if (have_length && chunked)
    return fail(400, "a request cannot have both Content-Length and Transfer-Encoding");
  // httplib reads bodies of these methods only; another method's body would be read as the next
  // request.
  const std::string method = line.substr(0, std::min(sp1, line.size()));
  const bool body_method =
      method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
  if (!body_method && (chunked || (have_length && length > 0)))
    return fail(400, "a " + printable(method) + " request cannot carry a body here");
  return out;
}

struct Front::Conn {
  int fd = -1;
  std::string buf;  // bytes read and not yet handled (a head, perhaps more)
  Clock::time_point deadline;
  bool started = false;    // some bytes of the next request arrived
  bool eof = false;        // the client half-closed
  bool lingering = false;  // refused: reading and dropping until EOF or the deadline
  int served = 0;
};

namespace {

thread_local struct WorkerState {
  bool close_after = false;
  bool timed_out = false;
  Clock::time_point* deadline = nullptr;
  double body_seconds = 0;
} tl;

// A connection's bytes for httplib: first what the accept thread read, then the socket, within
// the body deadline. Writing never asks whether the peer still sends (httplib's own stream does,
// and so never answers a client that half-closed).
class ConnStream : public httplib::Stream {
 public:
  ConnStream(Front::Conn& c, Clock::time_point deadline, double write_seconds)
      : c_(c), deadline_(deadline), write_ms_(static_cast<int>(write_seconds * 1000)) {
    tl.deadline = &deadline_;
  }
  ~ConnStream() override { tl.deadline = nullptr; }

  bool is_readable() const override {
    if (off_ < c_.buf.size()) return true;
    pollfd p{c_.fd, POLLIN, 0};
    return ::poll(&p, 1, ms_left()) > 0;
  }
  bool is_writable() const override {
    pollfd p{c_.fd, POLLOUT, 0};
    return ::poll(&p, 1, write_ms_) > 0 && !(p.revents & (POLLERR | POLLNVAL));
  }
  ssize_t read(char* ptr, size_t size) override {
    if (off_ < c_.buf.size()) {
      const size_t n = std::min(size, c_.buf.size() - off_);
      std::memcpy(ptr, c_.buf.data() + off_, n);
      off_ += n;
      return static_cast<ssize_t>(n);
    }
    if (c_.eof) return 0;
    for (;;) {
      const ssize_t n = ::recv(c_.fd, ptr, size, 0);
      if (n > 0) return n;
      if (n == 0) {
        c_.eof = true;
        return 0;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      if (Clock::now() >= deadline_) {
        tl.timed_out = true;
        return -1;
      }
      pollfd p{c_.fd, POLLIN, 0};
      const int r = ::poll(&p, 1, ms_left());
      if (r < 0 && errno != EINTR) return -1;
    }
  }
  ssize_t write(const char* ptr, size_t size) override {
    for (;;) {
      const ssize_t n = ::send(c_.fd, ptr, size, MSG_NOSIGNAL);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      pollfd p{c_.fd, POLLOUT, 0};
      if (::poll(&p, 1, write_ms_) <= 0) return -1;
    }
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t len = sizeof(a);
    port = 0;
    if (getpeername(c_.fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) ip_and_port(a, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t len = sizeof(a);
    port = 0;
    if (getsockname(c_.fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) ip_and_port(a, ip, port);
  }
  int socket() const override { return c_.fd; }

  // What was read beyond this request (a pipelined next request).
  std::string unread() const { return c_.buf.substr(std::min(off_, c_.buf.size())); }

 private:
  int ms_left() const {
    const auto d =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
    return static_cast<int>(std::clamp<int64_t>(d, 0, 1 << 30));
  }

  Front::Conn& c_;
  size_t off_ = 0;
  Clock::time_point deadline_;
  int write_ms_;
};

}  // namespace

void Front::close_after_response() { tl.close_after = true; }
bool Front::body_timed_out() { return tl.timed_out; }
void Front::restart_body_deadline() {
  if (tl.deadline) *tl.deadline = Clock::now() + seconds(tl.body_seconds);
}

Front::Front(const FrontOptions& options, FrontEvents events)
    : opt_(options), events_(std::move(events)) {
  if (pipe2(wake_pipe_, O_NONBLOCK | O_CLOEXEC) != 0) wake_pipe_[0] = wake_pipe_[1] = -1;
  // Every response httplib writes is counted before it is written (its logger runs after, so a
  // client could read a response that /metrics does not count yet). Exactly one Connection
  // header: "close" when the handler or the drain asks for it.
  set_post_routing_handler([this](const httplib::Request&, httplib::Response& res) {
    if (events_.answered) events_.answered(res.status, "");
    if (!tl.close_after && !draining_) return;
    tl.close_after = true;
    res.headers.erase("Connection");
    res.headers.erase("Keep-Alive");
    res.set_header("Connection", "close");
  });
}

Front::~Front() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_workers_ = true;
    cv_.notify_all();
  }
  for (auto& t : workers_)
    if (t.joinable()) t.join();
  for (int fd : wake_pipe_)
    if (fd >= 0) ::close(fd);
}

bool Front::process_and_close_socket(int sock) {
  ::close(sock);
  return false;
}

int Front::bind(const std::string& host, int port) {
  const int p = port == 0 ? bind_to_any_port(host) : (bind_to_port(host, port) ? port : -1);
  if (p < 0) return -1;
  // libcpp-httplib listens with a backlog of 5: a burst of new connections would see resets.
  ::listen(svr_sock_, 1024);
  return p;
}

void Front::wake() {
  const char c = 1;
  (void)!::write(wake_pipe_[1], &c, 1);
}

void Front::drain() {
  draining_ = true;
  wake();
}

void Front::give_back(std::unique_ptr<Conn> c) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    returned_.push_back(std::move(c));
  }
  wake();
}

void Front::worker_loop() {
  for (;;) {
    std::unique_ptr<Conn> c;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_workers_ || !ready_.empty(); });
      if (ready_.empty()) return;
      c = std::move(ready_.front());
      ready_.pop_front();
    }
    handle(std::move(c));
  }
}

void Front::handle(std::unique_ptr<Conn> c) {
  tl.close_after = draining_ || c->eof || ++c->served >= opt_.keep_alive_max;
  tl.timed_out = false;
  tl.body_seconds = opt_.body_seconds;
  bool closed = false, ok = false;
  std::string rest;
  {
    ConnStream s(*c, Clock::now() + seconds(opt_.body_seconds), opt_.write_seconds);
    try {
      ok = process_request(s, tl.close_after, closed, nullptr);
      rest = s.unread();
    } catch (...) {  // outside the handlers (which httplib guards): drop the connection
      ok = false;
    }
  }
  if (!ok || closed || tl.close_after || draining_ || (c->eof && rest.empty())) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      busy_.erase(c->fd);
      ::shutdown(c->fd, SHUT_WR);
      ::close(c->fd);
    }
    --open_;
    wake();  // the accept thread publishes the count and may be waiting for the drain
    return;
  }
  c->buf = std::move(rest);
  c->started = !c->buf.empty();
  c->deadline = Clock::now() + seconds(c->started ? opt_.header_seconds : opt_.idle_seconds);
  {
    std::lock_guard<std::mutex> lock(mu_);
    busy_.erase(c->fd);
  }
  give_back(std::move(c));
}

void Front::run() {
  for (int i = 0; i < std::max(1, opt_.workers); ++i)
    workers_.emplace_back([this] { worker_loop(); });
  int lfd = svr_sock_;
  set_nonblocking(lfd);
  std::map<int, std::unique_ptr<Conn>> conns;  // waiting for a request head, or lingering
  bool drain_started = false;
  Clock::time_point drain_deadline{}, accept_pause{};
  int64_t published = -1;

  auto close_conn = [&](int fd) {
    ::close(fd);
    conns.erase(fd);
    --open_;
  };
  auto refuse = [&](Conn& c, int status, const std::string& message, const std::string& target) {
    if (events_.answered) events_.answered(status, target);  // counted before the client sees it
    send_canned(c.fd, status, message);
    ::shutdown(c.fd, SHUT_WR);
    c.lingering = true;
    c.buf.clear();
    c.deadline = Clock::now() + seconds(kLingerSeconds);
  };
  // A head complete in c.buf goes to a worker, a bad one is answered here; else keep waiting.
  auto try_dispatch = [&](Conn& c) {
    const size_t end = c.buf.find("\r\n\r\n");
    if (end == std::string::npos || end + 4 > kMaxHead) {
      if (c.buf.size() > kMaxHead)
        refuse(c, 431, "request head exceeds " + std::to_string(kMaxHead) + " bytes",
               target_of(c.buf));
      else if (c.eof)
        close_conn(c.fd);
      return;
    }
    HeadCheck h = check_request_head(c.buf.substr(0, end + 4), opt_.max_request_bytes);
    if (h.status) {
      refuse(c, h.status, h.message, h.target);
      return;
    }
    const int fd = c.fd;
    std::lock_guard<std::mutex> lock(mu_);
    busy_.insert(fd);
    ready_.push_back(std::move(conns[fd]));
    conns.erase(fd);
    cv_.notify_one();
  };

  std::vector<pollfd> fds;
  for (;;) {
    const auto now = Clock::now();
    {
      std::deque<std::unique_ptr<Conn>> back;
      {
        std::lock_guard<std::mutex> lock(mu_);
        back.swap(returned_);
      }
      for (auto& c : back) {
        const int fd = c->fd;
        conns[fd] = std::move(c);
        if (draining_ && !conns[fd]->started)
          close_conn(fd);
        else
          try_dispatch(*conns[fd]);
      }
    }
    if (draining_ && !drain_started) {
      drain_started = true;
      drain_deadline = now + seconds(opt_.drain_seconds);
      ::shutdown(lfd, SHUT_RDWR);
      ::close(lfd);
      svr_sock_ = -1;
      std::vector<int> idle;
      for (auto& [fd, c] : conns)
        if (!c->started && !c->lingering) idle.push_back(fd);
      for (int fd : idle) close_conn(fd);
    }
    if (drain_started) {
      if (now >= drain_deadline) {
        std::vector<int> all;
        for (auto& [fd, c] : conns) all.push_back(fd);
        for (int fd : all) close_conn(fd);
        std::lock_guard<std::mutex> lock(mu_);
        for (int fd : busy_) ::shutdown(fd, SHUT_RDWR);
      }
      if (conns.empty() && open_ == 0) break;
    }
    if (events_.open && open_ != published) events_.open(published = open_);

    fds.clear();
    fds.push_back({wake_pipe_[0], POLLIN, 0});
    const bool accepting = !drain_started && now >= accept_pause;
    if (accepting) fds.push_back({lfd, POLLIN, 0});
    Clock::time_point next = now + std::chrono::seconds(1);
    if (drain_started) next = std::min(next, drain_deadline);
    if (!accepting && !drain_started) next = std::min(next, accept_pause);
    for (auto& [fd, c] : conns) {
      fds.push_back({fd, POLLIN, 0});
      next = std::min(next, c->deadline);
    }
    const int r = ::poll(fds.data(), fds.size(), ms_until(next));
    if (r < 0 && errno != EINTR) break;
    size_t k = 0;
    if (r > 0 && (fds[k].revents & POLLIN)) {
      char drop[64];
      while (::read(wake_pipe_[0], drop, sizeof(drop)) > 0) {
      }
    }
    ++k;
    if (accepting) {
      if (r > 0 && (fds[k].revents & POLLIN)) {
        for (int n = 0; n < 64; ++n) {
          const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
              accept_pause = Clock::now() + std::chrono::milliseconds(50);
            break;
          }
          // httplib's request parser answers 500 to a socket beyond select()'s FD_SETSIZE.
          if (open_ >= opt_.max_connections || fd >= FD_SETSIZE) {
            if (events_.refused) events_.refused();
            if (events_.answered) events_.answered(503, "");
            send_canned(fd, 503,
                        "too many open connections (--max-connections " +
                            std::to_string(opt_.max_connections) + "); retry later");
            ::shutdown(fd, SHUT_WR);
            ::close(fd);
            continue;
          }
          int yes = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
          auto c = std::make_unique<Conn>();
          c->fd = fd;
          c->deadline = Clock::now() + seconds(opt_.header_seconds);
          conns[fd] = std::move(c);
          ++open_;
        }
      }
      ++k;
    }
    const auto after = Clock::now();
    for (; k < fds.size(); ++k) {
      auto it = conns.find(fds[k].fd);
      if (it == conns.end()) continue;
      Conn& c = *it->second;
      if (fds[k].revents & (POLLIN | POLLHUP | POLLERR)) {
        char buf[16384];
        const ssize_t n = ::recv(c.fd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
        if (n < 0 || (n == 0 && (c.lingering || c.buf.empty()))) {
          close_conn(c.fd);
          continue;
        }
        if (c.lingering) continue;
        if (n == 0) {
          c.eof = true;
        } else {
          // A kept-alive connection's next head gets its own deadline; a new one's runs from
          // accept.
          if (!c.started && c.served > 0) c.deadline = after + seconds(opt_.header_seconds);
          c.started = true;
          c.buf.append(buf, static_cast<size_t>(n));
        }
        try_dispatch(c);
        continue;
      }
      if (after >= c.deadline) {
        if (c.started && !c.lingering) {
          if (events_.header_timeout) events_.header_timeout();
          refuse(c, 408, "request head not received within --header-seconds", target_of(c.buf));
        } else {
          close_conn(c.fd);
        }
      }
    }
  }
  if (!drain_started) {
    ::close(lfd);
    svr_sock_ = -1;
  }
  for (auto& [fd, c] : conns) ::close(fd);
  conns.clear();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_workers_ = true;
    cv_.notify_all();
  }
  for (auto& t : workers_)
    if (t.joinable()) t.join();
  workers_.clear();
  if (events_.open) events_.open(0);
}

}  // namespace zsclip::server
