#include "datasets/file_list_dataset.hpp"

#include <charconv>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <string_view>

#include "core/error.hpp"
#include "core/posix_error.hpp"
#include "datasets/detail/resource_error.hpp"

namespace ringloader::datasets {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::string folder_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  return path.substr(0, slash + 1);
}

// A CSV path field: "a,""b"".jpg" -> a,"b".jpg.
bool unquote(std::string_view in, std::string& out) {
  out.clear();
  if (in.empty() || in.front() != '"') {
    out.assign(in);
    return true;
  }
  if (in.size() < 2 || in.back() != '"') return false;
  in = in.substr(1, in.size() - 2);
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '"') {
      if (i + 1 >= in.size() || in[i + 1] != '"') return false;
      ++i;
    }
    out += in[i];
  }
  return true;
}

}  // namespace

FileListDataset::FileListDataset(const std::string& list_path, ImageDatasetOptions options)
    : ImageDataset(std::move(options), folder_of(list_path)) {
  errno = 0;
  std::ifstream in(list_path);
  if (!in) {
    const int err = errno;
    // Out of descriptors or memory: the system's shortage, not a wrong option.
    if (core::is_resource_errno(err)) throw detail::resource_error(list_path, "cannot open file list", err);
    throw ConfigError("cannot open file list " + list_path + ": " + std::strerror(err));
  }
  detail::PathIndex& index = mutable_index();
  std::string line;
  std::string path;
  int64_t max_label = -1;
  for (size_t number = 1; std::getline(in, line); ++number) {
    const std::string_view l = trim(line);
    if (l.empty() || l.front() == '#') continue;
    auto fail = [&](const std::string& why) {
      throw ConfigError(list_path + ":" + std::to_string(number) + ": " + why + " (expected path<TAB>label or path,label)");
    };
    size_t sep = l.rfind('\t');
    if (sep == std::string_view::npos) sep = l.rfind(',');
    if (sep == std::string_view::npos) fail("no TAB or comma between path and label");
    const std::string_view label_text = trim(l.substr(sep + 1));
    if (!unquote(trim(l.substr(0, sep)), path)) fail("unbalanced quotes in the path");
    if (number == 1 && (label_text == "label" || label_text == "Label" || label_text == "LABEL")) continue;
    if (path.empty()) fail("empty path");
    int64_t label = 0;
    const auto [end, ec] = std::from_chars(label_text.data(), label_text.data() + label_text.size(), label);
    if (label_text.empty() || ec != std::errc() || end != label_text.data() + label_text.size()) {
      fail("label '" + std::string(label_text) + "' is not an integer");
    }
    if (label < 0 || label > std::numeric_limits<int32_t>::max()) {
      fail("label " + std::to_string(label) + " is outside [0, 2^31)");
    }
    index.add(path, static_cast<int32_t>(label));
    max_label = std::max(max_label, label);
  }
  if (in.bad()) throw ConfigError("error reading file list " + list_path);
  index.finish();
  if (index.empty()) throw ConfigError("file list " + list_path + " lists no file");
  num_classes_ = max_label + 1;
}

}  // namespace ringloader::datasets
