// ringloader-imagefolder, run as users run it: the real binary on folders generated here
// (small photo-like images from image_gen, plus bad files), checking the JSON summary, exit
// codes, the errors TSV, --indices-out, progress output and Ctrl-C.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "examples/image_gen.hpp"
#include "tests/examples/cli_test_util.hpp"

using nlohmann::json;
using namespace ringloader::test;

namespace {

const std::string kCli = RINGLOADER_IMAGEFOLDER_BIN;

constexpr int kClasses = 4;
constexpr int kPerClass = 12;
constexpr int kGood = kClasses * kPerClass;

/// Small photo-like images (fast to decode), made once per test process.
void generate(const std::string& root) {
  ringloader::examples::ImageGenOptions g;
  g.num_classes = kClasses;
  g.images_per_class = kPerClass;
  g.seed = 11;
  g.min_width = 96;
  g.max_width = 160;
  g.min_height = 80;
  g.max_height = 140;
  g.png_fraction = 0.1;
  ringloader::examples::generate_image_folder(root, g);
}

const TempDir& good_folder() {
  static TempDir dir;
  static bool made = false;
  if (!made) {
    generate(dir / "photos");
    made = true;
  }
  return dir;
}
std::string good_root() { return good_folder() / "photos"; }

/// The good images plus a zero-byte file, a truncated JPEG, text named .jpg, and a broken
/// symlink (a scan error: never a sample).
struct BadFolder {
  TempDir dir;
  std::string root = dir / "photos";
  BadFolder() {
    generate(root);
    const auto cls = [&](int c) {
      std::string s = "class_0" + std::to_string(c);
      return root + "/" + s;
    };
    std::ofstream(cls(0) + "/zero.jpg");
    std::string first_jpeg;
    for (const auto& e : std::filesystem::directory_iterator(cls(1))) {
      if (e.path().extension() == ".jpg") {
        first_jpeg = slurp(e.path().string());
        break;
      }
    }
    REQUIRE(first_jpeg.size() > 600);
    std::ofstream(cls(1) + "/truncated.jpg", std::ios::binary) << first_jpeg.substr(0, first_jpeg.size() / 3);
    std::ofstream(cls(2) + "/notes.jpg") << "this is not a picture\n";
    std::filesystem::create_symlink(root + "/does-not-exist.jpg", cls(3) + "/broken.jpg");
  }
};

json parse_json(const RunResult& r) {
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(!r.out.empty());
  return json::parse(r.out);
}

std::vector<std::string> cli(std::vector<std::string> args) {
  args.insert(args.begin(), kCli);
  return args;
}

std::vector<int64_t> read_indices(const std::string& path) {
  std::vector<int64_t> v;
  for (const auto& l : lines_of(slurp(path))) v.push_back(std::stoll(l));
  return v;
}

}  // namespace

TEST_CASE("imagefolder JSON summary of a clean folder", "[cli]") {
  TempDir tmp;
  const auto r = run(cli({good_root(), "--workers", "2", "--batch-size", "10", "--json", "-q", "--seed", "5",
                          "--indices-out", tmp / "idx.txt"}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.empty());  // --quiet
  const json j = parse_json(r);
  CHECK(j["images"] == kGood);
  CHECK(j["dataset_size"] == kGood);
  CHECK(j["batches"] == (kGood + 9) / 10);
  CHECK(j["epochs"] == 1);
  CHECK(j["classes"] == kClasses);
  CHECK(j["seconds"].get<double>() > 0);
  CHECK(j["images_per_sec"].get<double>() > 0);
  CHECK(j["mb_per_sec"].get<double>() > 0);
  CHECK(j["errors"].empty());
  CHECK(j["skipped_samples"] == 0);
  CHECK(j["worker_restarts"] == 0);
  CHECK(j["unique_indices"] == kGood);
  CHECK(j["duplicate_indices"] == 0);
  CHECK(j["missing_indices"] == 0);
  CHECK(j["seed"] == 5);
  CHECK(j["workers"] == 2);
  CHECK(j["batch_size"] == 10);
  CHECK(j["interrupted"] == false);
  CHECK(j["pixel_bytes"] == uint64_t{kGood} * 224 * 224 * 3);
  const std::string sum = j["pixel_checksum"];
  CHECK(sum.size() == 16);
  CHECK(sum.find_first_not_of("0123456789abcdef") == std::string::npos);
  // Without --shuffle the delivery order is the dataset's.
  std::vector<int64_t> expect(kGood);
  std::iota(expect.begin(), expect.end(), 0);
  CHECK(read_indices(tmp / "idx.txt") == expect);
}

TEST_CASE("imagefolder human summary and default workers", "[cli]") {
  const auto r = run(cli({good_root(), "--batch-size", "16"}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find(std::to_string(kGood) + " images in 3 batches over 1 epoch(s), " +
                   std::to_string(std::max(1u, std::thread::hardware_concurrency())) + " workers") != std::string::npos);
  CHECK(r.out.find("images/s") != std::string::npos);
  CHECK(r.out.find("MB/s of decoded pixels") != std::string::npos);
  CHECK(r.out.find(std::to_string(kClasses) + " classes") != std::string::npos);
  CHECK(r.out.find("0 restart(s)") != std::string::npos);
  CHECK(r.out.find("errors    none") != std::string::npos);
  CHECK(r.out.find("checksum") != std::string::npos);
}

TEST_CASE("pixel_checksum is equal for 0 1 and 2 workers with the same seed", "[cli]") {
  TempDir tmp;
  std::map<int, json> by_workers;
  std::map<int, std::vector<int64_t>> order;
  for (int w : {0, 1, 2}) {
    const std::string idx = tmp / ("idx" + std::to_string(w));
    const auto r = run(cli({good_root(), "--workers", std::to_string(w), "--batch-size", "7", "--shuffle", "--seed", "42",
                            "--random-crop", "--flip", "--epochs", "2", "--json", "-q", "--indices-out", idx}));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    by_workers[w] = parse_json(r);
    order[w] = read_indices(idx);
  }
  CHECK(by_workers[1]["pixel_checksum"] == by_workers[2]["pixel_checksum"]);
  CHECK(by_workers[0]["pixel_checksum"] == by_workers[1]["pixel_checksum"]);
  CHECK(order[1] == order[2]);
  CHECK(order[0] == order[1]);
  // --shuffle: two epochs, each a permutation, in an order that is not the dataset's.
  REQUIRE(order[2].size() == 2 * kGood);
  std::vector<int64_t> first(order[2].begin(), order[2].begin() + kGood);
  std::vector<int64_t> second(order[2].begin() + kGood, order[2].end());
  CHECK(first != second);
  std::sort(first.begin(), first.end());
  std::sort(second.begin(), second.end());
  CHECK(first == second);
  CHECK(std::adjacent_find(first.begin(), first.end()) == first.end());
  CHECK(by_workers[2]["epochs"] == 2);
  CHECK(by_workers[2]["unique_indices"] == 2 * kGood);
  CHECK(by_workers[2]["missing_indices"] == 0);

  // Another seed: another order and other crops, so another checksum.
  const auto other = run(cli({good_root(), "--workers", "2", "--batch-size", "7", "--shuffle", "--seed", "43",
                              "--random-crop", "--flip", "--epochs", "2", "--json", "-q"}));
  REQUIRE(other.exit_code == 0);
  CHECK(parse_json(other)["pixel_checksum"] != by_workers[2]["pixel_checksum"]);
}

TEST_CASE("transform options change the delivered pixels", "[cli]") {
  auto summary = [](std::vector<std::string> extra) {
    std::vector<std::string> args = {good_root(), "--workers", "1", "--json", "-q", "--seed", "3"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run(cli(args));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return parse_json(r);
  };
  const json base = summary({});
  const json small = summary({"--size", "64"});
  CHECK(small["pixel_bytes"] == uint64_t{kGood} * 64 * 64 * 3);
  CHECK(small["transform"] == "Resize(73) -> CenterCrop(64) -> uint8 HWC");
  const json flt = summary({"--size", "64", "--float"});
  CHECK(flt["pixel_bytes"] == uint64_t{kGood} * 64 * 64 * 3 * 4);
  CHECK(std::string(flt["transform"]).find("float32") != std::string::npos);
  const json crop = summary({"--random-crop"});
  const json flip = summary({"--flip"});
  std::set<std::string> sums = {base["pixel_checksum"], small["pixel_checksum"], flt["pixel_checksum"],
                                crop["pixel_checksum"], flip["pixel_checksum"]};
  CHECK(sums.size() == 5);
  CHECK(std::string(crop["transform"]).find("RandomResizedCrop") != std::string::npos);
  CHECK(std::string(flip["transform"]).find("Flip") != std::string::npos);
  // The other decode paths load the same images (their resamplers differ in the last bits).
  for (const char* d : {"stb", "turbojpeg", "fast-noroi"}) {
    const json other = summary({"--decoder", d});
    CHECK(other["images"] == kGood);
    CHECK(other["errors"].empty());
    CHECK(other["pixel_checksum"] != base["pixel_checksum"]);
  }
}

TEST_CASE("loader options are accepted and runs stay complete", "[cli]") {
  const auto r = run(cli({good_root(), "--workers", "2", "--prefetch", "1", "--timeout", "60", "--batch-size", "5",
                          "--epochs", "3", "--log-level", "info", "--json", "-q"}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json j = parse_json(r);
  CHECK(j["epochs"] == 3);
  CHECK(j["images"] == 3 * kGood);
  CHECK(j["unique_indices"] == 3 * kGood);
  CHECK(j["batches"] == 3 * ((kGood + 4) / 5));
  CHECK(j["missing_indices"] == 0);
  CHECK(j["duplicate_indices"] == 0);
}

TEST_CASE("max-pixels refuses larger images and reports each file", "[cli]") {
  TempDir tmp;
  const auto r = run(cli({good_root(), "--workers", "1", "--max-pixels", "100", "--json", "-q", "--errors", tmp / "e.tsv"}));
  REQUIRE(r.exit_code == 1);
  const json j = parse_json(r);
  CHECK(j["images"] == 0);
  CHECK(j["errors"].size() == kGood);
  CHECK(j["skipped_samples"] == kGood);
  CHECK(j["missing_indices"] == 0);  // skipped and reported is not lost
  CHECK(std::string(j["errors"][0]["reason"]).find("pixels") != std::string::npos);
  CHECK(lines_of(slurp(tmp / "e.tsv")).size() == kGood + 1);
}

TEST_CASE("bad files are skipped and listed with exit code 1", "[cli]") {
  BadFolder bad;
  TempDir tmp;
  const auto r = run(cli({bad.root, "--workers", "2", "--batch-size", "8", "--epochs", "2", "--seed", "1", "--json", "-q",
                          "--errors", tmp / "errors.tsv", "--indices-out", tmp / "idx.txt"}));
  INFO(r.err);
  REQUIRE(r.exit_code == 1);
  const json j = parse_json(r);
  CHECK(j["dataset_size"] == kGood + 3);  // the broken link is not a sample
  CHECK(j["images"] == 2 * kGood);
  CHECK(j["skipped_samples"] == 2 * 3);   // three bad files, twice
  CHECK(j["unique_indices"] == 2 * kGood);
  CHECK(j["missing_indices"] == 0);
  CHECK(j["duplicate_indices"] == 0);
  std::map<std::string, std::string> reasons;
  for (const auto& e : j["errors"]) reasons[std::filesystem::path(std::string(e["path"])).filename()] = e["reason"];
  REQUIRE(reasons.size() == 4);
  CHECK(reasons["zero.jpg"].find("empty") != std::string::npos);
  CHECK(reasons["truncated.jpg"].find("truncated") != std::string::npos);
  CHECK(reasons["notes.jpg"].find("not an image") != std::string::npos);
  CHECK(reasons["broken.jpg"].find("broken symbolic link") != std::string::npos);

  const auto tsv = lines_of(slurp(tmp / "errors.tsv"));
  REQUIRE(tsv.size() == 5);
  CHECK(tsv[0] == "path\treason");
  std::set<std::string> files;
  for (size_t i = 1; i < tsv.size(); ++i) {
    const auto tab = tsv[i].find('\t');
    REQUIRE(tab != std::string::npos);
    CHECK(tsv[i].find('\t', tab + 1) == std::string::npos);
    CHECK(std::filesystem::path(tsv[i].substr(0, tab)).is_absolute() == std::filesystem::path(bad.root).is_absolute());
    files.insert(std::filesystem::path(tsv[i].substr(0, tab)).filename());
    CHECK(!tsv[i].substr(tab + 1).empty());
  }
  CHECK(files == std::set<std::string>{"zero.jpg", "truncated.jpg", "notes.jpg", "broken.jpg"});
  // --indices-out holds what was delivered: every good index, twice, no bad one.
  const auto idx = read_indices(tmp / "idx.txt");
  CHECK(idx.size() == 2 * kGood);

  // The human summary names them too.
  const auto human = run(cli({bad.root, "--workers", "1", "-q"}));
  CHECK(human.exit_code == 1);
  CHECK(human.out.find("truncated.jpg") != std::string::npos);
  CHECK(human.out.find("4 file(s), 3 skip(s)") != std::string::npos);
}

TEST_CASE("on-error raise stops at the first bad file with exit code 1", "[cli]") {
  BadFolder bad;
  const auto r = run(cli({bad.root, "--workers", "2", "--on-error", "raise", "--json", "-q"}));
  REQUIRE(r.exit_code == 1);
  const json j = parse_json(r);
  CHECK(j.contains("fatal_error"));
  const auto err = lines_of(r.err);
  REQUIRE(err.size() == 1);
  CHECK(err[0].rfind("ringloader-imagefolder: ", 0) == 0);
  CHECK(err[0].find(".jpg") != std::string::npos);
}

namespace {

// A file name is bytes: one that is not UTF-8 still gets a JSON summary, with U+FFFD for each
// invalid byte (nlohmann::json would otherwise throw type_error 316 and abort the program).
constexpr char kInvalidByte[] = "\xff";
constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

/// A copy of the good folder at `root` plus a truncated JPEG named `name` in class_00.
void copy_with_truncated(const std::string& root, const std::string& name) {
  std::filesystem::copy(good_root(), root, std::filesystem::copy_options::recursive);
  std::string jpeg;
  for (const auto& e : std::filesystem::directory_iterator(root + "/class_01")) {
    if (e.path().extension() == ".jpg") {
      jpeg = slurp(e.path().string());
      break;
    }
  }
  REQUIRE(jpeg.size() > 600);
  std::ofstream(root + "/class_00/" + name, std::ios::binary) << jpeg.substr(0, jpeg.size() / 3);
}

}  // namespace

TEST_CASE("a failing file whose name is not UTF-8 is listed in the JSON summary", "[cli][utf8]") {
  TempDir tmp;
  const std::string root = tmp / "photos";
  copy_with_truncated(root, std::string("broken") + kInvalidByte + "bad.jpg");
  const auto r = run(cli({root, "--workers", "2", "--json", "-q"}));
  INFO(r.err);
  CHECK(r.exit_code == 1);  // a file failed: the normal code, not an abort
  const json j = parse_json(r);
  CHECK(j["images"] == kGood);
  CHECK(j["skipped_samples"] == 1);
  REQUIRE(j["errors"].size() == 1);
  const std::string path = j["errors"][0]["path"];
  CHECK(std::filesystem::path(path).filename() == std::string("broken") + kReplacement + "bad.jpg");
  CHECK(std::string(j["errors"][0]["reason"]).find("truncated") != std::string::npos);
}

TEST_CASE("a dataset root whose name is not UTF-8 gets a JSON summary", "[cli][utf8]") {
  TempDir tmp;
  const std::string root = tmp / (std::string("root") + kInvalidByte);
  copy_with_truncated(root, "cut.jpg");
  const auto r = run(cli({root, "--workers", "1", "--json", "-q"}));
  INFO(r.err);
  CHECK(r.exit_code == 1);
  const json j = parse_json(r);
  CHECK(j["images"] == kGood);
  const std::string source = j["source"];
  CHECK(source.find(std::string("root") + kReplacement) != std::string::npos);
  CHECK(source.find(kInvalidByte) == std::string::npos);
  REQUIRE(j["errors"].size() == 1);
  const std::string path = j["errors"][0]["path"];
  CHECK(path.find(std::string("root") + kReplacement + "/class_00/cut.jpg") != std::string::npos);
}

TEST_CASE("file-list reads samples from a list instead of a class tree", "[cli]") {
  TempDir tmp;
  std::ofstream list(tmp / "list.tsv");
  list << "# path\tlabel\n";
  int n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(good_root())) {
    if (!e.is_regular_file() || n >= 10) continue;
    list << e.path().string() << '\t' << (n % 3 == 0 ? 6 : 2) << '\n';
    ++n;
  }
  list.close();
  const auto r = run(cli({"--file-list", tmp / "list.tsv", "--workers", "1", "--json", "-q"}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json j = parse_json(r);
  CHECK(j["images"] == 10);
  CHECK(j["classes"] == 7);  // largest label + 1
  CHECK(j["source"] == tmp / "list.tsv");
}

TEST_CASE("bad arguments exit 2 with a one-line reason", "[cli]") {
  TempDir tmp;
  std::ofstream(tmp / "file.txt") << "x";
  const std::vector<std::vector<std::string>> cases = {
      {good_root(), "--batch-size", "0"},
      {good_root(), "--workers", "-1"},
      {good_root(), "--bogus"},
      {good_root(), "--on-error", "ignore"},
      {good_root(), "--decoder", "png"},
      {good_root(), "--epochs", "0"},
      {good_root(), "--prefetch", "0"},
      {good_root(), "--timeout", "-3"},
      {good_root(), "--max-pixels", "0"},
      {good_root(), "--size", "2"},
      {good_root(), "--log-level", "loud"},
      {good_root(), "--progress-every", "0"},
      {tmp / "no-such-folder"},
      {tmp / "file.txt"},
      {tmp.path()},  // no class folder
      {},
      {good_root(), "--file-list", tmp / "file.txt"},
      {"--file-list", tmp / "missing.tsv"},
      {good_root(), "--indices-out", tmp / "no/such/dir/idx"},
      {good_root(), "--errors", tmp / "no/such/dir/e.tsv"},
  };
  for (const auto& args : cases) {
    const auto r = run(cli(args));
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    INFO("args: " << joined << "\nstderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    const auto err = lines_of(r.err);
    REQUIRE(err.size() == 1);
    CHECK(err[0].rfind("ringloader-imagefolder: ", 0) == 0);
    CHECK(err[0].size() > 30);
  }
  // A positive option given 0 says so, not CLI11's "not in range 0.000000 to 1797693134862...".
  const auto zero = run(cli({good_root(), "--block", "0"}));
  CHECK(zero.exit_code == 2);
  CHECK_THAT(zero.err, Catch::Contains("must be a positive number, got 0"));
  CHECK(zero.err.size() < 200);
}

TEST_CASE("help lists every option with examples", "[cli]") {
  const auto r = run(cli({"--help"}));
  REQUIRE(r.exit_code == 0);
  for (const char* opt : {"--workers", "--batch-size", "--epochs", "--shuffle", "--seed", "--size", "--random-crop",
                          "--flip", "--float", "--on-error", "--max-pixels", "--prefetch", "--timeout", "--file-list",
                          "--errors", "--indices-out", "--json", "--quiet", "--log-level", "--decoder",
                          "--progress-every", "Examples:", "Exit codes:"}) {
    CHECK(r.out.find(opt) != std::string::npos);
  }
}

TEST_CASE("progress is plain lines when stderr is not a terminal", "[cli]") {
  const auto r = run(cli({good_root(), "--workers", "1", "--batch-size", "4", "--epochs", "2", "--progress-every", "0.01"}));
  REQUIRE(r.exit_code == 0);
  const auto err = lines_of(r.err);
  REQUIRE(err.size() >= 2);
  for (const auto& l : err) {
    CHECK(l.rfind("ringloader-imagefolder: epoch ", 0) == 0);
    CHECK(l.find("images/s") != std::string::npos);
    CHECK(l.find("ETA") != std::string::npos);
    CHECK(l.find('\r') == std::string::npos);
  }
  CHECK(err.back().find("epoch 2/2  " + std::to_string(2 * kGood) + "/" + std::to_string(2 * kGood) + " images") !=
        std::string::npos);
  // The default interval (2 s) still ends each epoch with a line.
  const auto quieter = run(cli({good_root(), "--workers", "1"}));
  CHECK(!lines_of(quieter.err).empty());
  CHECK(lines_of(quieter.err).size() <= 3);
}

TEST_CASE("progress is a redrawn bar on a terminal", "[cli]") {
  auto [code, text] = run_on_terminal(cli({good_root(), "--workers", "1", "--batch-size", "4", "--json"}));
  REQUIRE(code == 0);
  CHECK(text.find("\r\033[K[") != std::string::npos);
  CHECK(text.find("#") != std::string::npos);
  CHECK(text.find("images/s  ETA") != std::string::npos);
  CHECK(text.find("errors 0") != std::string::npos);
  CHECK(text.find("\"pixel_checksum\"") != std::string::npos);
  // --quiet: only the JSON.
  auto [qcode, quiet] = run_on_terminal(cli({good_root(), "--workers", "1", "--json", "-q"}));
  CHECK(qcode == 0);
  CHECK(quiet.find("ETA") == std::string::npos);
}

TEST_CASE("SIGINT stops the run with exit code 130 after a partial summary", "[cli]") {
  for (bool json_out : {true, false}) {
    std::vector<std::string> args = {good_root(), "--workers", "2", "--batch-size", "4", "--epochs", "1000",
                                     "--progress-every", "0.05", "--seed", "9"};
    if (json_out) args.push_back("--json");
    const auto r = Child(cli(args)).run([](pid_t pid, const std::string& err_path) {
      REQUIRE(wait_for_text(err_path, "epoch 2/1000", std::chrono::seconds(60)));
      ::kill(-pid, SIGINT);  // as a terminal's Ctrl-C: the whole process group
    });
    INFO(r.err);
    CHECK(r.exit_code == 130);
    CHECK(r.group_empty_after);  // the workers stopped with it
    if (json_out) {
      const json j = parse_json(r);
      CHECK(j["interrupted"] == true);
      CHECK(j["images"].get<int>() > kGood);
      CHECK(j["epochs"].get<int>() >= 1);
      CHECK(j["epochs"].get<int>() < 1000);
      CHECK(j["duplicate_indices"] == 0);
      CHECK(j["missing_indices"] == 0);  // completed epochs only
    } else {
      CHECK(r.out.find("interrupted by signal 2: partial summary") != std::string::npos);
      CHECK(r.out.find("checksum") != std::string::npos);
    }
  }
}

TEST_CASE("Ctrl-C while next() waits on a stopped worker ends the run", "[cli][signal]") {
  // A stopped worker holds the next in-order batch: the signal must end the wait, which has no
  // timeout of its own.
  for (int sig : {SIGINT, SIGTERM}) {
    std::vector<std::string> args = {good_root(), "--workers", "1", "--batch-size", "4", "--epochs", "1000",
                                     "--progress-every", "0.05", "--seed", "9", "--json"};
    const auto r = Child(cli(args)).run([&](pid_t pid, const std::string& err_path) {
      REQUIRE(wait_for_text(err_path, "epoch 2/1000", std::chrono::seconds(60)));
      std::vector<int> workers;
      for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        const int p = std::atoi(e.path().filename().c_str());
        if (p <= 0) continue;
        std::ifstream st(e.path() / "stat");
        std::string line;
        std::getline(st, line);
        const auto rp = line.rfind(')');
        int ppid = 0;
        char state = 0;
        if (rp != std::string::npos && std::sscanf(line.c_str() + rp + 1, " %c %d", &state, &ppid) == 2 && ppid == pid) {
          workers.push_back(p);
        }
      }
      REQUIRE(workers.size() == 1);
      ::kill(workers[0], SIGSTOP);  // the next batch never comes
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      ::kill(-pid, sig);  // the whole group, as a terminal's Ctrl-C
    }, std::chrono::seconds(30));  // counted from the signal: a run that ignores it is killed then
    INFO("signal " << sig << "\n" << r.err);
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code == 128 + sig);
    CHECK(r.group_empty_after);
    const json j = parse_json(r);
    CHECK(j["interrupted"] == true);
    CHECK(j["images"].get<int>() > kGood);
  }
}
