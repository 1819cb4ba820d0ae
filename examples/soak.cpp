// ringloader-soak: does the loader leak over time? 300 create/iterate/destroy cycles, then 50
// epochs of one persistent loader, printing open fds, mappings, child processes and RSS at the
// start and end of each phase. --check exits 1 unless fds, mappings and children are back to
// their starting counts and RSS grew by less than --rss-slack-mb.
//
//   build/bin/ringloader-soak [--cycles 300] [--epochs 50] [--workers 2] [--rss-slack-mb 8] [--check]
//
// Exit codes: 0 flat (or no --check); 1 --check and something leaked; 2 bad arguments (one line
// on stderr); 3 a cycle lost samples.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"  // GCC 12 false positive in CLI11's inlined code
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "datasets/synthetic_dataset.hpp"
#include "examples/cli_common.hpp"
#include "ipc/worker_process.hpp"
#include "loader/data_loader.hpp"

using namespace ringloader;

namespace {

struct Figures {
  int fds = 0, maps = 0, children = 0;
  long rss_kb = 0;
};

int count_dir(const char* path) {
  int n = 0;
  if (DIR* d = ::opendir(path)) {
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n;
}

Figures measure() {
  Figures f;
  f.fds = count_dir("/proc/self/fd") - 1;  // minus the one opendir holds
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) ++f.maps;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) f.rss_kb = std::atol(line.c_str() + 6);
  }
  f.children = static_cast<int>(ipc::child_pids().size());
  return f;
}

void print(const char* phase, const char* when, const Figures& f) {
  std::printf("  %-34s %-5s fds %3d  mappings %4d  children %d  RSS %7.1f MB\n", phase, when, f.fds, f.maps, f.children,
              static_cast<double>(f.rss_kb) / 1024.0);
}

bool flat(const Figures& a, const Figures& b, long slack_kb) {
  return a.fds == b.fds && a.maps == b.maps && b.children == 0 && b.rss_kb - a.rss_kb < slack_kb;
}

constexpr const char* kProgram = "ringloader-soak";

/// The command line. Defaults are the documented ones.
struct Options {
  int cycles = 300;
  int epochs = 50;
  int workers = 2;
  int rss_slack_mb = 8;
  bool check = false;
};

/// Exits 0 after printing --help, 2 with one line on stderr on an unknown option or a bad value
/// (never a run with the defaults in its place).
Options parse(int argc, char** argv) {
  Options o;
  CLI::App app{"Does the loader leak over time? Create/iterate/destroy cycles, then epochs of one persistent\n"
               "loader, printing open fds, mappings, child processes and RSS at the start and end of each phase.",
               kProgram};
  app.footer("Example:\n  ringloader-soak --cycles 300 --epochs 50 --check\n\n"
             "Exit codes: 0 flat (or no --check), 1 --check found a leak, 2 bad arguments,\n"
             "3 a loader lost samples.");
  app.add_option("--cycles", o.cycles, "Loaders created, iterated over one epoch and destroyed")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--epochs", o.epochs, "Epochs of one persistent loader after the cycles")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--workers", o.workers, "Worker processes per loader; 0 loads in this process")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--rss-slack-mb", o.rss_slack_mb, "RSS growth --check tolerates, per phase")
      ->type_name("MB")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_flag("--check", o.check,
               "Exit 1 unless fds, mappings and children return to their start and RSS stays within the slack");
  examples::parse_or_exit(app, argc, argv, kProgram);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  const int cycles = opt.cycles;
  const int epochs = opt.epochs;
  const int workers = opt.workers;
  const long slack_kb = opt.rss_slack_mb * 1024L;
  const bool check = opt.check;

  auto ds = std::make_shared<datasets::SyntheticDataset>(256, 32, 32, 3);
  loader::LoaderOptions o;
  o.batch_size = 32;
  o.num_workers = static_cast<size_t>(workers);
  o.seed = 1;
  auto one_cycle = [&] {
    loader::DataLoader l(ds, o);
    size_t n = 0;
    for (auto& b : l) n += b.size();
    if (n != ds->size()) std::exit(3);
  };
  one_cycle();  // warm-up: first-use allocations (logger, allocator arenas) are not leaks

  std::printf("soak: %d create/iterate/destroy cycles, then %d epochs of one persistent loader (%d workers)\n", cycles,
              epochs, workers);
  const Figures c0 = measure();
  for (int i = 0; i < cycles; ++i) one_cycle();
  const Figures c1 = measure();
  print("create/iterate/destroy cycles", "start", c0);
  print("", "end", c1);

  Figures p0, p1, p_in;
  {
    o.persistent_workers = true;
    loader::DataLoader l(ds, o);
    for (auto& b : l) (void)b;
    p0 = measure();
    for (int e = 0; e < epochs; ++e) {
      for (auto& b : l) (void)b;
    }
    p1 = measure();
  }
  print("persistent loader epochs", "start", p0);
  print("", "end", p1);
  const bool ok = flat(c0, c1, slack_kb) && p0.fds == p1.fds && p0.maps == p1.maps && p0.children == p1.children &&
                  p1.rss_kb - p0.rss_kb < slack_kb;
  std::printf("%s\n", ok ? "flat: no fd, mapping or process leaked; RSS within slack"
                         : "NOT FLAT: something leaks (see above)");
  return check && !ok ? 1 : 0;
}
