// ringloader-supervision-soak: the loader under fire. For N epochs a chaos thread SIGKILLs
// random workers and SIGSTOPs others (resuming them after a random pause, some past the
// timeout), while the dataset throws for a fixed set of bad samples. The run must deliver
// every index exactly once or report it as skipped, with the same bytes as an undisturbed
// in-process run, never wait in next() much past the timeout, and leave no shared memory and
// no process behind. Prints its counts; --check exits 1 if any promise is broken.
//
//   build/bin/ringloader-supervision-soak [--epochs 30] [--workers 4] [--batch 16] [--samples 800]
//       [--kill-every-ms 50] [--stop-every-ms 150] [--timeout-ms 1000] [--seed 1] [--check]
//
// Exit codes: 0 all held (or no --check); 1 --check and a promise was broken; 2 bad arguments.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"  // GCC 12 false positive in CLI11's inlined code
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/fnv.hpp"
#include "datasets/dataset.hpp"
#include "datasets/rng.hpp"
#include "examples/cli_common.hpp"
#include "ipc/worker_process.hpp"
#include "loader/data_loader.hpp"

using namespace ringloader;
using Clock = std::chrono::steady_clock;

namespace {

/// 16x16x3 bytes from the sample's own generator, an int64 label; sample i throws when
/// i % 97 == 13 (a "bad file", the same in every run).
class ChaosDataset : public datasets::Dataset {
 public:
  explicit ChaosDataset(size_t n) : n_(n) {}
  size_t size() const override { return n_; }
  datasets::Schema schema() const override {
    return {{{"image", datasets::DType::kUInt8, {16, 16, 3}}, {"label", datasets::DType::kInt64, {}}}};
  }
  void get(size_t index, datasets::SampleWriter& out) override {
    if (index % 97 == 13) throw std::runtime_error("bad sample " + std::to_string(index));
    auto rng = out.rng();
    for (auto& b : out.field<uint8_t>(0)) b = static_cast<uint8_t>(rng.next());
    out.field<int64_t>(1)[0] = static_cast<int64_t>(index);
    const auto until = Clock::now() + std::chrono::microseconds(300);  // some work for a kill to interrupt
    while (Clock::now() < until) {
    }
  }
  std::string source(size_t index) const override { return "chaos:" + std::to_string(index); }

 private:
  size_t n_;
};

struct EpochRecord {
  std::map<uint64_t, uint64_t> batch_hash;  ///< by batch number: a hash of its image bytes and indices
  std::vector<int64_t> delivered;
  std::vector<int64_t> skipped;
  std::vector<int64_t> given_up;  ///< in batches raised as BatchError (workers killed faster than they fill)
};

uint64_t hash_batch(const loader::Batch& b) {
  const auto img = b.field("image");
  uint64_t h = core::fnv1a64({reinterpret_cast<const char*>(img.data), img.nbytes()});
  const auto idx = b.indices();
  return core::fnv1a64({reinterpret_cast<const char*>(idx.data()), idx.size_bytes()}, h);
}

/// The chaos: kills and stops random workers until told to stop, then resumes every stopped one.
class Chaos {
 public:
  Chaos(int kill_every_ms, int stop_every_ms, int max_stop_ms, uint64_t seed)
      : kill_every_(kill_every_ms), stop_every_(stop_every_ms), max_stop_(max_stop_ms), rng_(seed) {
    thread_ = std::thread([this] { run(); });
  }
  ~Chaos() { finish(); }
  void finish() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int kills = 0, stops = 0;

 private:
  void run() {
    auto next_kill = Clock::now(), next_stop = Clock::now();
    std::map<int, Clock::time_point> stopped;  // pid -> when to resume it
    while (!done_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      const auto now = Clock::now();
      for (auto it = stopped.begin(); it != stopped.end();) {
        if (now >= it->second) {
          ::kill(it->first, SIGCONT);
          it = stopped.erase(it);
        } else {
          ++it;
        }
      }
      const auto kids = ipc::child_pids(true);
      if (kids.empty()) continue;
      const int victim = kids[rng_.below(kids.size())];
      if (kill_every_ > 0 && now >= next_kill) {
        next_kill = now + std::chrono::milliseconds(kill_every_);
        if (::kill(victim, SIGKILL) == 0) ++kills;
      } else if (stop_every_ > 0 && now >= next_stop && !stopped.count(victim)) {
        next_stop = now + std::chrono::milliseconds(stop_every_);
        if (::kill(victim, SIGSTOP) == 0) {
          ++stops;
          stopped[victim] = now + std::chrono::milliseconds(rng_.below(static_cast<uint64_t>(max_stop_) + 1));
        }
      }
    }
    for (auto& [pid, when] : stopped) ::kill(pid, SIGCONT);
  }

  int kill_every_, stop_every_, max_stop_;
  datasets::Rng rng_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  int epochs = 30, workers = 4, batch = 16, samples = 800, kill_every = 50, stop_every = 150, timeout_ms = 1000;
  uint64_t seed = 1;
  bool check = false, verbose = false;
  CLI::App app{"ringloader-supervision-soak: random SIGKILL/SIGSTOP of workers and failing samples for N epochs; "
               "every index exactly once or reported, same bytes as an undisturbed run, bounded waits, nothing left",
               "ringloader-supervision-soak"};
  app.add_option("--epochs", epochs, "epochs to run")->capture_default_str()->check(examples::positive());
  app.add_option("--workers", workers, "worker processes")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--batch", batch, "batch size")->capture_default_str()->check(examples::positive());
  app.add_option("--samples", samples, "samples in the dataset")->capture_default_str()->check(examples::positive());
  app.add_option("--kill-every-ms", kill_every, "SIGKILL a random worker this often (0: never)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--stop-every-ms", stop_every, "SIGSTOP a random worker this often (0: never)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--timeout-ms", timeout_ms, "the loader's timeout; stops last up to 1.5x it")
      ->capture_default_str()
      ->check(examples::positive());
  app.add_option("--seed", seed, "seed of the loader and of the chaos")->capture_default_str();
  app.add_flag("--check", check, "exit 1 unless every promise held");
  app.add_flag("--verbose", verbose, "show the loader's warnings (one per death)");
  examples::parse_or_exit(app, argc, argv, "ringloader-supervision-soak");

  if (!verbose && !std::getenv("RINGLOADER_LOG_LEVEL")) loader::set_log_level("error");
  auto ds = std::make_shared<ChaosDataset>(static_cast<size_t>(samples));
  loader::LoaderOptions o;
  o.batch_size = static_cast<size_t>(batch);
  o.shuffle = true;
  o.seed = seed;
  o.on_error = loader::OnError::kSkip;

  // The reference: the same epochs in-process, undisturbed.
  std::vector<EpochRecord> ref(static_cast<size_t>(epochs));
  {
    loader::DataLoader calm(ds, o);
    for (auto& r : ref) {
      const size_t before = calm.skipped().size();
      for (auto& b : calm) {
        r.batch_hash[b.seq()] = hash_batch(b);
        for (int64_t i : b.indices()) r.delivered.push_back(i);
      }
      for (size_t k = before; k < calm.skipped().size(); ++k) r.skipped.push_back(calm.skipped()[k].index);
    }
  }

  const std::string shm_dir = "/dev/shm/rl-supervision-soak-" + std::to_string(::getpid());
  std::filesystem::create_directories(shm_dir);
  o.num_workers = static_cast<size_t>(workers);
  o.persistent_workers = true;
  o.timeout = std::chrono::milliseconds(timeout_ms);
  o.shm_dir = shm_dir;
  std::printf("supervision soak: %d epochs of %d samples, %d workers, batch %d, timeout %d ms; SIGKILL every %d ms, "
              "SIGSTOP every %d ms (up to %d ms)\n",
              epochs, samples, workers, batch, timeout_ms, kill_every, stop_every, timeout_ms * 3 / 2);
  std::fflush(stdout);

  int bad_epochs = 0, mismatched = 0, timeouts = 0, other_errors = 0, given_up_batches = 0;
  double max_wait_ms = 0;
  uint64_t batches = 0, delivered = 0, skipped = 0;
  loader::LoaderStats stats;
  int kills = 0, stops = 0;
  {
    loader::DataLoader loader(ds, o);
    Chaos chaos(kill_every, stop_every, timeout_ms * 3 / 2, seed);
    for (int e = 0; e < epochs; ++e) {
      EpochRecord r;
      const size_t skipped_before = loader.skipped().size();
      loader.set_epoch(static_cast<uint64_t>(e));
      for (;;) {
        const auto t0 = Clock::now();
        std::optional<loader::Batch> b;
        try {
          b = loader.next();
        } catch (const TimeoutError&) {
          ++timeouts;  // a wait past the timeout: nothing lost, go on
          max_wait_ms = std::max(max_wait_ms, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
          continue;
        } catch (const BatchError& err) {
          // Workers killed faster than a batch fills: the batch is raised, its indices named.
          ++given_up_batches;
          r.given_up.insert(r.given_up.end(), err.indices().begin(), err.indices().end());
          continue;
        } catch (const Error& err) {
          ++other_errors;
          std::fprintf(stderr, "epoch %d: %s\n", e, err.what());
          continue;
        }
        max_wait_ms = std::max(max_wait_ms, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        if (!b) break;
        r.batch_hash[b->seq()] = hash_batch(*b);
        for (int64_t i : b->indices()) r.delivered.push_back(i);
        ++batches;
      }
      for (size_t k = skipped_before; k < loader.skipped().size(); ++k) r.skipped.push_back(loader.skipped()[k].index);
      // Every index exactly once: delivered, or reported (skipped, or in a batch raised).
      std::vector<int64_t> all = r.delivered;
      all.insert(all.end(), r.skipped.begin(), r.skipped.end());
      all.insert(all.end(), r.given_up.begin(), r.given_up.end());
      std::sort(all.begin(), all.end());
      bool once = all.size() == static_cast<size_t>(samples);
      for (size_t i = 0; once && i < all.size(); ++i) once = all[i] == static_cast<int64_t>(i);
      if (!once) ++bad_epochs;
      // Each delivered batch: the bytes and indices of the undisturbed run's batch of that number.
      const auto& want = ref[static_cast<size_t>(e)];
      // Only the bad samples are skipped (one in a raised batch is reported with it instead).
      const std::set<int64_t> bad(want.skipped.begin(), want.skipped.end());
      const std::set<int64_t> raised(r.given_up.begin(), r.given_up.end());
      const std::set<int64_t> skips(r.skipped.begin(), r.skipped.end());
      bool same = std::all_of(skips.begin(), skips.end(), [&](int64_t i) { return bad.count(i) != 0; }) &&
                  std::all_of(bad.begin(), bad.end(), [&](int64_t i) { return skips.count(i) || raised.count(i); });
      for (const auto& [seq, h] : r.batch_hash) {
        const auto it = want.batch_hash.find(seq);
        same = same && it != want.batch_hash.end() && it->second == h;
      }
      if (!same) ++mismatched;
      delivered += r.delivered.size();
      skipped += r.skipped.size();
    }
    chaos.finish();
    kills = chaos.kills;
    stops = chaos.stops;
    stats = loader.stats();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const bool shm_empty = std::filesystem::is_empty(shm_dir);
  std::filesystem::remove_all(shm_dir);
  const size_t left = ipc::child_pids(true).size();

  const double limit_ms = timeout_ms + 1000.0;
  std::printf("  chaos: %d SIGKILLs, %d SIGSTOPs\n", kills, stops);
  std::printf("  loader: %llu batches, %llu samples delivered, %llu reported skipped (bad samples: %d per epoch)\n",
              static_cast<unsigned long long>(batches), static_cast<unsigned long long>(delivered),
              static_cast<unsigned long long>(skipped), (samples + 96 - 13) / 97);
  std::printf("  workers: %llu deaths, %llu replaced\n", static_cast<unsigned long long>(stats.worker_deaths),
              static_cast<unsigned long long>(stats.worker_restarts));
  std::printf("  waits: %d TimeoutErrors (nothing lost), longest next() %.0f ms (bound: timeout + 1 s = %.0f ms)\n",
              timeouts, max_wait_ms, limit_ms);
  if (given_up_batches > 0) {
    std::printf("  batches raised (workers killed faster than they fill; indices reported): %d\n", given_up_batches);
  }
  std::printf("  epochs not exactly-once: %d; epochs with a batch whose bytes differ from the undisturbed run: %d; "
              "other errors: %d\n",
              bad_epochs, mismatched, other_errors);
  std::printf("  after: shared memory %s, %zu processes left\n", shm_empty ? "empty" : "NOT EMPTY", left);
  const bool ok = bad_epochs == 0 && mismatched == 0 && other_errors == 0 && max_wait_ms <= limit_ms && shm_empty &&
                  left == 0;
  std::printf("%s\n", ok ? "held: every index once or reported, same bytes, bounded waits, nothing left"
                         : "BROKEN: see above");
  return check && !ok ? 1 : 0;
}
