#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/metrics.h"
#include "config/config.h"
#include "rules/table.h"

namespace vigil::agent {

// The configured reference tables (`tables`, rules/table.h) as last loaded, read again on
// SIGHUP and when a table file changes. Each table stands alone: one whose file fails to load
// is logged with every problem and keeps its previous version (vigil_table_reloads_total
// {outcome="error"}); the others are replaced. Not the loader (rules/table_loader.h) nor the
// watcher (RuleWatcher): it owns only which version of each table is in force.
//
// Thread-safe: the main thread (SIGHUP) and the table watcher's thread both call Reload; a
// mutex serialises reloads, and `apply` is called under it, so the engine gets the tables in
// the order they were loaded.
class TableReloader {
 public:
  // Receives the tables now in force after each reload (Pipeline::RequestTables). Must not
  // block for long.
  using Apply = std::function<void(std::shared_ptr<const rules::Tables>)>;

  // `loaded`: the tables of `configs`, as start-up loaded them (same order). Adds one
  // Metrics::TableCounters per table to `metrics`. REQUIRES: before any thread reads
  // `metrics`.
  TableReloader(std::vector<config::TableConfig> configs,
                std::shared_ptr<const rules::Tables> loaded, Metrics* metrics, Apply apply);

  // Reads every table file again and applies the result. Blocks while it reads and parses
  // (up to 16 MiB a table).
  void Reload();

  // The table files, for the watcher.
  std::vector<std::string> files() const;

 private:
  const std::vector<config::TableConfig> configs_;
  Metrics* metrics_;  // not owned; outlives this
  Apply apply_;
  std::mutex mu_;  // guards current_; held through a whole reload
  std::shared_ptr<const rules::Tables> current_;
};

}  // namespace vigil::agent
