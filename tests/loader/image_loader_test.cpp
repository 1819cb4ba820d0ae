// ImageFolder through the DataLoader: the same bytes for any worker count with random
// augmentation, and every kind of bad file under both on_error policies.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.hpp"
#include "datasets/image_folder.hpp"
#include "examples/image_gen.hpp"
#include "loader/data_loader.hpp"
#include "tests/datasets/image_test_util.hpp"
#include "tests/support/process_check.hpp"

using namespace ringloader;
using namespace ringloader::loader;

namespace {

examples::ImageGenOptions small_images() {
  examples::ImageGenOptions g;
  g.num_classes = 3;
  g.images_per_class = 12;
  g.min_width = 90;
  g.max_width = 140;
  g.min_height = 80;
  g.max_height = 120;
  g.png_fraction = 0.2;
  return g;
}

uint64_t fnv(uint64_t h, const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}

/// Checksum of every delivered image and label, in delivery order, over two epochs; with
/// `kill_every` > 0 a random worker is SIGKILLed every that many batches.
uint64_t checksum(const std::string& root, size_t workers, bool to_float, int kill_every = 0) {
  datasets::ImageFolderOptions fo;
  fo.transform = datasets::Pipeline::random_crop_flip(48);
  if (to_float) fo.transform = fo.transform.to_float();
  fo.reader_threads = 2;
  auto ds = std::make_shared<datasets::ImageFolder>(root, fo);
  LoaderOptions o;
  o.batch_size = 5;
  o.shuffle = true;
  o.num_workers = workers;
  o.seed = 1234;
  o.max_retries = 1000;
  o.persistent_workers = kill_every > 0;
  DataLoader loader(ds, o);
  uint64_t h = 0xcbf29ce484222325ULL;
  size_t n = 0;
  int batches = 0;
  datasets::Rng pick(5);
  for (int e = 0; e < 2; ++e) {
    for (auto& b : loader) {
      if (kill_every > 0 && ++batches % kill_every == 0) {
        const auto pids = loader.worker_pids();
        ::kill(pids[pick.below(pids.size())], SIGKILL);
      }
      const auto img = b.field("image");
      const auto lbl = b.field("label");
      h = fnv(h, img.data, img.nbytes());
      h = fnv(h, lbl.data, lbl.nbytes());
      n += b.size();
    }
  }
  CHECK(n == 72);
  return h;
}

}  // namespace

TEST_CASE("ImageFolder with RandomResizedCrop and flip gives the same bytes for 0/1/2/4 workers", "[images][determinism]") {
  test::TempDir dir;
  examples::generate_image_folder(dir.path(), small_images());
  for (bool to_float : {false, true}) {
    CAPTURE(to_float);
    const uint64_t ref = checksum(dir.path(), 0, to_float);
    CHECK(checksum(dir.path(), 1, to_float) == ref);
    CHECK(checksum(dir.path(), 2, to_float) == ref);
    CHECK(checksum(dir.path(), 4, to_float) == ref);
    CHECK(checksum(dir.path(), 2, to_float, 2) == ref);  // with worker crashes injected
  }
  CHECK(test::own_children().empty());
}

TEST_CASE("every kind of bad file - raise names it at its batch - skip reports it and loses nothing else",
          "[images][errors]") {
  test::TempDir dir;
  auto g = small_images();
  g.num_classes = 2;
  g.images_per_class = 10;
  examples::generate_image_folder(dir.path(), g);
  const std::string cls = dir.path() + "/class_00/";
  const auto good = test::read_bytes(cls + "img_00001.jpg");
  std::map<std::string, std::string> bad;  // file name -> expected words in the reason
  test::write_bytes(cls + "bad_empty.jpg", {});
  bad["bad_empty.jpg"] = "empty";
  test::write_bytes(cls + "bad_truncated.jpg", std::vector<uint8_t>(good.begin(), good.begin() + static_cast<long>(good.size() / 3)));
  bad["bad_truncated.jpg"] = "";
  const std::string text = "<html>not an image</html>";
  test::write_bytes(cls + "bad_text.jpg", std::vector<uint8_t>(text.begin(), text.end()));
  bad["bad_text.jpg"] = "";
  REQUIRE(::mkfifo((cls + "bad_fifo.jpg").c_str(), 0600) == 0);
  bad["bad_fifo.jpg"] = "";
  // A PNG header that declares 100000 x 100000 pixels: refused before any allocation.
  auto png = test::encode_png(test::make_rgb(4, 4, [](int, int) { return std::array<uint8_t, 3>{1, 2, 3}; }), 4, 4);
  for (size_t at : {size_t{16}, size_t{20}}) {
    png[at] = 0;
    png[at + 1] = 0x01;
    png[at + 2] = 0x86;
    png[at + 3] = 0xa0;
  }
  test::write_bytes(cls + "bad_bomb.png", png);
  bad["bad_bomb.png"] = "max_pixels";
  const std::string tiff = "II*\0tiff is not supported here";
  test::write_bytes(cls + "bad_tiff.jpg", std::vector<uint8_t>(tiff.begin(), tiff.end()));
  bad["bad_tiff.jpg"] = "";
  std::filesystem::create_directory(cls + "bad_dir.jpg");  // a folder named like an image
  const size_t total_files = 20 + bad.size();

  datasets::ImageFolderOptions fo;
  fo.transform = datasets::Pipeline::center(40, 32);
  fo.decode.max_pixels = 1 << 20;
  auto ds = std::make_shared<datasets::ImageFolder>(dir.path(), fo);
  REQUIRE(ds->size() == total_files);

  const size_t workers = GENERATE(0u, 2u);
  CAPTURE(workers);
  {
    SECTION("skip: every bad file reported once with a reason - every good image delivered once") {
      LoaderOptions o;
      o.batch_size = 4;
      o.num_workers = workers;
      o.on_error = OnError::kSkip;
      o.timeout = std::chrono::milliseconds(20000);  // a FIFO opened for reading would hang here
      DataLoader loader(ds, o);
      std::vector<int64_t> got;
      for (auto& b : loader) {
        for (int64_t i : b.indices()) got.push_back(i);
      }
      CHECK(got.size() == 20);
      std::map<std::string, std::string> reasons;
      for (const auto& s : loader.skipped()) reasons[std::filesystem::path(s.path).filename().string()] = s.reason;
      CHECK(reasons.size() == bad.size());
      for (const auto& [name, words] : bad) {
        CAPTURE(name);
        REQUIRE(reasons.count(name) == 1);
        CHECK_FALSE(reasons[name].empty());
        CHECK(reasons[name].find('\n') == std::string::npos);  // one line
        if (!words.empty()) CHECK_THAT(reasons[name], Catch::Contains(words));
      }
    }
    SECTION("raise: the first bad file is raised at its batch's place naming the file") {
      LoaderOptions o;
      o.batch_size = 4;
      o.num_workers = workers;
      DataLoader loader(ds, o);
      size_t errors = 0, delivered = 0;
      for (;;) {
        try {
          auto b = loader.next();
          if (!b) break;
          delivered += b->size();
        } catch (const SampleError& e) {
          ++errors;
          CHECK_THAT(e.path(), Catch::Contains("/class_00/bad_"));
          CHECK_THAT(std::string(e.what()), Catch::Contains(e.path()));
        }
      }
      CHECK(errors >= 1);
      CHECK(delivered + errors * 4 >= 20);  // a raising batch loses only its own samples
    }
  }
  CHECK(test::own_children().empty());
}
