// ringloader-bench: images/s of ringloader over an image folder, on a grid of worker counts,
// batch sizes, decode paths and output dtypes, beside the single-thread decode ceiling on the
// same files (measured in the same run) and, with --vs-pytorch, PyTorch's own DataLoader.
//
//   ringloader-bench --make-dataset /tmp/photos --images 3000
//   ringloader-bench /tmp/photos --workers 1,2 --batch-sizes 64 --decoders fast --vs-pytorch --plot t.svg
//
// Each configuration builds its own loader (persistent workers, shuffled, seed 1), runs an
// untimed warm-up (the first batches of an epoch: fork, first touch of every slot, page
// cache), then --repeats timed epochs; it reports the median, min and max images/s, the main
// process's CPU share over the timed epochs (getrusage), and the peak RSS of the main process
// and of its largest worker (VmHWM). The ceiling is one thread running the dataset's get()
// in-process over the same files, per decoder and output: workers x ceiling is what perfect
// scaling would give, and each configuration is printed as a fraction of it.
//
// stdout: a table, and one JSON line (starting with '{') per configuration; stderr: notes.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"  // GCC 12 false positive in CLI11's inlined code
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "datasets/image_folder.hpp"
#include "examples/cli_common.hpp"
#include "examples/image_gen.hpp"
#include "loader/data_loader.hpp"

using namespace ringloader;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

constexpr const char* kProgram = "ringloader-bench";

struct Options {
  std::string root;
  std::string workers = "0,1,2";
  std::string batch_sizes = "64,256";
  std::string decoders = "stb,turbojpeg,fast";
  std::string outputs = "uint8,float";
  int repeats = 3;
  int warmup_batches = 0;  ///< 0: 2 x max(workers, 1)
  size_t limit = 0;        ///< 0: every image of ROOT
  size_t ceiling_images = 1000;
  int size = 224;
  bool random_crop = false;  ///< RandomResizedCrop(size) instead of Resize + CenterCrop
  bool flip = false;         ///< + RandomHorizontalFlip
  bool vs_pytorch = false;
  std::string python;          ///< default: $RINGLOADER_BENCH_PYTHON, else the build's (compiled in)
  std::string pytorch_script;  ///< default: $RINGLOADER_PYTORCH_SCRIPT, else next to the sources
  std::string plot;
  std::string make_dataset;
  size_t images = 3000;
  int read_delay_ms = 0;     ///< injected before every file read of the loader runs (not the ceiling)
  int reader_threads = -1;   ///< per worker; -1: the library's default, 0: read inside get()
  int block = 0;             ///< packed ROOT: > 0 reads in BlockShuffleSampler order, windows of this many shards
};

/// One configuration of the grid.
struct Config {
  int workers = 0;
  int batch = 0;
  datasets::DecoderChoice decoder;
  bool to_float = false;
};

struct Result {
  Config config;
  size_t images = 0;  ///< per timed epoch
  std::vector<double> ips;
  double main_cpu_share = 0;
  double main_peak_rss_mb = 0;
  double worker_peak_rss_mb = 0;
  double ceiling_ips = 0;
};

/// PyTorch's DataLoader on the same files, one (workers, batch, output) group.
struct TorchResult {
  int workers = 0;
  int batch = 0;
  bool to_float = false;
  double median = 0, min = 0, max = 0;
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double cpu_seconds(int who) {
  rusage ru{};
  ::getrusage(who, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

[[noreturn]] void usage_error(const std::string& reason) {
  std::fprintf(stderr, "%s: %s\n", kProgram, examples::one_line(reason).c_str());
  std::exit(2);
}

const char* output_name(bool to_float) { return to_float ? "float" : "uint8"; }

/// The dataset a user gets (reader threads as the library sets them) with this decoder and output;
/// `read_in_get` makes get() read its own file, as the single-thread ceiling must.
datasets::ImageFolderOptions folder_options(const Options& o, const Config& c, bool read_in_get) {
  datasets::ImageFolderOptions fo;
  fo.transform = datasets::ImageNetPreset{o.size, o.random_crop, o.flip, c.to_float}.pipeline();
  c.decoder.apply(fo.decode);
  if (read_in_get) {
    fo.reader_threads = 0;  // the single-thread ceiling: read and decode in one thread, no delay
  } else {
    if (o.reader_threads >= 0) fo.reader_threads = o.reader_threads;
    fo.read_delay_ms = o.read_delay_ms;
  }
  return fo;
}

/// ROOT as a user opens it: packed shards (ringloader-pack's output, .tar files) or an image folder.
std::shared_ptr<datasets::ImageDataset> open_dataset(const Options& o, const Config& c, bool read_in_get) {
  const datasets::ImageFolderOptions fo = folder_options(o, c, read_in_get);
  if (examples::is_packed(o.root)) return examples::open_shards(o.root, fo, read_in_get ? 0 : o.reader_threads);
  return std::make_shared<datasets::ImageFolder>(o.root, fo);
}

/// `limit` indices spread evenly over [0, n) (every class, the PNGs among the JPEGs), or all.
std::vector<int64_t> subset(size_t n, size_t limit) {
  std::vector<int64_t> out;
  if (limit == 0 || limit >= n) {
    out.resize(n);
    std::iota(out.begin(), out.end(), 0);
    return out;
  }
  for (size_t i = 0; i < limit; ++i) out.push_back(static_cast<int64_t>(i * n / limit));
  return out;
}

/// Images/s of one thread calling get() in-process, reading each file itself: the most one
/// worker could do with this decoder and output.
double ceiling(const Options& o, const Config& c, const std::vector<int64_t>& indices) {
  const auto ds = open_dataset(o, c, true);
  ds->on_worker_start(datasets::WorkerInfo{});
  const datasets::Schema schema = ds->schema();
  std::vector<std::byte> image(schema.fields[0].max_bytes());
  std::vector<std::byte> label(sizeof(int64_t));
  const datasets::FieldTarget targets[2] = {{image.data(), image.size(), nullptr}, {label.data(), label.size(), nullptr}};
  const size_t n = std::min(indices.size(), std::max<size_t>(1, o.ceiling_images));
  auto one = [&](size_t k) {
    datasets::SampleWriter w(schema, targets, datasets::SampleContext{indices[k], 0, 1, -1});
    try {
      ds->get(static_cast<size_t>(indices[k]), w);
    } catch (const Error&) {  // a bad file costs what it costs, as in the loader
    }
  };
  // Warm caches, handles and scratch buffers; then the median of 3 passes (a single short pass
  // measured 15-25% low now and then on a shared machine).
  for (size_t k = 0; k < std::min<size_t>(n, 50); ++k) one(k);
  std::vector<double> rates;
  for (int pass = 0; pass < 3; ++pass) {
    const auto t0 = Clock::now();
    for (size_t k = 0; k < n; ++k) one(k);
    rates.push_back(static_cast<double>(n) / seconds_since(t0));
  }
  return median(rates);
}

Result run_config(const Options& o, const Config& c, const std::vector<int64_t>& indices) {
  Result r;
  r.config = c;
  examples::reset_peak_rss();
  const auto ds = open_dataset(o, c, false);
  loader::LoaderOptions lo;
  lo.batch_size = static_cast<size_t>(c.batch);
  lo.num_workers = static_cast<size_t>(c.workers);
  lo.persistent_workers = true;
  lo.seed = 1;
  lo.on_error = loader::OnError::kSkip;
  if (o.block > 0) {
    const auto& shards = dynamic_cast<const datasets::Shards&>(*ds);
    lo.sampler = std::make_shared<loader::BlockShuffleSampler>(shards.shard_sizes(), static_cast<size_t>(o.block));
  } else {
    lo.sampler = std::make_shared<loader::SubsetRandomSampler>(indices);
  }
  loader::DataLoader loader(ds, lo);

  const int warmup = o.warmup_batches > 0 ? o.warmup_batches : 2 * std::max(c.workers, 1);
  {
    int k = 0;
    for (auto& b : loader) {
      (void)b;
      if (++k >= warmup) break;  // abandons the epoch: the next begin() starts afresh
    }
  }
  const double cpu0 = cpu_seconds(RUSAGE_SELF);
  const auto t_all = Clock::now();
  for (int rep = 0; rep < o.repeats && examples::g_stop_signal == 0; ++rep) {
    const auto t0 = Clock::now();
    size_t got = 0;
    for (auto& b : loader) got += b.size();
    r.ips.push_back(static_cast<double>(got) / seconds_since(t0));
    r.images = got;
  }
  const double wall = seconds_since(t_all);
  r.main_cpu_share = wall > 0 ? (cpu_seconds(RUSAGE_SELF) - cpu0) / wall : 0;
  r.main_peak_rss_mb = examples::peak_rss_mb(0);
  for (int pid : loader.worker_pids()) r.worker_peak_rss_mb = std::max(r.worker_peak_rss_mb, examples::peak_rss_mb(pid));
  return r;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

json result_json(const Result& r, const Options& o) {
  const double med = median(r.ips);
  const double denom = std::max(r.config.workers, 1) * r.ceiling_ips;
  return {{"bench", "imagefolder"},
          {"workers", r.config.workers},
          {"batch", r.config.batch},
          {"decoder", datasets::decoder_name(r.config.decoder)},
          {"output", output_name(r.config.to_float)},
          {"images", r.images},
          {"repeats", r.ips.size()},
          {"median_ips", med},
          {"min_ips", r.ips.empty() ? 0 : *std::min_element(r.ips.begin(), r.ips.end())},
          {"max_ips", r.ips.empty() ? 0 : *std::max_element(r.ips.begin(), r.ips.end())},
          {"main_cpu_share", r.main_cpu_share},
          {"main_peak_rss_mb", r.main_peak_rss_mb},
          {"worker_peak_rss_mb", r.worker_peak_rss_mb},
          {"ceiling_ips", r.ceiling_ips},
          {"ceiling_fraction", denom > 0 ? med / denom : 0},
          {"read_delay_ms", o.read_delay_ms},
          {"reader_threads", o.reader_threads}};
}

void print_header() {
  std::printf("%-7s %-5s %-10s %-6s %9s %9s %9s %7s %9s %9s %9s %9s\n", "workers", "batch", "decoder", "output",
              "median/s", "min/s", "max/s", "mainCPU", "mainRSS", "workerRSS", "ceiling/s", "of w*ceil");
}

void print_row(const Result& r, const Options& o) {
  const json j = result_json(r, o);
  std::printf("%-7d %-5d %-10s %-6s %9.1f %9.1f %9.1f %6.0f%% %7.0fMB %7.0fMB %9.1f %9.2f\n", r.config.workers,
              r.config.batch, datasets::decoder_name(r.config.decoder), output_name(r.config.to_float),
              j["median_ips"].get<double>(), j["min_ips"].get<double>(), j["max_ips"].get<double>(),
              r.main_cpu_share * 100, r.main_peak_rss_mb, r.worker_peak_rss_mb, r.ceiling_ips,
              j["ceiling_fraction"].get<double>());
  std::printf("%s\n", examples::dump_json(j).c_str());
  std::fflush(stdout);
}

/// Runs `cmd` through the shell; its stdout, and the exit status.
std::pair<std::string, int> capture(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return {"", -1};
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

bool pytorch_available(const Options& o) {
  return capture(quote(o.python) + " -c 'import torch, torchvision' >/dev/null 2>&1").second == 0;
}

std::optional<TorchResult> run_pytorch(const Options& o, int workers, int batch, bool to_float,
                                       const std::string& indices_file) {
  const std::string cmd = quote(o.python) + " " + quote(o.pytorch_script) + " " + quote(o.root) +
                          " --workers " + std::to_string(workers) + " --batch-size " + std::to_string(batch) +
                          " --output " + output_name(to_float) + " --size " + std::to_string(o.size) +
                          (o.random_crop ? " --random-crop" : "") + (o.flip ? " --flip" : "") +
                          " --repeats " + std::to_string(o.repeats) + " --warmup-batches " +
                          std::to_string(o.warmup_batches > 0 ? o.warmup_batches : 2 * std::max(workers, 1)) +
                          " --indices " + quote(indices_file);
  const auto [out, code] = capture(cmd);
  if (code != 0) {
    std::fprintf(stderr, "%s: PyTorch run failed (exit %d): %s\n", kProgram, code, cmd.c_str());
    return std::nullopt;
  }
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] != '{') continue;
    const json j = json::parse(line);
    TorchResult t;
    t.workers = workers;
    t.batch = batch;
    t.to_float = to_float;
    t.median = j.at("median_ips").get<double>();
    t.min = j.at("min_ips").get<double>();
    t.max = j.at("max_ips").get<double>();
    return t;
  }
  std::fprintf(stderr, "%s: no result from the PyTorch script: %s\n", kProgram, cmd.c_str());
  return std::nullopt;
}

/// Throughput vs workers per decoder (and PyTorch) for one batch size and output, via gnuplot.
void plot(const Options& o, const std::vector<Result>& results, const std::vector<TorchResult>& torch, int batch,
          bool to_float) {
  if (capture("command -v gnuplot >/dev/null 2>&1").second != 0) {
    std::fprintf(stderr, "%s: gnuplot not found: install it with `.ci/install-deps plot` (Debian gnuplot-nox); no plot\n",
                 kProgram);
    return;
  }
  const std::string ext = std::filesystem::path(o.plot).extension().string();
  const std::string terminal = ext == ".png" ? "pngcairo size 800,480 font 'sans,11'"
                                             : "svg size 720,420 font 'sans,12' background rgb 'white'";
  const std::string data = o.plot + ".dat";
  std::ofstream d(data);
  std::vector<std::string> series;
  for (const char* name : {"stb", "turbojpeg", "fast"}) {
    std::vector<const Result*> rows;
    for (const auto& r : results) {
      if (r.config.batch == batch && r.config.to_float == to_float && std::string(datasets::decoder_name(r.config.decoder)) == name) {
        rows.push_back(&r);
      }
    }
    if (rows.empty()) continue;
    d << "# " << name << "\n";
    for (const Result* r : rows) d << r->config.workers << ' ' << median(r->ips) << ' ' << (r->ips.empty() ? 0 : *std::min_element(r->ips.begin(), r->ips.end())) << ' ' << (r->ips.empty() ? 0 : *std::max_element(r->ips.begin(), r->ips.end())) << '\n';
    d << "\n\n";
    series.push_back(std::string("ringloader ") + name);
  }
  std::vector<TorchResult> trows;
  for (const auto& t : torch) {
    if (t.batch == batch && t.to_float == to_float) trows.push_back(t);
  }
  if (!trows.empty()) {
    d << "# pytorch\n";
    for (const auto& t : trows) d << t.workers << ' ' << t.median << ' ' << t.min << ' ' << t.max << '\n';
    d << "\n\n";
    series.push_back("PyTorch DataLoader (PIL)");
  }
  // Perfect scaling of the fastest decoder plotted, for scale: max(workers, 1) x its ceiling.
  const Result* best = nullptr;
  int lo_w = 1 << 30, hi_w = 0;
  for (const auto& r : results) {
    if (r.config.batch != batch || r.config.to_float != to_float) continue;
    lo_w = std::min(lo_w, r.config.workers);
    hi_w = std::max(hi_w, r.config.workers);
    if (best == nullptr || r.ceiling_ips > best->ceiling_ips) best = &r;
  }
  if (best != nullptr) {
    d << "# ideal\n";
    for (const auto& r : results) {
      if (r.config.batch == batch && r.config.to_float == to_float && r.config.decoder == best->config.decoder) {
        const double ideal = std::max(r.config.workers, 1) * r.ceiling_ips;
        d << r.config.workers << ' ' << ideal << ' ' << ideal << ' ' << ideal << '\n';
      }
    }
    d << "\n\n";
    series.push_back(std::string("workers x one-thread ceiling (") + datasets::decoder_name(best->config.decoder) + ")");
  }
  d.close();
  std::ostringstream g;
  g << "set terminal " << terminal << "\n"
    << "set output " << quote(o.plot) << "\n"
    << "set title 'images/s vs workers (batch " << batch << ", " << output_name(to_float) << ", " << o.size << "px)'\n"
    << "set xlabel 'worker processes'\nset ylabel 'images/s'\nset grid\n"
    << "set key top left\nset xtics 1\nset yrange [0:*]\nset offsets 0, 0, graph 0.35, 0\n"
    << "set xrange [" << lo_w - 0.3 << ":" << hi_w + 0.3 << "]\n"
    << "plot ";
  for (size_t i = 0; i < series.size(); ++i) {
    const bool ideal = best != nullptr && i + 1 == series.size();
    g << (i ? ", " : "") << quote(data) << " index " << i
      << (ideal ? " using 1:2 with lines dt 2 lw 1 lc rgb 'gray40'" : " using 1:2:3:4 with yerrorlines lw 2 pt 7")
      << " title '" << series[i] << "'";
  }
  g << "\n";
  const std::string script = o.plot + ".gp";
  std::ofstream(script) << g.str();
  const auto [out, code] = capture("gnuplot " + quote(script) + " 2>&1");
  std::filesystem::remove(script);
  std::filesystem::remove(data);
  if (code != 0) {
    std::fprintf(stderr, "%s: gnuplot failed: %s\n", kProgram, examples::one_line(out).c_str());
  } else {
    std::fprintf(stderr, "%s: plot written to %s (batch %d, %s)\n", kProgram, o.plot.c_str(), batch, output_name(to_float));
  }
}

void make_dataset(const Options& o) {
  if (o.images == 0) usage_error("--images must be positive");
  examples::ImageGenOptions g;
  // Ten classes when the count allows; otherwise the largest class count that divides it.
  g.num_classes = 1;
  for (int c = 10; c >= 1; --c) {
    if (o.images % static_cast<size_t>(c) == 0) {
      g.num_classes = c;
      break;
    }
  }
  g.images_per_class = static_cast<int>(o.images / static_cast<size_t>(g.num_classes));
  const auto t0 = Clock::now();
  try {
    const auto made = examples::generate_image_folder(o.make_dataset, g);
    std::fprintf(stderr, "%s: wrote %zu images (%zu JPEG, %zu other) in %d classes to %s, %.1f MB, %.1f s\n", kProgram,
                 made.images, made.jpegs, made.images - made.jpegs, g.num_classes, o.make_dataset.c_str(),
                 static_cast<double>(made.bytes) / 1e6, seconds_since(t0));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: --make-dataset: %s\n", kProgram, examples::one_line(e.what()).c_str());
    std::exit(1);
  }
}

Options parse(int argc, char** argv) {
  Options o;
  // The wheel's entry point sets both to the venv's interpreter and the script it ships; a build
  // tree uses the repository's .venv/ (torch pinned there) and the script in examples/.
  const char* env_python = std::getenv("RINGLOADER_BENCH_PYTHON");
  const char* env_script = std::getenv("RINGLOADER_PYTORCH_SCRIPT");
  o.python = env_python && *env_python ? env_python : RINGLOADER_BENCH_PYTHON;
  o.pytorch_script = env_script && *env_script ? env_script : RINGLOADER_PYTORCH_SCRIPT;
  CLI::App app{"Images/s of ringloader over an image folder on a grid of configurations, beside the\n"
               "single-thread decode ceiling and (--vs-pytorch) PyTorch's DataLoader.",
               kProgram};
  app.footer(
      "Examples:\n"
      "  ringloader-bench --make-dataset /tmp/photos --images 3000\n"
      "  ringloader-bench /tmp/photos                                  # the whole default grid\n"
      "  ringloader-bench /tmp/photos --workers 1,2 --batch-sizes 64 --decoders fast --outputs uint8 \\\n"
      "                   --vs-pytorch --plot throughput.svg\n"
      "\n"
      "stdout: a table and one JSON line per configuration (grep '^{'). 'of w*ceil' is the median\n"
      "over max(workers,1) x the single-thread ceiling of the same decoder and output.");
  app.add_option("root", o.root, "Image folder (ROOT/<class>/**/<image>) or packed shards (ringloader-pack's output, .tar)")
      ->type_name("ROOT");
  app.add_option("--workers", o.workers, "Worker counts to run")->type_name("LIST")->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--batch-sizes", o.batch_sizes, "Batch sizes to run")->type_name("LIST")->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--decoders", o.decoders,
                 "Decode paths: stb, turbojpeg (+ stb resize), fast (region-of-interest JPEG + libyuv), fast-noroi "
                 "(fast decoding whole images)")
      ->type_name("LIST")->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--outputs", o.outputs, "uint8 (HWC) and/or float (normalised CHW)")->type_name("LIST")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--repeats", o.repeats, "Timed epochs per configuration")->capture_default_str()
      ->check(examples::positive());
  app.add_option("--warmup-batches", o.warmup_batches, "Untimed batches first (default 2 x workers)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--limit", o.limit, "Use this many images of ROOT, spread evenly (default all)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--ceiling-images", o.ceiling_images, "Images per single-thread ceiling pass (median of 3 passes)")
      ->capture_default_str()->check(examples::positive());
  app.add_option("--read-delay-ms", o.read_delay_ms,
                 "Inject this latency before every file read of the loader runs (packed: once per MiB of shard a worker reads first; the ceiling is undelayed)")
      ->type_name("MS")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--reader-threads", o.reader_threads,
                 "Reader threads per worker (-1: the library default; 0: read inside get(), no overlap)")
      ->type_name("N")->capture_default_str()->check(CLI::Range(-1, 256));
  app.add_option("--block", o.block, "Packed ROOT: block order (BlockShuffleSampler), windows of N shards (default exact shuffle)")
      ->type_name("N")
      ->check(examples::positive());
  app.add_flag("--random-crop", o.random_crop, "RandomResizedCrop(PX) instead of Resize + CenterCrop");
  app.add_flag("--flip", o.flip, "+ RandomHorizontalFlip()");
  app.add_option("--size", o.size, "Resize(PX*8/7) + CenterCrop(PX)")->type_name("PX")->capture_default_str()
      ->check(CLI::Range(8, 8192));
  app.add_flag("--vs-pytorch", o.vs_pytorch, "Also run PyTorch's DataLoader (examples/pytorch_bench.py) and print ratios");
  app.add_option("--python", o.python, "Python with torch and torchvision, for --vs-pytorch")->capture_default_str();
  app.add_option("--pytorch-script", o.pytorch_script, "The PyTorch side")->capture_default_str();
  app.add_option("--plot", o.plot, "Write images/s vs workers (per decoder, and PyTorch) as .svg or .png")
      ->type_name("FILE");
  app.add_option("--make-dataset", o.make_dataset, "Write a folder of photo-like JPEGs/PNGs (then bench ROOT if given)")
      ->type_name("DIR");
  app.add_option("--images", o.images, "Images for --make-dataset")->capture_default_str();
  examples::parse_or_exit(app, argc, argv, kProgram);
  if (o.root.empty() && o.make_dataset.empty()) usage_error("ROOT is required (see --help)");
  if (!o.plot.empty()) {
    const std::string ext = std::filesystem::path(o.plot).extension().string();
    if (ext != ".svg" && ext != ".png") usage_error("--plot " + o.plot + ": the name must end in .svg or .png");
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (!o.make_dataset.empty()) {
    make_dataset(o);
    if (o.root.empty()) return 0;
  }
  std::vector<int> workers, batches;
  std::vector<datasets::DecoderChoice> decoders;
  std::vector<bool> outputs;
  try {
    workers = examples::parse_int_list("--workers", o.workers);
    batches = examples::parse_int_list("--batch-sizes", o.batch_sizes);
    for (int b : batches) {
      if (b == 0) throw CLI::ValidationError("--batch-sizes: 0 is not a batch size");
    }
    for (const auto& d : examples::split_list(o.decoders)) decoders.push_back(examples::parse_decoder(d));
    for (const auto& out : examples::split_list(o.outputs)) {
      if (out != "uint8" && out != "float") throw CLI::ValidationError("--outputs: '" + out + "' is not uint8 or float");
      outputs.push_back(out == "float");
    }
    if (decoders.empty() || outputs.empty()) throw CLI::ValidationError("--decoders and --outputs need an entry");
  } catch (const CLI::Error& e) {
    usage_error(e.what());
  }
  examples::install_stop_handlers();

  std::vector<int64_t> indices;
  try {
    size_t n = 0, classes = 0;
    if (examples::is_packed(o.root)) {
      if (o.vs_pytorch) usage_error("--vs-pytorch needs an image folder (for packed shards: examples/python/bench_shards.py)");
      if (o.block > 0 && o.limit > 0) usage_error("--block reads whole shards: drop --limit");
      const auto probe = examples::open_shards(o.root, {});
      n = probe->size();
      classes = probe->classes().size();
    } else {
      if (o.block > 0) usage_error("--block needs a packed dataset (ringloader-pack's output or .tar shards)");
      datasets::ImageFolder probe(o.root, {});
      for (const auto& e : probe.scan_errors()) std::fprintf(stderr, "%s: skipped by the scan: %s: %s\n", kProgram, e.path.c_str(), e.reason.c_str());
      n = probe.size();
      classes = probe.classes().size();
    }
    indices = subset(n, o.limit);
    std::fprintf(stderr, "%s: %s: %zu images in %zu classes, using %zu; %s\n", kProgram, o.root.c_str(), n,
                 classes, indices.size(),
                 datasets::ImageNetPreset{o.size, o.random_crop, o.flip, false}.pipeline().describe().c_str());
  } catch (const Error& e) {
    usage_error(e.what());
  }

  bool with_torch = false;
  std::string indices_file;
  if (o.vs_pytorch) {
    if (pytorch_available(o)) {
      with_torch = true;
      indices_file = (std::filesystem::temp_directory_path() / ("ringloader-bench-" + std::to_string(::getpid()) + ".idx")).string();
      std::ofstream f(indices_file);
      for (int64_t i : indices) f << i << '\n';
    } else {
      std::fprintf(stderr,
                   "%s: PyTorch not found for %s (import torch, torchvision failed): install it with "
                   "`pip install ringloader[torch]` (or `.ci/install-deps` in a clone), or name another "
                   "interpreter with --python; carrying on without it\n",
                   kProgram, o.python.c_str());
    }
  }

  // The ceilings first: they also bring every file into the page cache before anything is timed.
  std::map<std::pair<std::string, bool>, double> ceilings;
  for (bool f : outputs) {
    for (auto d : decoders) {
      const double c = ceiling(o, Config{1, 1, d, f}, indices);
      ceilings[{datasets::decoder_name(d), f}] = c;
      std::printf("ceiling: %-10s %-6s %8.1f images/s on one thread (dataset get(), in-process)\n", datasets::decoder_name(d),
                  output_name(f), c);
      std::printf("%s\n", examples::dump_json(json({{"bench", "ceiling"}, {"decoder", datasets::decoder_name(d)},
                                                     {"output", output_name(f)}, {"ceiling_ips", c},
                                                     {"images", std::min(indices.size(), o.ceiling_images)}}))
                              .c_str());
    }
  }
  std::fflush(stdout);

  std::vector<Result> results;
  std::vector<TorchResult> torch;
  print_header();
  for (bool f : outputs) {
    for (int b : batches) {
      for (int w : workers) {
        if (examples::g_stop_signal != 0) break;
        for (auto d : decoders) {
          if (examples::g_stop_signal != 0) break;
          Result r;
          try {
            r = run_config(o, Config{w, b, d, f}, indices);
          } catch (const Error& e) {
            std::fprintf(stderr, "%s: workers %d batch %d %s %s failed: %s\n", kProgram, w, b, datasets::decoder_name(d),
                         output_name(f), examples::one_line(e.what()).c_str());
            continue;
          }
          r.ceiling_ips = ceilings[{datasets::decoder_name(d), f}];
          print_row(r, o);
          results.push_back(r);
        }
        if (with_torch && examples::g_stop_signal == 0) {
          if (auto t = run_pytorch(o, w, b, f, indices_file)) {
            json j = {{"bench", "pytorch"}, {"workers", w}, {"batch", b}, {"output", output_name(f)},
                      {"median_ips", t->median}, {"min_ips", t->min}, {"max_ips", t->max}};
            std::string ratios;
            for (const auto& r : results) {
              if (r.config.workers == w && r.config.batch == b && r.config.to_float == f && t->median > 0) {
                const double ratio = median(r.ips) / t->median;
                j["ratio"][datasets::decoder_name(r.config.decoder)] = ratio;
                ratios += std::string("  ") + datasets::decoder_name(r.config.decoder) + " " + fmt("%.2fx", ratio);
              }
            }
            std::printf("%-7d %-5d %-10s %-6s %9.1f %9.1f %9.1f   ringloader/PyTorch:%s\n", w, b, "pytorch", output_name(f),
                        t->median, t->min, t->max, ratios.c_str());
            std::printf("%s\n", examples::dump_json(j).c_str());
            std::fflush(stdout);
            torch.push_back(*t);
          }
        }
      }
    }
  }
  if (!indices_file.empty()) std::filesystem::remove(indices_file);
  if (!o.plot.empty() && !results.empty()) plot(o, results, torch, batches.back(), outputs.front());
  if (examples::g_stop_signal != 0) return 128 + examples::g_stop_signal;
  return results.empty() ? 1 : 0;
}
