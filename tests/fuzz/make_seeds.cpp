// decode_fuzz_seeds DIR: writes the fuzzer's seed corpus, small valid images of every format
// the decoders read (the project makes its own corpus; nothing is downloaded).
#include <turbojpeg.h>
#include <webp/encode.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <stb/stb_image_write.h>

namespace {

void write(const std::string& path, const void* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
}

void sink(void* ctx, void* data, int size) {
  auto* v = static_cast<std::vector<uint8_t>*>(ctx);
  v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: decode_fuzz_seeds DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  std::filesystem::create_directories(dir);
  for (int size : {1, 7, 33}) {
    std::vector<uint8_t> rgb(static_cast<size_t>(size * size * 3)), gray(static_cast<size_t>(size * size));
    for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>(i * 37 + size);
    for (size_t i = 0; i < gray.size(); ++i) gray[i] = static_cast<uint8_t>(i * 11);
    const std::string s = std::to_string(size);
    std::vector<uint8_t> out;
    stbi_write_png_to_func(sink, &out, size, size, 3, rgb.data(), size * 3);
    write(dir + "/rgb" + s + ".png", out.data(), out.size());
    out.clear();
    stbi_write_png_to_func(sink, &out, size, size, 1, gray.data(), size);
    write(dir + "/gray" + s + ".png", out.data(), out.size());
    out.clear();
    stbi_write_bmp_to_func(sink, &out, size, size, 3, rgb.data());
    write(dir + "/rgb" + s + ".bmp", out.data(), out.size());
    out.clear();
    stbi_write_tga_to_func(sink, &out, size, size, 3, rgb.data());
    write(dir + "/rgb" + s + ".tga", out.data(), out.size());
    out.clear();
    // Radiance HDR: flat pixels below a width of 8, RLE scanlines from 8 (the 33).
    std::vector<float> linear(rgb.size());
    for (size_t i = 0; i < rgb.size(); ++i) linear[i] = static_cast<float>(rgb[i]) / 255.0f;
    stbi_write_hdr_to_func(sink, &out, size, size, 3, linear.data());
    write(dir + "/rgb" + s + ".hdr", out.data(), out.size());
    out.clear();
    for (int sub : {TJSAMP_444, TJSAMP_420, TJSAMP_GRAY}) {
      tjhandle h = tjInitCompress();
      unsigned char* jpg = nullptr;
      unsigned long len = 0;
      if (tjCompress2(h, rgb.data(), size, 0, size, TJPF_RGB, &jpg, &len, sub, 75, 0) == 0) {
        write(dir + "/q75_s" + std::to_string(sub) + "_" + s + ".jpg", jpg, len);
      }
      tjFree(jpg);
      tjDestroy(h);
    }
    uint8_t* webp = nullptr;
    const size_t wlen = WebPEncodeRGB(rgb.data(), size, size, size * 3, 80, &webp);
    if (wlen) write(dir + "/rgb" + s + ".webp", webp, wlen);
    WebPFree(webp);
    std::string pnm = "P6\n" + s + " " + s + "\n255\n";
    pnm.append(reinterpret_cast<const char*>(rgb.data()), rgb.size());
    write(dir + "/rgb" + s + ".ppm", pnm.data(), pnm.size());
    // Grey, 16-bit with a comment and an odd maxval: the PNM reader's other branches.
    std::string pgm = "P5\n# seed\n" + s + " " + s + "\n1000\n";
    for (size_t i = 0; i < rgb.size(); i += 3) {
      const unsigned v = rgb[i] * 1000u / 255u;
      pgm.push_back(static_cast<char>(v >> 8));
      pgm.push_back(static_cast<char>(v & 0xff));
    }
    write(dir + "/grey16_" + s + ".pgm", pgm.data(), pgm.size());
  }
  std::printf("seed corpus written to %s\n", dir.c_str());
  return 0;
}
