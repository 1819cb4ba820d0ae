#pragma once
// Rng: the one random generator of ringloader. Small (xoshiro256**), portable (same stream on
// every platform and standard library, unlike std::shuffle / std::uniform_*_distribution),
// and always seeded from what makes a sample reproducible: (seed, epoch, index, stream).
//
//   datasets::Rng rng = writer.rng();          // inside Dataset::get
//   bool flip = rng.bernoulli(0.5);
//
// Not thread-safe: one Rng per thread. Safe to use in forked workers (it is plain state).
#include <cstddef>
#include <cstdint>
#include <utility>

namespace ringloader::datasets {

/// splitmix64 step: the mixing function used to derive seeds.
constexpr uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// A 64-bit seed derived from a sequence of words; distinct inputs give unrelated seeds.
constexpr uint64_t derive_seed(uint64_t a, uint64_t b = 0, uint64_t c = 0, uint64_t d = 0) {
  uint64_t s = a;
  uint64_t h = splitmix64(s);
  s = h ^ b;
  h = splitmix64(s);
  s = h ^ c;
  h = splitmix64(s);
  s = h ^ d;
  return splitmix64(s);
}

__extension__ typedef unsigned __int128 Uint128;  // Lemire's multiply-shift

class Rng {
 public:
  explicit constexpr Rng(uint64_t seed) {
    uint64_t s = seed;
    for (auto& w : s_) w = splitmix64(s);
  }
  /// The generator for one sample's random choices.
  static constexpr Rng for_sample(uint64_t seed, uint64_t epoch, uint64_t index, uint64_t stream = 0) {
    return Rng(derive_seed(seed, epoch, index, stream));
  }

  constexpr uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  /// Uniform in [0, 1).
  constexpr double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Uniform in [lo, hi).
  constexpr double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Uniform integer in [0, n), unbiased (Lemire's method). n > 0.
  constexpr uint64_t below(uint64_t n) {
    Uint128 m = static_cast<Uint128>(next()) * n;
    auto low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = -n % n;
      while (low < threshold) {
        m = static_cast<Uint128>(next()) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }
  constexpr bool bernoulli(double p) { return uniform() < p; }

  /// Fisher-Yates shuffle, identical on every platform.
  template <class It>
  constexpr void shuffle(It first, It last) {
    const auto n = static_cast<uint64_t>(last - first);
    for (uint64_t i = n; i > 1; --i) {
      const uint64_t j = below(i);
      using std::swap;
      swap(first[static_cast<std::ptrdiff_t>(i - 1)], first[static_cast<std::ptrdiff_t>(j)]);
    }
  }

 private:
  static constexpr uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4]{};
};

}  // namespace ringloader::datasets
