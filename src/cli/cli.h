// The zsclip command-line tool: a small option parser and the subcommand registry.
// Each subcommand lives in its own source file and registers itself with ZSCLIP_COMMAND.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace zsclip {
struct ModelOptions;
class Model;
}  // namespace zsclip

namespace zsclip::cli {

// One option of the command line, declared once (options.cpp) with the subcommands that take it.
struct OptionSpec {
  std::string name;        // "--model"
  std::string value_name;  // "DIR"; empty for a flag
  std::string help;
  // The subcommands that take it, space-separated; "index.build" is one action of `index` ("index":
  // every action).
  std::string commands;
  std::string fallback;  // the value when the option is not given (from the options struct); or ""
  bool repeatable = false;
  bool applies_to(const std::string& command) const;  // "embed", "index", "index.merge"
};
// Every option of every subcommand.
const std::vector<OptionSpec>& option_table();

// Parsed options of one subcommand. Unknown options and missing values are usage errors.
class Args {
 public:
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  // The value given, else the option's fallback (else "").
  std::string get(const std::string& name) const;
  std::string get(const std::string& name, const std::string& fallback) const;
  std::vector<std::string> all(const std::string& name) const;
  // get(name) as an integer in [min_value, max_value] (UsageError naming the option and value).
  int get_int(const std::string& name, int min_value, int max_value) const;
  int get_int(const std::string& name, int fallback, int min_value, int max_value) const;
  const std::vector<std::string>& positional() const { return positional_; }
  // UsageError "OPTION does not apply to 'COMMAND ACTION'" for an option given that
  // `command.action` does not take.
  void check_action(const std::string& command, const std::string& action) const;

 private:
  friend Args parse_args(const struct Command&, int, char**);
  std::string command_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

struct Command {
  std::string name;
  std::string usage;                    // "--model DIR [--json] IMAGE..."
  std::string summary;                  // one line
  std::string details;                  // paragraphs printed by --help after the options
  std::function<int(const Args&)> run;  // returns the exit status
};

// A usage error: printed with the subcommand's usage line, exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::vector<Command>& registry();
struct Registrar {
  explicit Registrar(Command c) { registry().push_back(std::move(c)); }
};
#define ZSCLIP_CLI_CONCAT2(a, b) a##b
#define ZSCLIP_CLI_CONCAT(a, b) ZSCLIP_CLI_CONCAT2(a, b)
#define ZSCLIP_COMMAND(...) \
  static ::zsclip::cli::Registrar ZSCLIP_CLI_CONCAT(zsclip_command_, __LINE__)(__VA_ARGS__)

Args parse_args(const Command& command, int argc, char** argv);

// --model's default: $ZSCLIP_MODEL, else the installed shapes model, else the source tree's.
std::string default_model_dir();
// --model's value, else default_model_dir().
std::string model_dir(const Args& args);
// The value of $ZSCLIP_MODEL when default_model_dir() chose it; "" otherwise. main() then says so
// in an error that names this directory.
const std::string& model_dir_from_env();
// JSON text of `j`; bytes that are not UTF-8 (file names and paths are bytes) become U+FFFD
// instead of an exception that would lose the whole output.
std::string dump_json(const nlohmann::json& j, int indent = -1);
// Comma-separated list, entries trimmed, empty entries kept (validation reports them).
std::vector<std::string> split_list(const std::string& s);
// Sets dtype and linear_kernels from --precision / --linear-kernels (UsageError for bad values).
void apply_precision_options(const Args& args, ModelOptions& o);
// The model's precision_note() on standard error, when it has one.
void report_precision(const Model& model);

// Flushes standard output now (streamed output); throws Error(kIo) "standard output: write failed:
// REASON" when the write failed, so a long run stops at once instead of computing into a full disk.
void flush_stdout();

// ModelOptions from --device, --threads (0: the default runtime) and --no-verify.
ModelOptions model_options(const Args& args, bool text_encoder);

// "what: done / total units, units/s, ETA" on standard error, redrawn in place; only when standard
// error is a terminal (nothing extra in pipes and logs).
// total kUnknown (a list still being read): "what: done units, units/s", and finish() ends the
// line.
class Progress {
 public:
  static constexpr size_t kUnknown = static_cast<size_t>(-1);
  Progress(const char* what, size_t total, const char* unit);
  void update(size_t done);
  void finish(size_t done);

 private:
  const char* what_;
  const char* unit_;
  size_t total_;
  bool on_;
  double start_;
};

}  // namespace zsclip::cli
