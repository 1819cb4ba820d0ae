#pragma once
// ShardWriter: an image folder (or a file list) into the packed shards that Shards reads in
// place - WebDataset-compatible tars, an index per shard, a manifest (datasets/detail/
// shard_format.hpp has the format). What `ringloader-pack` and Python's rl.pack() run; in the
// spirit of FFCV's DatasetWriter.
//
//   ShardWriterOptions opt;
//   opt.max_short_side = 256;                                        // larger images re-encoded
//   PackResult r = ShardWriter("/data/train-packed", opt).write("/data/train");
//   auto ds = std::make_shared<Shards>("/data/train-packed");
//
// Samples are shuffled once with `seed` (or kept in the source's order), so shards mix the
// classes and a block-shuffled epoch reads near-sequentially. Output is deterministic (the same
// input and options give the same bytes, whatever `jobs`), atomic (written to OUT.tmp-PID beside
// OUT, then renamed; a failed or interrupted write leaves nothing, and OUT.tmp-PID folders of
// writers that died are removed) and never replaces OUT unless `force`. Files that cannot be
// read or decoded are left out, returned in PackResult::bad_files and listed in
// OUT/bad_files.tsv (path<TAB>reason).
//
// Main process; write() runs `jobs` threads of its own and returns when they are done.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ringloader::datasets {

/// Where write() stands; handed to ShardWriterOptions::progress after each chunk of images.
struct PackProgress {
  size_t done = 0;   ///< source images handled (packed or bad)
  size_t total = 0;  ///< images in the source
  size_t shards = 0;
  size_t reencoded = 0;
  size_t bad = 0;
  double seconds = 0;  ///< since the first image
  bool last = false;   ///< the final call: every image handled
};

struct ShardWriterOptions {
  uint64_t shard_size = uint64_t{256} << 20;  ///< about this many bytes per shard (>= 1)
  int max_short_side = 0;                     ///< 0: store every image as it is
  int quality = 90;                           ///< JPEG quality of re-encoded images, 1..100
  int jobs = 0;                               ///< threads; 0: one per core
  uint64_t seed = 0;                          ///< of the sample order
  bool shuffle = true;                        ///< false: the source's order
  bool force = false;                         ///< replace OUT if it exists
  int64_t max_pixels = int64_t{64} << 20;     ///< images with more pixels are bad files
  /// Called from write()'s thread after each chunk, and once with last = true.
  std::function<void(const PackProgress&)> progress;
  /// Lines worth telling a user (a file the scan skipped, a stale OUT.tmp-PID removed).
  std::function<void(const std::string&)> log;
  /// Called before each chunk; whatever it throws ends write() with nothing written (a
  /// program's signal flag, Python's KeyboardInterrupt).
  std::function<void()> interrupt_check;
};

struct BadFile {
  std::string path;
  std::string reason;
};

/// What write() did.
struct PackResult {
  size_t images = 0;  ///< packed; 0: none could be, and nothing was written
  size_t total = 0;   ///< images in the source
  size_t shards = 0;
  uint64_t bytes = 0;  ///< of the tars and indexes
  size_t reencoded = 0;
  std::vector<BadFile> bad_files;  ///< in pack order, as in OUT/bad_files.tsv
  double seconds = 0;              ///< from the first image to OUT in place
};

class ShardWriter {
 public:
  /// Writes into folder `out` (which must not exist unless options.force).
  explicit ShardWriter(std::string out, ShardWriterOptions options = {});

  /// Packs `src`: an image folder (ROOT/<class>/**/<image>) or a file list (path<TAB>label).
  /// Throws ConfigError if OUT exists without force (or appears while packing), or is `src` or
  /// holds it; the source's own errors (ImageFolder, FileListDataset); Error naming the file
  /// and call for a failed write; ResourceError if a thread cannot be started.
  PackResult write(const std::string& src);

  const std::string& out() const { return out_; }
  const ShardWriterOptions& options() const { return options_; }

 private:
  std::string out_;
  ShardWriterOptions options_;
};

struct TarIndexed {
  std::string index;  ///< the .idx written
  size_t samples = 0;
};
/// Writes TAR.idx beside a tar made by anyone (GNU tar, the webdataset library), so Shards
/// opens it without scanning it. Throws DecodeError naming the tar and byte of a damaged
/// member, Error for a tar that cannot be read or an index that cannot be written.
TarIndexed write_tar_index(const std::string& tar);

}  // namespace ringloader::datasets
