#include "server/head_cache.h"

namespace zsclip::server {
namespace {

// Unambiguous: every string is preceded by its length.
std::string key_of(const std::vector<std::string>& labels,
                   const std::vector<std::string>& templates) {
  std::string k;
  for (const auto* list : {&labels, &templates}) {
    k += std::to_string(list->size()) + ";";
    for (const auto& s : *list) k += std::to_string(s.size()) + ":" + s;
  }
  return k;
}

}  // namespace

HeadCache::HeadCache(Model model, size_t capacity, bool truncate)
    : model_(std::move(model)), capacity_(capacity < 1 ? 1 : capacity), truncate_(truncate) {}

size_t HeadCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

std::shared_ptr<const ZeroShotHead> HeadCache::get(const std::vector<std::string>& labels,
                                                   const std::vector<std::string>& templates,
                                                   bool* hit) {
  const std::string key = key_of(labels, templates);
  std::promise<std::shared_ptr<const ZeroShotHead>> promise;
  Future future;
  uint64_t id = 0;
  bool found = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = entries_.find(key); it != entries_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      future = it->second.head;
      found = true;
    } else {
      future = promise.get_future().share();
      lru_.push_front(key);
      id = ++next_id_;
      entries_.emplace(key, Entry{future, id, lru_.begin()});
      while (entries_.size() > capacity_) {  // a head still being built stays valid for its waiters
        entries_.erase(lru_.back());
        lru_.pop_back();
      }
    }
  }
  if (hit) *hit = found;
  if (found) return future.get();
  try {
    HeadBuildOptions build_options;
    build_options.truncate = truncate_;
    auto head = std::make_shared<const ZeroShotHead>(
        ZeroShotHead::build(model_, labels, templates, build_options));
    promise.set_value(head);
    return head;
  } catch (...) {
    promise.set_exception(std::current_exception());
    std::lock_guard<std::mutex> lock(mu_);
    // Drop the failed entry, unless it was evicted and another build of the same key replaced it.
    if (auto it = entries_.find(key); it != entries_.end() && it->second.id == id) {
      lru_.erase(it->second.lru);
      entries_.erase(it);
    }
    throw;
  }
}

}  // namespace zsclip::server
