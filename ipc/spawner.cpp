// The spawner process's side of the fork-server start method: its loop (forking workers on
// request, reporting deaths) and its last word when it cannot serve. The main process's side
// (ForkServer, SpawnerClient) is in fork_server.cpp; both speak detail/spawner_wire.hpp.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <map>
#include <string>
#include <system_error>

#include "core/posix_error.hpp"
#include "ipc/detail/spawner_wire.hpp"
#include "ipc/fork_server.hpp"

namespace ringloader::ipc {

using core::posix_error;
using core::UniqueFd;
using namespace detail;

void report_spawner_failure(int channel, const std::string& why) {
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

int run_spawner(int channel, const std::function<int(int)>& body) {
  {
    Msg hello;
    hello.type = kHello;
    hello.pid = ::getpid();
    UniqueFd self(pidfd_open(::getpid()));
    send_msg(channel, hello, self.get());  // lets the main process SIGKILL a spawner that is stopped or stuck
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
