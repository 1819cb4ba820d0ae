// ringloader-quickstart's command line. examples/quickstart.cpp is the README's example,
// verbatim, and a downstream project builds it with ringloader alone (tests/consumer), so it
// takes no argv; for this target its main() is compiled as ringloader_quickstart_main()
// (examples/CMakeLists.txt) and this main() runs it once the command line is checked.
//
//   build/bin/ringloader-quickstart          # what `make demo` runs first
//
// Exit codes: 0 done; 2 bad arguments (one line on stderr).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"  // GCC 12 false positive in CLI11's inlined code
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include "examples/cli_common.hpp"

int ringloader_quickstart_main();  // examples/quickstart.cpp's main()

namespace {
constexpr const char* kProgram = "ringloader-quickstart";
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"The README's C++ example (examples/quickstart.cpp): a user-defined dataset of 4096 224x224x3\n"
               "images and labels, loaded by 2 worker processes in batches of 64, for 3 epochs of a training\n"
               "loop that prints images/s per epoch. It takes no options.",
               kProgram};
  app.footer("Exit codes: 0 done, 2 bad arguments.");
  ringloader::examples::parse_or_exit(app, argc, argv, kProgram);
  return ringloader_quickstart_main();
}
