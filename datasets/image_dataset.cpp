#include "datasets/image_dataset.hpp"

#include <cstdio>
#include <unistd.h>

#include "datasets/detail/file_reader.hpp"
#include "datasets/detail/read_ahead.hpp"
#include "core/error.hpp"
#include "core/fnv.hpp"

namespace ringloader::datasets {

ImageDataset::ImageDataset(ImageDatasetOptions options, std::string base)
    : options_(std::move(options)), decoder_(options_.decode), base_(std::move(base)) {
  const auto hw = options_.transform.output_size();
  if (!hw) {
    throw ConfigError("transform " + options_.transform.describe() +
                      " has no fixed output size: end it with CenterCrop, RandomResizedCrop or Resize((h, w))");
  }
  out_hw_ = *hw;
  if (options_.reader_threads < 0 || options_.reader_threads > kMaxReaderThreads) {
    // Past a few hundred the threads only queue on the disk, and tens of thousands of them run a
    // worker out of memory or of thread ids inside the C library (an abort, not an error).
    throw ConfigError("reader_threads must be in [0, " + std::to_string(kMaxReaderThreads) + "] (reader threads per "
                      "worker), got " + std::to_string(options_.reader_threads));
  }
  if (options_.read_delay_ms < 0) throw ConfigError("read_delay_ms must be >= 0, got " + std::to_string(options_.read_delay_ms));
  if (options_.max_file_bytes == 0) throw ConfigError("max_file_bytes must be positive");
}

ImageDataset::~ImageDataset() {
  // Reader threads started in another process (we are a forked copy) do not exist here and
  // their mutex may have been held at fork: never touch that object, let it go.
  if (reader_ && reader_pid_ != ::getpid()) static_cast<void>(reader_.release());
}

Schema ImageDataset::schema() const {
  const int64_t h = out_hw_[0];
  const int64_t w = out_hw_[1];
  const OutputFormat f = options_.transform.format();
  Field image = f == OutputFormat::kUInt8HWC   ? Field{"image", DType::kUInt8, {h, w, 3}, false}
                : f == OutputFormat::kUInt8CHW ? Field{"image", DType::kUInt8, {3, h, w}, false}
                                               : Field{"image", DType::kFloat32, {3, h, w}, false};
  return Schema{{std::move(image), Field{"label", DType::kInt64, {}, false}}};
}

std::string ImageDataset::path(size_t index) const {
  const std::string_view p = index_.path(index);
  if (!p.empty() && p.front() == '/') return std::string(p);
  std::string full;
  full.reserve(base_.size() + p.size());
  full += base_;
  full += p;
  return full;
}

ImageDataset::SampleBytes ImageDataset::fetch(size_t index) const {
  SampleBytes b;
  b.owned = detail::read_file(path(index), options_.max_file_bytes, options_.read_delay_ms);
  b.view = b.owned;
  return b;
}

void ImageDataset::on_worker_start(const WorkerInfo& /*info*/) {
  if (options_.reader_threads == 0) return;
  const int pid = ::getpid();
  if (reader_pid_ == pid) return;  // already done in this process (even if no thread started)
  if (reader_) static_cast<void>(reader_.release());  // inherited through fork: see ~ImageDataset
  reader_warning_.clear();
  auto reader = std::make_unique<detail::ReadAhead>(options_.reader_threads, options_.prefetch_files, options_.prefetch_bytes,
                                                    [this](int64_t i) {
                                                      SampleBytes b = fetch(static_cast<size_t>(i));
                                                      if (b.owned.empty()) b.owned.assign(b.view.begin(), b.view.end());
                                                      return std::move(b.owned);
                                                    });
  reader_pid_ = pid;
  if (reader->started_threads() < options_.reader_threads) {
    reader_warning_ = reader->start_failure() + (reader->started_threads() == 0
                                                     ? "; files are read in get(), as with reader_threads = 0"
                                                     : "; reading ahead with those");
  }
  if (reader->started_threads() > 0) reader_ = std::move(reader);
}

std::string ImageDataset::worker_start_warning() const {
  return reader_pid_ == ::getpid() ? reader_warning_ : std::string();
}

detail::ReadAhead* ImageDataset::reader() const {
  return reader_ && reader_pid_ == ::getpid() ? reader_.get() : nullptr;
}

int ImageDataset::reader_threads_started() const {
  const detail::ReadAhead* r = reader();
  return r ? r->started_threads() : 0;
}

void ImageDataset::prefetch(std::span<const int64_t> indices) {
  if (detail::ReadAhead* r = reader()) r->hint(indices);
}

void ImageDataset::get(size_t index, SampleWriter& out) {
  if (index >= size()) {
    throw SampleError("index " + std::to_string(index) + " out of range (dataset size " + std::to_string(size()) + ")",
                      static_cast<int64_t>(index), "", "IndexError");
  }
  const std::string file = path(index);
  out.set_source(file);
  try {
    load(index, file, out);
  } catch (const ResourceError& e) {
    // The system ran short (descriptors, memory): the loader retries or raises it, and the
    // sample it names is the one to retry.
    if (e.index() >= 0) throw;
    throw ResourceError(e.what(), e.error_number(), e.path().empty() ? file : e.path(), static_cast<int64_t>(index));
  }
}

void ImageDataset::load(size_t index, const std::string& file, SampleWriter& out) {
  std::optional<std::vector<uint8_t>> fetched;
  detail::ReadAhead* const reader = this->reader();
  if (reader) fetched = reader->take(static_cast<int64_t>(index));
  SampleBytes sample;
  if (fetched) {
    sample.owned = std::move(*fetched);
    sample.view = sample.owned;
  } else if (reader) {
    detail::ReadAhead::TimedRead timed(*reader);  // failed or not: slow reads turn read-ahead back on
    sample = fetch(index);
  } else {
    sample = fetch(index);
  }
  const std::span<const uint8_t> bytes = sample.view;

  const ImageInfo info = decoder_.probe(bytes, file);
  Rng rng = out.rng(0);
  const Geometry g = options_.transform.plan(info.width, info.height, rng);
  if (g.out_height() != out_hw_[0] || g.out_width() != out_hw_[1]) {
    throw SampleError("transform gave " + std::to_string(g.out_height()) + "x" + std::to_string(g.out_width()) +
                          ", the schema says " + std::to_string(out_hw_[0]) + "x" + std::to_string(out_hw_[1]),
                      static_cast<int64_t>(index), file, "ShapeMismatch");
  }
  if (options_.transform.format() == OutputFormat::kUInt8HWC) {
    decoder_.decode_into(bytes, file, info, g, out.field<uint8_t>(0));  // straight into the batch
  } else {
    thread_local std::vector<uint8_t> hwc;
    hwc.resize(static_cast<size_t>(out_hw_[0]) * static_cast<size_t>(out_hw_[1]) * 3);
    decoder_.decode_into(bytes, file, info, g, hwc);
    if (options_.transform.format() == OutputFormat::kUInt8CHW) {
      Pipeline::to_uint8_chw(hwc, out_hw_[0], out_hw_[1], out.field<uint8_t>(0));
    } else {
      options_.transform.to_float_chw(hwc, out_hw_[0], out_hw_[1], out.field<float>(0));
    }
  }
  out.field<int64_t>(1)[0] = label(index);
}

std::string ImageDataset::fingerprint() const {
  uint64_t h = core::kFnvOffset;
  for (size_t i = 0; i < index_.size(); ++i) {
    h = core::fnv1a64(index_.path(i), h);
    h = core::fnv1a64("\t" + std::to_string(index_.label(i)) + "\n", h);
  }
  h = core::fnv1a64(std::to_string(out_hw_[0]) + "x" + std::to_string(out_hw_[1]), h);
  return core::hex64(h);
}

}  // namespace ringloader::datasets
