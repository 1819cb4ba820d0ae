// Binary PNM (P5 grey, P6 colour; 8 or 16 bits): our own reader.
//
// Read here, not by stb_image, whose 2.27 PNM loader gets truncated, 16-bit and maxval files
// wrong (and read past its buffer on one): the format is a few text fields and a raw block.
// Samples are scaled from maxval to 255 rounding half to even, as Pillow does.
#include <algorithm>
#include <cctype>
#include <climits>
#include <string_view>
#include <vector>

#include "datasets/codecs/codec.hpp"
#include "datasets/codecs/common.hpp"

namespace ringloader::datasets::codecs {

namespace {

using detail::RgbView;

struct PnmHeader {
  int channels = 0;      ///< 1 (P5) or 3 (P6)
  int width = 0;
  int height = 0;
  uint32_t maxval = 0;   ///< 1..65535; over 255 means two big-endian bytes per sample
  size_t data_offset = 0;
};

PnmHeader pnm_header(std::span<const uint8_t> b, const std::string& path) {
  PnmHeader hd;
  hd.channels = b[1] == '6' ? 3 : 1;
  size_t i = 2;
  int64_t field[3] = {0, 0, 0};
  static constexpr const char* kName[3] = {"width", "height", "maxval"};
  for (int f = 0; f < 3; ++f) {
    while (i < b.size() && (std::isspace(b[i]) || b[i] == '#')) {
      if (b[i] == '#') {
        while (i < b.size() && b[i] != '\n' && b[i] != '\r') ++i;
      } else {
        ++i;
      }
    }
    if (i >= b.size() || !std::isdigit(b[i])) {
      throw DecodeError(path, std::string("corrupt PNM header (") + (i >= b.size() ? "ends" : "no number") + " where the " +
                                  kName[f] + " should be)");
    }
    while (i < b.size() && std::isdigit(b[i])) {
      field[f] = field[f] * 10 + (b[i++] - '0');
      if (field[f] > INT_MAX) throw DecodeError(path, std::string("corrupt PNM header (") + kName[f] + " over 2^31)");
    }
  }
  if (field[2] < 1 || field[2] > 65535) {
    throw DecodeError(path, "corrupt PNM header (maxval " + std::to_string(field[2]) + ", must be 1..65535)");
  }
  if (i >= b.size() || !std::isspace(b[i])) throw DecodeError(path, "corrupt PNM header (no whitespace before the pixels)");
  hd.width = static_cast<int>(field[0]);
  hd.height = static_cast<int>(field[1]);
  hd.maxval = static_cast<uint32_t>(field[2]);
  hd.data_offset = i + 1;
  return hd;
}

/// v * 255 / maxval rounded half to even, as Pillow scales PNM samples.
uint8_t scale_to_8bit(uint32_t v, uint32_t maxval) {
  const uint32_t q = v * 255 / maxval;
  const uint32_t r2 = 2 * (v * 255 % maxval);
  return static_cast<uint8_t>(q + ((r2 > maxval || (r2 == maxval && (q & 1))) ? 1 : 0));
}

/// PNM to 8-bit RGB: samples scaled from 0..maxval (16-bit ones big-endian), grey replicated.
/// An 8-bit P6 with maxval 255 is already that, and is used in place.
RgbView pnm_decode(std::span<const uint8_t> b, const std::string& path, const PnmHeader& hd, std::vector<uint8_t>& buf) {
  const size_t n = static_cast<size_t>(hd.width) * static_cast<size_t>(hd.height);
  const size_t bytes = hd.maxval > 255 ? 2 : 1;
  const size_t ch = static_cast<size_t>(hd.channels);
  size_t need = 0;
  if (__builtin_mul_overflow(n, ch * bytes, &need)) throw DecodeError(path, "corrupt PNM (pixel block over 2^64 bytes)");
  const size_t have = b.size() - hd.data_offset;
  if (have < need) {
    throw DecodeError(path, "truncated PNM (" + std::to_string(hd.width) + "x" + std::to_string(hd.height) + " needs " +
                                std::to_string(need) + " bytes of pixels, the file has " + std::to_string(have) + ")");
  }
  const uint8_t* src = b.data() + hd.data_offset;
  const size_t stride = static_cast<size_t>(hd.width) * 3;
  if (ch == 3 && bytes == 1 && hd.maxval == 255) return RgbView{src, hd.width, hd.height, stride};
  buf.resize(n * 3);
  const uint32_t maxval = hd.maxval;
  for (size_t i = 0; i < n; ++i) {
    for (size_t c = 0; c < 3; ++c) {
      const uint8_t* sample = src + bytes * (i * ch + (ch == 3 ? c : 0));
      const uint32_t raw = bytes == 2 ? (uint32_t{sample[0]} << 8) | sample[1] : sample[0];
      buf[3 * i + c] = scale_to_8bit(std::min(raw, maxval), maxval);
    }
  }
  return RgbView{buf.data(), hd.width, hd.height, stride};
}

bool sniff(std::span<const uint8_t> b) {
  // Whatever stb_image would take as binary PNM (any whitespace, a comment or a digit after the
  // magic) is PNM here too, so it never reaches stb's PNM loader through the TGA fallback.
  return b.size() >= 3 && b[0] == 'P' && (b[1] == '5' || b[1] == '6') &&
         (std::isspace(b[2]) || b[2] == '#' || std::isdigit(b[2]));
}

// ImageInfo::codec_header: maxval and where the pixels start.
ImageInfo probe(std::span<const uint8_t> b, const std::string& path, const DecodeOptions&) {
  const PnmHeader hd = pnm_header(b, path);
  ImageInfo info = make_info(ImageFormat::kPnm, hd.width, hd.height);
  info.codec_header = {hd.maxval, hd.data_offset};
  return info;
}

void decode(std::span<const uint8_t> b, const std::string& path, const ImageInfo& info, const Geometry& g,
            const DecodeOptions& o, uint8_t* out) {
  const PnmHeader hd{b[1] == '6' ? 3 : 1, info.width, info.height, static_cast<uint32_t>(info.codec_header[0]),
                     static_cast<size_t>(info.codec_header[1])};
  resample(pnm_decode(b, path, hd, detail::thread_scratch().rgb), g, o, out);
}

constexpr std::string_view kExtensions[] = {".ppm", ".pgm", ".pnm"};

}  // namespace

constinit const Codec kPnm{ImageFormat::kPnm, "PNM", kExtensions, sniff, probe, decode};

}  // namespace ringloader::datasets::codecs
