#pragma once
// FNV-1a, 64 bit: a cheap, stable fingerprint of bytes (dataset file lists, loader states).
// Not cryptographic. Thread-safe (pure functions).
//
//   uint64_t h = core::fnv1a64(text);          // or fnv1a64(more, h) to continue a hash
//   std::string hex = core::hex64(h);          // "0123456789abcdef"
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace ringloader::core {

inline constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;

inline uint64_t fnv1a64(std::string_view bytes, uint64_t h = kFnvOffset) {
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

/// 16 lower-case hex digits.
inline std::string hex64(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace ringloader::core
