#include "text/sp_model.h"

#include <sentencepiece_processor.h>

#include "core/io.h"
#include "zsclip/error.h"

namespace zsclip::text {
namespace {

constexpr uint64_t kMaxModelBytes = uint64_t{1} << 30;  // Gemma's is 4 MiB, mT5's 4.3 MiB

// ModelProto field 3 (normalizer_spec, length-delimited) holding only NormalizerSpec field 3
// (add_dummy_prefix, varint) = 0. Protobuf merges repeated occurrences of an embedded message, so
// appending it to a serialized model sets that one field and keeps the rest: what transformers
// does with normalizer_spec.MergeFrom(NormalizerSpec(add_dummy_prefix=False)).
constexpr char kNoDummyPrefix[] = {0x1A, 0x02, 0x18, 0x00};

}  // namespace

SpModel::SpModel(const std::string& path, bool no_dummy_prefix)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), path_(path) {
  std::string bytes =
      io::read_file(path, "SentencePiece model", {kMaxModelBytes, ErrorCode::kInvalidConfig});
  if (bytes.empty())
    throw Error(ErrorCode::kInvalidConfig, "SentencePiece model '" + path + "' is empty");
  if (no_dummy_prefix) bytes.append(kNoDummyPrefix, sizeof kNoDummyPrefix);
  const sentencepiece::util::Status status = sp_->LoadFromSerializedProto(bytes);
  if (!status.ok())
    throw Error(ErrorCode::kInvalidConfig,
                "SentencePiece model '" + path +
                    "' is corrupt or not a SentencePiece model: " + status.ToString());
  if (sp_->GetPieceSize() <= 0)
    throw Error(ErrorCode::kInvalidConfig, "SentencePiece model '" + path + "' has no pieces");
}

SpModel::~SpModel() = default;

std::vector<int32_t> SpModel::encode(std::string_view utf8) const {
  std::vector<int> ids;
  const sentencepiece::util::Status status = sp_->Encode(utf8, &ids);
  if (!status.ok())
    throw Error(ErrorCode::kInvalidText,
                "SentencePiece model '" + path_ + "' cannot encode the text: " + status.ToString());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string SpModel::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  const sentencepiece::util::Status status =
      sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  if (!status.ok())
    throw Error(ErrorCode::kInvalidArgument,
                "SentencePiece model '" + path_ + "' cannot decode the ids: " + status.ToString());
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
