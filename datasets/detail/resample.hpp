#pragma once
// Pixel plumbing behind ImageDecoder::decode_into: resampling an RGB or YUV source through a
// Geometry with libyuv (or stb_image_resize, for the reference backend), cutting the window
// with zero padding, mirroring. Per-thread scratch buffers keep steady-state decoding free
// of allocations. Internal to datasets/.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "datasets/transforms.hpp"

namespace ringloader::datasets::detail {

/// A packed-row RGB image someone else owns.
struct RgbView {
  const uint8_t* data = nullptr;
  int width = 0;
  int height = 0;
  size_t stride = 0;  ///< bytes between rows
};

/// Bytes that are not zeroed when they grow (a std::vector zero-fills every growth, which
/// costs a pass over memory that the decoder overwrites at once).
class RawBuffer {
 public:
  uint8_t* get(size_t bytes) {
    if (bytes > capacity_) {
      data_.reset();
      data_.reset(new uint8_t[bytes]);  // default-initialised: left as it is
      capacity_ = bytes;
    }
    return data_.get();
  }
  size_t capacity() const { return capacity_; }
  void release() {
    data_.reset();
    capacity_ = 0;
  }

 private:
  std::unique_ptr<uint8_t[]> data_;
  size_t capacity_ = 0;
};

/// Buffers reused from one image to the next on one thread.
struct Scratch {
  std::vector<uint8_t> planes[3];  ///< decoded YUV planes
  std::vector<uint8_t> scaled[3];  ///< resampled planes (resize_width x resize_height)
  std::vector<uint8_t> rgb;        ///< a decoded RGB image
  std::vector<uint8_t> rgb_scaled; ///< a resampled RGB image, when the window is a part of it
  std::vector<uint8_t> out;        ///< the window, when the caller wants floats
  RawBuffer roi_rows;              ///< the rows a region-of-interest JPEG decode needs, BGRX
  RawBuffer roi_scaled;            ///< those resampled (resize_width x resize_height, BGRX)
  /// Give memory back after an unusually large image.
  void trim(size_t keep_bytes = size_t{32} << 20);
};

/// This thread's scratch buffers.
Scratch& thread_scratch();

/// out = flip(window(resize(src[g.source]))), out packed (g.out_width() * 3 bytes a row).
/// `use_stb` resamples with stb_image_resize instead of libyuv (for measurements).
void resample_rgb(const RgbView& src, const Geometry& g, bool use_stb, uint8_t* out);

/// One plane of a YUV image (Y, U or V), rows of `stride` bytes.
struct PlaneView {
  const uint8_t* data = nullptr;
  int width = 0;
  int height = 0;
  int stride = 0;
  int sub_x = 1;  ///< luma pixels per sample of this plane, across (2 for 4:2:0 chroma)
  int sub_y = 1;  ///< and down
};

/// Full-range (JPEG) YCbCr planes -> out = flip(window(resize(box))). `box` is in luma pixels
/// of plane 0; the chroma planes may be subsampled (sub_x/sub_y; their box is the smallest
/// whole-sample box covering it) and are
/// resampled straight to full resolution, so any window offset stays exact. `u`/`v` with
/// null data mean grayscale.
void resample_yuv_full_range(const PlaneView& y, const PlaneView& u, const PlaneView& v, const Box& box,
                             const Geometry& g, uint8_t* out);

/// Copy `window` of `src` (packed RGB, w x h) to `out`, zero where the window leaves src.
void copy_window(const uint8_t* src, int width, int height, size_t stride, const Box& window, uint8_t* out);

/// Mirror each row of a packed RGB image in place.
void flip_rgb_rows(uint8_t* rgb, int width, int height);

}  // namespace ringloader::datasets::detail
