// Launchers: fork and fork-server workers behind one interface; a spawner's worker is alive until
// the kernel says it ended (its pidfd), not until its spawner's channel closes.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "ipc/launcher.hpp"
#include "ipc/shared_region.hpp"
#include "tests/support/child.hpp"
#include "tests/support/process_check.hpp"

using namespace ringloader;
using namespace std::chrono_literals;

namespace {


/// A spawner whose workers outlive it (they turn their parent-death signal off), so the test can
/// close the spawner's channel while a worker still runs.
int stubborn_spawner(const std::string&, core::UniqueFd, core::UniqueFd channel) {
  return ipc::run_spawner(channel.get(), [](int) {
    ::prctl(PR_SET_PDEATHSIG, 0);
    for (;;) ::pause();
    return 0;
  });
}

std::optional<ipc::ExitStatus> poll_for(ipc::Child& c, std::chrono::milliseconds limit) {
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    if (auto st = c.poll()) return st;
    if (std::chrono::steady_clock::now() - t0 > limit) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

}  // namespace

TEST_CASE("a fork launcher's child reports its exit status and is reaped", "[launcher]") {
  ipc::ForkLauncher launcher([](int id) { return 40 + id; });
  auto c = launcher.launch(2);
  const auto st = poll_for(*c, 5000ms);
  REQUIRE(st);
  CHECK(st->value == 42);
  c.reset();
  CHECK(test::own_children().empty());
}

TEST_CASE("a spawner's worker counts as alive until it ends, even after its spawner's channel closed", "[launcher][spawner]") {
  // EOF on the spawner channel is no death: the workers may still run and write their slots.
  const auto r = test::run_in_child(
      [](test::Report& out) {
        ipc::ForkServer::start(&stubborn_spawner);
        ipc::RegionOptions ro;
        ro.keep_fd = true;
        auto region = ipc::SharedRegion::create(1 << 16, ro);
        ipc::SpawnerLauncher launcher([] { return std::string("stub"); }, region.fd());
        auto w = launcher.launch(0);  // the spawner forks it soon: pid() answers once it has
        for (int i = 0; i < 500 && w->pid() <= 0; ++i) std::this_thread::sleep_for(10ms);
        const int spawner = test::parent_of(w->pid());
        if (spawner <= 1) return 2;
        std::this_thread::sleep_for(300ms);  // the worker has turned its parent-death signal off by now
        ::kill(spawner, SIGKILL);  // the channel closes; the worker lives on
        if (poll_for(*w, 1500ms)) {
          out << "reported dead while it still ran";
          return 3;
        }
        if (::kill(w->pid(), 0) != 0) return 4;
        w->kill(SIGKILL);  // through its pidfd
        const auto st = poll_for(*w, 3000ms);
        if (!st) {
          out << "not reported dead after it ended";
          return 5;
        }
        out << st->describe();
        return 0;
      },
      20s);
  INFO(r.text);
  CHECK(r.code == 0);
}
