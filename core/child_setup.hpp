#pragma once
// What every process ringloader forks (workers, the fork server, its spawners) does first, so the
// rules live in one place:
//
//   sigset_t old;
//   core::block_all_signals(old);          // parent, just before fork()
//   const pid_t parent = ::getpid();
//   const bool main_thread = core::on_main_thread();
//   if (::fork() == 0) { core::become_child(parent, old, main_thread); ... ::_exit(rc); }
//   core::restore_signals(old);            // parent, after fork()
//
// - The child dies with the process that forked it. PR_SET_PDEATHSIG fires when the *thread*
//   that called fork() exits, not the process. Forked by the main thread (whose end is the
//   process's), the death signal is SIGKILL, which also ends a child that is stopped. Forked by
//   another thread, it is SIGCONT with a handler that _exit()s only if getppid() shows the
//   process itself is gone: a loader built on a thread that later ends keeps its workers, and
//   SIGCONT is the one catchable signal that also reaches a stopped child (it continues it, so
//   the handler runs). A SIGCONT from anyone else finds the parent alive and does nothing.
// - Signals arriving between fork() and this call stay blocked, so a parent's handler (a test
//   framework's, a crash reporter's) never runs in the child.
// - SIGINT is ignored (Ctrl-C belongs to the parent); crash signals get their default action,
//   so a crash is reported as that signal; SIGPIPE is ignored.
#include <signal.h>
#include <sys/types.h>

#include <cstdint>

namespace ringloader::core {

/// The signal a forked child receives when the thread that forked it ends.
int parent_death_signal();

/// Blocks every signal in the calling thread; the previous mask goes to `old`.
void block_all_signals(sigset_t& old);
/// Restores a mask saved by block_all_signals.
void restore_signals(const sigset_t& old);

/// Is the calling thread its process's main thread?
bool on_main_thread();

/// A number that changes in every child forked from this process (a pthread_atfork child
/// handler bumps it): an object that recorded it can tell, without a system call, whether it
/// still lives in the process that made it.
uint64_t fork_generation();

/// In the child, right after fork(): sets up the rules above, then restores `old`.
/// `forked_by_main_thread`: what on_main_thread() said in the parent before fork().
/// _exit(0)s at once if `parent` has already gone.
void become_child(pid_t parent, const sigset_t& old, bool forked_by_main_thread);

}  // namespace ringloader::core
