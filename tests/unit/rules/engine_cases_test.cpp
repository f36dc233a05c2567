// Runs every rule case in data/*.json: {rules, steps, expected, late?, tables?}. A step is a
// reading {metric, tags, time, value, now?}, {"advance": now} or {"finish": true}. Each expected
// event lists the members that must equal the produced event's (SPEC §6); the number of events must
// match exactly. `tables` gives reference tables: name → {key, columns, rows (lists of
// cells)}. Every case also runs a second time to check the output is identical.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "rules/engine.h"
#include "rules/rule_loader.h"
#include "rules/table.h"

namespace vigil::rules {
namespace {

using nlohmann::json;

Millis Time(const json& j) {
  if (j.is_number()) return Millis(j.get<std::int64_t>());
  auto t = config::ParseRfc3339(j.get<std::string>());
  EXPECT_TRUE(t.has_value()) << j;
  return t.value_or(Millis(0));
}

struct Outcome {
  std::vector<json> events;
  std::vector<RuleStats> stats;
};

std::shared_ptr<Tables> CaseTables(const json& c) {
  auto tables = std::make_shared<Tables>();
  const json given = c.value("tables", json::object());
  for (const auto& [name, t] : given.items()) {
    Table table;
    table.name = name;
    table.key = t.at("key").get<std::string>();
    table.columns = t.at("columns").get<std::vector<std::string>>();
    const auto key_column = static_cast<std::size_t>(
        std::find(table.columns.begin(), table.columns.end(), table.key) - table.columns.begin());
    for (const json& row : t.at("rows")) {
      auto cells = row.get<std::vector<std::string>>();
      table.rows[cells.at(key_column)] = cells;
    }
    tables->tables.push_back(std::move(table));
  }
  return tables;
}

Outcome RunCase(const json& c) {
  auto tables = CaseTables(c);
  config::RuleLimits limits;
  for (const Table& t : tables->tables) limits.tables.push_back(t.name);
  LoadResult loaded = ParseRules(c.at("rules").dump(), "case.json", limits);
  for (const auto& d : loaded.diagnostics) ADD_FAILURE() << d.ToString();
  Outcome outcome;
  if (!loaded.rules) return outcome;
  Engine engine("gw-test", loaded.rules);
  engine.SetTables(tables);
  std::vector<Event> events;
  for (const json& step : c.at("steps")) {
    if (step.contains("advance")) {
      engine.Advance(Time(step["advance"]), &events);
    } else if (step.contains("finish")) {
      engine.Finish(&events);
    } else {
      Reading r;
      r.metric = step.at("metric").get<std::string>();
      const json tags = step.value("tags", json::object());
      for (const auto& [name, value] : tags.items()) {
        r.tags.emplace_back(name, value.get<std::string>());
      }
      r.tags.emplace_back("metric", r.metric);
      std::sort(r.tags.begin(), r.tags.end());
      r.time = Time(step.at("time"));
      r.value = step.at("value").get<double>();
      engine.Process(r, step.contains("now") ? Time(step["now"]) : r.time, &events);
    }
  }
  for (const Event& e : events) outcome.events.push_back(json::parse(ToJson(e)));
  outcome.stats = engine.Stats();
  return outcome;
}

class EngineCase : public ::testing::TestWithParam<std::string> {};

TEST_P(EngineCase, ProducesExpectedEvents) {
  std::ifstream in(GetParam());
  json c = json::parse(in);
  Outcome got = RunCase(c);
  const json& expected = c.at("expected");
  std::string all;
  for (const auto& e : got.events) all += e.dump() + "\n";
  ASSERT_EQ(got.events.size(), expected.size()) << "events produced:\n" << all;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    for (const auto& [member, want] : expected[i].items()) {
      EXPECT_EQ(got.events[i].value(member, json()), want)
          << "event " << i << " member " << member << "\n"
          << got.events[i].dump();
    }
  }
  if (c.contains("late")) {
    for (const auto& [rule, n] : c["late"].items()) {
      for (const auto& s : got.stats) {
        if (s.rule == rule) {
          EXPECT_EQ(s.late_readings, n.get<std::uint64_t>()) << rule;
        }
      }
    }
  }
  // Deterministic: the same input gives the same events, ids included.
  Outcome again = RunCase(c);
  EXPECT_EQ(again.events, got.events);
  std::set<std::string> ids;
  for (const auto& e : got.events) ids.insert(e.at("id").get<std::string>());
  EXPECT_EQ(ids.size(), got.events.size()) << "event ids must be unique";
}

std::vector<std::string> Cases() {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(VIGIL_TEST_DATA)) {
    if (entry.path().extension() == ".json") out.push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

INSTANTIATE_TEST_SUITE_P(Data, EngineCase, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           std::string name = std::filesystem::path(param.param).stem().string();
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace vigil::rules
