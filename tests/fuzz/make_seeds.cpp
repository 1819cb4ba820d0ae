// decode_fuzz_seeds DIR: writes the fuzzer's seed corpus, small valid images of every format
// the decoders read, and small packed-shard files: tars in the formats foreign shards come in
// (ustar, pax and GNU, with long member names) and a shard index (the project makes its own
// corpus; nothing is downloaded).
#include <archive.h>
#include <archive_entry.h>
#include <turbojpeg.h>
#include <webp/encode.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <stb/stb_image_write.h>

#include "datasets/detail/shard_format.hpp"

namespace {

void write(const std::string& path, const void* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
}

void sink(void* ctx, void* data, int size) {
  auto* v = static_cast<std::vector<uint8_t>*>(ctx);
  v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}

/// A tar (libarchive `format`: ARCHIVE_FORMAT_TAR_USTAR, _PAX_RESTRICTED, _GNUTAR) of
/// webdataset samples KEY.<ext> + KEY.cls, and a README that is not a sample.
std::vector<uint8_t> make_tar(int format, const std::vector<std::pair<std::string, std::vector<uint8_t>>>& members) {
  archive* a = archive_write_new();
  archive_write_set_format(a, format);
  archive_write_set_bytes_per_block(a, 0);  // no padding to 10 KiB: small seeds
  std::vector<uint8_t> out(size_t{1} << 20);
  size_t used = 0;
  archive_write_open_memory(a, out.data(), out.size(), &used);
  for (const auto& [name, bytes] : members) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(bytes.size()));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_write_header(a, e);
    if (!bytes.empty()) archive_write_data(a, bytes.data(), bytes.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  out.resize(used);
  return out;
}

std::vector<uint8_t> text(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

void write_shard_seeds(const std::string& dir) {
  std::vector<uint8_t> rgb(5 * 4 * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>(i * 29);
  std::vector<uint8_t> png;
  stbi_write_png_to_func(sink, &png, 5, 4, 3, rgb.data(), 5 * 3);
  std::vector<uint8_t> jpg;
  tjhandle h = tjInitCompress();
  unsigned char* buf = nullptr;
  unsigned long len = 0;
  if (tjCompress2(h, rgb.data(), 5, 0, 4, TJPF_RGB, &buf, &len, TJSAMP_420, 75, 0) == 0) jpg.assign(buf, buf + len);
  tjFree(buf);
  tjDestroy(h);
  const std::string long_dir = "train/" + std::string(90, 'd') + "/";
  const std::vector<std::pair<std::string, std::vector<uint8_t>>> members = {
      {"000000000.png", png},       {"000000000.cls", text("3")},
      {"README", text("not a sample")},
      {"000000001.jpg", jpg},       {"000000001.cls", text("0\n")},
      {long_dir + "k.jpg", jpg},    {long_dir + "k.cls", text("12")},
      {"empty.png", {}},            {"empty.cls", text("1")},
  };
  std::vector<uint8_t> ustar;
  for (const auto& [format, name] : {std::pair{ARCHIVE_FORMAT_TAR_USTAR, "ustar"},
                                     std::pair{ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, "pax"},
                                     std::pair{ARCHIVE_FORMAT_TAR_GNUTAR, "gnu"}}) {
    const auto tar = make_tar(format, members);
    write(dir + "/shard_" + name + ".tar", tar.data(), tar.size());
    if (format == ARCHIVE_FORMAT_TAR_USTAR) ustar = tar;
  }
  // The index ringloader-pack --index writes for the ustar seed.
  using namespace ringloader::datasets;
  detail::ShardIndex idx = detail::scan_tar(ustar, "seed.tar", [](std::span<const uint8_t>, const std::string&) {
    return detail::ProbedSize{5, 4};
  });
  idx.dataset_id = 0x1234;
  const auto bytes = detail::encode_index(idx);
  write(dir + "/shard.idx", bytes.data(), bytes.size());
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
  write_shard_seeds(dir);
  std::printf("seed corpus written to %s\n", dir.c_str());
  return 0;
}
