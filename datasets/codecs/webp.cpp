// WebP through libwebp (still images; animated ones are refused).
#include <webp/decode.h>

#include <cerrno>
#include <string_view>
#include <vector>

#include "datasets/codecs/codec.hpp"
#include "datasets/codecs/common.hpp"

namespace ringloader::datasets::codecs {

namespace {

using detail::RgbView;

RgbView webp_decode(std::span<const uint8_t> b, const std::string& path, int w, int h, std::vector<uint8_t>& buf) {
  buf.resize(static_cast<size_t>(w) * static_cast<size_t>(h) * 3);
  errno = 0;
  if (WebPDecodeRGBInto(b.data(), b.size(), buf.data(), buf.size(), w * 3) == nullptr) {
    if (malloc_failed()) throw out_of_memory(path, "libwebp");
    throw DecodeError(path, "corrupt or truncated WebP");
  }
  return RgbView{buf.data(), w, h, static_cast<size_t>(w) * 3};
}

bool sniff(std::span<const uint8_t> b) { return has_text(b, "RIFF") && has_text(b, "WEBP", 8); }

ImageInfo probe(std::span<const uint8_t> b, const std::string& path, const DecodeOptions&) {
  WebPBitstreamFeatures f{};
  const VP8StatusCode st = WebPGetFeatures(b.data(), b.size(), &f);
  if (st != VP8_STATUS_OK) {
    throw DecodeError(path, st == VP8_STATUS_NOT_ENOUGH_DATA ? "truncated WebP header" : "corrupt WebP header");
  }
  if (f.has_animation) throw DecodeError(path, "animated WebP is not supported");
  return make_info(ImageFormat::kWebp, f.width, f.height);
}

void decode(std::span<const uint8_t> b, const std::string& path, const ImageInfo& info, const Geometry& g,
            const DecodeOptions& o, uint8_t* out) {
  resample(webp_decode(b, path, info.width, info.height, detail::thread_scratch().rgb), g, o, out);
}

constexpr std::string_view kExtensions[] = {".webp"};

}  // namespace

constinit const Codec kWebp{ImageFormat::kWebp, "WebP", kExtensions, sniff, probe, decode};

}  // namespace ringloader::datasets::codecs
