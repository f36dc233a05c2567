#include "uplink/payload_template.h"

#include <array>
#include <nlohmann/json.hpp>
#include <vector>

#include "config/text_template.h"
#include "rules/event.h"

namespace vigil::uplink {
namespace {

using nlohmann::json;

// The event's value a placeholder names; null pointer when it has none.
const json* Lookup(const json& event, const std::string& name) {
  static constexpr std::array<std::string_view, 9> kFields = {
      "agent", "rule", "kind", "state", "severity", "summary", "alert_id", "id", "time"};
  auto member = [](const json& object, const std::string& key) -> const json* {
    if (!object.is_object()) return nullptr;
    auto it = object.find(key);
    return it == object.end() ? nullptr : &*it;
  };
  for (std::string_view field : kFields) {
    if (name == field) return member(event, name);
  }
  constexpr std::string_view kValues = "values.";
  if (name.size() > kValues.size() && name.compare(0, kValues.size(), kValues) == 0) {
    if (const json* values = member(event, "values")) {
      return member(*values, name.substr(kValues.size()));
    }
    return nullptr;
  }
  if (const json* key = member(event, "key")) return member(*key, name);
  return nullptr;
}

// A value inside a longer string: strings as they are, numbers, booleans and null as JSON.
std::string Text(const json* value) {
  if (value == nullptr || value->is_object() || value->is_array()) return "";
  if (value->is_string()) return value->get<std::string>();
  return value->dump();
}

json RenderString(const std::string& text, const json& event) {
  std::string error;
  std::optional<std::vector<config::TextPiece>> pieces = config::ParseTextTemplate(text, &error);
  if (!pieces) return text;  // the loader refuses such templates
  using Kind = config::TextPiece::Kind;
  if (pieces->size() == 1 && pieces->front().kind == Kind::kPlaceholder) {
    const json* value = Lookup(event, pieces->front().text);
    if (value != nullptr && (value->is_number() || value->is_boolean() || value->is_null())) {
      return *value;
    }
  }
  std::string out;
  for (const auto& piece : *pieces) {
    out += piece.kind == Kind::kLiteral ? piece.text : Text(Lookup(event, piece.text));
  }
  return out;
}

json Render(const json& node, const json& event) {
  if (node.is_string()) return RenderString(node.get_ref<const std::string&>(), event);
  if (node.is_object()) {
    json out = json::object();
    for (auto it = node.begin(); it != node.end(); ++it) out[it.key()] = Render(*it, event);
    return out;
  }
  if (node.is_array()) {
    json out = json::array();
    for (const auto& element : node) out.push_back(Render(element, event));
    return out;
  }
  return node;
}

}  // namespace

std::optional<std::string> RenderPayload(std::string_view payload_template,
                                         std::string_view event_json) {
  const json tmpl = json::parse(payload_template, nullptr, false);
  const json event = json::parse(event_json, nullptr, false);
  if (!tmpl.is_object() || !event.is_object()) return std::nullopt;
  // Alerts by state, aggregates by kind.
  const std::optional<rules::EventKind> kind = rules::ParseEventKind(Text(Lookup(event, "kind")));
  const std::optional<rules::EventState> state =
      rules::ParseEventState(Text(Lookup(event, "state")));
  std::string entry;
  if (kind == rules::EventKind::kAlert && state) {
    entry = rules::EventStateName(*state);
  } else if (kind == rules::EventKind::kAggregate) {
    entry = rules::EventKindName(*kind);
  }
  auto it = entry.empty() ? tmpl.end() : tmpl.find(entry);
  if (it == tmpl.end()) return std::nullopt;
  json body = Render(*it, event);
  if (body.is_string()) return body.get<std::string>();
  // Tag values and summaries may hold bytes that are not UTF-8: replaced, not thrown on.
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace vigil::uplink
