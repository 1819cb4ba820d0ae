// JPEG: TurboJPEG reads the header; kFast decodes the region of interest through libjpeg's
// API or the whole image to YUV planes, kTurboJpegStb the whole image to RGB, kStb goes to
// stb_image.
#include <turbojpeg.h>

#include <csetjmp>
#include <cstddef>
#include <cstdio>
// jpeglib.h needs FILE and size_t first.
#include <jerror.h>
#include <jpeglib.h>
#include <libyuv.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "datasets/codecs/codec.hpp"
#include "datasets/codecs/common.hpp"

namespace ringloader::datasets::codecs {

namespace {

using detail::RgbView;
using detail::thread_scratch;

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

bool tj_out_of_memory(const std::string& msg) {
  return malloc_failed() && (msg.find("Insufficient memory") != std::string::npos ||
                             msg.find("Memory allocation failure") != std::string::npos);
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
void jpeg_fast(std::span<const uint8_t> b, const std::string& path, const JpegHeader& hd, const Geometry& g,
               bool dct_scaling, uint8_t* out) {
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

// A libjpeg decompressor per image. Reused across images (after jpeg_abort_decompress), libjpeg-
// turbo 2.1's merged upsampler gave a few wrong pixels in the second row after a skip; creating
// one costs microseconds beside a decode.
struct RoiDecompressor {
  jpeg_decompress_struct cinfo{};
  RoiError err{};
  jpeg_progress_mgr progress{};
  bool created = false;
  ~RoiDecompressor() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

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
  // Chroma upsampled by repeating samples, merged with the colour conversion (one SIMD pass):
  // what the planar path's libyuv conversion does too. Libjpeg's smoothing upsampler is a
  // separate pass over every kept row.
  c.do_fancy_upsampling = FALSE;
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
  RoiDecompressor d;
  errno = 0;
  const RoiResult result = roi_decode_rows(d, r);
  if (result == RoiResult::kNotYcc) return false;
  if (result == RoiResult::kFailed) {
    const std::string msg = d.err.message;
    const bool oom = d.err.out_of_memory;
    if (oom) throw out_of_memory(path, "libjpeg (" + msg + ")");
    throw DecodeError(path, "corrupt JPEG (" + msg + ")");
  }
  if (d.err.truncated) throw DecodeError(path, "truncated JPEG (premature end of JPEG file)");

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

bool sniff(std::span<const uint8_t> b) { return has_bytes(b, {0xff, 0xd8, 0xff}); }

// ImageInfo::codec_header: TurboJPEG's subsampling and colour space.
ImageInfo probe(std::span<const uint8_t> b, const std::string& path, const DecodeOptions&) {
  const JpegHeader hd = jpeg_header(b, path);
  ImageInfo info = make_info(ImageFormat::kJpeg, hd.width, hd.height);
  info.codec_header = {static_cast<uint32_t>(hd.subsamp), static_cast<uint32_t>(hd.colorspace)};
  return info;
}

void decode(std::span<const uint8_t> b, const std::string& path, const ImageInfo& info, const Geometry& g,
            const DecodeOptions& o, uint8_t* out) {
  if (o.backend == ResizeBackend::kStb) {
    stb_decode(b, path, info, g, o, out);
    return;
  }
  const JpegHeader hd{info.width, info.height, static_cast<int>(info.codec_header[0]),
                      static_cast<int>(info.codec_header[1])};
  if (o.backend == ResizeBackend::kFast) {
    if (!o.roi || !jpeg_roi(b, path, hd, g, o.dct_scaling, out)) jpeg_fast(b, path, hd, g, o.dct_scaling, out);
  } else {
    resample(jpeg_to_rgb(b, path, hd, 1, thread_scratch().rgb), g, o, out);
  }
}

constexpr std::string_view kExtensions[] = {".jpg", ".jpeg"};

}  // namespace

constinit const Codec kJpeg{ImageFormat::kJpeg, "JPEG", kExtensions, sniff, probe, decode};

}  // namespace ringloader::datasets::codecs
