#pragma once
// FileListDataset: samples listed in a text file, one `path<TAB>label` or `path,label` a
// line. Relative paths are relative to the list file's folder; absolute ones stay. Blank
// lines and lines starting with '#' are skipped, and so is a first line whose label column
// reads "label" (a CSV header). A path holding commas must use the TAB form, or be quoted
// ("a,b.jpg",3). Labels are integers in [0, 2^31).
//
//   FileListDataset ds("/data/val.tsv");          // val.tsv: "img/0001.jpg\t65"
//   ds.num_classes();                             // largest label + 1
//
// A malformed line is a ConfigError naming the list file and the line number. The files
// themselves are not touched until get(). See ImageDataset for get(), threads and fork.
#include <string>

#include "datasets/image_dataset.hpp"

namespace ringloader::datasets {

class FileListDataset : public ImageDataset {
 public:
  explicit FileListDataset(const std::string& list_path, ImageDatasetOptions options = {});
  int64_t num_classes() const { return num_classes_; }

 private:
  int64_t num_classes_ = 0;
};

}  // namespace ringloader::datasets
