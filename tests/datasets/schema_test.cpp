#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "core/error.hpp"
#include "datasets/rng.hpp"
#include "datasets/sample_writer.hpp"
#include "datasets/synthetic_dataset.hpp"

using namespace ringloader;
using namespace ringloader::datasets;

TEST_CASE("schema validates names and reports unknown fields", "[schema]") {
  Schema s{{{"image", DType::kUInt8, {4, 4, 3}, false}, {"label", DType::kInt64, {}, false}}};
  REQUIRE_NOTHROW(s.validate());
  CHECK(s.index_of("label") == 1);
  CHECK(s.max_sample_bytes() == 4 * 4 * 3 + 8);
  CHECK_THROWS_WITH(s.index_of("mask"), Catch::Contains("no field 'mask'") && Catch::Contains("image, label"));
  Schema dup{{{"a", DType::kUInt8, {1}, false}, {"a", DType::kUInt8, {1}, false}}};
  CHECK_THROWS_AS(dup.validate(), ConfigError);
}

TEST_CASE("Rng is reproducible from (seed - epoch - index) and shuffles portably", "[rng]") {
  auto a = Rng::for_sample(1, 2, 3);
  auto b = Rng::for_sample(1, 2, 3);
  auto c = Rng::for_sample(1, 3, 3);
  const uint64_t x = a.next();
  CHECK(x == b.next());
  CHECK(x != c.next());
  std::vector<int> v(100);
  for (int i = 0; i < 100; ++i) v[static_cast<size_t>(i)] = i;
  auto w = v;
  Rng(7).shuffle(v.begin(), v.end());
  Rng(7).shuffle(w.begin(), w.end());
  CHECK(v == w);
  std::vector<int> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 100; ++i) CHECK(sorted[static_cast<size_t>(i)] == i);
  Rng r(9);
  for (int i = 0; i < 1000; ++i) CHECK(r.below(7) < 7);
}

TEST_CASE("SampleWriter checks variable shapes and oversize writes", "[writer]") {
  Schema s{{{"tokens", DType::kInt32, {8}, true}}};
  std::vector<std::byte> buf(32);
  int64_t shape[1] = {0};
  FieldTarget t{buf.data(), buf.size(), shape};
  SampleWriter w(s, std::span<const FieldTarget>(&t, 1), SampleContext{5, 0, 0, -1});
  w.set_shape(0, {3});
  CHECK(shape[0] == 3);
  CHECK_THROWS_WITH(w.set_shape(0, {9}), Catch::Contains("sample 5") && Catch::Contains("needs 36 bytes") &&
                                             Catch::Contains("slot holds 32"));
  std::vector<std::byte> big(40);
  CHECK_THROWS_AS(w.write(0, big), SampleError);
}

TEST_CASE("SyntheticDataset writes checkable samples", "[synthetic]") {
  SyntheticDataset ds(10, 4, 4, 3, 7);
  Schema s = ds.schema();
  std::vector<std::byte> img(48), label(8);
  FieldTarget t[2] = {{img.data(), img.size(), nullptr}, {label.data(), label.size(), nullptr}};
  SampleWriter w(s, t, SampleContext{9, 0, 0, -1});
  ds.get(9, w);
  CHECK(ds.check(9, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(img.data()), img.size())));
  CHECK_FALSE(ds.check(8, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(img.data()), img.size())));
  int64_t l = 0;
  std::memcpy(&l, label.data(), 8);
  CHECK(l == 2);
}
