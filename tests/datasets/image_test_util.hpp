#pragma once
// Helpers for the image tests: a temp folder that removes itself, and writers that make
// images at runtime (TurboJPEG, stb_image_write, libwebp) from known pixels.
#include <stdlib.h>
#include <turbojpeg.h>
#include <webp/encode.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <stb/stb_image_write.h>

#include "datasets/sample_writer.hpp"
#include "datasets/schema.hpp"

#include "tests/support/temp_dir.hpp"

namespace ringloader::test {

/// An RGB image from f(x, y) -> {r, g, b}.
inline std::vector<uint8_t> make_rgb(int w, int h, const std::function<std::array<uint8_t, 3>(int, int)>& f) {
  std::vector<uint8_t> px(static_cast<size_t>(w * h * 3));
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const auto c = f(x, y);
      std::memcpy(&px[static_cast<size_t>((y * w + x) * 3)], c.data(), 3);
    }
  }
  return px;
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

/// JPEG bytes of `px` (w x h, `pixel_format` TJPF_RGB / TJPF_GRAY / TJPF_CMYK).
inline std::vector<uint8_t> encode_jpeg(const std::vector<uint8_t>& px, int w, int h, int quality = 95,
                                        int subsamp = TJSAMP_444, int pixel_format = TJPF_RGB, int flags = 0) {
  tjhandle tj = tjInitCompress();
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  const int rc = tjCompress2(tj, px.data(), w, 0, h, pixel_format, &buf, &size, subsamp, quality, flags);
  std::vector<uint8_t> out;
  if (rc == 0) out.assign(buf, buf + size);
  tjFree(buf);
  tjDestroy(tj);
  if (rc != 0) throw std::runtime_error("tjCompress2 failed");
  return out;
}

inline std::vector<uint8_t> encode_png(const std::vector<uint8_t>& px, int w, int h, int comp = 3) {
  std::vector<uint8_t> out;
  stbi_write_png_to_func(
      [](void* ctx, void* data, int size) {
        auto* v = static_cast<std::vector<uint8_t>*>(ctx);
        v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
      },
      &out, w, h, comp, px.data(), w * comp);
  return out;
}

/// Lossless WebP (exact pixels) or lossy at `quality`.
inline std::vector<uint8_t> encode_webp(const std::vector<uint8_t>& px, int w, int h, bool lossless, float quality = 90) {
  uint8_t* buf = nullptr;
  const size_t size = lossless ? WebPEncodeLosslessRGB(px.data(), w, h, w * 3, &buf)
                               : WebPEncodeRGB(px.data(), w, h, w * 3, quality, &buf);
  std::vector<uint8_t> out(buf, buf + size);
  WebPFree(buf);
  if (size == 0) throw std::runtime_error("WebP encode failed");
  return out;
}

/// Buffers for one sample of `schema`, and a SampleWriter over them.
struct SampleBuffers {
  datasets::Schema schema;
  std::vector<std::vector<std::byte>> fields;
  std::vector<datasets::FieldTarget> targets;

  explicit SampleBuffers(datasets::Schema s) : schema(std::move(s)) {
    for (const auto& f : schema.fields) fields.emplace_back(f.max_bytes());
    for (auto& b : fields) targets.push_back({b.data(), b.size(), nullptr});
  }
  datasets::SampleWriter writer(int64_t index, uint64_t epoch = 0, uint64_t seed = 0) const {
    return datasets::SampleWriter(schema, targets, datasets::SampleContext{index, epoch, seed, -1});
  }
  std::vector<uint8_t> image() const {
    const auto& b = fields[0];
    return std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(b.data()),
                                reinterpret_cast<const uint8_t*>(b.data()) + b.size());
  }
  int64_t label() const {
    int64_t l = 0;
    std::memcpy(&l, fields[1].data(), sizeof l);
    return l;
  }
};

}  // namespace ringloader::test
