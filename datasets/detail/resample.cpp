#include "datasets/detail/resample.hpp"

#include <libyuv.h>
#include <libyuv/scale_rgb.h>  // not pulled in by libyuv.h
#include <stb/stb_image_resize.h>

#include <algorithm>
#include <cstring>

#include "core/error.hpp"

namespace ringloader::datasets::detail {

namespace {

bool window_is_whole(const Geometry& g) { return g.window == Box{0, 0, g.resize_width, g.resize_height}; }

size_t area(int w, int h) { return static_cast<size_t>(w) * static_cast<size_t>(h); }

// The window clipped to the resized image, and where that lands in the output.
struct Clip {
  int x0, y0, x1, y1;  // in resized pixels
  bool padded;         // some of the window lies outside the image
};

Clip clip_window(const Box& w, int width, int height) {
  Clip c{std::max(0, w.x), std::max(0, w.y), std::min(width, w.x + w.width), std::min(height, w.y + w.height), false};
  c.padded = c.x0 != w.x || c.y0 != w.y || c.x1 != w.x + w.width || c.y1 != w.y + w.height;
  return c;
}

}  // namespace

void Scratch::trim(size_t keep_bytes) {
  auto shrink = [keep_bytes](std::vector<uint8_t>& v) {
    if (v.capacity() > keep_bytes) std::vector<uint8_t>().swap(v);
  };
  for (auto& p : planes) shrink(p);
  for (auto& p : scaled) shrink(p);
  shrink(rgb);
  shrink(rgb_scaled);
  shrink(out);
  for (RawBuffer* r : {&roi_rows, &roi_scaled}) {
    if (r->capacity() > keep_bytes) r->release();
  }
}

Scratch& thread_scratch() {
  thread_local Scratch scratch;
  return scratch;
}

void copy_window(const uint8_t* src, int width, int height, size_t stride, const Box& window, uint8_t* out) {
  const Clip c = clip_window(window, width, height);
  const size_t out_stride = static_cast<size_t>(window.width) * 3;
  if (c.padded) std::memset(out, 0, out_stride * static_cast<size_t>(window.height));
  if (c.x1 <= c.x0 || c.y1 <= c.y0) return;
  const size_t row_bytes = static_cast<size_t>(c.x1 - c.x0) * 3;
  for (int y = c.y0; y < c.y1; ++y) {
    std::memcpy(out + static_cast<size_t>(y - window.y) * out_stride + static_cast<size_t>(c.x0 - window.x) * 3,
                src + static_cast<size_t>(y) * stride + static_cast<size_t>(c.x0) * 3, row_bytes);
  }
}

void flip_rgb_rows(uint8_t* rgb, int width, int height) {
  // libyuv's SIMD mirror cannot work in place: each row goes through a row buffer that stays
  // in cache (a byte-swapping loop here cost 5% of a RandomResizedCrop decode).
  thread_local std::vector<uint8_t> row;
  const size_t bytes = static_cast<size_t>(width) * 3;
  row.resize(bytes);
  for (int y = 0; y < height; ++y) {
    uint8_t* p = rgb + static_cast<size_t>(y) * bytes;
    libyuv::RGB24Mirror(p, 0, row.data(), 0, width, 1);
    std::memcpy(p, row.data(), bytes);
  }
}

void resample_rgb(const RgbView& src, const Geometry& g, bool use_stb, uint8_t* out) {
  const Box& b = g.source;
  const uint8_t* box = src.data + static_cast<size_t>(b.y) * src.stride + static_cast<size_t>(b.x) * 3;
  const bool whole = window_is_whole(g);
  const uint8_t* resized = box;
  size_t resized_stride = src.stride;
  if (b.width != g.resize_width || b.height != g.resize_height) {
    uint8_t* dst = out;
    if (!whole) {
      auto& buf = thread_scratch().rgb_scaled;
      buf.resize(area(g.resize_width, g.resize_height) * 3);
      dst = buf.data();
    }
    const int dst_stride = g.resize_width * 3;
    if (use_stb) {
      if (!stbir_resize_uint8(box, b.width, b.height, static_cast<int>(src.stride), dst, g.resize_width,
                              g.resize_height, dst_stride, 3)) {
        throw Error("stb_image_resize failed");
      }
    } else {
      // libyuv "RGB24" is B,G,R in memory; the scaler treats the 3 bytes alike, so it is
      // order-agnostic. kFilterBox averages every covered source pixel: antialiased downscales.
      if (libyuv::RGBScale(box, static_cast<int>(src.stride), b.width, b.height, dst, dst_stride, g.resize_width,
                           g.resize_height, libyuv::kFilterBox) != 0) {
        throw Error("libyuv RGBScale failed");
      }
    }
    if (whole) {
      if (g.flip) flip_rgb_rows(out, g.out_width(), g.out_height());
      return;
    }
    resized = dst;
    resized_stride = static_cast<size_t>(dst_stride);
  }
  copy_window(resized, g.resize_width, g.resize_height, resized_stride, g.window, out);
  if (g.flip) flip_rgb_rows(out, g.out_width(), g.out_height());
}

void resample_yuv_full_range(const PlaneView& y, const PlaneView& u, const PlaneView& v, const Box& box,
                             const Geometry& g, uint8_t* out) {
  Scratch& s = thread_scratch();
  const int rw = g.resize_width;
  const int rh = g.resize_height;
  // Resample one plane's share of the box to rw x rh; returns the plane to read.
  auto scale = [&](const PlaneView& p, int index) -> PlaneView {
    const int x0 = box.x / p.sub_x;
    const int y0 = box.y / p.sub_y;
    const int x1 = std::min(p.width, (box.x + box.width + p.sub_x - 1) / p.sub_x);
    const int y1 = std::min(p.height, (box.y + box.height + p.sub_y - 1) / p.sub_y);
    const uint8_t* src = p.data + static_cast<size_t>(y0) * static_cast<size_t>(p.stride) + static_cast<size_t>(x0);
    if (x1 - x0 == rw && y1 - y0 == rh) return PlaneView{src, rw, rh, p.stride};
    auto& buf = s.scaled[index];
    buf.resize(area(rw, rh));
    libyuv::ScalePlane(src, p.stride, x1 - x0, y1 - y0, buf.data(), rw, rw, rh, libyuv::kFilterBox);
    return PlaneView{buf.data(), rw, rh, rw};
  };
  const PlaneView ys = scale(y, 0);
  const Clip c = clip_window(g.window, rw, rh);
  const size_t out_stride = static_cast<size_t>(g.out_width()) * 3;
  if (c.padded) std::memset(out, 0, out_stride * static_cast<size_t>(g.out_height()));
  if (c.x1 > c.x0 && c.y1 > c.y0) {
    uint8_t* dst = out + static_cast<size_t>(c.y0 - g.window.y) * out_stride + static_cast<size_t>(c.x0 - g.window.x) * 3;
    const int cw = c.x1 - c.x0;
    const int ch = c.y1 - c.y0;
    auto at = [&](const PlaneView& p) {
      return p.data + static_cast<size_t>(c.y0) * static_cast<size_t>(p.stride) + static_cast<size_t>(c.x0);
    };
    if (u.data == nullptr) {
      for (int row = 0; row < ch; ++row) {
        const uint8_t* sy = at(ys) + static_cast<size_t>(row) * static_cast<size_t>(ys.stride);
        uint8_t* d = dst + static_cast<size_t>(row) * out_stride;
        for (int x = 0; x < cw; ++x, d += 3) d[0] = d[1] = d[2] = sy[x];
      }
    } else {
      const PlaneView us = scale(u, 1);
      const PlaneView vs = scale(v, 2);
      // RGB in memory order is libyuv's "RAW": the RGB24 converter with U and V swapped and
      // the mirrored full-range (JPEG) matrix, exactly how libyuv's own J420ToRAW is built.
      libyuv::I444ToRGB24Matrix(at(ys), ys.stride, at(vs), vs.stride, at(us), us.stride, dst,
                                static_cast<int>(out_stride), &libyuv::kYvuJPEGConstants, cw, ch);
    }
  }
  if (g.flip) flip_rgb_rows(out, g.out_width(), g.out_height());
}

}  // namespace ringloader::datasets::detail
