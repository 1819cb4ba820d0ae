#include "datasets/image_folder.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <utility>

#include "core/error.hpp"
#include "core/posix_error.hpp"
#include "datasets/codecs/codec.hpp"
#include "datasets/detail/resource_error.hpp"

namespace ringloader::datasets {

std::vector<std::string> torchvision_extensions() {
  return {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"};
}

std::vector<std::string> decodable_extensions() {
  std::vector<std::string> all;
  for (const codecs::Codec* c : codecs::kCodecs) all.insert(all.end(), c->extensions.begin(), c->extensions.end());
  return all;
}

namespace {

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using UniqueDir = std::unique_ptr<DIR, DirCloser>;

using DevIno = std::pair<uint64_t, uint64_t>;

enum class Kind { kDir, kFile, kUnreadable };

struct Entry {
  Kind kind;
  std::string reason;  ///< kUnreadable
};

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

// A scan error leaves the folder or file out of the dataset. Running short of descriptors or
// memory says nothing about them: that is a ResourceError, not a silently smaller dataset.
void throw_if_resource(const std::string& path, const char* call, int err) {
  if (core::is_resource_errno(err)) throw detail::resource_error(path, std::string("cannot scan: ") + call, err);
}

// What `full` is, following symlinks; readdir's d_type spares a stat for plain files/folders.
Entry classify(const std::string& full, unsigned char d_type) {
  if (d_type == DT_DIR) return {Kind::kDir, {}};
  if (d_type == DT_REG) return {Kind::kFile, {}};
  struct stat st {};
  if (::stat(full.c_str(), &st) != 0) {
    const int err = errno;
    throw_if_resource(full, "stat", err);
    if (err == ENOENT) return {Kind::kUnreadable, "broken symbolic link (its target does not exist)"};
    if (err == ELOOP) return {Kind::kUnreadable, "symbolic link loop (too many levels of symbolic links)"};
    return {Kind::kUnreadable, std::string("stat: ") + std::strerror(err)};
  }
  return {S_ISDIR(st.st_mode) ? Kind::kDir : Kind::kFile, {}};
}

class Scanner {
 public:
  Scanner(const std::vector<std::string>& extensions, std::vector<ScanError>& errors, bool list_unreadable)
      : errors_(errors), list_unreadable_(list_unreadable) {
    for (const auto& e : extensions) extensions_.push_back(lower(e));
  }

  bool matches(const std::string& name) const {
    if (extensions_.empty()) return true;  // is_valid_file decides
    const std::string l = lower(name);
    for (const auto& e : extensions_) {
      if (l.size() >= e.size() && l.compare(l.size() - e.size(), e.size(), e) == 0) return true;
    }
    return false;
  }

  /// Names of the folders in `dir` (symlinks followed), sorted.
  std::vector<std::string> subfolders(const std::string& dir) {
    std::vector<std::string> out;
    list(dir, [&](const std::string& name, const Entry& e) {
      if (e.kind == Kind::kDir) out.push_back(name);
    });
    std::sort(out.begin(), out.end());
    return out;
  }

  /// Every matching file under root/rel, as "rel/sub/name", in torchvision's order: folders
  /// sorted by path (os.walk's tuples sorted), files sorted within a folder.
  std::vector<std::string> files(const std::string& root, const std::string& rel) {
    std::vector<std::pair<std::string, std::vector<std::string>>> folders;
    std::map<DevIno, std::string> ancestors;
    struct stat st {};
    if (::stat(root.c_str(), &st) == 0) ancestors.emplace(DevIno{st.st_dev, st.st_ino}, root);
    walk(root, rel, ancestors, folders);
    std::sort(folders.begin(), folders.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> out;
    for (auto& [dir, names] : folders) {
      std::sort(names.begin(), names.end());
      for (const auto& n : names) out.push_back(dir + "/" + n);
    }
    return out;
  }

 private:
  template <class F>
  bool list(const std::string& dir, F&& each) {
    UniqueDir d(::opendir(dir.c_str()));
    if (!d) {
      const int err = errno;
      throw_if_resource(dir, "opendir", err);
      errors_.push_back({dir, std::string("cannot list folder: opendir: ") + std::strerror(err)});
      return false;
    }
    for (;;) {
      errno = 0;
      const dirent* e = ::readdir(d.get());
      if (e == nullptr) {
        const int err = errno;
        throw_if_resource(dir, "readdir", err);
        if (err != 0) errors_.push_back({dir, std::string("cannot list folder: readdir: ") + std::strerror(err)});
        break;
      }
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      each(name, classify(dir + "/" + name, e->d_type));
    }
    return true;
  }

  void walk(const std::string& root, const std::string& rel, std::map<DevIno, std::string>& ancestors,
            std::vector<std::pair<std::string, std::vector<std::string>>>& folders) {
    const std::string dir = root + "/" + rel;
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
      const int err = errno;
      throw_if_resource(dir, "stat", err);
      errors_.push_back({dir, std::string("stat: ") + std::strerror(err)});
      return;
    }
    const DevIno id{st.st_dev, st.st_ino};
    if (auto it = ancestors.find(id); it != ancestors.end()) {
      errors_.push_back({dir, "symbolic link loop: this folder is " + it->second + ", which contains it; not followed"});
      return;
    }
    ancestors.emplace(id, dir);
    std::vector<std::string> names;
    std::vector<std::string> subdirs;
    list(dir, [&](const std::string& name, const Entry& e) {
      switch (e.kind) {
        case Kind::kDir: subdirs.push_back(name); break;
        case Kind::kFile:
          if (matches(name)) names.push_back(name);
          break;
        case Kind::kUnreadable:
          if (!matches(name)) break;
          errors_.push_back({dir + "/" + name, e.reason});
          if (list_unreadable_) names.push_back(name);
          break;
      }
    });
    if (!names.empty()) folders.emplace_back(rel, std::move(names));
    std::sort(subdirs.begin(), subdirs.end());
    for (const auto& s : subdirs) walk(root, rel + "/" + s, ancestors, folders);
    ancestors.erase(id);
  }

  std::vector<std::string> extensions_;
  std::vector<ScanError>& errors_;
  bool list_unreadable_;
};

std::string strip_trailing_slashes(std::string s) {
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace

ImageFolder::ImageFolder(const std::string& root, ImageFolderOptions options)
    : ImageDataset(options, strip_trailing_slashes(root) + "/"), root_(strip_trailing_slashes(root)) {
  struct stat st {};
  if (::stat(root_.c_str(), &st) != 0) {
    const int err = errno;
    throw_if_resource(root_, "stat", err);
    throw ConfigError("ImageFolder root " + root_ + ": stat: " + std::strerror(err));
  }
  if (!S_ISDIR(st.st_mode)) throw ConfigError("ImageFolder root " + root_ + " is not a folder");
  const bool by_predicate = static_cast<bool>(options.is_valid_file);
  if (options.extensions.empty() && !by_predicate) throw ConfigError("ImageFolder: extensions is empty");

  Scanner scan(by_predicate ? std::vector<std::string>{} : options.extensions, scan_errors_, options.list_unreadable);
  classes_ = scan.subfolders(root_);
  if (classes_.empty()) throw ConfigError("ImageFolder: no class folder in " + root_);
  detail::PathIndex& index = mutable_index();
  std::string empty;
  for (size_t c = 0; c < classes_.size(); ++c) {
    std::vector<std::string> files = scan.files(root_, classes_[c]);
    if (by_predicate) {
      std::erase_if(files, [&](const std::string& f) { return !options.is_valid_file(root_ + "/" + f); });
    }
    if (files.empty()) empty += (empty.empty() ? "" : ", ") + classes_[c];
    for (const auto& f : files) index.add(f, static_cast<int32_t>(c));
  }
  index.finish();
  if (!empty.empty() && !options.allow_empty) {
    std::string exts;
    for (const auto& e : options.extensions) exts += (exts.empty() ? "" : " ") + e;
    if (by_predicate) exts = "is_valid_file accepted none";
    throw ConfigError("ImageFolder " + root_ + ": no image in class folder(s) " + empty + " (extensions: " + exts +
                      "; set allow_empty to accept empty classes)");
  }
}

}  // namespace ringloader::datasets
