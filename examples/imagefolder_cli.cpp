// ringloader-imagefolder: load an image folder the way a training run would, and say what
// happened - how fast, which files failed and why, and whether every sample arrived exactly
// once (counted per epoch) - with a checksum of the delivered pixels so two runs compare.
//
//   ringloader-imagefolder /data/imagenet/train --workers 8 --batch-size 256 --shuffle --seed 1
//   ringloader-imagefolder photos --json --errors bad.tsv > summary.json
//
// Exit codes: 0 every sample loaded; 1 some skipped (or, under --on-error raise, the first
// failure); 2 bad arguments or an unusable root/list; 128+signal (130 for Ctrl-C) when
// interrupted, after the partial summary.
//
// The program is three steps a later option slots into: parse (Options) -> build (dataset,
// LoaderOptions, sampler) -> run (epochs of next(), stopping on a signal or a batch budget)
// -> report (human or JSON, the same Summary).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "datasets/file_list_dataset.hpp"
#include "datasets/image_folder.hpp"
#include "datasets/shards.hpp"
#include "examples/cli_common.hpp"
#include "loader/data_loader.hpp"
#include "loader/distributed.hpp"

using namespace ringloader;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kProgram = "ringloader-imagefolder";
constexpr int kExitOk = 0;
constexpr int kExitSkipped = 1;
constexpr int kExitUsage = 2;

/// Everything the command line says. Defaults are the documented ones.
struct Options {
  std::string root;
  std::string file_list;
  int workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int batch_size = 64;
  int epochs = 1;
  bool shuffle = false;
  int block = 0;  ///< > 0: BlockShuffleSampler over the shards, windows of this many
  std::optional<uint64_t> seed;
  datasets::ImageNetPreset transform;
  std::string on_error = "skip";
  int64_t max_pixels = int64_t{64} << 20;
  int prefetch = 2;
  double timeout_s = 0;
  std::string decoder = "fast";
  std::string errors_path;
  std::string indices_path;
  bool json = false;
  bool quiet = false;
  std::string log_level;
  double progress_every_s = 2.0;
  std::optional<int> rank;        ///< default: from torchrun / Open MPI / Slurm variables
  std::optional<int> world_size;
  std::optional<uint64_t> stop_after_batches;
  std::string save_state_path;    ///< written when the run stops after --stop-after-batches
  std::string resume_path;        ///< a --save-state file to continue from
};

/// A failure the user can act on: the file and why.
struct ErrorEntry {
  std::string path;
  std::string reason;
};

/// What the run produced; reported as text or JSON.
struct Summary {
  std::string source;
  size_t dataset_size = 0;
  size_t classes = 0;
  uint64_t images = 0;
  uint64_t batches = 0;
  uint64_t epochs = 0;  ///< completed
  double seconds = 0;
  uint64_t pixel_bytes = 0;
  std::vector<ErrorEntry> errors;  ///< scan errors, then each failing file once
  uint64_t skipped_samples = 0;    ///< skips over every epoch (a bad file counts once per epoch)
  uint64_t worker_restarts = 0;
  uint64_t timeouts = 0;           ///< next() waits past --timeout (the run goes on)
  uint64_t unique_indices = 0;     ///< sum over epochs of distinct indices delivered
  uint64_t duplicate_indices = 0;  ///< deliveries beyond an index's first in its epoch
  uint64_t missing_indices = 0;    ///< over completed epochs: neither delivered nor reported skipped
  std::string pixel_checksum;
  uint64_t seed = 0;
  int workers = 0;
  int batch_size = 0;
  std::string transform;
  int interrupted_by = 0;  ///< signal number, 0 if the run finished
  bool stopped_early = false;  ///< --stop-after-batches ended the run (state saved)
  int rank = 0;
  int world_size = 1;
  std::string launcher;        ///< where rank/world size came from
  std::string fatal;       ///< the error that stopped the run (on_error raise), if any
};

std::string examples_read_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read it");
  std::ostringstream text;
  text << f.rdbuf();
  return text.str();
}

[[noreturn]] void usage_error(const std::string& reason) {
  std::fprintf(stderr, "%s: %s\n", kProgram, examples::one_line(reason).c_str());
  std::exit(kExitUsage);
}

std::string clean_field(std::string s) {  // one TSV cell: no tabs or line breaks
  for (char& c : s) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  const long t = std::lround(s);
  char buf[32];
  if (t >= 3600) {
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  }
  return buf;
}

/// Progress on stderr: a redrawn bar when stderr is a terminal, plain lines every few seconds
/// (and at each epoch's end) when it is not, nothing with --quiet.
class Progress {
 public:
  Progress(bool enabled, double every_s, uint64_t total)
      : enabled_(enabled), tty_(::isatty(STDERR_FILENO) == 1), every_s_(every_s), total_(total) {}

  void update(uint64_t epoch, uint64_t epochs, uint64_t images, uint64_t errors, double elapsed, bool force) {
    if (!enabled_) return;
    const double since = elapsed - last_;
    if (!force && since < (tty_ ? 0.1 : every_s_)) return;
    last_ = elapsed;
    const double rate = elapsed > 0 ? static_cast<double>(images) / elapsed : 0;
    const double eta = rate > 0 && total_ > images ? static_cast<double>(total_ - images) / rate : 0;
    const double frac = total_ > 0 ? std::min(1.0, static_cast<double>(images) / static_cast<double>(total_)) : 1;
    if (tty_) {
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(frac * kWidth);
      std::string bar(static_cast<size_t>(filled), '#');
      bar.append(static_cast<size_t>(kWidth - filled), '.');
      std::fprintf(stderr, "\r\033[K[%s] %3.0f%%  epoch %llu/%llu  %llu/%llu images  %.0f images/s  ETA %s  errors %llu",
                   bar.c_str(), frac * 100, ull(epoch), ull(epochs), ull(images), ull(total_), rate,
                   format_duration(eta).c_str(), ull(errors));
      drawn_ = true;
    } else {
      std::fprintf(stderr, "%s: epoch %llu/%llu  %llu/%llu images  %.1f images/s  ETA %s  errors %llu\n", kProgram,
                   ull(epoch), ull(epochs), ull(images), ull(total_), rate, format_duration(eta).c_str(), ull(errors));
    }
    std::fflush(stderr);
  }

  /// Ends the bar's line so the summary starts on a fresh one.
  void finish() {
    if (drawn_) std::fputc('\n', stderr);
    drawn_ = false;
  }

 private:
  static unsigned long long ull(uint64_t v) { return v; }
  bool enabled_;
  bool tty_;
  double every_s_;
  uint64_t total_;
  double last_ = -1e9;
  bool drawn_ = false;
};

/// Counts deliveries per index within an epoch, so losses and repeats show.
class IndexAudit {
 public:
  explicit IndexAudit(size_t n) : seen_(n, 0), skipped_(n, 0), expected_(n, 1) {}

  /// Only these indices are due this epoch (a rank's shard); default: every index.
  void expect(const std::vector<int64_t>& indices) {
    std::fill(expected_.begin(), expected_.end(), 0);
    for (int64_t i : indices) {
      if (i >= 0 && static_cast<size_t>(i) < expected_.size()) expected_[static_cast<size_t>(i)] = 1;
    }
  }
  /// This epoch's deliveries and skips so far, for a resume state; and back.
  nlohmann::json save() const {
    std::vector<int64_t> seen, skipped;
    for (size_t i = 0; i < seen_.size(); ++i) {
      if (seen_[i]) seen.push_back(static_cast<int64_t>(i));
      if (skipped_[i]) skipped.push_back(static_cast<int64_t>(i));
    }
    return {{"seen", seen}, {"skipped", skipped}};
  }
  void restore(const nlohmann::json& j) {
    for (int64_t i : j.at("seen").get<std::vector<int64_t>>()) {
      if (i >= 0 && static_cast<size_t>(i) < seen_.size()) seen_[static_cast<size_t>(i)] = 1;
    }
    for (int64_t i : j.at("skipped").get<std::vector<int64_t>>()) skipped(i);
  }

  void delivered(int64_t i, Summary& s) {
    if (i < 0 || static_cast<size_t>(i) >= seen_.size()) {
      ++s.duplicate_indices;  // an index the dataset does not have is never legitimate
      return;
    }
    if (seen_[static_cast<size_t>(i)]++ == 0) {
      ++s.unique_indices;
    } else {
      ++s.duplicate_indices;
    }
  }
  void skipped(int64_t i) {
    if (i >= 0 && static_cast<size_t>(i) < skipped_.size()) skipped_[static_cast<size_t>(i)] = 1;
  }
  /// Closes a completed epoch: what was expected (every index) and never came nor was reported.
  void end_epoch(Summary& s) {
    for (size_t i = 0; i < seen_.size(); ++i) {
      if (expected_[i] && seen_[i] == 0 && skipped_[i] == 0) ++s.missing_indices;
    }
    reset();
  }
  void reset() {
    std::fill(seen_.begin(), seen_.end(), 0);
    std::fill(skipped_.begin(), skipped_.end(), 0);
  }

 private:
  std::vector<uint32_t> seen_;
  std::vector<uint8_t> skipped_;
  std::vector<uint8_t> expected_;
};

Options parse(int argc, char** argv) {
  Options o;
  CLI::App app{"Load an image folder (or a file list) with ringloader as a training run would, and report\n"
               "throughput, failures, and whether every sample arrived exactly once.",
               kProgram};
  app.footer(
      "Examples:\n"
      "  ringloader-imagefolder photos                         # all cores, batch 64, one epoch\n"
      "  ringloader-imagefolder photos --workers 2 --shuffle --seed 1 --epochs 3\n"
      "  ringloader-imagefolder photos --random-crop --flip --float --batch-size 256\n"
      "  ringloader-imagefolder --file-list val.tsv --json --errors bad.tsv > summary.json\n"
      "  ringloader-imagefolder photos --shuffle --seed 1 --stop-after-batches 10 --save-state s.json\n"
      "  ringloader-imagefolder photos --shuffle --resume s.json     # the batches that were still to come\n"
      "  mpirun -np 4 ringloader-imagefolder photos --shuffle --seed 1   # each rank loads its shard\n"
      "\n"
      "Exit codes: 0 all loaded, 1 some files skipped (or the first failure with --on-error raise),\n"
      "2 bad arguments or unreadable root, 130 interrupted (Ctrl-C; the partial summary is printed).\n"
      "JSON counts: unique/duplicate_indices sum over epochs; missing_indices counts, over completed\n"
      "epochs, indices neither delivered nor reported as skipped (0 = nothing lost).");
  app.add_option("root", o.root, "Image folder: ROOT/<class>/**/<image>")->type_name("ROOT");
  app.add_option("--file-list", o.file_list, "Text file of 'path<TAB>label' (or CSV) lines, instead of a class tree")
      ->type_name("LIST");
  app.add_option("--workers", o.workers, "Worker processes; 0 decodes in this process")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--batch-size", o.batch_size, "Samples per batch")->capture_default_str()->check(examples::positive());
  app.add_option("--epochs", o.epochs, "Passes over the data")->capture_default_str()->check(examples::positive());
  app.add_flag("--shuffle", o.shuffle, "Random order each epoch (seeded by --seed and the epoch)");
  app.add_option("--block", o.block,
                 "Packed shards: shuffle the shards and the samples within windows of N shards each epoch "
                 "(near-sequential reads; ranks take whole shards)")
      ->type_name("N")->check(examples::positive());
  app.add_option("--seed", o.seed, "Seed of shuffling and augmentation (default: random, printed)");
  app.add_option("--size", o.transform.size, "Output side: Resize(PX*8/7) + CenterCrop(PX)")
      ->type_name("PX")->capture_default_str()->check(CLI::Range(8, 8192));
  app.add_flag("--random-crop", o.transform.random_crop, "RandomResizedCrop(PX) instead of the centre crop");
  app.add_flag("--flip", o.transform.flip, "RandomHorizontalFlip");
  app.add_flag("--float", o.transform.to_float, "float32 CHW normalised with ImageNet mean/std (default uint8 HWC)");
  app.add_option("--on-error", o.on_error, "A bad file: skip it and report (exit 1), or stop at it")
      ->capture_default_str()->check(CLI::IsMember({"raise", "skip"}));
  app.add_option("--max-pixels", o.max_pixels, "Refuse images with more pixels than this (decompression bombs)")
      ->capture_default_str()->check(examples::positive());
  app.add_option("--prefetch", o.prefetch, "Batch slots per worker")->type_name("K")->capture_default_str()
      ->check(examples::positive());
  app.add_option("--timeout", o.timeout_s,
                 "Bound each wait for a batch; a worker stuck longer on one is killed and the batch retried "
                 "(0 = no limit)")
      ->type_name("SEC")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--decoder", o.decoder, "Decode path: fast (region-of-interest JPEG decode + libyuv), fast-noroi (whole images), turbojpeg, stb")
      ->capture_default_str()->check(CLI::IsMember(std::vector<std::string>(datasets::kDecoderNames.begin(), datasets::kDecoderNames.end())));
  app.add_option("--errors", o.errors_path, "Write failing files as a TSV: path<TAB>reason")->type_name("FILE");
  app.add_option("--indices-out", o.indices_path, "Write the delivered sample indices, in order, one a line")
      ->type_name("FILE");
  app.add_flag("--json", o.json, "One JSON object on stdout instead of the human summary");
  app.add_flag("-q,--quiet", o.quiet, "No progress output");
  app.add_option("--log-level", o.log_level, "ringloader's log level")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--rank", o.rank, "This process's rank (default: RANK, OMPI_COMM_WORLD_RANK or SLURM_PROCID)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--world-size", o.world_size, "Number of ranks (default: WORLD_SIZE, OMPI_COMM_WORLD_SIZE or SLURM_NTASKS)")
      ->check(examples::positive());
  app.add_option("--stop-after-batches", o.stop_after_batches, "Stop after K batches (with --save-state: to resume later)")
      ->type_name("K");
  app.add_option("--save-state", o.save_state_path, "When --stop-after-batches stops the run, write the resume state here")
      ->type_name("FILE");
  app.add_option("--resume", o.resume_path, "Continue a run from a --save-state FILE (same data and options)")
      ->type_name("FILE");
  app.add_option("--progress-every", o.progress_every_s, "Seconds between progress lines when stderr is not a terminal")
      ->type_name("SEC")->capture_default_str()->check(examples::positive());
  examples::parse_or_exit(app, argc, argv, kProgram);
  if (o.root.empty() == o.file_list.empty()) usage_error("give either ROOT or --file-list LIST (see --help)");
  if (!o.save_state_path.empty() && !o.stop_after_batches) {
    usage_error("--save-state needs --stop-after-batches K (the state is written where the run stops)");
  }
  return o;
}

/// The dataset the options describe. Exits 2 on a root or list that cannot be used.
std::shared_ptr<datasets::ImageDataset> build_dataset(const Options& o, Summary& s) {
  datasets::ImageDatasetOptions base;
  base.transform = o.transform.pipeline();
  base.decode.max_pixels = o.max_pixels;
  examples::parse_decoder(o.decoder).apply(base.decode);
  try {
    if (!o.file_list.empty()) {
      auto ds = std::make_shared<datasets::FileListDataset>(o.file_list, base);
      s.source = o.file_list;
      s.classes = static_cast<size_t>(ds->num_classes());
      return ds;
    }
    if (examples::is_packed(o.root)) {
      auto ds = examples::open_shards(o.root, base);
      s.source = ds->root();
      s.classes = ds->classes().size();
      return ds;
    }
    if (o.block > 0) usage_error("--block needs a packed dataset (ringloader-pack's output or .tar shards)");
    datasets::ImageFolderOptions opt;
    static_cast<datasets::ImageDatasetOptions&>(opt) = base;
    auto ds = std::make_shared<datasets::ImageFolder>(o.root, opt);
    s.source = ds->root();
    s.classes = ds->classes().size();
    for (const auto& e : ds->scan_errors()) s.errors.push_back({e.path, e.reason});
    return ds;
  } catch (const Error& e) {
    usage_error(e.what());
  }
}

loader::LoaderOptions build_loader_options(const Options& o, const datasets::ImageDataset& ds, Summary& s) {
  const size_t dataset_size = ds.size();
  loader::LoaderOptions lo;
  loader::DistributedEnv dist;
  try {
    dist = loader::DistributedEnv::resolve(o.rank, o.world_size);
  } catch (const ConfigError& e) {
    usage_error(e.what());
  }
  s.rank = dist.rank;
  s.world_size = dist.world_size;
  s.launcher = dist.source;
  lo.batch_size = static_cast<size_t>(o.batch_size);
  lo.shuffle = o.shuffle;
  lo.num_workers = static_cast<size_t>(o.workers);
  lo.prefetch_factor = static_cast<size_t>(o.prefetch);
  lo.persistent_workers = o.epochs > 1;
  lo.timeout = std::chrono::milliseconds(std::llround(o.timeout_s * 1000));
  // Ctrl-C / SIGTERM end a wait at once (the wait is interrupted by the signal), even one on a
  // stopped or hung worker.
  lo.interrupt_check = [] {
    if (examples::g_stop_signal != 0) throw Interrupted("stopped by signal " + std::to_string(examples::g_stop_signal));
  };
  lo.seed = o.seed;
  lo.in_order = true;  // the checksum and --indices-out follow sampler order
  lo.on_error = o.on_error == "raise" ? loader::OnError::kRaise : loader::OnError::kSkip;
  if (o.block > 0) {
    const auto* shards = dynamic_cast<const datasets::Shards*>(&ds);
    try {
      lo.sampler = std::make_shared<loader::BlockShuffleSampler>(shards->shard_sizes(), static_cast<size_t>(o.block),
                                                                 std::nullopt, dist.rank, dist.world_size);
    } catch (const ConfigError& e) {
      usage_error(e.what());
    }
    lo.shuffle = false;
  } else if (dist.world_size > 1 || dist.source != "default") {
    // One shard per rank, PyTorch's DistributedSampler rule (padding by wrap-around).
    lo.sampler = std::make_shared<loader::DistributedSampler>(dataset_size, dist.rank, dist.world_size, o.shuffle);
    lo.shuffle = false;
  }
  return lo;
}

void record_error(Summary& s, std::map<std::string, size_t>& seen, const std::string& path, std::string reason) {
  // A DecodeError's message starts with its file; the TSV and the summary have a column for that.
  if (!path.empty() && reason.rfind(path + ": ", 0) == 0) reason.erase(0, path.size() + 2);
  const std::string key = path.empty() ? reason : path;
  if (seen.emplace(key, s.errors.size()).second) s.errors.push_back({path, reason});
}

/// Runs the epochs; returns normally when done, interrupted, or stopped by a raised error.
void run(const Options& o, loader::DataLoader& loader, const loader::Sampler* shard, size_t dataset_size, Summary& s,
         std::ofstream* indices_out) {
  examples::PixelHash hash;
  IndexAudit audit(dataset_size);
  // --resume: the loader's position, this epoch's audit so far and the pixel hash go on.
  uint64_t first_epoch = 0;
  bool resumed = false;
  if (!o.resume_path.empty()) {
    try {
      const nlohmann::json st = nlohmann::json::parse(examples_read_file(o.resume_path));
      if (st.at("format") != "ringloader-imagefolder-state/1") throw ConfigError("not a --save-state file");
      loader.load_state(st.at("loader").get<std::string>());
      hash = examples::PixelHash::restore(st.at("pixel_hash"));
      audit.restore(st.at("audit"));
      first_epoch = nlohmann::json::parse(st.at("loader").get<std::string>()).at("epoch");
      resumed = true;
    } catch (const std::exception& e) {
      usage_error("--resume " + o.resume_path + ": " + e.what());
    }
  }
  std::map<std::string, size_t> error_index;
  for (const auto& e : s.errors) error_index.emplace(e.path, 0);
  Progress progress(!o.quiet, o.progress_every_s, static_cast<uint64_t>(dataset_size) * static_cast<uint64_t>(o.epochs));
  const auto t0 = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  const auto epochs = static_cast<uint64_t>(o.epochs);
  // The loader's lifetime list, not Batch::skipped(): a batch whose every sample was skipped
  // is never handed out, so only the loader knows of its skips.
  size_t skips_seen = loader.skipped().size();
  auto drain_skips = [&] {
    const auto& all = loader.skipped();
    for (; skips_seen < all.size(); ++skips_seen) {
      audit.skipped(all[skips_seen].index);
      ++s.skipped_samples;
      record_error(s, error_index, all[skips_seen].path, all[skips_seen].reason);
    }
  };
  std::string line;
  for (uint64_t epoch = first_epoch; epoch < epochs && examples::g_stop_signal == 0 && !s.stopped_early; ++epoch) {
    const bool resuming = resumed && epoch == first_epoch;
    if (!resuming) {
      loader.set_epoch(epoch);
      audit.reset();
    }
    if (shard != nullptr) audit.expect(shard->indices({loader.seed(), epoch}));
    bool finished = false;
    try {
      while (examples::g_stop_signal == 0) {
        if (o.stop_after_batches && s.batches >= *o.stop_after_batches) {
          s.stopped_early = true;
          if (!o.save_state_path.empty()) {
            const nlohmann::json st = {{"format", "ringloader-imagefolder-state/1"},
                                       {"loader", loader.state()},
                                       {"pixel_hash", hash.save()},
                                       {"audit", audit.save()}};
            std::ofstream f(o.save_state_path);
            f << examples::dump_json(st) << '\n';
            if (!f) usage_error("--save-state " + o.save_state_path + ": cannot write");
          }
          break;
        }
        std::optional<loader::Batch> batch;
        try {
          batch = loader.next();
        } catch (const TimeoutError& e) {
          if (e.batch_given_up()) throw;
          ++s.timeouts;  // a wait past --timeout: nothing is lost, the hung worker was killed
          std::fprintf(stderr, "%s: %s\n", kProgram, examples::one_line(e.what()).c_str());
          continue;
        } catch (const Interrupted&) {
          break;  // Ctrl-C while waiting: the partial summary follows
        }
        drain_skips();
        if (!batch) {
          finished = true;
          break;
        }
        const loader::TensorView image = batch->field("image");
        hash.update(image.data, image.nbytes());
        s.pixel_bytes += image.nbytes();
        for (int64_t i : batch->indices()) {
          audit.delivered(i, s);
          if (indices_out != nullptr) {
            line = std::to_string(i);
            line += '\n';
            indices_out->write(line.data(), static_cast<std::streamsize>(line.size()));
          }
        }
        s.images += batch->size();
        ++s.batches;
        progress.update(epoch + 1, epochs, s.images, s.errors.size(), elapsed(), false);
      }
    } catch (const SampleError& e) {  // --on-error raise: the first failure ends the run
      s.fatal = e.what();
      record_error(s, error_index, e.path(), e.what());
    } catch (const Error& e) {  // a worker that kept dying, a timeout, shared memory
      s.fatal = e.what();
    }
    if (!s.fatal.empty()) break;
    if (finished) {
      audit.end_epoch(s);
      ++s.epochs;
    }
    progress.update(epoch + 1, epochs, s.images, s.errors.size(), elapsed(), true);
  }
  progress.finish();
  s.seconds = elapsed();
  s.pixel_checksum = hash.hex();
  s.worker_restarts = loader.stats().worker_restarts;
  s.interrupted_by = examples::g_stop_signal;
}

nlohmann::json to_json(const Summary& s) {
  nlohmann::json errors = nlohmann::json::array();
  for (const auto& e : s.errors) errors.push_back({{"path", e.path}, {"reason", e.reason}});
  nlohmann::json j = {
      {"source", s.source},
      {"dataset_size", s.dataset_size},
      {"images", s.images},
      {"batches", s.batches},
      {"epochs", s.epochs},
      {"classes", s.classes},
      {"seconds", s.seconds},
      {"images_per_sec", s.seconds > 0 ? static_cast<double>(s.images) / s.seconds : 0.0},
      {"mb_per_sec", s.seconds > 0 ? static_cast<double>(s.pixel_bytes) / 1e6 / s.seconds : 0.0},
      {"pixel_bytes", s.pixel_bytes},
      {"errors", errors},
      {"skipped_samples", s.skipped_samples},
      {"worker_restarts", s.worker_restarts},
      {"timeouts", s.timeouts},
      {"unique_indices", s.unique_indices},
      {"duplicate_indices", s.duplicate_indices},
      {"missing_indices", s.missing_indices},
      {"pixel_checksum", s.pixel_checksum},
      {"seed", s.seed},
      {"workers", s.workers},
      {"batch_size", s.batch_size},
      {"transform", s.transform},
      {"interrupted", s.interrupted_by != 0},
      {"stopped_early", s.stopped_early},
      {"rank", s.rank},
      {"world_size", s.world_size},
      {"launcher", s.launcher},
  };
  if (!s.fatal.empty()) j["fatal_error"] = s.fatal;
  return j;
}

void print_human(const Summary& s, FILE* out) {
  const double ips = s.seconds > 0 ? static_cast<double>(s.images) / s.seconds : 0;
  const double mbs = s.seconds > 0 ? static_cast<double>(s.pixel_bytes) / 1e6 / s.seconds : 0;
  if (s.interrupted_by != 0) std::fprintf(out, "interrupted by signal %d: partial summary\n", s.interrupted_by);
  std::fprintf(out, "%s: %zu samples, %zu classes; %s\n", s.source.c_str(), s.dataset_size, s.classes,
               s.transform.c_str());
  std::fprintf(out, "  loaded    %llu images in %llu batches over %llu epoch(s), %d workers, batch %d, seed %llu\n",
               static_cast<unsigned long long>(s.images), static_cast<unsigned long long>(s.batches),
               static_cast<unsigned long long>(s.epochs), s.workers, s.batch_size,
               static_cast<unsigned long long>(s.seed));
  std::fprintf(out, "  time      %.2f s: %.1f images/s, %.1f MB/s of decoded pixels\n", s.seconds, ips, mbs);
  std::fprintf(out, "  indices   %llu unique, %llu duplicate, %llu missing (over every epoch)\n",
               static_cast<unsigned long long>(s.unique_indices), static_cast<unsigned long long>(s.duplicate_indices),
               static_cast<unsigned long long>(s.missing_indices));
  std::fprintf(out, "  workers   %llu restart(s)", static_cast<unsigned long long>(s.worker_restarts));
  if (s.timeouts > 0) std::fprintf(out, ", %llu wait(s) past --timeout", static_cast<unsigned long long>(s.timeouts));
  std::fprintf(out, "\n");
  if (s.world_size > 1) std::fprintf(out, "  rank      %d of %d (%s)\n", s.rank, s.world_size, s.launcher.c_str());
  if (s.stopped_early) std::fprintf(out, "  stopped   after --stop-after-batches, as asked\n");
  std::fprintf(out, "  checksum  %s (pixels in sampler order)\n", s.pixel_checksum.c_str());
  if (s.errors.empty()) {
    std::fprintf(out, "  errors    none\n");
  } else {
    std::fprintf(out, "  errors    %zu file(s), %llu skip(s):\n", s.errors.size(),
                 static_cast<unsigned long long>(s.skipped_samples));
    constexpr size_t kShown = 20;
    for (size_t i = 0; i < s.errors.size() && i < kShown; ++i) {
      std::fprintf(out, "    %s: %s\n", s.errors[i].path.c_str(), s.errors[i].reason.c_str());
    }
    if (s.errors.size() > kShown) std::fprintf(out, "    ... and %zu more (--errors FILE lists all)\n", s.errors.size() - kShown);
  }
  if (!s.fatal.empty()) std::fprintf(out, "  stopped   %s\n", examples::one_line(s.fatal).c_str());
}

void write_errors_tsv(const std::string& path, const Summary& s) {
  std::ofstream out(path);
  out << "path\treason\n";
  for (const auto& e : s.errors) out << clean_field(e.path) << '\t' << clean_field(e.reason) << '\n';
  if (!out) std::fprintf(stderr, "%s: cannot write --errors file %s\n", kProgram, path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (!o.log_level.empty()) loader::set_log_level(o.log_level);
  examples::install_stop_handlers();

  Summary s;
  s.workers = o.workers;
  s.batch_size = o.batch_size;
  std::shared_ptr<datasets::ImageDataset> dataset = build_dataset(o, s);
  s.dataset_size = dataset->size();
  s.transform = dataset->options().transform.describe();

  std::unique_ptr<std::ofstream> indices_out;
  if (!o.indices_path.empty()) {
    indices_out = std::make_unique<std::ofstream>(o.indices_path);
    if (!*indices_out) usage_error("--indices-out " + o.indices_path + ": cannot open for writing");
  }
  if (!o.errors_path.empty()) {
    std::ofstream probe(o.errors_path);
    if (!probe) usage_error("--errors " + o.errors_path + ": cannot open for writing");
  }

  std::unique_ptr<loader::DataLoader> loader;
  const loader::LoaderOptions lo = build_loader_options(o, *dataset, s);
  try {
    loader = std::make_unique<loader::DataLoader>(dataset, lo);
  } catch (const ConfigError& e) {
    usage_error(e.what());
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: %s\n", kProgram, examples::one_line(e.what()).c_str());
    return kExitSkipped;
  }
  s.seed = loader->seed();

  run(o, *loader, lo.sampler.get(), dataset->size(), s, indices_out.get());
  s.seed = loader->seed();  // --resume adopts the saved seed

  if (indices_out) indices_out->flush();
  if (!o.errors_path.empty()) write_errors_tsv(o.errors_path, s);
  if (o.json) {
    std::printf("%s\n", examples::dump_json(to_json(s)).c_str());
  } else {
    print_human(s, stdout);
  }
  std::fflush(stdout);
  if (!s.fatal.empty()) std::fprintf(stderr, "%s: %s\n", kProgram, examples::one_line(s.fatal).c_str());
  loader.reset();  // workers stop here, before we exit
  if (s.interrupted_by != 0) return 128 + s.interrupted_by;
  if (!s.fatal.empty() || !s.errors.empty()) return kExitSkipped;
  return kExitOk;
}
