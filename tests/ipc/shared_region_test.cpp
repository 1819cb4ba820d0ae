#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "ipc/shared_region.hpp"
#include "tests/support/process_check.hpp"

using namespace ringloader;

TEST_CASE("a region has no name and is shared with forked children", "[region]") {
  auto r = ipc::SharedRegion::create(1 << 20);
  CHECK(r.size() == (1u << 20));
  CHECK(test::own_shm_entries().empty());
  std::memset(r.data(), 0, r.size());
  const pid_t pid = ::fork();
  if (pid == 0) {
    r.data()[123] = std::byte{42};
    ::_exit(0);
  }
  int st = 0;
  REQUIRE(::waitpid(pid, &st, 0) == pid);
  CHECK(r.data()[123] == std::byte{42});
}

TEST_CASE("a region that does not fit is refused at creation with needed and free sizes", "[region]") {
  ipc::RegionOptions o;
  o.free_bytes_override = 1 << 20;
  try {
    (void)ipc::SharedRegion::create(64 << 20, o);
    FAIL("expected RegionTooLarge");
  } catch (const ipc::RegionTooLarge& e) {
    CHECK(e.needed() == (64u << 20));
    CHECK(e.free_bytes() == (1u << 20));
    const std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains("needs 67108864 bytes") && Catch::Contains("/dev/shm") &&
                        Catch::Contains("1048576 bytes") && Catch::Contains("--shm-size"));
  }
  CHECK(test::own_shm_entries().empty());
}

TEST_CASE("the free-space figure can be injected through the environment", "[region]") {
  ::setenv("RINGLOADER_TEST_SHM_FREE_BYTES", "4096", 1);
  CHECK_THROWS_AS(ipc::SharedRegion::create(1 << 20), ipc::RegionTooLarge);
  ::unsetenv("RINGLOADER_TEST_SHM_FREE_BYTES");
  CHECK_NOTHROW(ipc::SharedRegion::create(1 << 20));
}

TEST_CASE("a real small tmpfs: too large is refused - a fitting region leaves no file", "[region][tmpfs]") {
  const std::string dir = "/tmp/ringloader-tmpfs-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=8m") != 0) {
    std::filesystem::remove(dir);
    WARN("cannot mount a tmpfs here (not root?): covered by the injected-figure test");
    return;
  }
  ipc::RegionOptions o;
  o.dir = dir;
  CHECK_THROWS_WITH(ipc::SharedRegion::create(16 << 20, o), Catch::Contains(dir) && Catch::Contains("free"));
  {
    auto r = ipc::SharedRegion::create(4 << 20, o);
    CHECK(std::filesystem::is_empty(dir));
    std::memset(r.data(), 1, r.size());  // backed: no SIGBUS
  }
  CHECK(std::filesystem::is_empty(dir));
  ::umount(dir.c_str());
  std::filesystem::remove(dir);
}

TEST_CASE("anonymous regions need no /dev/shm at all", "[region]") {
  ipc::RegionOptions o;
  o.anonymous = true;
  o.free_bytes_override = 0;
  auto r = ipc::SharedRegion::create(1 << 16, o);
  CHECK(r.size() == (1u << 16));
}

TEST_CASE("a creator SIGKILLed at any moment while creating a large region leaves nothing behind", "[region][kill]") {
  // Creating a large ring takes 0.1-1 s (ftruncate, posix_fallocate, a populating mmap): a
  // name that lived through it would be left behind, ring-sized, by a kill in that window.
  const std::string dir = "/dev/shm/ringloader-killtest-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  ipc::RegionOptions o;
  o.dir = dir;
  constexpr size_t kBytes = size_t{192} << 20;
  const auto t0 = std::chrono::steady_clock::now();
  { auto r = ipc::SharedRegion::create(kBytes, o); }
  const auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  std::srand(static_cast<unsigned>(::getpid()));
  for (int i = 0; i < 20; ++i) {
    const pid_t kid = ::fork();
    if (kid == 0) {
      auto r = ipc::SharedRegion::create(kBytes, o);
      for (;;) ::pause();
    }
    // Anywhere from before the file exists to after the mapping is done.
    std::this_thread::sleep_for(std::chrono::microseconds(std::rand() % (took.count() * 12 / 10 + 1)));
    ::kill(kid, SIGKILL);
    int st = 0;
    REQUIRE(::waitpid(kid, &st, 0) == kid);
    INFO("iteration " << i << ", creation takes " << took.count() << " us");
    CHECK(std::filesystem::is_empty(dir));
  }
  std::filesystem::remove_all(dir);
}
