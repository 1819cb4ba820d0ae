// ringloader-ring-bench: what the ring itself costs. A synthetic dataset whose samples cost
// nothing (a memcpy of a 224x224x3 uint8 image + a label) is loaded at batch 256 by N workers;
// printed beside it, the same bytes moved by a single-thread memcpy loop. Also the main
// process's hand-off cost per batch (time inside next() when the batch is already filled), and
// beside it the cost of the one system call in it that wakes a sleeping worker.
//
//   build/bin/ringloader-ring-bench [--workers 2] [--batch 256] [--batches 40] [--runs 5]
//
// Exit codes: 0 done; 1 the loader lost samples or the wake-up child did not answer; 2 bad
// arguments (one line on stderr).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"  // GCC 12 false positive in CLI11's inlined code
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "datasets/synthetic_dataset.hpp"
#include "examples/cli_common.hpp"
#include "ipc/semaphore.hpp"
#include "ipc/shared_region.hpp"
#include "ipc/worker_process.hpp"
#include "loader/data_loader.hpp"

using namespace ringloader;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

constexpr const char* kProgram = "ringloader-ring-bench";

/// The command line. Defaults are the documented ones.
struct Options {
  size_t workers = 2;
  size_t batch = 256;
  size_t batches = 40;
  size_t runs = 5;
};

/// Exits 0 after printing --help, 2 with one line on stderr on an unknown option or a bad value
/// (never a run with the defaults in its place).
Options parse(int argc, char** argv) {
  Options o;
  CLI::App app{"What the ring itself costs: a synthetic dataset whose samples cost nothing (a 224x224x3 uint8\n"
               "image and a label) loaded by worker processes, beside a single-thread memcpy of the same\n"
               "bytes, and the main process's hand-off cost per batch.",
               kProgram};
  app.footer("Example:\n  ringloader-ring-bench --workers 4 --runs 3\n\n"
             "Exit codes: 0 done, 1 the loader lost samples (or the wake-up child hung), 2 bad arguments.\n"
             "stdout: the figures, then one JSON line (starting with '{').");
  app.add_option("--workers", o.workers, "Worker processes; 0 loads in this process")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--batch", o.batch, "Samples per batch")->capture_default_str()->check(examples::positive());
  app.add_option("--batches", o.batches, "Batches per run (one epoch)")->capture_default_str()
      ->check(examples::positive());
  app.add_option("--runs", o.runs, "Timed runs; the median is reported")->capture_default_str()
      ->check(examples::positive());
  examples::parse_or_exit(app, argc, argv, kProgram);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  const size_t workers = opt.workers;
  const size_t batch = opt.batch;
  const size_t batches = opt.batches;
  const size_t runs = opt.runs;
  const size_t n = batch * batches;
  auto ds = std::make_shared<datasets::SyntheticDataset>(n, 224, 224, 3);
  const double bytes_per_batch = static_cast<double>(batch * (ds->image_bytes() + sizeof(int64_t)));

  // 1. The loader, consuming as fast as it can.
  loader::LoaderOptions o;
  o.batch_size = batch;
  o.num_workers = workers;
  o.persistent_workers = true;
  o.seed = 1;
  loader::DataLoader loader(ds, o);
  for (auto& b : loader) (void)b;  // warm-up: fork, first touch of every slot page
  std::vector<double> loader_bps;
  for (size_t r = 0; r < runs; ++r) {
    const auto t0 = Clock::now();
    size_t got = 0;
    for (auto& b : loader) got += b.size();
    if (got != n) {
      std::fprintf(stderr, "lost samples: %zu of %zu\n", got, n);
      return 1;
    }
    loader_bps.push_back(static_cast<double>(batches) / seconds_since(t0));
  }

  // 2. Hand-off cost: a "training step" long enough that every batch is ready when asked for.
  //    Two epochs; the first 2 x workers batches of each are left out (the ring is not full yet).
  std::vector<double> handoff_us;
  const double fill_s = 1.0 / median(loader_bps);
  const auto step = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(fill_s * static_cast<double>(workers) * 1.5));
  auto train_step = [&] {
    const auto until = Clock::now() + step;
    while (Clock::now() < until) std::this_thread::sleep_for(std::chrono::microseconds(200));
  };
  for (int epoch = 0; epoch < 2; ++epoch) {
    size_t k = 0;
    for (;;) {
      const auto t0 = Clock::now();
      auto b = loader.next();
      const double us = seconds_since(t0) * 1e6;
      if (!b) break;
      if (k++ >= workers * 2) handoff_us.push_back(us);
      b->release();
      train_step();
    }
  }

  // 2b. The same with nothing to queue: next() is called again while the batch it returned
  //     is still held, so no slot was given back and no worker needs waking.
  std::vector<double> nowake_us;
  for (size_t k = 0;; ++k) {
    auto first = loader.next();
    if (!first) break;
    const auto t0 = Clock::now();
    auto second = loader.next();
    const double us = seconds_since(t0) * 1e6;
    if (!second) break;
    if (k >= workers) nowake_us.push_back(us);  // the epoch's first pairs may still be filling
    first->release();
    second->release();
    train_step();
  }

  // 2c. The kernel's part alone: waking a process asleep on a semaphore (what next() does once
  //     per batch, for the worker that will fill the slot just given back), at the same pacing.
  std::vector<double> wake_us;
  {
    auto region = ipc::SharedRegion::create(4096);
    auto* go = new (region.data()) ipc::Semaphore(0);
    auto* ack = new (region.data() + 64) ipc::Semaphore(0);
    auto* stop = new (region.data() + 128) std::atomic<int>(0);
    auto child = ipc::WorkerProcess::spawn([&] {
      for (;;) {
        go->wait();
        if (stop->load()) return 0;
        ack->post();
      }
    });
    for (size_t i = 0; i < handoff_us.size(); ++i) {
      train_step();  // the child is asleep in wait() by now
      const auto t0 = Clock::now();
      go->post();
      wake_us.push_back(seconds_since(t0) * 1e6);
      if (!ack->wait_for(std::chrono::seconds(2))) {
        std::fprintf(stderr, "the wake-up child did not answer within 2 s (pid %d)\n", static_cast<int>(child.pid()));
        return 1;
      }
    }
    stop->store(1);
    go->post();
    (void)child.wait_for(std::chrono::seconds(5));
  }

  // 3. The same bytes through one core's memcpy, batch by batch.
  std::vector<uint8_t> src(ds->image_bytes() + 4096, 7), dst(static_cast<size_t>(bytes_per_batch));
  std::memset(dst.data(), 0, dst.size());
  std::vector<double> memcpy_bps;
  for (size_t r = 0; r < runs; ++r) {
    const auto t0 = Clock::now();
    for (size_t b = 0; b < batches; ++b) {
      for (size_t s = 0; s < batch; ++s) {
        std::memcpy(dst.data() + s * ds->image_bytes(), src.data() + (s * 64) % 4096, ds->image_bytes());
      }
    }
    memcpy_bps.push_back(static_cast<double>(batches) / seconds_since(t0));
    if (dst[12345] != 7) return 1;
  }

  const double l = median(loader_bps), m = median(memcpy_bps);
  std::sort(handoff_us.begin(), handoff_us.end());
  const double h_med = handoff_us.empty() ? 0 : median(handoff_us);
  const double h_max = handoff_us.empty() ? 0 : handoff_us.back();
  const double w_med = wake_us.empty() ? 0 : median(wake_us);
  const double n_med = nowake_us.empty() ? 0 : median(nowake_us);
  std::printf("ring benchmark: 224x224x3 uint8 + int64 label, batch %zu, %zu workers, %zu slots (%.0f MB ring), "
              "%zu batches/run, median of %zu runs\n",
              batch, workers, loader.num_slots(), static_cast<double>(loader.ring_bytes()) / 1e6, batches, runs);
  std::printf("  %-34s %10.1f batches/s %8.2f GB/s\n", "ringloader (workers -> ring -> main)", l, l * bytes_per_batch / 1e9);
  std::printf("  %-34s %10.1f batches/s %8.2f GB/s\n", "single-thread memcpy, same bytes", m, m * bytes_per_batch / 1e9);
  std::printf("  loader / memcpy bandwidth: %.2f\n", l / m);
  std::printf("  hand-off cost in the main process: median %.1f us, max %.1f us over %zu ready batches\n",
              h_med, h_max, handoff_us.size());
  std::printf("    the same with no worker to wake (next() again while a batch is held): median %.1f us over %zu\n",
              n_med, nowake_us.size());
  std::printf("    sem_post waking a process asleep on it, alone, same pacing: median %.1f us\n", w_med);
  std::printf("{\"bench\":\"ring\",\"batch\":%zu,\"workers\":%zu,\"loader_batches_per_s\":%.2f,\"loader_gb_per_s\":%.3f,"
              "\"memcpy_batches_per_s\":%.2f,\"memcpy_gb_per_s\":%.3f,\"ratio\":%.3f,\"handoff_us_median\":%.2f,"
              "\"handoff_us_max\":%.2f,\"nowake_handoff_us_median\":%.2f,\"wake_us_median\":%.2f}\n",
              batch, workers, l, l * bytes_per_batch / 1e9, m, m * bytes_per_batch / 1e9, l / m, h_med, h_max, n_med, w_med);
  return 0;
}
