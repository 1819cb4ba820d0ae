#pragma once
// Helpers the codecs share (datasets/codecs/codec.hpp): magic-number tests, failed-allocation
// reporting, the resampler choice. Internal to datasets/.
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "datasets/detail/resample.hpp"
#include "datasets/detail/resource_error.hpp"
#include "datasets/image_decoder.hpp"

namespace ringloader::datasets::codecs {

inline bool has_bytes(std::span<const uint8_t> b, std::initializer_list<uint8_t> magic, size_t at = 0) {
  if (b.size() < at + magic.size()) return false;
  return std::equal(magic.begin(), magic.end(), b.begin() + static_cast<std::ptrdiff_t>(at));
}

inline bool has_text(std::span<const uint8_t> b, std::string_view magic, size_t at = 0) {
  return b.size() >= at + magic.size() && std::memcmp(b.data() + at, magic.data(), magic.size()) == 0;
}

inline uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// The libraries report a failed allocation as one more error (stb: "outofmem", libjpeg:
// "Insufficient memory", libwebp: a null result), and some report a size check that a crafted
// file fails with the same words. Only a failed malloc sets errno to ENOMEM, so with errno
// cleared before the call it tells the two apart: the system's shortage is a ResourceError
// (out_of_memory()), never a DecodeError that would drop a good file as bad.
inline bool malloc_failed() { return errno == ENOMEM; }

inline ResourceError out_of_memory(const std::string& path, const std::string& library) {
  return detail::resource_error(path, "cannot decode: " + library, ENOMEM);
}

/// An ImageInfo with the size and no codec_header (ImageDecoder::probe sets file_size).
inline ImageInfo make_info(ImageFormat format, int width, int height) {
  ImageInfo info;
  info.format = format;
  info.width = width;
  info.height = height;
  return info;
}

/// Throws DecodeError if width * height is over `max_pixels` (a decompression bomb); sizes
/// of 0 or less pass (the caller refuses an empty image with its own message).
void check_pixels(const std::string& path, ImageFormat format, int64_t width, int64_t height, int64_t max_pixels);

/// Bytes no codec takes: a one-line reason, naming the format when we know it. Starts with
/// "unrecognised" when it does not.
std::string unrecognised_reason(std::span<const uint8_t> b);

/// out = `g` applied to `rgb`: libyuv under ResizeBackend::kFast, stb_image_resize otherwise.
inline void resample(const detail::RgbView& rgb, const Geometry& g, const DecodeOptions& o, uint8_t* out) {
  detail::resample_rgb(rgb, g, o.backend != ResizeBackend::kFast, out);
}

}  // namespace ringloader::datasets::codecs
