// Reader threads the system refuses: under `ulimit -u` (RLIMIT_NPROC) std::thread throws
// after some threads started, and a constructor that unwinds with joinable threads calls
// std::terminate in the worker. The worker reads ahead with those that started, or reads in
// get() if none did, and says so. The limit is set in a forked child; it does not
// bind root, so a root child first becomes nobody.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "core/error.hpp"
#include "datasets/detail/read_ahead.hpp"
#include "datasets/image_folder.hpp"
#include "tests/datasets/image_test_util.hpp"
#include "tests/support/child.hpp"
#include "tests/support/process_check.hpp"

using namespace ringloader;
using namespace ringloader::datasets;
using ringloader::test::run_in_child;
using ringloader::test::SampleBuffers;
using ringloader::test::TempDir;

namespace {

constexpr uid_t kNobody = 65534;

// Tasks (processes and threads) whose real uid is `uid`: what RLIMIT_NPROC counts.
int tasks_of(uid_t uid) {
  int n = 0;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return -1;
  while (const dirent* p = ::readdir(proc)) {
    if (p->d_name[0] < '0' || p->d_name[0] > '9') continue;
    const std::string task_dir = std::string("/proc/") + p->d_name + "/task";
    DIR* tasks = ::opendir(task_dir.c_str());
    if (tasks == nullptr) continue;  // gone since
    while (const dirent* t = ::readdir(tasks)) {
      if (t->d_name[0] < '0' || t->d_name[0] > '9') continue;
      std::ifstream status(task_dir + "/" + t->d_name + "/status");
      std::string line;
      while (std::getline(status, line)) {
        if (line.rfind("Uid:", 0) == 0) {
          if (std::stoul(line.substr(4)) == uid) ++n;
          break;
        }
      }
    }
    ::closedir(tasks);
  }
  ::closedir(proc);
  return n;
}

// RLIMIT_NPROC's soft limit to `n` (the hard one stays, so it can be raised again).
std::string limit_tasks(rlim_t n) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NPROC, &rl) != 0) return "getrlimit(RLIMIT_NPROC) failed";
  rl.rlim_cur = std::min(n, rl.rlim_max);
  if (::setrlimit(RLIMIT_NPROC, &rl) != 0) return std::string("setrlimit(RLIMIT_NPROC) failed: ") + std::strerror(errno);
  return {};
}

// Joined threads leave the count a moment after join() returns.
void wait_for_tasks(uid_t uid, int at_most) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (tasks_of(uid) > at_most && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string contains(const std::string& what, const std::string& text, const std::string& part) {
  return text.find(part) == std::string::npos ? what + " '" + text + "' lacks '" + part + "'" : std::string();
}

}  // namespace

TEST_CASE("reader threads the system refuses mean fewer or none, never std::terminate", "[threads][resource]") {
  TempDir t;
  std::vector<std::vector<uint8_t>> jpegs;
  for (int i = 0; i < 6; ++i) {
    jpegs.push_back(test::encode_jpeg(test::make_rgb(40, 30, [i](int x, int y) {
                                        return std::array<uint8_t, 3>{uint8_t(x * 5 + i), uint8_t(y * 7), uint8_t(30 * i)};
                                      }),
                                      40, 30, 95, TJSAMP_444));
    test::write_bytes(t / ("c/" + std::to_string(i) + ".jpg"), jpegs.back());
    ::chmod((t / ("c/" + std::to_string(i) + ".jpg")).c_str(), 0644);
  }
  // Readable by nobody: mkdtemp made the folder 0700.
  REQUIRE(::chmod(t.path().c_str(), 0755) == 0);
  REQUIRE(::chmod((t / "c").c_str(), 0755) == 0);

  ImageFolderOptions o;
  o.transform = Pipeline().resize(16).center_crop(8);
  o.reader_threads = 0;
  ImageFolder reference(t.path(), o);
  SampleBuffers buf(reference.schema());
  std::vector<std::vector<uint8_t>> expected;
  for (size_t i = 0; i < reference.size(); ++i) {
    auto w = buf.writer(static_cast<int64_t>(i));
    reference.get(i, w);
    expected.push_back(buf.image());
  }
  o.reader_threads = 16;
  ImageFolder some(t.path(), o);  // built here, before the fork, like a loader's dataset
  ImageFolder none(t.path(), o);

  const auto r = run_in_child([&]() -> std::string {
    if (::geteuid() == 0) {  // RLIMIT_NPROC does not bind root: become nobody
      if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) {
        return std::string("cannot become nobody: ") + std::strerror(errno);
      }
    }
    const uid_t uid = ::getuid();
    if (::access(some.path(0).c_str(), R_OK) != 0) return "uid " + std::to_string(uid) + " cannot read " + some.path(0);
    auto read_all = [&](ImageFolder& ds) -> std::string {
      std::vector<int64_t> all(ds.size());
      for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
      ds.prefetch(all);
      for (size_t i = 0; i < ds.size(); ++i) {
        auto w = buf.writer(static_cast<int64_t>(i));
        ds.get(i, w);
        if (buf.image() != expected[i]) return "sample " + std::to_string(i) + " differs from the synchronous read";
      }
      return {};
    };
    std::atomic<int> reads{0};
    auto read = [&reads](int64_t i) {
      ++reads;
      return std::vector<uint8_t>(8, static_cast<uint8_t>(i));
    };
    const std::vector<int64_t> hints = {1, 2, 3};
    std::string msg;

    // Room for 3 more tasks: 16 threads asked, a few start, the rest are refused.
    const int base = tasks_of(uid);
    if (base <= 0) return "cannot count the tasks of uid " + std::to_string(uid);
    if (msg = limit_tasks(static_cast<rlim_t>(base) + 3); !msg.empty()) return msg;
    {
      detail::ReadAhead ra(16, 64, 1 << 20, read);
      if (ra.started_threads() < 1 || ra.started_threads() >= 16) {
        return "ReadAhead: " + std::to_string(ra.started_threads()) + " of 16 threads under a limit of 3 more tasks";
      }
      if (msg = contains("start_failure()", ra.start_failure(), " of 16 reader threads"); !msg.empty()) return msg;
      ra.hint(hints);
      // take() leaves to the caller a read no thread has started yet: wait for the readers.
      const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (reads.load() < 3 && std::chrono::steady_clock::now() < end) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      for (int64_t i : hints) {
        const auto got = ra.take(i);
        if (!got || *got != std::vector<uint8_t>(8, static_cast<uint8_t>(i))) {
          return "ReadAhead with fewer threads did not read index " + std::to_string(i);
        }
      }
    }
    wait_for_tasks(uid, base);
    some.on_worker_start(WorkerInfo{});
    if (some.reader_threads_started() < 1 || some.reader_threads_started() >= 16) {
      return "ImageFolder: " + std::to_string(some.reader_threads_started()) + " reader threads under a limit of 3 more tasks";
    }
    if (msg = contains("warning", some.worker_start_warning(), " of 16 reader threads"); !msg.empty()) return msg;
    if (msg = contains("warning", some.worker_start_warning(), "reading ahead with those"); !msg.empty()) return msg;
    if (msg = read_all(some); !msg.empty()) return "with some threads: " + msg;

    // No room at all: no thread starts, and every file is read in get().
    if (msg = limit_tasks(1); !msg.empty()) return msg;
    {
      detail::ReadAhead ra(16, 64, 1 << 20, read);
      if (ra.started_threads() != 0) return "ReadAhead started " + std::to_string(ra.started_threads()) + " threads under a limit of 1";
      if (msg = contains("start_failure()", ra.start_failure(), "started 0 of 16 reader threads"); !msg.empty()) return msg;
      ra.hint(hints);
      if (ra.take(1)) return "ReadAhead without threads returned bytes it cannot have read";
    }
    none.on_worker_start(WorkerInfo{});
    if (none.reader_threads_started() != 0) return "ImageFolder started threads under a limit of 1";
    if (msg = contains("warning", none.worker_start_warning(), "started 0 of 16 reader threads"); !msg.empty()) return msg;
    if (msg = contains("warning", none.worker_start_warning(), "read in get()"); !msg.empty()) return msg;
    none.on_worker_start(WorkerInfo{});  // called again: no new attempt, the same warning
    if (none.worker_start_warning().empty()) return "the warning was lost on a second on_worker_start()";
    if (msg = read_all(none); !msg.empty()) return "without threads: " + msg;
    return {};
  });
  INFO(r.describe());
  CHECK(r.ok());
  CHECK(test::own_children().empty());
  // In this process nothing was started or limited.
  CHECK(some.reader_threads_started() == 0);
  CHECK(some.worker_start_warning().empty());
}
