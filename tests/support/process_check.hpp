#pragma once
// Test helpers: what a forking test must leave behind (nothing).
#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "ipc/worker_process.hpp"

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
inline std::vector<int> own_children() { return ipc::child_pids(); }

/// The parent of process `pid`, -1 if unknown.
inline int parent_of(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(f, line);
  const auto rp = line.rfind(')');
  char state = 0;
  int ppid = 0;
  if (rp == std::string::npos || std::sscanf(line.c_str() + rp + 1, " %c %d", &state, &ppid) != 2) return -1;
  return ppid;
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
