// The system running short (descriptors, memory) is a ResourceError naming the file and the
// call, never a DecodeError: under on_error=skip a DecodeError drops the sample as a bad file,
// and `ulimit -n 4` once dropped 230 of 400 good samples that way. Each case lowers a limit
// in a forked child (the test process keeps its own), which reports through run_in_child.
#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>

#include "core/error.hpp"
#include "datasets/detail/file_reader.hpp"
#include "datasets/file_list_dataset.hpp"
#include "datasets/image_decoder.hpp"
#include "datasets/image_folder.hpp"
#include "tests/datasets/image_test_util.hpp"
#include "tests/support/child.hpp"
#include "tests/support/process_check.hpp"
#include "tests/support/sanitizer.hpp"

using namespace ringloader;
using namespace ringloader::datasets;
using ringloader::test::run_in_child;
using ringloader::test::SampleBuffers;
using ringloader::test::TempDir;

namespace {

std::vector<uint8_t> small_jpeg() {
  return test::encode_jpeg(test::make_rgb(40, 30, [](int x, int y) {
                             return std::array<uint8_t, 3>{uint8_t(x * 5), uint8_t(y * 7), 90};
                           }),
                           40, 30, 95, TJSAMP_444);
}

// Every open() fails with EMFILE from now on in this process (the soft limit is below every
// descriptor number; the ones already open keep working).
std::string exhaust_descriptors() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return "getrlimit failed";
  rl.rlim_cur = 0;
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) return std::string("setrlimit(RLIMIT_NOFILE) failed: ") + std::strerror(errno);
  return {};
}

// "" if `f` throws a ResourceError with `err` whose message starts with `path` and holds each
// of `parts`; otherwise what it did instead.
template <class F>
std::string expect_resource_error(F&& f, const std::string& path, int err, std::initializer_list<std::string> parts,
                                  int64_t index = -1) {
  try {
    f();
    return path + ": no exception";
  } catch (const ResourceError& e) {
    const std::string what = e.what();
    if (e.error_number() != err) return "ResourceError with errno " + std::to_string(e.error_number()) + ": " + what;
    if (e.path() != path) return "ResourceError for path '" + e.path() + "', expected " + path + ": " + what;
    if (what.rfind(path + ": ", 0) != 0) return "message does not start with the path: " + what;
    for (const auto& p : parts) {
      if (what.find(p) == std::string::npos) return "message lacks '" + p + "': " + what;
    }
    if (what.find('\n') != std::string::npos) return "message is not one line: " + what;
    if (e.index() != index) return "index " + std::to_string(e.index()) + ", expected " + std::to_string(index);
    return {};
  } catch (const DecodeError& e) {
    return std::string("DecodeError (a bad file, skipped under on_error=skip): ") + e.what();
  } catch (const std::exception& e) {
    return std::string("another exception: ") + e.what();
  }
}

// No allocation of more than a few KiB succeeds from now on in this process: the address space
// is capped at what is mapped now plus 1 MiB, and then the heap's free memory (earlier tests
// leave some behind, which a cap alone would not take away) is taken in ever smaller blocks
// that are never given back, but for 64 KiB for exceptions and messages.
[[maybe_unused]] std::string exhaust_memory() {  // unused in sanitizer builds
  // Never freed (nor its blocks): the child leaves through _exit.
  std::vector<void*>& held = *new std::vector<void*>();
  held.reserve(size_t{1} << 20);
  std::ifstream status("/proc/self/status");
  std::string line;
  long vm_kib = -1;
  while (std::getline(status, line)) {
    if (line.rfind("VmSize:", 0) == 0) vm_kib = std::stol(line.substr(7));
  }
  if (vm_kib <= 0) return "no VmSize in /proc/self/status";
  const rlim_t limit = static_cast<rlim_t>(vm_kib + 1024) * 1024;
  const rlimit rl{limit, limit};
  if (::setrlimit(RLIMIT_AS, &rl) != 0) return std::string("setrlimit(RLIMIT_AS) failed: ") + std::strerror(errno);
  for (size_t block : {size_t{1} << 20, size_t{64} << 10, size_t{4} << 10}) {
    while (held.size() < held.capacity()) {
      void* p = std::malloc(block);
      if (p == nullptr) break;
      held.push_back(p);
    }
  }
  if (held.size() == held.capacity()) return "could not exhaust the heap";
  for (int i = 0; i < 16 && !held.empty(); ++i) {
    std::free(held.back());
    held.pop_back();
  }
  return {};
}

}  // namespace

TEST_CASE("out of descriptors (EMFILE) is a ResourceError naming the file, not a bad file", "[resource][file]") {
#ifdef RINGLOADER_TEST_UNDER_SANITIZER
  WARN("sanitizer build: its runtime needs descriptors of its own under RLIMIT_NOFILE; not exercised");
  return;
#endif
  TempDir t;
  const auto jpeg = small_jpeg();
  test::write_bytes(t / "c/a.jpg", jpeg);
  test::write_bytes(t / "c/b.jpg", jpeg);
  {
    std::ofstream list(t / "list.tsv");
    list << "c/a.jpg\t0\n";
  }
  ImageFolderOptions opt;
  opt.transform = Pipeline().resize(16).center_crop(8);
  opt.reader_threads = 0;
  ImageFolder sync_ds(t.path(), opt);
  opt.reader_threads = 2;
  ImageFolder threaded_ds(t.path(), opt);
  const std::string a = t / "c/a.jpg";
  const std::string b = t / "c/b.jpg";
  REQUIRE(sync_ds.path(0) == a);

  SECTION("read_file") {
    const auto r = run_in_child([&]() -> std::string {
      if (auto e = exhaust_descriptors(); !e.empty()) return e;
      return expect_resource_error([&] { detail::read_file(a, 1 << 20); }, a, EMFILE,
                                   {"cannot read file: open: Too many open files", "not a bad file"});
    });
    INFO(r.describe());
    CHECK(r.ok());
  }
  SECTION("ImageFolder::get, reading in get() and through reader threads") {
    const auto r = run_in_child([&]() -> std::string {
      SampleBuffers buf(sync_ds.schema());
      threaded_ds.on_worker_start(WorkerInfo{});  // threads need no descriptor
      if (auto e = exhaust_descriptors(); !e.empty()) return e;
      auto w = buf.writer(1);
      auto msg = expect_resource_error([&] { sync_ds.get(1, w); }, b, EMFILE, {"open: Too many open files"}, 1);
      if (!msg.empty()) return "reader_threads = 0: " + msg;
      const std::vector<int64_t> both = {0, 1};
      threaded_ds.prefetch(both);  // the readers' exception reaches get() through take()
      for (int64_t i : both) {
        auto wi = buf.writer(i);
        msg = expect_resource_error([&] { threaded_ds.get(static_cast<size_t>(i), wi); }, threaded_ds.path(i), EMFILE,
                                    {"open: Too many open files"}, i);
        if (!msg.empty()) return "reader_threads = 2: " + msg;
      }
      return {};
    });
    INFO(r.describe());
    CHECK(r.ok());
  }
  SECTION("scanning a folder or opening a file list leaves nothing out and blames no option") {
    const auto r = run_in_child([&]() -> std::string {
      if (auto e = exhaust_descriptors(); !e.empty()) return e;
      auto msg = expect_resource_error([&] { ImageFolder ds(t.path(), opt); }, t.path(), EMFILE,
                                       {"cannot scan: opendir: Too many open files"});
      if (!msg.empty()) return "ImageFolder: " + msg;
      msg = expect_resource_error([&] { FileListDataset ds(t / "list.tsv", opt); }, t / "list.tsv", EMFILE,
                                  {"cannot open file list: Too many open files"});
      if (!msg.empty()) return "FileListDataset: " + msg;
      return {};
    });
    INFO(r.describe());
    CHECK(r.ok());
  }
  CHECK(test::own_children().empty());
}

TEST_CASE("a failed allocation inside a decoder is a ResourceError or bad_alloc, not a bad file", "[resource][decoder]") {
#ifdef RINGLOADER_TEST_UNDER_SANITIZER
  WARN("sanitizer build: its allocator does not return null under RLIMIT_AS; not exercised");
  return;
#else
  // 2048 x 2048: 12 MiB of pixels, which the decoder allocates after the limit is set.
  const int n = 2048;
  const auto px = test::make_rgb(n, n, [](int x, int y) { return std::array<uint8_t, 3>{uint8_t(x), uint8_t(y), 7}; });
  std::vector<uint8_t> bmp;
  stbi_write_bmp_to_func(
      [](void* ctx, void* data, int size) {
        auto* v = static_cast<std::vector<uint8_t>*>(ctx);
        v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
      },
      &bmp, n, n, 3, px.data());
  const auto png = test::encode_png(px, n, n);
  const ImageDecoder dec;
  Rng rng(1);
  const Geometry g = Pipeline::center(32, 32).plan(n, n, rng);
  REQUIRE(dec.probe(bmp, "a.bmp").format == ImageFormat::kBmp);

  const auto r = run_in_child([&]() -> std::string {
    std::vector<uint8_t> out(static_cast<size_t>(g.out_height()) * static_cast<size_t>(g.out_width()) * 3);
    if (auto e = exhaust_memory(); !e.empty()) return e;
    // stb_image reports its failed malloc as "outofmem", which read as a corrupt BMP.
    auto msg = expect_resource_error([&] { dec.decode_into(bmp, "/data/a.bmp", g, out); }, "/data/a.bmp", ENOMEM,
                                     {"cannot decode: stb_image: Cannot allocate memory", "not a bad file"});
    if (!msg.empty()) return "BMP: " + msg;
    // Our own buffers throw bad_alloc, which no catch may turn into a DecodeError.
    try {
      dec.decode_into(png, "/data/a.png", g, out);
      return "PNG: no exception";
    } catch (const std::bad_alloc&) {
    } catch (const ResourceError&) {
    } catch (const std::exception& e) {
      return std::string("PNG: ") + e.what();
    }
    return {};
  });
  INFO(r.describe());
  CHECK(r.ok());
#endif
}
