// Reload (SPEC §7): Engine::TakeStateOf moves the keys of unchanged rules into the new engine.
// A moved key's window, detector and alert go on exactly as in an engine that was never
// reloaded (same events, same ids, same state); changed and removed rules start fresh.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "rules/engine.h"

namespace vigil::rules {
namespace {

constexpr std::int64_t kT0 = 1'795'341'720'000;

// A tumbling window with a hysteresis alert that stays firing for a while, a z-score detector
// with a long warm-up, and a rule the reload changes (`gone` is removed).
const std::string kWindow = R"json({ "id": "hot", "source": { "metric": "t" },
  "group_by": ["device"], "window": { "type": "tumbling", "size": "10s" },
  "aggregates": { "avg": "avg(value)", "n": "count()" },
  "alert": { "when": "avg > 45", "clear_when": "avg < 40", "repeat": "20s",
             "summary": "{device} at {avg:.1f}" },
  "emit": ["alert", "aggregate"] })json";
const std::string kDetector = R"json({ "id": "odd", "source": { "metric": "t" },
  "group_by": ["device"], "detector": { "method": "zscore", "window": 30, "threshold": 3,
  "min_samples": 20 }, "alert": { "summary": "{device}: {score:.1f}" } })json";
const std::string kChanged = R"json({ "id": "sum", "source": { "metric": "t" },
  "group_by": ["device"], "window": { "type": "tumbling", "size": "10s" },
  "aggregates": { "s": "sum(value)" }, "alert": { "when": "s > 0" } })json";
const std::string kChangedNew = R"json({ "id": "sum", "source": { "metric": "t" },
  "group_by": ["device"], "window": { "type": "tumbling", "size": "10s" },
  "aggregates": { "s": "sum(value)" }, "alert": { "when": "s > 1" } })json";
const std::string kRemoved = R"json({ "id": "gone", "source": { "metric": "t" },
  "group_by": ["device"], "window": { "type": "count", "count": 1000 },
  "aggregates": { "n": "count()" } })json";

std::shared_ptr<const RuleSet> Load(const std::vector<std::string>& rules) {
  std::string text = "[";
  for (const auto& r : rules) text += (text.size() > 1 ? "," : "") + r;
  LoadResult r = ParseRules(text + "]", "r.json");
  EXPECT_TRUE(r.diagnostics.empty()) << (r.diagnostics.empty() ? "" : r.diagnostics[0].ToString());
  return r.rules;
}

// Readings 0..n-1 of two devices, one a second: warm, then hot (the alert fires and repeats),
// then cool (the alert resolves), then a spike for the detector.
Reading At(int i, const char* dev) {
  double v = 20.0 + (i * 7 + dev[0]) % 5;
  if (i >= 60 && i < 120) v = 50.0 + i % 3;
  if (i == 150) v = 400.0;
  return {"t", {{"device", dev}, {"metric", "t"}}, Millis(kT0 + i * 1000), v};
}

void Feed(Engine& e, int from, int to, std::vector<Event>* out) {
  for (int i = from; i < to; ++i) {
    for (const char* dev : {"a", "b"}) {
      const Reading r = At(i, dev);
      e.Process(r, r.time, out);
    }
    e.Advance(Millis(kT0 + i * 1000), out);
  }
}

std::vector<std::string> Json(const std::vector<Event>& events, const std::string& rule) {
  std::vector<std::string> out;
  for (const auto& e : events) {
    if (e.rule == rule) out.push_back(ToJson(e));
  }
  return out;
}

TEST(EngineReload, MovedKeysContinueAsIfNoReload) {
  // The reference is never reloaded; `live` is reloaded at reading 100: the alert of `hot`
  // fires for both devices then, its windows are open and the detector is warm.
  const auto v1 = Load({kWindow, kDetector, kChanged, kRemoved});
  Engine reference("gw", v1);
  std::vector<Event> expected;
  Feed(reference, 0, 180, &expected);

  auto live = std::make_unique<Engine>("gw", Load({kWindow, kDetector, kChanged, kRemoved}));
  std::vector<Event> before;
  Feed(*live, 0, 100, &before);
  std::vector<StateChange> taken;
  live->TakeChanges(&taken);
  Feed(*live, 100, 101, &before);        // changes not yet taken when the reload comes
  ASSERT_EQ(live->Firing().size(), 4u);  // hot and sum, two devices each
  std::vector<std::string> firing_ids;
  for (const auto& f : live->Firing()) {
    if (f.rule == "hot") firing_ids.push_back(f.alert_id);
  }

  // The reload parses the files again: new rule objects, `sum` changed, `gone` removed.
  Engine next("gw", Load({kDetector, kWindow, kChangedNew}));
  Engine::Handover h = next.TakeStateOf(*live);
  EXPECT_EQ(h.kept, 4u);  // hot and odd, two devices each
  EXPECT_EQ(h.dropped_rules, (std::vector<std::string>{"gone", "sum"}));
  ASSERT_EQ(h.deleted.size(), 4u);
  for (const auto& row : h.deleted) EXPECT_FALSE(row.bytes) << row.rule << " " << row.key;
  // The old engine keeps the dropped rules' keys (their firing alerts resolve there) and no
  // moved key; it may go before the new engine uses the moved keys.
  std::vector<Event> resolved;
  live->ResolveFiring("sum", Millis(kT0 + 101'000), &resolved);
  EXPECT_EQ(resolved.size(), 2u);
  for (const auto& s : live->Stats()) {
    EXPECT_EQ(s.keys, s.rule == "hot" || s.rule == "odd" ? 0u : 2u) << s.rule;
  }
  live.reset();

  // The changes not taken before the reload are taken from the new engine.
  std::vector<StateChange> pending;
  next.TakeChanges(&pending);
  EXPECT_EQ(pending.size(), 4u);
  EXPECT_EQ(next.Firing().size(), 2u);

  std::vector<Event> after = before;
  Feed(next, 101, 180, &after);
  for (const std::string rule : {"hot", "odd"}) {
    EXPECT_EQ(Json(after, rule), Json(expected, rule)) << rule;
  }
  // Something happened after the reload: the alert resolved, the spike was
  // scored, windows closed.
  std::vector<Event> tail(after.begin() + static_cast<std::ptrdiff_t>(before.size()), after.end());
  EXPECT_FALSE(Json(tail, "odd").empty());
  // The episodes firing at the reload resolve after it, under their alert ids.
  std::vector<std::string> resolved_ids;
  for (const auto& e : tail) {
    if (e.rule == "hot" && e.state == EventState::kResolved && resolved_ids.size() < 2) {
      resolved_ids.push_back(e.alert_id);
    }
  }
  EXPECT_EQ(resolved_ids, firing_ids);

  // And the state is the reference's, byte for byte.
  std::vector<StateChange> a, b;
  next.SnapshotAll(&a);
  reference.SnapshotAll(&b);
  auto of = [](const std::vector<StateChange>& rows, const std::string& rule) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& r : rows) {
      if (r.rule == rule) out.emplace_back(r.key, *r.bytes);
    }
    return out;
  };
  for (const std::string rule : {"hot", "odd"}) EXPECT_EQ(of(a, rule), of(b, rule)) << rule;
}

// Keys the old engine evicted since its last checkpoint keep their deletion row: a moved
// rule's in the new engine's changes, a dropped rule's in the handover.
TEST(EngineReload, PendingDeletionsSurviveTheReload) {
  const std::string idle = R"json({ "id": "idle", "source": { "metric": "t" },
    "group_by": ["device"], "window": { "type": "tumbling", "size": "1s" },
    "aggregates": { "n": "count()" }, "evict_after": "10s" })json";
  std::string other = idle;
  other.replace(other.find("\"idle\""), 6, "\"other\"");
  auto old = std::make_unique<Engine>("gw", Load({idle, other}));
  std::vector<Event> events;
  const Reading r{"t", {{"device", "a"}, {"metric", "t"}}, Millis(kT0), 1.0};
  old->Process(r, r.time, &events);
  std::vector<StateChange> taken;
  old->TakeChanges(&taken);
  ASSERT_EQ(taken.size(), 2u);
  ASSERT_TRUE(old->Advance(Millis(kT0 + 60'000), &events));  // both keys evicted
  Engine next("gw", Load({idle}));                           // `other` removed
  Engine::Handover h = next.TakeStateOf(*old);
  EXPECT_EQ(h.kept, 0u);
  EXPECT_TRUE(h.dropped_rules.empty());  // no key left
  ASSERT_EQ(h.deleted.size(), 1u);
  EXPECT_EQ(h.deleted[0].rule, "other");
  std::vector<StateChange> pending;
  next.TakeChanges(&pending);
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].rule, "idle");
  EXPECT_FALSE(pending[0].bytes);
}

}  // namespace
}  // namespace vigil::rules
