#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace vigil::uplink {

// The message bodies of an `mqtt` uplink with a `payload` template (uplink/README.md
// "Actions"), compiled once from UplinkConfig's MqttUplink::payload: a JSON object whose keys
// are `firing`, `resolved` (alert states) and `aggregate` (the kind), each the body for such
// events, every string of it a config::TextTemplate (kStrict syntax).
//
// Render(event_json), for an event (SPEC §6): nullopt when the template has no entry for the
// event (or either text is not what the config loader and the engine make): the event is not
// sent. Otherwise the entry with every `{name}` in its strings (recursively; object keys as
// written) replaced by the event's `agent`, `rule`, `kind`, `state`, `severity`, `summary`,
// `alert_id`, `id`, `time`, a key tag by name, or `values.<aggregate>` (as JSON prints it);
// unknown names by nothing. A string that is exactly one placeholder of a number, boolean or
// null becomes that JSON value. `{{` and `}}` are literal braces. An entry that is a string
// is sent as its text; any other as compact JSON, object keys in name order. Immutable:
// Render is thread-safe.
class PayloadTemplate {
 public:
  explicit PayloadTemplate(std::string_view payload_template);
  ~PayloadTemplate();
  PayloadTemplate(PayloadTemplate&&) noexcept;
  PayloadTemplate& operator=(PayloadTemplate&&) noexcept;

  std::optional<std::string> Render(std::string_view event_json) const;

 private:
  struct Node;                              // one JSON value of an entry
  struct Entries;                           // the entries by state or kind
  std::unique_ptr<const Entries> entries_;  // null: a template that is not a JSON object
};

// PayloadTemplate(payload_template).Render(event_json): the template compiled for one event.
std::optional<std::string> RenderPayload(std::string_view payload_template,
                                         std::string_view event_json);

}  // namespace vigil::uplink
