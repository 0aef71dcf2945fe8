// zsclip serve: the KServe v2 server, started as a user starts it (`zsclip serve --port 0`) on a
// loopback port and spoken to over HTTP; plus the protocol and batching parts on their own.
//
// Every client loop is bounded in count and time, and only 127.0.0.1 is used. Nothing here asserts
// a duration: where a test needs requests to be waiting in the queue, it holds the batcher with the
// ZSCLIP_SERVE_TEST_HOLD file and waits (bounded) until /metrics shows them queued.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <opencv2/imgcodecs.hpp>
#include <thread>

#include "model_util.h"
#include "process_util.h"
#include "server/base64.h"
#include "server/batcher.h"
#include "server/kserve.h"
#include "zsclip/config.h"
#include "zsclip/preprocess.h"

namespace zsclip {
namespace {

using namespace ::zsclip::testing;
using json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kLabels =
    "red circle,blue star,green triangle,yellow square,black star,orange circle";

std::vector<std::string> label_list() {
  return {"red circle",    "blue star",  "green triangle",
          "yellow square", "black star", "orange circle"};
}

std::vector<std::string> example_images() {
  std::vector<std::string> out;
  for (const char* f : {"red_circle", "blue_star", "green_triangle", "yellow_square", "black_star",
                        "orange_circle"})
    out.push_back(source_path(std::string("examples/images/") + f + ".png"));
  return out;
}

// Waits (bounded) until pred() holds; returns whether it did.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds limit = 60s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

// `zsclip serve --port 0 ARGS...` in a child process; the port is read from its first stdout line.
class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> args, const std::string& hold_file = "") {
    signal(SIGPIPE, SIG_IGN);
    const std::string dir = std::string(ZSCLIP_BINARY_DIR) + "/tmp/server_test";
    std::filesystem::create_directories(dir);
    static int counter = 0;
    err_path_ =
        dir + "/serve" + std::to_string(getpid()) + "_" + std::to_string(counter++) + ".err";
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      int err = open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (err >= 0) dup2(err, 2);
      close(out[0]);
      if (!hold_file.empty())
        setenv("ZSCLIP_SERVE_TEST_HOLD", hold_file.c_str(), 1);
      else
        unsetenv("ZSCLIP_SERVE_TEST_HOLD");
      std::vector<std::string> argv_s = {ZSCLIP_CLI, "serve", "--port", "0"};
      argv_s.insert(argv_s.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : argv_s) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(ZSCLIP_CLI, argv.data());
      _exit(127);
    }
    close(out[1]);
    out_fd_ = out[0];
    // The first line: "zsclip serve: listening on http://127.0.0.1:PORT".
    std::string line;
    const auto end = std::chrono::steady_clock::now() + 120s;
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < end) {
      pollfd p{out_fd_, POLLIN, 0};
      if (poll(&p, 1, 200) <= 0) continue;
      char buf[256];
      ssize_t n = read(out_fd_, buf, sizeof(buf));
      if (n <= 0) break;
      line.append(buf, static_cast<size_t>(n));
    }
    auto colon = line.rfind(':');
    if (line.find("listening on http://127.0.0.1:") == std::string::npos ||
        colon == std::string::npos)
      throw std::runtime_error("zsclip serve did not start: stdout \"" + line +
                               "\", stderr: " + stderr_text());
    port_ = std::stoi(line.substr(colon + 1));
  }
  ~ServerProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGTERM);
      if (wait_exit(30s) < 0) {
        kill(pid_, SIGKILL);
        wait_exit(30s);
      }
    }
    if (out_fd_ >= 0) close(out_fd_);
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string stderr_text() const { return read_file(err_path_); }
  // Waits (bounded) for the process to exit; returns its exit status, or -1 if it is still running.
  int wait_exit(std::chrono::milliseconds limit) {
    if (exited_) return status_;
    const auto end = std::chrono::steady_clock::now() + limit;
    do {
      int raw = 0;
      if (waitpid(pid_, &raw, WNOHANG) == pid_) {
        exited_ = true;
        status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
        return status_;
      }
      std::this_thread::sleep_for(10ms);
    } while (std::chrono::steady_clock::now() < end);
    return -1;
  }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_connection_timeout(10, 0);
    c.set_read_timeout(60, 0);
    c.set_write_timeout(60, 0);
    return c;
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int port_ = 0;
  bool exited_ = false;
  int status_ = -1;
  std::string err_path_;
};

struct Reply {
  int status = -1;  // -1: no HTTP response (connection refused, ...)
  std::string body;
  httplib::Headers headers;
  json j() const { return json::parse(body); }
};

Reply reply_of(const httplib::Result& r) {
  Reply out;
  if (r) {
    out.status = r->status;
    out.body = r->body;
    out.headers = r->headers;
  } else {
    out.body = "no response: " + httplib::to_string(r.error());
  }
  return out;
}

Reply get(const ServerProcess& s, const std::string& path) {
  auto c = s.client();
  return reply_of(c.Get(path.c_str()));
}

Reply post(const ServerProcess& s, const std::string& path, const std::string& body,
           const httplib::Headers& headers = {}, const char* type = "application/json") {
  auto c = s.client();
  return reply_of(c.Post(path.c_str(), headers, body, type));
}

// A metric's value from /metrics (the full series name, labels included), or -1 when absent.
double metric(const ServerProcess& s, const std::string& series) {
  Reply r = get(s, "/metrics");
  std::istringstream in(r.body);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return -1;
}

json bytes_input(const std::string& name, const std::vector<std::string>& elements) {
  return {{"name", name}, {"datatype", "BYTES"}, {"shape", {elements.size()}}, {"data", elements}};
}

json image_input(const std::vector<std::string>& paths) {
  std::vector<std::string> b64;
  for (const auto& p : paths) b64.push_back(server::base64_encode(read_file(p)));
  return bytes_input("IMAGE", b64);
}

std::string infer_body(const json& inputs, const json& extra = json::object()) {
  json j = extra;
  j["inputs"] = inputs;
  return j.dump();
}

// A body built the way Triton's HTTP clients build it: the JSON header with binary_data_size per
// input, then each input's binary data (BYTES: 4-byte little-endian length + bytes per element).
struct BinaryInput {
  std::string name, datatype;
  std::vector<int64_t> shape;
  std::string raw;  // already serialised
};
using server::serialize_bytes;
std::pair<std::string, size_t> triton_body(const std::vector<BinaryInput>& inputs,
                                           const json& outputs, const json& parameters = nullptr) {
  json j;
  j["inputs"] = json::array();
  for (const auto& in : inputs)
    j["inputs"].push_back({{"name", in.name},
                           {"shape", in.shape},
                           {"datatype", in.datatype},
                           {"parameters", {{"binary_data_size", in.raw.size()}}}});
  if (!outputs.is_null()) j["outputs"] = outputs;
  if (!parameters.is_null()) j["parameters"] = parameters;
  std::string body = j.dump();
  const size_t header = body.size();
  for (const auto& in : inputs) body += in.raw;
  return {body, header};
}

// Outputs of a response, JSON or binary: name -> (datatype, shape, floats or strings).
struct Output {
  std::string datatype;
  std::vector<int64_t> shape;
  std::vector<float> fp32;
  std::vector<std::string> bytes;
  bool binary = false;
};
std::map<std::string, Output> outputs_of(const Reply& r) {
  size_t header = r.body.size();
  auto it = r.headers.find("Inference-Header-Content-Length");
  if (it != r.headers.end()) header = std::stoul(it->second);
  json j = json::parse(r.body.substr(0, header));
  size_t off = header;
  std::map<std::string, Output> out;
  for (const auto& o : j["outputs"]) {
    Output t;
    t.datatype = o["datatype"];
    t.shape = o["shape"].get<std::vector<int64_t>>();
    if (o.contains("parameters") && o["parameters"].contains("binary_data_size")) {
      t.binary = true;
      const size_t n = o["parameters"]["binary_data_size"];
      std::string raw = r.body.substr(off, n);
      off += n;
      if (t.datatype == "FP32") {
        t.fp32.resize(n / 4);
        std::memcpy(t.fp32.data(), raw.data(), n);
      } else {
        for (size_t p = 0; p + 4 <= raw.size();) {
          uint32_t len = 0;
          std::memcpy(&len, raw.data() + p, 4);
          t.bytes.push_back(raw.substr(p + 4, len));
          p += 4 + len;
        }
      }
    } else if (t.datatype == "FP32") {
      t.fp32 = o["data"].get<std::vector<float>>();
    } else {
      t.bytes = o["data"].get<std::vector<std::string>>();
    }
    out[o["name"]] = t;
  }
  EXPECT_EQ(off, r.body.size()) << "binary data left over";
  return out;
}

// max |a - b| <= 1e-6 * max(1, max |b|): the issue's tolerance for "equal to the CLI's output".
::testing::AssertionResult same(const std::vector<float>& a, const std::vector<double>& b,
                                const std::string& what) {
  if (a.size() != b.size())
    return ::testing::AssertionFailure() << what << ": size " << a.size() << " vs " << b.size();
  double m = 1, e = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    m = std::max(m, std::abs(b[i]));
    e = std::max(e, std::abs(double(a[i]) - b[i]));
  }
  if (e > 1e-6 * m) return ::testing::AssertionFailure() << what << ": max abs difference " << e;
  return ::testing::AssertionSuccess();
}

std::vector<double> flat_rows(const std::vector<std::vector<double>>& rows) {
  std::vector<double> out;
  for (const auto& r : rows) out.insert(out.end(), r.begin(), r.end());
  return out;
}

// `zsclip embed` features of images (rows in order) and texts.
std::vector<std::vector<double>> cli_image_features(const std::vector<std::string>& paths) {
  std::string args = "embed";
  for (const auto& p : paths) args += " --image " + sh(p);
  CliResult r = run_cli(args);
  EXPECT_EQ(r.status, 0) << r.err;
  std::vector<std::vector<double>> out;
  const json j = json::parse(r.out);
  for (const auto& im : j["images"]) out.push_back(im["features"].get<std::vector<double>>());
  return out;
}
std::vector<std::vector<double>> cli_text_features(const std::vector<std::string>& texts) {
  std::string args = "embed --truncate";
  for (const auto& t : texts) args += " --text " + sh(t);
  CliResult r = run_cli(args);
  EXPECT_EQ(r.status, 0) << r.err;
  std::vector<std::vector<double>> out;
  const json j = json::parse(r.out);
  for (const auto& t : j["texts"]) out.push_back(t["features"].get<std::vector<double>>());
  return out;
}
// `zsclip classify --json` probabilities and top labels.
std::pair<std::vector<std::vector<double>>, std::vector<std::string>> cli_classify(
    const std::vector<std::string>& paths, const std::string& extra = "") {
  std::string args = "classify --truncate --json --labels " + sh(kLabels) + " " + extra;
  for (const auto& p : paths) args += " " + sh(p);
  CliResult r = run_cli(args);
  EXPECT_EQ(r.status, 0) << r.err;
  std::vector<std::vector<double>> probs;
  std::vector<std::string> top;
  for (const auto& c : json::parse(r.out)) {
    probs.push_back(c["probs"].get<std::vector<double>>());
    top.push_back(c["top"][0]["label"]);
  }
  return {probs, top};
}

std::string hold_path(const std::string& name) {
  const std::string dir = std::string(ZSCLIP_BINARY_DIR) + "/tmp/server_test";
  std::filesystem::create_directories(dir);
  return dir + "/hold_" + name + "_" + std::to_string(getpid());
}

// A raw loopback connection, for what an HTTP client library will not send (bad heads, trickled
// bytes, half-closes).
class Raw {
 public:
  explicit Raw(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~Raw() {
    if (fd_ >= 0) close(fd_);
  }
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;
  bool ok() const { return fd_ >= 0; }
  bool send(const std::string& s) {
    return fd_ >= 0 && ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == ssize_t(s.size());
  }
  void half_close() { shutdown(fd_, SHUT_WR); }
  // Reads one response (head, and a body of its Content-Length), waiting at most `limit`; "" when
  // none came. eof() then says whether the server closed the connection.
  std::string response(std::chrono::milliseconds limit = 10s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      const size_t head = buf_.find("\r\n\r\n");
      if (head != std::string::npos) {
        size_t len = 0;
        const size_t cl = buf_.find("Content-Length: ");
        if (cl != std::string::npos && cl < head) len = std::stoul(buf_.substr(cl + 16));
        if (buf_.size() >= head + 4 + len) {
          std::string r = buf_.substr(0, head + 4 + len);
          buf_.erase(0, head + 4 + len);
          return r;
        }
      }
      if (!fill(end)) return "";
    }
  }
  // Whether the server closes the connection within `limit` (whatever it sends first is kept).
  bool closed_within(std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!eof_)
      if (!fill(end)) break;
    return eof_;
  }
  bool eof() const { return eof_; }

 private:
  bool fill(std::chrono::steady_clock::time_point end) {
    if (eof_ || fd_ < 0) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          end - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    char b[4096];
    const ssize_t n = recv(fd_, b, sizeof(b), 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buf_.append(b, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
};

int status_of(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0) return -1;
  return std::stoi(response.substr(9, 3));
}

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

// A process's peak resident memory (VmHWM) and current (VmRSS), in bytes.
std::pair<int64_t, int64_t> memory_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  int64_t hwm = -1, rss = -1;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) hwm = std::stoll(line.substr(6)) * 1024;
    if (line.rfind("VmRSS:", 0) == 0) rss = std::stoll(line.substr(6)) * 1024;
  }
  return {hwm, rss};
}

// ---------------------------------------------------------------- the protocol and batching parts

TEST(ServerBase64, RoundTripsAndRefusesGarbage) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t n : {0, 1, 2, 3, 4, 5, 255, 256}) {
    std::string s = all.substr(0, n), back, err;
    ASSERT_TRUE(server::base64_decode(server::base64_encode(s), &back, &err)) << err;
    EXPECT_EQ(back, s);
  }
  std::string out, err;
  EXPECT_TRUE(server::base64_decode("aGk", &out, &err));  // padding optional
  EXPECT_EQ(out, "hi");
  EXPECT_FALSE(server::base64_decode("aGk*", &out, &err));
  EXPECT_NE(err.find("offset 3"), std::string::npos) << err;
  EXPECT_FALSE(server::base64_decode("a", &out, &err));
  EXPECT_FALSE(server::base64_decode("aG=k", &out, &err));
}

const std::vector<server::TensorSpec>& test_specs() {
  static const std::vector<server::TensorSpec> s = {
      {"TEXT", "BYTES", {-1}}, {"PIXELS", "FP32", {-1, 2}}, {"IDS", "INT64", {-1}}};
  return s;
}

std::string parse_error(const std::string& body, std::optional<uint64_t> header = std::nullopt) {
  try {
    server::parse_infer_request(body, header, "m", test_specs());
  } catch (const server::HttpError& e) {
    EXPECT_EQ(e.status, 400);
    return e.what();
  }
  return "";
}

TEST(ServerProtocol, ParsesJsonAndBinaryInputs) {
  auto r = server::parse_infer_request(
      R"({"id":"x","inputs":[{"name":"TEXT","datatype":"BYTES","shape":[2,1],"data":[["a"],["b"]]},)"
      R"({"name":"PIXELS","datatype":"FP32","shape":[1,2],"data":[1.5,-2]},{"name":"IDS","datatype":"INT64","shape":[1],"data":[7]}],)"
      R"("outputs":[{"name":"OUT","parameters":{"binary_data":true}}]})",
      std::nullopt, "m", test_specs());
  EXPECT_EQ(*r.id, "x");
  EXPECT_EQ(r.find("TEXT")->bytes, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.find("PIXELS")->fp32, (std::vector<float>{1.5f, -2.f}));
  EXPECT_EQ(r.find("IDS")->int64, (std::vector<int64_t>{7}));
  ASSERT_EQ(r.outputs.size(), 1u);
  EXPECT_TRUE(*r.outputs[0].binary);

  float px[2] = {0.25f, 3.f};
  auto [body, header] =
      triton_body({{"TEXT", "BYTES", {3}, serialize_bytes({"x", "", std::string("\0\1", 2)})},
                   {"PIXELS", "FP32", {1, 2}, std::string(reinterpret_cast<char*>(px), 8)}},
                  nullptr, json{{"binary_data_output", true}});
  auto b = server::parse_infer_request(body, header, "m", test_specs());
  EXPECT_TRUE(b.binary_data_output);
  EXPECT_TRUE(b.find("TEXT")->binary);
  EXPECT_EQ(b.find("TEXT")->bytes, (std::vector<std::string>{"x", "", std::string("\0\1", 2)}));
  EXPECT_EQ(b.find("PIXELS")->fp32, (std::vector<float>{0.25f, 3.f}));
}

TEST(ServerProtocol, MalformedRequestsNameTheField) {
  EXPECT_NE(parse_error("{").find("malformed JSON"), std::string::npos);
  EXPECT_NE(parse_error("").find("empty request body"), std::string::npos);
  EXPECT_NE(parse_error("[]").find("JSON object"), std::string::npos);
  EXPECT_NE(parse_error("{}").find("'inputs' is missing"), std::string::npos);
  EXPECT_NE(parse_error(R"({"inputs":[]})").find("'inputs' is empty"), std::string::npos);
  EXPECT_NE(
      parse_error(R"({"inputs":[{"name":"NOPE","datatype":"BYTES","shape":[1],"data":["a"]}]})")
          .find("input 'NOPE'"),
      std::string::npos);
  EXPECT_NE(parse_error(R"({"inputs":[{"name":"TEXT","datatype":"FP32","shape":[1],"data":[1]}]})")
                .find("must be BYTES"),
            std::string::npos);
  EXPECT_NE(
      parse_error(R"({"inputs":[{"name":"TEXT","datatype":"BYTES","shape":[2],"data":["a"]}]})")
          .find("holds 2 elements"),
      std::string::npos);
  EXPECT_NE(
      parse_error(R"({"inputs":[{"name":"TEXT","datatype":"BYTES","shape":[-1],"data":["a"]}]})")
          .find("'shape'"),
      std::string::npos);
  // An element count past int64 (2^32 x 2^32 = 2^64, which wrapped to 0 and passed as empty).
  for (const char* shape :
       {"[4294967296,4294967296]", "[1099511627776,1099511627776]", "[65536,65536,65536,65536]"})
    EXPECT_NE(parse_error(std::string(R"({"inputs":[{"name":"TEXT","datatype":"BYTES","shape":)") +
                          shape + R"(,"data":[]}]})")
                  .find("too many elements"),
              std::string::npos)
        << shape;
  EXPECT_NE(parse_error(R"({"inputs":[{"name":"TEXT","datatype":"BYTES","shape":[1],"data":[3]}]})")
                .find("not a string"),
            std::string::npos);
  EXPECT_NE(parse_error(
                R"({"inputs":[{"name":"PIXELS","datatype":"FP32","shape":[1,2],"data":[1,"x"]}]})")
                .find("not a number"),
            std::string::npos);
  EXPECT_NE(
      parse_error(
          R"({"inputs":[{"name":"PIXELS","datatype":"FP32","shape":[1,2],"data":[1,1e300]}]})")
          .find("FP32 range"),
      std::string::npos);
  EXPECT_NE(
      parse_error(R"({"inputs":[{"name":"IDS","datatype":"INT64","shape":[1],"data":[1.5]}]})")
          .find("INT64"),
      std::string::npos);
  EXPECT_NE(parse_error(R"({"inputs":[{"name":"TEXT","datatype":"BYTES","shape":[1]}]})")
                .find("'data' is missing"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"inputs":[{"name":"TEXT","datatype":"BYTES","shape":[1],"data":["a"]},)"
                        R"({"name":"TEXT","datatype":"BYTES","shape":[1],"data":["a"]}]})")
                .find("twice"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"id":3,"inputs":[]})").find("'id'"), std::string::npos);
  EXPECT_NE(parse_error(std::string(100, '[') + std::string(100, ']')).find("nested deeper"),
            std::string::npos);
  // Binary data: sizes that do not add up, and a header length past the body.
  const std::string h =
      R"({"inputs":[{"name":"TEXT","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":9}}]})";
  EXPECT_NE(parse_error(h + "abc", h.size()).find("runs past the end"), std::string::npos);
  EXPECT_NE(
      parse_error(h + serialize_bytes({"abcde"}) + "zz", h.size()).find("bytes of binary data"),
      std::string::npos);
  EXPECT_NE(parse_error(h + std::string("\xff\0\0\0abcde", 9), h.size()).find("element 0"),
            std::string::npos);
  EXPECT_NE(parse_error(h, h.size() + 5).find("Inference-Header-Content-Length"),
            std::string::npos);
  EXPECT_NE(parse_error(h).find("needs the Inference-Header-Content-Length"), std::string::npos);
  EXPECT_NE(parse_error("abc", 0).find("raw binary"), std::string::npos);
  const std::string f =
      R"({"inputs":[{"name":"PIXELS","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":4}}]})";
  EXPECT_NE(parse_error(f + "abcd", f.size()).find("does not match shape"), std::string::npos);
  EXPECT_THROW(server::parse_header_length("12a"), server::HttpError);
}

TEST(ServerProtocol, ValuesAndElementsAreCountedWhileParsing) {
  std::string body = R"({"inputs":[{"name":"TEXT","datatype":"BYTES","shape":[2],"data":[)";
  for (int i = 0; i < 1000; ++i) body += i ? ",\"\"" : "\"\"";
  body += "]}]}";
  try {
    server::parse_infer_request(body, std::nullopt, "m", test_specs(), 100);
    ADD_FAILURE() << "1000 values accepted under a limit of 100";
  } catch (const server::HttpError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_NE(std::string(e.what()).find("more than 100 JSON values"), std::string::npos)
        << e.what();
  }
  // Binary data: a shape beyond the limit is refused before its elements are read.
  auto [bin, header] = triton_body(
      {{"TEXT", "BYTES", {1000000}, serialize_bytes(std::vector<std::string>(1000, ""))}}, nullptr);
  try {
    server::parse_infer_request(bin, header, "m", test_specs(), 100);
    ADD_FAILURE() << "shape [1000000] accepted under a limit of 100";
  } catch (const server::HttpError& e) {
    EXPECT_NE(std::string(e.what()).find("holds more elements"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(server::parse_infer_request(
      R"({"inputs":[{"name":"TEXT","datatype":"BYTES","shape":[2],"data":["a","b"]}]})",
      std::nullopt, "m", test_specs(), 100));
}

TEST(ServerProtocol, LongStringsSurviveTheFastPath) {
  // Long plain strings are cut out before the JSON parser runs; escaped, non-ASCII and forged
  // placeholder strings must come through unchanged, and ids and names too.
  const std::string plain(5000, 'A'),
      escaped = std::string(3000, 'b') + R"(\"q\")" + std::string(3000, 'c');
  const std::string unicode = std::string(2000, 'd') + R"(\u00e9\u20ac)" + std::string(2000, 'e');
  const std::string forged = R"(\u0000123:0)";
  const std::string body =
      R"({"id":")" + std::string(2000, 'i') +
      R"(","inputs":[{"name":"TEXT","datatype":"BYTES","shape":[5],"data":[")" + plain + R"(",")" +
      escaped + R"(",")" + unicode + R"(",")" + forged + R"(","short"]}]})";
  auto r = server::parse_infer_request(body, std::nullopt, "m", test_specs());
  EXPECT_EQ(*r.id, std::string(2000, 'i'));
  const auto& b = r.find("TEXT")->bytes;
  ASSERT_EQ(b.size(), 5u);
  EXPECT_EQ(b[0], plain);
  EXPECT_EQ(b[1], std::string(3000, 'b') + "\"q\"" + std::string(3000, 'c'));
  EXPECT_EQ(b[2], std::string(2000, 'd') + "\xc3\xa9\xe2\x82\xac" + std::string(2000, 'e'));
  EXPECT_EQ(b[3], std::string("\0", 1) + "123:0");
  EXPECT_EQ(b[4], "short");
  // An unterminated long string is still malformed JSON.
  EXPECT_NE(
      parse_error(R"({"inputs":[{"name":"TEXT","datatype":"BYTES","shape":[1],"data":[")" + plain)
          .find("malformed"),
      std::string::npos);
}

TEST(ServerProtocol, EncodesJsonAndBinaryOutputs) {
  server::InferRequest req;
  req.id = "42";
  std::vector<server::OutputTensor> outs = {{"PROBS", "FP32", {1, 2}, {0.25f, 0.75f}, {}},
                                            {"TOP_LABEL", "BYTES", {1}, {}, {"b"}}};
  auto plain = server::encode_infer_response("zero_shot", req, outs);
  EXPECT_FALSE(plain.header_length);
  json j = json::parse(plain.body);
  EXPECT_EQ(j["id"], "42");
  EXPECT_EQ(j["model_name"], "zero_shot");
  EXPECT_EQ(j["outputs"][0]["data"], json({0.25, 0.75}));
  EXPECT_EQ(j["outputs"][1]["data"], json({"b"}));

  req.outputs = {{"TOP_LABEL", true}};  // only this output, as binary data
  auto bin = server::encode_infer_response("zero_shot", req, outs);
  ASSERT_TRUE(bin.header_length);
  Reply r{200, bin.body, {{"Inference-Header-Content-Length", std::to_string(*bin.header_length)}}};
  auto parsed = outputs_of(r);
  ASSERT_EQ(parsed.size(), 1u);
  EXPECT_TRUE(parsed["TOP_LABEL"].binary);
  EXPECT_EQ(parsed["TOP_LABEL"].bytes, std::vector<std::string>{"b"});
}

TEST(ServerBatcher, BatchesQueuedRequestsAndBoundsTheQueue) {
  std::promise<void> gate;
  std::shared_future<void> open = gate.get_future().share();
  std::atomic<int> calls{0};
  std::vector<int64_t> sizes;
  std::mutex mu;
  server::Batcher<float> b(
      "t", 1, 2, /*max_batch=*/4, std::chrono::microseconds(0), /*max_queue=*/3,
      [&](const float* in, int64_t n, float* out) {
        if (calls++ == 0) open.wait();  // the first batch waits until the queue has filled
        {
          std::lock_guard<std::mutex> lock(mu);
          sizes.push_back(n);
        }
        for (int64_t i = 0; i < n; ++i) out[2 * i] = in[i], out[2 * i + 1] = -in[i];
      },
      nullptr);
  auto submit = [&](float v, int n) {
    return std::async(std::launch::async, [&b, v, n] {
      server::Batcher<float>::Job job;
      job.n = n;
      job.input.assign(static_cast<size_t>(n), v);
      b.run(job);
      return job.output;
    });
  };
  ASSERT_TRUE(b.try_admit());
  auto first = submit(1.f, 1);
  ASSERT_TRUE(wait_until([&] { return calls.load() == 1; }));  // running, and held
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(b.try_admit());
  EXPECT_FALSE(b.try_admit());  // three waiting: the queue is full
  auto second = submit(2.f, 2), third = submit(3.f, 2), fourth = submit(4.f, 1);
  gate.set_value();
  EXPECT_EQ(first.get(), (std::vector<float>{1, -1}));
  EXPECT_EQ(second.get(), (std::vector<float>{2, -2, 2, -2}));
  EXPECT_EQ(third.get(), (std::vector<float>{3, -3, 3, -3}));
  EXPECT_EQ(fourth.get(), (std::vector<float>{4, -4}));
  EXPECT_TRUE(b.try_admit());
  b.cancel_admission();
  std::lock_guard<std::mutex> lock(mu);
  int64_t total = 0;
  for (int64_t s : sizes) {
    EXPECT_LE(s, 4);
    total += s;
  }
  EXPECT_EQ(total, 6);
}

// ---------------------------------------------------------------- the server over HTTP

TEST(Server, HealthMetadataAndErrorsFollowKServeV2) {
  ServerProcess s({});
  EXPECT_EQ(get(s, "/v2/health/live").j(), json({{"live", true}}));
  EXPECT_EQ(get(s, "/v2/health/ready").j(), json({{"ready", true}}));
  Reply meta = get(s, "/v2");
  ASSERT_EQ(meta.status, 200);
  EXPECT_EQ(meta.j()["name"], "zsclip");
  EXPECT_EQ(meta.j()["extensions"], json({"binary_tensor_data"}));

  const ModelConfig cfg = ModelConfig::load(source_path("models/shapes"));
  const int64_t d = cfg.embed_dim, n = cfg.preprocess.image_size;
  struct Want {
    const char* model;
    json inputs, outputs;
  } wants[] = {
      {"image_encoder",
       {{{"name", "IMAGE"}, {"datatype", "BYTES"}, {"shape", {-1}}},
        {{"name", "PIXELS"}, {"datatype", "FP32"}, {"shape", {-1, 3, n, n}}}},
       {{{"name", "IMAGE_EMBEDDING"}, {"datatype", "FP32"}, {"shape", {-1, d}}}}},
      {"text_encoder",
       {{{"name", "TEXT"}, {"datatype", "BYTES"}, {"shape", {-1}}}},
       {{{"name", "TEXT_EMBEDDING"}, {"datatype", "FP32"}, {"shape", {-1, d}}}}},
      {"zero_shot",
       {{{"name", "IMAGE"}, {"datatype", "BYTES"}, {"shape", {-1}}},
        {{"name", "PIXELS"}, {"datatype", "FP32"}, {"shape", {-1, 3, n, n}}},
        {{"name", "LABELS"}, {"datatype", "BYTES"}, {"shape", {-1}}},
        {{"name", "TEMPLATES"}, {"datatype", "BYTES"}, {"shape", {-1}}}},
       {{{"name", "PROBS"}, {"datatype", "FP32"}, {"shape", {-1, -1}}},
        {{"name", "TOP_LABEL"}, {"datatype", "BYTES"}, {"shape", {-1}}}}},
  };
  for (const auto& w : wants) {
    for (const std::string path : {std::string("/v2/models/") + w.model,
                                   std::string("/v2/models/") + w.model + "/versions/1"}) {
      Reply r = get(s, path);
      ASSERT_EQ(r.status, 200) << path << " " << r.body;
      EXPECT_EQ(r.j()["name"], w.model);
      EXPECT_EQ(r.j()["platform"], "pytorch_torchscript");
      EXPECT_EQ(r.j()["inputs"], w.inputs) << path;
      EXPECT_EQ(r.j()["outputs"], w.outputs) << path;
    }
    EXPECT_EQ(get(s, std::string("/v2/models/") + w.model + "/ready").j(),
              json({{"name", w.model}, {"ready", true}}));
  }
  Reply unknown = get(s, "/v2/models/resnet");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.j()["error"].get<std::string>().find("'resnet'"), std::string::npos);
  EXPECT_EQ(get(s, "/v2/models/zero_shot/versions/2").status, 404);
  Reply no_route = get(s, "/v3/nothing");
  EXPECT_EQ(no_route.status, 404);
  EXPECT_TRUE(no_route.j().contains("error"));
  Reply post_unknown =
      post(s, "/v2/models/resnet/infer", infer_body(json::array({bytes_input("TEXT", {"a"})})));
  EXPECT_EQ(post_unknown.status, 404);
  EXPECT_TRUE(post_unknown.j().contains("error"));
  Reply metrics = get(s, "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("# TYPE zsclip_request_duration_seconds histogram"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("zsclip_http_responses_total{code=\"404\"}"), std::string::npos);
  EXPECT_NE(metrics.body.find("zsclip_queue_capacity{queue=\"image\"} 256"), std::string::npos);
}

TEST(Server, ImageEncoderEqualsCliEmbed) {
  std::vector<std::string> images = example_images();
  images.resize(3);
  if (std::filesystem::exists(shared_path("images/rocket.jpg"))) {
    images.push_back(shared_path("images/rocket.jpg"));         // a JPEG photo
    images.push_back(shared_path("images/green_palette.png"));  // a palette PNG
  }
  const auto want = cli_image_features(images);
  ServerProcess s({});
  // Plain JSON, base64 images, at /infer and /versions/1/infer.
  for (const std::string path :
       {"/v2/models/image_encoder/infer", "/v2/models/image_encoder/versions/1/infer"}) {
    Reply r = post(s, path, infer_body(json::array({image_input(images)}), {{"id", "req-1"}}));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.j()["id"], "req-1");
    EXPECT_EQ(r.j()["model_name"], "image_encoder");
    auto out = outputs_of(r);
    EXPECT_EQ(out["IMAGE_EMBEDDING"].shape,
              (std::vector<int64_t>{static_cast<int64_t>(images.size()), 64}));
    EXPECT_TRUE(same(out["IMAGE_EMBEDDING"].fp32, flat_rows(want), "IMAGE_EMBEDDING"));
  }
  // PIXELS, preprocessed here, in JSON and as binary data; [N, 1]-shaped IMAGE as Triton's clients
  // send it.
  Preprocessor pre(ModelConfig::load(source_path("models/shapes")).preprocess);
  std::vector<float> px;
  for (size_t i = 0; i < 2; ++i) {
    FloatTensor t = pre.from_file(images[i]);
    px.insert(px.end(), t.data.begin(), t.data.end());
  }
  const std::vector<double> want2 = flat_rows({want[0], want[1]});
  json pixels = {{"name", "PIXELS"}, {"datatype", "FP32"}, {"shape", {2, 3, 48, 48}}, {"data", px}};
  Reply rp = post(s, "/v2/models/image_encoder/infer", infer_body(json::array({pixels})));
  ASSERT_EQ(rp.status, 200) << rp.body;
  EXPECT_TRUE(same(outputs_of(rp)["IMAGE_EMBEDDING"].fp32, want2, "PIXELS json"));
  auto [bbody, bheader] = triton_body(
      {{"PIXELS",
        "FP32",
        {2, 3, 48, 48},
        std::string(reinterpret_cast<const char*>(px.data()), px.size() * 4)}},
      json::array({{{"name", "IMAGE_EMBEDDING"}, {"parameters", {{"binary_data", true}}}}}));
  Reply rb = post(s, "/v2/models/image_encoder/infer", bbody,
                  {{"Inference-Header-Content-Length", std::to_string(bheader)}},
                  "application/octet-stream");
  ASSERT_EQ(rb.status, 200) << rb.body;
  auto ob = outputs_of(rb);
  EXPECT_TRUE(ob["IMAGE_EMBEDDING"].binary);
  EXPECT_TRUE(same(ob["IMAGE_EMBEDDING"].fp32, want2, "PIXELS binary"));
  json n1 = image_input({images[0], images[1]});
  n1["shape"] = {2, 1};
  Reply r1 = post(s, "/v2/models/image_encoder/infer", infer_body(json::array({n1})));
  ASSERT_EQ(r1.status, 200) << r1.body;
  EXPECT_TRUE(same(outputs_of(r1)["IMAGE_EMBEDDING"].fp32, want2, "IMAGE [N, 1]"));
}

TEST(Server, TritonBinaryBodiesAreAcceptedAndAnswered) {
  // The body Triton's Python client builds for InferInput("IMAGE", [N], "BYTES") with
  // set_data_from_numpy(np.array([file bytes...], dtype=object)) (binary_data=True, its default),
  // and InferRequestedOutput(name) (binary_data=True, its default); and with no outputs named,
  // which makes it ask for binary_data_output.
  const auto images = example_images();
  std::vector<std::string> files;
  for (const auto& p : images) files.push_back(read_file(p));
  const auto want = cli_image_features(images);
  const auto [want_probs, want_top] = cli_classify(images);
  ServerProcess s({});

  auto [body, header] = triton_body(
      {{"IMAGE", "BYTES", {static_cast<int64_t>(files.size())}, serialize_bytes(files)}},
      json::array({{{"name", "IMAGE_EMBEDDING"}, {"parameters", {{"binary_data", true}}}}}));
  Reply r = post(s, "/v2/models/image_encoder/infer", body,
                 {{"Inference-Header-Content-Length", std::to_string(header)}},
                 "application/octet-stream");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(r.headers.count("Inference-Header-Content-Length"));
  auto out = outputs_of(r);
  EXPECT_TRUE(out["IMAGE_EMBEDDING"].binary);
  EXPECT_TRUE(same(out["IMAGE_EMBEDDING"].fp32, flat_rows(want), "binary IMAGE_EMBEDDING"));

  auto [zbody, zheader] =
      triton_body({{"IMAGE", "BYTES", {static_cast<int64_t>(files.size())}, serialize_bytes(files)},
                   {"LABELS", "BYTES", {6}, serialize_bytes(label_list())}},
                  nullptr, json{{"binary_data_output", true}});
  Reply z = post(s, "/v2/models/zero_shot/versions/1/infer", zbody,
                 {{"Inference-Header-Content-Length", std::to_string(zheader)}},
                 "application/octet-stream");
  ASSERT_EQ(z.status, 200) << z.body;
  auto zo = outputs_of(z);
  EXPECT_TRUE(zo["PROBS"].binary);
  EXPECT_TRUE(zo["TOP_LABEL"].binary);
  EXPECT_TRUE(same(zo["PROBS"].fp32, flat_rows(want_probs), "binary PROBS"));
  EXPECT_EQ(zo["TOP_LABEL"].bytes, want_top);

  // A gzip-compressed body (the Triton client's request_compression_algorithm="gzip").
  auto c = s.client();
  c.set_compress(true);
  Reply g = reply_of(c.Post("/v2/models/image_encoder/infer",
                            {{"Inference-Header-Content-Length", std::to_string(header)}}, body,
                            "application/octet-stream"));
  ASSERT_EQ(g.status, 200) << g.body;
  EXPECT_TRUE(same(outputs_of(g)["IMAGE_EMBEDDING"].fp32, flat_rows(want), "gzip body"));
}

TEST(Server, TextEncoderEqualsCliEmbed) {
  const std::vector<std::string> texts = {"a photo of a red circle.", "blue star", "",
                                          "ünïcödé & <html> text", std::string(300, 'x')};
  const auto want = cli_text_features(texts);
  {
    // Without --truncate a text longer than the context is refused, naming it and its length.
    ServerProcess strict({});
    Reply r = post(strict, "/v2/models/text_encoder/infer",
                   infer_body(json::array({bytes_input("TEXT", texts)})));
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("too long for context length 16"), std::string::npos) << r.body;
  }
  ServerProcess s({"--truncate"});
  Reply r = post(s, "/v2/models/text_encoder/infer",
                 infer_body(json::array({bytes_input("TEXT", texts)})));
  ASSERT_EQ(r.status, 200) << r.body;
  auto out = outputs_of(r);
  EXPECT_EQ(out["TEXT_EMBEDDING"].shape, (std::vector<int64_t>{5, 64}));
  EXPECT_TRUE(same(out["TEXT_EMBEDDING"].fp32, flat_rows(want), "TEXT_EMBEDDING"));
  auto [body, header] = triton_body({{"TEXT", "BYTES", {5, 1}, serialize_bytes(texts)}}, nullptr);
  Reply b = post(s, "/v2/models/text_encoder/infer", body,
                 {{"Inference-Header-Content-Length", std::to_string(header)}});
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_FALSE(
      outputs_of(b)["TEXT_EMBEDDING"].binary);  // outputs named by nobody, binary_data_output unset
  EXPECT_TRUE(same(outputs_of(b)["TEXT_EMBEDDING"].fp32, flat_rows(want), "binary TEXT"));
}

TEST(Server, ZeroShotEqualsCliClassifyAndCachesHeads) {
  const auto images = example_images();
  const auto [want_probs, want_top] = cli_classify(images);
  const std::string tfile = temp_dir("server_templates") + "/t.txt";
  std::ofstream(tfile) << "a drawing of a {}.\n{} on a white background\n";
  const auto [want_t, want_t_top] = cli_classify(images, "--templates " + sh(tfile));
  const auto [want_c, want_c_top] = cli_classify(images, "--templates openai-cifar");
  ServerProcess s({"--head-cache", "2", "--truncate"});
  auto ask = [&](const json& extra_inputs, const json& outputs = nullptr) {
    json inputs = json::array({image_input(images), bytes_input("LABELS", label_list())});
    for (const auto& e : extra_inputs) inputs.push_back(e);
    json extra = json::object();
    if (!outputs.is_null()) extra["outputs"] = outputs;
    return post(s, "/v2/models/zero_shot/infer", infer_body(inputs, extra));
  };
  for (int round = 0; round < 2; ++round) {  // the second round finds the head cached
    Reply r = ask(json::array());
    ASSERT_EQ(r.status, 200) << r.body;
    auto out = outputs_of(r);
    EXPECT_EQ(out["PROBS"].shape, (std::vector<int64_t>{6, 6}));
    EXPECT_TRUE(same(out["PROBS"].fp32, flat_rows(want_probs), "PROBS"));
    EXPECT_EQ(out["TOP_LABEL"].bytes, want_top);
    EXPECT_EQ(out["TOP_LABEL"].shape, (std::vector<int64_t>{6}));
  }
  EXPECT_EQ(metric(s, "zsclip_head_cache_builds_total"), 1);
  EXPECT_EQ(metric(s, "zsclip_head_cache_hits_total"), 1);
  Reply t = ask(
      json::array({bytes_input("TEMPLATES", {"a drawing of a {}.", "{} on a white background"})}));
  ASSERT_EQ(t.status, 200) << t.body;
  EXPECT_TRUE(same(outputs_of(t)["PROBS"].fp32, flat_rows(want_t), "PROBS with TEMPLATES"));
  EXPECT_EQ(outputs_of(t)["TOP_LABEL"].bytes, want_t_top);
  // A built-in set by name; only TOP_LABEL asked for.
  Reply c = ask(json::array({bytes_input("TEMPLATES", {"openai-cifar"})}),
                json::array({{{"name", "TOP_LABEL"}}}));
  ASSERT_EQ(c.status, 200) << c.body;
  auto co = outputs_of(c);
  EXPECT_EQ(co.count("PROBS"), 0u);
  EXPECT_EQ(co["TOP_LABEL"].bytes, want_c_top);
  EXPECT_EQ(metric(s, "zsclip_head_cache_builds_total"), 3);
  EXPECT_EQ(metric(s, "zsclip_head_cache_entries"), 2);  // --head-cache 2: the least recent went
}

TEST(Server, BadRequestsAnswer400NamingTheFieldAnd413WhenTooLarge) {
  ServerProcess s({"--max-batch", "4", "--max-request-bytes", "256K", "--max-labels", "5"});
  const std::string img = server::base64_encode(read_file(example_images()[0]));
  const json labels = bytes_input("LABELS", {"a", "b"});
  struct Case {
    const char* model;
    std::string body;
    int status;
    std::string needle;
  } cases[] = {
      {"image_encoder", "{\"inputs\": [", 400, "malformed JSON"},
      {"image_encoder", "", 400, "empty request body"},
      {"image_encoder", infer_body(json::array({bytes_input("TEXT", {"x"})})), 400, "input 'TEXT'"},
      {"image_encoder",
       infer_body(
           json::array({{{"name", "IMAGE"}, {"datatype", "FP32"}, {"shape", {1}}, {"data", {1}}}})),
       400, "must be BYTES"},
      {"image_encoder", infer_body(json::array({bytes_input("IMAGE", {"not base64!"})})), 400,
       "not base64"},
      {"image_encoder",
       infer_body(
           json::array({bytes_input("IMAGE", {server::base64_encode("hello, not an image")})})),
       400, "IMAGE' element 0"},
      {"image_encoder", infer_body(json::array({bytes_input("IMAGE", {img, img, img, img, img})})),
       400, "--max-batch 4"},
      {"image_encoder",
       infer_body(json::array(
           {{{"name", "IMAGE"}, {"datatype", "BYTES"}, {"shape", {1, 1, 1}}, {"data", {img}}}})),
       400, "shape must be [N] or [N, 1]"},
      {"image_encoder",
       infer_body(json::array({{{"name", "PIXELS"},
                                {"datatype", "FP32"},
                                {"shape", {1, 3, 2, 2}},
                                {"data", std::vector<float>(12, 0.f)}}})),
       400, "input 'PIXELS': shape must be [N, 3, 48, 48]"},
      {"image_encoder",
       infer_body(json::array({bytes_input("IMAGE", {img}),
                               {{"name", "PIXELS"},
                                {"datatype", "FP32"},
                                {"shape", {0, 3, 48, 48}},
                                {"data", json::array()}}})),
       400, "not both"},
      {"image_encoder",
       infer_body(json::array({bytes_input("IMAGE", {img})}),
                  {{"outputs", {{{"name", "EMBEDDING"}}}}}),
       400, "output 'EMBEDDING'"},
      {"image_encoder", infer_body(json::array({bytes_input("IMAGE", {})})), 400,
       "input 'IMAGE' is empty"},
      {"text_encoder",
       infer_body(json::array(
           {{{"name", "TEXT"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {42}}}})),
       400, "not a string"},
      {"text_encoder", R"({"inputs":[{"name":"TEXT","datatype":"BYTES","data":["a"]}]})", 400,
       "'shape'"},
      {"zero_shot", infer_body(json::array({bytes_input("IMAGE", {img})})), 400,
       "missing input 'LABELS'"},
      {"zero_shot",
       infer_body(json::array({bytes_input("IMAGE", {img}), bytes_input("LABELS", {"a", "a"})})),
       400, "LABELS"},
      {"zero_shot",
       infer_body(json::array({bytes_input("IMAGE", {img}), bytes_input("LABELS", {"a", ""})})),
       400, "LABELS"},
      // Equal once the tokenizer has cleaned them (they split every score 0.5/0.5), and a label
      // that is only a no-break space (empty once cleaned).
      {"zero_shot",
       infer_body(json::array(
           {bytes_input("IMAGE", {img}), bytes_input("LABELS", {"cat", " cat", "dog"})})),
       400, "labels 1 \"cat\" and 2 \" cat\" are the same"},
      {"zero_shot",
       infer_body(
           json::array({bytes_input("IMAGE", {img}), bytes_input("LABELS", {"Cat", "cat "})})),
       400, "labels 1 \"Cat\" and 2 \"cat \" are the same"},
      {"zero_shot",
       infer_body(
           json::array({bytes_input("IMAGE", {img}), bytes_input("LABELS", {"a", "\xC2\xA0"})})),
       400, "label 2 is empty"},
      {"zero_shot",
       infer_body(json::array(
           {bytes_input("IMAGE", {img}), labels, bytes_input("TEMPLATES", {"no braces", "x"})})),
       400, "TEMPLATES"},
      {"zero_shot",
       infer_body(json::array(
           {bytes_input("IMAGE", {img}), labels, bytes_input("TEMPLATES", {"imagenet-9000"})})),
       400, "TEMPLATES"},
      {"zero_shot", infer_body(json::array({labels})), 400, "missing input 'IMAGE'"},
      {"zero_shot",
       infer_body(json::array(
           {bytes_input("IMAGE", {img}), bytes_input("LABELS", {"a", "b", "c", "d", "e", "f"})})),
       400, "--max-labels 5"},
      {"zero_shot",
       infer_body(json::array({bytes_input("IMAGE", {img}), labels,
                               bytes_input("TEMPLATES", std::vector<std::string>(101, "{}"))})),
       400, "TEMPLATES"},
  };
  for (const auto& c : cases) {
    Reply r = post(s, std::string("/v2/models/") + c.model + "/infer", c.body);
    EXPECT_EQ(r.status, c.status) << c.model << " " << c.body.substr(0, 200) << " -> " << r.body;
    ASSERT_NO_THROW(r.j()) << r.body;
    ASSERT_TRUE(r.j().contains("error")) << r.body;
    EXPECT_NE(r.j()["error"].get<std::string>().find(c.needle), std::string::npos)
        << c.model << ": error \"" << r.j()["error"] << "\" should name \"" << c.needle << "\"";
  }
  // Over --max-request-bytes: with a Content-Length, chunked, and as a gzip body that inflates past
  // it.
  const std::string big =
      infer_body(json::array({bytes_input("TEXT", {std::string(300000, 'a')})}));
  Reply too_big = post(s, "/v2/models/text_encoder/infer", big);
  EXPECT_EQ(too_big.status, 413);
  EXPECT_NE(too_big.body.find("max-request-bytes"), std::string::npos) << too_big.body;
  {
    auto c = s.client();
    size_t sent = 0;
    Reply chunked = reply_of(c.Post(
        "/v2/models/text_encoder/infer",
        [&](size_t, httplib::DataSink& sink) {
          if (sent >= big.size()) {
            sink.done();
            return true;
          }
          const size_t n = std::min<size_t>(4096, big.size() - sent);
          sink.write(big.data() + sent, n);
          sent += n;
          return true;
        },
        "application/json"));
    // The server may close the connection while the client is still sending: then no status.
    EXPECT_TRUE(chunked.status == 413 || chunked.status == -1) << chunked.status;
    auto g = s.client();
    g.set_compress(true);
    Reply gz = reply_of(g.Post("/v2/models/text_encoder/infer", big, "application/json"));
    EXPECT_EQ(gz.status, 413) << gz.body;
  }
  // Still healthy, and still answering.
  EXPECT_EQ(get(s, "/v2/health/ready").status, 200);
  Reply ok = post(s, "/v2/models/text_encoder/infer",
                  infer_body(json::array({bytes_input("TEXT", {"a"})})));
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_GE(metric(s, "zsclip_requests_total{model=\"image_encoder\",code=\"400\"}"), 10);
  EXPECT_GE(metric(s, "zsclip_http_responses_total{code=\"413\"}"), 2);
}

TEST(Server, ABadImageFailsOnlyItsOwnRequest) {
  const auto images = example_images();
  const auto want = cli_image_features({images[0], images[1]});
  const std::string hold = hold_path("bad_image");
  std::ofstream(hold) << "hold";
  ServerProcess s({"--max-batch", "8", "--max-delay-ms", "1000"}, hold);
  // A good request waits in the queue; a bad one arrives meanwhile and is refused on its own.
  auto good = std::async(std::launch::async, [&] {
    return post(s, "/v2/models/image_encoder/infer",
                infer_body(json::array({image_input({images[0], images[1]})})));
  });
  ASSERT_TRUE(wait_until([&] { return metric(s, "zsclip_queue_depth{queue=\"image\"}") == 1; }));
  std::string truncated = read_file(images[2]);
  truncated.resize(truncated.size() / 2);
  Reply bad = post(
      s, "/v2/models/image_encoder/infer",
      infer_body(json::array({bytes_input("IMAGE", {server::base64_encode(read_file(images[3])),
                                                    server::base64_encode(truncated)})})));
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.j()["error"].get<std::string>().find("element 1"), std::string::npos) << bad.body;
  std::filesystem::remove(hold);
  Reply g = good.get();
  ASSERT_EQ(g.status, 200) << g.body;
  EXPECT_TRUE(same(outputs_of(g)["IMAGE_EMBEDDING"].fp32, flat_rows(want), "the good request"));
}

TEST(Server, SixteenConcurrentClientsAreAnsweredCorrectlyInBatches) {
  const auto images = example_images();
  const auto want = cli_image_features(images);
  const auto classified = cli_classify(images);
  const auto& want_probs = classified.first;
  const auto& want_top = classified.second;
  const std::string hold = hold_path("concurrent");
  std::ofstream(hold) << "hold";
  ServerProcess s({"--max-batch", "16", "--max-delay-ms", "2"}, hold);
  constexpr int kClients = 16, kRequests = 20;
  std::atomic<int> failures{0};
  std::vector<std::string> errors(kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto cli = s.client();  // one keep-alive connection per client
      cli.set_keep_alive(true);
      for (int i = 0; i < kRequests; ++i) {
        const size_t k = static_cast<size_t>(c + i) % images.size();
        const bool zero_shot = (c + i) % 2 == 1;
        json inputs = json::array({image_input({images[k]})});
        if (zero_shot) inputs.push_back(bytes_input("LABELS", label_list()));
        Reply r = reply_of(
            cli.Post(zero_shot ? "/v2/models/zero_shot/infer" : "/v2/models/image_encoder/infer",
                     infer_body(inputs), "application/json"));
        bool ok = r.status == 200;
        if (ok) {
          auto out = outputs_of(r);
          ok = zero_shot ? same(out["PROBS"].fp32, want_probs[k], "PROBS") &&
                               out["TOP_LABEL"].bytes[0] == want_top[k]
                         : static_cast<bool>(
                               same(out["IMAGE_EMBEDDING"].fp32, want[k], "IMAGE_EMBEDDING"));
        }
        if (!ok) {
          ++failures;
          errors[static_cast<size_t>(c)] = "request " + std::to_string(i) + ": " +
                                           std::to_string(r.status) + " " + r.body.substr(0, 300);
        }
      }
    });
  }
  // Every client's first request is queued before the first batch runs: that batch holds 16.
  const bool queued =
      wait_until([&] { return metric(s, "zsclip_queue_depth{queue=\"image\"}") >= kClients; });
  std::filesystem::remove(hold);
  for (auto& t : clients) t.join();
  ASSERT_TRUE(queued);
  EXPECT_EQ(failures.load(), 0);
  for (const auto& e : errors) EXPECT_EQ(e, "");
  const double answered = metric(s, "zsclip_requests_total{model=\"image_encoder\",code=\"200\"}") +
                          metric(s, "zsclip_requests_total{model=\"zero_shot\",code=\"200\"}");
  EXPECT_EQ(answered, kClients * kRequests);
  const double batches = metric(s, "zsclip_batch_size_count{queue=\"image\"}");
  const double items = metric(s, "zsclip_batch_size_sum{queue=\"image\"}");
  const double singles = metric(s, "zsclip_batch_size_bucket{queue=\"image\",le=\"1\"}");
  EXPECT_EQ(items, kClients * kRequests);
  EXPECT_LT(batches, items);  // batches were formed
  EXPECT_LT(singles, batches);
  EXPECT_GE(metric(s, "zsclip_batch_size_bucket{queue=\"image\",le=\"16\"}") -
                metric(s, "zsclip_batch_size_bucket{queue=\"image\",le=\"8\"}"),
            1);  // at least the first batch had 9-16 images
}

TEST(Server, AFullQueueAnswers503AndTheServerStaysHealthy) {
  const auto images = example_images();
  const std::string hold = hold_path("full");
  std::ofstream(hold) << "hold";
  ServerProcess s({"--max-queue", "2", "--max-batch", "1", "--max-delay-ms", "0"}, hold);
  const std::string body = infer_body(json::array({image_input({images[0]})}));
  auto a = std::async(std::launch::async,
                      [&] { return post(s, "/v2/models/image_encoder/infer", body); });
  auto b = std::async(std::launch::async,
                      [&] { return post(s, "/v2/models/image_encoder/infer", body); });
  ASSERT_TRUE(wait_until([&] { return metric(s, "zsclip_queue_depth{queue=\"image\"}") == 2; }));
  for (int i = 0; i < 3; ++i) {
    Reply full = post(s, "/v2/models/image_encoder/infer", body);
    EXPECT_EQ(full.status, 503);
    EXPECT_NE(full.j()["error"].get<std::string>().find("queue is full"), std::string::npos)
        << full.body;
  }
  // The text queue is separate, and health answers while the image queue is full.
  EXPECT_EQ(get(s, "/v2/health/live").status, 200);
  EXPECT_EQ(get(s, "/v2/health/ready").status, 200);
  std::filesystem::remove(hold);
  EXPECT_EQ(a.get().status, 200);
  EXPECT_EQ(b.get().status, 200);
  EXPECT_EQ(metric(s, "zsclip_requests_total{model=\"image_encoder\",code=\"503\"}"), 3);
  EXPECT_EQ(metric(s, "zsclip_queue_depth{queue=\"image\"}"), 0);
  EXPECT_EQ(post(s, "/v2/models/image_encoder/infer", body).status, 200);
}

TEST(Server, SigtermFinishesInFlightRequestsAndExitsZero) {
  const auto images = example_images();
  const auto want = cli_image_features({images[0]});
  const std::string hold = hold_path("sigterm");
  std::ofstream(hold) << "hold";
  auto s = std::make_unique<ServerProcess>(std::vector<std::string>{"--max-batch", "4"}, hold);
  const std::string body = infer_body(json::array({image_input({images[0]})}));
  std::vector<std::future<Reply>> inflight;
  for (int i = 0; i < 3; ++i)
    inflight.push_back(std::async(
        std::launch::async, [&] { return post(*s, "/v2/models/image_encoder/infer", body); }));
  ASSERT_TRUE(wait_until([&] { return metric(*s, "zsclip_queue_depth{queue=\"image\"}") == 3; }));
  ASSERT_EQ(kill(s->pid(), SIGTERM), 0);
  // It stops accepting: new connections are refused while the three wait (bounded polling).
  EXPECT_TRUE(wait_until([&] { return get(*s, "/v2/health/live").status == -1; }));
  EXPECT_EQ(s->wait_exit(200ms), -1);  // still finishing
  std::filesystem::remove(hold);
  for (auto& f : inflight) {
    Reply r = f.get();
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_TRUE(same(outputs_of(r)["IMAGE_EMBEDDING"].fp32, want[0], "drained request"));
  }
  EXPECT_EQ(s->wait_exit(60s), 0) << s->stderr_text();
  EXPECT_NE(s->stderr_text().find("SIGTERM"), std::string::npos);
}

// ------------------------------------------------------------- slow, idle and greedy clients

std::string text_body(const std::string& text) {
  return infer_body(json::array({bytes_input("TEXT", {text})}));
}

TEST(Server, SlowAndIdleConnectionsDoNotHoldTheWorkers) {
  // Four workers, 60 connections trickling a request head and 40 idle ones: a server with a
  // worker per connection answers nobody else until they time out.
  ServerProcess s({"--http-threads", "4", "--header-seconds", "60"});
  std::vector<std::unique_ptr<Raw>> held;
  for (int i = 0; i < 100; ++i) {
    held.push_back(std::make_unique<Raw>(s.port()));
    ASSERT_TRUE(held.back()->ok());
    if (i < 60) ASSERT_TRUE(held.back()->send("POST /v2/models/text_encoder/infer HTTP/1.1\r\n"));
  }
  std::vector<std::thread> clients;
  std::atomic<int> answered{0};
  for (int c = 0; c < 4; ++c)
    clients.emplace_back([&] {
      auto cli = s.client();
      cli.set_read_timeout(10, 0);  // far below --header-seconds: no waiting for the slow ones
      for (int i = 0; i < 5; ++i) {
        auto r = cli.Post("/v2/models/text_encoder/infer", text_body("a cat"), "application/json");
        if (r && r->status == 200) ++answered;
      }
    });
  for (int i = 0; i < 60; ++i) held[static_cast<size_t>(i)]->send("H");  // a byte more each
  for (auto& t : clients) t.join();
  EXPECT_EQ(answered.load(), 20);
  // The slow and idle connections are still open (nothing was sent to them).
  EXPECT_GE(metric(s, "zsclip_open_connections"), 100);
  for (auto& h : held) EXPECT_FALSE(h->eof());
}

TEST(Server, ConnectionsBeyondTheCapAreRefusedAt503) {
  ServerProcess s({"--max-connections", "8"});
  const std::string live = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
  std::vector<std::unique_ptr<Raw>> held;
  for (int i = 0; i < 8; ++i) {  // each answered once, so each is surely open (kept alive)
    held.push_back(std::make_unique<Raw>(s.port()));
    ASSERT_TRUE(held.back()->send(live));
    ASSERT_EQ(status_of(held.back()->response()), 200) << i;
  }
  Raw extra(s.port());
  ASSERT_TRUE(extra.ok());
  const std::string r = extra.response();
  EXPECT_EQ(status_of(r), 503) << r;
  EXPECT_NE(r.find("--max-connections 8"), std::string::npos) << r;
  EXPECT_TRUE(extra.closed_within(10s));
  // /metrics through a connection already open.
  ASSERT_TRUE(held[0]->send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string m = held[0]->response();
  EXPECT_NE(m.find("\nzsclip_connections_refused_total 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("\nzsclip_open_connections 8\n"), std::string::npos) << m;
  EXPECT_NE(m.find("zsclip_http_responses_total{code=\"503\"} 1\n"), std::string::npos) << m;
  held.clear();  // room again
  EXPECT_TRUE(wait_until(
      [&] { return post(s, "/v2/models/text_encoder/infer", text_body("a")).status == 200; }));
}

TEST(Server, HeadsAndBodiesHaveDeadlinesWhateverTheTrickle) {
  ServerProcess s({"--header-seconds", "1", "--body-seconds", "1"});
  // A head trickled a byte every 100 ms: 408 after --header-seconds, though bytes keep coming.
  Raw slow(s.port());
  ASSERT_TRUE(slow.send("GET /v2/health/live HTTP/1.1\r\n"));
  std::string r;
  for (int i = 0; i < 100 && r.empty(); ++i) {
    slow.send("x");
    r = slow.response(100ms);
  }
  EXPECT_EQ(status_of(r), 408) << r;
  EXPECT_EQ(count_of(r, "Connection: close"), 1u) << r;
  EXPECT_TRUE(slow.closed_within(10s));
  // A connection that sends nothing is closed.
  Raw idle(s.port());
  EXPECT_TRUE(idle.closed_within(10s));
  // A body that stops short: 408 after --body-seconds (not the 30 s of a socket read timeout).
  Raw body(s.port());
  ASSERT_TRUE(
      body.send("POST /v2/models/text_encoder/infer HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"in"));
  r = body.response(10s);
  EXPECT_EQ(status_of(r), 408) << r;
  EXPECT_NE(r.find("--body-seconds"), std::string::npos) << r;
  EXPECT_EQ(count_of(r, "Connection: close"), 1u) << r;
  EXPECT_EQ(metric(s, "zsclip_header_timeouts_total"), 1);
  EXPECT_EQ(metric(s, "zsclip_http_responses_total{code=\"408\"}"), 2);
  EXPECT_EQ(metric(s, "zsclip_requests_total{model=\"text_encoder\",code=\"408\"}"), 1);
}

TEST(Server, ContentLengthIsStrictAndRefusedAtOnce) {
  ServerProcess s({"--max-request-bytes", "1M"});
  const std::string head = "POST /v2/models/text_encoder/infer HTTP/1.1\r\nHost: x\r\n";
  struct Case {
    std::string headers;
    int status;
    std::string needle;
  } cases[] = {
      {"Content-Length: 70000000\r\n", 413, "--max-request-bytes"},
      {"Content-Length: 99999999999999999999\r\n", 413, "--max-request-bytes"},
      {"Content-Length: -5\r\n", 400, "Content-Length"},
      {"Content-Length: +3\r\n", 400, "Content-Length"},
      {"Content-Length: 3 5\r\n", 400, "Content-Length"},
      {"Content-Length: 3\r\nContent-Length: 5\r\n", 400, "more than once"},
      {"Content-Length: 3\r\nContent-Length: 3\r\n", 400, "more than once"},
      {"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", 400, "both"},
      {"Transfer-Encoding: gzip, chunked\r\n", 400, "Transfer-Encoding"},
      {"Content-Length : 3\r\n", 400, "white space"},
      {" folded\r\nContent-Length: 3\r\n", 400, "folded"},
  };
  for (const auto& c : cases) {
    Raw r(s.port());
    ASSERT_TRUE(r.send(head + c.headers + "\r\nabc"));
    // At once: well before the 10 s of --header-seconds and the 60 s of --body-seconds.
    const std::string res = r.response(5s);
    EXPECT_EQ(status_of(res), c.status) << c.headers << " -> " << res;
    EXPECT_NE(res.find(c.needle), std::string::npos) << c.headers << " -> " << res;
    EXPECT_EQ(count_of(res, "Connection: close"), 1u) << res;
    EXPECT_TRUE(r.closed_within(5s)) << c.headers;
  }
  // A head over 16 KiB.
  Raw big(s.port());
  ASSERT_TRUE(big.send(head + "X-Big: " + std::string(20000, 'a') + "\r\n\r\n"));
  EXPECT_EQ(status_of(big.response(5s)), 431);
  EXPECT_EQ(metric(s, "zsclip_requests_total{model=\"text_encoder\",code=\"431\"}"), 1);
  // A GET carrying a body (httplib would read the body as the next request).
  Raw get_body(s.port());
  ASSERT_TRUE(get_body.send("GET /v2/health/live HTTP/1.1\r\nContent-Length: 5\r\n\r\nGET /"));
  EXPECT_EQ(status_of(get_body.response(5s)), 400);
  EXPECT_EQ(metric(s, "zsclip_requests_total{model=\"text_encoder\",code=\"413\"}"), 2);
  EXPECT_EQ(metric(s, "zsclip_requests_total{model=\"text_encoder\",code=\"400\"}"), 9);
  EXPECT_EQ(metric(s, "zsclip_http_responses_total{code=\"400\"}"), 10);
  EXPECT_EQ(post(s, "/v2/models/text_encoder/infer", text_body("a")).status, 200);
}

TEST(Server, AClientThatHalfClosesGetsItsResponse) {
  ServerProcess s({});
  Raw get(s.port());
  ASSERT_TRUE(get.send("GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"));
  get.half_close();  // as `nc -N` does
  EXPECT_EQ(status_of(get.response()), 200);
  EXPECT_TRUE(get.closed_within(10s));
  const std::string body = text_body("a cat");
  Raw post_req(s.port());
  ASSERT_TRUE(post_req.send("POST /v2/models/text_encoder/infer HTTP/1.1\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body));
  post_req.half_close();
  const std::string r = post_req.response();
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_NE(r.find("TEXT_EMBEDDING"), std::string::npos) << r;
}

TEST(Server, SigtermClosesKeptAliveConnectionsAndTheDrainHasADeadline) {
  auto s = std::make_unique<ServerProcess>(
      std::vector<std::string>{"--header-seconds", "60", "--drain-seconds", "2"});
  const std::string req = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
  Raw idle(s->port());
  Raw slow(s->port());
  ASSERT_TRUE(slow.send("GET /v2/hea"));  // a head that would take --header-seconds (60 s)
  Raw kept(s->port());
  ASSERT_TRUE(kept.send(req));
  const std::string first = kept.response();
  ASSERT_EQ(status_of(first), 200) << first;
  EXPECT_EQ(first.find("Connection: close"), std::string::npos) << first;
  ASSERT_EQ(kill(s->pid(), SIGTERM), 0);
  // The kept-alive client keeps sending: it is answered with "Connection: close" or closed while
  // idle, within a few requests, not served on and on.
  int after = 0;
  for (; after < 100; ++after) {
    if (!kept.send(req)) break;
    const std::string r = kept.response(5s);
    if (r.empty()) break;
    if (r.find("Connection: close") != std::string::npos) {
      ++after;
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_LT(after, 100);
  EXPECT_TRUE(kept.closed_within(10s));
  EXPECT_TRUE(idle.closed_within(10s));
  // The slow head is cut at --drain-seconds; the server exits 0 well before --header-seconds.
  EXPECT_TRUE(slow.closed_within(20s));
  EXPECT_EQ(s->wait_exit(20s), 0) << s->stderr_text();
}

TEST(Server, BodiesOfTinyElementsAreCountedWhileParsing) {
  ServerProcess s({"--max-batch", "4", "--max-request-bytes", "20M"});
  auto before = memory_of(s.pid());
  ASSERT_GT(before.first, 0);
  // 16 MB of empty strings to text_encoder, and of zeros as PIXELS: refused by their count while
  // parsed (a JSON document of them would take hundreds of MB).
  std::string strings = R"({"inputs":[{"name":"TEXT","datatype":"BYTES","shape":[4],"data":[)";
  std::string zeros =
      R"({"inputs":[{"name":"PIXELS","datatype":"FP32","shape":[1,3,48,48],"data":[)";
  for (int i = 0; i < 5'000'000; ++i) strings += i ? ",\"\"" : "\"\"";
  for (int i = 0; i < 8'000'000; ++i) zeros += i ? ",0" : "0";
  strings += "]}]}";
  zeros += "]}]}";
  Reply a = post(s, "/v2/models/text_encoder/infer", strings);
  EXPECT_EQ(a.status, 400);
  EXPECT_NE(a.body.find("JSON values"), std::string::npos) << a.body.substr(0, 300);
  Reply b = post(s, "/v2/models/image_encoder/infer", zeros);
  EXPECT_EQ(b.status, 400);
  EXPECT_NE(b.body.find("JSON values"), std::string::npos) << b.body.substr(0, 300);
  const auto after = memory_of(s.pid());
  // The body and little more: 16 MB, under 80 MB of growth. (AddressSanitizer's quarantine holds
  // freed memory: no bound to check there.)
  if (!kAddressSanitizer)
    EXPECT_LT(after.first - std::max(before.first, before.second), 80ll << 20)
        << "VmHWM " << before.first << " -> " << after.first;
  EXPECT_EQ(post(s, "/v2/models/text_encoder/infer", text_body("a")).status, 200);
}

TEST(Server, ImageDecodesAtOnceAreBoundedByMaxDecodes) {
  // Four 4000x4000 PNGs (48 MB each, decoded) sent at once: with --max-decodes 1 they are decoded
  // one after another, so the peak grows by about one decoded image (60 MB measured), not four
  // (196 MB measured with --max-decodes 4).
  std::vector<uchar> png;
  ASSERT_TRUE(cv::imencode(".png", cv::Mat(4000, 4000, CV_8UC3, cv::Scalar(30, 60, 200)), png));
  const std::string body = infer_body(json::array(
      {bytes_input("IMAGE", {server::base64_encode(std::string(png.begin(), png.end()))})}));
  ServerProcess s({"--max-decodes", "1"});
  const auto before = memory_of(s.pid());
  std::vector<std::future<Reply>> replies;
  for (int i = 0; i < 4; ++i)
    replies.push_back(std::async(std::launch::async,
                                 [&] { return post(s, "/v2/models/image_encoder/infer", body); }));
  for (auto& r : replies) EXPECT_EQ(r.get().status, 200);
  const auto after = memory_of(s.pid());
  if (!kAddressSanitizer)  // its quarantine holds freed memory
    EXPECT_LT(after.first - std::max(before.first, before.second), 120ll << 20)
        << "VmHWM " << before.first << " -> " << after.first;
}

TEST(Server, UsageErrors) {
  EXPECT_EQ(run_cli("serve --max-batch 0").status, 2);
  EXPECT_EQ(run_cli("serve --max-request-bytes 12X").status, 2);
  EXPECT_EQ(run_cli("serve --max-delay-ms -1").status, 2);
  EXPECT_EQ(run_cli("serve --max-connections 0").status, 2);
  EXPECT_EQ(run_cli("serve --header-seconds 0").status, 2);
  EXPECT_EQ(run_cli("serve --drain-seconds -1").status, 2);
  EXPECT_EQ(run_cli("serve --max-inflight 0").status, 2);
  CliResult h = run_cli("serve --help");
  EXPECT_EQ(h.status, 0);
  EXPECT_NE(h.out.find("--max-queue"), std::string::npos);
  CliResult missing = run_cli("serve --port 0 --model /nonexistent/model");
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("/nonexistent/model"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace zsclip
