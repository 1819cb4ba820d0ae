// Issue 6 from the command line: resume (--stop-after-batches/--save-state/--resume) and
// sharding under a real Open MPI launch (mpirun -np 3).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "examples/image_gen.hpp"
#include "tests/examples/cli_test_util.hpp"

using namespace ringloader::test;
using json = nlohmann::json;

namespace {

constexpr const char* kCli = RINGLOADER_IMAGEFOLDER_BIN;
constexpr int kImages = 50;  // 5 classes x 10: with batch 4, 13 batches (the last one of 2)

const std::string& folder() {
  static TempDir dir;
  static std::string root;
  if (root.empty()) {
    ringloader::examples::ImageGenOptions g;
    g.num_classes = 5;
    g.images_per_class = 10;
    g.seed = 3;
    g.min_width = 90;
    g.max_width = 130;
    g.min_height = 80;
    g.max_height = 120;
    root = dir / "photos";
    ringloader::examples::generate_image_folder(root, g);
  }
  return root;
}

json run_json(std::vector<std::string> args) {
  args.insert(args.begin(), kCli);
  const RunResult r = run(args);
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  return json::parse(r.out);
}

std::vector<int64_t> indices_in(const std::string& path) {
  std::vector<int64_t> v;
  for (const auto& l : lines_of(slurp(path))) v.push_back(std::stoll(l));
  return v;
}

}  // namespace

TEST_CASE("stop after k batches - save - resume - the concatenation equals an uninterrupted run", "[cli][resume]") {
  const std::string workers = GENERATE("0", "2");
  const int k = GENERATE(0, 1, 6, 12, 13);  // 13 = after the last batch of the first epoch
  CAPTURE(workers, k);
  TempDir out;
  const std::vector<std::string> common = {folder(), "--workers", workers, "--batch-size", "4", "--shuffle", "--random-crop",
                                           "--flip", "--size", "32", "--epochs", "2", "--json", "-q"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = common;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  const json whole = run_json(with({"--seed", "9", "--indices-out", out / "whole"}));
  const json first = run_json(with({"--seed", "9", "--indices-out", out / "a", "--stop-after-batches", std::to_string(k),
                                    "--save-state", out / "state.json"}));
  CHECK(first["stopped_early"] == true);
  CHECK(first["batches"] == k);
  const json second = run_json(with({"--indices-out", out / "b", "--resume", out / "state.json"}));
  auto a = indices_in(out / "a");
  const auto b = indices_in(out / "b");
  a.insert(a.end(), b.begin(), b.end());
  CHECK(a == indices_in(out / "whole"));
  CHECK(second["pixel_checksum"] == whole["pixel_checksum"]);
  CHECK(second["seed"] == 9);
  CHECK(second["missing_indices"] == 0);
  CHECK(first["batches"].get<int>() + second["batches"].get<int>() == whole["batches"].get<int>());
}

TEST_CASE("resume refuses another dataset and --save-state needs a stop", "[cli][resume]") {
  TempDir out;
  run_json({folder(), "--workers", "0", "--batch-size", "4", "--size", "32", "--json", "-q", "--seed", "1",
            "--stop-after-batches", "2", "--save-state", out / "s.json"});
  TempDir other;
  ringloader::examples::ImageGenOptions g;
  g.num_classes = 2;
  g.images_per_class = 3;
  g.min_width = g.max_width = 64;
  g.min_height = g.max_height = 64;
  ringloader::examples::generate_image_folder(other / "p", g);
  RunResult r = run({kCli, other / "p", "--batch-size", "4", "--size", "32", "-q", "--resume", out / "s.json"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("--resume") && Catch::Contains("another dataset"));
  r = run({kCli, folder(), "-q", "--save-state", out / "x.json"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("--stop-after-batches"));
  r = run({kCli, folder(), "-q", "--rank", "3", "--world-size", "2"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("rank 3"));
}

TEST_CASE("mpirun -np 3: disjoint shards whose union is the dataset - equal batch counts", "[cli][mpi]") {
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0) {
    FAIL("mpirun not found: `.ci/install-deps mpi` installs Open MPI (make test does)");
  }
  TempDir out;
  const std::string cmd = std::string("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_plm=isolated ") +
                          "mpirun --oversubscribe -np 3 sh -c 'exec " + kCli + " " + folder() +
                          " --workers 1 --batch-size 4 --size 32 --shuffle --seed 5 --json -q --indices-out " + out.path() +
                          "/idx.$OMPI_COMM_WORLD_RANK > " + out.path() + "/out.$OMPI_COMM_WORLD_RANK' 2> " + out.path() +
                          "/mpirun.err";
  const int rc = std::system(cmd.c_str());
  INFO("mpirun stderr: " << slurp(out / "mpirun.err"));
  REQUIRE(rc == 0);
  std::multiset<int64_t> all;
  std::set<int> batches;
  for (int r = 0; r < 3; ++r) {
    const json j = json::parse(slurp(out / ("out." + std::to_string(r))));
    CHECK(j["rank"] == r);
    CHECK(j["world_size"] == 3);
    CHECK(j["launcher"] == "openmpi");
    CHECK(j["missing_indices"] == 0);
    CHECK(j["images"] == 17);  // ceil(50 / 3)
    batches.insert(j["batches"].get<int>());
    const auto idx = indices_in(out / ("idx." + std::to_string(r)));
    CHECK(std::set<int64_t>(idx.begin(), idx.end()).size() == idx.size());
    all.insert(idx.begin(), idx.end());
  }
  CHECK(batches.size() == 1);  // every rank the same number of batches
  // PyTorch's padding rule: 51 = 50 + 1 index repeated; every index at least once.
  CHECK(all.size() == 51);
  int repeated = 0;
  for (int64_t i = 0; i < kImages; ++i) {
    CHECK(all.count(i) >= 1);
    repeated += static_cast<int>(all.count(i)) - 1;
  }
  CHECK(repeated == 1);
}
