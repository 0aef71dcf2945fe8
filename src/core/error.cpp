#include "zsclip/error.h"

#include "zsclip/version.h"

namespace zsclip {

const char* error_code_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kPermissionDenied: return "permission_denied";
    case ErrorCode::kInvalidImage: return "invalid_image";
    case ErrorCode::kInvalidModel: return "invalid_model";
    case ErrorCode::kInvalidConfig: return "invalid_config";
    case ErrorCode::kInvalidText: return "invalid_text";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

const char* version() { return ZSCLIP_VERSION_STRING; }

}  // namespace zsclip
