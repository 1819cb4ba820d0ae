// stb_image: BMP, GIF (first frame), TGA, PSD and HDR, and PNG and JPEG under the kStb
// backend (stb_probe, stb_decode).
#include <stb/stb_image.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "datasets/codecs/codec.hpp"
#include "datasets/codecs/common.hpp"

namespace ringloader::datasets::codecs {

namespace {

struct StbFree {
  void operator()(unsigned char* p) const { stbi_image_free(p); }
};
using StbPixels = std::unique_ptr<unsigned char, StbFree>;

int checked_len(std::span<const uint8_t> b, const std::string& path) {
  if (b.size() > static_cast<size_t>(INT_MAX)) throw DecodeError(path, "file too large for the decoder (over 2 GiB)");
  return static_cast<int>(b.size());
}

int64_t le32(std::span<const uint8_t> b, size_t at) {
  return static_cast<int64_t>(static_cast<int32_t>(uint32_t{b[at]} | uint32_t{b[at + 1]} << 8 | uint32_t{b[at + 2]} << 16 |
                                                   uint32_t{b[at + 3]} << 24));
}

// The size from a fixed-layout header is checked before stb_image reads it: stb refuses some
// huge sizes with a vaguer "unknown image type" than the pixel limit's message.

ImageInfo bmp_probe(std::span<const uint8_t> b, const std::string& path, const DecodeOptions& o) {
  // BITMAPINFOHEADER and later: a height below 0 means rows stored top-down.
  if (b.size() >= 26 && le32(b, 14) >= 40) check_pixels(path, ImageFormat::kBmp, le32(b, 18), std::abs(le32(b, 22)), o.max_pixels);
  ImageInfo info = stb_probe(b, path, ImageFormat::kBmp);
  // stb_image 2.27's stbi_info passes a top-down BMP's height on with its sign (its loader
  // takes the absolute value and reads the file right).
  if (info.height < 0 && info.height != INT_MIN) info.height = -info.height;
  return info;
}

ImageInfo gif_probe(std::span<const uint8_t> b, const std::string& path, const DecodeOptions& o) {
  if (b.size() >= 10) check_pixels(path, ImageFormat::kGif, b[6] | b[7] << 8, b[8] | b[9] << 8, o.max_pixels);  // logical screen
  return stb_probe(b, path, ImageFormat::kGif);
}

ImageInfo psd_probe(std::span<const uint8_t> b, const std::string& path, const DecodeOptions& o) {
  // Height then width, big-endian.
  if (b.size() >= 22) check_pixels(path, ImageFormat::kPsd, int64_t{be32(b.data() + 18)}, int64_t{be32(b.data() + 14)}, o.max_pixels);
  return stb_probe(b, path, ImageFormat::kPsd);
}

ImageInfo hdr_probe(std::span<const uint8_t> b, const std::string& path, const DecodeOptions&) {
  return stb_probe(b, path, ImageFormat::kHdr);
}

// No magic number: only what no other codec took reaches this, and anything we can name was
// refused before.
ImageInfo tga_probe(std::span<const uint8_t> b, const std::string& path, const DecodeOptions&) {
  // stb_image's probe tries its other formats first and is laxer than our sniffing (it would
  // hand a JPEG after 0xFF fill bytes to its JPEG decoder): only a TGA header goes on, a
  // colour map type of 0 or 1 and a known image type.
  const bool tga_header = b.size() >= 18 && b[1] <= 1 && (b[2] == 1 || b[2] == 2 || b[2] == 3 || b[2] == 9 ||
                                                           b[2] == 10 || b[2] == 11);
  ImageInfo info = make_info(ImageFormat::kTga, 0, 0);
  int comp = 0;
  if (!tga_header || stbi_info_from_memory(b.data(), checked_len(b, path), &info.width, &info.height, &comp) == 0) {
    throw DecodeError(path, unrecognised_reason(b));
  }
  return info;
}

// stb_image 2.27's HDR loader hangs on an RLE count of 0 (it never advances), and it reads a 0
// for every byte past the end of the file, so a truncated file hangs it too; where it does not
// hang, what it could not read becomes zeros or uninitialised pixels. So the pixel stream is
// walked first as stbi__hdr_load reads it, and any read past the end or count of 0 refused.
void check_hdr_stream(std::span<const uint8_t> b, const std::string& path) {
  size_t at = 0;
  auto get8 = [&]() -> uint8_t { return at < b.size() ? b[at++] : 0; };
  // stbi__hdr_gettoken to the letter: a line without its '\n', cut at 1023 characters, the
  // file's last byte dropped when no '\n' follows it.
  char buf[1024];
  auto token = [&]() -> char* {
    int len = 0;
    char c = static_cast<char>(get8());
    while (at < b.size() && c != '\n') {
      buf[len++] = c;
      if (len == 1023) {
        while (at < b.size() && get8() != '\n') {
        }
        break;
      }
      c = static_cast<char>(get8());
    }
    buf[len] = 0;
    return buf;
  };
  // A header stb refuses is left to stb, which says why.
  if (std::strcmp(token(), "#?RADIANCE") != 0 && std::strcmp(buf, "#?RGBE") != 0) return;
  bool rle_rgbe = false;
  while (token()[0] != 0) rle_rgbe = rle_rgbe || std::strcmp(buf, "FORMAT=32-bit_rle_rgbe") == 0;
  char* t = token();
  if (!rle_rgbe || std::strncmp(t, "-Y ", 3) != 0) return;
  const int height = static_cast<int>(std::strtol(t + 3, &t, 10));
  while (*t == ' ') ++t;
  if (std::strncmp(t, "+X ", 3) != 0) return;
  const int width = static_cast<int>(std::strtol(t + 3, nullptr, 10));
  if (width <= 0 || height <= 0) return;  // refused by probe()

  auto truncated = [&](int64_t scanline) {
    return DecodeError(path, "truncated HDR (the file ends at byte " + std::to_string(b.size()) + ", in scanline " +
                                 std::to_string(scanline + 1) + " of " + std::to_string(height) + ")");
  };
  // Flat RGBE pixels from byte `from` on, the first being pixel `first` of the image.
  auto check_flat = [&](size_t from, int64_t first) {
    const int64_t have = static_cast<int64_t>(b.size() - from) / 4;
    if (first + have < int64_t{width} * height) throw truncated((first + have) / width);
  };
  if (width < 8 || width >= 32768) return check_flat(at, 0);  // never RLE at these widths
  for (int j = 0; j < height; ++j) {
    if (b.size() - at < 4) throw truncated(j);
    const uint8_t c1 = b[at], c2 = b[at + 1], hi = b[at + 2], lo = b[at + 3];
    at += 4;
    // Not RLE: stb takes these 4 bytes as pixel 0 and reads the whole image flat from here.
    if (c1 != 2 || c2 != 2 || (hi & 0x80) != 0) return check_flat(at, 1);
    if ((hi << 8 | lo) != width) {
      throw DecodeError(path, "corrupt HDR (scanline " + std::to_string(j + 1) + " of " + std::to_string(height) +
                                  " is " + std::to_string(hi << 8 | lo) + " wide, the header says " +
                                  std::to_string(width) + ")");
    }
    for (int k = 0; k < 4; ++k) {  // R, G, B, E, each as runs and literal spans
      for (int i = 0; i < width;) {
        if (at >= b.size()) throw truncated(j);
        const size_t count_at = at;
        const int count = b[at++];
        const int n = count > 128 ? count - 128 : count;  // a run of one byte, or n literal bytes
        if (n == 0 || n > width - i) {
          throw DecodeError(path, "corrupt HDR run length " + std::to_string(n) + " at byte " + std::to_string(count_at) +
                                      " (scanline " + std::to_string(j + 1) + ", " + std::to_string(width - i) +
                                      " pixels left)");
        }
        const size_t bytes = count > 128 ? 1 : static_cast<size_t>(n);
        if (b.size() - at < bytes) throw truncated(j);
        at += bytes;
        i += n;
      }
    }
  }
}

void hdr_decode(std::span<const uint8_t> b, const std::string& path, const ImageInfo& info, const Geometry& g,
                const DecodeOptions& o, uint8_t* out) {
  check_hdr_stream(b, path);
  stb_decode(b, path, info, g, o, out);
}

bool sniff_bmp(std::span<const uint8_t> b) { return has_text(b, "BM"); }
bool sniff_gif(std::span<const uint8_t> b) { return has_text(b, "GIF87a") || has_text(b, "GIF89a"); }
bool sniff_psd(std::span<const uint8_t> b) { return has_text(b, "8BPS"); }
bool sniff_hdr(std::span<const uint8_t> b) { return has_text(b, "#?RADIANCE") || has_text(b, "#?RGBE"); }

constexpr std::string_view kBmpExtensions[] = {".bmp"};
constexpr std::string_view kGifExtensions[] = {".gif"};
constexpr std::string_view kTgaExtensions[] = {".tga"};
constexpr std::string_view kPsdExtensions[] = {".psd"};
constexpr std::string_view kHdrExtensions[] = {".hdr"};

}  // namespace

ImageInfo stb_probe(std::span<const uint8_t> b, const std::string& path, ImageFormat format) {
  ImageInfo info = make_info(format, 0, 0);
  int comp = 0;
  if (stbi_info_from_memory(b.data(), checked_len(b, path), &info.width, &info.height, &comp) == 0) {
    const char* reason = stbi_failure_reason();
    throw DecodeError(path, std::string("corrupt ") + format_name(format) + " header (" + (reason ? reason : "unreadable") + ")");
  }
  return info;
}

void stb_decode(std::span<const uint8_t> b, const std::string& path, const ImageInfo& info, const Geometry& g,
                const DecodeOptions& o, uint8_t* out) {
  int comp = 0;
  int w = 0;
  int h = 0;
  const int len = checked_len(b, path);
  errno = 0;
  const StbPixels keep(stbi_load_from_memory(b.data(), len, &w, &h, &comp, 3));
  if (!keep) {
    const char* why = stbi_failure_reason();
    if (why != nullptr && std::strcmp(why, "outofmem") == 0 && malloc_failed()) throw out_of_memory(path, "stb_image");
    throw DecodeError(path, std::string("corrupt ") + format_name(info.format) + " (" + (why ? why : "stb_image failed") + ")");
  }
  if (w != info.width || h != info.height) {
    throw DecodeError(path, std::string("corrupt ") + format_name(info.format) + " (header says " +
                                std::to_string(info.width) + "x" + std::to_string(info.height) + ", data " +
                                std::to_string(w) + "x" + std::to_string(h) + ")");
  }
  resample(detail::RgbView{keep.get(), w, h, static_cast<size_t>(w) * 3}, g, o, out);
}

constinit const Codec kBmp{ImageFormat::kBmp, "BMP", kBmpExtensions, sniff_bmp, bmp_probe, stb_decode};
constinit const Codec kGif{ImageFormat::kGif, "GIF", kGifExtensions, sniff_gif, gif_probe, stb_decode};
constinit const Codec kTga{ImageFormat::kTga, "TGA", kTgaExtensions, nullptr, tga_probe, stb_decode};
constinit const Codec kPsd{ImageFormat::kPsd, "PSD", kPsdExtensions, sniff_psd, psd_probe, stb_decode};
constinit const Codec kHdr{ImageFormat::kHdr, "HDR", kHdrExtensions, sniff_hdr, hdr_probe, hdr_decode};

}  // namespace ringloader::datasets::codecs
