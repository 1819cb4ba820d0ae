// ringloader-pack, run as users run it: the real binary on folders generated here, checking
// exit codes (0 packed, 1 bad files left out, 2 usage), OUT never replaced without --force,
// bad_files.tsv, --index, and ringloader-imagefolder reading the packed output.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "datasets/image_folder.hpp"
#include "datasets/shards.hpp"
#include "examples/image_gen.hpp"
#include "tests/examples/cli_test_util.hpp"
#include "tests/support/sanitizer.hpp"

using nlohmann::json;
using namespace ringloader::test;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {

const std::string kPack = RINGLOADER_PACK_BIN;
const std::string kImageFolder = RINGLOADER_IMAGEFOLDER_BIN;

constexpr int kClasses = 3;
constexpr int kPerClass = 8;
constexpr int kGood = kClasses * kPerClass;

void generate(const std::string& root) {
  ringloader::examples::ImageGenOptions g;
  g.num_classes = kClasses;
  g.images_per_class = kPerClass;
  g.seed = 5;
  g.min_width = 64;
  g.max_width = 120;
  g.min_height = 56;
  g.max_height = 100;
  g.png_fraction = 0.15;
  ringloader::examples::generate_image_folder(root, g);
}

/// The good images, made once per test process (read-only: tests pack them elsewhere).
std::string good_root() {
  static TempDir dir;
  static bool made = false;
  if (!made) {
    generate(dir / "photos");
    made = true;
  }
  return dir / "photos";
}

RunResult pack(std::vector<std::string> args) {
  args.insert(args.begin(), kPack);
  RunResult r = run(args);
  CHECK(r.group_empty_after);
  return r;
}

json parse_json(const RunResult& r) {
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(!r.out.empty());
  return json::parse(r.out);
}

std::set<std::string> names_in(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

}  // namespace

TEST_CASE("pack: a clean folder - exit 0, JSON summary, shards + indexes + manifest, nothing else", "[cli][pack]") {
  TempDir tmp;
  const std::string out = tmp / "packed";
  const auto r = pack({good_root(), out, "--shard-size", "64K", "-q"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.empty());  // --quiet
  const json j = parse_json(r);
  CHECK(j["images"] == kGood);
  CHECK(j["bad_files"] == 0);
  CHECK(j["reencoded"] == 0);
  const size_t shards = j["shards"];
  CHECK(shards >= 2);
  std::set<std::string> want = {"manifest.json"};
  uint64_t bytes = 0;
  for (size_t s = 0; s < shards; ++s) {
    char name[32];
    std::snprintf(name, sizeof name, "shard-%06zu", s);
    want.insert(std::string(name) + ".tar");
    want.insert(std::string(name) + ".idx");
    bytes += fs::file_size(out + "/" + name + ".tar") + fs::file_size(out + "/" + name + ".idx");
  }
  CHECK(names_in(out) == want);
  CHECK(j["bytes"] == bytes);
  CHECK(names_in(tmp.path()) == std::set<std::string>{"packed"});  // no temporary left beside OUT
  const json m = json::parse(slurp(out + "/manifest.json"));
  CHECK(m["samples"] == kGood);
  CHECK(m["classes"] == json({"class_00", "class_01", "class_02"}));
  CHECK(m["shards"].size() == shards);

  // Without -q: the progress line and the summary on stderr.
  const auto loud = pack({good_root(), tmp / "loud", "--shard-size", "64K"});
  REQUIRE(loud.exit_code == 0);
  CHECK_THAT(loud.err, Contains(std::to_string(kGood) + "/" + std::to_string(kGood) + " images"));
  CHECK_THAT(loud.err, Contains(std::to_string(kGood) + " images -> " + std::to_string(shards) + " shards in " + tmp / "loud"));
}

TEST_CASE("pack: ringloader-imagefolder reads the packed output as it reads the folder", "[cli][pack]") {
  TempDir tmp;
  const std::string out = tmp / "packed";
  REQUIRE(pack({good_root(), out, "--shard-size", "64K", "--order", "source", "-q"}).exit_code == 0);
  const auto summary = [](const std::string& src, std::vector<std::string> extra) {
    std::vector<std::string> args = {kImageFolder, src, "--workers", "2", "--batch-size", "5", "--json", "-q", "--seed", "4"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run(args);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return parse_json(r);
  };
  const json folder = summary(good_root(), {});
  const json packed = summary(out, {});
  CHECK(packed["images"] == kGood);
  CHECK(packed["dataset_size"] == kGood);
  CHECK(packed["classes"] == kClasses);
  CHECK(packed["errors"].empty());
  CHECK(packed["unique_indices"] == kGood);
  CHECK(packed["missing_indices"] == 0);
  // --order source: the same images in the same order, so the same pixels in the same order.
  CHECK(packed["pixel_checksum"] == folder["pixel_checksum"]);
  // Block shuffling over the shards: every image once per epoch.
  const json block = summary(out, {"--block", "2", "--epochs", "2"});
  CHECK(block["images"] == 2 * kGood);
  CHECK(block["unique_indices"] == 2 * kGood);
  CHECK(block["duplicate_indices"] == 0);
  CHECK(block["missing_indices"] == 0);
  CHECK(block["errors"].empty());
}

TEST_CASE("pack: never replaces OUT without --force", "[cli][pack]") {
  TempDir tmp;
  const std::string out = tmp / "packed";
  fs::create_directories(out);
  std::ofstream(out + "/precious.txt") << "keep me\n";
  const auto r = pack({good_root(), out, "-q"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Contains(out + " exists: pass --force to replace it"));
  CHECK(r.out.empty());
  CHECK(names_in(out) == std::set<std::string>{"precious.txt"});
  CHECK(names_in(tmp.path()) == std::set<std::string>{"packed"});
  // A file in the way too.
  const std::string file = tmp / "file";
  std::ofstream(file) << "x";
  CHECK(pack({good_root(), file, "-q"}).exit_code == 2);
  CHECK(slurp(file) == "x");

  const auto forced = pack({good_root(), out, "-q", "--force"});
  INFO(forced.err);
  REQUIRE(forced.exit_code == 0);
  CHECK_FALSE(fs::exists(out + "/precious.txt"));
  CHECK(fs::exists(out + "/manifest.json"));
  CHECK(ringloader::datasets::Shards(out).size() == kGood);
  CHECK(names_in(tmp.path()) == std::set<std::string>{"file", "packed"});  // the old OUT is gone
}

TEST_CASE("pack: bad files are left out, listed in bad_files.tsv, exit 1", "[cli][pack]") {
  TempDir tmp;
  const std::string src = tmp / "photos";
  generate(src);
  std::string jpeg;
  for (const auto& e : fs::directory_iterator(src + "/class_01")) {
    if (e.path().extension() == ".jpg") {
      jpeg = slurp(e.path().string());
      break;
    }
  }
  REQUIRE(jpeg.size() > 600);
  std::ofstream(src + "/class_00/zero.jpg");
  std::ofstream(src + "/class_01/truncated.jpg", std::ios::binary) << jpeg.substr(0, jpeg.size() / 3);
  std::ofstream(src + "/class_02/notes.png") << "this is not a picture\n";
  fs::create_symlink(src + "/does-not-exist.jpg", src + "/class_02/broken.jpg");  // a scan error

  const std::string out = tmp / "packed";
  const auto r = pack({src, out, "-q"});
  INFO(r.err);
  CHECK(r.exit_code == 1);
  const json j = parse_json(r);
  CHECK(j["images"] == kGood);
  CHECK(j["bad_files"] == 3);
  const auto lines = lines_of(slurp(out + "/bad_files.tsv"));
  REQUIRE(lines.size() == 3);
  std::set<std::string> listed;
  for (const auto& l : lines) {
    const size_t tab = l.find('\t');
    REQUIRE(tab != std::string::npos);
    REQUIRE(tab + 1 < l.size());  // a reason after the path
    listed.insert(l.substr(0, tab));
  }
  CHECK(listed == std::set<std::string>{src + "/class_00/zero.jpg", src + "/class_01/truncated.jpg",
                                        src + "/class_02/notes.png"});
  CHECK_THAT(slurp(out + "/bad_files.tsv"), Contains("zero.jpg\tempty file"));
  CHECK_THAT(r.err, Contains("3 bad files, listed in " + out + "/bad_files.tsv"));
  CHECK_THAT(r.err, Contains("left out " + src + "/class_01/truncated.jpg"));
  CHECK_THAT(r.err, Contains("broken.jpg"));  // the scan's own error, reported
  const json m = json::parse(slurp(out + "/manifest.json"));
  CHECK(m["samples"] == kGood);
  CHECK(m["bad_files"] == 3);
  ringloader::datasets::Shards ds(out);
  CHECK(ds.size() == kGood);
  for (size_t i = 0; i < ds.size(); ++i) {
    CHECK_THAT(ds.path(i), !Contains("zero.jpg") && !Contains("truncated.jpg") && !Contains("notes.png"));
  }

  // Nothing good at all: exit 1 and no OUT.
  const std::string bad_only = tmp / "bad-only";
  fs::create_directories(bad_only + "/a");
  std::ofstream(bad_only + "/a/zero.jpg");
  const auto none = pack({bad_only, tmp / "none", "-q"});
  CHECK(none.exit_code == 1);
  CHECK_THAT(none.err, Contains("no image of " + bad_only + " could be packed (1 bad)"));
  CHECK_FALSE(fs::exists(tmp / "none"));
}

TEST_CASE("pack: bad arguments exit 2 with a message", "[cli][pack]") {
  TempDir tmp;
  const std::string out = tmp / "out";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{}, "SRC and OUT are required"},
      {{good_root()}, "SRC and OUT are required"},
      {{good_root(), out, "--no-such-option"}, "--no-such-option"},
      {{good_root(), out, "--shard-size", "lots"}, "--shard-size lots"},
      {{good_root(), out, "--shard-size", "0"}, "--shard-size 0"},
      {{good_root(), out, "--shard-size", "12X"}, "--shard-size 12X"},
      // Once undefined conversions to uint64_t: inf and 1e30 gave one image per shard.
      {{good_root(), out, "--shard-size", "inf"}, "--shard-size inf"},
      {{good_root(), out, "--shard-size", "nan"}, "--shard-size nan"},
      {{good_root(), out, "--shard-size", "1e30"}, "--shard-size 1e30"},
      {{good_root(), out, "--shard-size", "0.0001"}, "--shard-size 0.0001"},
      {{good_root(), out, "--order", "random"}, "--order"},
      {{good_root(), out, "--quality", "0"}, "--quality"},
      {{good_root(), out, "--quality", "101"}, "--quality"},
      {{good_root(), out, "--max-short-side", "-5"}, "--max-short-side"},
      {{good_root(), out, "--jobs", "many"}, "--jobs"},
      {{good_root(), out, "a", "b"}, ""},
      {{good_root(), "--index", tmp / "x.tar"}, "--index takes tars only"},
      {{tmp / "no-such-folder", out}, "no-such-folder"},
      {{"--index", tmp / "missing.tar"}, "missing.tar"},
  };
  for (const auto& [args, words] : cases) {
    std::string line;
    for (const auto& a : args) line += a + " ";
    CAPTURE(line);
    const auto r = pack(args);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Contains("ringloader-pack: ") && Contains(words));
    CHECK(r.err.find('\n') == r.err.size() - 1);  // one line
    CHECK_FALSE(fs::exists(out));
  }
  CHECK(names_in(tmp.path()).empty());
  const auto help = pack({"--help"});
  CHECK(help.exit_code == 0);
  CHECK_THAT(help.out, Contains("--shard-size") && Contains("--index") && Contains("--max-short-side"));
}

TEST_CASE("pack --index: an index beside each tar, a damaged tar named with its byte", "[cli][pack]") {
  TempDir tmp;
  REQUIRE(pack({good_root(), tmp / "packed", "--shard-size", "64K", "-q"}).exit_code == 0);
  // ringloader-pack's own tars, without their indexes, then indexed again: the same samples.
  fs::create_directories(tmp / "bare");
  for (const auto& e : fs::directory_iterator(tmp / "packed")) {
    if (e.path().extension() == ".tar") fs::copy_file(e.path(), tmp / ("bare/" + e.path().filename().string()));
  }
  std::vector<std::string> args = {"--index"};
  for (const auto& n : names_in(tmp / "bare")) args.push_back(tmp / ("bare/" + n));
  const size_t tars = args.size() - 1;
  REQUIRE(tars >= 2);
  const auto r = pack(args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(lines_of(r.err).size() == tars);
  CHECK_THAT(r.err, Contains("samples indexed -> " + tmp / "bare/shard-000000.idx"));
  CHECK(names_in(tmp / "bare").size() == 2 * tars);  // a .idx beside each, no temporary left
  ringloader::datasets::Shards packed(tmp / "packed"), bare(tmp / "bare");
  CHECK_FALSE(bare.packed());
  CHECK(bare.shard_sizes() == packed.shard_sizes());
  REQUIRE(bare.size() == packed.size());
  for (size_t i = 0; i < bare.size(); ++i) CHECK(bare.label(i) == packed.label(i));
  // -q: nothing on stderr.
  args.push_back("-q");
  const auto quiet = pack(args);
  CHECK(quiet.exit_code == 0);
  CHECK(quiet.err.empty());

  // A cut-off tar: exit 2, the tar and the byte named, no index written.
  const std::string cut = tmp / "cut.tar";
  const std::string whole = slurp(tmp / "packed/shard-000000.tar");
  std::ofstream(cut, std::ios::binary) << whole.substr(0, whole.size() / 2 + 100);
  const auto bad = pack({"--index", cut});
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Contains(cut) && Contains("byte"));
  CHECK_FALSE(fs::exists(tmp / "cut.idx"));
}

TEST_CASE("pack: --force never deletes the source - OUT that is SRC, or a folder holding it, is refused", "[cli][pack]") {
  // --force replaces OUT: where OUT is SRC or holds it (`pack data data`, `pack parent/train
  // parent`), that would delete the originals.
  TempDir tmp;
  const std::string parent = tmp / "parent";
  const std::string src = parent + "/train";
  fs::create_directories(parent);
  fs::copy(good_root(), src, fs::copy_options::recursive);
  std::ofstream(parent + "/notes.txt") << "keep me\n";
  for (const std::string& out : {src, src + "/", parent, parent + "/../parent", tmp.path()}) {
    CAPTURE(out);
    const auto r = pack({src, out, "-q", "--force"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Contains("is SRC") && Contains("would delete the source"));
    CHECK(r.out.empty());
    CHECK(ringloader::datasets::ImageFolder(src).size() == kGood);
    CHECK(slurp(parent + "/notes.txt") == "keep me\n");
    CHECK(names_in(parent) == std::set<std::string>{"notes.txt", "train"});
  }
  // OUT beside SRC, or inside it, is fine.
  CHECK(pack({src, parent + "/packed", "-q"}).exit_code == 0);
  CHECK(pack({src, parent + "/packed", "-q", "--force"}).exit_code == 0);
}

TEST_CASE("pack: an OUT that appears while packing is not replaced without --force", "[cli][pack]") {
  // The check must hold at the final swap too: two concurrent packs into one OUT must not both
  // exit 0 with the first's output silently gone. A file list of 240 entries, --jobs 1: the
  // progress line after the first 32 images says the start-up check has passed, with most of
  // the work still to do.
  TempDir tmp;
  std::string list;
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(good_root())) {
    if (e.is_regular_file()) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  for (int rep = 0; rep < 10; ++rep) {
    for (size_t i = 0; i < files.size(); ++i) list += files[i] + "\t" + std::to_string(i % 3) + "\n";
  }
  std::ofstream(tmp / "list.tsv") << list;
  const std::string out = tmp / "packed";
  bool made = false;
  const RunResult r = Child({kPack, tmp / "list.tsv", out, "--jobs", "1"}).run([&](pid_t, const std::string& err_path) {
    if (wait_for_text(err_path, "/240 images", std::chrono::seconds(60))) {
      fs::create_directories(out);
      std::ofstream(out + "/precious.txt") << "keep me\n";
      made = true;
    }
  });
  INFO(r.err);
  REQUIRE(made);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Contains(out + " appeared while packing"));
  CHECK(names_in(out) == std::set<std::string>{"precious.txt"});
  CHECK(names_in(tmp.path()) == std::set<std::string>{"list.tsv", "packed"});  // no OUT.tmp-PID left
}

TEST_CASE("pack: --jobs past what the system allows is an error, not std::terminate", "[cli][pack]") {
#ifdef RINGLOADER_TEST_UNDER_SANITIZER
  WARN("sanitizer build: its runtime needs the address space ulimit -v takes away; not exercised");
#else
  // A thread that cannot start (ulimit -v, --jobs 64) must not leave joinable threads to
  // std::terminate (exit 134) and OUT.tmp-PID behind.
  TempDir tmp;
  const std::string out = tmp / "packed";
  const RunResult r = run({"/bin/sh", "-c", "ulimit -v 300000 && exec \"$0\" \"$@\"", kPack, good_root(), out, "-q", "--jobs", "64"});
  INFO(r.err);
  CHECK(r.exit_code != 134);
  if (r.exit_code == 0) {
    CHECK(ringloader::datasets::Shards(out).size() == kGood);  // --jobs is at most one per image
  } else {
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Contains("--jobs") && Contains("cannot start thread"));
    CHECK_FALSE(fs::exists(out));
  }
  for (const auto& e : fs::directory_iterator(tmp.path())) CHECK(e.path().filename() == "packed");  // no OUT.tmp-PID
#endif
}

TEST_CASE("pack: a class folder whose name is not UTF-8 is packed, its name shown with U+FFFD", "[cli][pack]") {
  // nlohmann::json throws type_error.316 on invalid UTF-8: at manifest.json, after every image
  // was packed, unless the name is made valid first.
  TempDir tmp;
  const std::string src = tmp / "src";
  fs::copy(good_root(), src, fs::copy_options::recursive);
  fs::rename(src + "/" + ringloader::datasets::ImageFolder(src).classes()[0], src + "/cl\xff\xfe");
  const auto r = pack({src, tmp / "packed", "-q"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const ringloader::datasets::Shards shards(tmp / "packed");
  CHECK(shards.size() == kGood);
  const auto& classes = shards.classes();
  CHECK(std::count_if(classes.begin(), classes.end(), [](const std::string& c) { return c.find("\xef\xbf\xbd") != std::string::npos; }) == 1);
}

TEST_CASE("pack: OUT.tmp-PID left by a pack that was killed is removed; a live pack's is not", "[cli][pack]") {
  // A SIGKILLed pack cannot clean up: the next one must, or a partial copy stays forever.
  TempDir tmp;
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  REQUIRE(dead > 0);
  REQUIRE(::waitpid(dead, nullptr, 0) == dead);  // reaped: no process has this pid now
  const std::string out = tmp / "packed";
  const std::string stale = out + ".tmp-" + std::to_string(dead);
  const std::string live = out + ".tmp-" + std::to_string(::getpid());
  fs::create_directories(stale + "/x");
  fs::create_directories(live);
  const auto r = pack({good_root(), out, "-q"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.err, Contains("removed " + stale) && Contains("did not finish"));
  CHECK_FALSE(fs::exists(stale));
  CHECK(fs::exists(live));
  CHECK(ringloader::datasets::Shards(out).size() == kGood);
}
