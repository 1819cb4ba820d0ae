// Single-thread decode + Resize(256) + CenterCrop(224) throughput of the three backends on
// a folder of photo-like JPEGs (bytes in memory), then the DataLoader at 1 and 2 workers over
// the same JPEGs as a fraction of workers x the fast path's single-thread rate, then the
// loader at 2 workers with an injected read latency, with and without reader threads.
//
//   ringloader-decode-bench --dir /tmp/rl-photos          # generates 10 x 300 images if empty
//   ringloader-decode-bench --dir /tmp/rl-photos --runs 5 --delay-ms 10 --reader-threads 16
//
// An unknown option or a bad value exits 2 with one line on stderr; --help prints the usage.
// GCC 12 reports a false -Wnull-dereference inside CLI11's (and libstdc++'s) inlined string code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/unique_handle.hpp"
#include "datasets/detail/file_reader.hpp"
#include "datasets/image_decoder.hpp"
#include "datasets/image_folder.hpp"
#include "examples/cli_common.hpp"
#include "examples/image_gen.hpp"
#include "ipc/worker_process.hpp"
#include "loader/data_loader.hpp"
#include "loader/sampler.hpp"

using namespace ringloader;
using namespace ringloader::datasets;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kProgram = "ringloader-decode-bench";

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

bool has_images(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return false;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec); it != std::filesystem::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->path().extension() == ".jpg") return true;
  }
  return false;
}

// Images/s of decode_into over `files` (bytes in memory: no IO), one thread.
double decode_rate(const std::vector<std::vector<uint8_t>>& files, ResizeBackend backend, const Pipeline& p,
                   bool roi = true) {
  DecodeOptions o;
  o.backend = backend;
  o.roi = roi;
  const ImageDecoder dec(o);
  std::vector<uint8_t> out(224 * 224 * 3);
  Rng rng(0);
  const auto t0 = Clock::now();
  for (const auto& f : files) {
    const ImageInfo info = dec.probe(f, "bench");
    dec.decode_into(f, "bench", info, p.plan(info.width, info.height, rng), out);
  }
  return static_cast<double>(files.size()) / seconds_since(t0);
}

/// Images/s of `procs` forked processes each running the fast path over `files` at the same
/// time, summed: what the machine's cores give to independent decoders, with no loader at all.
double parallel_rate(const std::vector<std::vector<uint8_t>>& files, const Pipeline& p, int procs) {
  std::vector<std::pair<ipc::WorkerProcess, core::UniqueFd>> kids;  // each child's rate comes back through a pipe
  for (int k = 0; k < procs; ++k) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    core::UniqueFd read_end(fds[0]), write_end(fds[1]);
    auto child = ipc::WorkerProcess::spawn([&] {
      const double r = decode_rate(files, ResizeBackend::kFast, p);
      return ::write(write_end.get(), &r, sizeof r) == static_cast<ssize_t>(sizeof r) ? 0 : 1;
    });
    kids.emplace_back(std::move(child), std::move(read_end));
  }
  double sum = 0;
  for (auto& [child, fd] : kids) {
    double r = 0;
    if (::read(fd.get(), &r, sizeof r) == static_cast<ssize_t>(sizeof r)) sum += r;
    (void)child.wait_for(std::chrono::seconds(60));  // the destructor kills and reaps a straggler
  }
  return sum;
}

/// Median images/s of a DataLoader (persistent workers, shuffled, batch `batch`) over the
/// JPEGs of `dir` (`indices`, or all), after an untimed warm-up epoch prefix.
double loader_rate(const std::string& dir, size_t workers, int reader_threads, int delay_ms,
                   const std::vector<int64_t>& indices, size_t batch, int runs) {
  ImageFolderOptions o;
  o.extensions = {".jpg", ".jpeg"};  // the same files the single-thread rates were measured on
  if (reader_threads >= 0) o.reader_threads = reader_threads;
  o.read_delay_ms = delay_ms;
  auto ds = std::make_shared<ImageFolder>(dir, o);
  loader::LoaderOptions lo;
  lo.batch_size = batch;
  lo.num_workers = workers;
  lo.persistent_workers = true;
  lo.seed = 1;
  if (!indices.empty()) lo.sampler = std::make_shared<loader::SubsetRandomSampler>(indices);
  else lo.shuffle = true;
  loader::DataLoader loader(ds, lo);
  size_t k = 0;
  for (auto& b : loader) {  // warm-up: fork, first touch of every slot, reader threads
    (void)b;
    if (++k >= 2 * std::max<size_t>(workers, 1)) break;
  }
  std::vector<double> rates;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = Clock::now();
    size_t got = 0;
    for (auto& b : loader) got += b.size();
    rates.push_back(static_cast<double>(got) / seconds_since(t0));
  }
  return median(rates);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ringloader single-thread decode benchmark: Resize(256) + CenterCrop(224)", kProgram};
  std::string dir = "/tmp/ringloader-photos";
  int classes = 10, per_class = 300, runs = 3, delay_ms = 10, reader_threads = 16;
  size_t latency_images = 1000, batch = 64;
  uint64_t seed = 0;
  bool roi = true;
  app.add_option("--dir", dir, "image folder (generated there if it holds no .jpg)");
  app.add_option("--classes", classes, "classes to generate");
  app.add_option("--per-class", per_class, "images per class to generate");
  app.add_option("--seed", seed, "generator seed");
  app.add_option("--runs", runs, "timed passes per backend and loader epochs per configuration (median reported)")->check(examples::positive());
  app.add_option("--delay-ms", delay_ms, "injected latency per file read");
  app.add_option("--reader-threads", reader_threads, "reader threads per worker for the latency run");
  app.add_option("--latency-images", latency_images, "images per latency run (0: no latency runs)");
  app.add_option("--batch", batch, "loader batch size")->check(examples::positive());
  app.add_option("--roi", roi, "also compare region-of-interest decode with whole-image decode (1 thread)")
      ->capture_default_str();
  examples::parse_or_exit(app, argc, argv, kProgram);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows when piped to a file

  if (!has_images(dir)) {
    examples::ImageGenOptions g;
    g.num_classes = classes;
    g.images_per_class = per_class;
    g.seed = seed;
    const auto t0 = Clock::now();
    const auto made = examples::generate_image_folder(dir, g);
    std::printf("generated %zu images (%zu JPEG) in %s: %.1f KB average, %.1f s\n", made.images, made.jpegs, dir.c_str(),
                static_cast<double>(made.bytes) / static_cast<double>(made.images) / 1024.0, seconds_since(t0));
  }

  // The JPEGs, in memory: the decode comparison measures CPU, not the disk.
  ImageFolderOptions list_opts;
  list_opts.reader_threads = 0;
  const ImageFolder folder(dir, list_opts);
  std::vector<std::vector<uint8_t>> files;
  size_t bytes = 0;
  int64_t pixels = 0;
  const ImageDecoder probe;
  for (size_t i = 0; i < folder.size(); ++i) {
    auto b = detail::read_file(folder.path(i), size_t{256} << 20);
    if (sniff_format(b) != ImageFormat::kJpeg) continue;
    const ImageInfo info = probe.probe(b, folder.path(i));
    pixels += int64_t{info.width} * info.height;
    bytes += b.size();
    files.push_back(std::move(b));
  }
  if (files.empty()) {
    std::fprintf(stderr, "no JPEG in %s\n", dir.c_str());
    return 1;
  }
  const double n = static_cast<double>(files.size());
  std::printf("%zu JPEGs, average %.0f pixels (~%.0fx%.0f), %.1f KB; Resize(256) + CenterCrop(224), uint8 HWC, 1 thread, "
              "median of %d runs\n",
              files.size(), static_cast<double>(pixels) / n, std::sqrt(static_cast<double>(pixels) / n * 465.0 / 420.0),
              std::sqrt(static_cast<double>(pixels) / n * 420.0 / 465.0), static_cast<double>(bytes) / n / 1024.0, runs);

  const Pipeline p = Pipeline::center(256, 224);
  struct Row {
    const char* name;
    ResizeBackend backend;
    double rate = 0;
  };
  std::vector<Row> rows = {{"stb_image decode + stb_image_resize", ResizeBackend::kStb},
                           {"TurboJPEG decode + stb_image_resize", ResizeBackend::kTurboJpegStb},
                           {"fast path (region of interest + libyuv)", ResizeBackend::kFast}};
  for (Row& r : rows) {
    decode_rate(std::vector<std::vector<uint8_t>>(files.begin(), files.begin() + std::min<ptrdiff_t>(50, static_cast<ptrdiff_t>(files.size()))),
                r.backend, p);  // warm caches and scratch buffers
    std::vector<double> rates;
    for (int i = 0; i < runs; ++i) rates.push_back(decode_rate(files, r.backend, p));
    r.rate = median(rates);
    std::printf("  %-38s %8.0f images/s  %6.3f ms/image\n", r.name, r.rate, 1000.0 / r.rate);
  }
  std::printf("  fast path / stb+stb: %.2fx   fast path / TurboJPEG+stb: %.2fx\n", rows[2].rate / rows[0].rate,
              rows[2].rate / rows[1].rate);

  const double fast = rows[2].rate;
  if (roi) {
    // Region-of-interest decode against the whole-image fast path, alternating run by run so
    // that a noisy neighbour hurts both alike.
    std::printf("\nRegion-of-interest JPEG decode, 1 thread, median of %d runs (alternating):\n", runs);
    for (const auto& [name, pipeline] : {std::pair{"Resize(256)+CenterCrop(224)", Pipeline::center(256, 224)},
                                         std::pair{"RandomResizedCrop(224)+flip", Pipeline::random_crop_flip(224)}}) {
      std::vector<double> on, off;
      for (int i = 0; i < runs; ++i) {
        off.push_back(decode_rate(files, ResizeBackend::kFast, pipeline, false));
        on.push_back(decode_rate(files, ResizeBackend::kFast, pipeline, true));
      }
      std::printf("  %-28s whole image %6.0f images/s   region of interest %6.0f images/s   %.2fx\n", name, median(off),
                  median(on), median(on) / median(off));
    }
  }
  std::vector<double> par;
  for (int i = 0; i < runs; ++i) par.push_back(parallel_rate(files, p, 2));
  const double two_procs = median(par);
  std::printf("  fast path in 2 independent processes at once: %.0f images/s = %.2f of 2 x one thread "
              "(what this machine's 2 cores give, no loader)\n",
              two_procs, two_procs / (2 * fast));
  std::printf("\nDataLoader over the same JPEGs (batch %zu, shuffled, persistent workers), median of %d epochs:\n", batch,
              runs);
  for (size_t w : {size_t{1}, size_t{2}}) {
    const double rate = loader_rate(dir, w, -1, 0, {}, batch, runs);
    std::printf("  %zu worker%s %8.0f images/s  = %.2f of %zu x fast path (%.0f/s)", w, w == 1 ? " " : "s", rate,
                rate / (static_cast<double>(w) * fast), w, static_cast<double>(w) * fast);
    if (w == 2) std::printf(", %.2f of 2 independent processes", rate / two_procs);
    std::printf("\n");
  }
  if (delay_ms > 0 && latency_images > 0) {
    // The same loader with every read slowed down, on an evenly spread subset (without reader
    // threads a worker waits out every delay itself, so a whole epoch would take minutes).
    const size_t subset_size = std::min(latency_images, files.size());
    std::vector<int64_t> subset;
    for (size_t i = 0; i < subset_size; ++i) subset.push_back(static_cast<int64_t>(i * files.size() / subset_size));
    std::printf("\n2 workers, %zu of the JPEGs, %d ms injected before every file read:\n", subset.size(), delay_ms);
    const double base = loader_rate(dir, 2, -1, 0, subset, batch, runs);
    std::printf("  no latency (default reader threads)     %8.0f images/s\n", base);
    const double with = loader_rate(dir, 2, reader_threads, delay_ms, subset, batch, runs);
    std::printf("  %2d ms, reader_threads=%-3d               %8.0f images/s  (%.0f%% of undelayed)\n", delay_ms,
                reader_threads, with, 100.0 * with / base);
    const double without = loader_rate(dir, 2, 0, delay_ms, subset, batch, 1);
    std::printf("  %2d ms, reader_threads=0                 %8.0f images/s  (%.0f%% of undelayed)\n", delay_ms, without,
                100.0 * without / base);
  }
  return 0;
}
