// Region-of-interest JPEG decode (DecodeOptions::roi): byte-identical to decoding the whole
// image at the same DCT scale and resampling the whole source box, then keeping the window.
#include <libyuv.h>
#include <turbojpeg.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "datasets/image_decoder.hpp"
#include "datasets/rng.hpp"
#include "datasets/transforms.hpp"
#include "tests/datasets/image_test_util.hpp"

using namespace ringloader;
using namespace ringloader::datasets;
using ringloader::test::encode_jpeg;
using ringloader::test::encode_png;
using ringloader::test::make_rgb;

namespace {

// A textured image: gradients plus a hash, so a pixel off by one row or column shows.
std::vector<uint8_t> textured(int w, int h) {
  return make_rgb(w, h, [](int x, int y) {
    const uint32_t n = (static_cast<uint32_t>(x) * 73856093u) ^ (static_cast<uint32_t>(y) * 19349663u);
    return std::array<uint8_t, 3>{static_cast<uint8_t>(x * 3 + (n & 31)), static_cast<uint8_t>(y * 5 + ((n >> 5) & 31)),
                                  static_cast<uint8_t>((x + y) * 2 + ((n >> 10) & 63))};
  });
}

// What the decoder promises, computed the long way: the whole image decoded by TurboJPEG (chroma
// upsampled by repetition, TJFLAG_FASTUPSAMPLE) at
// the DCT scale the decoder picks, the whole scaled box resampled by libyuv's bilinear scaler,
// the window cut out (zero outside the image), then mirrored.
std::vector<uint8_t> reference(const std::vector<uint8_t>& jpg, const Geometry& g) {
  int w = 0, h = 0, ss = 0, cs = 0;
  tjhandle tj = tjInitDecompress();
  REQUIRE(tjDecompressHeader3(tj, jpg.data(), static_cast<unsigned long>(jpg.size()), &w, &h, &ss, &cs) == 0);
  int denom = 1;
  for (int d : {8, 4, 2}) {
    if (g.source.width / d >= g.resize_width && g.source.height / d >= g.resize_height) {
      denom = d;
      break;
    }
  }
  const tjscalingfactor sf{1, denom};
  const int sw = TJSCALED(w, sf), sh = TJSCALED(h, sf);
  std::vector<uint8_t> bgrx(static_cast<size_t>(sw) * static_cast<size_t>(sh) * 4);
  REQUIRE(tjDecompress2(tj, jpg.data(), static_cast<unsigned long>(jpg.size()), bgrx.data(), sw, 0, sh, TJPF_BGRX, TJFLAG_FASTUPSAMPLE) == 0);
  tjDestroy(tj);
  const int x0 = g.source.x / denom, y0 = g.source.y / denom;
  const int x1 = std::min(sw, (g.source.x + g.source.width + denom - 1) / denom);
  const int y1 = std::min(sh, (g.source.y + g.source.height + denom - 1) / denom);
  const int bw = std::max(1, x1 - x0), bh = std::max(1, y1 - y0);
  const int rw = g.resize_width, rh = g.resize_height;
  std::vector<uint8_t> scaled(static_cast<size_t>(rw) * static_cast<size_t>(rh) * 4);
  REQUIRE(libyuv::ARGBScale(bgrx.data() + (static_cast<size_t>(y0) * static_cast<size_t>(sw) + static_cast<size_t>(x0)) * 4,
                            sw * 4, bw, bh, scaled.data(), rw * 4, rw, rh, libyuv::kFilterBilinear) == 0);
  const int ow = g.out_width(), oh = g.out_height();
  std::vector<uint8_t> out(static_cast<size_t>(ow) * static_cast<size_t>(oh) * 3, 0);
  for (int y = 0; y < oh; ++y) {
    for (int x = 0; x < ow; ++x) {
      const int sx = g.window.x + x, sy = g.window.y + y;
      if (sx < 0 || sy < 0 || sx >= rw || sy >= rh) continue;
      const uint8_t* p = &scaled[(static_cast<size_t>(sy) * static_cast<size_t>(rw) + static_cast<size_t>(sx)) * 4];
      const int dx = g.flip ? ow - 1 - x : x;
      uint8_t* o = &out[(static_cast<size_t>(y) * static_cast<size_t>(ow) + static_cast<size_t>(dx)) * 3];
      o[0] = p[2];
      o[1] = p[1];
      o[2] = p[0];
    }
  }
  return out;
}

std::vector<uint8_t> roi_decode(const std::vector<uint8_t>& jpg, const Geometry& g, bool roi = true) {
  DecodeOptions o;
  o.roi = roi;
  std::vector<uint8_t> out(static_cast<size_t>(g.out_width()) * static_cast<size_t>(g.out_height()) * 3);
  ImageDecoder(o).decode_into(jpg, "roi.jpg", g, out);
  return out;
}

size_t differing_bytes(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  REQUIRE(a.size() == b.size());
  size_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += a[i] != b[i];
  return n;
}

double mean_abs(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += std::abs(int{a[i]} - int{b[i]});
  return s / static_cast<double>(a.size());
}

}  // namespace

TEST_CASE("region-of-interest decode equals whole-image decode, resample and crop", "[decoder][jpeg][roi]") {
  struct Kind {
    const char* name;
    int w, h, subsamp, pixel_format, flags;
  };
  const Kind kinds[] = {
      {"4:2:0", 465, 420, TJSAMP_420, TJPF_RGB, 0},
      {"4:2:2 odd size", 333, 251, TJSAMP_422, TJPF_RGB, 0},
      {"4:4:4", 300, 360, TJSAMP_444, TJPF_RGB, 0},
      {"4:4:0", 257, 199, TJSAMP_440, TJPF_RGB, 0},
      {"grey", 401, 301, TJSAMP_GRAY, TJPF_GRAY, 0},
      {"progressive 4:2:0", 465, 420, TJSAMP_420, TJPF_RGB, TJFLAG_PROGRESSIVE},
      {"large 4:2:0 (DCT 1/2, 1/4)", 1203, 997, TJSAMP_420, TJPF_RGB, 0},
  };
  const Pipeline rrc = Pipeline::random_crop_flip(224);
  const Pipeline rrc_small = Pipeline().random_resized_crop(96).random_horizontal_flip();
  const Pipeline centre = Pipeline::center(256, 224);
  const Pipeline centre_small = Pipeline::center(73, 64);
  for (const Kind& k : kinds) {
    SECTION(k.name) {
      std::vector<uint8_t> px = textured(k.w, k.h);
      if (k.pixel_format == TJPF_GRAY) {
        std::vector<uint8_t> grey(static_cast<size_t>(k.w) * static_cast<size_t>(k.h));
        for (size_t i = 0; i < grey.size(); ++i) grey[i] = px[i * 3 + 1];
        px = std::move(grey);
      }
      const auto jpg = encode_jpeg(px, k.w, k.h, 90, k.subsamp, k.pixel_format, k.flags);
      Rng rng(42);
      int compared = 0;
      for (int i = 0; i < 40; ++i) {
        const Pipeline& p = i % 4 == 0 ? centre : i % 4 == 1 ? centre_small : i % 4 == 2 ? rrc : rrc_small;
        const Geometry g = p.plan(k.w, k.h, rng);
        INFO("geometry " << i << ": box " << g.source.x << "," << g.source.y << " " << g.source.width << "x"
                         << g.source.height << " -> " << g.resize_width << "x" << g.resize_height << ", window "
                         << g.window.x << "," << g.window.y << " " << g.window.width << "x" << g.window.height
                         << (g.flip ? " flipped" : ""));
        const auto got = roi_decode(jpg, g);
        // From 2.5x down (after the DCT scale) the decoder keeps the planar box filter.
        int d = 1;
        for (int c : {8, 4, 2}) {
          if (g.source.width / c >= g.resize_width && g.source.height / c >= g.resize_height) {
            d = c;
            break;
          }
        }
        const int bw = (g.source.x + g.source.width + d - 1) / d - g.source.x / d;
        const int bh = (g.source.y + g.source.height + d - 1) / d - g.source.y / d;
        if (2 * bw >= 5 * g.resize_width || 2 * bh >= 5 * g.resize_height) continue;
        CHECK(differing_bytes(got, reference(jpg, g)) == 0);
        ++compared;
      }
      CHECK(compared >= 20);
    }
  }
}

TEST_CASE("roi = false decodes the whole image through the planar path, to the same picture", "[decoder][jpeg][roi]") {
  const int w = 465, h = 420;
  const auto jpg = encode_jpeg(textured(w, h), w, h, 90, TJSAMP_420);
  Rng rng(7);
  for (const Pipeline& p : {Pipeline::center(256, 224), Pipeline::random_crop_flip(224)}) {
    for (int i = 0; i < 5; ++i) {
      const Geometry g = p.plan(w, h, rng);
      const auto with = roi_decode(jpg, g, true);
      const auto without = roi_decode(jpg, g, false);
      CHECK(with != without);                // two different resamplers ...
      CHECK(mean_abs(with, without) < 8.0);  // ... of the same picture (a noisy texture: box vs bilinear)
    }
  }
}

TEST_CASE("a region-of-interest decode still reports a truncated JPEG", "[decoder][jpeg][roi][bad]") {
  const int w = 465, h = 420;
  const auto jpg = encode_jpeg(textured(w, h), w, h, 90, TJSAMP_420);
  // Only the top rows are needed, but the file is cut in its lower half: without the EOI
  // marker the whole image is decoded, and the truncation is reported as without ROI.
  const Geometry top{Box{0, 0, 100, 50}, 100, 50, Box{0, 0, 100, 50}, false};
  std::vector<uint8_t> out(100 * 50 * 3);
  const std::vector<uint8_t> cut(jpg.begin(), jpg.begin() + static_cast<ptrdiff_t>(jpg.size() * 2 / 3));
  for (bool roi : {true, false}) {
    DecodeOptions o;
    o.roi = roi;
    try {
      ImageDecoder(o).decode_into(cut, "cut.jpg", top, out);
      FAIL("a truncated JPEG decoded");
    } catch (const DecodeError& e) {
      CHECK_THAT(e.what(), Catch::Contains("cut.jpg") && Catch::Contains("truncated"));
    }
  }
}

TEST_CASE("a region-of-interest PNG decode stops below the box, to the same picture", "[decoder][png][roi]") {
  const int w = 465, h = 420;
  const auto png = encode_png(textured(w, h), w, h);
  const Pipeline rrc = Pipeline::random_crop_flip(224);
  Rng rng(7);
  int above_bottom = 0;
  for (int i = 0; i < 30; ++i) {
    const Geometry g = (i % 3 == 0 ? Pipeline::center(256, 224) : rrc).plan(w, h, rng);
    above_bottom += g.source.y + g.source.height < h;
    CHECK(differing_bytes(roi_decode(png, g), roi_decode(png, g, false)) == 0);
  }
  CHECK(above_bottom >= 10);  // most boxes end above the last row: those decodes stopped early

  // A file cut short, or damaged below the box, is refused whatever the box, as the whole
  // decode refuses it: whether a sample fails must not depend on the crop drawn.
  const Geometry top{Box{0, 0, 200, 100}, 224, 224, Box{0, 0, 224, 224}, false};
  std::vector<uint8_t> cut(png.begin(), png.end() - 40);
  CHECK_THROWS_AS(roi_decode(cut, top), DecodeError);
  CHECK_THROWS_AS(roi_decode(cut, top, false), DecodeError);
  std::vector<uint8_t> flipped = png;
  flipped[flipped.size() * 3 / 4] ^= 0x10;  // inside the image data, far below row 100
  CHECK_THROWS_AS(roi_decode(flipped, top), DecodeError);
  CHECK_THROWS_AS(roi_decode(flipped, top, false), DecodeError);
}
