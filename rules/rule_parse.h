#pragma once

// The section parsers of a rule object (SPEC §3), used by rule_loader.cpp's ParseRule; not a
// public interface. Each reads one part of the rule object into a CompiledRule and records
// every problem in the JsonReader (file, JSON pointer and, inside an expression, the column);
// none stops at the first problem, and none returns an error: the caller knows a rule is bad
// from JsonReader::errors(). `o` is the rule object, `p` its JSON pointer ("" or "/2").
//
// ParseRule calls them in this order, which is the order of the diagnostics, and each may read
// what the earlier ones filled in:
//   ParseSource → ParseGroupBy → ParseDetector → ParseWindow → ParseAggregates → ParseEmit →
//   ParseAlert → CheckRuleShape → ParseOutput → ParseMaxKeys → SetEviction (no error so far).

#include <memory>
#include <string>

#include "config/config.h"
#include "config/json_reader.h"  // nlohmann::json, for the loaders
#include "rules/expr.h"
#include "rules/rule.h"

namespace vigil::rules::parse {

using config::JsonReader;
using config::RuleLimits;
using nlohmann::json;

// --- Shared by the section parsers (rule_parse.cpp) -----------------------------------------

// An expression longer than rules.max_expression_bytes: an error at `pointer` (true).
bool TooLong(JsonReader& r, const std::string& text, const std::string& pointer,
             const RuleLimits& limits);

// Compiles `text` against `scope`; a condition must be boolean, anything else a number. On any
// problem an error at `pointer` ("col N: …") and nullptr.
std::shared_ptr<const Expr> CompileAt(JsonReader& r, const std::string& text,
                                      const std::string& pointer, const Scope& scope,
                                      bool condition, const RuleLimits& limits);

// The names of a reading's expressions (`where`, aggregate arguments): `value`, or the two
// values of a join by metric name; the configured tables' columns. Reads rule.join.
Scope ReadingScope(const CompiledRule& rule, const RuleLimits& limits);

// --- Sections, in ParseRule's order ---------------------------------------------------------

// `source` (rule_parse_source.cpp): `metric` (a name or a list) or `join` (JoinSpec), and
// `where`. Fills rule->metrics, rule->join and rule->where. A missing source is an error.
// *join_lateness_given: whether `source.join.lateness` was written (else CheckRuleShape takes
// the window's).
void ParseSource(JsonReader& r, const json& o, const std::string& p, const RuleLimits& limits,
                 CompiledRule* rule, bool* join_lateness_given);

// `group_by` (rule_parse_source.cpp): sorted, unique tag names; absent: every tag. A join's
// rule groups by its `on` tags (a different group_by is an error). Reads rule->join.
void ParseGroupBy(JsonReader& r, const json& o, const std::string& p, CompiledRule* rule);

// `detector` (rule_parse_detector.cpp), if present: method, its parameters and their defaults
// (SPEC §4, §12.19–12.20) into rule->detector.
void ParseDetector(JsonReader& r, const json& o, const std::string& p, CompiledRule* rule);

// `window` (rule_parse_window.cpp): the type and its fields, from one table of window types.
// Absent: rule->has_window false, an error unless the rule has a detector.
void ParseWindow(JsonReader& r, const json& o, const std::string& p, CompiledRule* rule);

// `aggregates` (rule_parse_aggregate.cpp): name → call, each into rule->aggregates (in name
// order); arguments compiled against ReadingScope. A bad name or call is an error and skipped.
void ParseAggregates(JsonReader& r, const json& o, const std::string& p, const RuleLimits& limits,
                     CompiledRule* rule);

// `emit` (rule_parse_alert.cpp), if present: rule->emit_alert / emit_aggregate as written
// (the defaults are ParseAlert's). Returns whether `emit` was written.
bool ParseEmit(JsonReader& r, const json& o, const std::string& p, CompiledRule* rule);

// `alert` (rule_parse_alert.cpp): conditions compiled over the aggregates, the detector's
// outputs and the key tags; the summary's placeholders checked. Without an alert section: a
// detector alerts on `anomaly`, other rules emit their aggregates. `emit_given`: ParseEmit's.
void ParseAlert(JsonReader& r, const json& o, const std::string& p, const RuleLimits& limits,
                bool emit_given, CompiledRule* rule);

// What no single section can check (rule_parse.cpp): aggregates need a window and a window
// aggregates; a detector beside a window watches one of them (never `absent`); a join needs a
// window, and takes the window's lateness unless `join_lateness_given`.
void CheckRuleShape(JsonReader& r, const std::string& p, bool join_lateness_given,
                    CompiledRule* rule);

// `output` (rule_parse_alert.cpp), if present: a closed window's aggregate as a derived metric.
void ParseOutput(JsonReader& r, const json& o, const std::string& p, CompiledRule* rule);

// `max_keys` (rule_parse.cpp), if present.
void ParseMaxKeys(JsonReader& r, const json& o, const std::string& p, CompiledRule* rule);

// `evict_after` (rule_parse.cpp) and rule->quiet: what eviction may drop, from everything
// above (call it only for a rule without errors).
void SetEviction(JsonReader& r, const json& o, const std::string& p, const RuleLimits& limits,
                 CompiledRule* rule);

}  // namespace vigil::rules::parse
