#include "ipc/fork_server.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <system_error>

namespace ringloader::ipc {
namespace {

enum MsgType : int32_t { kSpawn = 1, kSpawned = 2, kDied = 3, kQuit = 4, kSpawnFailed = 5 };

/// One message between a pool and the main process (SOCK_SEQPACKET keeps boundaries).
struct Msg {
  int32_t type = 0;
  int32_t id = -1;
  int32_t pid = -1;
  int32_t signaled = 0;
  int32_t value = 0;
};

std::system_error sys_error(int err, const std::string& what) { return std::system_error(err, std::generic_category(), what); }

int g_server_fd = -1;  ///< main process: socket to the server; -1 if not started
std::mutex g_server_mutex;

bool send_msg(int fd, const Msg& m) {
  for (;;) {
    const ssize_t n = ::send(fd, &m, sizeof m, MSG_NOSIGNAL);
    if (n == sizeof m) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

/// Sends `data` with descriptors attached.
void send_with_fds(int sock, const std::string& data, const int* fds, int nfds) {
  msghdr mh{};
  iovec iov{const_cast<char*>(data.data()), data.size()};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * 4)]{};
  mh.msg_control = ctrl;
  mh.msg_controllen = CMSG_SPACE(sizeof(int) * static_cast<size_t>(nfds));
  cmsghdr* c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * static_cast<size_t>(nfds));
  std::memcpy(CMSG_DATA(c), fds, sizeof(int) * static_cast<size_t>(nfds));
  for (;;) {
    if (::sendmsg(sock, &mh, MSG_NOSIGNAL) >= 0) return;
    if (errno != EINTR) throw sys_error(errno, "sendmsg(fork server)");
  }
}

/// Receives one message with up to 2 descriptors; false on EOF.
bool recv_with_fds(int sock, std::string& data, UniqueFd* fds) {
  std::vector<char> buf(1 << 16);
  msghdr mh{};
  iovec iov{buf.data(), buf.size()};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * 4)]{};
  mh.msg_control = ctrl;
  mh.msg_controllen = sizeof ctrl;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  data.assign(buf.data(), static_cast<size_t>(n));
  int k = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (k < 2) fds[k++].reset(fd);
      else ::close(fd);
    }
  }
  return true;
}

[[noreturn]] void serve(int sock, PoolEntry entry) {
  ::signal(SIGCHLD, SIG_IGN);  // pools are reaped by the kernel
  for (;;) {
    std::string request;
    UniqueFd fds[2];
    if (!recv_with_fds(sock, request, fds)) ::_exit(0);  // the main process is gone
    if (!fds[0] || !fds[1]) continue;
    const pid_t server = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != server) ::_exit(0);
      ::signal(SIGCHLD, SIG_DFL);  // the pool reaps its workers itself
      ::close(sock);
      int rc = 70;
      try {
        rc = entry(request, std::move(fds[0]), std::move(fds[1]));
      } catch (...) {
        rc = 70;
      }
      ::_exit(rc);
    }
  }
}

}  // namespace

void ForkServer::start(PoolEntry entry) {
  std::lock_guard<std::mutex> lock(g_server_mutex);
  if (g_server_fd >= 0) throw std::logic_error("ForkServer::start called twice");
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) throw sys_error(errno, "socketpair(fork server)");
  const pid_t parent = ::getpid();
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(sv[0]);
    ::close(sv[1]);
    throw sys_error(err, "fork(fork server)");
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(0);
    ::signal(SIGINT, SIG_IGN);
    ::close(sv[0]);
    serve(sv[1], entry);
  }
  ::close(sv[1]);
  g_server_fd = sv[0];
}

bool ForkServer::running() {
  std::lock_guard<std::mutex> lock(g_server_mutex);
  return g_server_fd >= 0;
}

UniqueFd ForkServer::open_pool(const std::string& request, int region_fd) {
  std::lock_guard<std::mutex> lock(g_server_mutex);
  if (g_server_fd < 0) throw std::logic_error("the fork server is not running: call ringloader::init() first in main");
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) throw sys_error(errno, "socketpair(pool)");
  UniqueFd mine(sv[0]), theirs(sv[1]);
  const int fds[2] = {region_fd, theirs.get()};
  send_with_fds(g_server_fd, request, fds, 2);
  return mine;
}

PoolClient::~PoolClient() {
  if (!channel_) return;
  Msg quit;
  quit.type = kQuit;
  send_msg(channel_.get(), quit);
  // Wait for the pool to close its end: its workers are stopped by then.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  for (;;) {
    pollfd p{channel_.get(), POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    Msg m;
    const ssize_t n = ::recv(channel_.get(), &m, sizeof m, 0);
    if (n <= 0) break;  // closed: done
  }
}

void PoolClient::drain(int timeout_ms) {
  for (;;) {
    pollfd p{channel_.get(), POLLIN, 0};
    const int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    Msg m;
    const ssize_t n = ::recv(channel_.get(), &m, sizeof m, MSG_DONTWAIT);
    if (n == 0) throw sys_error(EPIPE, "the fork-server pool process is gone");
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      throw sys_error(errno, "recv(pool)");
    }
    if (m.type == kDied) deaths_.push_back({m.id, m.pid, ExitStatus{m.signaled != 0, m.value}});
    else if (m.type == kSpawned) spawned_.emplace_back(m.id, m.pid);
    else if (m.type == kSpawnFailed) spawned_.emplace_back(m.id, -m.value);
    timeout_ms = 0;  // only the first wait blocks
  }
}

pid_t PoolClient::spawn(int id) {
  Msg m;
  m.type = kSpawn;
  m.id = id;
  if (!send_msg(channel_.get(), m)) throw sys_error(errno, "send(pool spawn)");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    for (auto it = spawned_.begin(); it != spawned_.end(); ++it) {
      if (it->first != id) continue;
      const pid_t pid = it->second;
      spawned_.erase(it);
      if (pid <= 0) throw sys_error(-pid, "fork(worker " + std::to_string(id) + ") in the fork-server pool");
      return pid;
    }
    if (std::chrono::steady_clock::now() > deadline) throw sys_error(ETIMEDOUT, "the fork-server pool did not fork worker " + std::to_string(id));
    drain(100);
  }
}

std::vector<PoolClient::Death> PoolClient::poll() {
  drain(0);
  return std::exchange(deaths_, {});
}

int run_pool_host(int channel, const std::function<int(int)>& body) {
  std::map<int, WorkerProcess> workers;  // by worker id
  bool quitting = false;
  while (!quitting) {
    pollfd p{channel, POLLIN, 0};
    const int r = ::poll(&p, 1, 20);
    if (r > 0) {
      Msg m;
      const ssize_t n = ::recv(channel, &m, sizeof m, 0);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        quitting = true;  // the main process is gone
      } else if (m.type == kQuit) {
        quitting = true;
      } else if (m.type == kSpawn) {
        Msg reply;
        reply.id = m.id;
        try {
          WorkerProcess w = WorkerProcess::spawn([&body, id = m.id] { return body(id); });
          reply.type = kSpawned;
          reply.pid = w.pid();
          workers[m.id] = std::move(w);
        } catch (const std::system_error& e) {
          reply.type = kSpawnFailed;
          reply.value = e.code().value();
        }
        send_msg(channel, reply);
      }
    }
    for (auto it = workers.begin(); it != workers.end();) {
      if (auto st = it->second.poll()) {
        Msg d;
        d.type = kDied;
        d.id = it->first;
        d.pid = it->second.pid();
        d.signaled = st->signaled;
        d.value = st->value;
        send_msg(channel, d);
        it = workers.erase(it);
      } else {
        ++it;
      }
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (auto& [id, w] : workers) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (!w.wait_for(std::max(left, std::chrono::milliseconds(0)))) w.terminate();
  }
  return 0;
}

}  // namespace ringloader::ipc
