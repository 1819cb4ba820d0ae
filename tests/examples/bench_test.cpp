// ringloader-bench, the real binary on small generated folders: the grid's table and JSON
// lines, the ceiling, --make-dataset, --vs-pytorch (with and without PyTorch), --plot, and
// its argument errors. Sizes are tiny: this checks the harness, not the numbers.
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/examples/cli_test_util.hpp"

using nlohmann::json;
using namespace ringloader::test;

namespace {

const std::string kBench = RINGLOADER_BENCH_BIN;

std::vector<std::string> bench(std::vector<std::string> args) {
  args.insert(args.begin(), kBench);
  return args;
}

/// 20 images written by --make-dataset itself, once per test process.
const std::string& folder() {
  static TempDir dir;
  static std::string root;
  if (root.empty()) {
    const auto r = run(bench({"--make-dataset", dir / "photos", "--images", "20"}));
    REQUIRE(r.exit_code == 0);
    root = dir / "photos";
  }
  return root;
}

std::vector<json> json_lines(const std::string& out) {
  std::vector<json> v;
  for (const auto& l : lines_of(out)) {
    if (!l.empty() && l[0] == '{') v.push_back(json::parse(l));
  }
  return v;
}

std::vector<json> of_kind(const std::vector<json>& v, const std::string& kind) {
  std::vector<json> out;
  for (const auto& j : v) {
    if (j["bench"] == kind) out.push_back(j);
  }
  return out;
}

bool have_pytorch() {
  return std::system(RINGLOADER_BENCH_PYTHON " -c 'import torch, torchvision' >/dev/null 2>&1") == 0;
}
bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

// The quick grid every case below starts from.
std::vector<std::string> small_grid(std::vector<std::string> extra) {
  std::vector<std::string> a = {folder(), "--workers", "0,1", "--batch-sizes", "8", "--decoders", "fast",
                                "--outputs", "uint8", "--repeats", "1", "--size", "64", "--ceiling-images", "8",
                                "--warmup-batches", "1"};
  a.insert(a.end(), extra.begin(), extra.end());
  return bench(a);
}

}  // namespace

TEST_CASE("bench make-dataset writes a photo-like image folder", "[bench]") {
  size_t jpegs = 0, files = 0;
  std::set<std::string> classes;
  for (const auto& e : std::filesystem::recursive_directory_iterator(folder())) {
    if (!e.is_regular_file()) continue;
    ++files;
    jpegs += e.path().extension() == ".jpg";
    classes.insert(e.path().parent_path().filename());
    CHECK(e.file_size() > 1000);  // textured scenes, not flat colour
  }
  CHECK(files == 20);
  CHECK(classes.size() == 10);
  CHECK(jpegs >= 15);
  // Alone (no ROOT), it only writes the folder.
  TempDir tmp;
  const auto r = run(bench({"--make-dataset", tmp / "d", "--images", "7"}));
  CHECK(r.exit_code == 0);
  CHECK(r.out.empty());
  CHECK(r.err.find("wrote 7 images") != std::string::npos);
}

TEST_CASE("bench compares region-of-interest decode with whole images under RandomResizedCrop + flip", "[bench]") {
  const auto r = run(bench({folder(), "--workers", "1", "--batch-sizes", "8", "--decoders", "fast,fast-noroi", "--outputs",
                            "uint8", "--repeats", "1", "--size", "64", "--ceiling-images", "6", "--limit", "16",
                            "--random-crop", "--flip"}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.find("RandomResizedCrop(64) -> RandomHorizontalFlip") != std::string::npos);
  std::set<std::string> decoders;
  for (const auto& c : of_kind(json_lines(r.out), "imagefolder")) {
    decoders.insert(c["decoder"].get<std::string>());
    CHECK(c["images"] == 16);
  }
  CHECK(decoders == std::set<std::string>{"fast", "fast-noroi"});
}

TEST_CASE("bench runs the grid and prints a table and JSON lines", "[bench]") {
  const auto r = run(bench({folder(), "--workers", "0,1", "--batch-sizes", "4,8", "--decoders", "stb,fast", "--outputs",
                            "uint8,float", "--repeats", "2", "--size", "64", "--ceiling-images", "6", "--limit", "16"}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("workers batch decoder") != std::string::npos);
  const auto lines = json_lines(r.out);
  const auto ceilings = of_kind(lines, "ceiling");
  const auto configs = of_kind(lines, "imagefolder");
  CHECK(ceilings.size() == 4);  // 2 decoders x 2 outputs
  for (const auto& c : ceilings) {
    CHECK(c["ceiling_ips"].get<double>() > 0);
    CHECK(c["images"] == 6);
  }
  REQUIRE(configs.size() == 16);  // 2 x 2 x 2 x 2
  std::set<std::string> seen;
  for (const auto& c : configs) {
    seen.insert(c["workers"].dump() + c["batch"].dump() + c["decoder"].get<std::string>() + c["output"].get<std::string>());
    CHECK(c["images"] == 16);  // --limit
    CHECK(c["repeats"] == 2);
    const double med = c["median_ips"], lo = c["min_ips"], hi = c["max_ips"];
    CHECK(lo > 0);
    CHECK(lo <= med);
    CHECK(med <= hi);
    CHECK(c["main_cpu_share"].get<double>() > 0);
    CHECK(c["main_peak_rss_mb"].get<double>() > 1);
    if (c["workers"] == 0) {
      CHECK(c["worker_peak_rss_mb"] == 0);
    } else {
      CHECK(c["worker_peak_rss_mb"].get<double>() > 1);
    }
    CHECK(c["ceiling_ips"].get<double>() > 0);
    CHECK(c["ceiling_fraction"].get<double>() > 0);
  }
  CHECK(seen.size() == 16);
}

TEST_CASE("bench vs-pytorch prints ringloader over PyTorch ratios", "[bench]") {
  if (!have_pytorch()) {
    WARN("PyTorch is not installed for " RINGLOADER_BENCH_PYTHON ": only the missing-PyTorch path is checked");
  } else {
    const auto r = run(small_grid({"--vs-pytorch", "--limit", "12", "--pytorch-script", RINGLOADER_PYTORCH_SCRIPT}));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const auto torch = of_kind(json_lines(r.out), "pytorch");
    REQUIRE(torch.size() == 2);  // workers 0 and 1
    for (const auto& t : torch) {
      CHECK(t["median_ips"].get<double>() > 0);
      CHECK(t["ratio"]["fast"].get<double>() > 0);
    }
    CHECK(r.out.find("ringloader/PyTorch:  fast ") != std::string::npos);
  }
  // A Python without torch: say how to install it, and carry on with ringloader's side.
  const auto r = run(small_grid({"--vs-pytorch", "--python", "/nonexistent/python3"}));
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.find("pip install ringloader[torch]") != std::string::npos);
  CHECK(of_kind(json_lines(r.out), "pytorch").empty());
  CHECK(of_kind(json_lines(r.out), "imagefolder").size() == 2);
}

TEST_CASE("bench plot writes throughput vs workers as SVG or PNG", "[bench]") {
  TempDir tmp;
  if (!have_gnuplot()) {
    const auto r = run(small_grid({"--plot", tmp / "t.svg"}));
    CHECK(r.exit_code == 0);
    CHECK(r.err.find(".ci/install-deps plot") != std::string::npos);
    return;
  }
  const auto r = run(small_grid({"--decoders", "stb,fast", "--plot", tmp / "t.svg"}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const std::string svg = slurp(tmp / "t.svg");
  CHECK(svg.find("<svg") != std::string::npos);
  CHECK(svg.find("ringloader fast") != std::string::npos);
  CHECK(svg.find("ringloader stb") != std::string::npos);
  CHECK(!std::filesystem::exists(tmp / "t.svg.dat"));  // gnuplot's inputs are cleaned up
  const auto png = run(small_grid({"--plot", tmp / "t.png"}));
  REQUIRE(png.exit_code == 0);
  CHECK(slurp(tmp / "t.png").substr(1, 3) == "PNG");
}

TEST_CASE("bench bad arguments exit 2 with a one-line reason", "[bench]") {
  TempDir tmp;
  const std::vector<std::vector<std::string>> cases = {
      {folder(), "--workers", "1,x"},
      {folder(), "--workers", "-1"},
      {folder(), "--batch-sizes", "0"},
      {folder(), "--decoders", "libpng"},
      {folder(), "--outputs", "int16"},
      {folder(), "--repeats", "0"},
      {folder(), "--plot", tmp / "t.pdf"},
      {folder(), "--size", "1"},
      {folder(), "--ceiling-images", "0"},
      {folder(), "--limit", "-4"},
      {folder(), "--warmup-batches", "-1"},
      {tmp / "nowhere"},
      {},
      {"--make-dataset", tmp / "d", "--images", "0"},
      {folder(), "--nope"},
  };
  for (const auto& args : cases) {
    const auto r = run(bench(args));
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    INFO("args: " << joined << "\nstderr: " << r.err);
    CHECK(r.exit_code == 2);
    const auto err = lines_of(r.err);
    REQUIRE(err.size() == 1);
    CHECK(err[0].rfind("ringloader-bench: ", 0) == 0);
  }
}
