#pragma once
// PathIndex: a million (path, label) pairs in three flat arrays (one char buffer of
// NUL-terminated paths, their offsets, int32 labels) instead of a std::string per file: a few
// large allocations that forked workers share copy-on-write and never write to.
//
//   PathIndex idx;
//   idx.add("cat/1.jpg", 0);
//   idx.finish();                 // shrink to fit; read-only from here on
//   std::string_view p = idx.path(0);
//
// Built in the main process before fork; read-only (and thread-safe) afterwards.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace ringloader::datasets::detail {

class PathIndex {
 public:
  void add(std::string_view path, int32_t label) {
    offsets_.push_back(chars_.size());
    chars_.insert(chars_.end(), path.begin(), path.end());
    chars_.push_back('\0');
    labels_.push_back(label);
  }
  /// Done adding: give back the slack.
  void finish() {
    chars_.shrink_to_fit();
    offsets_.shrink_to_fit();
    labels_.shrink_to_fit();
  }
  size_t size() const { return labels_.size(); }
  bool empty() const { return labels_.empty(); }
  std::string_view path(size_t i) const {
    const size_t end = i + 1 < offsets_.size() ? offsets_[i + 1] - 1 : chars_.size() - 1;
    return {chars_.data() + offsets_[i], end - offsets_[i]};
  }
  int32_t label(size_t i) const { return labels_[i]; }
  /// Heap bytes the index holds.
  size_t memory_bytes() const {
    return chars_.capacity() + offsets_.capacity() * sizeof(uint64_t) + labels_.capacity() * sizeof(int32_t);
  }

 private:
  std::vector<char> chars_;       ///< every path followed by '\0'
  std::vector<uint64_t> offsets_; ///< start of path i in chars_
  std::vector<int32_t> labels_;   ///< label of path i
};

}  // namespace ringloader::datasets::detail
