#include "text/sp_model.h"

#include <dlfcn.h>
#include <sentencepiece_processor.h>

#include <cstdlib>
#include <new>

#include "zsclip/error.h"
#include "zsclip/io.h"

// Debian's libsentencepiece carries its own copy of protobuf-lite (an older version) and exports
// it. Linked like any library, it takes over the protobuf symbols of the process, and LibTorch's
// libprotobuf then crashes while it initialises. So zsclip loads it with dlopen, RTLD_LOCAL (its
// symbols stay out of the process's scope) and RTLD_DEEPBIND (it binds to its own protobuf first),
// and calls it through the class's vtable; the three non-virtual functions used (the constructor,
// Status's destructor and ToString) are looked up by name. The sanitizers' runtimes (ASan, TSan)
// refuse RTLD_DEEPBIND: such builds load it with RTLD_LOCAL alone (fine where no libprotobuf is
// loaded).
#ifndef ZSCLIP_SENTENCEPIECE_SONAME
#define ZSCLIP_SENTENCEPIECE_SONAME "libsentencepiece.so.0"
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ZSCLIP_NO_DEEPBIND 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ZSCLIP_NO_DEEPBIND 1
#endif
#endif

namespace zsclip::text {
namespace {

constexpr uint64_t kMaxModelBytes = uint64_t{1} << 30;  // Gemma's is 4 MiB, mT5's 4.3 MiB

// ModelProto field 3 (normalizer_spec, length-delimited) holding only NormalizerSpec field 3
// (add_dummy_prefix, varint) = 0. Protobuf merges repeated occurrences of an embedded message, so
// appending it to a serialized model sets that one field and keeps the rest: what transformers
// does with normalizer_spec.MergeFrom(NormalizerSpec(add_dummy_prefix=False)).
constexpr char kNoDummyPrefix[] = {0x1A, 0x02, 0x18, 0x00};

using sentencepiece::SentencePieceProcessor;
using sentencepiece::util::Status;

struct Library {
  std::string name;
  void* handle = nullptr;
  std::string error;
  void (*construct)(void*) = nullptr;
  void (*destroy_status)(Status*) = nullptr;
  std::string (*status_text)(const Status*) = nullptr;
};

const Library& library() {
  static const Library lib = [] {
    Library l;
    const char* env = std::getenv("ZSCLIP_SENTENCEPIECE_LIBRARY");
    l.name = env != nullptr && *env != '\0' ? env : ZSCLIP_SENTENCEPIECE_SONAME;
    int flags = RTLD_NOW | RTLD_LOCAL;
#ifndef ZSCLIP_NO_DEEPBIND
    flags |= RTLD_DEEPBIND;
#endif
    l.handle = ::dlopen(l.name.c_str(), flags);
    if (l.handle == nullptr) {
      const char* e = ::dlerror();
      l.error = e != nullptr ? e : "dlopen failed";
      return l;
    }
    auto sym = [&](const char* mangled) {
      void* p = ::dlsym(l.handle, mangled);
      if (p == nullptr && l.error.empty()) l.error = std::string("no symbol ") + mangled;
      return p;
    };
    l.construct =
        reinterpret_cast<void (*)(void*)>(sym("_ZN13sentencepiece22SentencePieceProcessorC1Ev"));
    l.destroy_status =
        reinterpret_cast<void (*)(Status*)>(sym("_ZN13sentencepiece4util6StatusD1Ev"));
    l.status_text = reinterpret_cast<std::string (*)(const Status*)>(
        sym("_ZNK13sentencepiece4util6Status8ToStringB5cxx11Ev"));
    if (!l.error.empty()) l.handle = nullptr;
    return l;
  }();
  return lib;
}

// Runs `call` (a virtual function returning a Status) and returns "" when it succeeded, else the
// Status's text. The Status is built in place and destroyed by the library's own destructor.
template <typename Call>
std::string status_of(Call&& call) {
  const Library& lib = library();
  alignas(Status) unsigned char storage[sizeof(Status)];
  Status* status = new (storage) Status(call());
  std::string text;
  if (!status->ok()) {
    text = lib.status_text(status);
    if (text.empty()) text = "an error without a message";
  }
  lib.destroy_status(status);
  return text;
}

}  // namespace

void SpModel::Deleter::operator()(SentencePieceProcessor* sp) const {
  sp->~SentencePieceProcessor();  // virtual: the library's destructor
  ::operator delete(static_cast<void*>(sp));
}

SpModel::SpModel(const std::string& path, bool no_dummy_prefix) : path_(path) {
  const Library& lib = library();
  if (lib.handle == nullptr)
    throw Error(ErrorCode::kUnsupported, "SentencePiece model '" + path +
                                             "': the SentencePiece library '" + lib.name +
                                             "' cannot be loaded (" + lib.error +
                                             "; Debian: apt-get install libsentencepiece0, or set "
                                             "ZSCLIP_SENTENCEPIECE_LIBRARY to its path)");
  void* memory = ::operator new(sizeof(SentencePieceProcessor));
  lib.construct(memory);
  sp_.reset(static_cast<SentencePieceProcessor*>(memory));
  std::string bytes =
      io::read_file(path, "SentencePiece model", {kMaxModelBytes, ErrorCode::kInvalidConfig});
  if (bytes.empty())
    throw Error(ErrorCode::kInvalidConfig, "SentencePiece model '" + path + "' is empty");
  if (no_dummy_prefix) bytes.append(kNoDummyPrefix, sizeof kNoDummyPrefix);
  const std::string failure = status_of([&] { return sp_->LoadFromSerializedProto(bytes); });
  if (!failure.empty())
    throw Error(
        ErrorCode::kInvalidConfig,
        "SentencePiece model '" + path + "' is corrupt or not a SentencePiece model: " + failure);
  if (sp_->GetPieceSize() <= 0)
    throw Error(ErrorCode::kInvalidConfig, "SentencePiece model '" + path + "' has no pieces");
}

SpModel::~SpModel() = default;

std::vector<int32_t> SpModel::encode(std::string_view utf8) const {
  std::vector<int> ids;
  const std::string failure = status_of([&] { return sp_->Encode(utf8, &ids); });
  if (!failure.empty())
    throw Error(ErrorCode::kInvalidText,
                "SentencePiece model '" + path_ + "' cannot encode the text: " + failure);
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string SpModel::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  const std::vector<int> in(ids.begin(), ids.end());
  const std::string failure = status_of([&] { return sp_->Decode(in, &text); });
  if (!failure.empty())
    throw Error(ErrorCode::kInvalidArgument,
                "SentencePiece model '" + path_ + "' cannot decode the ids: " + failure);
  return text;
}

int64_t SpModel::size() const { return sp_->GetPieceSize(); }

int32_t SpModel::find(std::string_view piece) const {
  const int id = sp_->PieceToId(piece);  // the unk id for an unknown piece
  if (id < 0 || id >= sp_->GetPieceSize() || sp_->IdToPiece(id) != piece) return -1;
  return id;
}

const std::string& SpModel::piece(int32_t id) const { return sp_->IdToPiece(id); }

int32_t SpModel::unk_id() const { return sp_->unk_id(); }

}  // namespace zsclip::text
