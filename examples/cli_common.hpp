#pragma once
// What ringloader-imagefolder and ringloader-bench share: decoder names as CLI11 errors, a
// streaming 64-bit hash of delivered pixels, one-line CLI11 errors, JSON output that survives
// file names that are not UTF-8, and the SIGINT/SIGTERM flag both programs stop on.
//
//   examples::PixelHash h;
//   for (auto& b : loader) h.update(b.field("image").data, b.field("image").nbytes());
//   std::puts(h.hex().c_str());            // "9e3779b97f4a7c15"
//
// Main process only; nothing here is shared across processes.
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "datasets/image_decoder.hpp"
#include "datasets/shards.hpp"
#include "datasets/transforms.hpp"

namespace ringloader::examples {

/// A streaming 64-bit hash (xxHash64's round function over 32-byte stripes, 4 lanes): the
/// same bytes give the same value however they are split across update() calls. Fast enough
/// (several GB/s) that hashing every delivered image costs the training loop little.
class PixelHash {
 public:
  void update(const void* data, size_t n);
  uint64_t value() const;
  /// value() as 16 lower-case hex digits.
  std::string hex() const;
  uint64_t bytes() const { return total_; }
  /// The whole hashing state as hex text, and back: a resumed run continues the same hash, so
  /// its final value equals an uninterrupted run's.
  std::string save() const;
  /// Throws std::invalid_argument on text save() did not make.
  static PixelHash restore(const std::string& text);

 private:
  void stripe(const uint8_t* p);
  uint64_t lanes_[4] = {0x60ea27eeadc0b5d6ULL, 0xc2b2ae3d27d4eb4fULL, 0x0ULL, 0x61c8864e7a143579ULL};
  uint8_t tail_[32] = {};
  size_t tail_len_ = 0;  ///< bytes waiting in tail_ for a full stripe; < 32
  uint64_t total_ = 0;
};

/// True if `path` is packed shards: a folder with manifest.json, a .tar file, or a folder of
/// .tar files with no subfolder (an ImageFolder has class subfolders).
bool is_packed(const std::string& path);

/// Like CLI::PositiveNumber, with a message a user can read ("must be a positive number, got 0"
/// instead of CLI11's "not in range 0.000000 to 1797693...").
const CLI::Validator& positive();

/// Opens packed shards with the decode and transform options of `base`; reader threads 0 (the
/// mapping needs none) unless `reader_threads` >= 0 asks for some (to overlap --read-delay-ms).
std::shared_ptr<datasets::Shards> open_shards(const std::string& path, const datasets::ImageDatasetOptions& base,
                                              int reader_threads = -1);

/// datasets::decoder_from_name() for a command line: throws CLI::ValidationError naming the
/// choices (the transform the flags describe is datasets::ImageNetPreset).
datasets::DecoderChoice parse_decoder(const std::string& name);

/// "0,1,2" -> {0, 1, 2}; throws CLI::ValidationError naming `option` on a bad or negative entry.
std::vector<int> parse_int_list(const std::string& option, const std::string& text);
/// "a,b" -> {"a", "b"} (empty entries dropped).
std::vector<std::string> split_list(const std::string& text);

/// A CLI11 error (which may span lines) as one line for stderr.
std::string one_line(const std::string& text);

/// Parses the command line: --help prints the usage to stdout and exits 0; a bad option or
/// value prints "program: reason (see --help)" as one line to stderr and exits 2 (an unknown
/// option is the reason given even when a required one is missing too).
void parse_or_exit(CLI::App& app, int argc, char** argv, const char* program);

/// `j` as one line of JSON; every byte that is not valid UTF-8 becomes U+FFFD. File names are
/// bytes, and a plain dump() throws (type_error 316) on one that is not UTF-8: the program would
/// abort and lose its summary. Use this for every JSON the programs print or write.
std::string dump_json(const nlohmann::json& j);

/// Set by SIGINT/SIGTERM once install_stop_handlers() ran; the programs stop at the next batch.
extern volatile std::sig_atomic_t g_stop_signal;
/// Installs the handlers (no SA_RESTART needed: the loader's waits are timed loops). One-shot:
/// a second signal, if the stop takes too long (a hung batch), ends the process the default way.
void install_stop_handlers();

/// Peak resident set of a process in MB from /proc/<pid>/status VmHWM (pid 0 = self); -1 if unknown.
double peak_rss_mb(int pid = 0);
/// Resets this process's VmHWM to its current RSS (Linux: "5" > /proc/self/clear_refs). False if refused.
bool reset_peak_rss();

}  // namespace ringloader::examples
