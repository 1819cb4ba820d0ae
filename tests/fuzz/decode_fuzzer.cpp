// libFuzzer target: arbitrary bytes through the whole decode path (sniff, probe, the pixel
// limit, every decoder, region-of-interest and whole-image JPEG decode, the resampling plan for a
// random crop and a center crop). The only
// acceptable outcomes are success or a DecodeError; anything else (a crash, an ASan report,
// an unbounded allocation, another exception type) is a finding.
//
// Built with clang (-DRINGLOADER_FUZZ=ON, see .ci/fuzz); also compiled into a plain regression
// runner (decode_fuzz_replay) that replays tests/fuzz/regressions/ in the normal suite.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/error.hpp"
#include "datasets/image_decoder.hpp"
#include "datasets/rng.hpp"
#include "datasets/transforms.hpp"

namespace {

using namespace ringloader::datasets;

void decode_one(std::span<const uint8_t> bytes, ResizeBackend backend, bool roi = true) {
  DecodeOptions o;
  o.max_pixels = int64_t{1} << 16;  // 256x256: keeps each run fast and its memory bounded
  o.backend = backend;
  o.roi = roi;
  const ImageDecoder dec(o);
  try {
    const ImageInfo info = dec.probe(bytes, "fuzz-input");
    Rng rng(bytes.size());
    const Pipeline pipes[] = {Pipeline::center(40, 32), Pipeline::random_crop_flip(24)};
    for (const Pipeline& p : pipes) {
      const Geometry g = p.plan(info.width, info.height, rng);
      std::vector<uint8_t> out(static_cast<size_t>(g.out_height()) * static_cast<size_t>(g.out_width()) * 3);
      dec.decode_into(bytes, "fuzz-input", info, g, out);
    }
  } catch (const ringloader::DecodeError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  decode_one(bytes, ResizeBackend::kFast);  // JPEG: the region-of-interest path (libjpeg)
  if (size % 3 == 2) decode_one(bytes, ResizeBackend::kFast, false);  // JPEG: whole image (TurboJPEG)
  // JPEG under kStb is stb_image's own JPEG decoder, which has known bugs in 2.27 (a heap
  // overread and a failing assert() in its Huffman decoder, found here; upstream code, not
  // ours). kStb is the benchmarks' baseline, documented as for trusted files only.
  if (size % 3 == 0 && sniff_format(bytes) != ImageFormat::kJpeg) decode_one(bytes, ResizeBackend::kStb);
  if (size % 3 == 1) decode_one(bytes, ResizeBackend::kTurboJpegStb);
  return 0;
}
