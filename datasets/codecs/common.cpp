#include "datasets/codecs/common.hpp"

#include <cstdio>

namespace ringloader::datasets::codecs {

std::string unrecognised_reason(std::span<const uint8_t> b) {
  if (has_bytes(b, {'I', 'I', 42, 0}) || has_bytes(b, {'M', 'M', 0, 42})) return "TIFF images are not supported";
  if (has_text(b, "ftypheic", 4) || has_text(b, "ftypheix", 4) || has_text(b, "ftypmif1", 4)) {
    return "HEIF/HEIC images are not supported";
  }
  if (has_text(b, "ftypavif", 4)) return "AVIF images are not supported";
  if (has_bytes(b, {0, 0, 0, 12, 'j', 'P', ' ', ' '}) || has_bytes(b, {0xff, 0x4f, 0xff, 0x51})) {
    return "JPEG 2000 images are not supported";
  }
  if (has_bytes(b, {0xff, 0x0a}) || has_bytes(b, {0, 0, 0, 12, 'J', 'X', 'L', ' '})) return "JPEG XL images are not supported";
  if (has_bytes(b, {0, 0, 1, 0}) || has_bytes(b, {0, 0, 2, 0})) return "ICO/CUR images are not supported";
  if (has_text(b, "P1") || has_text(b, "P2") || has_text(b, "P3") || has_text(b, "P4") || has_text(b, "P7")) {
    return "this PNM variant is not supported (only binary P5/P6)";
  }
  // stb_image also reads Softimage PIC; we do not offer it (nor let it pass as TGA).
  if (has_bytes(b, {0x53, 0x80, 0xf6, 0x34})) return "Softimage PIC images are not supported";
  if (has_text(b, "%PDF")) return "not an image: PDF document";
  if (has_bytes(b, {'P', 'K', 3, 4})) return "not an image: ZIP archive";
  if (has_bytes(b, {0x1f, 0x8b})) return "not an image: gzip data";
  if (has_text(b, "RIFF") && !has_text(b, "WEBP", 8)) return "not an image: RIFF container without WebP data";
  // Text (HTML error pages saved as .jpg are common in scraped datasets): quote its start.
  const size_t n = std::min<size_t>(b.size(), 24);
  size_t printable = 0;
  for (size_t i = 0; i < n; ++i) printable += (b[i] >= 0x20 && b[i] < 0x7f) || b[i] == '\n' || b[i] == '\r' || b[i] == '\t';
  if (n > 0 && printable == n) {
    std::string quoted;
    for (size_t i = 0; i < std::min<size_t>(n, 16); ++i) quoted += (b[i] >= 0x20 && b[i] < 0x7f) ? static_cast<char>(b[i]) : ' ';
    return "not an image: the file starts with text \"" + quoted + "\"";
  }
  std::string hex;
  for (size_t i = 0; i < std::min<size_t>(b.size(), 8); ++i) {
    char h[4];
    std::snprintf(h, sizeof h, "%02x", b[i]);
    hex += (i ? " " : "") + std::string(h);
  }
  return "unrecognised image format (first bytes: " + hex + ")";
}

void check_pixels(const std::string& path, ImageFormat format, int64_t width, int64_t height, int64_t max_pixels) {
  if (width <= 0 || height <= 0) return;
  int64_t pixels = 0;
  // Two 32-bit header fields can overflow int64 (PSD: 2^32-1 squared).
  const bool overflow = __builtin_mul_overflow(width, height, &pixels);
  if (overflow || pixels > max_pixels) {
    throw DecodeError(path, std::string(format_name(format)) + " header declares " + std::to_string(width) + "x" +
                                std::to_string(height) + " = " +
                                (overflow ? std::string("more than 2^63") : std::to_string(pixels)) +
                                " pixels, over the limit of " + std::to_string(max_pixels) +
                                " (option max_pixels; a decompression bomb?)");
  }
}

}  // namespace ringloader::datasets::codecs
