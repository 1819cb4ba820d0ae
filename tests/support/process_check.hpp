#pragma once
// Test helpers: what a forking test must leave behind (nothing).
#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace ringloader::test {

/// /dev/shm entries this process created (ringloader-<pid>-...).
inline std::vector<std::string> own_shm_entries() {
  std::vector<std::string> out;
  const std::string prefix = "ringloader-" + std::to_string(::getpid()) + "-";
  if (DIR* d = ::opendir("/dev/shm")) {
    while (dirent* e = ::readdir(d)) {
      if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0) out.emplace_back(e->d_name);
    }
    ::closedir(d);
  }
  return out;
}

/// Pids whose parent is this process (live or zombie).
inline std::vector<int> own_children() {
  std::vector<int> out;
  const int me = ::getpid();
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      const int pid = std::atoi(e->d_name);
      if (pid <= 0) continue;
      std::ifstream f("/proc/" + std::string(e->d_name) + "/stat");
      std::string line;
      if (!std::getline(f, line)) continue;
      const auto rp = line.rfind(')');
      if (rp == std::string::npos) continue;
      char state = 0;
      int ppid = 0;
      if (std::sscanf(line.c_str() + rp + 1, " %c %d", &state, &ppid) == 2 && ppid == me) out.push_back(pid);
    }
    ::closedir(d);
  }
  return out;
}

/// Is process `pid` gone (or a zombie)?
inline bool process_gone(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return true;
  const auto rp = line.rfind(')');
  return rp != std::string::npos && rp + 2 < line.size() && line[rp + 2] == 'Z';
}

}  // namespace ringloader::test
