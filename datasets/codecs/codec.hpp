#pragma once
// Codec: what ImageDecoder knows of one image format, as a record of functions (magic number,
// header read, decode) and the file name extensions. One file a library under
// datasets/codecs/ defines the records; image_decoder.cpp walks the table and keeps what is
// common to every format: the pixel limit, the geometry checks, the error translation.
// A new format is a new record here and in kCodecs. Internal to datasets/ (not installed).
//
// The records are constants (constant-initialised: nothing runs at static-init time) and their
// functions keep only per-thread state: safe from any thread, before and after fork. A codec
// throws DecodeError(path, one-line reason) for a bad file and a ResourceError for a failed
// allocation (common.hpp: out_of_memory()).
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "datasets/image_decoder.hpp"
#include "datasets/transforms.hpp"

namespace ringloader::datasets::codecs {

struct Codec {
  ImageFormat format;
  const char* name;  ///< "JPEG": what format_name() and the messages say
  /// File name extensions, lower case with the dot, in the order decodable_extensions() lists them.
  std::span<const std::string_view> extensions;
  /// True if `bytes` start with this format's magic number. Null for TGA, which has none:
  /// it is tried on what no other codec and no format we can name claims.
  bool (*sniff)(std::span<const uint8_t> bytes);
  /// The header: format, size, and in ImageInfo::codec_header what decode() needs again. A
  /// size read before a library sees the file is checked against options.max_pixels here; the
  /// caller checks the final size.
  ImageInfo (*probe)(std::span<const uint8_t> bytes, const std::string& path, const DecodeOptions& options);
  /// The image through `g` into `out` (g.out_height() x g.out_width() x 3 bytes). `probed` is
  /// what probe() returned for these bytes, and `g` was checked to fit it.
  void (*decode)(std::span<const uint8_t> bytes, const std::string& path, const ImageInfo& probed, const Geometry& g,
                 const DecodeOptions& options, uint8_t* out);
};

extern const Codec kJpeg;  // jpeg.cpp
extern const Codec kPng;   // png.cpp
extern const Codec kPnm;   // pnm.cpp
extern const Codec kWebp;  // webp.cpp
extern const Codec kBmp;   // stb.cpp, as are the four below
extern const Codec kGif;
extern const Codec kTga;
extern const Codec kPsd;
extern const Codec kHdr;

/// Every codec, in the order decodable_extensions() lists their extensions. Magic numbers
/// never overlap, so the order does not change what is sniffed; TGA is tried apart.
inline constexpr const Codec* kCodecs[] = {&kJpeg, &kPng, &kPnm, &kBmp, &kWebp, &kGif, &kTga, &kPsd, &kHdr};

// stb_image, which the kStb backend uses for PNG and JPEG too (stb.cpp).

/// The size as stb_image reads it; "corrupt <format> header (<stb's reason>)" if it cannot.
ImageInfo stb_probe(std::span<const uint8_t> bytes, const std::string& path, ImageFormat format);
/// Codec::decode through stb_image (and the resampler `options` picks).
void stb_decode(std::span<const uint8_t> bytes, const std::string& path, const ImageInfo& probed, const Geometry& g,
                const DecodeOptions& options, uint8_t* out);

}  // namespace ringloader::datasets::codecs
