// A bounded LRU cache of zero-shot heads, keyed by (labels, templates). A head is built once: a
// request that finds its label set being built by another waits for that build.
#pragma once

#include <cstddef>
#include <cstdint>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "zsclip/model.h"
#include "zsclip/zero_shot.h"

namespace zsclip::server {

class HeadCache {
 public:
  HeadCache(Model model, size_t capacity, bool truncate = false);

  // The head for these labels and templates, built with ZeroShotHead::build on a miss. `hit` (may
  // be null) tells whether it was cached. Build errors (zsclip::Error) are rethrown and not cached.
  std::shared_ptr<const ZeroShotHead> get(const std::vector<std::string>& labels,
                                          const std::vector<std::string>& templates,
                                          bool* hit = nullptr);
  size_t size() const;

 private:
  using Future = std::shared_future<std::shared_ptr<const ZeroShotHead>>;
  struct Entry {
    Future head;
    uint64_t id;
    std::list<std::string>::iterator lru;
  };
  Model model_;
  size_t capacity_;
  bool truncate_;
  uint64_t next_id_ = 0;
  mutable std::mutex mu_;
  std::list<std::string> lru_;  // most recent first
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace zsclip::server
