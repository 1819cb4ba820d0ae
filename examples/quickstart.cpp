// A user-defined dataset and a training loop over it: the README's example, compiled as part
// of the build (build/bin/ringloader-quickstart) and run by `make demo`.
#include <chrono>
#include <cstdio>
#include <memory>

#include "loader/data_loader.hpp"

using namespace ringloader;

// Each sample: a 224x224x3 uint8 image and an int64 label, written straight into the batch.
class Stripes : public datasets::Dataset {
 public:
  size_t size() const override { return 4096; }
  datasets::Schema schema() const override {
    return {{{"image", datasets::DType::kUInt8, {224, 224, 3}}, {"label", datasets::DType::kInt64, {}}}};
  }
  void get(size_t index, datasets::SampleWriter& out) override {
    auto pixels = out.field<uint8_t>("image");
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i / 672 + index);
    out.field<int64_t>("label")[0] = static_cast<int64_t>(index % 10);
  }
};

int main() {
  loader::LoaderOptions options;
  options.batch_size = 64;
  options.shuffle = true;
  options.num_workers = 2;
  options.persistent_workers = true;
  options.seed = 42;
  loader::DataLoader loader(std::make_shared<Stripes>(), options);

  for (int epoch = 0; epoch < 3; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    size_t images = 0;
    int64_t label_sum = 0;
    for (auto& batch : loader) {  // zero-copy views into shared memory
      auto labels = batch.field("label").as<int64_t>();
      for (int64_t l : labels) label_sum += l;
      images += batch.size();
    }  // each batch's slot goes back to the ring as the loop advances
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("epoch %d: %zu images in %zu batches, %.0f images/s (label sum %lld)\n", epoch, images,
                loader.size(), static_cast<double>(images) / s, static_cast<long long>(label_sum));
  }
  return 0;
}
