#pragma once
// pack_image(): one source image made ready for a shard - read, probed, checked to decode, and,
// when its shorter side exceeds the limit, resized and re-encoded as JPEG. Used by ShardWriter
// (datasets/shard_writer.hpp) from its threads. Internal to datasets/.
//
//   detail::PackedImage p = detail::pack_image("/data/cat/1.png", 256, 90, decoder);
//   if (!p.error.empty()) bad.emplace_back(path, p.error);   // left out of the pack
//
// Thread-safe (a TurboJPEG compressor per thread). Deterministic: the same file and options give
// the same bytes.
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/image_decoder.hpp"

namespace ringloader::datasets::detail {

/// One source image, ready for the tar.
struct PackedImage {
  std::vector<uint8_t> bytes;
  std::string ext;  ///< "jpg", "png", ... (the member's extension)
  uint32_t width = 0, height = 0;
  bool reencoded = false;
  std::string error;  ///< non-empty: a bad file, left out (the reason, without the path)
};

/// "jpg" for kJpeg, ...; "bin" for kUnknown.
const char* extension_of(ImageFormat f);

/// Reads `path` and decodes it once (a file that probes but does not decode is a bad file here,
/// not at training time). If `max_short_side` > 0 and the image's shorter side exceeds it, the
/// result is the image resized to it and encoded as JPEG at `quality`; else the file's bytes.
/// A file that cannot be read or decoded comes back with `error` set; a ResourceError (the
/// machine ran short, not the file's fault) is thrown.
PackedImage pack_image(const std::string& path, int max_short_side, int quality, const ImageDecoder& dec);

}  // namespace ringloader::datasets::detail
