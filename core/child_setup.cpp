#include "core/child_setup.hpp"

#include <pthread.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <initializer_list>

namespace ringloader::core {
namespace {

volatile sig_atomic_t g_parent = 0;  ///< the child's parent process (its tgid); set once after fork

std::atomic<uint64_t> g_fork_generation{0};
static_assert(std::atomic<uint64_t>::is_always_lock_free);

void bump_generation() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

/// Registers the child handler once, when the library is loaded.
const int g_registered = ::pthread_atfork(nullptr, nullptr, bump_generation);

void on_parent_death(int) {
  // The thread that forked us ended. Only the end of the whole parent process ends us.
  if (::getppid() != static_cast<pid_t>(g_parent)) ::_exit(0);
}

}  // namespace

// SIGCONT, not a real-time signal: a pending catchable signal never runs on a stopped child, so
// a SIGSTOPped worker outlived its SIGKILLed parent; SIGCONT continues it first.
int parent_death_signal() { return SIGCONT; }

uint64_t fork_generation() {
  (void)g_registered;
  return g_fork_generation.load(std::memory_order_relaxed);
}

void block_all_signals(sigset_t& old) {
  sigset_t all;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
}

void restore_signals(const sigset_t& old) { ::pthread_sigmask(SIG_SETMASK, &old, nullptr); }

bool on_main_thread() { return ::gettid() == ::getpid(); }

void become_child(pid_t parent, const sigset_t& old, bool forked_by_main_thread) {
  g_parent = static_cast<sig_atomic_t>(parent);
  if (forked_by_main_thread) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  } else {
    struct sigaction sa {};
    sa.sa_handler = on_parent_death;
    sa.sa_flags = SA_RESTART;
    ::sigemptyset(&sa.sa_mask);
    ::sigaction(parent_death_signal(), &sa, nullptr);
    ::prctl(PR_SET_PDEATHSIG, parent_death_signal());
  }
  if (::getppid() != parent) ::_exit(0);  // the parent died before prctl took effect
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  for (int sig : {SIGTERM, SIGCHLD, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGUSR1, SIGUSR2, SIGALRM, SIGHUP,
                  SIGQUIT}) {
    ::signal(sig, SIG_DFL);
  }
  restore_signals(old);
}

}  // namespace ringloader::core
