#include "datasets/detail/shard_format.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>

#include "core/error.hpp"
#include "core/fnv.hpp"

namespace ringloader::datasets::detail {

namespace {

constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8 + 8 + 8 + 8;
constexpr size_t kEntryBytes = 8 + 8 + 8 + 4 + 4 + 4 + 4 + 4 + 4 + 8;

void append(std::vector<uint8_t>& out, const void* p, size_t n) {
  if (n == 0) return;  // p may be null then
  const size_t at = out.size();
  out.resize(at + n);
  std::memcpy(out.data() + at, p, n);
}

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  append(out, &v, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
}

template <typename T>
T get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

std::string_view fnv_view(const std::vector<uint8_t>& v, size_t n) {
  return {reinterpret_cast<const char*>(v.data()), n};
}

// An octal (or GNU base-256) number field of a tar header; -1 if malformed.
int64_t tar_number(const uint8_t* f, size_t n) {
  if (n > 0 && (f[0] & 0x80) != 0) {  // base-256, big-endian
    uint64_t v = f[0] & 0x7f;
    for (size_t i = 1; i < n; ++i) {
      if (v >> 55) return -1;
      v = (v << 8) | f[i];
    }
    return static_cast<int64_t>(v);
  }
  size_t i = 0;
  while (i < n && f[i] == ' ') ++i;
  int64_t v = 0;
  bool any = false;
  for (; i < n && f[i] >= '0' && f[i] <= '7'; ++i) {
    if (v >> 60) return -1;
    v = v * 8 + (f[i] - '0');
    any = true;
  }
  for (; i < n; ++i) {
    if (f[i] != ' ' && f[i] != '\0') return -1;
  }
  return any ? v : -1;
}

std::string field_string(const uint8_t* f, size_t n) {
  size_t len = 0;
  while (len < n && f[len] != '\0') ++len;
  return std::string(reinterpret_cast<const char*>(f), len);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// libarchive's message for the last failure; it may have none (null).
std::string archive_why(archive* a) {
  const char* why = archive_error_string(a);
  return why ? why : "libarchive gave no reason";
}

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};

}  // namespace

std::string key_of(uint64_t position) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%09llu", static_cast<unsigned long long>(position));
  return buf;
}

bool is_image_extension(std::string_view ext) {
  static constexpr std::string_view kExts[] = {"jpg", "jpeg", "png", "webp", "ppm", "pgm", "pnm",
                                               "bmp", "gif",  "tga", "psd",  "hdr"};
  return std::find(std::begin(kExts), std::end(kExts), ext) != std::end(kExts);
}

std::vector<uint8_t> encode_index(const ShardIndex& index) {
  std::vector<uint8_t> strings;
  std::vector<uint8_t> out;
  out.reserve(kHeaderBytes + index.entries.size() * kEntryBytes + 16);
  append(out, kIndexMagic, sizeof kIndexMagic);
  put<uint32_t>(out, kIndexVersion);
  put<uint32_t>(out, static_cast<uint32_t>(index.entries.size()));
  put<uint64_t>(out, index.tar_bytes);
  put<uint64_t>(out, index.tar_digest);
  put<uint64_t>(out, index.dataset_id);
  size_t strings_bytes = 0;
  for (const ShardEntry& e : index.entries) strings_bytes += e.key.size() + e.name.size();
  put<uint64_t>(out, strings_bytes);
  for (const ShardEntry& e : index.entries) {
    put<uint64_t>(out, e.offset);
    put<uint64_t>(out, e.size);
    put<int64_t>(out, e.label);
    put<uint32_t>(out, e.width);
    put<uint32_t>(out, e.height);
    put<uint32_t>(out, static_cast<uint32_t>(strings.size()));
    put<uint32_t>(out, static_cast<uint32_t>(e.key.size()));
    append(strings, e.key.data(), e.key.size());
    put<uint32_t>(out, static_cast<uint32_t>(strings.size()));
    put<uint32_t>(out, static_cast<uint32_t>(e.name.size()));
    append(strings, e.name.data(), e.name.size());
    char ext[8] = {};
    std::memcpy(ext, e.ext.data(), std::min<size_t>(e.ext.size(), 7));
    append(out, ext, sizeof ext);
  }
  append(out, strings.data(), strings.size());
  put<uint64_t>(out, core::fnv1a64(fnv_view(out, out.size())));
  return out;
}

ShardIndex decode_index(std::span<const uint8_t> b, const std::string& path) {
  auto bad = [&](const std::string& why) { return DecodeError(path, "shard index " + why); };
  if (b.size() < kHeaderBytes + 8) throw bad("is cut off (" + std::to_string(b.size()) + " bytes)");
  if (std::memcmp(b.data(), kIndexMagic, 8) != 0) throw bad("has no RLSHIDX1 magic: not a ringloader shard index");
  const uint32_t version = get<uint32_t>(b.data() + 8);
  if (version != kIndexVersion) throw bad("version " + std::to_string(version) + " (this ringloader reads 1)");
  const uint32_t count = get<uint32_t>(b.data() + 12);
  ShardIndex idx;
  idx.tar_bytes = get<uint64_t>(b.data() + 16);
  idx.tar_digest = get<uint64_t>(b.data() + 24);
  idx.dataset_id = get<uint64_t>(b.data() + 32);
  const uint64_t strings_bytes = get<uint64_t>(b.data() + 40);
  const uint64_t want = kHeaderBytes + uint64_t{count} * kEntryBytes + strings_bytes + 8;
  if (strings_bytes > b.size() || want != b.size()) {
    throw bad("is " + std::to_string(b.size()) + " bytes, its header says " + std::to_string(want) + " (cut off or damaged)");
  }
  const uint64_t sum = get<uint64_t>(b.data() + b.size() - 8);
  if (sum != core::fnv1a64(std::string_view(reinterpret_cast<const char*>(b.data()), b.size() - 8))) {
    throw bad("checksum does not match its contents (damaged)");
  }
  const uint8_t* strings = b.data() + kHeaderBytes + size_t{count} * kEntryBytes;
  auto str = [&](uint32_t off, uint32_t len, size_t i) {
    if (uint64_t{off} + len > strings_bytes) throw bad("entry " + std::to_string(i) + " names bytes past its end");
    return std::string(reinterpret_cast<const char*>(strings + off), len);
  };
  idx.entries.resize(count);
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* p = b.data() + kHeaderBytes + i * kEntryBytes;
    ShardEntry& e = idx.entries[i];
    e.offset = get<uint64_t>(p);
    e.size = get<uint64_t>(p + 8);
    e.label = get<int64_t>(p + 16);
    e.width = get<uint32_t>(p + 24);
    e.height = get<uint32_t>(p + 28);
    e.key = str(get<uint32_t>(p + 32), get<uint32_t>(p + 36), i);
    e.name = str(get<uint32_t>(p + 40), get<uint32_t>(p + 44), i);
    e.ext = field_string(p + 48, 8);
    if (e.offset < 512 || e.offset > idx.tar_bytes || e.size > idx.tar_bytes - e.offset) {
      throw bad("entry " + std::to_string(i) + " (" + e.key + ") lies outside its " + std::to_string(idx.tar_bytes) +
                "-byte tar (offset " + std::to_string(e.offset) + ", size " + std::to_string(e.size) + ")");
    }
  }
  return idx;
}

std::string check_member_header(std::span<const uint8_t> tar, uint64_t offset, uint64_t bytes, std::string_view member) {
  if (offset < 512 || offset > tar.size() || bytes > tar.size() - offset) {
    return "the index places it at bytes " + std::to_string(offset) + "+" + std::to_string(bytes) + ", past the " +
           std::to_string(tar.size()) + "-byte tar";
  }
  return check_tar_header(tar.data() + offset - 512, bytes, member);
}

std::string check_tar_header(const uint8_t* h, uint64_t bytes, std::string_view member) {
  // The checksum counts its own 8 bytes as spaces; both sums in one branch-free pass (this runs
  // for every sample read).
  unsigned sum = 8 * ' ';
  int ssum = 8 * ' ';
  for (size_t i = 0; i < 512; ++i) {
    const bool field = i >= 148 && i < 156;
    sum += field ? 0u : h[i];
    ssum += field ? 0 : static_cast<signed char>(h[i]);
  }
  const int64_t stored = tar_number(h + 148, 8);
  if (stored < 0 || (stored != static_cast<int64_t>(sum) && stored != ssum)) {
    return "no valid tar header before it (checksum " + std::to_string(stored) + ", computed " + std::to_string(sum) +
           "): a damaged member header, or an index that does not match this tar";
  }
  const int64_t size = tar_number(h + 124, 12);
  if (size != static_cast<int64_t>(bytes)) {
    return "its tar header says " + std::to_string(size) + " bytes, the index " + std::to_string(bytes) +
           ": an index that does not match this tar";
  }
  // A path of 100 bytes or more lives in a pax or GNU long-name header before this one and the
  // ustar name is truncated. The tar may name the member "./KEY.ext" (tar -C dir .), 2 bytes
  // longer than the index's name: only names that fit with those 2 bytes are compared.
  if (member.size() + 2 >= 100) return "";
  const std::string_view plain(reinterpret_cast<const char*>(h), ::strnlen(reinterpret_cast<const char*>(h), 100));
  const bool prefixed = std::memcmp(h + 257, "ustar", 5) == 0 && h[345] != '\0';  // ustar's prefix field: the path's start
  if (!prefixed && (plain == member || (plain.size() == member.size() + 2 && plain.starts_with("./") && plain.substr(2) == member))) {
    return "";  // the common case, without building a string
  }
  std::string name = field_string(h, 100);
  if (prefixed) name = field_string(h + 345, 155) + "/" + name;
  const std::string want(member);
  if (name != want && name != "./" + want) {
    return "its tar header names \"" + name + "\", the index \"" + want + "\": an index that does not match this tar";
  }
  return "";
}

ShardIndex scan_tar(std::span<const uint8_t> tar, const std::string& path,
                    ProbedSize (*probe)(std::span<const uint8_t> bytes, const std::string& name)) {
  std::unique_ptr<archive, ArchiveFree> a(archive_read_new());
  if (!a) throw ResourceError(path + ": archive_read_new failed (out of memory)", ENOMEM, path);
  archive_read_support_format_tar(a.get());
  if (archive_read_open_memory(a.get(), tar.data(), tar.size()) != ARCHIVE_OK) {
    throw DecodeError(path, std::string("not a tar archive (") + archive_why(a.get()) + ")");
  }
  struct Sample {
    ShardEntry image;
    bool has_image = false;
    bool has_label = false;
    uint64_t first_offset = 0;
  };
  std::vector<Sample> samples;
  std::map<std::string, size_t> by_key;
  archive_entry* entry = nullptr;
  for (;;) {
    const int64_t at = archive_filter_bytes(a.get(), -1);
    const int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) {
      // libarchive ends cleanly where the bytes end between two members, but a tar ends with
      // zero blocks: without them it was cut off there (a writer killed after a member), and
      // the members after the cut would go missing without a word.
      const auto end = static_cast<uint64_t>(std::max<int64_t>(at, 0));
      if (end + 512 > tar.size() || std::any_of(tar.begin() + static_cast<ptrdiff_t>(end),
                                                tar.begin() + static_cast<ptrdiff_t>(end + 512),
                                                [](uint8_t c) { return c != 0; })) {
        throw DecodeError(path, "cut off at byte " + std::to_string(end) +
                                    ": no end-of-archive block after the last member (truncated tar)");
      }
      break;
    }
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      throw DecodeError(path, "damaged or cut-off tar member at byte " + std::to_string(at) + " (" +
                                  archive_why(a.get()) + ")");
    }
    if (archive_entry_filetype(entry) != AE_IFREG) continue;
    const std::string member = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
    const int64_t size = archive_entry_size(entry);
    // The data's place: libarchive hands out pointers into the mapped bytes of a plain tar.
    const void* buf = nullptr;
    size_t len = 0;
    la_int64_t off = 0;
    // Where the header(s) end: the data's place, also for an empty member (no data block).
    uint64_t data_offset = static_cast<uint64_t>(std::max<int64_t>(archive_filter_bytes(a.get(), -1), 0));
    int64_t got = 0;
    for (;;) {
      const int d = archive_read_data_block(a.get(), &buf, &len, &off);
      if (d == ARCHIVE_EOF) break;
      if (d != ARCHIVE_OK && d != ARCHIVE_WARN) {
        throw DecodeError(path, "member \"" + member + "\" is cut off or damaged at byte " +
                                    std::to_string(archive_filter_bytes(a.get(), -1)) + " (" + archive_why(a.get()) +
                                    ")");
      }
      const auto* p = static_cast<const uint8_t*>(buf);
      if (len > 0 && (p < tar.data() || p + len > tar.data() + tar.size())) {
        throw DecodeError(path, "member \"" + member + "\" is not stored as plain bytes (sparse?): cannot be read in place");
      }
      if (got == 0 && len > 0) data_offset = static_cast<uint64_t>(p - tar.data());
      if (len > 0 && static_cast<uint64_t>(p - tar.data()) != data_offset + static_cast<uint64_t>(got)) {
        throw DecodeError(path, "member \"" + member + "\" is not contiguous in the tar");
      }
      got += static_cast<int64_t>(len);
    }
    if (got != size) {
      throw DecodeError(path, "member \"" + member + "\" holds " + std::to_string(got) + " of its " + std::to_string(size) +
                                  " bytes (cut off at byte " + std::to_string(tar.size()) + ")");
    }
    const size_t slash = member.rfind('/');
    const size_t dot = member.find('.', slash == std::string::npos ? 0 : slash + 1);
    if (dot == std::string::npos) continue;  // no extension: not a sample member
    std::string key = member.substr(0, dot);
    if (key.rfind("./", 0) == 0) key = key.substr(2);
    const std::string ext = lower(member.substr(dot + 1));
    const bool image = is_image_extension(ext);
    if (!image && ext != "cls") continue;
    auto [it, fresh] = by_key.try_emplace(key, samples.size());
    if (fresh) {
      samples.emplace_back();
      samples.back().image.key = key;
      samples.back().first_offset = static_cast<uint64_t>(at);
    }
    Sample& s = samples[it->second];
    const uint8_t* data = tar.data() + data_offset;
    if (image) {
      if (s.has_image) throw DecodeError(path, "sample \"" + key + "\" has two images (second: \"" + member + "\")");
      s.has_image = true;
      s.image.offset = data_offset;
      s.image.size = static_cast<uint64_t>(size);
      s.image.ext = member.substr(dot + 1);
      s.image.name = member;
      const ProbedSize ps = probe(std::span<const uint8_t>(data, static_cast<size_t>(size)), path + ":" + member);
      s.image.width = ps.width;
      s.image.height = ps.height;
    } else {
      std::string text(reinterpret_cast<const char*>(data), static_cast<size_t>(std::min<int64_t>(size, 32)));
      while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
      size_t used = 0;
      int64_t label = -1;
      try {
        label = std::stoll(text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != text.size() || label < 0 || label > INT32_MAX) {
        throw DecodeError(path, "member \"" + member + "\" is not a class number (\"" + text + "\")");
      }
      s.has_label = true;
      s.image.label = label;
    }
  }
  ShardIndex idx;
  idx.tar_bytes = tar.size();
  for (Sample& s : samples) {
    if (!s.has_image) throw DecodeError(path, "sample \"" + s.image.key + "\" (byte " + std::to_string(s.first_offset) + ") has no image member");
    if (!s.has_label) throw DecodeError(path, "sample \"" + s.image.key + "\" (byte " + std::to_string(s.first_offset) + ") has no .cls label");
    idx.entries.push_back(std::move(s.image));
  }
  return idx;
}

}  // namespace ringloader::datasets::detail
