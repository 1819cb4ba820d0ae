#include "ipc/fork_server.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <system_error>

#include "core/posix_error.hpp"

namespace ringloader::ipc {
namespace {

using core::posix_error;
using core::UniqueFd;

enum MsgType : int32_t { kSpawn = 1, kSpawned = 2, kDied = 3, kQuit = 4, kSpawnFailed = 5, kHello = 6 };

/// One message between a pool and the main process (SOCK_SEQPACKET keeps boundaries).
struct Msg {
  int32_t type = 0;
  int32_t id = -1;
  int32_t pid = -1;
  int32_t signaled = 0;
  int32_t value = 0;
};

int g_server_fd = -1;     ///< main process: socket to the server; -1 if not started
pid_t g_server_pid = -1;  ///< the server, our child: reaped if it dies
std::mutex g_server_mutex;

/// Sends `size` bytes with up to 2 descriptors attached (`nfds` may be 0). False on failure
/// (errno set).
bool send_with_fds(int sock, const void* data, size_t size, const int* fds, int nfds) {
  msghdr mh{};
  iovec iov{const_cast<void*>(data), size};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * 2)]{};
  if (nfds > 0) {
    mh.msg_control = ctrl;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * static_cast<size_t>(nfds));
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * static_cast<size_t>(nfds));
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * static_cast<size_t>(nfds));
  }
  for (;;) {
    if (::sendmsg(sock, &mh, MSG_NOSIGNAL) >= 0) return true;
    if (errno != EINTR) return false;
  }
}

bool send_msg(int fd, const Msg& m, int attach_fd = -1) {
  return send_with_fds(fd, &m, sizeof m, &attach_fd, attach_fd >= 0 ? 1 : 0);
}

/// Receives one message of at most `cap` bytes with up to 2 descriptors; its size, 0 on EOF,
/// -1 with errno on error.
ssize_t recv_with_fds(int sock, void* data, size_t cap, UniqueFd* fds, int flags = 0) {
  msghdr mh{};
  iovec iov{data, cap};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * 4)]{};
  mh.msg_control = ctrl;
  mh.msg_controllen = sizeof ctrl;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return n;
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
  return n;
}

[[noreturn]] void serve(int sock, PoolEntry entry) {
  ::signal(SIGCHLD, SIG_IGN);  // pools are reaped by the kernel
  std::vector<char> buf(1 << 16);
  for (;;) {
    UniqueFd fds[2];
    const ssize_t n = recv_with_fds(sock, buf.data(), buf.size(), fds);
    if (n <= 0) ::_exit(0);  // the main process is gone
    if (!fds[0] || !fds[1]) continue;
    const std::string request(buf.data(), static_cast<size_t>(n));
    ForkOrigin origin;
    const pid_t pid = fork_with_hooks(origin);
    if (pid == 0) {
      after_fork_in_child(origin);  // SIGCHLD back to default: the pool reaps its workers
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

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

bool pidfd_ended(int pidfd) {
  pollfd p{pidfd, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, 0);
  } while (r < 0 && errno == EINTR);
  return r > 0 && (p.revents & (POLLIN | POLLHUP)) != 0;
}

void ForkServer::start(PoolEntry entry) {
  std::lock_guard<std::mutex> lock(g_server_mutex);
  if (g_server_fd >= 0) throw std::logic_error("ForkServer::start called twice");
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) throw posix_error(errno, "socketpair(fork server)");
  ForkOrigin origin;
  const pid_t pid = fork_with_hooks(origin);
  if (pid < 0) {
    const int err = errno;
    ::close(sv[0]);
    ::close(sv[1]);
    throw posix_error(err, "fork(fork server)");
  }
  if (pid == 0) {
    after_fork_in_child(origin);
    ::close(sv[0]);
    serve(sv[1], entry);
  }
  ::close(sv[1]);
  g_server_fd = sv[0];
  g_server_pid = pid;
}

namespace {
// The server died (it is our child): reap it, no zombie stays behind. Holds g_server_mutex.
void reap_dead_server() {
  int ws = 0;
  if (g_server_pid > 0 && ::waitpid(g_server_pid, &ws, WNOHANG) == g_server_pid) g_server_pid = -1;
}
}  // namespace

bool ForkServer::running() {
  std::lock_guard<std::mutex> lock(g_server_mutex);
  return g_server_fd >= 0;
}

UniqueFd ForkServer::open_pool(const std::string& request, int region_fd) {
  std::lock_guard<std::mutex> lock(g_server_mutex);
  if (g_server_fd < 0) throw std::logic_error("the fork server is not running: call ringloader::init() first in main");
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) throw posix_error(errno, "socketpair(pool)");
  UniqueFd mine(sv[0]), theirs(sv[1]);
  const int fds[2] = {region_fd, theirs.get()};
  if (!send_with_fds(g_server_fd, request.data(), request.size(), fds, 2)) {
    const int err = errno;
    reap_dead_server();
    throw posix_error(err, "sendmsg(fork server): the fork server is gone");
  }
  return mine;
}

void ForkServer::reap_if_dead() {
  std::lock_guard<std::mutex> lock(g_server_mutex);
  reap_dead_server();
}

PoolClient::PoolClient(UniqueFd channel) : channel_(std::move(channel)), owner_(::getpid()) {}

PoolClient::~PoolClient() {
  if (!channel_ || owner_ != ::getpid()) return;
  if (alive_) {
    Msg quit;
    quit.type = kQuit;
    send_msg(channel_.get(), quit);
    if (pool_pidfd_) ::syscall(SYS_pidfd_send_signal, pool_pidfd_.get(), SIGCONT, nullptr, 0);  // a stopped pool must hear it
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
      UniqueFd fds[2];
      if (recv_with_fds(channel_.get(), &m, sizeof m, fds) <= 0) break;  // closed: done
    }
  }
  // Whatever it was doing, the pool goes now; its workers follow it (their death signal).
  if (pool_pidfd_ && !pidfd_ended(pool_pidfd_.get())) ::syscall(SYS_pidfd_send_signal, pool_pidfd_.get(), SIGKILL, nullptr, 0);
  ForkServer::reap_if_dead();
}

void PoolClient::drain(int timeout_ms) {
  while (alive_) {
    pollfd p{channel_.get(), POLLIN, 0};
    const int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    Msg m;
    UniqueFd fds[2];
    const ssize_t n = recv_with_fds(channel_.get(), &m, sizeof m, fds, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      alive_ = false;  // the pool is gone; its workers follow it (their death signal)
      return;
    }
    if (n < 0) continue;
    if (m.type == kDied) {
      deaths_.push_back({m.id, m.pid, ExitStatus{m.signaled != 0, m.value, 0}});
    } else if (m.type == kSpawned) {
      spawned_.emplace_back(m.id, Spawned{m.pid, std::move(fds[0]), 0});
    } else if (m.type == kSpawnFailed) {
      spawned_.emplace_back(m.id, Spawned{-1, {}, m.value});
    } else if (m.type == kHello) {
      pool_pid_ = m.pid;
      pool_pidfd_ = std::move(fds[0]);
    }
    timeout_ms = 0;  // only the first wait blocks
  }
}

void PoolClient::request_spawn(int id) {
  Msg m;
  m.type = kSpawn;
  m.id = id;
  if (!alive_ || !send_msg(channel_.get(), m)) {
    alive_ = false;
    throw posix_error(EPIPE, "send(fork-server pool): the pool is gone");
  }
}

std::optional<PoolClient::Spawned> PoolClient::spawned(int id) {
  drain(0);
  for (auto it = spawned_.begin(); it != spawned_.end(); ++it) {
    if (it->first != id) continue;
    Spawned s = std::move(it->second);
    spawned_.erase(it);
    return s;
  }
  return std::nullopt;
}

PoolClient::Spawned PoolClient::spawn(int id, std::chrono::milliseconds limit) {
  request_spawn(id);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (auto s = spawned(id)) {
      if (s->error) throw posix_error(s->error, "fork(worker " + std::to_string(id) + ") in the fork-server pool");
      if (!s->pidfd) throw posix_error(EPROTO, "the fork-server pool sent no pidfd for worker " + std::to_string(id));
      return std::move(*s);
    }
    if (!alive_) throw posix_error(EPIPE, "the fork-server pool died while forking worker " + std::to_string(id));
    if (std::chrono::steady_clock::now() > deadline) {
      throw posix_error(ETIMEDOUT, "the fork-server pool did not fork worker " + std::to_string(id));
    }
    drain(20);
  }
}

std::vector<PoolClient::Death> PoolClient::poll() {
  drain(0);
  return std::exchange(deaths_, {});
}

std::optional<ExitStatus> PoolClient::death_of(int id, pid_t pid) {
  drain(0);
  for (auto it = deaths_.begin(); it != deaths_.end(); ++it) {
    if (it->id != id || it->pid != pid) continue;
    const ExitStatus st = it->status;
    deaths_.erase(it);
    return st;
  }
  return std::nullopt;
}

void PoolClient::abandon() {
  if (pool_pidfd_ && owner_ == ::getpid()) ::syscall(SYS_pidfd_send_signal, pool_pidfd_.get(), SIGKILL, nullptr, 0);
  alive_ = false;
}

int run_pool_host(int channel, const std::function<int(int)>& body) {
  {
    Msg hello;
    hello.type = kHello;
    hello.pid = ::getpid();
    UniqueFd self(pidfd_open(::getpid()));
    send_msg(channel, hello, self.get());  // lets the main process SIGKILL a pool that is stopped or stuck
  }
  std::map<int, WorkerProcess> workers;  // by worker id
  bool quitting = false;
  while (!quitting) {
    pollfd p{channel, POLLIN, 0};
    const int r = ::poll(&p, 1, 20);
    if (r > 0) {
      Msg m;
      UniqueFd unused[2];
      const ssize_t n = recv_with_fds(channel, &m, sizeof m, unused);
      if (n <= 0) {
        quitting = true;  // the main process is gone
      } else if (m.type == kQuit) {
        quitting = true;
      } else if (m.type == kSpawn) {
        Msg reply;
        reply.id = m.id;
        UniqueFd pidfd;
        try {
          WorkerProcess w = WorkerProcess::spawn([&body, id = m.id] { return body(id); });
          pidfd.reset(pidfd_open(w.pid()));  // before any reaping: the pid is still ours
          if (!pidfd) throw posix_error(errno, "pidfd_open");
          reply.type = kSpawned;
          reply.pid = w.pid();
          workers[m.id] = std::move(w);
        } catch (const std::system_error& e) {
          reply.type = kSpawnFailed;
          reply.value = e.code().value();
        }
        send_msg(channel, reply, pidfd.get());
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
    if (!w.wait_for(std::max(left, std::chrono::milliseconds(0)))) w.terminate(std::chrono::milliseconds(500));
  }
  return 0;
}

}  // namespace ringloader::ipc
