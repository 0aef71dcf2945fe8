// zsclip::Error — the one exception type the library throws.
//
//   try {
//     auto model = zsclip::Model::load("models/shapes");
//   } catch (const zsclip::Error& e) {
//     std::cerr << e.what() << "\n";            // "config.json: field 'embed_dim' ..."
//     if (e.code() == zsclip::ErrorCode::kNotFound) { ... }
//   }
//
// Every public function either returns a valid value or throws zsclip::Error. Exceptions from
// LibTorch (c10::Error), OpenCV (cv::Exception) and nlohmann::json are translated at the public
// boundary, and the message names the file, field or value that caused them.
#pragma once

#include <stdexcept>
#include <string>

namespace zsclip {

enum class ErrorCode {
  kInvalidArgument,   // a bad value passed by the caller (context length < 2, no labels, ...), or
                      // a path of the wrong kind (a directory, device or FIFO where a file was
                      // expected, a file where a directory was)
  kNotFound,          // a file or directory that does not exist
  kPermissionDenied,  // a file that exists but this process may not read (or write)
  kInvalidImage,      // an image that cannot be decoded, is truncated, or is too large
  kInvalidModel,  // a model directory whose files are missing, corrupt or disagree with config.json
  kInvalidConfig,  // config.json (or another JSON/text input) that is malformed or has wrong fields
  kInvalidText,    // text that cannot be tokenized as asked (too long without truncation, ...)
  kUnsupported,  // a valid request this build cannot serve (CUDA without CUDA, a newer format, ...)
  kIo,           // reading or writing failed for another reason (disk full, I/O error, ...)
  kInternal,     // a bug or an unexpected failure inside a dependency
};

// Returns a short stable name for a code ("invalid_argument", "not_found", ...).
const char* error_code_name(ErrorCode code) noexcept;
// The code zsclip gives a failed file operation with this errno value, the same for every file it
// reads or writes: ENOENT, ENOTDIR -> kNotFound; EACCES, EPERM, EROFS -> kPermissionDenied; EISDIR,
// ELOOP, ENAMETOOLONG -> kInvalidArgument; anything else -> kIo.
ErrorCode error_code_from_errno(int err) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace zsclip
