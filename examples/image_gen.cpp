#include "examples/image_gen.hpp"

#include <stb/stb_image_write.h>
#include <turbojpeg.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "datasets/rng.hpp"

namespace ringloader::examples {

namespace {

using datasets::Rng;

struct Rgb {
  float r, g, b;
};

Rgb mix(Rgb a, Rgb b, float t) { return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t}; }

Rgb hsv(float h, float s, float v) {
  h = std::fmod(h, 1.0f) * 6.0f;
  const int i = static_cast<int>(h);
  const float f = h - static_cast<float>(i);
  const float p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  switch (i % 6) {
    case 0: return {v, t, p};
    case 1: return {q, v, p};
    case 2: return {p, v, t};
    case 3: return {p, q, v};
    case 4: return {t, p, v};
    default: return {v, p, q};
  }
}

// Smooth value noise: random values on a lattice, smoothstep-interpolated.
class ValueNoise {
 public:
  explicit ValueNoise(uint64_t seed) : seed_(seed) {}
  float at(float x, float y) const {
    const float fx = std::floor(x), fy = std::floor(y);
    const auto ix = static_cast<int64_t>(fx), iy = static_cast<int64_t>(fy);
    const float tx = smooth(x - fx), ty = smooth(y - fy);
    const float a = lattice(ix, iy), b = lattice(ix + 1, iy), c = lattice(ix, iy + 1), d = lattice(ix + 1, iy + 1);
    return (a + (b - a) * tx) + ((c + (d - c) * tx) - (a + (b - a) * tx)) * ty;
  }
  /// Octaves of noise, in [-1, 1]-ish.
  float fbm(float x, float y, int octaves) const {
    float sum = 0, amp = 1, norm = 0;
    for (int o = 0; o < octaves; ++o) {
      sum += amp * at(x, y);
      norm += amp;
      x *= 2.03f;
      y *= 2.03f;
      amp *= 0.5f;
    }
    return sum / norm;
  }

 private:
  static float smooth(float t) { return t * t * (3 - 2 * t); }
  float lattice(int64_t x, int64_t y) const {
    uint64_t s = seed_ ^ (static_cast<uint64_t>(x) * 0x9E3779B97F4A7C15ULL) ^ (static_cast<uint64_t>(y) * 0xC2B2AE3D27D4EB4FULL);
    return static_cast<float>(datasets::splitmix64(s) >> 40) / static_cast<float>(1 << 23) - 1.0f;
  }
  uint64_t seed_;
};

struct Hill {
  float base, amp1, freq1, phase1, amp2, freq2, phase2;
  Rgb top, bottom;
};

struct Blob {
  float cx, cy, rx, ry;
  Rgb colour;
  float texture;
};

void write_file(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace

std::vector<uint8_t> draw_scene(int width, int height, int style, uint64_t seed) {
  Rng rng(datasets::derive_seed(seed, static_cast<uint64_t>(style), 0x5ce7e));
  const auto u = [&](double lo, double hi) { return static_cast<float>(rng.uniform(lo, hi)); };
  const float w = static_cast<float>(width), h = static_cast<float>(height);
  // The class sets a base hue; each image varies it.
  const float hue = std::fmod(static_cast<float>(style) * 0.137f + u(-0.04, 0.04) + 1.0f, 1.0f);
  const Rgb sky_top = hsv(0.55f + u(-0.08, 0.08), u(0.4, 0.8), u(0.45, 0.8));
  const Rgb sky_low = hsv(0.08f + u(-0.05, 0.1), u(0.2, 0.5), u(0.8, 1.0));
  const float horizon = h * u(0.3, 0.55);
  const float sun_x = w * u(0.1, 0.9), sun_y = horizon * u(0.2, 0.8), sun_r = h * u(0.04, 0.1);
  const Rgb sun = hsv(0.12f, u(0.1, 0.5), 1.0f);

  std::vector<Hill> hills(static_cast<size_t>(2 + rng.below(3)));
  for (size_t i = 0; i < hills.size(); ++i) {
    const float depth = static_cast<float>(i) / static_cast<float>(hills.size());
    Hill& hl = hills[i];
    hl.base = horizon + (h - horizon) * depth * 0.7f;
    hl.amp1 = h * u(0.04, 0.12);
    hl.freq1 = u(1.0, 3.0) * 6.2832f / w;
    hl.phase1 = u(0, 6.28);
    hl.amp2 = h * u(0.01, 0.04);
    hl.freq2 = u(5.0, 12.0) * 6.2832f / w;
    hl.phase2 = u(0, 6.28);
    const Rgb c = hsv(hue + u(-0.06, 0.06), u(0.35, 0.8), u(0.3, 0.75) * (0.6f + 0.4f * depth));
    hl.top = c;
    hl.bottom = mix(c, Rgb{0.05f, 0.05f, 0.05f}, 0.45f);
  }
  std::vector<Blob> blobs(static_cast<size_t>(3 + rng.below(8)));
  for (Blob& b : blobs) {
    b.cx = w * u(0, 1);
    b.cy = horizon + (h - horizon) * u(0.1, 1.0);
    b.rx = w * u(0.02, 0.09);
    b.ry = b.rx * u(0.6, 1.8);
    b.colour = hsv(hue + 0.5f + u(-0.15, 0.15), u(0.3, 0.9), u(0.2, 0.9));
    b.texture = u(0.05, 0.25);
  }
  const ValueNoise cloud(rng.next()), grain(rng.next()), detail(rng.next());
  const float cloud_scale = u(3, 6) / w;
  const float tex_scale = u(25, 60) / w;

  std::vector<uint8_t> px(static_cast<size_t>(width) * static_cast<size_t>(height) * 3);
  std::vector<float> ridge(hills.size() * static_cast<size_t>(width));
  for (size_t i = 0; i < hills.size(); ++i) {
    const Hill& hl = hills[i];
    for (int x = 0; x < width; ++x) {
      const float fx = static_cast<float>(x);
      ridge[i * static_cast<size_t>(width) + static_cast<size_t>(x)] =
          hl.base - hl.amp1 * std::sin(fx * hl.freq1 + hl.phase1) - hl.amp2 * std::sin(fx * hl.freq2 + hl.phase2);
    }
  }
  for (int y = 0; y < height; ++y) {
    const float fy = static_cast<float>(y);
    for (int x = 0; x < width; ++x) {
      const float fx = static_cast<float>(x);
      // Sky: vertical gradient, soft clouds, the sun with a halo.
      Rgb c = mix(sky_top, sky_low, std::clamp(fy / horizon, 0.0f, 1.0f));
      const float cl = std::clamp(cloud.fbm(fx * cloud_scale, fy * cloud_scale * 2.5f, 4) * 1.6f - 0.1f, 0.0f, 1.0f);
      c = mix(c, Rgb{0.95f, 0.95f, 0.97f}, cl * 0.7f);
      const float d = std::hypot(fx - sun_x, fy - sun_y);
      if (d < sun_r) c = sun;
      else c = mix(c, sun, 0.35f * std::exp(-(d - sun_r) / (sun_r * 1.5f)));
      // Hills, back to front, textured and shaded by depth below the ridge.
      bool ground = false;
      for (size_t i = 0; i < hills.size(); ++i) {
        const float top = ridge[i * static_cast<size_t>(width) + static_cast<size_t>(x)];
        if (fy >= top) {
          const Hill& hl = hills[i];
          const float t = std::clamp((fy - top) / (h - top + 1.0f), 0.0f, 1.0f);
          c = mix(hl.top, hl.bottom, t);
          const float edge = std::clamp((fy - top) / 2.0f, 0.0f, 1.0f);  // antialiased ridge
          if (edge < 1.0f) c = mix(mix(sky_low, c, 0.5f), c, edge);
          ground = true;
        }
      }
      // Trees and rocks: ellipses with their own texture.
      for (const Blob& b : blobs) {
        const float ex = (fx - b.cx) / b.rx, ey = (fy - b.cy) / b.ry;
        const float r2 = ex * ex + ey * ey;
        if (r2 < 1.0f) {
          const float shade = 0.75f + 0.25f * (-ex - ey) / 1.5f;
          const float n = detail.fbm(fx * tex_scale * 1.7f, fy * tex_scale * 1.7f, 3);
          Rgb bc{b.colour.r * shade, b.colour.g * shade, b.colour.b * shade};
          bc = mix(bc, Rgb{bc.r * (1 + n), bc.g * (1 + n), bc.b * (1 + n)}, b.texture * 3);
          c = mix(c, bc, std::clamp((1.0f - r2) * 8.0f, 0.0f, 1.0f));
        }
      }
      // Grain: stronger on the ground (grass, gravel) than in the sky.
      const float g = grain.fbm(fx * tex_scale, fy * tex_scale, 3);
      const float amp = ground ? 0.16f : 0.03f;
      const float m = 1.0f + amp * g;
      const size_t o = (static_cast<size_t>(y) * static_cast<size_t>(width) + static_cast<size_t>(x)) * 3;
      px[o] = static_cast<uint8_t>(std::clamp(c.r * m * 255.0f, 0.0f, 255.0f));
      px[o + 1] = static_cast<uint8_t>(std::clamp(c.g * m * 255.0f, 0.0f, 255.0f));
      px[o + 2] = static_cast<uint8_t>(std::clamp(c.b * m * 255.0f, 0.0f, 255.0f));
    }
  }
  return px;
}

GeneratedFolder generate_image_folder(const std::string& root, const ImageGenOptions& o) {
  if (o.num_classes <= 0 || o.images_per_class < 0 || o.min_width <= 0 || o.min_height <= 0 ||
      o.max_width < o.min_width || o.max_height < o.min_height || o.quality < 1 || o.quality > 100) {
    throw std::invalid_argument("generate_image_folder: bad options");
  }
  GeneratedFolder made{root, 0, 0, 0};
  std::unique_ptr<void, int (*)(tjhandle)> tj(tjInitCompress(), tjDestroy);
  if (!tj) throw std::runtime_error(std::string("tjInitCompress: ") + tjGetErrorStr2(nullptr));
  for (int c = 0; c < o.num_classes; ++c) {
    char cls[32];
    std::snprintf(cls, sizeof cls, "class_%02d", c);
    const std::string dir = root + "/" + cls;
    std::filesystem::create_directories(dir);
    for (int i = 0; i < o.images_per_class; ++i) {
      const uint64_t image_seed = datasets::derive_seed(o.seed, static_cast<uint64_t>(c), static_cast<uint64_t>(i));
      Rng rng(image_seed);
      const int w = o.min_width + static_cast<int>(rng.below(static_cast<uint64_t>(o.max_width - o.min_width + 1)));
      const int h = o.min_height + static_cast<int>(rng.below(static_cast<uint64_t>(o.max_height - o.min_height + 1)));
      const bool png = rng.uniform() < o.png_fraction;
      const std::vector<uint8_t> px = draw_scene(w, h, c, image_seed);
      char name[32];
      std::snprintf(name, sizeof name, "img_%05d.%s", i, png ? "png" : "jpg");
      const std::string path = dir + "/" + name;
      if (png) {
        if (stbi_write_png(path.c_str(), w, h, 3, px.data(), w * 3) == 0) throw std::runtime_error("cannot write " + path);
        made.bytes += std::filesystem::file_size(path);
      } else {
        unsigned char* buf = nullptr;
        unsigned long size = 0;
        if (tjCompress2(tj.get(), px.data(), w, 0, h, TJPF_RGB, &buf, &size, TJSAMP_420, o.quality, 0) != 0) {
          tjFree(buf);
          throw std::runtime_error(path + ": tjCompress2: " + tjGetErrorStr2(tj.get()));
        }
        std::unique_ptr<unsigned char, void (*)(unsigned char*)> owned(buf, tjFree);
        write_file(path, buf, size);
        made.bytes += size;
        ++made.jpegs;
      }
      ++made.images;
    }
  }
  return made;
}

}  // namespace ringloader::examples
