#include "datasets/image_decoder.hpp"

#include <algorithm>
#include <string>

#include "core/error.hpp"
#include "datasets/codecs/codec.hpp"
#include "datasets/codecs/common.hpp"
#include "datasets/detail/resample.hpp"

namespace ringloader::datasets {

namespace {

using codecs::Codec;
using codecs::kCodecs;

// The codec whose magic number `b` starts with, or null.
const Codec* sniff_codec(std::span<const uint8_t> b) {
  for (const Codec* c : kCodecs) {
    if (c->sniff != nullptr && c->sniff(b)) return c;
  }
  return nullptr;
}

const Codec* codec_of(ImageFormat f) {
  for (const Codec* c : kCodecs) {
    if (c->format == f) return c;
  }
  return nullptr;
}

void check_geometry(const Geometry& g, const ImageInfo& info, const std::string& path, size_t out_size, int64_t max_pixels) {
  const Box& s = g.source;
  if (s.width <= 0 || s.height <= 0 || s.x < 0 || s.y < 0 || s.x + s.width > info.width || s.y + s.height > info.height ||
      g.resize_width <= 0 || g.resize_height <= 0 || g.window.width <= 0 || g.window.height <= 0) {
    throw ConfigError(path + ": geometry does not fit the " + std::to_string(info.width) + "x" +
                      std::to_string(info.height) + " image (planned for another size?)");
  }
  const size_t need = static_cast<size_t>(g.out_width()) * static_cast<size_t>(g.out_height()) * 3;
  // The box is resampled to resize_width x resize_height before the window is kept: under
  // Resize(shorter side) an extreme aspect ratio makes that intermediate dwarf the image.
  // Bound it like the image itself, or by the output when that is larger.
  const int64_t resized = int64_t{g.resize_width} * int64_t{g.resize_height};
  const int64_t limit = std::max<int64_t>(max_pixels, int64_t{g.out_width()} * int64_t{g.out_height()});
  if (resized > limit) {
    throw DecodeError(path, "the " + std::to_string(info.width) + "x" + std::to_string(info.height) +
                                " image would be resampled to " + std::to_string(g.resize_width) + "x" +
                                std::to_string(g.resize_height) + " = " + std::to_string(resized) +
                                " pixels before its crop, over the limit of " + std::to_string(limit) +
                                " (option max_pixels; an extreme aspect ratio?)");
  }
  if (out_size < need) {
    throw ConfigError(path + ": output buffer holds " + std::to_string(out_size) + " bytes, the image needs " +
                      std::to_string(need));
  }
}

}  // namespace

DecoderChoice decoder_from_name(const std::string& name) {
  if (name == "fast") return {ResizeBackend::kFast, true};
  if (name == "fast-noroi") return {ResizeBackend::kFast, false};
  if (name == "turbojpeg") return {ResizeBackend::kTurboJpegStb, true};
  if (name == "stb") return {ResizeBackend::kStb, true};
  std::string valid;
  for (const char* n : kDecoderNames) valid += std::string(valid.empty() ? "" : ", ") + "'" + n + "'";
  throw ConfigError("decoder='" + name + "' is not one of " + valid);
}

const char* decoder_name(const DecoderChoice& d) {
  switch (d.backend) {
    case ResizeBackend::kFast: return d.roi ? "fast" : "fast-noroi";
    case ResizeBackend::kTurboJpegStb: return "turbojpeg";
    case ResizeBackend::kStb: return "stb";
  }
  return "?";
}

void DecoderChoice::apply(DecodeOptions& o) const {
  o.backend = backend;
  o.roi = roi;
}

const char* format_name(ImageFormat f) {
  const Codec* c = codec_of(f);
  return c != nullptr ? c->name : "unknown";
}

ImageFormat sniff_format(std::span<const uint8_t> b) {
  const Codec* c = sniff_codec(b);
  return c != nullptr ? c->format : ImageFormat::kUnknown;
}

ImageDecoder::ImageDecoder(DecodeOptions options) : options_(options) {
  if (options_.max_pixels <= 0) throw ConfigError("max_pixels must be positive, got " + std::to_string(options_.max_pixels));
}

ImageInfo ImageDecoder::probe(std::span<const uint8_t> b, const std::string& path) const {
  if (b.empty()) throw DecodeError(path, "empty file (0 bytes)");
  const Codec* codec = sniff_codec(b);
  if (codec == nullptr) {
    // No magic number: only TGA (which has none) may still be here. Anything we can name is
    // refused first, so stb's lenient TGA test never sees it.
    const std::string why = codecs::unrecognised_reason(b);
    if (why.rfind("unrecognised", 0) != 0) throw DecodeError(path, why);
    codec = &codecs::kTga;
  }
  ImageInfo info = codec->probe(b, path, options_);
  if (info.width <= 0 || info.height <= 0) {
    throw DecodeError(path, std::string(codec->name) + " header declares an empty image (" +
                                std::to_string(info.width) + "x" + std::to_string(info.height) + ")");
  }
  codecs::check_pixels(path, info.format, info.width, info.height, options_.max_pixels);
  info.file_size = b.size();
  return info;
}

RgbImage ImageDecoder::decode(std::span<const uint8_t> b, const std::string& path) const {
  const ImageInfo info = probe(b, path);
  RgbImage img;
  const Geometry g = Geometry::identity(info.width, info.height);
  img.width = info.width;
  img.height = info.height;
  img.pixels.resize(static_cast<size_t>(info.width) * static_cast<size_t>(info.height) * 3);
  decode_into(b, path, info, g, img.pixels);
  return img;
}

void ImageDecoder::decode_into(std::span<const uint8_t> b, const std::string& path, const Geometry& g,
                               std::span<uint8_t> out) const {
  decode_into(b, path, probe(b, path), g, out);
}

void ImageDecoder::decode_into(std::span<const uint8_t> b, const std::string& path, const ImageInfo& info,
                               const Geometry& g, std::span<uint8_t> out) const try {
  // The codecs size their buffers from the probed header: an ImageInfo of other bytes must not
  // reach them. A cheap test catches the likely mix-ups (the same file name, another file).
  const Codec* codec = codec_of(info.format);
  if (codec == nullptr || info.file_size != b.size() || (codec->sniff != nullptr && !codec->sniff(b))) {
    throw ConfigError(path + ": the ImageInfo passed to decode_into (" + format_name(info.format) + ", " +
                      std::to_string(info.file_size) + " bytes) is not probe()'s for these " + std::to_string(b.size()) +
                      " bytes");
  }
  check_geometry(g, info, path, out.size(), options_.max_pixels);
  codec->decode(b, path, info, g, options_, out.data());
  detail::thread_scratch().trim();
} catch (const DecodeError&) {
  throw;
} catch (const ConfigError&) {
  throw;  // the caller's geometry or buffer is wrong, not the file
} catch (const ResourceError&) {
  throw;  // the system ran short (memory): not the file's fault, never a bad file
} catch (const Error& e) {
  // A library refusing the geometry (libyuv's scaler, a 65535-wide TGA) is still this file's
  // decode failure.
  throw DecodeError(path, e.what());
}

}  // namespace ringloader::datasets
