#include <climits>
// Transform geometry against torchvision's arithmetic (values worked out from
// torchvision 0.14's functional code), determinism from (seed, epoch, index), normalisation.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include "core/error.hpp"
#include "datasets/transforms.hpp"

using namespace ringloader;
using namespace ringloader::datasets;

TEST_CASE("Resize(shorter side) follows torchvision's integer rule", "[transforms]") {
  CHECK(resize_shorter_side(465, 420, 256) == std::array<int, 2>{283, 256});  // int(256*465/420) = int(283.4)
  CHECK(resize_shorter_side(500, 375, 256) == std::array<int, 2>{341, 256});
  CHECK(resize_shorter_side(375, 500, 256) == std::array<int, 2>{256, 341});
  CHECK(resize_shorter_side(256, 300, 256) == std::array<int, 2>{256, 300});  // already there: untouched
  CHECK(resize_shorter_side(100, 100, 50) == std::array<int, 2>{50, 50});
  // 256 * 100,000,000 overflows int: saturated (the decoder then refuses the intermediate).
  CHECK(resize_shorter_side(1, 100000000, 256) == std::array<int, 2>{256, INT_MAX});
}

TEST_CASE("Resize(256) + CenterCrop(224) plans one resample and an exact window", "[transforms]") {
  Rng rng(1);
  const Pipeline p = Pipeline::center(256, 224);
  const Geometry g = p.plan(465, 420, rng);
  CHECK(g.source == Box{0, 0, 465, 420});
  CHECK(g.resize_width == 283);
  CHECK(g.resize_height == 256);
  // left = round((283 - 224) / 2) = round(29.5) = 30 (Python rounds half to even), top = 16
  CHECK(g.window == Box{30, 16, 224, 224});
  CHECK_FALSE(g.flip);
  CHECK(p.output_size() == std::array<int, 2>{224, 224});
  CHECK(p.describe() == "Resize(256) -> CenterCrop(224) -> uint8 HWC");
  // 500x375: resized 341x256, left = round(58.5) = 58 (half to even), top = 16.
  CHECK(p.plan(500, 375, rng).window == Box{58, 16, 224, 224});
}

TEST_CASE("CenterCrop alone crops the source; larger than the image it pads", "[transforms]") {
  Rng rng(1);
  const Geometry g = Pipeline().center_crop(4, 6).plan(10, 9, rng);
  CHECK(g.source == Box{0, 0, 10, 9});
  CHECK(g.resize_width == 10);
  CHECK(g.window == Box{2, 2, 6, 4});  // top = round(2.5) = 2, left = 2
  // 3 wide into 6: padding (6 - 3) // 2 = 1 before, 2 after.
  const Geometry pad = Pipeline().center_crop(5, 6).plan(3, 9, rng);
  CHECK(pad.window == Box{-1, 2, 6, 5});
  // CenterCrop then Resize maps the crop back onto the source exactly.
  const Geometry cr = Pipeline().center_crop(100).resize(50).plan(300, 200, rng);
  CHECK(cr.source == Box{100, 50, 100, 100});
  CHECK(cr.resize_width == 50);
  CHECK(cr.window == Box{0, 0, 50, 50});
}

TEST_CASE("RandomResizedCrop boxes obey scale and ratio and are reproducible", "[transforms]") {
  const Pipeline p = Pipeline().random_resized_crop(224);
  std::set<std::pair<int, int>> origins;
  for (int64_t index = 0; index < 300; ++index) {
    Rng a = Rng::for_sample(42, 3, static_cast<uint64_t>(index));
    Rng b = Rng::for_sample(42, 3, static_cast<uint64_t>(index));
    const Geometry ga = p.plan(500, 375, a);
    CHECK(ga == p.plan(500, 375, b));  // same (seed, epoch, index): same crop
    const Box& s = ga.source;
    REQUIRE(s.x >= 0);
    REQUIRE(s.y >= 0);
    REQUIRE(s.x + s.width <= 500);
    REQUIRE(s.y + s.height <= 375);
    const double area = double(s.width) * s.height / (500.0 * 375.0);
    const double ratio = double(s.width) / s.height;
    CHECK(area >= 0.08 * 0.97);
    CHECK(area <= 1.0);
    CHECK(ratio >= 0.75 * 0.97);
    CHECK(ratio <= 4.0 / 3.0 * 1.03);
    CHECK(ga.resize_width == 224);
    CHECK(ga.window == Box{0, 0, 224, 224});
    origins.insert({s.x, s.y});
  }
  CHECK(origins.size() > 250);  // it is random across indices
  Rng e1 = Rng::for_sample(42, 1, 7);
  Rng e2 = Rng::for_sample(42, 2, 7);
  CHECK_FALSE(p.plan(500, 375, e1) == p.plan(500, 375, e2));  // and across epochs
}

TEST_CASE("RandomResizedCrop falls back to torchvision's centre crop", "[transforms]") {
  // scale (1, 1) and ratio (2, 2) on a square never fits: w = round(sqrt(2) * 100) > 100.
  Rng rng(5);
  const Box b = random_resized_crop_box(100, 100, {1.0, 1.0}, {2.0, 2.0}, rng);
  // in_ratio 1 < 2: w = 100, h = round(100 / 2) = 50, i = (100 - 50) // 2 = 25, j = 0
  CHECK(b == Box{0, 25, 100, 50});
  const Box tall = random_resized_crop_box(100, 100, {1.0, 1.0}, {0.25, 0.5}, rng);
  CHECK(tall == Box{25, 0, 50, 100});
}

TEST_CASE("flip is drawn from the sample's Rng and mirrors later crops", "[transforms]") {
  Rng rng(3);
  CHECK(Pipeline().center_crop(4).random_horizontal_flip(1.0).plan(10, 10, rng).flip);
  CHECK_FALSE(Pipeline().center_crop(4).random_horizontal_flip(0.0).plan(10, 10, rng).flip);
  int flips = 0;
  for (uint64_t i = 0; i < 1000; ++i) {
    Rng r = Rng::for_sample(0, 0, i);
    flips += Pipeline().random_horizontal_flip(0.5).center_crop(4).plan(10, 10, r).flip;
  }
  CHECK(flips > 430);
  CHECK(flips < 570);
  // Flip first, then an off-centre crop: (9 - 4) / 2 = 2.5 -> left 2 in the flipped image,
  // which is x = 9 - 2 - 4 = 3 in the source.
  Rng r(1);
  const Geometry g = Pipeline().random_horizontal_flip(1.0).center_crop(4).plan(9, 9, r);
  CHECK(g.flip);
  CHECK(g.window == Box{3, 2, 4, 4});
}

TEST_CASE("output size is known only when a fixed-size step comes last", "[transforms]") {
  CHECK_FALSE(Pipeline().resize(256).output_size());
  CHECK(Pipeline().resize(10, 20).output_size() == std::array<int, 2>{10, 20});
  CHECK(Pipeline().center_crop(100, 200).resize(50).output_size() == std::array<int, 2>{50, 100});
  CHECK_THROWS_AS(Pipeline().resize(0), ConfigError);
  CHECK_THROWS_AS(Pipeline().random_resized_crop(224, {0.5, 0.1}), ConfigError);
  CHECK_THROWS_AS(Pipeline().random_horizontal_flip(1.5), ConfigError);
  CHECK_THROWS_AS(Pipeline().to_float({0, 0, 0}, {1, 0, 1}), ConfigError);
}

TEST_CASE("to_float gives (x / 255 - mean) / std in CHW order", "[transforms]") {
  const Pipeline p = Pipeline().center_crop(1, 2).to_float(kImageNetMean, kImageNetStd);
  CHECK(p.format() == OutputFormat::kFloat32CHW);
  const std::vector<uint8_t> hwc = {0, 128, 255, 10, 20, 30};  // two pixels
  std::vector<float> chw(6);
  p.to_float_chw(hwc, 1, 2, chw);
  auto expect = [](uint8_t v, size_t c) { return (v / 255.0f - kImageNetMean[c]) / kImageNetStd[c]; };
  CHECK(chw[0] == Approx(expect(0, 0)));
  CHECK(chw[1] == Approx(expect(10, 0)));
  CHECK(chw[2] == Approx(expect(128, 1)));
  CHECK(chw[3] == Approx(expect(20, 1)));
  CHECK(chw[4] == Approx(expect(255, 2)));
  CHECK(chw[5] == Approx(expect(30, 2)));
  CHECK(chw[0] == Approx(-2.1179).epsilon(1e-4));  // torchvision's familiar minimum for red
}
