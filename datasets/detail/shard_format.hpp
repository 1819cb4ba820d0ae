#pragma once
// The on-disk pieces of a packed dataset (see datasets/shards.hpp): WebDataset-compatible tar
// shards, one small binary index per shard, and manifest.json. Shared by the reader
// (datasets::Shards) and the writer (ringloader-pack). Internal to datasets/.
//
// A shard is a POSIX ustar archive: for sample KEY (9 decimal digits, the sample's position in
// the packed dataset) a member KEY.<ext> (the image: jpg, png, webp, ...) then KEY.cls (the
// label as decimal text), as the webdataset library reads them.
//
// The index (shard-NNNNNN.idx, little-endian):
//   header   "RLSHIDX1", u32 version (1), u32 count, u64 tar_bytes, u64 tar_digest,
//            u64 dataset_id, u64 strings_bytes
//   entries  count x {u64 offset (of the member's data), u64 size, i64 label, u32 width,
//            u32 height, u32 key_offset, u32 key_length, u32 name_offset, u32 name_length,
//            char ext[8]}
//   strings  strings_bytes: the keys and the source names (the file each sample came from)
//   u64      FNV-1a of everything above
// tar_digest is FNV-1a of the tar's bytes; dataset_id ties every index to its manifest.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringloader::datasets::detail {

inline constexpr char kIndexMagic[8] = {'R', 'L', 'S', 'H', 'I', 'D', 'X', '1'};
inline constexpr uint32_t kIndexVersion = 1;
inline constexpr const char* kManifestName = "manifest.json";
inline constexpr const char* kManifestFormat = "ringloader-shards";

/// One sample of a shard.
struct ShardEntry {
  uint64_t offset = 0;  ///< of the image member's data in the tar
  uint64_t size = 0;
  int64_t label = 0;
  uint32_t width = 0;   ///< 0 when unknown (a foreign tar whose image does not probe)
  uint32_t height = 0;
  std::string key;      ///< the member name without its extension ("000000017")
  std::string ext;      ///< "jpg", "png", ...
  std::string name;     ///< where the sample came from (source file), for messages
};

struct ShardIndex {
  uint64_t tar_bytes = 0;
  uint64_t tar_digest = 0;
  uint64_t dataset_id = 0;
  std::vector<ShardEntry> entries;
};

/// The index file's bytes.
std::vector<uint8_t> encode_index(const ShardIndex& index);
/// Parses `bytes` (the file at `path`, for messages). Throws DecodeError naming the path and
/// what is wrong (magic, version, size, checksum, an entry out of bounds).
ShardIndex decode_index(std::span<const uint8_t> bytes, const std::string& path);

/// "000000017"
std::string key_of(uint64_t position);

/// Checks the 512-byte ustar header before the member data at [offset, offset + size) of
/// `tar`: checksum, size, and name `member` ("KEY.ext"). Returns "" if it holds, else what
/// is wrong (for the caller's error message).
std::string check_member_header(std::span<const uint8_t> tar, uint64_t offset, uint64_t size, std::string_view member);
/// The same check of a 512-byte header `h` already read (that of a member of `size` bytes).
std::string check_tar_header(const uint8_t* h, uint64_t size, std::string_view member);

/// The members of a tar made by anyone (GNU tar, the webdataset library): samples grouped by
/// key (the member path up to the first '.' of its file name), image + .cls, in tar order.
/// Image sizes are probed with `probe` (returns {0, 0} for a file that does not probe).
/// Throws DecodeError naming the tar and the byte offset of a damaged or cut-off member, or
/// a sample without an image or label.
struct ProbedSize {
  uint32_t width = 0, height = 0;
};
ShardIndex scan_tar(std::span<const uint8_t> tar, const std::string& path,
                    ProbedSize (*probe)(std::span<const uint8_t> bytes, const std::string& name));

/// File extensions (without the dot) that hold an image, as webdataset names them.
bool is_image_extension(std::string_view ext);

}  // namespace ringloader::datasets::detail
