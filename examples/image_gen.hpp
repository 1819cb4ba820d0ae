#pragma once
// Photo-like test images: a deterministic ImageFolder of JPEGs (and a few PNGs) at
// ImageNet-ish sizes, drawn procedurally (gradient sky, sun, layered hills, trees and rocks,
// multi-octave texture) so they compress and resample like photographs, not like flat
// colour or white noise.
//
//   examples::ImageGenOptions opt;                 // 10 classes x 300 images, seed 0
//   auto made = examples::generate_image_folder("/tmp/photos", opt);
//   // /tmp/photos/class_00/img_00000.jpg ...; made.images, made.bytes
//
// Same options, same bytes, on any machine. Single-threaded; used by --make-dataset,
// `make demo` and the benchmarks.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ringloader::examples {

struct ImageGenOptions {
  int num_classes = 10;
  int images_per_class = 300;
  uint64_t seed = 0;
  int quality = 90;            ///< JPEG quality
  double png_fraction = 0.02;  ///< share of images written as PNG instead (chosen by seed)
  int min_width = 400, max_width = 530;  ///< sizes drawn uniformly in these ranges: about
  int min_height = 340, max_height = 500; ///< 465 x 420 on average, like ImageNet's photos
};

struct GeneratedFolder {
  std::string root;
  size_t images = 0;
  size_t jpegs = 0;
  size_t bytes = 0;  ///< total file bytes written
};

/// RGB pixels (width x height x 3) of one scene; `style` (a class) picks the palette.
std::vector<uint8_t> draw_scene(int width, int height, int style, uint64_t seed);

/// Write root/class_XX/img_NNNNN.{jpg,png}. Existing files are overwritten. Throws
/// std::runtime_error naming the file on a write failure.
GeneratedFolder generate_image_folder(const std::string& root, const ImageGenOptions& options);

}  // namespace ringloader::examples
