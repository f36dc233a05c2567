// Rule files (SPEC §3) → CompiledRule. Every problem is reported with file, JSON pointer and,
// inside an expression, the column. ParseRule reads a rule object section by section with the
// parsers of rule_parse.h; this file holds what is about files and rule sets: ids, the order
// of derived streams, limits on files.

#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>

#include "config/json_reader.h"
#include "rules/engine.h"
#include "rules/rule.h"
#include "rules/rule_loader.h"
#include "rules/rule_parse.h"

namespace vigil::rules {
namespace {

using config::JsonReader;
using config::RuleLimits;
using nlohmann::json;

bool ValidId(const std::string& id) {
  static const std::regex kId("^[a-z0-9][a-z0-9_.-]*$");
  return std::regex_match(id, kId);
}

// `id` and `description`, and what identifies the rule: its file, pointer and fingerprint.
void ParseIdentity(JsonReader& r, const json& o, const std::string& p, CompiledRule* rule) {
  rule->file = r.file();
  rule->pointer = p;
  rule->fingerprint = StableHash({o.dump()});
  r.String(o, "id", p, &rule->id);
  r.String(o, "description", p, &rule->description);
  if (rule->id.empty()) {
    r.Error(p + "/id", "a rule needs an id");
  } else if (!ValidId(rule->id)) {
    r.Error(p + "/id", "\"" + rule->id + "\" is not a valid id ([a-z0-9][a-z0-9_.-]*)");
  }
}

// One rule object `o` at pointer `p`: appended to set->rules when it has no error. The order
// of the sections is the order of the diagnostics (rule_parse.h).
void ParseRule(JsonReader& r, const json& o, const std::string& p, const RuleLimits& limits,
               RuleSet* set) {
  if (!r.CheckObject(o, p,
                     {"id", "description", "source", "group_by", "window", "aggregates", "alert",
                      "detector", "emit", "output", "max_keys", "evict_after"})) {
    return;
  }
  const int errors_before = r.errors();
  CompiledRule rule;
  bool join_lateness_given = false;
  ParseIdentity(r, o, p, &rule);
  parse::ParseSource(r, o, p, limits, &rule, &join_lateness_given);
  parse::ParseGroupBy(r, o, p, &rule);
  parse::ParseDetector(r, o, p, &rule);
  parse::ParseWindow(r, o, p, &rule);
  parse::ParseAggregates(r, o, p, limits, &rule);
  const bool emit_given = parse::ParseEmit(r, o, p, &rule);
  parse::ParseAlert(r, o, p, limits, emit_given, &rule);
  parse::CheckRuleShape(r, p, join_lateness_given, &rule);
  parse::ParseOutput(r, o, p, &rule);
  parse::ParseMaxKeys(r, o, p, &rule);
  if (r.errors() != errors_before) return;
  parse::SetEviction(r, o, p, limits, &rule);
  if (r.errors() != errors_before) return;
  set->rules.push_back(std::make_shared<const CompiledRule>(std::move(rule)));
}

void ParseInto(std::string_view text, const std::string& file, const RuleLimits& limits,
               RuleSet* set, config::Diagnostics* diagnostics) {
  JsonReader r(file, diagnostics);
  auto doc = r.Parse(text);
  if (!doc) return;
  if (doc->is_array()) {
    for (std::size_t i = 0; i < doc->size(); ++i) {
      ParseRule(r, (*doc)[i], "/" + std::to_string(i), limits, set);
    }
  } else if (doc->is_object()) {
    ParseRule(r, *doc, "", limits, set);
  } else {
    r.Error("", "a rule file holds one rule object or an array of them");
  }
}

// Orders the rules so that a rule comes after every rule whose `output` it reads (file order
// otherwise), which is the order the engine closes windows in at the end of a replay. A
// cycle is an error naming its rules.
void OrderByDerivedStreams(RuleSet* set, config::Diagnostics* diagnostics) {
  const auto& rules = set->rules;
  const std::size_t n = rules.size();
  // inputs[b]: the rules whose output b reads.
  std::vector<std::vector<std::size_t>> inputs(n);
  bool any = false;
  for (std::size_t a = 0; a < n; ++a) {
    if (!rules[a]->output) continue;
    any = true;
    for (std::size_t b = 0; b < n; ++b) {
      const auto& metrics = rules[b]->metrics;
      if (std::find(metrics.begin(), metrics.end(), rules[a]->output->metric) != metrics.end()) {
        inputs[b].push_back(a);
      }
    }
  }
  if (!any) return;
  std::vector<std::shared_ptr<const CompiledRule>> ordered;
  std::vector<bool> placed(n, false);
  while (ordered.size() < n) {
    std::size_t next = n;
    for (std::size_t b = 0; b < n && next == n; ++b) {
      if (placed[b]) continue;
      if (std::all_of(inputs[b].begin(), inputs[b].end(),
                      [&](std::size_t a) { return placed[a]; })) {
        next = b;
      }
    }
    if (next == n) break;  // every rule left waits for another: a cycle
    placed[next] = true;
    ordered.push_back(rules[next]);
  }
  if (ordered.size() == n) {
    set->rules = std::move(ordered);
    return;
  }
  // Walk back from a rule left over through inputs left over until one repeats.
  std::size_t at = 0;
  while (placed[at]) ++at;
  std::vector<std::size_t> path;
  while (std::find(path.begin(), path.end(), at) == path.end()) {
    path.push_back(at);
    for (std::size_t a : inputs[at]) {
      if (!placed[a]) {
        at = a;
        break;
      }
    }
  }
  // path ends in the cycle: from `at` back to `at`, as producer → consumer.
  std::vector<std::size_t> cycle(std::find(path.begin(), path.end(), at), path.end());
  std::reverse(cycle.begin(), cycle.end());
  std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
  std::string text;
  for (std::size_t i : cycle) {
    text += rules[i]->id + " (" + rules[i]->output->metric + ") → ";
  }
  text += rules[cycle.front()]->id;
  diagnostics->push_back({rules[cycle.front()]->file,
                          rules[cycle.front()]->pointer + "/output/metric",
                          "rules read each other's output in a cycle: " + text});
}

LoadResult Finish(RuleSet set, config::Diagnostics diagnostics, const RuleLimits& limits) {
  set.max_keys_total = limits.max_keys_total;
  std::set<std::string> seen;
  for (const auto& rule : set.rules) {
    if (!seen.insert(rule->id).second) {
      diagnostics.push_back(
          {rule->file, rule->pointer + "/id", "duplicate rule id \"" + rule->id + "\""});
    }
  }
  if (diagnostics.empty()) OrderByDerivedStreams(&set, &diagnostics);
  LoadResult result;
  result.diagnostics = std::move(diagnostics);
  if (result.diagnostics.empty()) result.rules = std::make_shared<const RuleSet>(std::move(set));
  return result;
}

}  // namespace

std::vector<std::string> RuleSet::ids() const {
  std::vector<std::string> out;
  for (const auto& r : rules) out.push_back(r->id);
  return out;
}

LoadResult ParseRules(std::string_view text, const std::string& file) {
  return ParseRules(text, file, RuleLimits{});
}

LoadResult ParseRules(std::string_view text, const std::string& file, const RuleLimits& limits) {
  RuleSet set;
  config::Diagnostics diagnostics;
  if (text.size() > limits.max_file_bytes) {
    diagnostics.push_back({file, "",
                           "the file is " + std::to_string(text.size()) +
                               " bytes; rules.max_file_bytes is " +
                               std::to_string(limits.max_file_bytes)});
  } else {
    ParseInto(text, file, limits, &set, &diagnostics);
  }
  return Finish(std::move(set), std::move(diagnostics), limits);
}

LoadResult LoadRules(const std::vector<std::string>& paths) {
  return LoadRules(paths, RuleLimits{});
}

LoadResult LoadRules(const std::vector<std::string>& paths, const RuleLimits& limits) {
  namespace fs = std::filesystem;
  RuleSet set;
  config::Diagnostics diagnostics;
  std::size_t files_read = 0;
  for (const auto& path : paths) {
    std::error_code ec;
    std::vector<std::string> files;
    if (fs::is_directory(path, ec)) {
      for (const auto& entry : fs::directory_iterator(path, ec)) {
        if (entry.path().extension() == ".json" && !entry.is_directory()) {
          files.push_back(entry.path().string());
        }
      }
      std::sort(files.begin(), files.end());
    } else if (fs::exists(path, ec)) {
      files.push_back(path);
    } else {
      diagnostics.push_back({path, "", "no such rule file or folder"});
      continue;
    }
    for (const auto& file : files) {
      if (++files_read > limits.max_files) {
        diagnostics.push_back(
            {path, "",
             "more than " + std::to_string(limits.max_files) + " rule files (rules.max_files)"});
        return Finish(std::move(set), std::move(diagnostics), limits);
      }
      // The size first: a huge file is refused without being read, and so is anything but
      // a regular file (a device or a pipe might never end).
      std::error_code size_error;
      const auto size = fs::file_size(file, size_error);
      if (size_error) {
        diagnostics.push_back({file, "", "cannot read the rule file (not a regular file)"});
        continue;
      }
      if (size > limits.max_file_bytes) {
        diagnostics.push_back({file, "",
                               "the file is " + std::to_string(size) +
                                   " bytes; rules.max_file_bytes is " +
                                   std::to_string(limits.max_file_bytes)});
        continue;
      }
      std::optional<std::string> text = config::ReadFile(file);
      if (!text) {
        diagnostics.push_back({file, "", "cannot read the rule file"});
        continue;
      }
      if (text->size() > limits.max_file_bytes) {
        diagnostics.push_back({file, "",
                               "the file is " + std::to_string(text->size()) +
                                   " bytes; rules.max_file_bytes is " +
                                   std::to_string(limits.max_file_bytes)});
        continue;
      }
      ParseInto(*text, file, limits, &set, &diagnostics);
    }
  }
  return Finish(std::move(set), std::move(diagnostics), limits);
}

}  // namespace vigil::rules
