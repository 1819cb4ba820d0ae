#include "ipc/fork_server.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>

#include "core/posix_error.hpp"

namespace ringloader::ipc {
namespace {

using core::posix_error;
using core::UniqueFd;

enum MsgType : int32_t { kSpawn = 1, kSpawned = 2, kDied = 3, kQuit = 4, kSpawnFailed = 5, kHello = 6, kFailed = 7 };
constexpr size_t kMaxFailureText = 4000;  ///< a kFailed message: the Msg, then at most this much text

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

/// Sends `size` bytes with up to 3 descriptors attached (`nfds` may be 0). False on failure
/// (errno set).
bool send_with_fds(int sock, const void* data, size_t size, const int* fds, int nfds) {
  msghdr mh{};
  iovec iov{const_cast<void*>(data), size};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * 3)]{};
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

/// Receives one message of at most `cap` bytes with up to `max_fds` descriptors (more are
/// closed); its size, 0 on EOF, -1 with errno on error.
ssize_t recv_with_fds(int sock, void* data, size_t cap, UniqueFd* fds, int flags = 0, int max_fds = 2) {
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
      if (k < max_fds) fds[k++].reset(fd);
      else ::close(fd);
    }
  }
  return n;
}

/// The whole of a request memfd (any size: a dataset's pickled recipe can be megabytes).
std::optional<std::string> read_request(int fd) {
  struct stat st{};
  if (::fstat(fd, &st) != 0 || st.st_size < 0) return std::nullopt;
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    done += static_cast<size_t>(n);
  }
  return out;
}

[[noreturn]] void serve(int sock, PoolEntry entry) {
  ::signal(SIGCHLD, SIG_IGN);  // pools are reaped by the kernel
  char tag[16];
  for (;;) {
    UniqueFd fds[3];  // the ring, the pool's channel, the request (a memfd)
    const ssize_t n = recv_with_fds(sock, tag, sizeof tag, fds, 0, 3);
    if (n <= 0) ::_exit(0);  // the main process is gone
    if (!fds[0] || !fds[1] || !fds[2]) continue;
    const std::optional<std::string> read = read_request(fds[2].get());
    fds[2].reset();
    if (!read) continue;  // the pool's channel closes: the main process sees the pool gone
    const std::string& request = *read;
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
  // The request travels in a memfd: a SEQPACKET message is bounded (the server read 64 KiB and
  // cut the rest; a few hundred KiB did not send at all), a dataset's recipe is not.
  UniqueFd req(::memfd_create("ringloader-pool-request", MFD_CLOEXEC));
  if (!req) throw posix_error(errno, "memfd_create(fork-server request)");
  for (size_t done = 0; done < request.size();) {
    const ssize_t n = ::write(req.get(), request.data() + done, request.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw posix_error(errno, "write(fork-server request, " + std::to_string(request.size()) + " bytes)");
    done += static_cast<size_t>(n);
  }
  const int fds[3] = {region_fd, theirs.get(), req.get()};
  if (!send_with_fds(g_server_fd, "R", 1, fds, 3)) {
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
    char buf[sizeof(Msg) + kMaxFailureText];
    UniqueFd fds[2];
    const ssize_t n = recv_with_fds(channel_.get(), buf, sizeof buf, fds, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      alive_ = false;  // the pool is gone; its workers follow it (their death signal)
      return;
    }
    if (n < 0) continue;
    if (static_cast<size_t>(n) < sizeof(Msg)) continue;
    Msg m;
    std::memcpy(&m, buf, sizeof m);
    if (m.type == kFailed) {
      failure_.assign(buf + sizeof m, static_cast<size_t>(n) - sizeof m);
      alive_ = false;  // it exits now
      return;
    }
    if (m.type == kDied) {
      deaths_.push_back({m.id, m.pid, ExitStatus{m.signaled != 0, m.value, 0}});
    } else if (m.type == kSpawned) {
      served_ = true;
      spawned_.emplace_back(m.id, Spawned{m.pid, std::move(fds[0]), 0});
    } else if (m.type == kSpawnFailed) {
      served_ = true;
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

void report_pool_failure(int channel, const std::string& why) {
  Msg m;
  m.type = kFailed;
  std::string packet(reinterpret_cast<const char*>(&m), sizeof m);
  packet += why.substr(0, kMaxFailureText);
  if (!send_with_fds(channel, packet.data(), packet.size(), nullptr, 0)) return;
  // Closing a socket with unread data (the spawn requests already sent) resets it, and the
  // reset discards the report too: read and drop what comes until the main process has the
  // report and closes, or 5 s pass.
  ::shutdown(channel, SHUT_WR);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  char drop[256];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    pollfd p{channel, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    const ssize_t n = ::recv(channel, drop, sizeof drop, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return;
  }
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
