// Fuzz target: rule files (rules/engine.h ParseRules) on arbitrary text; a file that loads
// is run in an engine over a fixed stream of readings of its metrics, with a checkpoint
// restored into a second engine half-way.
// Checks: no crash, no exception, no unbounded time or memory: whatever a rule file says,
// loading it is bounded and a loaded rule costs bounded work per reading.

#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "rules/engine.h"
#include "rules/rule.h"

namespace {

constexpr std::int64_t kT0 = 1'795'341'600'000;  // 2026-11-22T10:00:00Z

void Drain(std::vector<vigil::rules::Event>* events) {
  for (const auto& e : *events) {
    if (vigil::rules::ToJson(e).empty()) std::abort();
  }
  events->clear();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  vigil::rules::LoadResult loaded = vigil::rules::ParseRules(text, "rules.d/fuzz.json");
  if (!loaded.rules) {
    if (loaded.diagnostics.empty()) std::abort();
    for (const auto& d : loaded.diagnostics) (void)d.ToString();
    return 0;
  }
  if (!loaded.diagnostics.empty()) std::abort();

  std::set<std::string> metrics;
  for (const auto& rule : loaded.rules->rules) {
    for (const auto& m : rule->metrics) {
      if (metrics.size() < 4) metrics.insert(m);
    }
  }
  auto engine = std::make_unique<vigil::rules::Engine>("gw-fuzz", loaded.rules);
  std::vector<vigil::rules::Event> events;
  for (int i = 0; i < 40; ++i) {
    if (i == 20) {
      // A checkpoint restored into a fresh engine, which goes on instead.
      std::vector<vigil::rules::StateChange> state;
      engine->SnapshotAll(&state);
      auto next = std::make_unique<vigil::rules::Engine>("gw-fuzz", loaded.rules);
      for (const auto& s : state) {
        if (!s.bytes || !next->Restore(s.rule, s.key, *s.bytes)) std::abort();
      }
      engine = std::move(next);
    }
    for (const auto& metric : metrics) {
      for (const char* device : {"boiler-1", "d2"}) {
        vigil::rules::Reading r{metric,
                                {{"device", device}, {"metric", metric}, {"site", "s"}},
                                vigil::Millis(kT0 + i * 1500 - (i % 5) * 700),
                                (i % 7) * 10.0 - 15.0};
        engine->Process(r, vigil::Millis(kT0 + i * 1500), &events);
      }
    }
    if (i % 10 == 9) engine->Advance(vigil::Millis(kT0 + i * 1500 + 60'000), &events);
    Drain(&events);
  }
  engine->Advance(vigil::Millis(kT0 + 3'600'000), &events);
  engine->Finish(&events);
  Drain(&events);
  std::vector<vigil::rules::StateChange> changes;
  engine->TakeChanges(&changes);
  (void)engine->Stats();
  (void)engine->Firing();
  return 0;
}
