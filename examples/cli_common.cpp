#include "examples/cli_common.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <cstring>
#include <stdexcept>
#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace ringloader::examples {

namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kP3 = 0x165667B19E3779F9ULL;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ULL;
constexpr uint64_t kP5 = 0x27D4EB2F165667C5ULL;

constexpr uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
constexpr uint64_t round(uint64_t acc, uint64_t input) { return rotl(acc + input * kP2, 31) * kP1; }

uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);  // little-endian hosts only: the checksum is compared on one machine
  return v;
}

}  // namespace

void PixelHash::stripe(const uint8_t* p) {
  lanes_[0] = round(lanes_[0], load64(p));
  lanes_[1] = round(lanes_[1], load64(p + 8));
  lanes_[2] = round(lanes_[2], load64(p + 16));
  lanes_[3] = round(lanes_[3], load64(p + 24));
}

void PixelHash::update(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  total_ += n;
  if (tail_len_ > 0) {
    const size_t take = std::min(n, sizeof tail_ - tail_len_);
    std::memcpy(tail_ + tail_len_, p, take);
    tail_len_ += take;
    p += take;
    n -= take;
    if (tail_len_ < sizeof tail_) return;
    stripe(tail_);
    tail_len_ = 0;
  }
  for (; n >= 32; n -= 32, p += 32) stripe(p);
  std::memcpy(tail_, p, n);
  tail_len_ = n;
}

uint64_t PixelHash::value() const {
  uint64_t h = rotl(lanes_[0], 1) + rotl(lanes_[1], 7) + rotl(lanes_[2], 12) + rotl(lanes_[3], 18);
  for (uint64_t lane : lanes_) h = (h ^ round(0, lane)) * kP1 + kP4;
  h += total_;
  for (size_t i = 0; i < tail_len_; ++i) h = rotl(h ^ (tail_[i] * kP5), 11) * kP1;
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

std::string PixelHash::save() const {
  std::string out;
  char buf[17];
  auto put = [&](uint64_t v) {
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    out += buf;
  };
  for (uint64_t l : lanes_) put(l);
  put(total_);
  put(tail_len_);
  for (size_t i = 0; i < sizeof tail_; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", tail_[i]);
    out += buf;
  }
  return out;
}

PixelHash PixelHash::restore(const std::string& text) {
  if (text.size() != 16 * 6 + 64) throw std::invalid_argument("pixel hash state has the wrong length");
  PixelHash h;
  auto get = [&](size_t at, size_t len) { return std::stoull(text.substr(at, len), nullptr, 16); };
  for (size_t i = 0; i < 4; ++i) h.lanes_[i] = get(16 * i, 16);
  h.total_ = get(64, 16);
  h.tail_len_ = static_cast<size_t>(get(80, 16));
  if (h.tail_len_ >= sizeof h.tail_) throw std::invalid_argument("pixel hash state has a bad tail length");
  for (size_t i = 0; i < sizeof h.tail_; ++i) h.tail_[i] = static_cast<uint8_t>(get(96 + 2 * i, 2));
  return h;
}

std::string PixelHash::hex() const {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(value()));
  return buf;
}

std::shared_ptr<datasets::Shards> open_shards(const std::string& path, const datasets::ImageDatasetOptions& base,
                                              int reader_threads) {
  datasets::ShardsOptions opt;
  const int readers = reader_threads >= 0 ? reader_threads : opt.reader_threads;
  static_cast<datasets::ImageDatasetOptions&>(opt) = base;
  opt.reader_threads = readers;
  return std::make_shared<datasets::Shards>(path, opt);
}

const CLI::Validator& positive() {
  static const CLI::Validator v(
      [](std::string& value) {
        char* end = nullptr;
        const double d = std::strtod(value.c_str(), &end);
        return end != value.c_str() && *end == '\0' && d > 0 ? std::string() : "must be a positive number, got " + value;
      },
      "POSITIVE");
  return v;
}

bool is_packed(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return fs::path(path).extension() == ".tar";
  if (!fs::is_directory(path, ec)) return false;
  if (fs::exists(fs::path(path) / "manifest.json", ec)) return true;
  bool tar = false;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    if (e.is_directory(ec)) return false;
    tar = tar || e.path().extension() == ".tar";
  }
  return tar;
}

datasets::DecoderChoice parse_decoder(const std::string& name) {
  try {
    return datasets::decoder_from_name(name);
  } catch (const ConfigError& e) {
    throw CLI::ValidationError(e.what());
  }
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::vector<int> parse_int_list(const std::string& option, const std::string& text) {
  std::vector<int> out;
  for (const auto& item : split_list(text)) {
    size_t used = 0;
    int v = -1;
    try {
      v = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 0) {
      throw CLI::ValidationError(option + ": '" + item + "' is not a non-negative integer (in '" + text + "')");
    }
    out.push_back(v);
  }
  if (out.empty()) throw CLI::ValidationError(option + ": empty list");
  return out;
}

std::string one_line(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\n') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

void parse_or_exit(CLI::App& app, int argc, char** argv, const char* program) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    std::exit(0);
  } catch (const CLI::ParseError& e) {
    // A misspelt option is often why a required one looks missing ("--dri x": "--dir is
    // required"), and CLI11 checks requirements first: name what was not expected instead.
    const auto extras = app.remaining();
    const bool missing = dynamic_cast<const CLI::RequiredError*>(&e) != nullptr;
    const std::string why = missing && !extras.empty() ? CLI::ExtrasError(extras).what() : e.what();
    std::fprintf(stderr, "%s: %s (see --help)\n", program, one_line(why).c_str());
    std::exit(2);
  }
}

std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

volatile std::sig_atomic_t g_stop_signal = 0;

namespace {
void on_stop_signal(int sig) { g_stop_signal = sig; }
}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;  // a second Ctrl-C kills at once (workers follow by PDEATHSIG)
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

double peak_rss_mb(int pid) {
  const std::string path = pid == 0 ? "/proc/self/status" : "/proc/" + std::to_string(pid) + "/status";
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // "VmHWM:  1234 kB"
  }
  return -1;
}

bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace ringloader::examples
