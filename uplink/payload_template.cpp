#include "uplink/payload_template.h"

#include <array>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "config/text_template.h"
#include "rules/event.h"

namespace vigil::uplink {
namespace {

using config::TextPiece;
using config::TextTemplate;
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

// JSON text with the replacement of bytes that are not UTF-8 (tag values and summaries may
// hold them): replaced, not thrown on.
std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

// One JSON value of an entry, compiled.
struct PayloadTemplate::Node {
  enum class Kind { kJson, kString, kArray, kObject };
  Kind kind = Kind::kJson;
  std::string literal;            // kJson: a number, boolean or null as compact JSON
  TextTemplate text;              // kString
  std::vector<std::string> keys;  // kObject: each member's key as a JSON string, quoted
  std::vector<Node> children;     // kArray: the elements; kObject: the members' values

  static Node Compile(const json& value);
  // A string's value when it is exactly one placeholder of a number, boolean or null.
  const json* Typed(const json& event) const;
  // Appends the node as compact JSON.
  void WriteJson(const json& event, std::string* out) const;
  // The body for an entry that is this node.
  std::string Body(const json& event) const;
};

PayloadTemplate::Node PayloadTemplate::Node::Compile(const json& value) {
  Node node;
  if (value.is_string()) {
    node.kind = Kind::kString;
    const std::string& s = value.get_ref<const std::string&>();
    auto parsed = TextTemplate::Parse(s, TextTemplate::Syntax::kStrict);
    // The loader refuses such templates: the text as it is.
    node.text = parsed.ok() ? std::move(parsed).value() : TextTemplate::Literal(s);
  } else if (value.is_object()) {
    node.kind = Kind::kObject;
    for (auto it = value.begin(); it != value.end(); ++it) {  // in name order
      node.keys.push_back(Dump(json(it.key())));
      node.children.push_back(Compile(*it));
    }
  } else if (value.is_array()) {
    node.kind = Kind::kArray;
    for (const auto& element : value) node.children.push_back(Compile(element));
  } else {
    node.literal = Dump(value);
  }
  return node;
}

const json* PayloadTemplate::Node::Typed(const json& event) const {
  const TextPiece* sole = text.sole_placeholder();
  if (sole == nullptr) return nullptr;
  const json* value = Lookup(event, sole->text);
  if (value != nullptr && (value->is_number() || value->is_boolean() || value->is_null())) {
    return value;
  }
  return nullptr;
}

namespace {

// The lookup of a payload string's placeholders in `event`.
auto EventLookup(const json& event) {
  return [&event](const TextPiece& placeholder, std::string* value) {
    const json* found = Lookup(event, placeholder.text);
    if (found == nullptr) return false;
    *value += Text(found);
    return true;
  };
}

}  // namespace

void PayloadTemplate::Node::WriteJson(const json& event, std::string* out) const {
  switch (kind) {
    case Kind::kJson:
      out->append(literal);
      return;
    case Kind::kString:
      if (const json* typed = Typed(event)) {
        out->append(Dump(*typed));
      } else {
        out->push_back('"');
        text.Render(EventLookup(event), TextTemplate::Escape::kJsonString,
                    TextTemplate::Unknown::kEmpty, out);
        out->push_back('"');
      }
      return;
    case Kind::kArray:
      out->push_back('[');
      for (std::size_t i = 0; i < children.size(); ++i) {
        if (i > 0) out->push_back(',');
        children[i].WriteJson(event, out);
      }
      out->push_back(']');
      return;
    case Kind::kObject:
      out->push_back('{');
      for (std::size_t i = 0; i < children.size(); ++i) {
        if (i > 0) out->push_back(',');
        out->append(keys[i]).push_back(':');
        children[i].WriteJson(event, out);
      }
      out->push_back('}');
      return;
  }
}

std::string PayloadTemplate::Node::Body(const json& event) const {
  if (kind == Kind::kString && Typed(event) == nullptr) {
    return text.Render(EventLookup(event), TextTemplate::Escape::kPlain,
                       TextTemplate::Unknown::kEmpty);
  }
  std::string out;
  WriteJson(event, &out);
  return out;
}

struct PayloadTemplate::Entries {
  // By state for alerts, by kind for aggregates; nullopt: no entry, nothing sent.
  std::optional<Node> firing;
  std::optional<Node> resolved;
  std::optional<Node> aggregate;
};

PayloadTemplate::PayloadTemplate(std::string_view payload_template) {
  const json tmpl = json::parse(payload_template, nullptr, false);
  if (!tmpl.is_object()) return;
  auto entries = std::make_unique<Entries>();
  auto compile = [&tmpl](const std::string& key, std::optional<Node>* entry) {
    if (auto it = tmpl.find(key); it != tmpl.end()) *entry = Node::Compile(*it);
  };
  compile(rules::EventStateName(rules::EventState::kFiring), &entries->firing);
  compile(rules::EventStateName(rules::EventState::kResolved), &entries->resolved);
  compile(rules::EventKindName(rules::EventKind::kAggregate), &entries->aggregate);
  entries_ = std::move(entries);
}

PayloadTemplate::~PayloadTemplate() = default;
PayloadTemplate::PayloadTemplate(PayloadTemplate&&) noexcept = default;
PayloadTemplate& PayloadTemplate::operator=(PayloadTemplate&&) noexcept = default;

std::optional<std::string> PayloadTemplate::Render(std::string_view event_json) const {
  if (!entries_) return std::nullopt;
  const json event = json::parse(event_json, nullptr, false);
  if (!event.is_object()) return std::nullopt;
  // Alerts by state, aggregates by kind.
  const std::optional<rules::EventKind> kind = rules::ParseEventKind(Text(Lookup(event, "kind")));
  const std::optional<rules::EventState> state =
      rules::ParseEventState(Text(Lookup(event, "state")));
  const std::optional<Node>* entry = nullptr;
  if (kind == rules::EventKind::kAlert && state == rules::EventState::kFiring) {
    entry = &entries_->firing;
  } else if (kind == rules::EventKind::kAlert && state == rules::EventState::kResolved) {
    entry = &entries_->resolved;
  } else if (kind == rules::EventKind::kAggregate) {
    entry = &entries_->aggregate;
  }
  if (entry == nullptr || !entry->has_value()) return std::nullopt;
  return (*entry)->Body(event);
}

std::optional<std::string> RenderPayload(std::string_view payload_template,
                                         std::string_view event_json) {
  return PayloadTemplate(payload_template).Render(event_json);
}

}  // namespace vigil::uplink
