// libFuzzer target: arbitrary bytes through the whole decode path (sniff, probe, the pixel
// limit, every decoder, region-of-interest and whole-image JPEG decode, the resampling plan for a
// random crop and a center crop). The only
// acceptable outcomes are success or a DecodeError; anything else (a crash, an ASan report,
// an unbounded allocation, another exception type) is a finding.
// Inputs shaped like the packed-shards files go to their readers instead (the image inputs
// never are): a shard index ("RLSHIDX1" first) to decode_index, a tar ("ustar" at byte 257, as
// GNU tar, libarchive and Python's tarfile write) to scan_tar and check_member_header. What
// they accept must hold up: every entry inside its tar behind a header, and the index
// `ringloader-pack --index` would write from a scan must read back.
//
// Built with clang (-DRINGLOADER_FUZZ=ON, see .ci/fuzz); also compiled into a plain regression
// runner (decode_fuzz_replay) that replays tests/fuzz/regressions/ in the normal suite.
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <vector>

#include "core/error.hpp"
#include "datasets/detail/shard_format.hpp"
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

// A finding that is not a crash by itself.
[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "shard finding: %s\n", what);
  __builtin_trap();
}

// The member checks Shards runs per sample, for every entry, and at places around it.
void check_members(std::span<const uint8_t> tar, const detail::ShardIndex& idx) {
  for (const detail::ShardEntry& e : idx.entries) {
    const std::string member = e.key + "." + e.ext;
    (void)detail::check_member_header(tar, e.offset, e.size, member);
    (void)detail::check_member_header(tar, e.offset + 512, e.size, member);
    (void)detail::check_member_header(tar, e.offset - 1, e.size + 1, member);
    (void)detail::check_member_header(tar, e.offset, e.size ^ 1, "x");
  }
}

void index_one(std::span<const uint8_t> bytes) {
  detail::ShardIndex idx;
  try {
    idx = detail::decode_index(bytes, "fuzz.idx");
  } catch (const ringloader::DecodeError&) {
    return;
  }
  // What decodes re-encodes to an index that decodes to the same entries.
  const detail::ShardIndex again = detail::decode_index(detail::encode_index(idx), "fuzz-again.idx");
  if (again.entries.size() != idx.entries.size() || again.tar_bytes != idx.tar_bytes) finding("index round trip");
  for (size_t i = 0; i < idx.entries.size(); ++i) {
    const auto &a = idx.entries[i], &b = again.entries[i];
    if (a.offset != b.offset || a.size != b.size || a.label != b.label || a.key != b.key || a.name != b.name) {
      finding("index round trip entry");
    }
  }
  check_members(bytes, idx);  // the index's offsets against bytes that are not its tar
}

detail::ProbedSize probe_size(std::span<const uint8_t> b, const std::string& name) {
  DecodeOptions o;
  o.max_pixels = int64_t{1} << 16;
  try {
    const ImageInfo info = ImageDecoder(o).probe(b, name);
    return {static_cast<uint32_t>(info.width), static_cast<uint32_t>(info.height)};
  } catch (const ringloader::DecodeError&) {
    return {0, 0};
  }
}

void tar_one(std::span<const uint8_t> bytes) {
  detail::ShardIndex idx;
  try {
    idx = detail::scan_tar(bytes, "fuzz.tar", &probe_size);
  } catch (const ringloader::DecodeError&) {
    return;
  }
  if (idx.tar_bytes != bytes.size()) finding("scan tar_bytes");
  for (const detail::ShardEntry& e : idx.entries) {
    if (e.offset < 512 || e.offset > bytes.size() || e.size > bytes.size() - e.offset) finding("scan entry outside the tar");
    if (e.label < 0 || e.label > INT32_MAX) finding("scan label");
  }
  check_members(bytes, idx);
  // ringloader-pack --index writes this; Shards must read it back.
  (void)detail::decode_index(detail::encode_index(idx), "fuzz-scan.idx");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  if (size >= 8 && std::memcmp(data, detail::kIndexMagic, 8) == 0) {
    index_one(bytes);
    return 0;
  }
  if (size >= 262 && std::memcmp(data + 257, "ustar", 5) == 0) {
    tar_one(bytes);
    return 0;
  }
  decode_one(bytes, ResizeBackend::kFast);  // JPEG: the region-of-interest path (libjpeg)
  if (size % 3 == 2) decode_one(bytes, ResizeBackend::kFast, false);  // JPEG: whole image (TurboJPEG)
  // JPEG under kStb is stb_image's own JPEG decoder, which has known bugs in 2.27 (a heap
  // overread and a failing assert() in its Huffman decoder, found here; upstream code, not
  // ours). kStb is the benchmarks' baseline, documented as for trusted files only.
  if (size % 3 == 0 && sniff_format(bytes) != ImageFormat::kJpeg) decode_one(bytes, ResizeBackend::kStb);
  if (size % 3 == 1) decode_one(bytes, ResizeBackend::kTurboJpegStb);
  return 0;
}
