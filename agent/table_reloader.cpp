#include "agent/table_reloader.h"

#include "config/log.h"
#include "rules/table_loader.h"

namespace vigil::agent {

TableReloader::TableReloader(std::vector<config::TableConfig> configs,
                             std::shared_ptr<const rules::Tables> loaded, Metrics* metrics,
                             Apply apply)
    : configs_(std::move(configs)),
      metrics_(metrics),
      apply_(std::move(apply)),
      current_(loaded ? std::move(loaded) : std::make_shared<rules::Tables>()) {
  for (std::size_t i = 0; i < configs_.size(); ++i) {
    auto& counters = metrics_->tables.emplace_back(configs_[i].name);
    if (i < current_->tables.size()) counters.rows = current_->tables[i].rows.size();
  }
}

std::vector<std::string> TableReloader::files() const {
  std::vector<std::string> out;
  for (const auto& c : configs_) out.push_back(c.file);
  return out;
}

void TableReloader::Reload() {
  std::lock_guard lock(mu_);
  auto next = std::make_shared<rules::Tables>();
  for (std::size_t i = 0; i < configs_.size(); ++i) {
    const config::TableConfig& c = configs_[i];
    Metrics::TableCounters& counters = metrics_->tables[i];
    rules::TableLoadResult loaded = rules::LoadTable(c);
    if (loaded.table) {
      counters.rows = loaded.table->rows.size();
      counters.reloads_ok.fetch_add(1, std::memory_order_relaxed);
      log::Info("reload: table " + c.name + ": " + std::to_string(loaded.table->rows.size()) +
                " row(s) from " + c.file);
      next->tables.push_back(std::move(*loaded.table));
      continue;
    }
    counters.reloads_error.fetch_add(1, std::memory_order_relaxed);
    for (const auto& d : loaded.diagnostics) log::Error("reload: " + d.ToString());
    log::Error("reload: table " + c.name + " is invalid; the previous one stays in force");
    if (const rules::Table* previous = current_->Find(c.name)) next->tables.push_back(*previous);
  }
  current_ = std::move(next);
  apply_(current_);
}

}  // namespace vigil::agent
