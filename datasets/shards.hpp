#pragma once
// Shards: a dataset packed into WebDataset-compatible tar shards (by ringloader-pack, GNU tar
// or the webdataset library): every shard is opened once, in the main process, and a sample is
// one pread() of its tar header and bytes, found through the shard's index. Not a mapping: a
// shard truncated while it is read (overwritten in place) would raise SIGBUS in the reading
// process; a read past its end is a DecodeError naming the shard. Transforms, outputs and
// errors as ImageFolder (see ImageDataset).
//
//   ShardsOptions opt;
//   opt.transform = Pipeline::random_crop_flip(224);
//   auto ds = std::make_shared<Shards>("/data/train-packed", opt);   // ringloader-pack's output
//   loader::LoaderOptions lo;
//   lo.sampler = std::make_shared<loader::BlockShuffleSampler>(ds->shard_sizes(), 4);  // near-sequential
//
// `path` is a packed folder (manifest.json + shard-NNNNNN.tar/.idx), a folder of .tar files,
// or one .tar file. Tars without a ringloader index (.idx beside them, as `ringloader-pack
// --index` writes) are scanned at open. Samples are numbered shard by shard in tar order.
//
// Checked at open: the manifest's format, each index against its tar's size and the
// manifest's dataset id (an index or manifest from another pack), every index's checksum.
// Checked per sample, in the same read: the tar header before the sample (checksum, name,
// size) - a damaged member header or an index that does not match its tar is a DecodeError
// naming the shard and byte offset, raised or skipped by the loader's on_error.
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "core/unique_handle.hpp"
#include "datasets/image_dataset.hpp"

namespace ringloader::datasets {

/// As ImageDatasetOptions, but reader_threads defaults to 0: the bytes come from the mapping.
/// read_delay_ms models remote storage serving ranged reads: the delay is paid once per
/// kReadUnit bytes of a shard, the first time in an epoch that a process reads into them (by
/// get(), or by reader threads ahead of it when reader_threads > 0), not once per sample: data
/// larger than memory, read again every epoch.
struct ShardsOptions : ImageDatasetOptions {
  static constexpr uint64_t kReadUnit = uint64_t{1} << 20;
  ShardsOptions() { reader_threads = 0; }
};

class Shards : public ImageDataset {
 public:
  /// Opens and checks the shards (main process, before fork). Throws ConfigError if `path`
  /// holds no shard, DecodeError naming the shard (and byte offset) for a damaged or
  /// mismatched shard, index or manifest, ResourceError if the system refuses a mapping.
  explicit Shards(const std::string& path, ShardsOptions options = {});

  const std::string& root() const { return root_; }
  /// Class names (from the manifest; for foreign tars "0", "1", ... up to the largest label).
  const std::vector<std::string>& classes() const { return classes_; }
  /// Samples per shard, in order: shard s holds the samples after those of shards < s.
  const std::vector<size_t>& shard_sizes() const { return shard_sizes_; }
  const std::vector<std::string>& shard_paths() const { return shard_paths_; }
  /// True for ringloader-pack's output (a manifest.json was read).
  bool packed() const { return packed_; }
  /// The manifest's dataset id (hex), or "" without a manifest.
  const std::string& dataset_id() const { return dataset_id_; }

  /// "ROOT/shard-000003.tar@123456 (class_01/img_00017.jpg)"
  std::string path(size_t index) const override;
  void get(size_t index, SampleWriter& out) override;
  /// Bytes of the shards, as they were at open.
  size_t total_bytes() const;

 protected:
  SampleBytes fetch(size_t index) const override;

 private:
  struct Sample {
    uint64_t offset;
    uint64_t size;
    uint32_t shard;
  };
  void add_shard(const std::string& tar_path, const std::string& index_path, uint64_t expect_id);
  void delay_first_read(const Sample& s) const;

  std::string root_;
  bool packed_ = false;
  std::string dataset_id_;
  std::vector<std::string> classes_;
  std::vector<std::string> shard_paths_;
  std::vector<size_t> shard_sizes_;
  std::vector<core::UniqueFd> fds_;      ///< one per shard, opened at construction (shared by forked workers: pread only)
  std::vector<uint64_t> shard_bytes_;   ///< each shard's size at open
  std::vector<Sample> samples_;
  detail::PathIndex members_;  ///< "KEY.ext" of each sample, for the header check
  // read_delay_ms: the read units this process has read (reset in a forked child).
  mutable std::mutex read_mu_;
  mutable int read_pid_ = 0;
  mutable uint64_t read_epoch_ = 0;
  mutable std::vector<std::vector<bool>> read_units_;
};

}  // namespace ringloader::datasets
