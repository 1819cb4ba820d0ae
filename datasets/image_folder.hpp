#pragma once
// ImageFolder: torchvision.datasets.ImageFolder in C++. root/<class>/**/<file>: classes are
// the sorted names of root's subfolders (symlinks to folders count), a sample's label is its
// class's index, samples are ordered as torchvision orders them (class, then folder path,
// then file name, all by code point), file names match `extensions` case-insensitively.
//
//   ImageFolderOptions opt;                        // Resize(256) + CenterCrop(224), uint8 HWC
//   opt.transform = Pipeline::random_crop_flip(224).to_float();
//   auto ds = std::make_shared<ImageFolder>("/data/imagenet/train", opt);
//   for (auto& e : ds->scan_errors()) spdlog::warn("{}: {}", e.path, e.reason);
//
// Symlinks are followed. What can never be read - a broken link, a symlink loop, a folder
// that cannot be listed - goes to scan_errors() and is left out; it is not fatal. Running out
// of descriptors or memory while scanning is no such thing: a ResourceError, so that a folder
// is never left out for it. Any other matching name is a sample (as in torchvision); a bad
// file surfaces from get() as a DecodeError naming it. See ImageDataset for get(), threads
// and fork.
#include <string>
#include <vector>

#include <functional>
#include <string>
#include <vector>

#include "datasets/image_dataset.hpp"

namespace ringloader::datasets {

/// torchvision's IMG_EXTENSIONS (0.14, which has .webp): what ImageFolder matches by default.
std::vector<std::string> torchvision_extensions();
/// Every extension our decoders read, .tga .gif .psd .hdr .pnm included (no .tif/.tiff).
std::vector<std::string> decodable_extensions();

struct ImageFolderOptions : ImageDatasetOptions {
  std::vector<std::string> extensions = torchvision_extensions();  ///< lower case, with the dot
  bool allow_empty = false;  ///< a class folder without images is an error unless set (torchvision raises)
  /// torchvision's is_valid_file: set, it decides for every file (by its full path) instead of
  /// `extensions`, as torchvision's make_dataset does. Called in the scan, in the main process.
  std::function<bool(const std::string& path)> is_valid_file;
  /// An entry the scan cannot stat (a broken link, a link loop) is still a sample when its name
  /// matches, as torchvision's os.walk lists it: its load fails, naming it, and the indices of
  /// the others are torchvision's. It is in scan_errors() either way.
  bool list_unreadable = false;
};

/// Something the scan skipped, and why.
struct ScanError {
  std::string path;
  std::string reason;
};

class ImageFolder : public ImageDataset {
 public:
  /// Scans `root` now (main process). Throws ConfigError if root is not a folder, has no
  /// class folder, or (unless allow_empty) a class has no image; ResourceError if the system
  /// runs short of descriptors or memory during the scan.
  explicit ImageFolder(const std::string& root, ImageFolderOptions options = {});

  const std::string& root() const { return root_; }
  /// Class names, sorted; label i is classes()[i].
  const std::vector<std::string>& classes() const { return classes_; }
  /// Entries the scan left out (broken links, loops, unlistable folders), in scan order.
  const std::vector<ScanError>& scan_errors() const { return scan_errors_; }

 private:
  std::string root_;
  std::vector<std::string> classes_;
  std::vector<ScanError> scan_errors_;
};

}  // namespace ringloader::datasets
