// ringloader-pack: an image folder (or a file list) into WebDataset-compatible tar shards with
// an index per shard and a manifest, for datasets::Shards (Python rl.Shards) to read in place.
// A front over datasets::ShardWriter (datasets/shard_writer.hpp; Python rl.pack): the command
// line, progress and the summary are here, the writing is there.
//
//   ringloader-pack /data/train /data/train-packed --max-short-side 256
//   ringloader-pack --index /data/wds/shard-*.tar         # index tars made by tar / webdataset
//
// Samples are shuffled once with --seed (or kept in the source's order: --order source), so
// shards mix the classes and a block-shuffled epoch reads near-sequentially. Images whose
// shorter side exceeds --max-short-side are resized to it and re-encoded as JPEG (--quality);
// others are stored as they are. Output is deterministic (the same input and options give the
// same bytes, whatever --jobs), atomic (written beside OUT, then renamed) and never replaces
// OUT without --force. Files that cannot be read or decoded are left out and listed in
// OUT/bad_files.tsv (path<TAB>reason); the exit status is then 1.
// GCC 12 reports a false -Wnull-dereference inside CLI11's (and libstdc++'s) inlined string code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "datasets/shard_writer.hpp"
#include "examples/cli_common.hpp"

using namespace ringloader;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kProgram = "ringloader-pack";

struct Options {
  std::string src;
  std::string out;
  std::vector<std::string> index_tars;
  std::string order = "shuffled";
  bool quiet = false;
  datasets::ShardWriterOptions writer;
};

// Thrown by the interrupt check on SIGINT/SIGTERM: the writer leaves nothing behind.
struct Stopped {};

class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), tty_(::isatty(2) != 0) {}
  void update(const datasets::PackProgress& p) {
    if (quiet_) return;
    const auto now = Clock::now();
    if (!p.last && now - shown_ < (tty_ ? std::chrono::milliseconds(200) : std::chrono::seconds(5))) return;
    shown_ = now;
    const double s = p.seconds;
    const int width = 30;
    const int filled = p.total == 0 ? width : static_cast<int>(static_cast<double>(p.done) / static_cast<double>(p.total) * width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "%s[%s] %zu/%zu images, %.0f/s, %zu shards, %zu re-encoded, %zu bad%s", tty_ ? "\r" : "",
                 bar.c_str(), p.done, p.total, s > 0 ? static_cast<double>(p.done) / s : 0.0, p.shards, p.reencoded, p.bad,
                 tty_ && !p.last ? "" : "\n");
  }

 private:
  bool quiet_;
  bool tty_;
  Clock::time_point shown_{};
};

int index_tars(const Options& o) {
  for (const std::string& tar : o.index_tars) {
    const datasets::TarIndexed r = datasets::write_tar_index(tar);
    if (!o.quiet) std::fprintf(stderr, "%s: %s: %zu samples indexed -> %s\n", kProgram, tar.c_str(), r.samples, r.index.c_str());
  }
  return 0;
}

int pack(Options& o) {
  Progress progress(o.quiet);
  o.writer.shuffle = o.order == "shuffled";
  o.writer.progress = [&](const datasets::PackProgress& p) { progress.update(p); };
  o.writer.log = [](const std::string& line) { std::fprintf(stderr, "%s: %s\n", kProgram, line.c_str()); };
  o.writer.interrupt_check = [] {
    if (examples::g_stop_signal != 0) throw Stopped{};
  };
  datasets::PackResult r;
  try {
    r = datasets::ShardWriter(o.out, o.writer).write(o.src);
  } catch (const Stopped&) {
    std::fprintf(stderr, "\n%s: interrupted: nothing written\n", kProgram);
    return 130;
  }
  if (r.images == 0) {
    std::fprintf(stderr, "%s: no image of %s could be packed (%zu bad)\n", kProgram, o.src.c_str(), r.bad_files.size());
    return 1;
  }
  const double per_second = static_cast<double>(r.total) / r.seconds;
  if (!o.quiet) {
    std::fprintf(stderr, "%s: %zu images -> %zu shards in %s, %.1f MB, %zu re-encoded, %.1f s (%.0f images/s)\n", kProgram,
                 r.images, r.shards, o.out.c_str(), static_cast<double>(r.bytes) / 1e6, r.reencoded, r.seconds, per_second);
  }
  for (const auto& b : r.bad_files) std::fprintf(stderr, "%s: left out %s: %s\n", kProgram, b.path.c_str(), b.reason.c_str());
  if (!r.bad_files.empty()) {
    std::fprintf(stderr, "%s: %zu bad files, listed in %s/bad_files.tsv\n", kProgram, r.bad_files.size(), o.out.c_str());
  }
  std::printf("%s\n", examples::dump_json({{"images", r.images}, {"shards", r.shards}, {"bytes", r.bytes},
                                           {"reencoded", r.reencoded}, {"bad_files", r.bad_files.size()},
                                           {"seconds", r.seconds}, {"images_per_second", per_second}})
                          .c_str());
  return r.bad_files.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Pack an image folder or file list into WebDataset-compatible tar shards with an index", kProgram};
  app.footer(
      "Examples:\n"
      "  ringloader-pack /data/train /data/train-packed --max-short-side 256\n"
      "  ringloader-pack list.tsv packed --shard-size 64M --order source\n"
      "  ringloader-pack --index shards/*.tar\n"
      "Read the result with ringloader-imagefolder, ringloader-bench, datasets::Shards or rl.Shards.");
  Options o;
  std::string shard_size = "256M";
  app.add_option("src", o.src, "Image folder (ROOT/<class>/**/<image>) or file list (path<TAB>label)")->type_name("SRC");
  app.add_option("out", o.out, "Output folder (must not exist, unless --force)")->type_name("OUT");
  app.add_option("--index", o.index_tars, "Instead: write a .idx beside each of these tars (made by tar or webdataset)")
      ->type_name("TAR...");
  app.add_option("--shard-size", shard_size, "About this many bytes per shard (K, M, G: powers of 1024)")->capture_default_str();
  app.add_option("--max-short-side", o.writer.max_short_side, "Resize and re-encode images whose shorter side exceeds S (0: never)")
      ->type_name("S")->check(CLI::NonNegativeNumber);
  app.add_option("--quality", o.writer.quality, "JPEG quality of re-encoded images")->capture_default_str()->check(CLI::Range(1, 100));
  app.add_option("--jobs", o.writer.jobs, "Threads (default: one per core)")->check(CLI::NonNegativeNumber);
  app.add_option("--seed", o.writer.seed, "Seed of the sample order")->capture_default_str();
  app.add_option("--order", o.order, "shuffled (seeded) or source (the folder's order)")
      ->capture_default_str()->check(CLI::IsMember({"shuffled", "source"}));
  app.add_option("--max-pixels", o.writer.max_pixels, "Refuse images with more pixels than this")->capture_default_str();
  app.add_flag("--force", o.writer.force, "Replace OUT if it exists");
  app.add_flag("-q,--quiet", o.quiet, "No progress output");
  examples::parse_or_exit(app, argc, argv, kProgram);
  try {
    char* end = nullptr;
    const double v = std::strtod(shard_size.c_str(), &end);
    const std::string unit = end ? end : "";
    const double mul = unit.empty() ? 1 : unit == "K" ? 1 << 10 : unit == "M" ? 1 << 20 : unit == "G" ? 1 << 30 : -1;
    // inf, nan and sizes past 2^62 bytes would be undefined as uint64_t; under a byte is none.
    if (end == shard_size.c_str() || mul < 0 || !std::isfinite(v) || v * mul < 1 || v * mul > 0x1p62) {
      std::fprintf(stderr, "%s: --shard-size %s: expected a size such as 256M (see --help)\n", kProgram, shard_size.c_str());
      return 2;
    }
    o.writer.shard_size = static_cast<uint64_t>(v * mul);
    if (!o.index_tars.empty()) {
      if (!o.src.empty()) {
        std::fprintf(stderr, "%s: --index takes tars only, not SRC OUT (see --help)\n", kProgram);
        return 2;
      }
      return index_tars(o);
    }
    if (o.src.empty() || o.out.empty()) {
      std::fprintf(stderr, "%s: SRC and OUT are required (see --help)\n", kProgram);
      return 2;
    }
    examples::install_stop_handlers();
    return pack(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", kProgram, examples::one_line(e.what()).c_str());
    return 2;
  }
}
