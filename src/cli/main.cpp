// zsclip — command-line front end of the zsclip library. `zsclip --help` lists the subcommands.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include <chrono>
#include "cli/cli.h"
#include "zsclip/error.h"
#include "zsclip/version.h"

namespace zsclip::cli {

std::vector<Command>& registry() {
  static std::vector<Command> commands;
  return commands;
}

namespace {
const OptionSpec* find_option(const std::string& command, const std::string& name) {
  for (const auto& o : option_table())
    if (o.name == name && o.applies_to(command)) return &o;
  return nullptr;
}
}  // namespace

bool OptionSpec::applies_to(const std::string& command) const {
  const std::string all = " " + commands + " ";
  if (all.find(" " + command + " ") != std::string::npos) return true;
  const size_t dot = command.find('.');
  if (dot != std::string::npos)  // "index" covers "index.build"
    return all.find(" " + command.substr(0, dot) + " ") != std::string::npos;
  return all.find(" " + command + ".") != std::string::npos;  // "index" takes "index.build"'s
}

std::string Args::get(const std::string& name) const {
  const OptionSpec* spec = find_option(command_, name);
  return get(name, spec ? spec->fallback : std::string());
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() || it->second.empty() ? fallback : it->second.back();
}

std::vector<std::string> Args::all(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

int Args::get_int(const std::string& name, int fallback, int min_value, int max_value) const {
  return has(name) ? get_int(name, min_value, max_value) : fallback;
}

int Args::get_int(const std::string& name, int min_value, int max_value) const {
  const std::string s = get(name);
  try {
    size_t used = 0;
    long v = std::stol(s, &used);
    if (used != s.size()) throw std::invalid_argument(s);
    if (v < min_value || v > max_value)
      throw UsageError(name + " must be between " + std::to_string(min_value) + " and " +
                       std::to_string(max_value) + ", got " + s);
    return static_cast<int>(v);
  } catch (const UsageError&) {
    throw;
  } catch (const std::exception&) {
    throw UsageError(name + " expects an integer, got \"" + s + "\"");
  }
}

void Args::check_action(const std::string& command, const std::string& action) const {
  for (const auto& o : option_table())
    if (has(o.name) && o.applies_to(command) && !find_option(command + "." + action, o.name))
      throw UsageError(o.name + " does not apply to '" + command + " " + action + "'");
}

Args parse_args(const Command& command, int argc, char** argv) {
  Args args;
  args.command_ = command.name;
  bool options_done = false;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (options_done || a == "-" || a.size() < 2 || a[0] != '-') {
      args.positional_.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    std::string value;
    bool has_inline = false;
    if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_inline = true;
    }
    const OptionSpec* spec = find_option(command.name, a);
    if (!spec) throw UsageError("unknown option " + a + " for 'zsclip " + command.name + "'");
    if (spec->value_name.empty()) {
      if (has_inline) throw UsageError(a + " takes no value");
      args.values_[a].push_back("1");
      continue;
    }
    if (!has_inline) {
      if (i + 1 >= argc) throw UsageError(a + " needs a value (" + spec->value_name + ")");
      value = argv[++i];
    }
    if (!spec->repeatable && args.values_.count(a)) throw UsageError(a + " given twice");
    args.values_[a].push_back(value);
  }
  return args;
}

namespace {
std::string g_model_from_env;
}  // namespace

const std::string& model_dir_from_env() { return g_model_from_env; }

std::string default_model_dir() {
  if (const char* env = std::getenv("ZSCLIP_MODEL"); env && *env) return g_model_from_env = env;
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto installed = exe.parent_path().parent_path() / "share/zsclip/models/shapes";
    if (std::filesystem::exists(installed / "config.json", ec)) return installed.string();
  }
  if (std::filesystem::exists(std::string(ZSCLIP_INSTALL_MODELS_DIR) + "/shapes/config.json", ec))
    return std::string(ZSCLIP_INSTALL_MODELS_DIR) + "/shapes";
  return std::string(ZSCLIP_SOURCE_MODELS_DIR) + "/shapes";
}

std::string model_dir(const Args& args) {
  return args.has("--model") ? args.get("--model") : default_model_dir();
}

std::string dump_json(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t comma = s.find(',', start);
    std::string item =
        s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    out.push_back(b == std::string::npos ? "" : item.substr(b, e - b + 1));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

Progress::Progress(const char* what, size_t total, const char* unit)
    : what_(what),
      unit_(unit),
      total_(total),
      on_(isatty(2) == 1 && total > 0),
      start_(std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
                 .count()) {}

void Progress::update(size_t done) {
  if (!on_) return;
  const double now =
      std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  const double s = now - start_;
  const double rate = s > 0 ? double(done) / s : 0;
  if (total_ == kUnknown) {
    std::fprintf(stderr, "\r%s: %zu %s, %.1f %s/s   ", what_, done, unit_, rate, unit_);
    std::fflush(stderr);
    return;
  }
  const double eta = rate > 0 ? double(total_ - std::min(done, total_)) / rate : 0;
  std::fprintf(stderr, "\r%s: %zu / %zu %s, %.1f %s/s, ETA %.0f s   ", what_, done, total_, unit_,
               rate, unit_, eta);
  if (done >= total_) std::fputc('\n', stderr);
  std::fflush(stderr);
}

void Progress::finish(size_t done) {
  if (on_ && total_ == kUnknown) {
    update(done);
    std::fputc('\n', stderr);
    std::fflush(stderr);
  }
}

namespace {
// Set when flush_stdout has thrown the write failure, which main() then reports: check_stdout must
// not report it a second time.
bool g_stdout_failure_thrown = false;

// The reason standard output failed. A long output fails inside an earlier write, whose errno is
// gone by the time the failure is seen (a help text longer than stdio's buffer, on /dev/full): then
// one byte written to the descriptor itself says why (the output is lost already).
int stdout_failure_errno() {
  int err = errno;
  if (err == 0 && ::write(STDOUT_FILENO, "\n", 1) < 0) err = errno;
  return err;
}
}  // namespace

void flush_stdout() {
  errno = 0;
  std::cout.flush();
  if (std::cout && std::fflush(stdout) == 0 && !std::ferror(stdout)) return;
  const int err = stdout_failure_errno();
  g_stdout_failure_thrown = true;
  throw Error(ErrorCode::kIo, std::string("standard output: write failed") +
                                  (err ? std::string(": ") + std::strerror(err) : std::string()));
}

namespace {

// `text` wrapped at 100 columns, continuation lines indented by `indent`; '\n' breaks a line.
std::string wrap(const std::string& text, size_t indent) {
  std::string out, word;
  size_t column = indent;
  for (size_t i = 0; i <= text.size(); ++i) {
    const char ch = i < text.size() ? text[i] : '\n';
    if (ch != ' ' && ch != '\n') {
      word += ch;
      continue;
    }
    if (!word.empty() && column > indent && column + 1 + word.size() > 100) {
      out += "\n" + std::string(indent, ' ');
      column = indent;
    }
    if (!word.empty()) {
      out += (column > indent ? " " : "") + word;
      column += (column > indent ? 1 : 0) + word.size();
    }
    word.clear();
    if (ch == '\n' && i < text.size()) {
      out += "\n" + std::string(indent, ' ');
      column = indent;
    }
  }
  return out;
}

void print_command_help(const Command& c, std::ostream& os) {
  os << "usage: zsclip " << c.name << " " << c.usage << "\n\n" << c.summary << "\n\noptions:\n";
  for (const auto& o : option_table()) {
    if (!o.applies_to(c.name)) continue;
    std::string left = "  " + o.name + (o.value_name.empty() ? "" : " " + o.value_name);
    std::string help = o.help;
    // The actions that take it, where a subcommand has actions and not all of them do.
    std::string actions, token;
    for (std::istringstream in(o.commands); in >> token;)
      if (token.rfind(c.name + ".", 0) == 0)
        actions += (actions.empty() ? "" : ", ") + token.substr(c.name.size() + 1);
    if (!actions.empty()) help += " (" + actions + ")";
    if (!o.fallback.empty()) help += " (default: " + o.fallback + ")";
    if (o.repeatable) help += " (repeatable)";
    os << left << std::string(left.size() < 28 ? 28 - left.size() : 1, ' ') << wrap(help, 28)
       << "\n";
  }
  os << "  --help                    show this help\n";
  if (!c.details.empty()) os << "\n" << wrap(c.details, 0) << "\n";
}

void print_help(std::ostream& os) {
  os << "zsclip " << version()
     << " — CLIP zero-shot image classification\n\nusage: zsclip SUBCOMMAND "
        "[OPTIONS]\n\nsubcommands:\n";
  auto cmds = registry();
  std::sort(cmds.begin(), cmds.end(),
            [](const Command& a, const Command& b) { return a.name < b.name; });
  for (const auto& c : cmds)
    os << "  " << c.name << std::string(c.name.size() < 12 ? 12 - c.name.size() : 1, ' ')
       << c.summary << "\n";
  os << "\n`zsclip SUBCOMMAND --help` describes each subcommand's options.\n"
        "Exit status: 0 success, 1 an error (or an image that failed, or output that could not be\n"
        "written), 2 a usage error.\n";
}

// Output written but lost (a full disk, a closed pipe, /dev/full) must not end in exit status 0.
int check_stdout(const std::string& name, int status) {
  errno = 0;
  std::cout.flush();
  const bool failed = !std::cout || std::fflush(stdout) != 0 || std::ferror(stdout);
  if (!failed) return status;
  if (g_stdout_failure_thrown && status != 0) return status;  // reported once already
  const int err = stdout_failure_errno();
  std::cerr << "zsclip" << (name.empty() ? "" : " " + name)
            << ": error [io]: standard output: write failed"
            << (err ? std::string(": ") + std::strerror(err) : std::string()) << "\n";
  return 1;
}

// An error about a model directory that came from $ZSCLIP_MODEL says where the directory came from.
std::string with_model_origin(const std::string& message) {
  const std::string& env = model_dir_from_env();
  if (env.empty() || message.find(env) == std::string::npos) return message;
  return message + " (the model directory " + env + " comes from $ZSCLIP_MODEL)";
}

int run_main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ||
      std::string(argv[1]) == "help") {
    print_help(std::cout);
    return argc < 2 ? 2 : 0;
  }
  if (std::string(argv[1]) == "--version") {
    std::cout << "zsclip " << zsclip::version() << "\n";
    return 0;
  }
  const std::string name = argv[1];
  const auto& cmds = registry();
  auto it =
      std::find_if(cmds.begin(), cmds.end(), [&](const Command& c) { return c.name == name; });
  if (it == cmds.end()) {
    std::cerr << "zsclip: unknown subcommand '" << name << "' (see zsclip --help)\n";
    return 2;
  }
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") break;
    if (a == "--help" || a == "-h") {
      print_command_help(*it, std::cout);
      return 0;
    }
  }
  try {
    Args args = parse_args(*it, argc - 2, argv + 2);
    return it->run(args);
  } catch (const UsageError& e) {
    std::cerr << "zsclip " << name << ": " << e.what() << "\nusage: zsclip " << name << " "
              << it->usage << "\n(see zsclip " << name << " --help)\n";
    return 2;
  } catch (const zsclip::Error& e) {
    std::cerr << "zsclip " << name << ": error [" << zsclip::error_code_name(e.code())
              << "]: " << with_model_origin(e.what()) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "zsclip " << name << ": error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace
}  // namespace zsclip::cli

int main(int argc, char** argv) {
  const int status = zsclip::cli::run_main(argc, argv);
  return zsclip::cli::check_stdout(argc >= 2 ? argv[1] : "", status);
}
