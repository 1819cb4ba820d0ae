// Decoding: each format from images made here, pixels against known values.
// Tolerances: lossless formats exact; JPEG q95-100 4:4:4 of flat colours within 3 levels
// (DCT rounding); subsampled/lossy/resampled cases state their own bound.
#include <catch2/catch.hpp>
#include <spng.h>
#include <stb/stb_image.h>

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>

#include "datasets/detail/file_reader.hpp"
#include "core/error.hpp"
#include "datasets/image_decoder.hpp"
#include "tests/datasets/image_test_util.hpp"
#include "tests/support/child.hpp"

using namespace ringloader;
using namespace ringloader::datasets;
using ringloader::test::encode_jpeg;
using ringloader::test::encode_png;
using ringloader::test::encode_webp;
using ringloader::test::make_rgb;
using ringloader::test::TempDir;

namespace {

std::array<uint8_t, 3> quadrant_colour(int x, int y, int w, int h) {
  // red | green
  // blue | white
  const bool right = x >= w / 2;
  const bool bottom = y >= h / 2;
  if (!bottom) return right ? std::array<uint8_t, 3>{0, 255, 0} : std::array<uint8_t, 3>{255, 0, 0};
  return right ? std::array<uint8_t, 3>{255, 255, 255} : std::array<uint8_t, 3>{0, 0, 255};
}

std::array<int, 3> pixel(const std::vector<uint8_t>& px, int w, int x, int y) {
  const size_t i = static_cast<size_t>((y * w + x) * 3);
  return {px[i], px[i + 1], px[i + 2]};
}

void check_near(std::array<int, 3> got, std::array<uint8_t, 3> want, int tol) {
  INFO("got " << got[0] << "," << got[1] << "," << got[2] << " want " << int(want[0]) << "," << int(want[1]) << ","
              << int(want[2]));
  for (int c = 0; c < 3; ++c) CHECK(std::abs(got[static_cast<size_t>(c)] - want[static_cast<size_t>(c)]) <= tol);
}

// Centre of each quadrant has the quadrant's colour (edges blur under DCT and resampling).
void check_quadrants(const std::vector<uint8_t>& px, int w, int h, int tol) {
  for (auto [qx, qy] : {std::pair{0, 0}, {1, 0}, {0, 1}, {1, 1}}) {
    const int x = w / 4 + qx * w / 2;
    const int y = h / 4 + qy * h / 2;
    check_near(pixel(px, w, x, y), quadrant_colour(x, y, w, h), tol);
  }
}

double mean_abs_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += std::abs(int(a[i]) - int(b[i]));
  return s / static_cast<double>(a.size());
}

}  // namespace

TEST_CASE("formats are sniffed from magic bytes", "[decoder]") {
  auto png = encode_png(make_rgb(4, 4, [](int, int) { return std::array<uint8_t, 3>{1, 2, 3}; }), 4, 4);
  auto jpg = encode_jpeg(make_rgb(8, 8, [](int, int) { return std::array<uint8_t, 3>{1, 2, 3}; }), 8, 8);
  auto webp = encode_webp(make_rgb(4, 4, [](int, int) { return std::array<uint8_t, 3>{1, 2, 3}; }), 4, 4, true);
  CHECK(sniff_format(png) == ImageFormat::kPng);
  CHECK(sniff_format(jpg) == ImageFormat::kJpeg);
  CHECK(sniff_format(webp) == ImageFormat::kWebp);
  const std::vector<uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a'};
  CHECK(sniff_format(gif) == ImageFormat::kGif);
  const std::vector<uint8_t> ppm = {'P', '6', '\n'};
  CHECK(sniff_format(ppm) == ImageFormat::kPnm);
  const std::vector<uint8_t> html = {'<', 'h', 't', 'm', 'l', '>'};
  CHECK(sniff_format(html) == ImageFormat::kUnknown);
}

TEST_CASE("JPEG decodes to RGB in the right channel order", "[decoder][jpeg]") {
  const int w = 64, h = 48;
  const auto px = make_rgb(w, h, [&](int x, int y) { return quadrant_colour(x, y, w, h); });
  ImageDecoder dec;
  for (int subsamp : {TJSAMP_444, TJSAMP_422, TJSAMP_420}) {
    INFO("subsampling " << subsamp);
    const auto jpg = encode_jpeg(px, w, h, 100, subsamp);
    const ImageInfo info = dec.probe(jpg, "q.jpg");
    CHECK(info.format == ImageFormat::kJpeg);
    CHECK(info.width == w);
    CHECK(info.height == h);
    const RgbImage img = dec.decode(jpg, "q.jpg");
    REQUIRE(img.width == w);
    REQUIRE(img.height == h);
    check_quadrants(img.pixels, w, h, 3);
    // The two reference backends agree on the same pixels.
    for (auto backend : {ResizeBackend::kTurboJpegStb, ResizeBackend::kStb}) {
      const RgbImage ref = ImageDecoder(DecodeOptions{int64_t{64} << 20, true, backend}).decode(jpg, "q.jpg");
      check_quadrants(ref.pixels, w, h, 3);
    }
  }
}

TEST_CASE("grayscale and CMYK JPEGs become RGB", "[decoder][jpeg]") {
  ImageDecoder dec;
  const int w = 16, h = 16;
  std::vector<uint8_t> gray(static_cast<size_t>(w * h));
  for (int i = 0; i < w * h; ++i) gray[static_cast<size_t>(i)] = static_cast<uint8_t>(i < w * h / 2 ? 40 : 200);
  const RgbImage g = dec.decode(encode_jpeg(gray, w, h, 100, TJSAMP_GRAY, TJPF_GRAY), "g.jpg");
  check_near(pixel(g.pixels, w, 8, 2), {40, 40, 40}, 2);
  check_near(pixel(g.pixels, w, 8, 13), {200, 200, 200}, 2);
  // Adobe-style CMYK stores inverted inks: (255, 0, 255, 255) is magenta.
  std::vector<uint8_t> cmyk;
  for (int i = 0; i < w * h; ++i) cmyk.insert(cmyk.end(), {255, 0, 255, 255});
  const auto jpg = encode_jpeg(cmyk, w, h, 100, TJSAMP_444, TJPF_CMYK);
  const RgbImage c = dec.decode(jpg, "c.jpg");
  check_near(pixel(c.pixels, w, 8, 8), {255, 0, 255}, 3);
  // CMYK through the fast resampling path too.
  Geometry geo{Box{0, 0, w, h}, 8, 8, Box{0, 0, 8, 8}, false};
  std::vector<uint8_t> out(8 * 8 * 3);
  dec.decode_into(jpg, "c.jpg", geo, out);
  check_near(pixel(out, 8, 4, 4), {255, 0, 255}, 3);
}

TEST_CASE("PNG, BMP, TGA, PNM, HDR, WebP decode exactly where lossless", "[decoder]") {
  TempDir tmp;
  const int w = 7, h = 5;  // odd sizes catch stride bugs
  const auto px = make_rgb(w, h, [](int x, int y) {
    return std::array<uint8_t, 3>{static_cast<uint8_t>(x * 30), static_cast<uint8_t>(y * 50), static_cast<uint8_t>(x * y)};
  });
  ImageDecoder dec;
  auto expect_exact = [&](const std::vector<uint8_t>& bytes, ImageFormat fmt) {
    INFO(format_name(fmt));
    const ImageInfo info = dec.probe(bytes, "x");
    CHECK(info.format == fmt);
    const RgbImage img = dec.decode(bytes, "x");
    REQUIRE(img.width == w);
    REQUIRE(img.height == h);
    CHECK(img.pixels == px);
  };
  expect_exact(encode_png(px, w, h), ImageFormat::kPng);
  stbi_write_bmp((tmp / "a.bmp").c_str(), w, h, 3, px.data());
  expect_exact(test::read_bytes(tmp / "a.bmp"), ImageFormat::kBmp);
  stbi_write_tga((tmp / "a.tga").c_str(), w, h, 3, px.data());
  expect_exact(test::read_bytes(tmp / "a.tga"), ImageFormat::kTga);
  std::vector<uint8_t> ppm;
  const std::string head = "P6\n7 5\n255\n";
  ppm.assign(head.begin(), head.end());
  ppm.insert(ppm.end(), px.begin(), px.end());
  expect_exact(ppm, ImageFormat::kPnm);
  expect_exact(encode_webp(px, w, h, true), ImageFormat::kWebp);

  SECTION("alpha is dropped, gray is replicated") {
    std::vector<uint8_t> rgba;
    for (size_t i = 0; i < px.size(); i += 3) rgba.insert(rgba.end(), {px[i], px[i + 1], px[i + 2], 7});
    const RgbImage a = dec.decode(encode_png(rgba, w, h, 4), "rgba.png");
    CHECK(a.pixels == px);
    std::vector<uint8_t> gray(static_cast<size_t>(w * h), 77);
    const RgbImage g = dec.decode(encode_png(gray, w, h, 1), "g.png");
    CHECK(pixel(g.pixels, w, 3, 3) == std::array<int, 3>{77, 77, 77});
  }
  SECTION("16-bit PNM becomes 8-bit") {
    std::string h16 = "P6\n2 1\n65535\n";
    std::vector<uint8_t> b(h16.begin(), h16.end());
    b.insert(b.end(), {0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0xff, 0xff});
    const RgbImage img = dec.decode(b, "16.ppm");
    REQUIRE(img.width == 2);
    check_near(pixel(img.pixels, 2, 0, 0), {255, 128, 0}, 1);
    check_near(pixel(img.pixels, 2, 1, 0), {0, 64, 255}, 1);
    // Grey 16-bit (P5): stb_image converts its channel count as if the samples were 8-bit,
    // which read past its buffer (fuzzer finding, tests/fuzz/regressions/pgm16-grey-*).
    std::string g16 = "P5\n3 1\n256\n";
    std::vector<uint8_t> g(g16.begin(), g16.end());
    g.insert(g.end(), {0x01, 0x00, 0x00, 0x80, 0x00, 0x00});
    const RgbImage grey = dec.decode(g, "16.pgm");
    REQUIRE(grey.width == 3);
    REQUIRE(grey.pixels.size() == 9);
    CHECK(pixel(grey.pixels, 3, 0, 0) == std::array<int, 3>{255, 255, 255});  // 256 of maxval 256
    CHECK(pixel(grey.pixels, 3, 1, 0) == std::array<int, 3>{128, 128, 128});
    CHECK(pixel(grey.pixels, 3, 2, 0) == std::array<int, 3>{0, 0, 0});
    g.pop_back();
    CHECK_THROWS_WITH(dec.decode(g, "short.pgm"), Catch::Contains("short.pgm") && Catch::Contains("PNM"));
  }
  SECTION("PNM samples are scaled from 0..maxval") {
    const std::string head15 = "P5\n# a comment\n2 1\n15\n";
    std::vector<uint8_t> b(head15.begin(), head15.end());
    b.insert(b.end(), {15, 5});
    const RgbImage img = dec.decode(b, "15.pgm");
    CHECK(pixel(img.pixels, 2, 0, 0) == std::array<int, 3>{255, 255, 255});
    CHECK(pixel(img.pixels, 2, 1, 0) == std::array<int, 3>{85, 85, 85});
    // Rounded half to even, as Pillow does: 1/6 -> 42.5 -> 42, 3/6 -> 127.5 -> 128.
    const std::string h6 = "P5 3 1 6\n";
    std::vector<uint8_t> b6(h6.begin(), h6.end());
    b6.insert(b6.end(), {1, 3, 6});
    const RgbImage img6 = dec.decode(b6, "6.pgm");
    CHECK(pixel(img6.pixels, 3, 0, 0)[0] == 42);
    CHECK(pixel(img6.pixels, 3, 1, 0)[0] == 128);
    CHECK(pixel(img6.pixels, 3, 2, 0)[0] == 255);
  }
  SECTION("any separator stb_image accepts after P5/P6 is read as PNM by our reader, not as TGA") {
    // A review finding: "P5\v..." was not sniffed as PNM, passed stb's TGA fallback probe and
    // was decoded by stb's PNM loader (which crashed on a 16-bit one).
    for (const char sep : {'\v', '\f', '#', '2'}) {
      std::string hdr = std::string("P5") + sep + (sep == '#' ? " c\n" : "") + (sep == '2' ? " 1\n255\n" : "2 1\n255\n");
      std::vector<uint8_t> b(hdr.begin(), hdr.end());
      b.insert(b.end(), {200, 100});
      INFO("separator " << int(sep));
      const ImageInfo info = dec.probe(b, "sep.pgm");
      CHECK(info.format == ImageFormat::kPnm);
      const RgbImage img = dec.decode(b, "sep.pgm");
      REQUIRE(img.width == 2);
      CHECK(pixel(img.pixels, 2, 1, 0) == std::array<int, 3>{100, 100, 100});
    }
    std::vector<uint8_t> pic(100, 0);
    pic[0] = 0x53, pic[1] = 0x80, pic[2] = 0xf6, pic[3] = 0x34;
    std::memcpy(pic.data() + 88, "PICT", 4);
    CHECK_THROWS_WITH(dec.probe(pic, "x.pic"), Catch::Contains("x.pic") && Catch::Contains("Softimage PIC"));
  }
  SECTION("a PNM with a bad header or too few pixel bytes is an error naming the file") {
    auto bytes = [](const std::string& t) { return std::vector<uint8_t>(t.begin(), t.end()); };
    CHECK_THROWS_WITH(dec.decode(bytes("P6\n7 5\n255\n" + std::string(7 * 5 * 3 - 1, 'x')), "t.ppm"),
                      Catch::Contains("t.ppm") && Catch::Contains("truncated PNM") && Catch::Contains("needs 105 bytes"));
    CHECK_THROWS_WITH(dec.decode(bytes("P6\n7\n"), "h.ppm"), Catch::Contains("h.ppm") && Catch::Contains("height"));
    CHECK_THROWS_WITH(dec.decode(bytes("P5 2 2 0\n1234"), "m.pgm"), Catch::Contains("maxval 0"));
    CHECK_THROWS_WITH(dec.decode(bytes("P5 2 99999999999 255\n"), "big.pgm"), Catch::Contains("height over 2^31"));
  }
  SECTION("16-bit and palette PNG become RGB8, under both PNG decoders") {
    // Written by libspng's encoder: stb_image_write has neither 16-bit nor palette PNGs.
    auto encode = [](spng_ihdr ihdr, const std::vector<uint8_t>& data, const spng_plte* plte) {
      const std::unique_ptr<spng_ctx, void (*)(spng_ctx*)> ctx(spng_ctx_new(SPNG_CTX_ENCODER), spng_ctx_free);
      REQUIRE(ctx);
      REQUIRE(spng_set_option(ctx.get(), SPNG_ENCODE_TO_BUFFER, 1) == 0);
      REQUIRE(spng_set_ihdr(ctx.get(), &ihdr) == 0);
      if (plte != nullptr) REQUIRE(spng_set_plte(ctx.get(), const_cast<spng_plte*>(plte)) == 0);
      REQUIRE(spng_encode_image(ctx.get(), data.data(), data.size(), SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE) == 0);
      size_t len = 0;
      int err = 0;
      auto* buf = static_cast<uint8_t*>(spng_get_png_buffer(ctx.get(), &len, &err));
      REQUIRE(buf != nullptr);
      std::vector<uint8_t> out(buf, buf + len);
      std::free(buf);
      return out;
    };
    // 2x1 RGB16: (0xff80, 0x8001, 0x0000), (0x0102, 0x40ff, 0xfffe); the encoder takes host-order
    // samples and writes them big-endian, as PNG wants.
    const uint16_t samples[6] = {0xff80, 0x8001, 0x0000, 0x0102, 0x40ff, 0xfffe};
    const auto* sample_bytes = reinterpret_cast<const uint8_t*>(samples);
    const auto png16 = encode(spng_ihdr{2, 1, 16, SPNG_COLOR_TYPE_TRUECOLOR, 0, 0, 0},
                              std::vector<uint8_t>(sample_bytes, sample_bytes + sizeof samples), nullptr);
    // 3x1 indexed, palette {red, green, (10, 20, 30)}, pixels 2, 0, 1.
    spng_plte plte{};
    plte.n_entries = 3;
    plte.entries[0] = {255, 0, 0, 255};
    plte.entries[1] = {0, 255, 0, 255};
    plte.entries[2] = {10, 20, 30, 255};
    const auto pal = encode(spng_ihdr{3, 1, 8, SPNG_COLOR_TYPE_INDEXED, 0, 0, 0}, {2, 0, 1}, &plte);
    for (ResizeBackend backend : {ResizeBackend::kFast, ResizeBackend::kStb}) {  // libspng, stb_image
      INFO("backend " << static_cast<int>(backend));
      const ImageDecoder d(DecodeOptions{int64_t{64} << 20, true, backend});
      const RgbImage a = d.decode(png16, "16.png");
      REQUIRE(a.width == 2);
      check_near(pixel(a.pixels, 2, 0, 0), {255, 128, 0}, 1);  // the high byte, as PIL keeps it
      check_near(pixel(a.pixels, 2, 1, 0), {1, 64, 255}, 1);
      const RgbImage b = d.decode(pal, "pal.png");
      REQUIRE(b.width == 3);
      CHECK(pixel(b.pixels, 3, 0, 0) == std::array<int, 3>{10, 20, 30});
      CHECK(pixel(b.pixels, 3, 1, 0) == std::array<int, 3>{255, 0, 0});
      CHECK(pixel(b.pixels, 3, 2, 0) == std::array<int, 3>{0, 255, 0});
    }
  }
  SECTION("a PNG chunk claiming more bytes than the file has is refused before any allocation") {
    // The fuzzer's finding: stb_image grew its buffer to a chunk's claimed length (1.2 GB here).
    auto png = encode_png(px, w, h);
    const size_t idat = 8 + 25;  // signature, then IHDR (4 + 4 + 13 + 4 bytes)
    REQUIRE(std::string(png.begin() + idat + 4, png.begin() + idat + 8) == "IDAT");
    png[idat] = 0x47;
    png[idat + 1] = 0x42;
    const ImageDecoder spng_dec(DecodeOptions{int64_t{64} << 20, true, ResizeBackend::kFast});
    CHECK_THROWS_WITH(spng_dec.decode(png, "huge-chunk.png"), Catch::Contains("huge-chunk.png") && Catch::Contains("PNG"));
    const ImageDecoder stb_dec(DecodeOptions{int64_t{64} << 20, true, ResizeBackend::kStb});
    CHECK_THROWS_WITH(stb_dec.decode(png, "huge-chunk.png"),
                      Catch::Contains("huge-chunk.png") && Catch::Contains("chunk 'IDAT'") && Catch::Contains("claims"));
    // The second: the file ends a byte after that chunk's length and type.
    png.resize(idat + 9);
    CHECK_THROWS_WITH(stb_dec.decode(png, "cut-chunk.png"),
                      Catch::Contains("cut-chunk.png") && Catch::Contains("chunk 'IDAT'") && Catch::Contains("claims"));
    CHECK_THROWS_WITH(spng_dec.decode(png, "cut-chunk.png"), Catch::Contains("cut-chunk.png") && Catch::Contains("PNG"));
  }
  SECTION("a PNG with a damaged CRC is an error naming the file") {
    auto png = encode_png(px, w, h);
    png[png.size() - 20] ^= 0x55;  // inside the IDAT data or its CRC
    CHECK_THROWS_WITH(dec.decode(png, "bad-crc.png"), Catch::Contains("bad-crc.png") && Catch::Contains("PNG"));
  }
  SECTION("palette BMP") {
    // 2x1, 8 bits per pixel, palette {blue, red}: BITMAPFILEHEADER + BITMAPINFOHEADER by hand.
    std::vector<uint8_t> b = {'B', 'M', 66, 0, 0, 0, 0, 0, 0, 0, 62, 0, 0, 0,  // file header, data at 62
                              40, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 8, 0, 0, 0, 0, 0, 4, 0, 0, 0,
                              0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
                              255, 0, 0, 0, 0, 0, 255, 0,  // palette (B, G, R, 0): blue, red
                              1, 0, 0, 0};                 // row: red, blue, padding
    const RgbImage img = dec.decode(b, "pal.bmp");
    REQUIRE(img.width == 2);
    CHECK(pixel(img.pixels, 2, 0, 0) == std::array<int, 3>{255, 0, 0});
    CHECK(pixel(img.pixels, 2, 1, 0) == std::array<int, 3>{0, 0, 255});
  }
  SECTION("HDR is tone-mapped to 8 bits") {
    std::vector<float> f(static_cast<size_t>(w * h * 3), 1.0f);
    stbi_write_hdr((tmp / "a.hdr").c_str(), w, h, 3, f.data());
    const auto b = test::read_bytes(tmp / "a.hdr");
    CHECK(dec.probe(b, "a.hdr").format == ImageFormat::kHdr);
    const RgbImage img = dec.decode(b, "a.hdr");
    check_near(pixel(img.pixels, w, 1, 1), {255, 255, 255}, 1);
  }
  SECTION("lossy WebP within 12 levels of flat colour") {
    const auto flat = make_rgb(32, 32, [&](int x, int y) { return quadrant_colour(x, y, 32, 32); });
    const RgbImage img = dec.decode(encode_webp(flat, 32, 32, false, 95), "l.webp");
    check_quadrants(img.pixels, 32, 32, 12);
  }
}

// A 24-bit BMP written by hand: BITMAPFILEHEADER, BITMAPINFOHEADER, rows of B, G, R padded to
// 4 bytes. Bottom-up (the usual order) or top-down, which the header says by a negative height.
std::vector<uint8_t> bmp24(const std::vector<uint8_t>& rgb, int w, int h, bool top_down) {
  const size_t row = (static_cast<size_t>(w) * 3 + 3) / 4 * 4;
  const size_t size = 54 + row * static_cast<size_t>(h);
  std::vector<uint8_t> b;
  auto le = [&](int64_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * i)));
  };
  b.push_back('B');
  b.push_back('M');
  le(static_cast<int64_t>(size), 4);
  le(0, 4);   // reserved
  le(54, 4);  // pixels start
  le(40, 4);  // BITMAPINFOHEADER
  le(w, 4);
  le(top_down ? -h : h, 4);
  le(1, 2);   // planes
  le(24, 2);  // bits per pixel
  le(0, 4);   // BI_RGB
  le(static_cast<int64_t>(row) * h, 4);
  le(2835, 4);  // 72 dpi
  le(2835, 4);
  le(0, 4);
  le(0, 4);
  for (int i = 0; i < h; ++i) {
    const int y = top_down ? i : h - 1 - i;
    for (int x = 0; x < w; ++x) {
      const size_t at = (static_cast<size_t>(y) * static_cast<size_t>(w) + static_cast<size_t>(x)) * 3;
      b.push_back(rgb[at + 2]);
      b.push_back(rgb[at + 1]);
      b.push_back(rgb[at]);
    }
    b.resize(b.size() + row - static_cast<size_t>(w) * 3, 0);
  }
  REQUIRE(b.size() == size);
  return b;
}

TEST_CASE("a top-down BMP (negative height) decodes like its bottom-up twin", "[decoder][bmp]") {
  // The size of the file that was refused as "BMP header declares an empty image (71x-53)".
  const int w = 71, h = 53;
  const auto px = make_rgb(w, h, [](int x, int y) {
    return std::array<uint8_t, 3>{static_cast<uint8_t>(x * 3), static_cast<uint8_t>(y * 4), static_cast<uint8_t>(x ^ y)};
  });
  const auto bottom_up = bmp24(px, w, h, false);
  const auto top_down = bmp24(px, w, h, true);
  for (const ResizeBackend backend : {ResizeBackend::kFast, ResizeBackend::kStb}) {
    const ImageDecoder dec(DecodeOptions{int64_t{64} << 20, true, backend});
    for (const auto* bytes : {&bottom_up, &top_down}) {
      INFO((bytes == &top_down ? "top-down" : "bottom-up") << ", backend " << static_cast<int>(backend));
      const ImageInfo info = dec.probe(*bytes, "t.bmp");
      CHECK(info.format == ImageFormat::kBmp);
      CHECK(info.width == w);
      CHECK(info.height == h);
      const RgbImage img = dec.decode(*bytes, "t.bmp");
      REQUIRE(img.height == h);
      CHECK(img.pixels == px);  // every row in its place: the first row is the top one
      // A crop of the top rows through the probed header.
      std::vector<uint8_t> top(static_cast<size_t>(w) * 2 * 3);
      dec.decode_into(*bytes, "t.bmp", info, Geometry{Box{0, 0, w, 2}, w, 2, Box{0, 0, w, 2}, false}, top);
      CHECK(top == std::vector<uint8_t>(px.begin(), px.begin() + static_cast<std::ptrdiff_t>(top.size())));
    }
  }
  SECTION("the pixel limit reads the height without its sign") {
    const ImageDecoder small(DecodeOptions{int64_t{w} * h - 1});
    CHECK_THROWS_WITH(small.probe(top_down, "t.bmp"), Catch::Contains("71x53 = 3763 pixels, over the limit"));
  }
}

TEST_CASE("decode_into refuses an ImageInfo probed from other bytes", "[decoder]") {
  const auto px = make_rgb(8, 8, [](int x, int y) { return quadrant_colour(x, y, 8, 8); });
  const auto png = encode_png(px, 8, 8);
  const auto jpg = encode_jpeg(px, 8, 8);
  ImageDecoder dec;
  const ImageInfo png_info = dec.probe(png, "a.png");
  std::vector<uint8_t> out(8 * 8 * 3);
  const Geometry g = Geometry::identity(8, 8);
  dec.decode_into(png, "a.png", png_info, g, out);
  CHECK(out == px);
  CHECK_THROWS_AS(dec.decode_into(jpg, "b.jpg", png_info, g, out), ConfigError);
  CHECK_THROWS_AS(dec.decode_into(png, "a.png", ImageInfo{}, g, out), ConfigError);
  auto longer = png;
  longer.push_back(0);
  CHECK_THROWS_WITH(dec.decode_into(longer, "c.png", png_info, g, out),
                    Catch::Contains("c.png") && Catch::Contains("not probe()'s"));
}

TEST_CASE("decode_into crops, flips and pads exactly without resampling", "[decoder][geometry]") {
  const int w = 10, h = 6;
  const auto px = make_rgb(w, h, [](int x, int y) {
    return std::array<uint8_t, 3>{static_cast<uint8_t>(x), static_cast<uint8_t>(y), 9};
  });
  const auto png = encode_png(px, w, h);
  ImageDecoder dec;
  std::vector<uint8_t> out(4 * 3 * 3);
  // Source box (2,1) 4x3, no resize, whole window.
  dec.decode_into(png, "p.png", Geometry{Box{2, 1, 4, 3}, 4, 3, Box{0, 0, 4, 3}, false}, out);
  CHECK(pixel(out, 4, 0, 0) == std::array<int, 3>{2, 1, 9});
  CHECK(pixel(out, 4, 3, 2) == std::array<int, 3>{5, 3, 9});
  dec.decode_into(png, "p.png", Geometry{Box{2, 1, 4, 3}, 4, 3, Box{0, 0, 4, 3}, true}, out);
  CHECK(pixel(out, 4, 0, 0) == std::array<int, 3>{5, 1, 9});
  CHECK(pixel(out, 4, 3, 2) == std::array<int, 3>{2, 3, 9});
  // A window reaching one pixel past every edge of a 2x1 image: zero padding.
  std::vector<uint8_t> pad(4 * 3 * 3);
  dec.decode_into(png, "p.png", Geometry{Box{0, 0, 2, 1}, 2, 1, Box{-1, -1, 4, 3}, false}, pad);
  CHECK(pixel(pad, 4, 0, 0) == std::array<int, 3>{0, 0, 0});
  CHECK(pixel(pad, 4, 1, 1) == std::array<int, 3>{0, 0, 9});
  CHECK(pixel(pad, 4, 2, 1) == std::array<int, 3>{1, 0, 9});
  CHECK(pixel(pad, 4, 3, 2) == std::array<int, 3>{0, 0, 0});
  // Too small an output buffer is refused, not overrun.
  std::vector<uint8_t> tiny(5);
  CHECK_THROWS_AS(dec.decode_into(png, "p.png", Geometry::identity(w, h), tiny), ConfigError);
}

TEST_CASE("the fast resampler matches the stb reference on smooth images", "[decoder][resize]") {
  // A smooth 4:2:0 JPEG, Resize(64)+CenterCrop(56)-like geometry with an odd window offset.
  const int w = 233, h = 171;
  const auto px = make_rgb(w, h, [](int x, int y) {
    return std::array<uint8_t, 3>{static_cast<uint8_t>(x), static_cast<uint8_t>(y), static_cast<uint8_t>((x + y) / 2)};
  });
  const auto jpg = encode_jpeg(px, w, h, 95, TJSAMP_420);
  const Geometry g{Box{0, 0, w, h}, 87, 64, Box{15, 4, 56, 56}, false};
  std::vector<uint8_t> fast(56 * 56 * 3), ref(56 * 56 * 3), png_fast(56 * 56 * 3);
  ImageDecoder(DecodeOptions{int64_t{64} << 20, true, ResizeBackend::kFast}).decode_into(jpg, "s.jpg", g, fast);
  ImageDecoder(DecodeOptions{int64_t{64} << 20, true, ResizeBackend::kStb}).decode_into(jpg, "s.jpg", g, ref);
  CHECK(mean_abs_diff(fast, ref) < 2.0);
  // The RGB path (non-JPEG) through libyuv agrees too.
  ImageDecoder().decode_into(encode_png(px, w, h), "s.png", g, png_fast);
  CHECK(mean_abs_diff(png_fast, ref) < 2.5);
  // And the window lands where the geometry says: output (0,0) is resized (15,4).
  const auto p = pixel(fast, 56, 0, 0);
  CHECK(std::abs(p[0] - static_cast<int>((15 + 0.5) * w / 87.0)) <= 3);
  CHECK(std::abs(p[1] - static_cast<int>((4 + 0.5) * h / 64.0)) <= 3);
}

TEST_CASE("DCT-domain downscaling keeps colours and geometry", "[decoder][jpeg]") {
  const int w = 512, h = 384;
  const auto px = make_rgb(w, h, [&](int x, int y) { return quadrant_colour(x, y, w, h); });
  const auto jpg = encode_jpeg(px, w, h, 95, TJSAMP_420);
  const Geometry g{Box{0, 0, w, h}, 64, 48, Box{0, 0, 64, 48}, false};  // 1/8: exactly 64x48
  std::vector<uint8_t> with(64 * 48 * 3), without(64 * 48 * 3);
  ImageDecoder(DecodeOptions{int64_t{64} << 20, true, ResizeBackend::kFast}).decode_into(jpg, "d.jpg", g, with);
  ImageDecoder(DecodeOptions{int64_t{64} << 20, false, ResizeBackend::kFast}).decode_into(jpg, "d.jpg", g, without);
  check_quadrants(with, 64, 48, 4);
  check_quadrants(without, 64, 48, 4);
  CHECK(mean_abs_diff(with, without) < 3.0);
}

TEST_CASE("bad bytes give one-line DecodeErrors naming the file", "[decoder][bad]") {
  ImageDecoder dec(DecodeOptions{int64_t{1} << 20, true, ResizeBackend::kFast});  // 1 MP limit
  const auto px = make_rgb(64, 64, [](int x, int y) { return std::array<uint8_t, 3>{uint8_t(x * 4), uint8_t(y * 4), 0}; });
  auto expect = [&](const std::vector<uint8_t>& b, const std::string& needle) {
    INFO(needle);
    try {
      static_cast<void>(dec.decode(b, "/d/bad.jpg"));
      FAIL("no exception");
    } catch (const DecodeError& e) {
      CHECK(e.path() == "/d/bad.jpg");
      CHECK_THAT(e.what(), Catch::StartsWith("/d/bad.jpg: ") && Catch::Contains(needle));
      CHECK(std::string(e.what()).find('\n') == std::string::npos);
    }
  };
  const auto jpg = encode_jpeg(px, 64, 64, 90, TJSAMP_420);
  const auto noisy = encode_jpeg(make_rgb(128, 128, [](int x, int y) {
    return std::array<uint8_t, 3>{uint8_t(x * y * 7), uint8_t(x ^ y), uint8_t(x * 13 + y * 5)};
  }), 128, 128, 95, TJSAMP_444);
  expect({}, "empty");
  expect(std::vector<uint8_t>(noisy.begin(), noisy.begin() + static_cast<std::ptrdiff_t>(noisy.size() / 2)),
         "truncated JPEG (Premature end of JPEG file)");
  expect(std::vector<uint8_t>(jpg.begin(), jpg.begin() + 100), "truncated or corrupt JPEG header");
  expect(std::vector<uint8_t>(jpg.begin(), jpg.begin() + 20), "JPEG");
  auto corrupt = jpg;
  for (size_t i = jpg.size() / 3; i < jpg.size() - 2; ++i) corrupt[i] = static_cast<uint8_t>(i * 7);
  // Garbage entropy data: libjpeg either rejects it or recovers; never a crash.
  try {
    static_cast<void>(dec.decode(corrupt, "/d/bad.jpg"));
  } catch (const DecodeError& e) {
    CHECK_THAT(e.what(), Catch::Contains("JPEG"));
  }
  const std::string html = "<!DOCTYPE html><html><body>404</body></html>";
  expect(std::vector<uint8_t>(html.begin(), html.end()), "not an image: the file starts with text \"<!DOCTYPE html><\"");
  expect({'I', 'I', 42, 0, 8, 0, 0, 0, 0, 0}, "TIFF images are not supported");
  expect({0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0xfe}, "unrecognised image format (first bytes: 00 01");
  {
    // A JPEG behind 0xFF fill bytes: stb's probe takes it, stb's JPEG decoder can abort on
    // such files (fuzzer); it must not reach stb by way of the TGA fallback.
    std::vector<uint8_t> filled = {0xff, 0xff, 0xff};
    filled.insert(filled.end(), jpg.begin() + 1, jpg.end());
    expect(filled, "unrecognised image format (first bytes: ff ff ff d8");
  }
  auto png = encode_png(px, 64, 64);
  expect(std::vector<uint8_t>(png.begin(), png.begin() + 60), "PNG");
  // Decompression bombs: headers declaring 100000 x 100000, refused before any allocation.
  auto bomb_png = png;
  for (size_t at : {16u, 20u}) {  // IHDR width, height (big-endian); stb does not check the CRC
    bomb_png[at] = 0;
    bomb_png[at + 1] = 0x01;
    bomb_png[at + 2] = 0x86;
    bomb_png[at + 3] = 0xa0;
  }
  expect(bomb_png, "100000x100000 = 10000000000 pixels, over the limit of 1048576 (option max_pixels");
  // A PSD header (height, width: 32 bits each) whose pixel count overflows int64 (fuzzer finding).
  std::vector<uint8_t> psd = {'8', 'B', 'P', 'S', 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 8, 0, 3};
  expect(psd, "4294967295x4294967295 = more than 2^63 pixels, over the limit");
  auto bomb_jpg = jpg;
  for (size_t i = 2; i + 8 < bomb_jpg.size();) {  // walk the marker segments to SOF0
    REQUIRE(bomb_jpg[i] == 0xff);
    if (bomb_jpg[i + 1] == 0xc0) {  // FF C0, length, precision, height, width
      bomb_jpg[i + 5] = 0xea;
      bomb_jpg[i + 6] = 0x60;
      bomb_jpg[i + 7] = 0xea;
      bomb_jpg[i + 8] = 0x60;
      break;
    }
    i += 2 + (size_t{bomb_jpg[i + 2]} << 8 | bomb_jpg[i + 3]);
  }
  expect(bomb_jpg, "60000x60000");
  auto bomb_webp = encode_webp(px, 64, 64, true);
  CHECK(dec.probe(bomb_webp, "w").width == 64);
  expect(std::vector<uint8_t>(bomb_webp.begin(), bomb_webp.begin() + 12), "WebP");
}

TEST_CASE("an extreme aspect ratio cannot make Resize allocate more than max_pixels", "[decoder][bad][geometry]") {
  // A fuzzer finding: 49665 x 1 resized to 40 asked for a 1,986,600 x 40 intermediate.
  const int w = 4000, h = 1;
  const auto px = make_rgb(w, h, [](int x, int) { return std::array<uint8_t, 3>{uint8_t(x), 0, 0}; });
  const auto png = encode_png(px, w, h);
  const Pipeline eval = Pipeline().resize(256).center_crop(224);
  Rng rng(1);
  for (const auto backend : {ResizeBackend::kFast, ResizeBackend::kStb}) {
    const ImageDecoder dec(DecodeOptions{int64_t{1} << 20, true, backend});  // 1 MP
    const Geometry g = eval.plan(w, h, rng);
    REQUIRE(g.resize_width == 1024000);  // 256 * 4000 / 1
    std::vector<uint8_t> out(224 * 224 * 3);
    CHECK_THROWS_WITH(dec.decode_into(png, "/d/thin.png", g, out),
                      Catch::StartsWith("/d/thin.png: ") && Catch::Contains("1024000x256") &&
                          Catch::Contains("over the limit of 1048576"));
    // The same chain on a thin image whose intermediate fits is decoded.
    const int w2 = 8;  // 2048 x 256 = 524,288 pixels
    const auto thin = encode_png(make_rgb(w2, h, [](int x, int) { return std::array<uint8_t, 3>{uint8_t(x), 0, 0}; }), w2, h);
    const Geometry g2 = eval.plan(w2, h, rng);
    CHECK_NOTHROW(dec.decode_into(thin, "/d/ok.png", g2, out));
  }
}

TEST_CASE("read_file refuses what is not a regular file, never opening a FIFO", "[decoder][bad][file]") {
  TempDir tmp;
  const std::string fifo = tmp / "pipe.jpg";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(detail::read_file(fifo, 1 << 20), Catch::Contains("not a regular file (FIFO)"));
  CHECK_THROWS_WITH(detail::read_file(tmp.path(), 1 << 20), Catch::Contains("not a regular file (directory)"));
  CHECK_THROWS_WITH(detail::read_file(tmp / "missing.jpg", 1 << 20),
                    Catch::Contains("missing.jpg: cannot read file: stat: No such file or directory"));
  test::write_bytes(tmp / "empty.jpg", {});
  CHECK_THROWS_WITH(detail::read_file(tmp / "empty.jpg", 1 << 20), Catch::Contains("empty file (0 bytes)"));
  test::write_bytes(tmp / "big.jpg", std::vector<uint8_t>(2000, 1));
  CHECK_THROWS_WITH(detail::read_file(tmp / "big.jpg", 1000),
                    Catch::Contains("2000 bytes, more than the limit of 1000 bytes (option max_file_bytes)"));
  CHECK(detail::read_file(tmp / "big.jpg", 2000).size() == 2000);
  test::write_bytes(tmp / "secret.jpg", {1, 2, 3});
  ::chmod((tmp / "secret.jpg").c_str(), 0);
  if (::geteuid() == 0) {
    WARN("running as root: permission checks do not apply, unreadable-file case not exercised");
  } else {
    CHECK_THROWS_WITH(detail::read_file(tmp / "secret.jpg", 1 << 20), Catch::Contains("open: Permission denied"));
  }
}

// stb_image 2.27 loops forever on an HDR RLE count of 0, the byte it also reads past the end
// of a file, so a truncated .hdr hung a worker; codecs/stb.cpp walks the pixel stream first.
// Every decode that could hang runs in a child first, so a regression fails, not hangs.
TEST_CASE("a truncated or corrupt RLE HDR is a DecodeError naming the file, never a hang", "[decoder][bad][hdr]") {
  const int w = 64, h = 48;  // RLE scanlines: stbi_write_hdr uses them for widths of 8 to 32767
  std::vector<float> f(static_cast<size_t>(w * h * 3));
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      float* p = &f[static_cast<size_t>((y * w + x) * 3)];
      p[0] = static_cast<float>(x / 8) * 0.1f;                  // runs
      p[1] = static_cast<float>((x * 7 + y * 3) % 50) / 60.0f;  // literal spans
      p[2] = 0.5f;                                              // one run a scanline
    }
  }
  std::vector<uint8_t> hdr;
  stbi_write_hdr_to_func(
      [](void* ctx, void* data, int size) {
        auto* v = static_cast<std::vector<uint8_t>*>(ctx);
        v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
      },
      &hdr, w, h, 3, f.data());
  const std::string res = "-Y 48 +X 64\n";
  const auto res_at = std::search(hdr.begin(), hdr.end(), res.begin(), res.end());
  REQUIRE(res_at != hdr.end());
  const size_t pixels_at = static_cast<size_t>(res_at - hdr.begin()) + res.size();
  REQUIRE(hdr[pixels_at] == 2);  // a new-style RLE scanline: 2, 2, width (big-endian)
  REQUIRE(hdr[pixels_at + 3] == 64);
  const ImageDecoder dec;
  auto cut = [&](size_t n) { return std::vector<uint8_t>(hdr.begin(), hdr.begin() + static_cast<std::ptrdiff_t>(n)); };

  // The whole file decodes as stb_image alone decodes it (the check changes no good file).
  {
    const RgbImage img = dec.decode(hdr, "/d/ok.hdr");
    int sw = 0, sh = 0, comp = 0;
    unsigned char* ref = stbi_load_from_memory(hdr.data(), static_cast<int>(hdr.size()), &sw, &sh, &comp, 3);
    REQUIRE(ref != nullptr);
    const std::vector<uint8_t> want(ref, ref + w * h * 3);
    stbi_image_free(ref);
    REQUIRE(img.width == w);
    REQUIRE(img.height == h);
    CHECK(img.pixels == want);
  }

  // Every cut from the first pixel byte on (the 64x48 of tests/fuzz/regressions/ is one).
  const auto r = test::run_in_child(
      [&](test::Report& out) {
        for (size_t n = pixels_at; n < hdr.size(); ++n) {
          try {
            static_cast<void>(dec.decode(cut(n), "/d/cut.hdr"));
            out << n << " bytes decoded; ";
          } catch (const DecodeError& e) {
            const std::string msg = e.what();
            if (e.path() != "/d/cut.hdr" || msg.find("truncated HDR (the file ends at byte " + std::to_string(n)) ==
                                                std::string::npos) {
              out << n << " bytes: " << msg << "; ";
            }
          }
        }
        return 0;
      },
      std::chrono::seconds(20));
  INFO(r.describe());
  REQUIRE(r.ok());  // only now is a decode in this process safe
  CHECK_THROWS_WITH(dec.decode(cut(hdr.size() - 3), "/d/cut.hdr"),
                    "/d/cut.hdr: truncated HDR (the file ends at byte " + std::to_string(hdr.size() - 3) +
                        ", in scanline 48 of 48)");

  // A count of 0 where the first scanline's red starts.
  auto zero = hdr;
  zero[pixels_at + 4] = 0;
  const auto z = test::run_in_child(
      [&]() -> std::string {
        try {
          static_cast<void>(dec.decode(zero, "/d/zero.hdr"));
          return "decoded";
        } catch (const DecodeError&) {
          return "";
        }
      },
      std::chrono::seconds(20));
  INFO(z.describe());
  REQUIRE(z.ok());
  CHECK_THROWS_WITH(dec.decode(zero, "/d/zero.hdr"),
                    Catch::StartsWith("/d/zero.hdr: corrupt HDR run length 0 at byte " + std::to_string(pixels_at + 4)));
}
