#pragma once
// ForkHooks: code that must run around every fork() the library makes (workers, the fork
// server, its spawners). An embedding runtime registers them once: the Python binding prepares
// and repairs the interpreter (PyOS_BeforeFork / PyOS_AfterFork_Parent / PyOS_AfterFork_Child)
// exactly as os.fork() does, so that Python code runs in the workers. C++ programs need none.
//
//   ipc::set_fork_hooks({.before = prepare, .after_parent = resume, .after_child = reinit});
//
// `before` and `after_parent` run in the forking thread of the parent, `after_child` in the
// child right after its post-fork set-up (core::become_child), before anything else.
// Set them before any loader starts workers; set_fork_hooks is not meant to race with forks.
#include <functional>

namespace ringloader::ipc {

struct ForkHooks {
  std::function<void()> before;
  std::function<void()> after_parent;
  std::function<void()> after_child;
};

/// Replaces the process-wide hooks.
void set_fork_hooks(ForkHooks hooks);
/// The hooks every fork of the library runs (empty functions are skipped).
const ForkHooks& fork_hooks();

}  // namespace ringloader::ipc
