#pragma once
// The wire between a fork-server spawner and the main process: one fixed-size Msg per packet on a
// SOCK_SEQPACKET socket (boundaries kept), descriptors (a worker's pidfd, the spawner's own)
// attached with SCM_RIGHTS. Used by both ends: SpawnerClient (fork_server.cpp) and the spawner's
// loop (spawner.cpp). Internal to ipc/.
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "core/unique_handle.hpp"

namespace ringloader::ipc::detail {

enum MsgType : int32_t { kSpawn = 1, kSpawned = 2, kDied = 3, kQuit = 4, kSpawnFailed = 5, kHello = 6, kFailed = 7 };
constexpr size_t kMaxFailureText = 4000;  ///< a kFailed message: the Msg, then at most this much text

/// One message between a spawner and the main process (SOCK_SEQPACKET keeps boundaries).
struct Msg {
  int32_t type = 0;
  int32_t id = -1;
  int32_t pid = -1;
  int32_t signaled = 0;
  int32_t value = 0;
};

/// Sends `size` bytes with up to 3 descriptors attached (`nfds` may be 0). False on failure
/// (errno set).
bool send_with_fds(int sock, const void* data, size_t size, const int* fds, int nfds);
/// Sends one Msg, with `attach_fd` when it is >= 0.
bool send_msg(int fd, const Msg& m, int attach_fd = -1);
/// Receives one message of at most `cap` bytes with up to `max_fds` descriptors (more are
/// closed); its size, 0 on EOF, -1 with errno on error.
ssize_t recv_with_fds(int sock, void* data, size_t cap, core::UniqueFd* fds, int flags = 0, int max_fds = 2);

}  // namespace ringloader::ipc::detail
