#pragma once
// ImageDataset: the part ImageFolder and FileListDataset share. A compact index of
// (path, label); get() reads the file (or takes what a reader thread fetched ahead), decodes,
// runs the Pipeline and writes the image straight into the writer's "image" field and the
// label into "label".
//
//   ImageFolderOptions opt;
//   opt.transform = Pipeline::random_crop_flip(224);
//   ImageFolder ds("/data/imagenet/train", opt);   // an ImageDataset
//
// Schema: "image" uint8 [H, W, 3] (or float32 [3, H, W] after Pipeline::to_float) with H x W the
// pipeline's fixed output size, and "label" int64 []. Failures of one sample (bad file, read
// error) are DecodeErrors naming the file; the loader's on_error policy decides. A shortage of
// the system's (EMFILE, ENFILE, ENOMEM, EAGAIN: too many open files, out of memory) is a
// ResourceError naming the file, the call and the sample index: never a bad file.
//
// Built in the main process, before fork, with no threads. on_worker_start() starts the
// reader threads in the process that calls it (a worker, or the main process when
// num_workers = 0); prefetch() feeds them. get() is thread-safe. Threads the system refuses
// (RLIMIT_NPROC, ...) do not fail the worker: it reads ahead with those that started, or
// reads in get() if none did, and worker_start_warning() says how many of how many, and why.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "datasets/dataset.hpp"
#include "datasets/detail/path_index.hpp"
#include "datasets/image_decoder.hpp"
#include "datasets/transforms.hpp"

namespace ringloader::datasets {

namespace detail {
class ReadAhead;
}

/// The most reader threads a process runs (ImageDatasetOptions::reader_threads).
inline constexpr int kMaxReaderThreads = 1024;

/// Options shared by the image datasets.
struct ImageDatasetOptions {
  Pipeline transform = Pipeline::center(256, 224);  ///< must end in a fixed size
  DecodeOptions decode{};                           ///< max_pixels, DCT scaling, backend
  size_t max_file_bytes = size_t{256} << 20;        ///< larger files are refused unread
  /// Threads reading ahead per process; 0 reads in get(). They sleep in IO, so size them by
  /// latency x decode rate: 10 ms reads at ~1500 images/s need ~15 (measured: 4 keep 44% of
  /// the undelayed rate, 16 keep 87%). Used only while reads are slow: under 100 us on average
  /// (the page cache) get() reads itself, over 400 us the threads read ahead again. At most
  /// kMaxReaderThreads (ConfigError past it).
  int reader_threads = 16;
  size_t prefetch_files = 64;    ///< most files read ahead and not yet taken
  size_t prefetch_bytes = size_t{256} << 20;  ///< readers pause while read-ahead holds more
  int read_delay_ms = 0;         ///< injected latency before every read (benchmarks)
};

class ImageDataset : public Dataset {
 public:
  ~ImageDataset() override;
  ImageDataset(const ImageDataset&) = delete;
  ImageDataset& operator=(const ImageDataset&) = delete;

  size_t size() const override { return index_.size(); }
  Schema schema() const override;
  void get(size_t index, SampleWriter& out) override;
  std::string source(size_t index) const override { return path(index); }
  /// A hash of every (relative path, label) of the index and of the output geometry.
  std::string fingerprint() const override;
  void on_worker_start(const WorkerInfo& info) override;
  /// "" unless fewer reader threads than reader_threads started in this process.
  std::string worker_start_warning() const override;
  void prefetch(std::span<const int64_t> indices) override;

  /// Full path of sample `index` (Shards: the shard, byte offset and source file).
  virtual std::string path(size_t index) const;
  int64_t label(size_t index) const { return index_.label(index); }
  /// {height, width} of every image.
  std::array<int, 2> image_size() const { return out_hw_; }
  const ImageDatasetOptions& options() const { return options_; }
  /// Bytes of the index (paths, offsets, labels): what each worker shares copy-on-write.
  size_t index_bytes() const { return index_.memory_bytes(); }
  /// Reader threads running in this process (0 before on_worker_start(), with
  /// reader_threads = 0, or if the system refused every one).
  int reader_threads_started() const;

 protected:
  /// `base` prefixes every relative path of the index ("" or ending in '/').
  ImageDataset(ImageDatasetOptions options, std::string base);
  /// Filled by the subclass constructor, read-only afterwards.
  detail::PathIndex& mutable_index() { return index_; }
  const detail::PathIndex& path_index() const { return index_; }

  /// A sample's encoded bytes: `view`, pointing into `owned` or into memory that outlives
  /// the dataset (a mapped shard).
  struct SampleBytes {
    std::vector<uint8_t> owned;
    std::span<const uint8_t> view;
  };
  /// The bytes of sample `index` (after options().read_delay_ms): the file read whole here;
  /// a subclass may hand out a view instead. Thread-safe; throws DecodeError naming the sample.
  virtual SampleBytes fetch(size_t index) const;

 private:
  void load(size_t index, const std::string& file, SampleWriter& out);
  /// reader_ if this process started it, else null (a forked copy must not use it).
  detail::ReadAhead* reader() const;

  ImageDatasetOptions options_;
  ImageDecoder decoder_;
  std::array<int, 2> out_hw_{};
  std::string base_;
  detail::PathIndex index_;
  /// Reader threads of the process that started them (reader_pid_); null until then, and
  /// if no thread could start.
  std::unique_ptr<detail::ReadAhead> reader_;
  /// The process that ran on_worker_start() (0: none yet); reader_ and reader_warning_ are
  /// its, and another process (a forked copy) must ignore them.
  int reader_pid_ = 0;
  std::string reader_warning_;  ///< see worker_start_warning()
};

}  // namespace ringloader::datasets
