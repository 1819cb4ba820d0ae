#pragma once
// Image transforms with torchvision's semantics, planned before any pixel is touched.
//
//   auto train = datasets::Pipeline().random_resized_crop(224).random_horizontal_flip();
//   auto eval = datasets::Pipeline().resize(256).center_crop(224).to_float(kImageNetMean, kImageNetStd);
//   Rng rng = writer.rng();
//   Geometry g = eval.plan(src_width, src_height, rng);   // where each output pixel comes from
//
// A Pipeline is a description: a list of steps, copied into a dataset, run in the workers.
// plan() turns it, for one source size and one sample's Rng, into a Geometry (an integer box
// of the source, the size that box is resampled to, the window of that kept, a flip), so a
// crop before the resize shrinks what the decoder resamples; a crop after it (Resize then
// CenterCrop) is the window kept of the resampled box. Chains torchvision users write are exact:
// [Resize, CenterCrop], [RandomResizedCrop], [CenterCrop], [Resize(h, w)], each followed by an
// optional flip. Chains that crop after resampling and then resample again are mapped back
// to the source and rounded to whole source pixels (off by at most half a source pixel).
//
// Immutable after construction: plan() is const and thread-safe.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "datasets/rng.hpp"

namespace ringloader::datasets {

/// An axis-aligned rectangle in whole pixels.
struct Box {
  int x = 0;
  int y = 0;
  int width = 0;
  int height = 0;
  friend bool operator==(const Box&, const Box&) = default;
};

/// Where each output pixel comes from: out = flip(window(resize(source_box))).
struct Geometry {
  Box source;             ///< region of the decoded image; always inside it, never empty
  int resize_width = 0;   ///< `source` is resampled to resize_width x resize_height
  int resize_height = 0;
  Box window;             ///< kept part of the resampled image; pixels outside it are 0 (padding)
  bool flip = false;      ///< mirror the kept window left-right

  int out_width() const { return window.width; }
  int out_height() const { return window.height; }
  /// The whole `width` x `height` image, untouched.
  static Geometry identity(int width, int height);
  friend bool operator==(const Geometry&, const Geometry&) = default;
};

/// What the last step hands the dataset.
enum class OutputFormat : uint8_t {
  kUInt8HWC,    ///< uint8 [H, W, 3], RGB (default)
  kFloat32CHW,  ///< float32 [3, H, W], (x / 255 - mean) / std
  kUInt8CHW,    ///< uint8 [3, H, W], RGB planes (torchvision's PILToTensor / ToImage)
};

inline constexpr std::array<float, 3> kImageNetMean = {0.485f, 0.456f, 0.406f};
inline constexpr std::array<float, 3> kImageNetStd = {0.229f, 0.224f, 0.225f};

/// torchvision's RandomResizedCrop.get_params, drawing from `rng` in the same order
/// (10 tries of uniform scale then log-uniform ratio, then the fallback centre crop).
/// Returns the crop box in the (width x height) image.
Box random_resized_crop_box(int width, int height, std::array<double, 2> scale, std::array<double, 2> ratio,
                            Rng& rng);

/// torchvision's Resize(size) output for an int size: the shorter side becomes `size`,
/// the longer int(size * long / short). Returns {width, height}.
std::array<int, 2> resize_shorter_side(int width, int height, int size);

class Pipeline {
 public:
  /// Resize so the shorter side is `shorter_side` (torchvision Resize(int)).
  Pipeline& resize(int shorter_side);
  /// Resize to exactly height x width (torchvision Resize((h, w))).
  Pipeline& resize(int height, int width);
  /// Centre crop, zero-padding where the image is smaller (torchvision CenterCrop).
  Pipeline& center_crop(int size) { return center_crop(size, size); }
  Pipeline& center_crop(int height, int width);
  /// torchvision RandomResizedCrop(size, scale, ratio), bilinear/antialiased resampling.
  Pipeline& random_resized_crop(int size, std::array<double, 2> scale = {0.08, 1.0},
                                std::array<double, 2> ratio = {3.0 / 4.0, 4.0 / 3.0}) {
    return random_resized_crop(size, size, scale, ratio);
  }
  Pipeline& random_resized_crop(int height, int width, std::array<double, 2> scale = {0.08, 1.0},
                                std::array<double, 2> ratio = {3.0 / 4.0, 4.0 / 3.0});
  /// Mirror left-right with probability p (torchvision RandomHorizontalFlip).
  Pipeline& random_horizontal_flip(double p = 0.5);
  /// Final step: float32 CHW, (x / 255 - mean) / std per channel (ToTensor + Normalize).
  Pipeline& to_float(std::array<float, 3> mean = kImageNetMean, std::array<float, 3> std = kImageNetStd);
  /// Final step: uint8 CHW, the pixels unchanged (PILToTensor, or v2's ToImage).
  Pipeline& to_uint8_chw();

  /// Resize(resize) + CenterCrop(crop): torchvision's usual evaluation transform.
  static Pipeline center(int resize = 256, int crop = 224);
  /// RandomResizedCrop(size) + RandomHorizontalFlip(): the usual training transform.
  static Pipeline random_crop_flip(int size = 224);

  /// The geometry for one image of width x height; random steps draw from `rng` in order.
  /// Throws ConfigError for an empty source.
  Geometry plan(int width, int height, Rng& rng) const;

  /// {height, width} of every output, if it does not depend on the source (a fixed-size
  /// crop or exact resize comes last); nullopt otherwise.
  std::optional<std::array<int, 2>> output_size() const;
  OutputFormat format() const { return format_; }
  const std::array<float, 3>& mean() const { return mean_; }
  const std::array<float, 3>& std() const { return std_; }
  /// "Resize(256) -> CenterCrop(224) -> uint8 HWC"
  std::string describe() const;

  /// uint8 HWC RGB (`hwc`, height x width x 3) into float CHW normalised by mean/std.
  void to_float_chw(std::span<const uint8_t> hwc, int height, int width, std::span<float> chw) const;
  /// uint8 HWC RGB into uint8 CHW planes.
  static void to_uint8_chw(std::span<const uint8_t> hwc, int height, int width, std::span<uint8_t> chw);

 private:
  enum class Kind : uint8_t { kResizeShorter, kResizeExact, kCenterCrop, kRandomResizedCrop, kFlip };
  struct Step {
    Kind kind;
    int height = 0;  ///< kResizeShorter: the size; crops and exact resizes: output height
    int width = 0;
    std::array<double, 2> scale{};  ///< kRandomResizedCrop
    std::array<double, 2> ratio{};
    double p = 0;  ///< kFlip
  };
  std::vector<Step> steps_;
  OutputFormat format_ = OutputFormat::kUInt8HWC;
  std::array<float, 3> mean_{0, 0, 0};
  std::array<float, 3> std_{1, 1, 1};
};

/// The transform a few keywords describe: the programs' --size/--random-crop/--flip/--float and
/// rl.ImageFolder(size=, random_crop=, flip=, output=) (python/ringloader/vision.py asks the
/// binding for resize() and the mean/std). The ImageNet evaluation preset at the default size:
///
///   Pipeline eval = ImageNetPreset{}.pipeline();   // Resize(256) -> CenterCrop(224) -> uint8 HWC
///   Pipeline train = ImageNetPreset{.size = 176, .random_crop = true, .flip = true, .to_float = true}.pipeline();
struct ImageNetPreset {
  int size = 224;            ///< output side
  bool random_crop = false;  ///< RandomResizedCrop(size) instead of Resize(resize()) + CenterCrop(size)
  bool flip = false;         ///< + RandomHorizontalFlip()
  bool to_float = false;     ///< float32 CHW normalised with kImageNetMean / kImageNetStd; else uint8 HWC

  /// The shorter side before the centre crop: size * 8 / 7 (224 -> 256, as torchvision's references).
  int resize() const { return size * 8 / 7; }
  Pipeline pipeline() const;
};

}  // namespace ringloader::datasets
