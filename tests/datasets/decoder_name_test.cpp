// The decoder-name table (datasets::decoder_from_name / decoder_name) and the keyword preset
// (datasets::ImageNetPreset): the one home the programs and the Python binding share.
#include <catch2/catch.hpp>

#include <string>

#include "core/error.hpp"
#include "datasets/image_decoder.hpp"
#include "datasets/transforms.hpp"

using namespace ringloader;
using namespace ringloader::datasets;

TEST_CASE("decoder names: every name maps to its backend and back", "[decoder][names]") {
  CHECK(decoder_from_name("fast") == DecoderChoice{ResizeBackend::kFast, true});
  CHECK(decoder_from_name("fast-noroi") == DecoderChoice{ResizeBackend::kFast, false});
  CHECK(decoder_from_name("turbojpeg") == DecoderChoice{ResizeBackend::kTurboJpegStb, true});
  CHECK(decoder_from_name("stb") == DecoderChoice{ResizeBackend::kStb, true});
  for (const char* name : kDecoderNames) {
    CAPTURE(name);
    CHECK(std::string(decoder_name(decoder_from_name(name))) == name);
  }
  CHECK(std::string(kDecoderNames[0]) == decoder_name(DecoderChoice{}));  // the default first
  DecodeOptions o;
  o.max_pixels = 7;
  decoder_from_name("fast-noroi").apply(o);
  CHECK(o.backend == ResizeBackend::kFast);
  CHECK_FALSE(o.roi);
  CHECK(o.max_pixels == 7);  // the rest left as it was
}

TEST_CASE("decoder names: a bad name is a ConfigError naming it and every valid one", "[decoder][names]") {
  for (const std::string bad : {"fastest", "", "FAST", "turbo"}) {
    CAPTURE(bad);
    try {
      (void)decoder_from_name(bad);
      FAIL("no ConfigError");
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      CHECK(what.find("'" + bad + "'") != std::string::npos);
      for (const char* name : kDecoderNames) CHECK(what.find(std::string("'") + name + "'") != std::string::npos);
    }
  }
}

TEST_CASE("ImageNet preset: Resize(size * 8 / 7) + CenterCrop(size), or RandomResizedCrop; mean/std", "[transforms][preset]") {
  CHECK(ImageNetPreset{}.resize() == 256);
  CHECK(ImageNetPreset{}.pipeline().describe() == Pipeline::center(256, 224).describe());
  const Pipeline train = ImageNetPreset{.size = 64, .random_crop = true, .flip = true, .to_float = true}.pipeline();
  CHECK(train.format() == OutputFormat::kFloat32CHW);
  CHECK(train.mean() == kImageNetMean);
  CHECK(train.std() == kImageNetStd);
  CHECK(train.output_size() == std::array<int, 2>{64, 64});
  CHECK(ImageNetPreset{.size = 64}.pipeline().format() == OutputFormat::kUInt8HWC);
}
