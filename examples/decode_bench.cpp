// Single-thread decode + Resize(256) + CenterCrop(224) throughput of the three backends on
// a folder of photo-like JPEGs, then the dataset's get() loop with an injected read latency,
// with and without reader threads.
//
//   ringloader-decode-bench --dir /tmp/rl-photos          # generates 10 x 300 images if empty
//   ringloader-decode-bench --dir /tmp/rl-photos --runs 5 --delay-ms 10 --reader-threads 16
// GCC 12 reports a false -Wnull-dereference inside CLI11's (and libstdc++'s) inlined string code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "datasets/detail/file_reader.hpp"
#include "datasets/image_decoder.hpp"
#include "datasets/image_folder.hpp"
#include "examples/image_gen.hpp"

using namespace ringloader;
using namespace ringloader::datasets;
using Clock = std::chrono::steady_clock;

namespace {

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
double decode_rate(const std::vector<std::vector<uint8_t>>& files, ResizeBackend backend, const Pipeline& p) {
  const ImageDecoder dec(DecodeOptions{int64_t{64} << 20, true, backend});
  std::vector<uint8_t> out(224 * 224 * 3);
  Rng rng(0);
  const auto t0 = Clock::now();
  for (const auto& f : files) {
    const ImageInfo info = dec.probe(f, "bench");
    dec.decode_into(f, "bench", p.plan(info.width, info.height, rng), out);
  }
  return static_cast<double>(files.size()) / seconds_since(t0);
}

// Images/s of the dataset's get() loop as a worker runs it: prefetch the next batch, then
// get() each sample of this one.
double get_rate(const std::string& dir, int reader_threads, int delay_ms, size_t images, size_t batch) {
  ImageFolderOptions o;
  o.reader_threads = reader_threads;
  o.read_delay_ms = delay_ms;
  o.prefetch_files = std::max<size_t>(64, 3 * batch);
  ImageFolder ds(dir, o);
  ds.on_worker_start(WorkerInfo{});
  images = std::min(images, ds.size());
  std::vector<int64_t> order(ds.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  Rng(1).shuffle(order.begin(), order.end());
  const Schema schema = ds.schema();
  std::vector<std::byte> image(schema.fields[0].max_bytes()), label(8);
  const FieldTarget targets[2] = {{image.data(), image.size(), nullptr}, {label.data(), label.size(), nullptr}};
  auto batch_at = [&](size_t b) {
    return std::span<const int64_t>(order).subspan(b, std::min(batch, images - std::min(images, b)));
  };
  {  // warm up: caches, scratch buffers, thread start
    const size_t warm = std::min<size_t>(batch, ds.size());
    for (size_t k = 0; k < warm; ++k) {
      const int64_t i = order[order.size() - 1 - k];
      SampleWriter w(schema, targets, SampleContext{i, 0, 0, 0});
      ds.get(static_cast<size_t>(i), w);
    }
  }
  const auto t0 = Clock::now();
  ds.prefetch(batch_at(0));
  for (size_t b = 0; b < images; b += batch) {
    ds.prefetch(batch_at(b + batch));
    for (int64_t i : batch_at(b)) {
      SampleWriter w(schema, targets, SampleContext{i, 0, 0, 0});
      ds.get(static_cast<size_t>(i), w);
    }
  }
  return static_cast<double>(images) / seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ringloader single-thread decode benchmark: Resize(256) + CenterCrop(224)"};
  std::string dir = "/tmp/ringloader-photos";
  int classes = 10, per_class = 300, runs = 3, delay_ms = 10, reader_threads = 16;
  size_t latency_images = 1000, batch = 32;
  uint64_t seed = 0;
  app.add_option("--dir", dir, "image folder (generated there if it holds no .jpg)");
  app.add_option("--classes", classes, "classes to generate");
  app.add_option("--per-class", per_class, "images per class to generate");
  app.add_option("--seed", seed, "generator seed");
  app.add_option("--runs", runs, "timed passes per backend (median reported)")->check(CLI::PositiveNumber);
  app.add_option("--delay-ms", delay_ms, "injected latency per file read");
  app.add_option("--reader-threads", reader_threads, "reader threads for the latency run");
  app.add_option("--latency-images", latency_images, "images per latency run");
  app.add_option("--batch", batch, "batch size for the prefetch hints")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
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
                           {"fast path (TurboJPEG YUV + libyuv)", ResizeBackend::kFast}};
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

  if (latency_images > 0) {
    std::printf("\nImageFolder get() loop, 1 process, batches of %zu with the next batch prefetched, %zu images:\n", batch,
                latency_images);
    const double base = get_rate(dir, 0, 0, latency_images, batch);
    std::printf("  no injected latency, reader_threads=0     %8.0f images/s\n", base);
    if (delay_ms > 0) {
      const double sync = get_rate(dir, 0, delay_ms, latency_images, batch);
      std::printf("  %d ms per read, reader_threads=0          %8.0f images/s  (%.0f%% of undelayed)\n", delay_ms, sync,
                  100.0 * sync / base);
      for (int t : {4, reader_threads}) {
        const double with = get_rate(dir, t, delay_ms, latency_images, batch);
        std::printf("  %d ms per read, reader_threads=%-3d        %8.0f images/s  (%.0f%% of undelayed)\n", delay_ms, t, with,
                    100.0 * with / base);
        if (t == reader_threads) break;
      }
    }
  }
  return 0;
}
