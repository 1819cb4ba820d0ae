#include "datasets/detail/pack_image.hpp"

#include <turbojpeg.h>

#include <algorithm>
#include <memory>

#include "core/error.hpp"
#include "datasets/detail/file_reader.hpp"
#include "datasets/transforms.hpp"

namespace ringloader::datasets::detail {

namespace {

struct TjFree {
  void operator()(void* h) const { tjDestroy(h); }
};

}  // namespace

const char* extension_of(ImageFormat f) {
  switch (f) {
    case ImageFormat::kJpeg: return "jpg";
    case ImageFormat::kPng: return "png";
    case ImageFormat::kWebp: return "webp";
    case ImageFormat::kBmp: return "bmp";
    case ImageFormat::kGif: return "gif";
    case ImageFormat::kTga: return "tga";
    case ImageFormat::kPnm: return "ppm";
    case ImageFormat::kPsd: return "psd";
    case ImageFormat::kHdr: return "hdr";
    case ImageFormat::kUnknown: break;
  }
  return "bin";
}

PackedImage pack_image(const std::string& path, int max_short_side, int quality, const ImageDecoder& dec) {
  PackedImage p;
  try {
    std::vector<uint8_t> bytes = read_file(path, size_t{256} << 20);
    const ImageInfo info = dec.probe(bytes, path);
    const int short_side = std::min(info.width, info.height);
    if (max_short_side > 0 && short_side > max_short_side) {
      const auto [w, h] = resize_shorter_side(info.width, info.height, max_short_side);
      std::vector<uint8_t> rgb(static_cast<size_t>(w) * static_cast<size_t>(h) * 3);
      const Geometry g{Box{0, 0, info.width, info.height}, w, h, Box{0, 0, w, h}, false};
      dec.decode_into(bytes, path, info, g, rgb);
      thread_local std::unique_ptr<void, TjFree> tj(tjInitCompress());
      unsigned char* jpeg = nullptr;
      unsigned long size = 0;
      if (!tj || tjCompress2(tj.get(), rgb.data(), w, 0, h, TJPF_RGB, &jpeg, &size, TJSAMP_420, quality, 0) != 0) {
        const std::string why = tj ? tjGetErrorStr2(tj.get()) : "tjInitCompress failed";
        tjFree(jpeg);
        throw Error(path + ": JPEG encode failed: " + why);
      }
      p.bytes.assign(jpeg, jpeg + size);
      tjFree(jpeg);
      p.ext = "jpg";
      p.width = static_cast<uint32_t>(w);
      p.height = static_cast<uint32_t>(h);
      p.reencoded = true;
    } else {
      const int tw = std::min(info.width, 8), th = std::min(info.height, 8);
      std::vector<uint8_t> scratch(static_cast<size_t>(tw) * static_cast<size_t>(th) * 3);
      dec.decode_into(bytes, path, info, Geometry{Box{0, 0, info.width, info.height}, tw, th, Box{0, 0, tw, th}, false},
                      scratch);
      p.ext = extension_of(info.format);
      p.width = static_cast<uint32_t>(info.width);
      p.height = static_cast<uint32_t>(info.height);
      p.bytes = std::move(bytes);
    }
  } catch (const ResourceError&) {
    throw;  // the machine ran short: stop, do not call a good file bad
  } catch (const Error& e) {
    p.error = e.what();
    const std::string prefix = path + ": ";
    if (p.error.rfind(prefix, 0) == 0) p.error = p.error.substr(prefix.size());
  }
  return p;
}

}  // namespace ringloader::datasets::detail
