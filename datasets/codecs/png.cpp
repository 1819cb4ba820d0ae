// PNG: stb_image reads the header (after the pixel limit has seen IHDR's size); libspng
// decodes, or stb_image under kStb.
#include <spng.h>
#include <zlib.h>

#include <cstring>
#include <memory>
#include <new>
#include <string_view>
#include <vector>

#include "datasets/codecs/codec.hpp"
#include "datasets/codecs/common.hpp"

namespace ringloader::datasets::codecs {

namespace {

using detail::RgbView;

/// A chunk whose length and type lie inside the file: `whole` if its data and CRC do too.
struct Chunk {
  size_t at;  // offset of its length field
  uint32_t length;
  const uint8_t* type;  // then the data, then the CRC
  bool whole;
};

/// Calls visit(chunk) for each chunk after the signature until visit returns false, a chunk is
/// not whole, IEND has been visited, or no length and type are left.
template <class Visit>
void walk_chunks(std::span<const uint8_t> b, Visit&& visit) {
  size_t off = 8;
  while (off + 8 <= b.size()) {
    const uint32_t len = be32(b.data() + off);
    const size_t left = b.size() - off - 8;  // after the length and type
    const Chunk c{off, len, b.data() + off + 4, left >= 4 && len <= left - 4};
    if (!visit(c) || !c.whole || has_text(b, "IEND", off + 4)) return;
    off += 12 + size_t{len};
  }
}

/// stb_image grows its IDAT buffer to whatever length a chunk header claims before it looks
/// for the bytes: every chunk must fit in the file before stb sees it.
void check_png_chunks(std::span<const uint8_t> b, const std::string& path) {
  walk_chunks(b, [&](const Chunk& c) {
    if (!c.whole) {
      const size_t left = b.size() - c.at - 8;
      throw DecodeError(path, "truncated PNG (chunk '" + std::string(reinterpret_cast<const char*>(c.type), 4) +
                                  "' at byte " + std::to_string(c.at) + " claims " + std::to_string(c.length) +
                                  " bytes of data and a 4-byte CRC, the file has " + std::to_string(left) +
                                  " bytes after its type)");
    }
    return true;
  });
}

struct SpngFree {
  void operator()(spng_ctx* c) const { spng_ctx_free(c); }
};

/// True if the chunks run whole up to IEND and every CRC matches: what a region-of-interest
/// decode, which stops inflating below its box, checks of the rest, so that a damaged or cut
/// file is an error whatever the box (it then takes the whole decode, which names the damage).
bool png_intact(std::span<const uint8_t> b) {
  bool intact = false;
  walk_chunks(b, [&](const Chunk& c) {
    if (!c.whole || crc32(crc32(0, nullptr, 0), c.type, 4 + c.length) != be32(c.type + 4 + c.length)) return false;
    intact = std::memcmp(c.type, "IEND", 4) == 0;
    return true;
  });
  return intact;
}

/// PNG to 8-bit RGB through libspng (16-bit samples keep their high byte, alpha is dropped,
/// palettes expanded, grey replicated: what stb_image and PIL's convert("RGB") give). CRCs
/// and the zlib checksum are checked: a damaged file is an error, not a silently wrong image.
/// With `rows` < h (region of interest), a non-interlaced image whose chunks are whole with
/// matching CRCs (png_intact) is decoded only down to row `rows`; the zlib checksum, over data
/// not inflated, is then not checked.
RgbView png_decode(std::span<const uint8_t> b, const std::string& path, int w, int h, int rows,
                   std::vector<uint8_t>& buf) {
  const std::unique_ptr<spng_ctx, SpngFree> ctx(spng_ctx_new(0));
  if (!ctx) throw std::bad_alloc();
  auto check = [&](int rc, const char* what) {
    if (rc == SPNG_EMEM) throw out_of_memory(path, std::string("libspng (") + what + ")");
    if (rc != 0) throw DecodeError(path, std::string("corrupt PNG (") + what + ": " + spng_strerror(rc) + ")");
  };
  check(spng_set_png_buffer(ctx.get(), b.data(), b.size()), "buffer");
  // The pixel limit was checked from the header; these bound what spng itself may allocate.
  check(spng_set_image_limits(ctx.get(), static_cast<uint32_t>(w), static_cast<uint32_t>(h)), "limits");
  check(spng_set_chunk_limits(ctx.get(), 16u << 20, 64u << 20), "limits");
  spng_ihdr ihdr{};
  check(spng_get_ihdr(ctx.get(), &ihdr), "header");
  if (static_cast<int64_t>(ihdr.width) != w || static_cast<int64_t>(ihdr.height) != h) {
    throw DecodeError(path, "corrupt PNG (header dimensions disagree)");
  }
  size_t len = 0;
  check(spng_decoded_image_size(ctx.get(), SPNG_FMT_RGB8, &len), "size");
  if (len != static_cast<size_t>(w) * static_cast<size_t>(h) * 3) throw DecodeError(path, "corrupt PNG (image size)");
  buf.resize(len);
  const size_t row_bytes = static_cast<size_t>(w) * 3;
  if (rows >= h || ihdr.interlace_method != SPNG_INTERLACE_NONE || !png_intact(b)) {
    check(spng_decode_image(ctx.get(), buf.data(), len, SPNG_FMT_RGB8, 0), "data");
  } else {
    // png_intact has checked every CRC: libspng need not compute them again.
    check(spng_set_crc_action(ctx.get(), SPNG_CRC_USE, SPNG_CRC_USE), "crc");
    check(spng_decode_image(ctx.get(), nullptr, 0, SPNG_FMT_RGB8, SPNG_DECODE_PROGRESSIVE), "data");
    for (int y = 0; y < rows; ++y) {  // rows < h: never the last row, whose return is SPNG_EOI
      check(spng_decode_row(ctx.get(), buf.data() + static_cast<size_t>(y) * row_bytes, row_bytes), "data");
    }
  }
  return RgbView{buf.data(), w, h, row_bytes};
}

bool sniff(std::span<const uint8_t> b) { return has_bytes(b, {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}); }

ImageInfo probe(std::span<const uint8_t> b, const std::string& path, const DecodeOptions& o) {
  // IHDR's size first: the pixel limit speaks before stb_image (whose message is vaguer).
  if (b.size() >= 24 && has_text(b, "IHDR", 12)) {
    check_pixels(path, ImageFormat::kPng, int64_t{be32(b.data() + 16)}, int64_t{be32(b.data() + 20)}, o.max_pixels);
  }
  return stb_probe(b, path, ImageFormat::kPng);
}

void decode(std::span<const uint8_t> b, const std::string& path, const ImageInfo& info, const Geometry& g,
            const DecodeOptions& o, uint8_t* out) {
  if (o.backend == ResizeBackend::kStb) {
    check_png_chunks(b, path);
    stb_decode(b, path, info, g, o, out);
    return;
  }
  // The resampler reads the source box only: a region-of-interest decode stops below it.
  const int rows = o.roi && o.backend == ResizeBackend::kFast ? g.source.y + g.source.height : info.height;
  resample(png_decode(b, path, info.width, info.height, rows, detail::thread_scratch().rgb), g, o, out);
}

constexpr std::string_view kExtensions[] = {".png"};

}  // namespace

constinit const Codec kPng{ImageFormat::kPng, "PNG", kExtensions, sniff, probe, decode};

}  // namespace ringloader::datasets::codecs
