#include "datasets/transforms.hpp"

#include <algorithm>
#include <climits>
#include <cmath>

#include "core/error.hpp"

namespace ringloader::datasets {

namespace {

// Python's round(): half to even, which std::nearbyint does under the default rounding mode.
int round_half_even(double v) { return static_cast<int>(std::nearbyint(v)); }

void require_positive(const char* step, const char* what, int v) {
  if (v <= 0) {
    throw ConfigError(std::string(step) + ": " + what + " must be positive, got " + std::to_string(v));
  }
}

void require_range(const char* step, const char* what, std::array<double, 2> r) {
  if (!(r[0] > 0) || !(r[1] >= r[0]) || !std::isfinite(r[1])) {
    throw ConfigError(std::string(step) + ": " + what + " must be (lo, hi) with 0 < lo <= hi, got (" +
                      std::to_string(r[0]) + ", " + std::to_string(r[1]) + ")");
  }
}

// Crop the current image (the window, mirrored if g.flip) at (x, y, w, h) in its own coordinates.
void crop_current(Geometry& g, int x, int y, int w, int h) {
  if (g.flip) x = g.window.width - x - w;
  g.window = Box{g.window.x + x, g.window.y + y, w, h};
}

// Resample the current image to w x h. Exact when nothing was cropped after the last resample
// (the window is the whole resampled image) or nothing was resampled yet; otherwise the
// window is mapped back to the source and rounded to whole source pixels.
void resize_current(Geometry& g, int w, int h) {
  const bool window_is_all = g.window == Box{0, 0, g.resize_width, g.resize_height};
  if (!window_is_all) {
    const double fx = static_cast<double>(g.source.width) / g.resize_width;
    const double fy = static_cast<double>(g.source.height) / g.resize_height;
    auto clamp_round = [](double v, int lo, int hi) { return std::clamp(static_cast<int>(std::lround(v)), lo, hi); };
    const int x0 = clamp_round(g.source.x + g.window.x * fx, g.source.x, g.source.x + g.source.width - 1);
    const int y0 = clamp_round(g.source.y + g.window.y * fy, g.source.y, g.source.y + g.source.height - 1);
    const int x1 = clamp_round(g.source.x + (g.window.x + g.window.width) * fx, x0 + 1, g.source.x + g.source.width);
    const int y1 = clamp_round(g.source.y + (g.window.y + g.window.height) * fy, y0 + 1, g.source.y + g.source.height);
    g.source = Box{x0, y0, x1 - x0, y1 - y0};
  }
  g.resize_width = w;
  g.resize_height = h;
  g.window = Box{0, 0, w, h};
}

}  // namespace

Geometry Geometry::identity(int width, int height) {
  return Geometry{Box{0, 0, width, height}, width, height, Box{0, 0, width, height}, false};
}

std::array<int, 2> resize_shorter_side(int width, int height, int size) {
  const bool width_shorter = width <= height;
  const int64_t shorter = width_shorter ? width : height;
  const int64_t longer = width_shorter ? height : width;
  if (shorter == size) return {width, height};  // torchvision returns the image untouched
  // Python: int(size * long / short), a true division then truncation.
  // Saturated: a 1 x 200000 image resized to 256 would need 51,200,000 x 256; the decoder
  // refuses such an intermediate (max_pixels), the plan must not overflow first.
  const double exact = static_cast<double>(size * longer) / static_cast<double>(shorter);
  const int new_long = exact >= static_cast<double>(INT_MAX) ? INT_MAX : static_cast<int>(exact);
  return width_shorter ? std::array<int, 2>{size, new_long} : std::array<int, 2>{new_long, size};
}

Box random_resized_crop_box(int width, int height, std::array<double, 2> scale, std::array<double, 2> ratio,
                            Rng& rng) {
  const double area = static_cast<double>(width) * height;
  const double log_lo = std::log(ratio[0]);
  const double log_hi = std::log(ratio[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * rng.uniform(scale[0], scale[1]);
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    const int w = round_half_even(std::sqrt(target_area * aspect));
    const int h = round_half_even(std::sqrt(target_area / aspect));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const int i = static_cast<int>(rng.below(static_cast<uint64_t>(height - h + 1)));
      const int j = static_cast<int>(rng.below(static_cast<uint64_t>(width - w + 1)));
      return Box{j, i, w, h};
    }
  }
  // Fallback: the largest centred crop whose ratio is within range.
  const double in_ratio = static_cast<double>(width) / height;
  int w = width;
  int h = height;
  if (in_ratio < std::min(ratio[0], ratio[1])) {
    h = round_half_even(w / std::min(ratio[0], ratio[1]));
  } else if (in_ratio > std::max(ratio[0], ratio[1])) {
    w = round_half_even(h * std::max(ratio[0], ratio[1]));
  }
  return Box{(width - w) / 2, (height - h) / 2, w, h};
}

Pipeline& Pipeline::resize(int shorter_side) {
  require_positive("Resize", "size", shorter_side);
  steps_.push_back(Step{Kind::kResizeShorter, shorter_side, shorter_side, {}, {}, 0});
  return *this;
}

Pipeline& Pipeline::resize(int height, int width) {
  require_positive("Resize", "height", height);
  require_positive("Resize", "width", width);
  steps_.push_back(Step{Kind::kResizeExact, height, width, {}, {}, 0});
  return *this;
}

Pipeline& Pipeline::center_crop(int height, int width) {
  require_positive("CenterCrop", "height", height);
  require_positive("CenterCrop", "width", width);
  steps_.push_back(Step{Kind::kCenterCrop, height, width, {}, {}, 0});
  return *this;
}

Pipeline& Pipeline::random_resized_crop(int height, int width, std::array<double, 2> scale,
                                        std::array<double, 2> ratio) {
  require_positive("RandomResizedCrop", "height", height);
  require_positive("RandomResizedCrop", "width", width);
  require_range("RandomResizedCrop", "scale", scale);
  require_range("RandomResizedCrop", "ratio", ratio);
  steps_.push_back(Step{Kind::kRandomResizedCrop, height, width, scale, ratio, 0});
  return *this;
}

Pipeline& Pipeline::random_horizontal_flip(double p) {
  if (!(p >= 0 && p <= 1)) throw ConfigError("RandomHorizontalFlip: p must be in [0, 1], got " + std::to_string(p));
  steps_.push_back(Step{Kind::kFlip, 0, 0, {}, {}, p});
  return *this;
}

Pipeline& Pipeline::to_float(std::array<float, 3> mean, std::array<float, 3> std) {
  for (float s : std) {
    if (!(s != 0) || !std::isfinite(s)) throw ConfigError("Normalize: std must be finite and non-zero, got " + std::to_string(s));
  }
  format_ = OutputFormat::kFloat32CHW;
  mean_ = mean;
  std_ = std;
  return *this;
}

Pipeline& Pipeline::to_uint8_chw() {
  format_ = OutputFormat::kUInt8CHW;
  mean_ = {0, 0, 0};
  std_ = {1, 1, 1};
  return *this;
}

Pipeline Pipeline::center(int resize, int crop) { return Pipeline().resize(resize).center_crop(crop); }

Pipeline Pipeline::random_crop_flip(int size) { return Pipeline().random_resized_crop(size).random_horizontal_flip(); }

Pipeline ImageNetPreset::pipeline() const {
  Pipeline p;
  if (random_crop) {
    p.random_resized_crop(size);
  } else {
    p.resize(resize()).center_crop(size);
  }
  if (flip) p.random_horizontal_flip();
  if (to_float) p.to_float(kImageNetMean, kImageNetStd);
  return p;
}

Geometry Pipeline::plan(int width, int height, Rng& rng) const {
  if (width <= 0 || height <= 0) {
    throw ConfigError("cannot transform an empty image (" + std::to_string(width) + "x" + std::to_string(height) + ")");
  }
  Geometry g = Geometry::identity(width, height);
  for (const Step& s : steps_) {
    const int cw = g.window.width;
    const int ch = g.window.height;
    switch (s.kind) {
      case Kind::kResizeShorter: {
        const auto [nw, nh] = resize_shorter_side(cw, ch, s.height);
        if (nw != cw || nh != ch) resize_current(g, nw, nh);
        break;
      }
      case Kind::kResizeExact:
        if (s.width != cw || s.height != ch) resize_current(g, s.width, s.height);
        break;
      case Kind::kCenterCrop: {
        // torchvision pads a too-small side with zeros, (d // 2) before and the rest after.
        const int top = s.height > ch ? -((s.height - ch) / 2) : round_half_even((ch - s.height) / 2.0);
        const int left = s.width > cw ? -((s.width - cw) / 2) : round_half_even((cw - s.width) / 2.0);
        crop_current(g, left, top, s.width, s.height);
        break;
      }
      case Kind::kRandomResizedCrop: {
        const Box b = random_resized_crop_box(cw, ch, s.scale, s.ratio, rng);
        crop_current(g, b.x, b.y, b.width, b.height);
        resize_current(g, s.width, s.height);
        break;
      }
      case Kind::kFlip:
        if (rng.bernoulli(s.p)) g.flip = !g.flip;
        break;
    }
  }
  return g;
}

std::optional<std::array<int, 2>> Pipeline::output_size() const {
  std::optional<std::array<int, 2>> hw;  // unknown until a step fixes it
  for (const Step& s : steps_) {
    switch (s.kind) {
      case Kind::kResizeShorter:
        if (hw) {
          const auto [w, h] = resize_shorter_side((*hw)[1], (*hw)[0], s.height);
          hw = std::array<int, 2>{h, w};
        }
        break;
      case Kind::kResizeExact:
      case Kind::kCenterCrop:
      case Kind::kRandomResizedCrop: hw = std::array<int, 2>{s.height, s.width}; break;
      case Kind::kFlip: break;
    }
  }
  return hw;
}

std::string Pipeline::describe() const {
  std::string out;
  auto size = [](const Step& s) {
    return s.height == s.width ? std::to_string(s.height) : "(" + std::to_string(s.height) + ", " + std::to_string(s.width) + ")";
  };
  for (const Step& s : steps_) {
    switch (s.kind) {
      case Kind::kResizeShorter: out += "Resize(" + std::to_string(s.height) + ")"; break;
      case Kind::kResizeExact: out += "Resize((" + std::to_string(s.height) + ", " + std::to_string(s.width) + "))"; break;
      case Kind::kCenterCrop: out += "CenterCrop(" + size(s) + ")"; break;
      case Kind::kRandomResizedCrop: out += "RandomResizedCrop(" + size(s) + ")"; break;
      case Kind::kFlip: out += "RandomHorizontalFlip(" + std::to_string(s.p).substr(0, 4) + ")"; break;
    }
    out += " -> ";
  }
  out += format_ == OutputFormat::kUInt8HWC ? "uint8 HWC" : format_ == OutputFormat::kUInt8CHW ? "uint8 CHW" : "float32 CHW normalised";
  return out;
}

void Pipeline::to_float_chw(std::span<const uint8_t> hwc, int height, int width, std::span<float> chw) const {
  const size_t plane = static_cast<size_t>(height) * static_cast<size_t>(width);
  if (hwc.size() < plane * 3 || chw.size() < plane * 3) {
    throw ConfigError("to_float_chw: buffers smaller than 3 x " + std::to_string(height) + " x " + std::to_string(width));
  }
  // One table per channel: 768 multiplies instead of one per pixel, and the exact same
  // float for the same byte everywhere.
  std::array<std::array<float, 256>, 3> lut{};
  for (size_t c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) lut[c][static_cast<size_t>(v)] = (static_cast<float>(v) / 255.0f - mean_[c]) / std_[c];
  }
  float* r = chw.data();
  float* g = r + plane;
  float* b = g + plane;
  const uint8_t* p = hwc.data();
  for (size_t i = 0; i < plane; ++i, p += 3) {
    r[i] = lut[0][p[0]];
    g[i] = lut[1][p[1]];
    b[i] = lut[2][p[2]];
  }
}

void Pipeline::to_uint8_chw(std::span<const uint8_t> hwc, int height, int width, std::span<uint8_t> chw) {
  const size_t plane = static_cast<size_t>(height) * static_cast<size_t>(width);
  if (hwc.size() < plane * 3 || chw.size() < plane * 3) {
    throw ConfigError("to_uint8_chw: buffers smaller than 3 x " + std::to_string(height) + " x " + std::to_string(width));
  }
  uint8_t* r = chw.data();
  uint8_t* g = r + plane;
  uint8_t* b = g + plane;
  const uint8_t* p = hwc.data();
  for (size_t i = 0; i < plane; ++i, p += 3) {
    r[i] = p[0];
    g[i] = p[1];
    b[i] = p[2];
  }
}

}  // namespace ringloader::datasets
