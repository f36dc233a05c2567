#include <filesystem>
#include <iostream>

#include "agent/commands.h"
#include "config/values.h"
#include "store/store.h"

namespace vigil::agent {

int Outbox(const config::Config& config, const std::string& action, bool dead) {
  const std::string db_path = (std::filesystem::path(config.agent.state_dir) / "vigil.db").string();
  if (!std::filesystem::exists(db_path)) {
    std::cerr << "outbox: no state database at " << db_path << '\n';
    return kExitInvalid;
  }
  // `list` only reads (SQLITE_OPEN_READONLY); `retry` and `purge` write rows. Neither creates,
  // migrates or moves a file aside: a running agent's state is only read or changed row by row.
  const bool reads_only = action == "list";
  if (!reads_only && action != "retry" && action != "purge") {
    std::cerr << "outbox: unknown action \"" << action << "\" (list, retry, purge)\n";
    return kExitUsage;
  }
  auto opened = store::Store::Open(
      db_path, config.store, reads_only ? store::Access::kReadOnly : store::Access::kReadWrite);
  if (!opened.ok()) {
    std::cerr << "outbox: cannot open " << db_path << ": " << opened.error() << '\n';
    return kExitInvalid;
  }
  store::Store& store = *opened.value();
  if (action == "list") {
    auto counts = store.Counts();
    if (!counts.ok()) {
      std::cerr << "outbox: " << counts.error() << '\n';
      return kExitInvalid;
    }
    for (const auto& c : counts.value()) {
      std::cout << c.uplink << ": " << c.pending << " pending, " << c.dead << " dead";
      if (c.pending > 0) std::cout << ", oldest " << config::FormatRfc3339(c.oldest_pending);
      std::cout << '\n';
    }
    auto rows = store.List(dead, 1000);
    if (!rows.ok()) {
      std::cerr << "outbox: " << rows.error() << '\n';
      return kExitInvalid;
    }
    for (const auto& r : rows.value()) {
      std::cout << (dead ? "dead " : "pending ") << r.uplink << " #" << r.seq << " "
                << config::FormatRfc3339(r.created) << " attempts=" << r.attempts;
      if (!r.last_error.empty()) std::cout << " error=\"" << r.last_error << "\"";
      std::cout << " " << r.json << '\n';
    }
    return kExitOk;
  }
  if (action == "retry") {
    auto n = store.RetryDead();
    if (!n.ok()) {
      std::cerr << "outbox: " << n.error() << '\n';
      return kExitInvalid;
    }
    std::cout << "moved " << n.value() << " dead letter(s) back to pending\n";
    return kExitOk;
  }
  if (action == "purge") {
    auto n = store.Purge(dead);
    if (!n.ok()) {
      std::cerr << "outbox: " << n.error() << '\n';
      return kExitInvalid;
    }
    std::cout << "purged " << n.value() << (dead ? " dead letter(s)\n" : " pending event(s)\n");
    return kExitOk;
  }
  std::cerr << "outbox: unknown action \"" << action << "\" (list, retry, purge)\n";
  return kExitUsage;
}

}  // namespace vigil::agent
