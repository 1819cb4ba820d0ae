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
#include "ipc/detail/spawner_wire.hpp"

namespace ringloader::ipc {
namespace {

using core::posix_error;
using core::UniqueFd;
using namespace detail;

int g_server_fd = -1;     ///< main process: socket to the server; -1 if not started
pid_t g_server_pid = -1;  ///< the server, our child: reaped if it dies
std::mutex g_server_mutex;

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

[[noreturn]] void serve(int sock, SpawnerEntry entry) {
  ::signal(SIGCHLD, SIG_IGN);  // spawners are reaped by the kernel
  char tag[16];
  for (;;) {
    UniqueFd fds[3];  // the ring, the spawner's channel, the request (a memfd)
    const ssize_t n = recv_with_fds(sock, tag, sizeof tag, fds, 0, 3);
    if (n <= 0) ::_exit(0);  // the main process is gone
    if (!fds[0] || !fds[1] || !fds[2]) continue;
    const std::optional<std::string> read = read_request(fds[2].get());
    fds[2].reset();
    if (!read) continue;  // the spawner's channel closes: the main process sees the spawner gone
    const std::string& request = *read;
    ForkOrigin origin;
    const pid_t pid = fork_with_hooks(origin);
    if (pid == 0) {
      after_fork_in_child(origin);  // SIGCHLD back to default: the spawner reaps its workers
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

void ForkServer::start(SpawnerEntry entry) {
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

UniqueFd ForkServer::open_spawner(const std::string& request, int region_fd) {
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

SpawnerClient::SpawnerClient(UniqueFd channel) : channel_(std::move(channel)), owner_(::getpid()) {}

SpawnerClient::~SpawnerClient() {
  if (!channel_ || owner_ != ::getpid()) return;
  if (alive_) {
    Msg quit;
    quit.type = kQuit;
    send_msg(channel_.get(), quit);
    if (spawner_pidfd_) ::syscall(SYS_pidfd_send_signal, spawner_pidfd_.get(), SIGCONT, nullptr, 0);  // a stopped spawner must hear it
    // Wait for the spawner to close its end: its workers are stopped by then.
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
  // Whatever it was doing, the spawner goes now; its workers follow it (their death signal).
  if (spawner_pidfd_ && !pidfd_ended(spawner_pidfd_.get())) ::syscall(SYS_pidfd_send_signal, spawner_pidfd_.get(), SIGKILL, nullptr, 0);
  ForkServer::reap_if_dead();
}

void SpawnerClient::drain(int timeout_ms) {
  while (alive_) {
    pollfd p{channel_.get(), POLLIN, 0};
    const int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    char buf[sizeof(Msg) + kMaxFailureText];
    UniqueFd fds[2];
    const ssize_t n = recv_with_fds(channel_.get(), buf, sizeof buf, fds, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      alive_ = false;  // the spawner is gone; its workers follow it (their death signal)
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
      spawner_pid_ = m.pid;
      spawner_pidfd_ = std::move(fds[0]);
    }
    timeout_ms = 0;  // only the first wait blocks
  }
}

void SpawnerClient::request_spawn(int id) {
  Msg m;
  m.type = kSpawn;
  m.id = id;
  if (!alive_ || !send_msg(channel_.get(), m)) {
    alive_ = false;
    throw posix_error(EPIPE, "send(fork-server pool): the pool is gone");
  }
}

std::optional<SpawnerClient::Spawned> SpawnerClient::spawned(int id) {
  drain(0);
  for (auto it = spawned_.begin(); it != spawned_.end(); ++it) {
    if (it->first != id) continue;
    Spawned s = std::move(it->second);
    spawned_.erase(it);
    return s;
  }
  return std::nullopt;
}

SpawnerClient::Spawned SpawnerClient::spawn(int id, std::chrono::milliseconds limit) {
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

std::vector<SpawnerClient::Death> SpawnerClient::poll() {
  drain(0);
  return std::exchange(deaths_, {});
}

std::optional<ExitStatus> SpawnerClient::death_of(int id, pid_t pid) {
  drain(0);
  for (auto it = deaths_.begin(); it != deaths_.end(); ++it) {
    if (it->id != id || it->pid != pid) continue;
    const ExitStatus st = it->status;
    deaths_.erase(it);
    return st;
  }
  return std::nullopt;
}

void SpawnerClient::abandon() {
  if (spawner_pidfd_ && owner_ == ::getpid()) ::syscall(SYS_pidfd_send_signal, spawner_pidfd_.get(), SIGKILL, nullptr, 0);
  alive_ = false;
}

}  // namespace ringloader::ipc
