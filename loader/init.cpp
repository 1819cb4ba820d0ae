#include "loader/init.hpp"

#include <map>
#include <mutex>
#include <system_error>

#include "core/error.hpp"
#include "ipc/fork_server.hpp"
#include "loader/detail/registry.hpp"
#include "loader/detail/worker_main.hpp"

namespace ringloader {
namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, DatasetFactory> factories;
  std::map<std::string, bool> before_server;  ///< name -> registered before init()
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void register_dataset(const std::string& name, DatasetFactory factory) {
  if (name.empty() || !factory) throw ConfigError("register_dataset: empty name or factory");
  // Asked before taking the registry lock: the fork server's child takes the registry lock
  // while its copy of the server lock is held (it is forked inside ForkServer::start), so
  // taking them in the other order here would be a lock-order inversion (TSan reports it).
  const bool before_server = !ipc::ForkServer::running();
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.factories[name] = std::move(factory);
  r.before_server[name] = before_server;
}

void init() {
  if (ipc::ForkServer::running()) throw ConfigError("ringloader::init() called twice");
  try {
    ipc::ForkServer::start(&loader::detail::spawner_main);
  } catch (const std::system_error& e) {
    throw IpcError(std::string("starting the fork server: ") + e.what());
  }
}

namespace loader::detail {

std::shared_ptr<datasets::Dataset> make_registered_dataset(const std::string& name, const std::string& args) {
  DatasetFactory f;
  std::string known;
  {
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.factories.find(name);
    if (it != r.factories.end()) f = it->second;
    for (const auto& [n, unused] : r.factories) known += (known.empty() ? "" : ", ") + n;
  }
  if (!f) throw ConfigError("no dataset registered as '" + name + "' (registered: " + (known.empty() ? "none" : known) + ")");
  auto ds = f(args);
  if (!ds) throw ConfigError("dataset factory '" + name + "' returned null for args '" + args + "'");
  return ds;
}

bool registered_before_server(const std::string& name) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.before_server.find(name);
  return it != r.before_server.end() && it->second;
}

}  // namespace loader::detail
}  // namespace ringloader
