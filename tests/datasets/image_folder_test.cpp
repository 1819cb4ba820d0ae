// ImageFolder / FileListDataset: torchvision's class, label and order semantics; scan
// errors; every bad-file kind through get(); reader threads giving the same bytes.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <atomic>
#include <chrono>
#include <thread>
#include <fstream>
#include <map>

#include "datasets/detail/read_ahead.hpp"
#include "core/error.hpp"
#include "datasets/file_list_dataset.hpp"
#include "datasets/image_folder.hpp"
#include "tests/datasets/image_test_util.hpp"

using namespace ringloader;
using namespace ringloader::datasets;
using ringloader::test::SampleBuffers;
using ringloader::test::TempDir;

namespace {

// A small JPEG whose flat colour encodes `tag` in its red channel.
std::vector<uint8_t> tagged_jpeg(int tag, int w = 40, int h = 30) {
  return test::encode_jpeg(test::make_rgb(w, h, [tag](int, int) {
                             return std::array<uint8_t, 3>{static_cast<uint8_t>(tag), 100, 50};
                           }),
                           w, h, 100, TJSAMP_444);
}

void symlink_or_fail(const std::string& target, const std::string& link) { REQUIRE(::symlink(target.c_str(), link.c_str()) == 0); }

std::vector<std::string> rel_paths(const ImageDataset& ds, const std::string& root) {
  std::vector<std::string> out;
  for (size_t i = 0; i < ds.size(); ++i) out.push_back(ds.path(i).substr(root.size() + 1));
  return out;
}

ImageFolderOptions small(int reader_threads = 0) {
  ImageFolderOptions o;
  o.transform = Pipeline().resize(16).center_crop(8);
  o.reader_threads = reader_threads;
  return o;
}

}  // namespace

TEST_CASE("ImageFolder: sorted classes, labels, torchvision order, case-insensitive extensions", "[folder]") {
  TempDir t;
  test::write_bytes(t / "dog/b.jpg", tagged_jpeg(1));
  test::write_bytes(t / "dog/A.JPG", tagged_jpeg(2));        // extension case ignored, 'A' < 'b'
  test::write_bytes(t / "dog/z.txt", {1, 2, 3});               // not an image extension: ignored
  test::write_bytes(t / "dog/sub/a.jpeg", tagged_jpeg(3));
  test::write_bytes(t / "dog/sub.x/c.png", test::encode_png(std::vector<uint8_t>(12, 9), 2, 2));
  test::write_bytes(t / "dog/zz.jpg", tagged_jpeg(4));        // files of "dog" before "dog/sub*"
  test::write_bytes(t / "dog/sub/deep/d.jpg", tagged_jpeg(6));  // "dog/sub.x" < "dog/sub/deep" ('.' < '/')
  test::write_bytes(t / "cat/1.webp", test::encode_webp(std::vector<uint8_t>(48, 7), 4, 4, true));
  std::filesystem::create_directories(t / "bird.jpg/x");      // a folder named like an image: a class
  test::write_bytes(t / "bird.jpg/x/q.bmp", {});              // empty file: still a sample (fails in get)
  test::write_bytes(t / "stray.jpg", tagged_jpeg(5));          // a file at root level: not a class

  ImageFolder ds(t.path(), small());
  CHECK(ds.classes() == std::vector<std::string>{"bird.jpg", "cat", "dog"});
  // The order torchvision 0.14's make_dataset gives for this tree (checked with it).
  CHECK(rel_paths(ds, t.path()) == std::vector<std::string>{"bird.jpg/x/q.bmp", "cat/1.webp", "dog/A.JPG", "dog/b.jpg",
                                                            "dog/zz.jpg", "dog/sub/a.jpeg", "dog/sub.x/c.png",
                                                            "dog/sub/deep/d.jpg"});
  CHECK(ds.label(0) == 0);
  CHECK(ds.label(1) == 1);
  CHECK(ds.label(7) == 2);
  CHECK(ds.scan_errors().empty());
  CHECK(ds.source(3) == t / "dog/b.jpg");

  const Schema s = ds.schema();
  REQUIRE(s.fields.size() == 2);
  CHECK(s.fields[0].name == "image");
  CHECK(s.fields[0].dtype == DType::kUInt8);
  CHECK(s.fields[0].shape == std::vector<int64_t>{8, 8, 3});
  CHECK(s.fields[1].name == "label");
  CHECK(s.fields[1].dtype == DType::kInt64);
  CHECK(s.fields[1].shape.empty());

  SampleBuffers buf(s);
  auto w = buf.writer(3);
  ds.get(3, w);
  CHECK(w.source() == t / "dog/b.jpg");
  CHECK(buf.label() == 2);
  const auto img = buf.image();
  for (size_t i = 0; i < img.size(); i += 3) {  // flat (1, 100, 50) within JPEG rounding
    CHECK(std::abs(int(img[i]) - 1) <= 2);
    CHECK(std::abs(int(img[i + 1]) - 100) <= 2);
    CHECK(std::abs(int(img[i + 2]) - 50) <= 2);
  }
  auto w0 = buf.writer(0);
  CHECK_THROWS_WITH(ds.get(0, w0), Catch::Contains("q.bmp: empty file"));
  CHECK(w0.source() == t / "bird.jpg/x/q.bmp");  // named even when it fails
  auto w9 = buf.writer(99);
  CHECK_THROWS_AS(ds.get(99, w9), SampleError);
}

TEST_CASE("ImageFolder is_valid_file decides for every file instead of the extensions", "[folder]") {
  TempDir t;
  test::write_bytes(t / "dog/b.jpg", tagged_jpeg(1));
  test::write_bytes(t / "dog/skip.jpg", tagged_jpeg(2));
  test::write_bytes(t / "dog/z.txt", {1, 2, 3});  // no image extension: kept when the predicate says so
  test::write_bytes(t / "cat/1.jpg", tagged_jpeg(3));
  auto opt = small();
  std::vector<std::string> asked;
  opt.is_valid_file = [&](const std::string& path) {
    asked.push_back(path);
    return path.find("skip") == std::string::npos;
  };
  ImageFolder ds(t.path(), opt);
  CHECK(rel_paths(ds, t.path()) == std::vector<std::string>{"cat/1.jpg", "dog/b.jpg", "dog/z.txt"});
  CHECK(asked.size() == 4);  // every file, by its full path
  CHECK(std::find(asked.begin(), asked.end(), t / "dog/skip.jpg") != asked.end());

  opt.is_valid_file = [](const std::string& path) { return path.find("cat") == std::string::npos; };
  CHECK_THROWS_WITH(ImageFolder(t.path(), opt), Catch::Contains("cat") && Catch::Contains("is_valid_file"));
}

TEST_CASE("ImageFolder follows symlinks and reports loops and broken links", "[folder]") {
  TempDir t;
  test::write_bytes(t / "elsewhere/real.jpg", tagged_jpeg(9));
  test::write_bytes(t / "a/x.jpg", tagged_jpeg(1));
  symlink_or_fail(t / "elsewhere/real.jpg", t / "a/link.jpg");     // link to a file: followed
  symlink_or_fail(t / "nowhere.jpg", t / "a/broken.jpg");          // broken: reported
  symlink_or_fail(t / "a/loop2.jpg", t / "a/loop1.jpg");           // file links in a cycle
  symlink_or_fail(t / "a/loop1.jpg", t / "a/loop2.jpg");
  symlink_or_fail("..", t / "a/up");                               // folder link back to an ancestor
  symlink_or_fail(t / "elsewhere", t / "b");                        // class folder that is a link
  std::filesystem::create_directories(t / "empty");

  auto opt = small();
  CHECK_THROWS_WITH(ImageFolder(t.path(), opt), Catch::Contains("no image in class folder(s) empty"));
  opt.allow_empty = true;
  ImageFolder ds(t.path(), opt);
  CHECK(ds.classes() == std::vector<std::string>{"a", "b", "elsewhere", "empty"});
  CHECK(rel_paths(ds, t.path()) == std::vector<std::string>{"a/link.jpg", "a/x.jpg", "b/real.jpg", "elsewhere/real.jpg"});
  std::map<std::string, std::string> errors;
  for (const auto& e : ds.scan_errors()) errors[e.path.substr(t.path().size() + 1)] = e.reason;
  CHECK_THAT(errors["a/broken.jpg"], Catch::Contains("broken symbolic link"));
  CHECK_THAT(errors["a/loop1.jpg"], Catch::Contains("symbolic link loop"));
  CHECK_THAT(errors["a/loop2.jpg"], Catch::Contains("symbolic link loop"));
  CHECK_THAT(errors["a/up"], Catch::Contains("symbolic link loop") && Catch::Contains("not followed"));
  CHECK(errors.size() == 4);

  // list_unreadable: torchvision's os.walk lists what stat cannot follow, so its indices count them
  auto listed = opt;
  listed.list_unreadable = true;
  ImageFolder all(t.path(), listed);
  CHECK(rel_paths(all, t.path()) == std::vector<std::string>{"a/broken.jpg", "a/link.jpg", "a/loop1.jpg", "a/loop2.jpg",
                                                             "a/x.jpg", "b/real.jpg", "elsewhere/real.jpg"});
  CHECK(all.scan_errors().size() == 4);
  SampleBuffers lbuf(all.schema());
  auto lw = lbuf.writer(0);
  CHECK_THROWS_WITH(all.get(0, lw), Catch::Contains("broken.jpg"));  // fails at load, naming it

  SampleBuffers buf(ds.schema());
  auto w = buf.writer(0);
  ds.get(0, w);
  CHECK(std::abs(int(buf.image()[0]) - 9) <= 2);
  CHECK_THROWS_WITH(ImageFolder(t / "a/x.jpg", opt), Catch::Contains("is not a folder"));
  CHECK_THROWS_WITH(ImageFolder(t / "missing", opt), Catch::Contains("No such file"));
}

TEST_CASE("every bad-file kind is a one-line DecodeError naming the file", "[folder][bad]") {
  TempDir t;
  const auto good = tagged_jpeg(10, 64, 64);
  test::write_bytes(t / "c/00-good.jpg", good);
  test::write_bytes(t / "c/01-empty.jpg", {});
  test::write_bytes(t / "c/02-truncated.jpg", std::vector<uint8_t>(good.begin(), good.begin() + 300));
  std::vector<uint8_t> corrupt(good.begin(), good.begin() + 4);
  for (int i = 0; i < 400; ++i) corrupt.push_back(static_cast<uint8_t>(i * 37));
  test::write_bytes(t / "c/03-corrupt.jpg", corrupt);
  const std::string html = "<html><body>Access denied</body></html>";
  test::write_bytes(t / "c/04-html.jpg", std::vector<uint8_t>(html.begin(), html.end()));
  auto bomb = test::encode_png(std::vector<uint8_t>(12, 0), 2, 2);
  bomb[17] = bomb[18] = bomb[21] = bomb[22] = 0xff;  // IHDR: 16M x 16M
  test::write_bytes(t / "c/05-bomb.png", bomb);
  test::write_bytes(t / "c/06-tiff.tif", {'M', 'M', 0, 42, 0, 0, 0, 8});
  REQUIRE(::mkfifo((t / "c/07-fifo.jpg").c_str(), 0600) == 0);
  std::filesystem::create_directories(t / "c/08-dir.png");  // a folder: walked into, not a sample
  test::write_bytes(t / "c/09-unreadable.jpg", good);
  ::chmod((t / "c/09-unreadable.jpg").c_str(), 0);

  for (int threads : {0, 2}) {
    INFO("reader_threads " << threads);
    ImageFolder ds(t.path(), small(threads));
    ds.on_worker_start(WorkerInfo{});
    REQUIRE(ds.size() == 9);
    std::vector<int64_t> all(ds.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
    ds.prefetch(all);
    SampleBuffers buf(ds.schema());
    const std::vector<std::string> expected = {
        "",
        "empty file (0 bytes)",
        "truncated or corrupt JPEG",
        "corrupt JPEG",
        "not an image: the file starts with text \"<html><body>Acce\"",
        "over the limit of 67108864 (option max_pixels; a decompression bomb?)",
        "TIFF images are not supported",
        "not a regular file (FIFO): refusing to open it",
        "Permission denied",
    };
    for (size_t i = 0; i < ds.size(); ++i) {
      auto w = buf.writer(static_cast<int64_t>(i));
      if (i == 0) {
        ds.get(i, w);
        continue;
      }
      if (i == 8 && ::geteuid() == 0) {  // root reads anything
        ds.get(i, w);
        continue;
      }
      INFO(ds.path(i));
      try {
        ds.get(i, w);
        FAIL("no exception");
      } catch (const DecodeError& e) {
        CHECK(e.path() == ds.path(i));
        CHECK_THAT(e.what(), Catch::StartsWith(ds.path(i) + ": ") && Catch::Contains(expected[i]));
        CHECK(std::string(e.what()).find('\n') == std::string::npos);
      }
    }
  }
}

TEST_CASE("reader threads on or off give identical bytes, and float output", "[folder][threads]") {
  TempDir t;
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < 12; ++i) {
      const int w = 50 + 7 * i, h = 40 + 5 * c;
      test::write_bytes(t / ("c" + std::to_string(c) + "/" + std::to_string(i) + ".jpg"),
                        test::encode_jpeg(test::make_rgb(w, h, [&](int x, int y) {
                          return std::array<uint8_t, 3>{uint8_t(x * 3 + i), uint8_t(y * 5 + c), uint8_t(x ^ y)};
                        }), w, h, 90, TJSAMP_420));
    }
  }
  auto run = [&](int threads, int delay_ms, Pipeline p) {
    ImageFolderOptions o;
    o.transform = std::move(p);
    o.reader_threads = threads;
    o.read_delay_ms = delay_ms;
    o.prefetch_files = 8;  // smaller than a pass: eviction and synchronous fallbacks happen
    ImageFolder ds(t.path(), o);
    ds.on_worker_start(WorkerInfo{});
    ds.on_worker_start(WorkerInfo{});  // idempotent
    SampleBuffers buf(ds.schema());
    std::vector<std::vector<uint8_t>> out;
    const std::vector<int64_t> order = {5, 3, 30, 1, 0, 17, 22, 8, 9, 35, 2, 4, 6, 7, 10, 11, 12};
    for (size_t b = 0; b < order.size(); b += 4) {
      const auto batch = std::span<const int64_t>(order).subspan(b, std::min<size_t>(4, order.size() - b));
      ds.prefetch(batch);
      if (b + 4 < order.size()) ds.prefetch(std::span<const int64_t>(order).subspan(b + 4, std::min<size_t>(4, order.size() - b - 4)));
      for (int64_t i : batch) {
        auto w = buf.writer(i, /*epoch=*/2, /*seed=*/7);
        ds.get(static_cast<size_t>(i), w);
        auto img = buf.image();
        img.push_back(static_cast<uint8_t>(buf.label()));
        out.push_back(std::move(img));
      }
    }
    return out;
  };
  const auto train = Pipeline().random_resized_crop(24).random_horizontal_flip();
  const auto sync = run(0, 0, train);
  CHECK(run(3, 0, train) == sync);
  CHECK(run(2, 2, train) == sync);
  CHECK(run(1, 0, Pipeline::center(32, 28)) == run(0, 0, Pipeline::center(32, 28)));
  CHECK(sync[2].back() == 2);  // index 30 is in class c2

  // Float output: CHW, and exactly the normalised uint8 result.
  ImageFolderOptions o;
  o.reader_threads = 0;
  o.transform = Pipeline::center(32, 28).to_float();
  ImageFolder fds(t.path(), o);
  o.transform = Pipeline::center(32, 28);
  ImageFolder uds(t.path(), o);
  CHECK(fds.schema().fields[0].dtype == DType::kFloat32);
  CHECK(fds.schema().fields[0].shape == std::vector<int64_t>{3, 28, 28});
  SampleBuffers fb(fds.schema()), ub(uds.schema());
  auto fw = fb.writer(4);
  auto uw = ub.writer(4);
  fds.get(4, fw);
  uds.get(4, uw);
  const auto u8 = ub.image();
  const float* f = reinterpret_cast<const float*>(fb.fields[0].data());
  for (size_t px = 0; px < 28 * 28; px += 37) {
    for (size_t c = 0; c < 3; ++c) {
      CHECK(f[c * 28 * 28 + px] == Approx((u8[px * 3 + c] / 255.0f - kImageNetMean[c]) / kImageNetStd[c]));
    }
  }
}

TEST_CASE("ReadAhead is bounded, rethrows read errors, and stops promptly", "[threads]") {
  std::atomic<int> reads{0};
  auto read = [&](int64_t i) -> std::vector<uint8_t> {
    ++reads;
    if (i == 13) throw DecodeError("f13", "boom");
    return std::vector<uint8_t>(10, static_cast<uint8_t>(i));
  };
  {
    detail::ReadAhead ra(2, 4, 1 << 20, read);
    const std::vector<int64_t> two = {1, 13};
    ra.hint(two);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // both reads start
    auto one = ra.take(1);
    REQUIRE(one);
    CHECK((*one)[0] == 1);
    CHECK_THROWS_WITH(ra.take(13), Catch::Contains("f13: boom"));
    CHECK_FALSE(ra.take(99));  // never hinted: the caller reads it
    CHECK(ra.pending() == 0);
    const std::vector<int64_t> many = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    ra.hint(many);
    CHECK(ra.pending() <= 4);  // bounded: the oldest untaken hints are dropped
  }
  CHECK(reads.load() >= 2);
  {
    // The destructor stops the readers while reads are queued, and does not run them all.
    std::atomic<int> slow{0};
    {
      detail::ReadAhead ra(1, 100, 1 << 20, [&](int64_t) {
        ++slow;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return std::vector<uint8_t>(1);
      });
      std::vector<int64_t> idx(50);
      for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
      ra.hint(idx);
      // Destroyed once the first read runs, with 49 still queued behind it.
      for (int i = 0; i < 5000 && slow.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      REQUIRE(slow.load() >= 1);
    }
    CHECK(slow.load() < 5);  // the reads in flight finish; the queued ones never start
  }
  CHECK_THROWS_AS(detail::ReadAhead(0, 4, 100, [](int64_t) { return std::vector<uint8_t>{}; }), ConfigError);
}

TEST_CASE("ReadAhead steps aside while reads are fast, and reads ahead again once they are slow", "[threads]") {
  // Handing a page-cache read to a thread cost more than the read (two wake-ups: ~13% of a
  // 2-worker loader's throughput on the generated folder).
  std::atomic<int> delay_us{0};
  std::atomic<int> thread_reads{0};
  detail::ReadAhead ra(2, 64, 1 << 20, [&](int64_t i) {
    ++thread_reads;
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us.load()));
    return std::vector<uint8_t>(4, static_cast<uint8_t>(i));
  });
  CHECK_FALSE(ra.bypassing());  // it starts reading ahead: storage may be slow
  int64_t next = 0;
  auto one = [&] {  // what ImageDataset does per sample, hinting a few samples ahead
    const std::vector<int64_t> idx = {next, next + 1, next + 2, next + 3};
    ra.hint(idx);
    std::this_thread::sleep_for(std::chrono::microseconds(200));  // the decode
    auto got = ra.take(next);
    // The caller's own read takes delay_us (stated, not slept: a stall of a loaded machine
    // must not decide the test; the threads' reads are timed for real).
    if (!got) ra.note_read(std::chrono::microseconds(delay_us.load()));
    ++next;
    return got.has_value();
  };
  // Fast reads until it steps aside: kFastRun in a row at least (more if a thread's real read
  // stalled past kSlowRead on a busy machine), and a bound so a broken switch fails.
  auto until_bypassing = [&] {
    int by_threads = 0;
    for (int k = 0; k < 20 * detail::ReadAhead::kFastRun && !ra.bypassing(); ++k) by_threads += one();
    for (int k = 0; k < 8; ++k) by_threads += one();  // takes what was hinted before
    return by_threads;
  };
  int by_threads = 0;
  for (int k = 0; k < 30; ++k) by_threads += one();
  CHECK_FALSE(ra.bypassing());  // fast, but not yet kFastRun reads in a row
  by_threads += until_bypassing();
  CHECK(by_threads >= 1);          // the first reads went through the threads
  CHECK(ra.bypassing());           // fast reads: the caller reads itself now
  CHECK(ra.mean_read() < detail::ReadAhead::kBypassBelow);
  const int before = thread_reads.load();
  for (int k = 0; k < 20; ++k) CHECK_FALSE(one());
  CHECK(thread_reads.load() == before);  // no hint reached a thread
  CHECK(ra.pending() == 0);
  delay_us = 2000;                       // storage turns slow (2 ms a read)
  int resumed_at = -1;
  for (int k = 0; k < 20 && resumed_at < 0; ++k) {
    if (one()) resumed_at = k;
  }
  CHECK(resumed_at >= 0);  // reads go to the threads again
  CHECK(resumed_at < 5);
  CHECK_FALSE(ra.bypassing());
  // A hint made while bypassing is kept: when the first of its reads turns out slow, the
  // rest of it goes to the threads at once (before: the whole batch was read in get()).
  delay_us = 0;
  (void)until_bypassing();
  REQUIRE(ra.bypassing());
  const std::vector<int64_t> batch = {5000, 5001, 5002, 5003, 5004, 5005};
  ra.hint(batch);
  CHECK(ra.pending() == 0);
  CHECK_FALSE(ra.take(5000));                      // the caller reads it...
  ra.note_read(std::chrono::milliseconds(10));     // ...and it was slow
  CHECK_FALSE(ra.bypassing());
  CHECK_FALSE(ra.take(5001));                      // queued now, not started: the caller reads it
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (int64_t i : {5002, 5003, 5004, 5005}) {
    auto got = ra.take(i);
    REQUIRE(got);
    CHECK((*got)[0] == static_cast<uint8_t>(i));
  }
  // Mostly fast with a slow read every 40 (a mapped shard faulting in its next MiB): a mean
  // under the bar, but the slow reads are what read-ahead is for - it stays on.
  for (int k = 0; k < 3 * detail::ReadAhead::kFastRun; ++k) {
    ra.note_read(k % 40 == 39 ? std::chrono::milliseconds(10) : std::chrono::microseconds(5));
    REQUIRE_FALSE(ra.bypassing());
  }
}

TEST_CASE("FileListDataset parses TSV and CSV relative to the list", "[filelist]") {
  TempDir t;
  test::write_bytes(t / "img/a.jpg", tagged_jpeg(20));
  test::write_bytes(t / "img/b,c.jpg", tagged_jpeg(21));
  test::write_bytes(t / "abs.jpg", tagged_jpeg(22));
  {
    std::ofstream tsv(t / "list.tsv");
    tsv << "# comment\n\nimg/a.jpg\t3\r\nimg/b,c.jpg\t0\n" << t.path() << "/abs.jpg\t7\n";
    std::ofstream csv(t / "list.csv");
    csv << "path,label\nimg/a.jpg,1\n\"img/b,c.jpg\",2\n";
  }
  ImageDatasetOptions o;
  o.transform = Pipeline().center_crop(8);
  o.reader_threads = 0;
  FileListDataset tsv(t / "list.tsv", o);
  REQUIRE(tsv.size() == 3);
  CHECK(tsv.path(0) == t / "img/a.jpg");
  CHECK(tsv.path(1) == t / "img/b,c.jpg");
  CHECK(tsv.path(2) == t / "abs.jpg");
  CHECK(tsv.label(0) == 3);
  CHECK(tsv.num_classes() == 8);
  FileListDataset csv(t / "list.csv", o);
  REQUIRE(csv.size() == 2);
  CHECK(csv.path(1) == t / "img/b,c.jpg");
  CHECK(csv.label(1) == 2);
  SampleBuffers buf(csv.schema());
  auto w = buf.writer(1);
  csv.get(1, w);
  CHECK(std::abs(int(buf.image()[0]) - 21) <= 2);
  CHECK(buf.label() == 2);

  auto bad = [&](const std::string& text, const std::string& needle) {
    std::ofstream(t / "bad.txt") << text;
    CHECK_THROWS_WITH(FileListDataset(t / "bad.txt", o), Catch::Contains(needle));
  };
  bad("a.jpg\t1\nb.jpg\tx\n", "bad.txt:2: label 'x' is not an integer");
  bad("a.jpg 1\n", "bad.txt:1: no TAB or comma");
  bad("a.jpg,1\nb.jpg,-3\n", "bad.txt:2: label -3 is outside");
  bad("a.jpg,1\n,2\n", "bad.txt:2: empty path");
  bad("\"a.jpg,1\n", "bad.txt:1: unbalanced quotes");
  bad("# nothing\n", "lists no file");
  CHECK_THROWS_WITH(FileListDataset(t / "none.tsv", o), Catch::Contains("cannot open file list"));
}

TEST_CASE("a transform without a fixed output size is refused at construction", "[folder]") {
  TempDir t;
  test::write_bytes(t / "a/x.jpg", tagged_jpeg(1));
  ImageFolderOptions o;
  o.transform = Pipeline().resize(256);
  CHECK_THROWS_WITH(ImageFolder(t.path(), o), Catch::Contains("no fixed output size"));
}
