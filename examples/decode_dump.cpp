// Writes what ringloader's Resize(256) + CenterCrop(224) (or RandomResizedCrop(224) + flip)
// makes of each image as a binary PPM, for examples/psnr_vs_torchvision.py to compare with
// torchvision's own transform.
//
//   ringloader-decode-dump --dir /tmp/ringloader-photos --out /tmp/rl-dump --limit 300
//   ringloader-decode-dump --dir /tmp/ringloader-photos --out /tmp/rl-rrc --transform rrc
//   /usr/bin/python3 examples/psnr_vs_torchvision.py /tmp/rl-dump
//
// OUT/manifest.tsv lists "source<TAB>dump" per image; for rrc also the crop box and flip that
// ringloader drew ("<TAB>x<TAB>y<TAB>w<TAB>h<TAB>flip"), for torchvision to apply the same.
//
// An unknown option or a bad value exits 2 with one line on stderr; --help prints the usage.
// A file that fails to decode is named on stderr and left out (exit 1).
// GCC 12 reports a false -Wnull-dereference inside CLI11's (and libstdc++'s) inlined string code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "datasets/detail/file_reader.hpp"
#include "datasets/image_decoder.hpp"
#include "datasets/image_folder.hpp"
#include "examples/cli_common.hpp"

using namespace ringloader::datasets;

namespace {
constexpr const char* kProgram = "ringloader-decode-dump";
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dump ringloader's Resize+CenterCrop output as PPM", kProgram};
  std::string dir, out;
  std::string backend_name = "fast";
  size_t limit = 300;
  int resize = 256, crop = 224;
  std::string transform = "center";
  bool roi = true;
  app.add_option("--dir", dir, "ImageFolder root")->required();
  app.add_option("--out", out, "output folder")->required();
  const std::map<std::string, ResizeBackend> backends = {
      {"fast", ResizeBackend::kFast}, {"turbo-stb", ResizeBackend::kTurboJpegStb}, {"stb", ResizeBackend::kStb}};
  app.add_option("--backend", backend_name, "fast | turbo-stb | stb")->capture_default_str()->check(CLI::IsMember(backends));
  app.add_option("--limit", limit, "images to dump (evenly spread over the folder)");
  app.add_option("--resize", resize, "Resize(shorter side)")->check(CLI::Range(1, 8192));
  app.add_option("--crop", crop, "CenterCrop size (rrc: the output size)")->check(CLI::Range(1, 8192));
  app.add_option("--transform", transform, "center: Resize + CenterCrop; rrc: RandomResizedCrop + flip")
      ->check(CLI::IsMember({"center", "rrc"}));
  app.add_option("--roi", roi, "region-of-interest JPEG decode (false: the whole image)")->capture_default_str();
  ringloader::examples::parse_or_exit(app, argc, argv, kProgram);
  ImageFolderOptions o;
  o.reader_threads = 0;
  std::unique_ptr<ImageFolder> opened;
  try {
    opened = std::make_unique<ImageFolder>(dir, o);
  } catch (const std::exception& e) {  // no such folder, no images: a bad argument
    std::fprintf(stderr, "%s: --dir: %s\n", kProgram, e.what());
    return 2;
  }
  const ImageFolder& folder = *opened;
  DecodeOptions dopts;
  dopts.backend = backends.at(backend_name);
  dopts.roi = roi;
  const ImageDecoder dec(dopts);
  const bool rrc = transform == "rrc";
  const Pipeline p = rrc ? Pipeline::random_crop_flip(crop) : Pipeline::center(resize, crop);
  std::filesystem::create_directories(out);
  std::ofstream manifest(out + "/manifest.tsv");
  std::vector<uint8_t> px(static_cast<size_t>(crop) * static_cast<size_t>(crop) * 3);
  const size_t n = std::min(limit, folder.size());
  size_t skipped = 0;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = k * folder.size() / n;
    const std::string src = folder.path(i);
    Geometry g;
    try {
      const auto bytes = ringloader::datasets::detail::read_file(src, size_t{256} << 20);
      const ImageInfo info = dec.probe(bytes, src);
      Rng rng(k);
      g = p.plan(info.width, info.height, rng);
      dec.decode_into(bytes, src, info, g, px);
    } catch (const std::exception& e) {  // a bad file: said and left out of the manifest
      std::fprintf(stderr, "%s: skipped %s\n", kProgram, e.what());
      ++skipped;
      continue;
    }
    char name[32];
    std::snprintf(name, sizeof name, "%06zu.ppm", k);
    std::ofstream ppm(out + "/" + name, std::ios::binary);
    ppm << "P6\n" << crop << " " << crop << "\n255\n";
    ppm.write(reinterpret_cast<const char*>(px.data()), static_cast<std::streamsize>(px.size()));
    manifest << src << "\t" << out << "/" << name;
    if (rrc) {
      manifest << "\t" << g.source.x << "\t" << g.source.y << "\t" << g.source.width << "\t" << g.source.height << "\t"
               << (g.flip ? 1 : 0);
    }
    manifest << "\n";
  }
  std::printf("dumped %zu images to %s (backend %s, %s, roi %s)\n", n - skipped, out.c_str(), backend_name.c_str(),
              p.describe().c_str(), roi ? "on" : "off");
  return skipped == 0 ? 0 : 1;
}
