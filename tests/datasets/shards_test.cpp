// Packed shards: the index format (encode/decode, member header check, tar scan), Shards over
// ringloader-pack's output (the real binary) and over tars made by GNU tar, pack determinism,
// every kind of corruption as an error naming the shard and byte offset, and the DataLoader
// over Shards.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/fnv.hpp"
#include "datasets/detail/shard_format.hpp"
#include "datasets/file_list_dataset.hpp"
#include "datasets/image_folder.hpp"
#include "datasets/shard_writer.hpp"
#include "datasets/shards.hpp"
#include "loader/data_loader.hpp"
#include "tests/datasets/image_test_util.hpp"
#include "tests/examples/cli_test_util.hpp"
#include "tests/support/process_check.hpp"

using namespace ringloader;
using namespace ringloader::datasets;
using Catch::Contains;
using ringloader::test::SampleBuffers;
using ringloader::test::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kTar = RINGLOADER_TAR_BIN;

constexpr int kClasses = 3;
constexpr int kPerClass = 6;
constexpr size_t kSamples = kClasses * kPerClass;
const std::vector<std::string> kClassNames = {"cat", "dog", "eel"};

/// A distinct image for `seed` (w x h): a gradient with a seeded pattern, so every image
/// decodes to different pixels.
std::vector<uint8_t> picture(int seed, int w, int h) {
  return test::make_rgb(w, h, [seed](int x, int y) {
    const unsigned v = static_cast<unsigned>(x * 7 + y * 13 + seed * 31);
    return std::array<uint8_t, 3>{static_cast<uint8_t>(v), static_cast<uint8_t>(v * 3 + static_cast<unsigned>(seed)),
                                  static_cast<uint8_t>((x ^ y) * 5 + seed)};
  });
}

/// Encoded image number `i`: JPEG, every third one PNG; sizes vary.
std::pair<std::vector<uint8_t>, std::string> encoded(int i) {
  const int w = 40 + (i * 7) % 33, h = 30 + (i * 11) % 29;
  const auto px = picture(i, w, h);
  if (i % 3 == 2) return {test::encode_png(px, w, h), "png"};
  return {test::encode_jpeg(px, w, h, 92, TJSAMP_420), "jpg"};
}

/// ROOT/<cat|dog|eel>/img_NN.{jpg,png}: kClasses x kPerClass images.
void make_folder(const std::string& root) {
  for (int c = 0; c < kClasses; ++c) {
    for (int k = 0; k < kPerClass; ++k) {
      const int i = c * kPerClass + k;
      const auto [bytes, ext] = encoded(i);
      char name[32];
      std::snprintf(name, sizeof name, "img_%02d.%s", k, ext.c_str());
      test::write_bytes(root + "/" + kClassNames[static_cast<size_t>(c)] + "/" + name, bytes);
    }
  }
}

template <typename Options>
Options small_output() {
  Options o;
  o.transform = Pipeline::center(36, 28);
  return o;
}
constexpr size_t kImageBytes = 28 * 28 * 3;  // small_output()'s image

std::vector<uint8_t> pixels(ImageDataset& ds, size_t i) {
  SampleBuffers buf(ds.schema());
  auto w = buf.writer(static_cast<int64_t>(i));
  ds.get(i, w);
  return buf.image();
}

/// The source file named in Shards::path(i): "ROOT/shard-000001.tar@1536 (dog/img_03.jpg)".
std::string source_name(const Shards& ds, size_t i) {
  const std::string p = ds.path(i);
  const size_t open = p.rfind(" (");
  REQUIRE(open != std::string::npos);
  REQUIRE(p.back() == ')');
  return p.substr(open + 2, p.size() - open - 3);
}

std::string slurp(const std::string& path) { return test::slurp(path); }

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  REQUIRE(out.good());
}

detail::ShardIndex read_index(const std::string& path) {
  const auto bytes = test::read_bytes(path);
  return detail::decode_index(bytes, path);
}

test::RunResult run_tool(std::vector<std::string> argv) {
  const test::RunResult r = test::run(std::move(argv));
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.group_empty_after);
  return r;
}

/// GNU tar with `args` (after tar itself), from folder `dir`.
void gnu_tar(const std::string& dir, std::vector<std::string> args) {
  args.insert(args.begin(), {kTar, "-C", dir});
  const test::RunResult r = run_tool(args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
}

/// A folder of webdataset-style samples KEY.jpg/png + KEY.cls ("label\n") and a FileListDataset
/// list of the same images (the reference for pixels and labels).
struct LooseSamples {
  std::vector<std::string> members;  ///< in the order they go into the tar
  std::vector<int64_t> labels;
  std::string list;                  ///< path<TAB>label of each image, in sample order
};

LooseSamples make_loose(const std::string& dir, int count) {
  LooseSamples s;
  std::string tsv;
  for (int i = 0; i < count; ++i) {
    const auto [bytes, ext] = encoded(100 + i);
    char key[32];
    std::snprintf(key, sizeof key, "sample%03d", i);
    const int64_t label = (i * 5) % 4;
    test::write_bytes(dir + "/" + key + "." + ext, bytes);
    const std::string cls = std::to_string(label) + "\n";
    test::write_bytes(dir + "/" + key + ".cls", std::vector<uint8_t>(cls.begin(), cls.end()));
    s.members.push_back(std::string(key) + "." + ext);
    s.members.push_back(std::string(key) + ".cls");
    s.labels.push_back(label);
    tsv += dir + "/" + key + "." + ext + "\t" + std::to_string(label) + "\n";
  }
  s.list = dir + "/list.tsv";
  spit(s.list, tsv);
  return s;
}

/// Checks a Shards read of the loose samples against the FileListDataset of the same images.
void check_against_list(Shards& ds, const LooseSamples& s) {
  FileListDataset ref(s.list, small_output<ImageDatasetOptions>());
  REQUIRE(ds.size() == s.labels.size());
  REQUIRE(ref.size() == s.labels.size());
  CHECK(ds.classes() == std::vector<std::string>{"0", "1", "2", "3"});
  for (size_t i = 0; i < ds.size(); ++i) {
    CAPTURE(i, ds.path(i));
    CHECK(ds.label(i) == s.labels[i]);
    CHECK(pixels(ds, i) == pixels(ref, i));
  }
}

#ifdef RINGLOADER_PACK_BIN
const std::string kPack = RINGLOADER_PACK_BIN;

/// Runs ringloader-pack SRC OUT -q ARGS...; requires exit `expect`.
test::RunResult pack(const std::string& src, const std::string& out, std::vector<std::string> args = {}, int expect = 0) {
  std::vector<std::string> argv = {kPack, src, out, "-q"};
  argv.insert(argv.end(), args.begin(), args.end());
  const test::RunResult r = run_tool(argv);
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == expect);
  return r;
}

/// A packed copy of the test folder in several shards (about 4 images a shard).
struct Packed {
  TempDir dir;
  std::string src = dir / "photos";
  std::string out = dir / "packed";
  explicit Packed(std::vector<std::string> args = {"--shard-size", "16K"}) {
    make_folder(src);
    pack(src, out, args);
  }
  std::string shard(size_t s, const char* ext = "tar") const {
    char name[40];
    std::snprintf(name, sizeof name, "/shard-%06zu.%s", s, ext);
    return out + name;
  }
};

std::map<std::string, std::string> files_of(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out[e.path().filename().string()] = slurp(e.path().string());
  return out;
}
#endif

}  // namespace

TEST_CASE("shards: the index - encode/decode round trip, and every damage named", "[shards][format]") {
  detail::ShardIndex idx;
  idx.tar_bytes = 10240;
  idx.tar_digest = 0x1234567890abcdefULL;
  idx.dataset_id = 0xfeedULL;
  for (int i = 0; i < 3; ++i) {
    detail::ShardEntry e;
    e.offset = 512 + static_cast<uint64_t>(i) * 2048;
    e.size = 1000 + static_cast<uint64_t>(i);
    e.label = i * 7;
    e.width = 10u + static_cast<uint32_t>(i);
    e.height = 20u + static_cast<uint32_t>(i);
    e.key = detail::key_of(static_cast<uint64_t>(i));
    e.ext = i == 1 ? "png" : "jpg";
    e.name = "class_0" + std::to_string(i) + "/img.jpg";
    idx.entries.push_back(e);
  }
  const std::vector<uint8_t> bytes = detail::encode_index(idx);
  const detail::ShardIndex back = detail::decode_index(bytes, "x.idx");
  CHECK(back.tar_bytes == idx.tar_bytes);
  CHECK(back.tar_digest == idx.tar_digest);
  CHECK(back.dataset_id == idx.dataset_id);
  REQUIRE(back.entries.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    const auto &a = back.entries[i], &b = idx.entries[i];
    CHECK(a.offset == b.offset);
    CHECK(a.size == b.size);
    CHECK(a.label == b.label);
    CHECK(a.width == b.width);
    CHECK(a.height == b.height);
    CHECK(a.key == b.key);
    CHECK(a.ext == b.ext);
    CHECK(a.name == b.name);
  }
  CHECK(detail::key_of(17) == "000000017");
  CHECK(detail::key_of(123456789012) == "123456789012");

  // An empty index is valid.
  detail::ShardIndex empty;
  CHECK(detail::decode_index(detail::encode_index(empty), "e.idx").entries.empty());

  const auto throws = [](std::vector<uint8_t> b, const std::string& words) {
    CAPTURE(words);
    try {
      (void)detail::decode_index(b, "dir/shard-000004.idx");
      FAIL("decoded a damaged index");
    } catch (const DecodeError& e) {
      CHECK(e.path() == "dir/shard-000004.idx");
      CHECK_THAT(std::string(e.what()), Contains("dir/shard-000004.idx") && Contains(words));
    }
  };
  // Fixes the trailing checksum after an edit, so the check behind it is reached.
  const auto resum = [](std::vector<uint8_t> b) {
    const uint64_t sum = core::fnv1a64(std::string_view(reinterpret_cast<const char*>(b.data()), b.size() - 8));
    std::memcpy(b.data() + b.size() - 8, &sum, 8);
    return b;
  };
  throws({}, "cut off (0 bytes)");
  throws(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 20), "cut off (20 bytes)");
  throws(std::vector<uint8_t>(bytes.begin(), bytes.end() - 1), "cut off or damaged");
  auto longer = bytes;
  longer.push_back(0);
  throws(longer, "cut off or damaged");
  auto magic = bytes;
  magic[0] = 'X';
  throws(magic, "no RLSHIDX1 magic");
  auto version = bytes;
  version[8] = 2;
  throws(version, "version 2");
  auto flipped = bytes;
  flipped[60] ^= 0x01;  // inside entry 0
  throws(flipped, "checksum does not match");
  auto count = bytes;
  count[12] = 200;  // the header claims 200 entries
  throws(resum(count), "its header says");
  auto huge_strings = bytes;
  std::memset(huge_strings.data() + 40, 0xff, 8);  // strings_bytes near 2^64: no overflow
  throws(resum(huge_strings), "cut off or damaged");
  // Entry 2's key offset past the strings.
  auto key_off = bytes;
  const size_t entry2 = 48 + 2 * 56;
  const uint32_t far = 100000;
  std::memcpy(key_off.data() + entry2 + 32, &far, 4);
  throws(resum(key_off), "entry 2 names bytes past its end");
  auto key_len = bytes;
  const uint32_t wrap = 0xffffffffu;  // offset + length overflows 32 bits
  std::memcpy(key_len.data() + entry2 + 36, &wrap, 4);
  throws(resum(key_len), "entry 2 names bytes past its end");
  // Entries outside the tar.
  for (uint64_t off : {uint64_t{0}, uint64_t{100}, uint64_t{20000}, ~uint64_t{0}}) {
    CAPTURE(off);
    auto b = bytes;
    std::memcpy(b.data() + 48 + 56, &off, 8);  // entry 1's offset
    throws(resum(b), "entry 1 (000000001) lies outside its 10240-byte tar");
  }
  auto big = bytes;
  const uint64_t size = ~uint64_t{0} - 100;  // offset + size overflows
  std::memcpy(big.data() + 48 + 8, &size, 8);
  throws(resum(big), "entry 0 (000000000) lies outside");
}

TEST_CASE("shards: scan_tar and check_member_header on tars made by GNU tar", "[shards][format]") {
  TempDir t;
  const LooseSamples s = make_loose(t / "loose", 4);
  for (const std::string format : {"gnu", "posix", "ustar"}) {
    CAPTURE(format);
    const std::string tar = t / (format + ".tar");
    std::vector<std::string> args = {"--format=" + format, "-cf", tar};
    args.insert(args.end(), s.members.begin(), s.members.end());
    gnu_tar(t / "loose", args);
    const auto bytes = test::read_bytes(tar);
    const auto probe = [](std::span<const uint8_t> b, const std::string&) -> detail::ProbedSize {
      return {static_cast<uint32_t>(b.size()), 7};
    };
    const detail::ShardIndex idx = detail::scan_tar(bytes, tar, probe);
    CHECK(idx.tar_bytes == bytes.size());
    REQUIRE(idx.entries.size() == 4);
    for (size_t i = 0; i < 4; ++i) {
      const detail::ShardEntry& e = idx.entries[i];
      CAPTURE(i);
      const std::string image = s.members[2 * i];
      CHECK(e.key + "." + e.ext == image);
      CHECK(e.name == image);
      CHECK(e.label == s.labels[i]);
      const auto file = test::read_bytes(t / "loose/" + image);
      REQUIRE(e.size == file.size());
      CHECK(std::equal(file.begin(), file.end(), bytes.begin() + static_cast<long>(e.offset)));
      CHECK(e.width == file.size());  // what the probe said
      CHECK(e.height == 7);
      CHECK(detail::check_member_header(bytes, e.offset, e.size, image).empty());
      // Wrong name, wrong size, a place that is not after a header, past the end.
      CHECK_THAT(detail::check_member_header(bytes, e.offset, e.size, "other.jpg"),
                 Contains("its tar header names \"" + image + "\", the index \"other.jpg\""));
      CHECK_THAT(detail::check_member_header(bytes, e.offset, e.size + 1, image),
                 Contains("its tar header says " + std::to_string(e.size) + " bytes, the index " +
                          std::to_string(e.size + 1)));
      CHECK_THAT(detail::check_member_header(bytes, e.offset + 512, e.size - 512, image), Contains("no valid tar header"));
      CHECK_THAT(detail::check_member_header(bytes, bytes.size() - 10, 11, image), Contains("past the"));
      CHECK_THAT(detail::check_member_header(bytes, 100, 1, image), Contains("past the"));
    }
  }
}

TEST_CASE("shards: scan_tar groups samples by key, ignores other members, names bad samples", "[shards][format]") {
  TempDir t;
  const auto probe = [](std::span<const uint8_t>, const std::string&) -> detail::ProbedSize { return {0, 0}; };
  const auto write_text = [](const std::string& path, const std::string& text) {
    test::write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
  };
  const auto jpg = encoded(0).first;
  test::write_bytes(t / "d/v1.0/a.JPG", jpg);      // key "v1.0/a": up to the first '.' of the file name
  write_text(t / "d/v1.0/a.cls", " 3 \n");
  write_text(t / "d/v1.0/a.json", "{}");           // another field of the sample: ignored
  write_text(t / "d/README", "no extension");      // not a sample member
  write_text(t / "d/notes.txt", "not an image");   // neither image nor label: ignored
  fs::create_directories(t / "d/empty.dir");       // a directory member
  test::write_bytes(t / "d/z.png", encoded(2).first);
  write_text(t / "d/z.cls", "0");
  const std::string tar = t / "a.tar";
  gnu_tar(t / "d", {"--format=gnu", "--sort=name", "-cf", tar, "./README", "./v1.0", "./notes.txt", "./empty.dir", "./z.cls",
                   "./z.png"});
  const auto bytes = test::read_bytes(tar);
  const detail::ShardIndex idx = detail::scan_tar(bytes, tar, probe);
  REQUIRE(idx.entries.size() == 2);
  CHECK(idx.entries[0].key == "v1.0/a");
  CHECK(idx.entries[0].ext == "JPG");
  CHECK(idx.entries[0].name == "./v1.0/a.JPG");
  CHECK(idx.entries[0].label == 3);
  CHECK(idx.entries[1].key == "z");  // "./" dropped
  CHECK(idx.entries[1].ext == "png");
  CHECK(idx.entries[1].label == 0);  // the label came before the image
  for (const auto& e : idx.entries) {
    CHECK(detail::check_member_header(bytes, e.offset, e.size, e.key + "." + e.ext).empty());
  }

  const auto fails = [&](std::vector<std::string> members, const std::string& words) {
    CAPTURE(words);
    const std::string bad = t / "bad.tar";
    members.insert(members.begin(), {"--format=gnu", "-cf", bad});
    gnu_tar(t / "d", members);
    const auto b = test::read_bytes(bad);
    CHECK_THROWS_WITH(detail::scan_tar(b, bad, probe), Contains(bad) && Contains(words));
  };
  write_text(t / "d/nolabel.jpg", "x");
  const size_t png_blocks = (fs::file_size(t / "d/z.png") + 511) / 512;
  fails({"z.png", "z.cls", "nolabel.jpg"},
        "sample \"nolabel\" (byte " + std::to_string(512 * (png_blocks + 3)) + ") has no .cls label");
  write_text(t / "d/noimage.cls", "1");
  fails({"noimage.cls"}, "sample \"noimage\" (byte 0) has no image member");
  write_text(t / "d/z.jpg", "x");
  fails({"z.png", "z.jpg", "z.cls"}, "sample \"z\" has two images");
  for (const std::string label : {"cat", "-1", "3000000000", "", "1 2", "0x1"}) {
    write_text(t / "d/w.cls", label);
    fails({"z.png", "w.cls", "z.cls"}, "member \"w.cls\" is not a class number");
  }
  // A cut-off tar, wherever the cut: inside a header, inside a member's data, or between two
  // members (no end-of-archive block: a clean end to libarchive, samples lost without a word).
  const auto whole = test::read_bytes(tar);
  REQUIRE(whole.size() > 1536 + 1024);
  CHECK(std::all_of(whole.end() - 1024, whole.end(), [](uint8_t c) { return c == 0; }));
  for (size_t cut : {size_t{512}, size_t{700}, size_t{1024}, size_t{1100}, size_t{1536}, whole.size() / 2,
                     whole.size() / 2 / 512 * 512}) {
    CAPTURE(cut);
    const std::vector<uint8_t> b(whole.begin(), whole.begin() + static_cast<long>(cut));
    try {
      (void)detail::scan_tar(b, tar, probe);
    } catch (const DecodeError& e) {
      CHECK(e.path() == tar);
      CHECK_THAT(e.reason(), Contains("byte") && (Contains("cut off") || Contains("cut-off")));
      if (cut == 1024 || cut == 1536) CHECK_THAT(e.reason(), Contains("cut off at byte " + std::to_string(cut)));
      continue;
    }
    FAIL("a cut-off tar scanned without error");
  }
  // One end-of-archive block is enough (GNU tar reads such a tar), none is not.
  CHECK(detail::scan_tar(std::span<const uint8_t>(whole.data(), whole.size() - 512), tar, probe).entries.size() == 2);
  CHECK_THROWS_WITH(detail::scan_tar(std::vector<uint8_t>(whole.begin(), whole.begin() + 100), tar, probe),
                    Contains(tar) && Contains("not a tar archive"));
  const std::string junk = "this is not a tar archive at all, just some text of some length";
  const std::vector<uint8_t> jb(junk.begin(), junk.end());
  CHECK_THROWS_AS(detail::scan_tar(jb, "junk.tar", probe), DecodeError);
}

TEST_CASE("shards: a tar cut inside a GNU long-name record is an error naming the byte, not a crash",
          "[shards][format]") {
  // libarchive fails such a tar without a message (a null error string): found by the fuzzer.
  TempDir t;
  const auto png = encoded(2).first;
  const std::string key = std::string(120, 'k');
  test::write_bytes(t / "d/a.png", png);
  test::write_bytes(t / "d/a.cls", {'1'});
  test::write_bytes(t / ("d/" + key + ".png"), png);
  test::write_bytes(t / ("d/" + key + ".cls"), {'2'});
  const std::string tar = t / "long.tar";
  gnu_tar(t / "d", {"--format=gnu", "-cf", tar, "a.png", "a.cls", key + ".png", key + ".cls"});
  const std::string whole = slurp(tar);
  const size_t longlink = whole.find("././@LongLink");
  REQUIRE(longlink != std::string::npos);
  REQUIRE(longlink % 512 == 0);
  const auto probe = [](std::span<const uint8_t>, const std::string&) -> detail::ProbedSize { return {0, 0}; };
  CHECK(detail::scan_tar(test::read_bytes(tar), tar, probe).entries.size() == 2);
  for (const size_t cut : {longlink + 100, longlink + 512, longlink + 600, longlink + 1024, longlink + 1100}) {
    CAPTURE(cut);
    const std::string b = whole.substr(0, cut);
    const std::vector<uint8_t> bytes(b.begin(), b.end());
    try {
      (void)detail::scan_tar(bytes, tar, probe);
      FAIL("a cut-off tar scanned without error");
    } catch (const DecodeError& e) {
      CHECK(e.path() == tar);
      CHECK_THAT(e.reason(), Contains("byte " + std::to_string(longlink)) || Contains("byte " + std::to_string(cut)));
    }
    spit(tar, b);
    CHECK_THROWS_WITH(Shards(tar), Contains(tar) && Contains("byte"));
  }
}

TEST_CASE("shards: Shards reads a tar made by GNU tar - scanned at open, and through its index", "[shards]") {
  TempDir t;
  const LooseSamples s = make_loose(t / "loose", 7);
  for (const std::string format : {"gnu", "posix"}) {
    CAPTURE(format);
    const std::string dir = t / ("shards-" + format);
    fs::create_directories(dir);
    const std::string tar = dir + "/data-000.tar";
    std::vector<std::string> args = {"--format=" + format, "-cf", tar};
    args.insert(args.end(), s.members.begin(), s.members.end());
    gnu_tar(t / "loose", args);
    const std::string idx_path = dir + "/data-000.idx";
    {
      Shards ds(tar, small_output<ShardsOptions>());  // one .tar, no index: scanned
      CHECK_FALSE(ds.packed());
      CHECK(ds.dataset_id().empty());
      CHECK(ds.shard_sizes() == std::vector<size_t>{7});
      CHECK(ds.shard_paths() == std::vector<std::string>{tar});
      CHECK(ds.total_bytes() == fs::file_size(tar));
      CHECK_THAT(ds.path(0), Contains(tar + "@") && Contains("(sample000."));
      check_against_list(ds, s);
      CHECK_FALSE(fs::exists(idx_path));  // reading writes nothing
    }
#ifdef RINGLOADER_PACK_BIN
    {
      const test::RunResult r = run_tool({kPack, "--index", tar});
      REQUIRE(r.exit_code == 0);
      CHECK_THAT(r.err, Contains("7 samples indexed"));
      REQUIRE(fs::exists(idx_path));
      const detail::ShardIndex idx = read_index(idx_path);
      CHECK(idx.tar_bytes == fs::file_size(tar));
      const std::string tar_bytes = slurp(tar);
      CHECK(idx.tar_digest == core::fnv1a64(tar_bytes));
      REQUIRE(idx.entries.size() == 7);
      CHECK(idx.entries[0].width == static_cast<uint32_t>(40 + (100 * 7) % 33));  // probed
      CHECK(idx.entries[0].height == static_cast<uint32_t>(30 + (100 * 11) % 29));
      Shards ds(dir, small_output<ShardsOptions>());  // a folder of .tar: the .idx beside it is used
      check_against_list(ds, s);
      // The index is what is read: a damaged one is an error at open, not a silent rescan.
      std::string damaged = slurp(idx_path);
      damaged[damaged.size() / 2] ^= 0x40;
      spit(idx_path, damaged);
      CHECK_THROWS_WITH(Shards(dir, small_output<ShardsOptions>()), Contains(idx_path) && Contains("checksum"));
    }
#endif
  }
}

TEST_CASE("shards: an empty image member in a foreign tar is one bad sample, scanned or indexed", "[shards]") {
  TempDir t;
  const LooseSamples s = make_loose(t / "loose", 3);
  test::write_bytes(t / ("loose/" + s.members[2]), {});  // sample 1's image: an empty file
  const std::string tar = t / "shards/a.tar";
  fs::create_directories(t / "shards");
  std::vector<std::string> args = {"--format=gnu", "-cf", tar};
  args.insert(args.end(), s.members.begin(), s.members.end());
  gnu_tar(t / "loose", args);
  const auto bytes = test::read_bytes(tar);
  const auto probe = [](std::span<const uint8_t>, const std::string&) -> detail::ProbedSize { return {0, 0}; };
  const detail::ShardIndex idx = detail::scan_tar(bytes, tar, probe);
  REQUIRE(idx.entries.size() == 3);
  for (const auto& e : idx.entries) {
    CAPTURE(e.key);
    CHECK(e.offset >= 512);
    CHECK(detail::check_member_header(bytes, e.offset, e.size, e.key + "." + e.ext).empty());
  }
  CHECK(idx.entries[1].size == 0);
  // The index of such a tar reads back.
  CHECK(detail::decode_index(detail::encode_index(idx), "a.idx").entries.size() == 3);

  const auto check = [&](Shards& ds) {
    REQUIRE(ds.size() == 3);
    CHECK(pixels(ds, 0).size() == kImageBytes);
    CHECK(pixels(ds, 2).size() == kImageBytes);
    CHECK_THROWS_WITH(pixels(ds, 1), Contains(tar + "@" + std::to_string(idx.entries[1].offset)) && Contains("empty file"));
  };
  Shards scanned(tar, small_output<ShardsOptions>());
  check(scanned);
#ifdef RINGLOADER_PACK_BIN
  REQUIRE(run_tool({kPack, "-q", "--index", tar}).exit_code == 0);
  Shards indexed(t / "shards", small_output<ShardsOptions>());
  check(indexed);
#endif
}

TEST_CASE("shards: long member paths and names a byte around the 100-byte ustar name field", "[shards]") {
  TempDir t;
  // Keys whose "KEY.ext" (and "./KEY.ext") straddle the 100 bytes of a ustar name.
  std::vector<std::string> members;
  std::string tsv;
  int i = 0;
  for (size_t len : {95u, 96u, 97u, 98u, 99u, 100u, 101u, 140u, 260u}) {
    // A folder then a file name, the whole "KEY.jpg" exactly `len` bytes.
    const std::string folder = "f" + std::string(len / 2, 'd') + "/";
    const std::string key = folder + std::string(len - folder.size() - 4, 'k');
    REQUIRE((key + ".jpg").size() == len);
    const auto bytes = encoded(200 + i).first;
    test::write_bytes(t / ("loose/" + key + ".jpg"), bytes);
    const std::string cls = std::to_string(i % 3);
    test::write_bytes(t / ("loose/" + key + ".cls"), std::vector<uint8_t>(cls.begin(), cls.end()));
    members.push_back(key + ".jpg");
    members.push_back(key + ".cls");
    tsv += t / ("loose/" + key + ".jpg") + "\t" + cls + "\n";
    ++i;
  }
  spit(t / "list.tsv", tsv);
  FileListDataset ref(t / "list.tsv", small_output<ImageDatasetOptions>());
  for (const std::string format : {"gnu", "posix"}) {
    for (const bool dot : {false, true}) {  // "tar -C dir ./x" names members "./x"
      CAPTURE(format, dot);
      const std::string tar = t / ("long-" + format + (dot ? "-dot" : "") + ".tar");
      std::vector<std::string> args = {"--format=" + format, "-cf", tar};
      for (const auto& m : members) args.push_back(dot ? "./" + m : m);
      gnu_tar(t / "loose", args);
      Shards ds(tar, small_output<ShardsOptions>());
      REQUIRE(ds.size() == ref.size());
      for (size_t k = 0; k < ds.size(); ++k) {
        CAPTURE(k, ds.path(k));
        CHECK(ds.label(k) == ref.label(k));
        CHECK(pixels(ds, k) == pixels(ref, k));
      }
    }
  }
}

#ifdef RINGLOADER_PACK_BIN

TEST_CASE("shards: ringloader-pack round trip - Shards gives ImageFolder's samples, labels, classes and pixels",
          "[shards][pack]") {
  Packed p;
  ImageFolder folder(p.src, small_output<ImageFolderOptions>());
  REQUIRE(folder.size() == kSamples);
  Shards ds(p.out, small_output<ShardsOptions>());
  CHECK(ds.packed());
  CHECK(ds.root() == p.out);
  CHECK(ds.classes() == folder.classes());
  CHECK(ds.classes() == kClassNames);
  REQUIRE(ds.size() == kSamples);
  CHECK(ds.shard_sizes().size() >= 3);  // --shard-size 16K: several shards
  size_t total = 0;
  for (size_t n : ds.shard_sizes()) total += n;
  CHECK(total == kSamples);
  CHECK(ds.schema().fields[0].shape == folder.schema().fields[0].shape);

  // The manifest says what was packed.
  const nlohmann::json m = nlohmann::json::parse(slurp(p.out + "/manifest.json"));
  CHECK(m["format"] == "ringloader-shards");
  CHECK(m["samples"] == kSamples);
  CHECK(m["classes"] == nlohmann::json(kClassNames));
  CHECK(m["class_counts"] == nlohmann::json(std::vector<int>(kClasses, kPerClass)));
  CHECK(m["shards"].size() == ds.shard_sizes().size());
  CHECK(m["reencoded"] == 0);
  CHECK(m["bad_files"] == 0);
  CHECK(ds.dataset_id() == m["dataset_id"].get<std::string>());
  CHECK_FALSE(fs::exists(p.out + "/bad_files.tsv"));

  std::map<std::string, size_t> in_folder;
  for (size_t j = 0; j < folder.size(); ++j) in_folder[folder.path(j).substr(p.src.size() + 1)] = j;
  std::set<std::string> seen;
  std::vector<size_t> order;
  for (size_t i = 0; i < ds.size(); ++i) {
    const std::string name = source_name(ds, i);
    CAPTURE(i, name);
    REQUIRE(in_folder.count(name) == 1);
    CHECK(seen.insert(name).second);  // once
    const size_t j = in_folder[name];
    order.push_back(j);
    CHECK(ds.label(i) == folder.label(j));
    CHECK(pixels(ds, i) == pixels(folder, j));
  }
  CHECK(seen.size() == kSamples);
  std::vector<size_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  CHECK(order != sorted);  // shuffled by default: shards mix the classes

  // Stored unchanged: each member's bytes are the source file's, the index knows its size and
  // dimensions, and the .cls member holds the label (what the webdataset library reads).
  size_t sample = 0;
  for (size_t s = 0; s < ds.shard_sizes().size(); ++s) {
    const detail::ShardIndex idx = read_index(p.shard(s, "idx"));
    const std::string tar = slurp(p.shard(s));
    CHECK(idx.tar_bytes == tar.size());
    CHECK(idx.tar_digest == core::fnv1a64(tar));
    CHECK(core::hex64(idx.dataset_id) == ds.dataset_id());
    CHECK(m["shards"][s]["samples"] == idx.entries.size());
    CHECK(m["shards"][s]["digest"] == core::hex64(idx.tar_digest));
    CHECK(tar.size() % 512 == 0);
    for (const detail::ShardEntry& e : idx.entries) {
      CAPTURE(s, e.key, e.name);
      CHECK(e.key == detail::key_of(sample));
      const std::string file = slurp(p.src + "/" + e.name);
      CHECK(tar.substr(e.offset, e.size) == file);
      CHECK(e.ext == fs::path(e.name).extension().string().substr(1));
      const ImageInfo info = ImageDecoder().probe(test::read_bytes(p.src + "/" + e.name), e.name);
      CHECK(e.width == static_cast<uint32_t>(info.width));
      CHECK(e.height == static_cast<uint32_t>(info.height));
      CHECK(e.label == ds.label(sample));
      ++sample;
    }
  }
  CHECK(sample == kSamples);

  // GNU tar reads the shards: KEY.ext then KEY.cls with the label as text.
  TempDir x;
  gnu_tar(x.path(), {"-xf", p.shard(0)});
  const detail::ShardIndex idx0 = read_index(p.shard(0, "idx"));
  for (const detail::ShardEntry& e : idx0.entries) {
    CHECK(slurp(x / (e.key + "." + e.ext)) == slurp(p.src + "/" + e.name));
    CHECK(slurp(x / (e.key + ".cls")) == std::to_string(e.label));
  }
  size_t extracted = 0;
  for (const auto& e : fs::directory_iterator(x.path())) extracted += e.is_regular_file() ? 1 : 0;
  CHECK(extracted == 2 * idx0.entries.size());

  // --order source keeps the folder's order.
  pack(p.src, p.dir / "in-order", {"--order", "source", "--shard-size", "16K"});
  Shards in_order(p.dir / "in-order", small_output<ShardsOptions>());
  REQUIRE(in_order.size() == kSamples);
  for (size_t i = 0; i < kSamples; ++i) CHECK(source_name(in_order, i) == folder.path(i).substr(p.src.size() + 1));
}

TEST_CASE("shards: ringloader-pack --max-short-side re-encodes the larger images only", "[shards][pack]") {
  Packed p({"--max-short-side", "40", "--quality", "80"});
  ImageFolder folder(p.src, small_output<ImageFolderOptions>());
  Shards ds(p.out, small_output<ShardsOptions>());
  REQUIRE(ds.size() == kSamples);
  const nlohmann::json m = nlohmann::json::parse(slurp(p.out + "/manifest.json"));
  size_t larger = 0;
  for (size_t j = 0; j < folder.size(); ++j) {
    const ImageInfo info = ImageDecoder().probe(test::read_bytes(folder.path(j)), folder.path(j));
    larger += std::min(info.width, info.height) > 40 ? 1 : 0;
  }
  REQUIRE(larger > 0);
  REQUIRE(larger < kSamples);
  CHECK(m["reencoded"] == larger);
  const detail::ShardIndex idx = read_index(p.shard(0, "idx"));
  size_t reencoded = 0;
  for (const detail::ShardEntry& e : idx.entries) {
    CHECK(std::min(e.width, e.height) <= 40u);
    const std::string src_file = slurp(p.src + "/" + e.name);
    const ImageInfo info = ImageDecoder().probe(test::read_bytes(p.src + "/" + e.name), e.name);
    if (std::min(info.width, info.height) > 40) {
      ++reencoded;
      CHECK(e.ext == "jpg");
      CHECK(std::min(e.width, e.height) == 40u);
    } else {
      CHECK(e.width == static_cast<uint32_t>(info.width));
    }
  }
  CHECK(reencoded > 0);
  for (size_t i = 0; i < ds.size(); ++i) CHECK(pixels(ds, i).size() == kImageBytes);
}

TEST_CASE("shards: ringloader-pack is deterministic - the same bytes twice and for any --jobs", "[shards][pack]") {
  TempDir t;
  make_folder(t / "photos");
  pack(t / "photos", t / "a", {"--shard-size", "16K", "--jobs", "1", "--seed", "9"});
  pack(t / "photos", t / "b", {"--shard-size", "16K", "--jobs", "1", "--seed", "9"});
  pack(t / "photos", t / "c", {"--shard-size", "16K", "--jobs", "3", "--seed", "9"});
  pack(t / "photos", t / "d", {"--shard-size", "16K", "--seed", "10"});
  const auto a = files_of(t / "a");
  CHECK(a.size() >= 7);  // manifest + at least 3 tar/idx pairs
  CHECK(a.count("manifest.json") == 1);
  CHECK(files_of(t / "b") == a);
  CHECK(files_of(t / "c") == a);
  const auto d = files_of(t / "d");  // another seed: another order, another dataset id
  CHECK(d.at("manifest.json") != a.at("manifest.json"));
  CHECK(d.at("shard-000000.tar") != a.at("shard-000000.tar"));
  // Nothing left beside OUT.
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(t.path())) names.insert(e.path().filename().string());
  CHECK(names == std::set<std::string>{"a", "b", "c", "d", "photos"});
}

TEST_CASE("shards: ShardWriter writes the bytes ringloader-pack writes, reports progress, never replaces OUT",
          "[shards][pack]") {
  TempDir t;
  make_folder(t / "photos");
  pack(t / "photos", t / "cli", {"--shard-size", "16K", "--seed", "3", "--max-short-side", "40", "--quality", "80"});
  ShardWriterOptions o;
  o.shard_size = 16 << 10;
  o.seed = 3;
  o.max_short_side = 40;
  o.quality = 80;
  o.jobs = 2;
  std::vector<PackProgress> seen;
  o.progress = [&](const PackProgress& p) { seen.push_back(p); };
  const PackResult r = ShardWriter(t / "lib", o).write(t / "photos");
  CHECK(files_of(t / "lib") == files_of(t / "cli"));
  CHECK(r.images == kSamples);
  CHECK(r.total == kSamples);
  CHECK(r.bad_files.empty());
  CHECK(r.reencoded > 0);
  CHECK(r.shards == Shards(t / "lib", small_output<ShardsOptions>()).shard_sizes().size());
  REQUIRE_FALSE(seen.empty());
  CHECK(seen.back().last);
  CHECK(seen.back().done == kSamples);
  CHECK(seen.back().shards == r.shards);
  // OUT exists: a ConfigError naming it, and nothing touched.
  CHECK_THROWS_AS(ShardWriter(t / "lib", o).write(t / "photos"), ConfigError);
  CHECK(files_of(t / "lib") == files_of(t / "cli"));
  // Interrupted: what the check throws comes out, and nothing is left beside OUT.
  o.interrupt_check = [] { throw std::runtime_error("stop"); };
  CHECK_THROWS_WITH(ShardWriter(t / "stopped", o).write(t / "photos"), "stop");
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(t.path())) names.insert(e.path().filename().string());
  CHECK(names == std::set<std::string>{"cli", "lib", "photos"});
}

TEST_CASE("shards: a truncated shard is an error at open naming the shard", "[shards][corrupt]") {
  Packed p;
  const size_t last = Shards(p.out, small_output<ShardsOptions>()).shard_sizes().size() - 1;
  for (const size_t s : {size_t{0}, last}) {
    CAPTURE(s);
    const std::string tar = p.shard(s);
    const std::string whole = slurp(tar);
    for (const size_t cut : {size_t{1}, size_t{512}, whole.size() / 2, whole.size() - 1}) {
      CAPTURE(cut);
      spit(tar, whole.substr(0, whole.size() - cut));
      try {
        Shards ds(p.out, small_output<ShardsOptions>());
        FAIL("opened a truncated shard");
      } catch (const DecodeError& e) {
        CHECK(e.path() == tar);
        CHECK_THAT(e.reason(), Contains("truncated shard: it ends at byte " + std::to_string(whole.size() - cut)));
        CHECK_THAT(e.reason(), Contains("says " + std::to_string(whole.size())));
      }
    }
    spit(tar, "");  // empty
    CHECK_THROWS_WITH(Shards(p.out, small_output<ShardsOptions>()), Contains(tar) && Contains("empty shard"));
    fs::remove(tar);  // gone
    CHECK_THROWS_WITH(Shards(p.out, small_output<ShardsOptions>()), Contains(tar) && Contains("cannot open shard"));
    spit(tar, whole);
    CHECK(Shards(p.out, small_output<ShardsOptions>()).size() == kSamples);
  }
  // Without an index the scan finds where it was cut.
  TempDir t;
  const LooseSamples s = make_loose(t / "loose", 5);
  const std::string tar = t / "cut.tar";
  std::vector<std::string> args = {"--format=gnu", "-cf", tar};
  args.insert(args.end(), s.members.begin(), s.members.end());
  gnu_tar(t / "loose", args);
  const std::string whole = slurp(tar);
  spit(tar, whole.substr(0, 512 * 3 + 100));  // inside the first image's data
  CHECK_THROWS_WITH(Shards(tar, small_output<ShardsOptions>()), Contains(tar) && Contains("cut off"));
}

TEST_CASE("shards: a shard truncated after open is a DecodeError naming it, in the process and in workers, never SIGBUS",
          "[shards][corrupt]") {
  // A shard overwritten in place while an epoch reads it: a mapped shard raised SIGBUS in the
  // reading process (the training process itself with num_workers = 0).
  Packed p;
  auto ds = std::make_shared<Shards>(p.out, small_output<ShardsOptions>());
  const size_t last_shard = ds->shard_sizes().size() - 1;
  const std::string tar = p.shard(last_shard);
  const size_t first_of_last = ds->size() - ds->shard_sizes()[last_shard];
  REQUIRE(::truncate(tar.c_str(), 700) == 0);  // inside the first member's bytes
  try {
    (void)pixels(*ds, ds->size() - 1);
    FAIL("read a sample past the end of its shard");
  } catch (const DecodeError& e) {
    CHECK_THAT(std::string(e.what()), Contains(tar + "@"));
    CHECK_THAT(e.reason(), Contains("the shard ends at byte 700") && Contains("changed while being read"));
  }
  const int workers = GENERATE(0, 2);
  CAPTURE(workers);
  loader::LoaderOptions o;
  o.batch_size = 4;
  o.num_workers = workers;
  o.on_error = loader::OnError::kSkip;
  loader::DataLoader l(ds, o);
  std::multiset<int64_t> got;
  for (auto& b : l) {
    for (int64_t i : b.indices()) got.insert(i);
  }
  CHECK(got.size() == first_of_last);  // every sample of the earlier shards, none of the cut one
  CHECK(l.skipped().size() == ds->shard_sizes()[last_shard]);
  for (const auto& k : l.skipped()) {
    CHECK(k.index >= static_cast<int64_t>(first_of_last));
    CHECK_THAT(k.path, Contains(tar + "@"));
    CHECK_THAT(k.reason, Contains("the shard ends at byte"));
  }
  CHECK(l.stats().worker_deaths == 0);
}

TEST_CASE("shards: an index that does not match its tar is an error naming the shard and byte offset", "[shards][corrupt]") {
  SECTION("the indexes of two packed shards swapped") {
    Packed p;
    std::string a = slurp(p.shard(0, "idx")), b = slurp(p.shard(1, "idx"));
    spit(p.shard(0, "idx"), b);
    spit(p.shard(1, "idx"), a);
    try {
      Shards ds(p.out, small_output<ShardsOptions>());
      FAIL("opened a shard with another shard's index");
    } catch (const DecodeError& e) {
      CHECK(e.path() == p.shard(0));
      // A tar shorter than its index says reads as a truncated shard; the index is named.
      CHECK_THAT(e.reason(),
                 Contains("does not match this tar") || (Contains("truncated shard") && Contains(p.shard(0, "idx"))));
      CHECK_THAT(e.reason(), Contains("byte"));
    }
  }
  SECTION("two packed shards of the same size with their indexes swapped: caught by the member headers") {
    // Every image the same size: shards of equal byte length, so only the headers tell.
    TempDir t;
    for (int i = 0; i < 12; ++i) {
      const auto px = picture(i, 32, 32);
      test::write_bytes(t / ("photos/c" + std::to_string(i % 2) + "/" + std::to_string(i) + ".png"),
                        test::encode_png(px, 32, 32));
    }
    pack(t / "photos", t / "packed", {"--shard-size", "1", "--order", "source"});  // one sample a shard
    const auto idx0 = read_index(t / "packed/shard-000000.idx");
    size_t other = 0;
    for (size_t s = 1; s < 12 && other == 0; ++s) {
      char name[40];
      std::snprintf(name, sizeof name, "packed/shard-%06zu.idx", s);
      if (read_index(t / name).tar_bytes == idx0.tar_bytes) other = s;
    }
    REQUIRE(other != 0);  // one PNG pads to the same 512-byte blocks as another
    char name[40];
    std::snprintf(name, sizeof name, "packed/shard-%06zu.idx", other);
    const std::string a = slurp(t / "packed/shard-000000.idx"), b = slurp(t / name);
    spit(t / "packed/shard-000000.idx", b);
    spit(t / name, a);
    try {
      Shards ds(t / "packed", small_output<ShardsOptions>());
      FAIL("opened a shard with another shard's index");
    } catch (const DecodeError& e) {
      CHECK(e.path() == t / "packed/shard-000000.tar");
      CHECK_THAT(e.reason(), Contains("sample at byte 512: ") && Contains("does not match this tar"));
    }
  }
  SECTION("a foreign tar rebuilt after it was indexed") {
    TempDir t;
    const LooseSamples s = make_loose(t / "loose", 6);
    fs::create_directories(t / "shards");
    const std::string tar = t / "shards/a.tar";
    std::vector<std::string> args = {"--format=gnu", "-cf", tar};
    args.insert(args.end(), s.members.begin(), s.members.end());
    gnu_tar(t / "loose", args);
    REQUIRE(run_tool({kPack, "-q", "--index", tar}).exit_code == 0);
    REQUIRE(Shards(t / "shards", small_output<ShardsOptions>()).size() == 6);
    // The same members, the middle samples in another order: same size, same first and last
    // sample, so open succeeds and the per-sample header check must catch it.
    std::vector<std::string> reordered = {"--format=gnu", "-cf", tar};
    reordered.insert(reordered.end(), s.members.begin(), s.members.begin() + 2);
    for (size_t k = 4; k >= 1; --k) {
      reordered.push_back(s.members[2 * k]);
      reordered.push_back(s.members[2 * k + 1]);
    }
    reordered.insert(reordered.end(), s.members.end() - 2, s.members.end());
    const auto before = fs::file_size(tar);
    gnu_tar(t / "loose", reordered);
    REQUIRE(fs::file_size(tar) == before);
    Shards ds(t / "shards", small_output<ShardsOptions>());
    CHECK(pixels(ds, 0).size() > 0);
    CHECK(pixels(ds, 5).size() > 0);
    const detail::ShardIndex idx = read_index(t / "shards/a.idx");
    size_t caught = 0;
    for (size_t i = 1; i < 5; ++i) {
      CAPTURE(i);
      try {
        (void)pixels(ds, i);
      } catch (const DecodeError& e) {
        ++caught;
        CHECK_THAT(e.path(), Contains(tar + "@" + std::to_string(idx.entries[i].offset)));
        CHECK_THAT(e.reason(), Contains("does not match this tar"));
      }
    }
    CHECK(caught >= 3);  // sample 2 of 4 may land where it was (the middle of the reversal)
    // A sample fewer: caught at open, by the size or by the last sample's header (GNU tar pads
    // to 10 KiB records, so the size may not change).
    std::vector<std::string> fewer = {"--format=gnu", "-cf", tar};
    fewer.insert(fewer.end(), s.members.begin(), s.members.end() - 2);
    gnu_tar(t / "loose", fewer);
    CHECK_THROWS_WITH(Shards(t / "shards", small_output<ShardsOptions>()),
                      Contains(tar) && Contains("does not match this tar"));
    // Another sample appended, the tar now larger than indexed.
    std::vector<std::string> more = {"--format=gnu", "-cf", tar};
    more.insert(more.end(), s.members.begin(), s.members.end());
    for (int k = 0; k < 8; ++k) more.insert(more.end(), s.members.begin(), s.members.begin() + 2);
    gnu_tar(t / "loose", more);
    CHECK_THROWS_WITH(Shards(t / "shards", small_output<ShardsOptions>()),
                      Contains(tar) && Contains("the index does not match this tar"));
  }
}

TEST_CASE("shards: a damaged member header is a DecodeError naming shard@offset - raised, or skipped by the loader",
          "[shards][corrupt]") {
  Packed p;
  const detail::ShardIndex idx = read_index(p.shard(1, "idx"));
  REQUIRE(idx.entries.size() >= 3);
  const detail::ShardEntry& victim = idx.entries[1];  // not first or last: those are checked at open
  std::string tar = slurp(p.shard(1));
  const size_t header = victim.offset - 512;
  const std::string at = p.shard(1) + "@" + std::to_string(victim.offset);

  SECTION("bytes flipped in the header: its checksum fails") {
    tar[header + 3] ^= 0x11;     // the name
    tar[header + 300] ^= 0x22;   // ustar fields
  }
  SECTION("the name changed and the checksum fixed: the name does not match") {
    tar[header + 2] = tar[header + 2] == '9' ? '8' : '9';
    unsigned sum = 0;
    for (size_t i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : static_cast<uint8_t>(tar[header + i]);
    char field[8];
    std::snprintf(field, sizeof field, "%06o", sum);
    std::memcpy(&tar[header + 148], field, 7);
    tar[header + 155] = ' ';
  }
  spit(p.shard(1), tar);

  Shards ds(p.out, small_output<ShardsOptions>());  // open does not read every header
  size_t bad = ds.size();
  for (size_t i = 0; i < ds.size(); ++i) {
    if (ds.path(i).rfind(at + " (", 0) == 0) bad = i;
  }
  REQUIRE(bad < ds.size());
  try {
    (void)pixels(ds, bad);
    FAIL("read a sample behind a damaged header");
  } catch (const DecodeError& e) {
    CHECK_THAT(std::string(e.what()), Contains(at));
    CHECK_THAT(e.reason(), Contains("tar header") && Contains("does not match this tar"));
  }
  for (size_t i = 0; i < ds.size(); ++i) {
    if (i != bad) CHECK(pixels(ds, i).size() == kImageBytes);
  }

  auto shared = std::make_shared<Shards>(p.out, small_output<ShardsOptions>());
  {
    loader::LoaderOptions o;
    o.batch_size = 4;
    o.num_workers = 2;
    o.seed = 3;
    o.shuffle = true;
    o.on_error = loader::OnError::kSkip;
    loader::DataLoader l(shared, o);
    std::multiset<int64_t> got;
    for (auto& b : l) {
      for (int64_t i : b.indices()) got.insert(i);
    }
    CHECK(got.size() == kSamples - 1);
    CHECK(got.count(static_cast<int64_t>(bad)) == 0);
    for (size_t i = 0; i < kSamples; ++i) {
      if (i != bad) CHECK(got.count(static_cast<int64_t>(i)) == 1);
    }
    REQUIRE(l.skipped().size() == 1);
    CHECK(l.skipped()[0].index == static_cast<int64_t>(bad));
    CHECK_THAT(l.skipped()[0].path, Contains(at));
    CHECK_THAT(l.skipped()[0].reason, Contains("does not match this tar"));
  }
  {
    loader::LoaderOptions o;  // on_error raise, the default
    o.batch_size = 4;
    o.num_workers = 2;
    loader::DataLoader l(shared, o);
    size_t errors = 0, delivered = 0;
    for (;;) {
      try {
        auto b = l.next();
        if (!b) break;
        delivered += b->size();
      } catch (const SampleError& e) {
        ++errors;
        CHECK(e.index() == static_cast<int64_t>(bad));
        CHECK_THAT(e.path(), Contains(at));
        CHECK_THAT(std::string(e.what()), Contains(at));
      }
    }
    CHECK(errors == 1);
    CHECK(delivered >= kSamples - 4);
  }
  CHECK(test::own_children().empty());
}

TEST_CASE("shards: a manifest from another pack, or a damaged one, is an error at open", "[shards][corrupt]") {
  Packed p;
  TempDir other;
  pack(p.src, other / "packed", {"--shard-size", "16K", "--seed", "77"});
  const std::string mine = slurp(p.out + "/manifest.json");
  spit(p.out + "/manifest.json", slurp(other / "packed/manifest.json"));
  try {
    Shards ds(p.out, small_output<ShardsOptions>());
    FAIL("opened shards with another pack's manifest");
  } catch (const DecodeError& e) {
    CHECK(e.path() == p.shard(0, "idx"));
    CHECK_THAT(e.reason(), Contains("belongs to another packed dataset"));
  }
  // An index from the other pack, beside a tar of the same size, under the right manifest.
  spit(p.out + "/manifest.json", mine);
  const auto edit = [&](const std::function<void(nlohmann::json&)>& f) {
    nlohmann::json m = nlohmann::json::parse(mine);
    f(m);
    spit(p.out + "/manifest.json", m.dump());
  };
  const std::string mpath = p.out + "/manifest.json";
  edit([](nlohmann::json& m) { m["format"] = "something-else"; });
  CHECK_THROWS_WITH(Shards(p.out), Contains(mpath) && Contains("not a ringloader-shards manifest"));
  edit([](nlohmann::json& m) { m["version"] = 2; });
  CHECK_THROWS_WITH(Shards(p.out), Contains(mpath) && Contains("manifest version 2"));
  edit([](nlohmann::json& m) { m["samples"] = m["samples"].get<int>() + 1; });
  CHECK_THROWS_WITH(Shards(p.out), Contains(mpath) && Contains("its shards hold " + std::to_string(kSamples)));
  edit([](nlohmann::json& m) { m["shards"][0]["samples"] = 1000; });
  CHECK_THROWS_WITH(Shards(p.out), Contains(p.shard(0)) && Contains("the manifest says 1000"));
  edit([](nlohmann::json& m) { m["classes"] = {"only", "two"}; });
  CHECK_THROWS_WITH(Shards(p.out), Contains("label 2, the manifest names 2 classes"));
  edit([](nlohmann::json& m) { m["dataset_id"] = "not hex"; });
  CHECK_THROWS_WITH(Shards(p.out), Contains(mpath) && Contains("damaged manifest"));
  // Past 64 bits: std::stoull's out_of_range escaped as a crash (std::terminate in the CLI).
  edit([](nlohmann::json& m) { m["dataset_id"] = "ffffffffffffffffffff"; });
  CHECK_THROWS_WITH(Shards(p.out), Contains(mpath) && Contains("damaged manifest"));
  // Trailing junk: once read as the hex before it, passing the check.
  edit([](nlohmann::json& m) { m["dataset_id"] = m["dataset_id"].get<std::string>() + "zz"; });
  CHECK_THROWS_WITH(Shards(p.out), Contains(mpath) && Contains("damaged manifest"));
  edit([](nlohmann::json& m) { m["dataset_id"] = ""; });
  CHECK_THROWS_WITH(Shards(p.out), Contains(mpath) && Contains("damaged manifest"));
  edit([](nlohmann::json& m) { m.erase("shards"); });
  CHECK_THROWS_WITH(Shards(p.out), Contains(mpath) && Contains("damaged manifest"));
  // A shard listed twice: its samples would have been read twice an epoch.
  edit([](nlohmann::json& m) {
    m["shards"].push_back(m["shards"][0]);
    m["samples"] = m["samples"].get<int>() + m["shards"][0]["samples"].get<int>();
  });
  CHECK_THROWS_WITH(Shards(p.out), Contains(mpath) && Contains("twice"));
  spit(mpath, mine.substr(0, mine.size() / 2));
  CHECK_THROWS_WITH(Shards(p.out), Contains(mpath) && Contains("damaged manifest"));
  spit(mpath, mine);
  CHECK(Shards(p.out).size() == kSamples);
  // No shard at all.
  TempDir empty;
  CHECK_THROWS_AS(Shards(empty.path()), ConfigError);
  CHECK_THROWS_AS(Shards(empty / "missing"), ConfigError);
}

TEST_CASE("shards: the DataLoader with 2 workers over Shards delivers every index exactly once", "[shards][loader]") {
  Packed p;
  auto ds = std::make_shared<Shards>(p.out, small_output<ShardsOptions>());
  ImageFolder folder(p.src, small_output<ImageFolderOptions>());
  std::map<std::string, size_t> in_folder;
  for (size_t j = 0; j < folder.size(); ++j) in_folder[folder.path(j).substr(p.src.size() + 1)] = j;
  for (const bool block : {false, true}) {
    CAPTURE(block);
    loader::LoaderOptions o;
    o.batch_size = 5;
    o.num_workers = 2;
    o.seed = 12;
    if (block) o.sampler = std::make_shared<loader::BlockShuffleSampler>(ds->shard_sizes(), 2);
    else o.shuffle = true;
    loader::DataLoader l(ds, o);
    for (int epoch = 0; epoch < 2; ++epoch) {
      std::map<int64_t, int> seen;
      for (auto& b : l) {
        const auto lbl = b.field("label");
        const auto img = b.field("image");
        const size_t per = img.nbytes() / b.size();
        for (size_t k = 0; k < b.size(); ++k) {
          const int64_t i = b.indices()[k];
          ++seen[i];
          int64_t label = 0;
          std::memcpy(&label, static_cast<const std::byte*>(lbl.data) + k * sizeof label, sizeof label);
          CHECK(label == ds->label(static_cast<size_t>(i)));
          const auto want = pixels(folder, in_folder.at(source_name(*ds, static_cast<size_t>(i))));
          REQUIRE(want.size() == per);
          CHECK(std::memcmp(static_cast<const std::byte*>(img.data) + k * per, want.data(), per) == 0);
        }
      }
      CHECK(seen.size() == kSamples);
      for (const auto& [i, n] : seen) CHECK(n == 1);
    }
  }
  CHECK(test::own_children().empty());
}

#endif  // RINGLOADER_PACK_BIN
