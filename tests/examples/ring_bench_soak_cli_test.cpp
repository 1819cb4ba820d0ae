// ringloader-ring-bench and ringloader-soak, the real binaries: their command lines only (the
// suite's bench:ring_runs and soak:no_leaks run them end to end). --help must print usage and
// run nothing; an unknown option or a bad value must exit 2 with one line on stderr, not start
// a benchmark with the defaults.
#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/examples/cli_test_util.hpp"

using namespace ringloader::test;

namespace {

struct Program {
  std::string name;                  ///< as it names itself on stderr
  std::string bin;
  std::vector<std::string> options;  ///< every option --help must list
  std::string run_marker;            ///< text only a benchmark run prints
};

std::vector<Program> programs() {
  return {
      {"ringloader-ring-bench", RINGLOADER_RING_BENCH_BIN, {"--workers", "--batch", "--batches", "--runs"},
       "ring benchmark:"},
      {"ringloader-soak", RINGLOADER_SOAK_BIN, {"--cycles", "--epochs", "--workers", "--rss-slack-mb", "--check"},
       "create/iterate/destroy cycles, then"},
  };
}

std::vector<std::string> with(const Program& p, std::vector<std::string> args) {
  args.insert(args.begin(), p.bin);
  return args;
}

}  // namespace

TEST_CASE("ring-bench and soak --help print every option and run nothing", "[ring-bench][soak]") {
  for (const auto& p : programs()) {
    for (const char* help : {"--help", "-h"}) {
      INFO(p.name << " " << help);
      const auto t0 = std::chrono::steady_clock::now();
      const auto r = run(with(p, {help}));
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      INFO("stdout: " << r.out << "\nstderr: " << r.err);
      CHECK(r.exit_code == 0);
      CHECK(r.err.empty());
      CHECK(r.out.find("Usage:") != std::string::npos);
      for (const auto& opt : p.options) CHECK(r.out.find(opt) != std::string::npos);
      CHECK(r.out.find(p.run_marker) == std::string::npos);
      CHECK(s < 10);  // a benchmark run takes far longer; usage takes milliseconds
    }
  }
}

TEST_CASE("ring-bench and soak --help show the defaults", "[ring-bench][soak]") {
  // CLI11 prints "--batch UINT:POSITIVE=256": the default follows the option's type on its line.
  auto default_of = [](const std::string& help, const std::string& option) {
    const auto at = help.find(option + " ");
    if (at == std::string::npos) return std::string("(option missing)");
    const auto eq = help.find('=', at);
    const auto end = help.find_first_of(" \n", eq);
    return eq == std::string::npos ? std::string("(no default)") : help.substr(eq + 1, end - eq - 1);
  };
  const auto bench = run({RINGLOADER_RING_BENCH_BIN, "--help"});
  CHECK(default_of(bench.out, "--workers") == "2");
  CHECK(default_of(bench.out, "--batch") == "256");
  CHECK(default_of(bench.out, "--batches") == "40");
  CHECK(default_of(bench.out, "--runs") == "5");
  const auto soak = run({RINGLOADER_SOAK_BIN, "--help"});
  CHECK(default_of(soak.out, "--cycles") == "300");
  CHECK(default_of(soak.out, "--epochs") == "50");
  CHECK(default_of(soak.out, "--workers") == "2");
  CHECK(default_of(soak.out, "--rss-slack-mb") == "8");
}

TEST_CASE("ring-bench and soak reject an unknown option or a bad value with exit 2", "[ring-bench][soak]") {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"ringloader-ring-bench", {"--bogus"}},
      {"ringloader-ring-bench", {"extra"}},
      {"ringloader-ring-bench", {"--workers", "x"}},
      {"ringloader-ring-bench", {"--workers", "-1"}},
      {"ringloader-ring-bench", {"--batch", "0"}},
      {"ringloader-ring-bench", {"--batches", "0"}},
      {"ringloader-ring-bench", {"--runs", "0"}},
      {"ringloader-ring-bench", {"--runs"}},
      {"ringloader-soak", {"--bogus"}},
      {"ringloader-soak", {"extra"}},
      {"ringloader-soak", {"--cycles", "x"}},
      {"ringloader-soak", {"--cycles", "-1"}},
      {"ringloader-soak", {"--epochs", "-1"}},
      {"ringloader-soak", {"--workers", "-2"}},
      {"ringloader-soak", {"--rss-slack-mb", "lots"}},
      {"ringloader-soak", {"--check", "yes"}},
  };
  for (const auto& [name, args] : cases) {
    const Program* p = nullptr;
    const auto all = programs();
    for (const auto& q : all) {
      if (q.name == name) p = &q;
    }
    REQUIRE(p != nullptr);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    const auto r = run(with(*p, args));
    INFO(name << " " << joined << "\nstdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    const auto err = lines_of(r.err);
    REQUIRE(err.size() == 1);
    CHECK(err[0].rfind(name + ": ", 0) == 0);
    CHECK(err[0].size() > name.size() + 10);
  }
}
