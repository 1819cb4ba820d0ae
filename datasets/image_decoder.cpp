#include "datasets/image_decoder.hpp"

#include <stb/stb_image.h>
#include <spng.h>
#include <turbojpeg.h>
#include <webp/decode.h>

#include <csetjmp>
#include <cstddef>
#include <cstdio>
// jpeglib.h needs FILE and size_t first.
#include <jerror.h>
#include <jpeglib.h>
#include <libyuv.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string_view>

#include "datasets/detail/resample.hpp"
#include "datasets/detail/resource_error.hpp"
#include "core/error.hpp"

namespace ringloader::datasets {

namespace {

using detail::RgbView;
using detail::thread_scratch;

// ---- sniffing -----------------------------------------------------------------------------

bool has_bytes(std::span<const uint8_t> b, std::initializer_list<uint8_t> magic, size_t at = 0) {
  if (b.size() < at + magic.size()) return false;
  return std::equal(magic.begin(), magic.end(), b.begin() + static_cast<std::ptrdiff_t>(at));
}

bool has_text(std::span<const uint8_t> b, std::string_view magic, size_t at = 0) {
  return b.size() >= at + magic.size() && std::memcmp(b.data() + at, magic.data(), magic.size()) == 0;
}

// Bytes no decoder of ours takes: a one-line reason, naming the format when we know it.
std::string unrecognised_reason(std::span<const uint8_t> b) {
  if (has_bytes(b, {'I', 'I', 42, 0}) || has_bytes(b, {'M', 'M', 0, 42})) return "TIFF images are not supported";
  if (has_text(b, "ftypheic", 4) || has_text(b, "ftypheix", 4) || has_text(b, "ftypmif1", 4)) {
    return "HEIF/HEIC images are not supported";
  }
  if (has_text(b, "ftypavif", 4)) return "AVIF images are not supported";
  if (has_bytes(b, {0, 0, 0, 12, 'j', 'P', ' ', ' '}) || has_bytes(b, {0xff, 0x4f, 0xff, 0x51})) {
    return "JPEG 2000 images are not supported";
  }
  if (has_bytes(b, {0xff, 0x0a}) || has_bytes(b, {0, 0, 0, 12, 'J', 'X', 'L', ' '})) return "JPEG XL images are not supported";
  if (has_bytes(b, {0, 0, 1, 0}) || has_bytes(b, {0, 0, 2, 0})) return "ICO/CUR images are not supported";
  if (has_text(b, "P1") || has_text(b, "P2") || has_text(b, "P3") || has_text(b, "P4") || has_text(b, "P7")) {
    return "this PNM variant is not supported (only binary P5/P6)";
  }
  // stb_image also reads Softimage PIC; we do not offer it (nor let it pass as TGA).
  if (has_bytes(b, {0x53, 0x80, 0xf6, 0x34})) return "Softimage PIC images are not supported";
  if (has_text(b, "%PDF")) return "not an image: PDF document";
  if (has_bytes(b, {'P', 'K', 3, 4})) return "not an image: ZIP archive";
  if (has_bytes(b, {0x1f, 0x8b})) return "not an image: gzip data";
  if (has_text(b, "RIFF") && !has_text(b, "WEBP", 8)) return "not an image: RIFF container without WebP data";
  // Text (HTML error pages saved as .jpg are common in scraped datasets): quote its start.
  const size_t n = std::min<size_t>(b.size(), 24);
  size_t printable = 0;
  for (size_t i = 0; i < n; ++i) printable += (b[i] >= 0x20 && b[i] < 0x7f) || b[i] == '\n' || b[i] == '\r' || b[i] == '\t';
  if (n > 0 && printable == n) {
    std::string quoted;
    for (size_t i = 0; i < std::min<size_t>(n, 16); ++i) quoted += (b[i] >= 0x20 && b[i] < 0x7f) ? static_cast<char>(b[i]) : ' ';
    return "not an image: the file starts with text \"" + quoted + "\"";
  }
  std::string hex;
  for (size_t i = 0; i < std::min<size_t>(b.size(), 8); ++i) {
    char h[4];
    std::snprintf(h, sizeof h, "%02x", b[i]);
    hex += (i ? " " : "") + std::string(h);
  }
  return "unrecognised image format (first bytes: " + hex + ")";
}

// The libraries report a failed allocation as one more error (stb: "outofmem", libjpeg:
// "Insufficient memory", libwebp: a null result), and some report a size check that a crafted
// file fails with the same words. Only a failed malloc sets errno to ENOMEM, so with errno
// cleared before the call it tells the two apart: the system's shortage is a ResourceError
// (out_of_memory()), never a DecodeError that would drop a good file as bad.
bool malloc_failed() { return errno == ENOMEM; }

ResourceError out_of_memory(const std::string& path, const std::string& library) {
  return detail::resource_error(path, "cannot decode: " + library, ENOMEM);
}

bool tj_out_of_memory(const std::string& msg) {
  return malloc_failed() && (msg.find("Insufficient memory") != std::string::npos ||
                             msg.find("Memory allocation failure") != std::string::npos);
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Width and height straight from the fixed-layout headers, so the pixel limit speaks before
// stb (which refuses some huge sizes with a vaguer "unknown image type"). False: let stb say.
bool header_dims(std::span<const uint8_t> b, ImageFormat f, int64_t& w, int64_t& h) {
  auto be32_at = [&](size_t at) { return int64_t{be32(b.data() + at)}; };
  auto le32 = [&](size_t at) {
    return static_cast<int64_t>(static_cast<int32_t>(uint32_t{b[at]} | uint32_t{b[at + 1]} << 8 | uint32_t{b[at + 2]} << 16 |
                                                     uint32_t{b[at + 3]} << 24));
  };
  switch (f) {
    case ImageFormat::kPng:  // signature, IHDR length + type, width, height (big-endian)
      if (b.size() < 24 || !has_text(b, "IHDR", 12)) return false;
      w = be32_at(16);
      h = be32_at(20);
      return true;
    case ImageFormat::kGif:  // logical screen, little-endian 16-bit
      if (b.size() < 10) return false;
      w = b[6] | b[7] << 8;
      h = b[8] | b[9] << 8;
      return true;
    case ImageFormat::kBmp:  // BITMAPINFOHEADER and later; height < 0 means top-down
      if (b.size() < 26 || le32(14) < 40) return false;
      w = le32(18);
      h = le32(22);
      if (h < 0) h = -h;
      return true;
    case ImageFormat::kPsd:  // height then width, big-endian
      if (b.size() < 22) return false;
      h = be32_at(14);
      w = be32_at(18);
      return true;
    default: return false;
  }
}

// ---- TurboJPEG ----------------------------------------------------------------------------

// A TurboJPEG decompressor per thread: creating one costs more than decoding a thumbnail.
// After a failed call it is dropped (tj_reset): TurboJPEG 2.1's tjDecompressHeader3 leaves
// libjpeg's marker reader mid-stream when it fails, and the next header read on that handle
// then fails on a good file.
struct TjHandle {
  tjhandle h = nullptr;
  TjHandle() = default;
  TjHandle(const TjHandle&) = delete;
  TjHandle& operator=(const TjHandle&) = delete;
  ~TjHandle() { reset(); }
  void reset() {
    if (h != nullptr) tjDestroy(h);
    h = nullptr;
  }
};

TjHandle& tj_thread_handle() {
  thread_local TjHandle handle;
  return handle;
}

tjhandle tj_decompressor(const std::string& path) {
  TjHandle& handle = tj_thread_handle();
  if (handle.h == nullptr) {
    handle.h = tjInitDecompress();
    // It fails only when its allocations do: the system's shortage, not this file's fault.
    if (handle.h == nullptr) throw out_of_memory(path, std::string("tjInitDecompress (") + tjGetErrorStr2(nullptr) + ")");
  }
  return handle.h;
}

void tj_reset() { tj_thread_handle().reset(); }

// Progressive JPEGs with thousands of scans are a CPU bomb: cap them (libjpeg-turbo's
// recommended guard). ISLOW DCT (the default) matches PIL's decoder.
constexpr int kTjFlags = TJFLAG_LIMITSCANS;

// After a TurboJPEG call: -1 is an error or a warning. libjpeg recovers from most warnings
// (extraneous bytes, a bad Huffman code) as PIL does; running out of data is a truncated
// file, which PIL refuses too.
// A JPEG ends with the EOI marker; if the bytes stop short of one, the likely story of any
// error is a truncated file (an interrupted download), so say that.
bool ends_with_eoi(std::span<const uint8_t> b) {
  for (size_t i = b.size(); i >= 2 && b.size() - i < 64; --i) {  // tolerate trailing padding
    if (b[i - 2] == 0xff && b[i - 1] == 0xd9) return true;
  }
  return false;
}

// errno must be cleared before the call (see malloc_failed()).
void tj_check(int rc, tjhandle h, std::span<const uint8_t> b, const std::string& path) {
  if (rc == 0) return;
  const std::string msg = tjGetErrorStr2(h);
  if (tj_out_of_memory(msg)) {
    tj_reset();
    throw out_of_memory(path, "TurboJPEG (" + msg + ")");
  }
  if (tjGetErrorCode(h) == TJERR_WARNING) {
    if (msg.find("Premature end") != std::string::npos) {
      tj_reset();
      throw DecodeError(path, "truncated JPEG (" + msg + ")");
    }
    return;
  }
  tj_reset();
  throw DecodeError(path, std::string(ends_with_eoi(b) ? "corrupt" : "truncated or corrupt") + " JPEG (" + msg + ")");
}

struct JpegHeader {
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
};

JpegHeader jpeg_header(std::span<const uint8_t> b, const std::string& path) {
  tjhandle h = tj_decompressor(path);
  JpegHeader hd;
  errno = 0;
  if (tjDecompressHeader3(h, b.data(), static_cast<unsigned long>(b.size()), &hd.width, &hd.height, &hd.subsamp,
                          &hd.colorspace) != 0) {
    const std::string msg = tjGetErrorStr2(h);
    const bool oom = tj_out_of_memory(msg);
    tj_reset();
    if (oom) throw out_of_memory(path, "TurboJPEG (" + msg + ")");
    throw DecodeError(path, std::string(ends_with_eoi(b) ? "corrupt" : "truncated or corrupt") + " JPEG header (" + msg + ")");
  }
  if (hd.width <= 0 || hd.height <= 0) {  // tables-only stream, or cut before the frame header
    tj_reset();
    throw DecodeError(path, std::string(ends_with_eoi(b) ? "corrupt" : "truncated or corrupt") +
                                " JPEG header (no frame header)");
  }
  return hd;
}

// Adobe CMYK JPEGs store inverted ink values, so RGB = inverted-ink * inverted-black
// (what stb_image and PIL do).
void cmyk_to_rgb(const uint8_t* cmyk, size_t pixels, uint8_t* rgb) {
  for (size_t i = 0; i < pixels; ++i, cmyk += 4, rgb += 3) {
    const unsigned k = cmyk[3];
    for (int c = 0; c < 3; ++c) rgb[c] = static_cast<uint8_t>((cmyk[c] * k + 127) / 255);
  }
}

// Whole JPEG (at 1/`denom` scale) to RGB in `buf`.
RgbView jpeg_to_rgb(std::span<const uint8_t> b, const std::string& path, const JpegHeader& hd, int denom,
                    std::vector<uint8_t>& buf) {
  tjhandle h = tj_decompressor(path);
  const tjscalingfactor sf{1, denom};
  const int w = TJSCALED(hd.width, sf);
  const int ht = TJSCALED(hd.height, sf);
  const size_t pixels = static_cast<size_t>(w) * static_cast<size_t>(ht);
  const bool cmyk = hd.colorspace == TJCS_CMYK || hd.colorspace == TJCS_YCCK;
  if (cmyk) {
    std::vector<uint8_t> tmp(pixels * 4);
    errno = 0;
    tj_check(tjDecompress2(h, b.data(), static_cast<unsigned long>(b.size()), tmp.data(), w, 0, ht, TJPF_CMYK, kTjFlags), h, b, path);
    buf.resize(pixels * 3);
    cmyk_to_rgb(tmp.data(), pixels, buf.data());
  } else {
    buf.resize(pixels * 3);
    errno = 0;
    tj_check(tjDecompress2(h, b.data(), static_cast<unsigned long>(b.size()), buf.data(), w, 0, ht, TJPF_RGB, kTjFlags), h, b, path);
  }
  return RgbView{buf.data(), w, ht, static_cast<size_t>(w) * 3};
}

// The largest DCT-domain downscale (1/8, 1/4, 1/2) that still leaves at least the resize
// size: those three are fast in libjpeg-turbo (3/4, 5/8, 7/8 measured slower than 1/1).
int pick_dct_denominator(const Geometry& g) {
  for (int d : {8, 4, 2}) {
    if (g.source.width / d >= g.resize_width && g.source.height / d >= g.resize_height) return d;
  }
  return 1;
}

Box scale_box(const Box& b, int denom, int width, int height) {
  const int x0 = b.x / denom;
  const int y0 = b.y / denom;
  const int x1 = std::min(width, (b.x + b.width + denom - 1) / denom);
  const int y1 = std::min(height, (b.y + b.height + denom - 1) / denom);
  return Box{x0, y0, std::max(1, x1 - x0), std::max(1, y1 - y0)};
}

// The fast path: YUV planes straight from the DCT, scaled by libyuv, only the window to RGB.
void jpeg_fast(std::span<const uint8_t> b, const std::string& path, const Geometry& g, bool dct_scaling, uint8_t* out) {
  const JpegHeader hd = jpeg_header(b, path);
  const int denom = dct_scaling ? pick_dct_denominator(g) : 1;
  const tjscalingfactor sf{1, denom};
  const int sw = TJSCALED(hd.width, sf);
  const int sh = TJSCALED(hd.height, sf);
  Geometry sg = g;
  sg.source = scale_box(g.source, denom, sw, sh);
  detail::Scratch& s = thread_scratch();
  if (hd.colorspace != TJCS_YCbCr && hd.colorspace != TJCS_GRAY) {
    // RGB, CMYK and YCCK JPEGs are rare: decode to RGB and resample that.
    const RgbView rgb = jpeg_to_rgb(b, path, hd, denom, s.rgb);
    detail::resample_rgb(rgb, sg, false, out);
    return;
  }
  const int planes = hd.subsamp == TJSAMP_GRAY ? 1 : 3;
  unsigned char* dst[3] = {nullptr, nullptr, nullptr};
  int strides[3] = {0, 0, 0};
  detail::PlaneView pv[3];
  for (int c = 0; c < planes; ++c) {
    const int pw = tjPlaneWidth(c, sw, hd.subsamp);
    const int ph = tjPlaneHeight(c, sh, hd.subsamp);
    if (pw <= 0 || ph <= 0) throw DecodeError(path, "corrupt JPEG (bad plane size)");
    auto& buf = s.planes[c];
    buf.resize(static_cast<size_t>(pw) * static_cast<size_t>(ph));
    dst[c] = buf.data();
    strides[c] = pw;
    const int sub_x = c == 0 ? 1 : tjMCUWidth[hd.subsamp] / 8;
    const int sub_y = c == 0 ? 1 : tjMCUHeight[hd.subsamp] / 8;
    // Valid samples: the plane may be padded to whole MCUs.
    pv[c] = detail::PlaneView{buf.data(), c == 0 ? sw : std::min(pw, (sw + sub_x - 1) / sub_x),
                              c == 0 ? sh : std::min(ph, (sh + sub_y - 1) / sub_y), pw, sub_x, sub_y};
  }
  tjhandle h = tj_decompressor(path);
  errno = 0;
  tj_check(tjDecompressToYUVPlanes(h, b.data(), static_cast<unsigned long>(b.size()), dst, sw, strides, sh, kTjFlags), h, b, path);
  detail::resample_yuv_full_range(pv[0], pv[1], pv[2], sg.source, sg, out);
}

// ---- Region-of-interest JPEG decode (libjpeg-turbo's libjpeg API) ---------------------------
//
// Only the rows and columns the output needs are decoded: jpeg_crop_scanline narrows each row
// (no IDCT, upsampling or colour conversion outside it), jpeg_skip_scanlines passes the rows
// above (entropy decoding only) and decoding stops after the last row needed. The rows come
// out as BGRX (libyuv's ARGB), libyuv's bilinear scaler computes just the window of the
// resized box (ARGBScaleClip: the same pixels as resizing the whole box and cropping), and
// the window becomes RGB.
//
// libjpeg reports errors by calling error_exit, which must not return: it longjmps back into
// roi_decode_rows, whose frame holds nothing with a destructor.

constexpr int kMaxScans = 500;  // TurboJPEG's TJFLAG_LIMITSCANS limit

struct RoiError {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;    // libjpeg ran out of data (it then pads with grey and warns)
  bool out_of_memory;
};

extern "C" void roi_error_exit(j_common_ptr c) {
  auto* e = reinterpret_cast<RoiError*>(c->err);
  (*c->err->format_message)(c, e->message);
  e->out_of_memory = c->err->msg_code == JERR_OUT_OF_MEMORY || malloc_failed();
  std::longjmp(e->jump, 1);
}

// Warnings (a bad Huffman code, extraneous bytes) are recovered from, as TurboJPEG and PIL do;
// running out of data is a truncated file.
extern "C" void roi_emit_message(j_common_ptr c, int level) {
  if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) reinterpret_cast<RoiError*>(c->err)->truncated = true;
}

extern "C" void roi_progress(j_common_ptr c) {
  if (c->is_decompressor && reinterpret_cast<j_decompress_ptr>(c)->input_scan_number > kMaxScans) {
    auto* e = reinterpret_cast<RoiError*>(c->err);
    std::snprintf(e->message, sizeof e->message, "progressive JPEG with more than %d scans", kMaxScans);
    e->out_of_memory = false;
    std::longjmp(e->jump, 1);
  }
}

// One libjpeg decompressor per thread, like the TurboJPEG handle: kept across images and
// dropped after a failure (its state is then unknown).
struct RoiDecompressor {
  jpeg_decompress_struct cinfo{};
  RoiError err{};
  jpeg_progress_mgr progress{};
  bool created = false;
  ~RoiDecompressor() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

std::unique_ptr<RoiDecompressor>& roi_thread_decompressor() {
  thread_local std::unique_ptr<RoiDecompressor> d;
  return d;
}

// What to decode, in the 1/denom-scaled image: rows [y0, y1) and columns [x0, x0 + width),
// written as BGRX to rows + (row - first_row) * stride + column * 4.
struct RoiRequest {
  const uint8_t* data;
  size_t size;
  int denom;
  int scaled_width, scaled_height;  // what the header and denom give (checked)
  JDIMENSION x0, width;
  int y0, y1;
  uint8_t* rows;
  int first_row;
  size_t stride;
};

enum class RoiResult { kDone, kFailed, kNotYcc };

// Plain C-style: no object with a destructor lives in this frame across a longjmp.
RoiResult roi_decode_rows(RoiDecompressor& d, RoiRequest& r) {
  jpeg_decompress_struct& c = d.cinfo;
  d.err.truncated = false;
  d.err.out_of_memory = false;
  d.err.message[0] = '\0';
  if (setjmp(d.err.jump) != 0) return RoiResult::kFailed;
  if (!d.created) {
    c.err = jpeg_std_error(&d.err.pub);
    d.err.pub.error_exit = roi_error_exit;
    d.err.pub.emit_message = roi_emit_message;
    jpeg_create_decompress(&c);
    d.created = true;
    d.progress.progress_monitor = roi_progress;
    c.progress = &d.progress;
  }
  jpeg_mem_src(&c, r.data, static_cast<unsigned long>(r.size));
  jpeg_read_header(&c, TRUE);
  if (c.jpeg_color_space != JCS_YCbCr && c.jpeg_color_space != JCS_GRAYSCALE) {
    jpeg_abort_decompress(&c);
    return RoiResult::kNotYcc;
  }
  c.scale_num = 1;
  c.scale_denom = static_cast<unsigned>(r.denom);
  c.out_color_space = JCS_EXT_BGRX;
  c.dct_method = JDCT_ISLOW;  // TurboJPEG's default, and PIL's
  jpeg_start_decompress(&c);
  if (static_cast<int>(c.output_width) != r.scaled_width || static_cast<int>(c.output_height) != r.scaled_height) {
    std::snprintf(d.err.message, sizeof d.err.message, "libjpeg and TurboJPEG disagree on the size (%ux%u, %dx%d)",
                  c.output_width, c.output_height, r.scaled_width, r.scaled_height);
    jpeg_abort_decompress(&c);
    return RoiResult::kFailed;
  }
  if (r.x0 != 0 || r.width != c.output_width) jpeg_crop_scanline(&c, &r.x0, &r.width);  // x0 moves left to an iMCU
  if (r.y0 > 0) jpeg_skip_scanlines(&c, static_cast<JDIMENSION>(r.y0));
  JSAMPROW rows[16];
  while (static_cast<int>(c.output_scanline) < r.y1) {
    const int n = std::min({16, r.y1 - static_cast<int>(c.output_scanline)});
    for (int i = 0; i < n; ++i) {
      rows[i] = r.rows + static_cast<size_t>(static_cast<int>(c.output_scanline) + i - r.first_row) * r.stride +
                static_cast<size_t>(r.x0) * 4;
    }
    if (jpeg_read_scanlines(&c, rows, static_cast<JDIMENSION>(n)) == 0) break;
  }
  jpeg_abort_decompress(&c);  // the rows below are never decoded
  return RoiResult::kDone;
}

// The source span [lo, hi) of the image (`image` pixels long) that output [o0, o1) of a box
// [at, at + src) resampled to `dst` reads: bilinear reads the two source pixels around each
// output centre and libyuv's row filter whole groups of 4 around those, so a margin of 8 keeps
// every read inside what was decoded. Beyond the box too: libjpeg's smooth chroma upsampling
// treats a cropped row's ends as image edges, so the crop's own edges must not be read.
std::pair<int, int> needed_span(int at, int src, int dst, int image, int o0, int o1, int margin) {
  const int64_t lo = at + int64_t{o0} * src / dst - margin;
  const int64_t hi = at + (int64_t{o1} * src + dst - 1) / dst + margin;
  return {static_cast<int>(std::max<int64_t>(0, lo)), static_cast<int>(std::min<int64_t>(image, hi))};
}

// True if the region-of-interest path took the image; false leaves it to jpeg_fast.
bool jpeg_roi(std::span<const uint8_t> b, const std::string& path, const JpegHeader& hd, const Geometry& g,
              bool dct_scaling, uint8_t* out) {
  if (hd.colorspace != TJCS_YCbCr && hd.colorspace != TJCS_GRAY) return false;
  // libjpeg pads a cut-off file with grey and only warns when it gets there, which a decode
  // that stops early may never do: without the final EOI marker, decode the whole image.
  if (!ends_with_eoi(b)) return false;
  const int denom = dct_scaling ? pick_dct_denominator(g) : 1;
  const tjscalingfactor sf{1, denom};
  const int sw = TJSCALED(hd.width, sf);
  const int sh = TJSCALED(hd.height, sf);
  const Box box = scale_box(g.source, denom, sw, sh);
  const int rw = g.resize_width;
  const int rh = g.resize_height;
  // Bilinear reads two source pixels per output pixel: right up to about 2x down (2.5x
  // measured no PSNR loss against torchvision's antialiased resize, and takes the boxes a
  // little over 2x that RandomResizedCrop draws). Beyond, the planar path's box filter
  // averages every source pixel (images over 20x the output, past the 1/8 DCT scale).
  if (2 * box.width >= 5 * rw || 2 * box.height >= 5 * rh) return false;
  // The part of the resized box the window keeps.
  const int cx0 = std::max(0, g.window.x);
  const int cy0 = std::max(0, g.window.y);
  const int cx1 = std::min(rw, g.window.x + g.window.width);
  const int cy1 = std::min(rh, g.window.y + g.window.height);
  const size_t out_stride = static_cast<size_t>(g.out_width()) * 3;
  if (cx0 != g.window.x || cy0 != g.window.y || cx1 != g.window.x + g.window.width ||
      cy1 != g.window.y + g.window.height) {
    std::memset(out, 0, out_stride * static_cast<size_t>(g.out_height()));
  }
  if (cx1 <= cx0 || cy1 <= cy0) return true;  // the window misses the image: all padding
  const auto [col_lo, col_hi] = needed_span(box.x, box.width, rw, sw, cx0, cx1, 8);
  // Rows stay inside the box (the buffer holds the box's rows): skipping keeps libjpeg's
  // context rows, so a row decoded after a skip is the row a whole decode gives.
  const auto [row_lo, row_hi] = needed_span(box.y, box.height, rh, sh, cy0, cy1, 3);

  detail::Scratch& s = thread_scratch();
  const size_t stride = static_cast<size_t>(sw) * 4;
  RoiRequest r{b.data(),
               b.size(),
               denom,
               sw,
               sh,
               static_cast<JDIMENSION>(col_lo),
               static_cast<JDIMENSION>(col_hi - col_lo),
               std::max(box.y, row_lo),
               std::min(box.y + box.height, row_hi),
               s.roi_rows.get(stride * static_cast<size_t>(box.height)),
               box.y,
               stride};
  auto& d = roi_thread_decompressor();
  if (!d) d = std::make_unique<RoiDecompressor>();
  errno = 0;
  const RoiResult result = roi_decode_rows(*d, r);
  if (result == RoiResult::kNotYcc) return false;
  if (result == RoiResult::kFailed) {
    const std::string msg = d->err.message;
    const bool oom = d->err.out_of_memory;
    d.reset();
    if (oom) throw out_of_memory(path, "libjpeg (" + msg + ")");
    throw DecodeError(path, "corrupt JPEG (" + msg + ")");
  }
  if (d->err.truncated) throw DecodeError(path, "truncated JPEG (premature end of JPEG file)");

  const size_t scaled_stride = static_cast<size_t>(rw) * 4;
  uint8_t* scaled = s.roi_scaled.get(scaled_stride * static_cast<size_t>(rh));
  const uint8_t* src = r.rows + static_cast<size_t>(box.x) * 4;
  if (libyuv::ARGBScaleClip(src, static_cast<int>(stride), box.width, box.height, scaled, static_cast<int>(scaled_stride),
                            rw, rh, cx0, cy0, cx1 - cx0, cy1 - cy0, libyuv::kFilterBilinear) != 0) {
    throw Error("libyuv ARGBScaleClip refused " + std::to_string(box.width) + "x" + std::to_string(box.height) + " -> " +
                std::to_string(rw) + "x" + std::to_string(rh));
  }
  uint8_t* dst = out + static_cast<size_t>(cy0 - g.window.y) * out_stride + static_cast<size_t>(cx0 - g.window.x) * 3;
  // libyuv "ARGB" is B,G,R,A in memory and "RAW" is R,G,B: what BGRX rows become as RGB.
  libyuv::ARGBToRAW(scaled + static_cast<size_t>(cy0) * scaled_stride + static_cast<size_t>(cx0) * 4,
                    static_cast<int>(scaled_stride), dst, static_cast<int>(out_stride), cx1 - cx0, cy1 - cy0);
  if (g.flip) detail::flip_rgb_rows(out, g.out_width(), g.out_height());
  return true;
}

// ---- stb_image ----------------------------------------------------------------------------

struct StbFree {
  void operator()(unsigned char* p) const { stbi_image_free(p); }
};
using StbPixels = std::unique_ptr<unsigned char, StbFree>;

int checked_len(std::span<const uint8_t> b, const std::string& path) {
  if (b.size() > static_cast<size_t>(INT_MAX)) throw DecodeError(path, "file too large for the decoder (over 2 GiB)");
  return static_cast<int>(b.size());
}

/// stb_image grows its IDAT buffer to whatever length a chunk header claims before it looks
/// for the bytes (found by the fuzzer: 69 bytes asking for 1.2 GB). Every chunk must fit in
/// the file before stb sees it.
void check_png_chunks(std::span<const uint8_t> b, const std::string& path) {
  size_t off = 8;  // after the signature
  // A chunk whose length and type are there is checked even when the file ends before its
  // data and CRC would (the fuzzer's second PNG: 42 bytes ending in a 1.2 GB IDAT header).
  while (off + 8 <= b.size()) {
    const uint32_t len = be32(b.data() + off);
    const std::string type(reinterpret_cast<const char*>(b.data() + off + 4), 4);
    const size_t left = b.size() - off - 8;  // after the length and type
    if (left < 4 || len > left - 4) {
      throw DecodeError(path, "truncated PNG (chunk '" + type + "' at byte " + std::to_string(off) + " claims " +
                                  std::to_string(len) + " bytes of data and a 4-byte CRC, the file has " +
                                  std::to_string(left) + " bytes after its type)");
    }
    off += 12 + size_t{len};
    if (type == "IEND") return;
  }
}

RgbView stb_decode(std::span<const uint8_t> b, const std::string& path, ImageFormat fmt, StbPixels& keep) {
  int comp = 0;
  int w = 0;
  int h = 0;
  const int len = checked_len(b, path);
  if (fmt == ImageFormat::kPng) check_png_chunks(b, path);
  errno = 0;
  keep.reset(stbi_load_from_memory(b.data(), len, &w, &h, &comp, 3));
  if (!keep) {
    const char* why = stbi_failure_reason();
    if (why != nullptr && std::strcmp(why, "outofmem") == 0 && malloc_failed()) throw out_of_memory(path, "stb_image");
    throw DecodeError(path, std::string("corrupt ") + format_name(fmt) + " (" + (why ? why : "stb_image failed") + ")");
  }
  return RgbView{keep.get(), w, h, static_cast<size_t>(w) * 3};
}

// ---- PNM (binary P5 / P6) --------------------------------------------------------------------
//
// Read here, not by stb_image: stb 2.27 ignores a truncated pixel block (returning
// uninitialised memory as an image), reads 16-bit samples in host order, ignores maxval, and
// converts 16-bit grey to RGB as if it were 8-bit, reading past its buffer (a fuzzer finding).
// The format is a few text fields and a raw block, so an exact reader is short.

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

// ---- PNG (libspng) ---------------------------------------------------------------------------

struct SpngFree {
  void operator()(spng_ctx* c) const { spng_ctx_free(c); }
};

/// PNG to 8-bit RGB through libspng (16-bit samples keep their high byte, alpha is dropped,
/// palettes expanded, grey replicated: what stb_image and PIL's convert("RGB") give). CRCs
/// and the zlib checksum are checked: a damaged file is an error, not a silently wrong image.
RgbView png_decode(std::span<const uint8_t> b, const std::string& path, int w, int h, std::vector<uint8_t>& buf) {
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
  check(spng_decode_image(ctx.get(), buf.data(), len, SPNG_FMT_RGB8, 0), "data");
  return RgbView{buf.data(), w, h, static_cast<size_t>(w) * 3};
}

// ---- WebP ---------------------------------------------------------------------------------

RgbView webp_decode(std::span<const uint8_t> b, const std::string& path, int w, int h, std::vector<uint8_t>& buf) {
  buf.resize(static_cast<size_t>(w) * static_cast<size_t>(h) * 3);
  errno = 0;
  if (WebPDecodeRGBInto(b.data(), b.size(), buf.data(), buf.size(), w * 3) == nullptr) {
    if (malloc_failed()) throw out_of_memory(path, "libwebp");
    throw DecodeError(path, "corrupt or truncated WebP");
  }
  return RgbView{buf.data(), w, h, static_cast<size_t>(w) * 3};
}

void check_geometry(const Geometry& g, const ImageInfo& info, const std::string& path, size_t out_size, int64_t max_pixels) {
  const Box& s = g.source;
  if (s.width <= 0 || s.height <= 0 || s.x < 0 || s.y < 0 || s.x + s.width > info.width || s.y + s.height > info.height ||
      g.resize_width <= 0 || g.resize_height <= 0 || g.window.width <= 0 || g.window.height <= 0) {
    throw ConfigError(path + ": geometry does not fit the " + std::to_string(info.width) + "x" +
                      std::to_string(info.height) + " image (planned for another size?)");
  }
  const size_t need = static_cast<size_t>(g.out_width()) * static_cast<size_t>(g.out_height()) * 3;
  // The box is resampled to resize_width x resize_height before the window is kept: for an
  // extreme aspect ratio under Resize(shorter side) that intermediate can dwarf the image
  // (a fuzzer finding: a 49665 x 1 TGA resized to 40 asked for 1,986,600 x 40). Bound it like
  // the image itself, or by the output when that is larger.
  const int64_t resized = int64_t{g.resize_width} * int64_t{g.resize_height};
  const int64_t limit = std::max<int64_t>(max_pixels, int64_t{g.out_width()} * int64_t{g.out_height()});
  if (resized > limit) {
    throw DecodeError(path, "the " + std::to_string(info.width) + "x" + std::to_string(info.height) +
                                " image would be resampled to " + std::to_string(g.resize_width) + "x" +
                                std::to_string(g.resize_height) + " = " + std::to_string(resized) +
                                " pixels before its crop, over the limit of " + std::to_string(limit) +
                                " (option max_pixels; an extreme aspect ratio?)");
  }
  if (out_size < need) {
    throw ConfigError(path + ": output buffer holds " + std::to_string(out_size) + " bytes, the image needs " +
                      std::to_string(need));
  }
}

}  // namespace

const char* format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::kUnknown: return "unknown";
    case ImageFormat::kJpeg: return "JPEG";
    case ImageFormat::kPng: return "PNG";
    case ImageFormat::kBmp: return "BMP";
    case ImageFormat::kGif: return "GIF";
    case ImageFormat::kTga: return "TGA";
    case ImageFormat::kPnm: return "PNM";
    case ImageFormat::kPsd: return "PSD";
    case ImageFormat::kHdr: return "HDR";
    case ImageFormat::kWebp: return "WebP";
  }
  return "unknown";
}

ImageFormat sniff_format(std::span<const uint8_t> b) {
  if (has_bytes(b, {0xff, 0xd8, 0xff})) return ImageFormat::kJpeg;
  if (has_bytes(b, {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'})) return ImageFormat::kPng;
  if (has_text(b, "GIF87a") || has_text(b, "GIF89a")) return ImageFormat::kGif;
  if (has_text(b, "BM")) return ImageFormat::kBmp;
  if (has_text(b, "RIFF") && has_text(b, "WEBP", 8)) return ImageFormat::kWebp;
  if (has_text(b, "8BPS")) return ImageFormat::kPsd;
  if (has_text(b, "#?RADIANCE") || has_text(b, "#?RGBE")) return ImageFormat::kHdr;
  // Whatever stb_image would take as binary PNM is PNM here too (any whitespace, a comment or
  // a digit after the magic), so it reaches our reader and never stb's PNM loader by way of
  // the TGA fallback below (a review finding: "P5\v..." crashed inside stb).
  if (b.size() >= 3 && b[0] == 'P' && (b[1] == '5' || b[1] == '6') &&
      (std::isspace(b[2]) || b[2] == '#' || std::isdigit(b[2]))) {
    return ImageFormat::kPnm;
  }
  return ImageFormat::kUnknown;
}

ImageDecoder::ImageDecoder(DecodeOptions options) : options_(options) {
  if (options_.max_pixels <= 0) throw ConfigError("max_pixels must be positive, got " + std::to_string(options_.max_pixels));
}

void ImageDecoder::check_pixels(const std::string& path, ImageFormat f, int64_t width, int64_t height) const {
  if (width <= 0 || height <= 0) return;
  int64_t pixels = 0;
  // Two 32-bit header fields can overflow int64 (a fuzzer finding: a PSD of 2^32-1 squared).
  const bool overflow = __builtin_mul_overflow(width, height, &pixels);
  if (overflow || pixels > options_.max_pixels) {
    throw DecodeError(path, std::string(format_name(f)) + " header declares " + std::to_string(width) + "x" +
                                std::to_string(height) + " = " +
                                (overflow ? std::string("more than 2^63") : std::to_string(pixels)) +
                                " pixels, over the limit of " +
                                std::to_string(options_.max_pixels) + " (option max_pixels; a decompression bomb?)");
  }
}

ImageInfo ImageDecoder::probe(std::span<const uint8_t> b, const std::string& path) const {
  if (b.empty()) throw DecodeError(path, "empty file (0 bytes)");
  ImageInfo info{sniff_format(b), 0, 0};
  switch (info.format) {
    case ImageFormat::kJpeg: {
      const JpegHeader hd = jpeg_header(b, path);
      info.width = hd.width;
      info.height = hd.height;
      break;
    }
    case ImageFormat::kWebp: {
      WebPBitstreamFeatures f{};
      const VP8StatusCode st = WebPGetFeatures(b.data(), b.size(), &f);
      if (st != VP8_STATUS_OK) {
        throw DecodeError(path, st == VP8_STATUS_NOT_ENOUGH_DATA ? "truncated WebP header" : "corrupt WebP header");
      }
      if (f.has_animation) throw DecodeError(path, "animated WebP is not supported");
      info.width = f.width;
      info.height = f.height;
      break;
    }
    case ImageFormat::kPnm: {
      const PnmHeader hd = pnm_header(b, path);
      info.width = hd.width;
      info.height = hd.height;
      break;
    }
    default: {
      if (info.format == ImageFormat::kUnknown) {
        // No magic number: only TGA (which has none) may still be here. Anything we can
        // name is refused first, so stb's lenient TGA test never sees it.
        std::string why = unrecognised_reason(b);
        if (why.rfind("unrecognised", 0) != 0) throw DecodeError(path, why);
        // stb_image's probe tries its other formats first and is laxer than our sniffing (a
        // JPEG after 0xFF fill bytes, found by the fuzzer, went to stb's JPEG decoder, which
        // fails an assert on some). Only what has a TGA header goes on: a colour map type of
        // 0 or 1 and a known image type.
        const bool tga_header = b.size() >= 18 && b[1] <= 1 && (b[2] == 1 || b[2] == 2 || b[2] == 3 || b[2] == 9 ||
                                                                 b[2] == 10 || b[2] == 11);
        if (!tga_header) throw DecodeError(path, why);
        int comp = 0;
        if (stbi_info_from_memory(b.data(), checked_len(b, path), &info.width, &info.height, &comp) == 0) {
          throw DecodeError(path, why);
        }
        info.format = ImageFormat::kTga;
        break;
      }
      int64_t hw = 0;
      int64_t hh = 0;
      if (header_dims(b, info.format, hw, hh)) check_pixels(path, info.format, hw, hh);
      int comp = 0;
      if (stbi_info_from_memory(b.data(), checked_len(b, path), &info.width, &info.height, &comp) == 0) {
        const char* reason = stbi_failure_reason();
        throw DecodeError(path, std::string("corrupt ") + format_name(info.format) + " header (" +
                                    (reason ? reason : "unreadable") + ")");
      }
      break;
    }
  }
  if (info.width <= 0 || info.height <= 0) {
    throw DecodeError(path, std::string(format_name(info.format)) + " header declares an empty image (" +
                                std::to_string(info.width) + "x" + std::to_string(info.height) + ")");
  }
  check_pixels(path, info.format, info.width, info.height);
  return info;
}

RgbImage ImageDecoder::decode(std::span<const uint8_t> b, const std::string& path) const {
  const ImageInfo info = probe(b, path);
  RgbImage img;
  const Geometry g = Geometry::identity(info.width, info.height);
  img.width = info.width;
  img.height = info.height;
  img.pixels.resize(static_cast<size_t>(info.width) * static_cast<size_t>(info.height) * 3);
  decode_into(b, path, g, img.pixels);
  return img;
}

void ImageDecoder::decode_into(std::span<const uint8_t> b, const std::string& path, const Geometry& g,
                               std::span<uint8_t> out) const try {
  const ImageInfo info = probe(b, path);
  check_geometry(g, info, path, out.size(), options_.max_pixels);
  detail::Scratch& s = thread_scratch();
  const bool use_stb_resize = options_.backend != ResizeBackend::kFast;
  if (info.format == ImageFormat::kJpeg && options_.backend != ResizeBackend::kStb) {
    if (options_.backend == ResizeBackend::kFast) {
      if (!options_.roi || !jpeg_roi(b, path, jpeg_header(b, path), g, options_.dct_scaling, out.data())) {
        jpeg_fast(b, path, g, options_.dct_scaling, out.data());
      }
    } else {
      const RgbView rgb = jpeg_to_rgb(b, path, jpeg_header(b, path), 1, s.rgb);
      detail::resample_rgb(rgb, g, use_stb_resize, out.data());
    }
  } else if (info.format == ImageFormat::kPng && options_.backend != ResizeBackend::kStb) {
    const RgbView rgb = png_decode(b, path, info.width, info.height, s.rgb);
    detail::resample_rgb(rgb, g, use_stb_resize, out.data());
  } else if (info.format == ImageFormat::kWebp) {
    const RgbView rgb = webp_decode(b, path, info.width, info.height, s.rgb);
    detail::resample_rgb(rgb, g, use_stb_resize, out.data());
  } else if (info.format == ImageFormat::kPnm) {
    const RgbView rgb = pnm_decode(b, path, pnm_header(b, path), s.rgb);
    detail::resample_rgb(rgb, g, use_stb_resize, out.data());
  } else {
    StbPixels keep;
    const RgbView rgb = stb_decode(b, path, info.format, keep);
    if (rgb.width != info.width || rgb.height != info.height) {
      throw DecodeError(path, std::string("corrupt ") + format_name(info.format) + " (header says " +
                                  std::to_string(info.width) + "x" + std::to_string(info.height) + ", data " +
                                  std::to_string(rgb.width) + "x" + std::to_string(rgb.height) + ")");
    }
    detail::resample_rgb(rgb, g, use_stb_resize, out.data());
  }
  s.trim();
} catch (const DecodeError&) {
  throw;
} catch (const ConfigError&) {
  throw;  // the caller's geometry or buffer is wrong, not the file
} catch (const ResourceError&) {
  throw;  // the system ran short (memory): not the file's fault, never a bad file
} catch (const Error& e) {
  // A library refusing the geometry (found by the fuzzer: a 65535-wide TGA that libyuv's
  // scaler rejects) is still this file's decode failure.
  throw DecodeError(path, e.what());
}

}  // namespace ringloader::datasets
