#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace vigil::uplink {

// The message body an `mqtt` uplink with a `payload` template sends for one event
// (uplink/README.md "Actions"). `payload_template` is UplinkConfig::payload: a JSON object
// whose keys are `firing`, `resolved` (alert states) and `aggregate` (the kind), each the
// body for such events; `event_json` is the event (SPEC §6).
//
// nullopt when the template has no entry for the event (or either text is not what the
// config loader and the engine make): the event is not sent. Otherwise the entry with every
// `{name}` in its strings (recursively; object keys as written) replaced by the event's
// `agent`, `rule`, `kind`, `state`, `severity`, `summary`, `alert_id`, `id`, `time`, a key
// tag by name, or `values.<aggregate>` (as JSON prints it); unknown names by nothing. A
// string that is exactly one placeholder of a number, boolean or null becomes that JSON
// value. `{{` and `}}` are literal braces. An entry that is a string is sent as its text;
// any other as compact JSON. Pure: no I/O, thread-safe.
std::optional<std::string> RenderPayload(std::string_view payload_template,
                                         std::string_view event_json);

}  // namespace vigil::uplink
