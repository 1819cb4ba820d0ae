#pragma once
// ImageDecoder: bytes of an image file -> RGB uint8 pixels, optionally resampled to a
// Geometry (see transforms.hpp) on the way: only the source box that a crop before the
// resize keeps is resampled, and on the JPEG path only the final window is converted to RGB.
//
//   datasets::ImageDecoder dec;                                  // 64 MP limit, fast path
//   ImageInfo info = dec.probe(bytes, path);                     // header only
//   Geometry g = pipeline.plan(info.width, info.height, rng);
//   dec.decode_into(bytes, path, info, g, out);                  // out: g.out_height() x g.out_width() x 3
//
// The format is sniffed from the magic bytes, never the file name; each format is one codec
// under datasets/codecs/ (codec.hpp holds the table). JPEG goes through TurboJPEG (DCT-domain
// 1/2, 1/4, 1/8 downscaling when the target is small enough, decoding to YUV planes that
// libyuv scales; only the kept window is converted to RGB); PNG through libspng (stb_image
// under kStb); binary PNM (P5/P6, 8 or 16 bit, scaled from maxval to 255 rounding half to
// even as Pillow does; but where Pillow 9.4 clips 16-bit grey to 255 on convert("RGB"), it is
// scaled here like 16-bit colour) through our own reader; BMP (bottom-up or top-down), TGA,
// GIF (first frame), PSD and HDR through stb_image; WebP through libwebp.
// Gray, CMYK, alpha (dropped, as PIL's convert("RGB")), palette and 16-bit become RGB8.
// The header's dimensions are checked against `max_pixels` before anything is allocated.
// Every failure is a DecodeError(path, one-line reason), except an allocation that fails
// (a library's out-of-memory, errno ENOMEM): a ResourceError, as that is not the file's fault.
//
// Thread-safe: const methods, per-thread scratch buffers and TurboJPEG handles. Safe to
// build before fork and use in the forked workers.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "datasets/transforms.hpp"

namespace ringloader::datasets {

enum class ImageFormat : uint8_t { kUnknown, kJpeg, kPng, kBmp, kGif, kTga, kPnm, kPsd, kHdr, kWebp };

/// "JPEG", "PNG", ...
const char* format_name(ImageFormat f);

/// The format announced by the first bytes. TGA has no magic number: kUnknown here (probe()
/// still recognises it from its header).
ImageFormat sniff_format(std::span<const uint8_t> bytes);

/// Which decoder + resampler pair does the work (the non-default ones exist to measure).
enum class ResizeBackend : uint8_t {
  kFast,          ///< TurboJPEG (DCT scaling, YUV planes) / libspng / stb / libwebp + libyuv box filter
  kTurboJpegStb,  ///< TurboJPEG full decode to RGB (PNG: libspng) + stb_image_resize
  kStb,           ///< stb_image decode + stb_image_resize: a baseline for trusted files only
                  ///< (stb_image 2.27's JPEG decoder overreads its buffer on some crafted files)
};

struct DecodeOptions {
  int64_t max_pixels = int64_t{64} << 20;  ///< width * height above this is refused (bombs)
  bool dct_scaling = true;                 ///< let TurboJPEG decode at 1/2, 1/4, 1/8 when large enough
  ResizeBackend backend = ResizeBackend::kFast;
  /// kFast JPEG: decode only the rows and columns the output needs (region of interest) and
  /// resample only the window kept; false decodes the whole image (kept to measure the gain).
  bool roi = true;
};

/// A decode path by the name the programs' --decoder and Python's decoder= take:
/// "fast" (kFast with the region of interest), "fast-noroi" (kFast decoding whole images: to
/// measure what the region of interest gains), "turbojpeg" (kTurboJpegStb), "stb" (kStb).
///
///   decoder_from_name("turbojpeg").apply(options.decode);
///   decoder_name(decoder_from_name("fast-noroi"));   // "fast-noroi"
struct DecoderChoice {
  ResizeBackend backend = ResizeBackend::kFast;
  bool roi = true;
  /// Sets backend and roi of `o`, leaving the rest.
  void apply(DecodeOptions& o) const;
  friend bool operator==(const DecoderChoice&, const DecoderChoice&) = default;
};
/// Every name decoder_from_name() takes, the default first.
inline constexpr std::array<const char*, 4> kDecoderNames = {"fast", "fast-noroi", "turbojpeg", "stb"};
/// Throws ConfigError naming `name` and the valid ones.
DecoderChoice decoder_from_name(const std::string& name);
/// The name of `d` (decoder_from_name's inverse); "stb" and "turbojpeg" whatever their roi.
const char* decoder_name(const DecoderChoice& d);

/// What probe() read from a file's header. decode_into() takes it back: the header is read once.
struct ImageInfo {
  ImageFormat format = ImageFormat::kUnknown;
  int width = 0;
  int height = 0;
  // For decode_into() alone: the size of the file probed, and the header fields its codec
  // needs again (JPEG: subsampling, colour space; PNM: maxval, where the pixels start).
  size_t file_size = 0;
  std::array<uint64_t, 2> codec_header{};
};

/// A decoded image: RGB, rows packed (stride width * 3).
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;
};

class ImageDecoder {
 public:
  explicit ImageDecoder(DecodeOptions options = {});

  const DecodeOptions& options() const { return options_; }
  /// Format and size from the header alone. Throws DecodeError if unrecognised, corrupt,
  /// or larger than max_pixels.
  ImageInfo probe(std::span<const uint8_t> bytes, const std::string& path) const;
  /// The whole image as RGB.
  RgbImage decode(std::span<const uint8_t> bytes, const std::string& path) const;
  /// Decode and apply `g` (planned for `info`'s size), writing g.out_height() x g.out_width()
  /// x 3 bytes to `out` (which must hold at least that many). `info` is what probe() returned
  /// for these same bytes (ConfigError if it visibly is not: another format or file size).
  void decode_into(std::span<const uint8_t> bytes, const std::string& path, const ImageInfo& info, const Geometry& g,
                   std::span<uint8_t> out) const;
  /// probe() and the above, for a caller that has no ImageInfo.
  void decode_into(std::span<const uint8_t> bytes, const std::string& path, const Geometry& g,
                   std::span<uint8_t> out) const;

 private:
  DecodeOptions options_;
};

}  // namespace ringloader::datasets
