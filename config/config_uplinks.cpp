// `uplinks` (where events go: http, alertmanager, influxdb, mqtt) and `routes` (which events
// go to which uplinks).

#include <algorithm>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config_parse.h"
#include "config/text_template.h"

namespace vigil::config::parse {
namespace {

// Checks every string of a payload template (not object keys: they are sent as written).
void CheckTemplateValue(JsonReader& r, const json& v, const std::string& p, int depth) {
  constexpr int kMaxDepth = 32;
  if (depth > kMaxDepth) {
    r.Error(p, "nested deeper than " + std::to_string(kMaxDepth));
  } else if (v.is_string()) {
    std::string error;
    if (!ParseTextTemplate(v.get_ref<const std::string&>(), &error)) r.Error(p, error);
  } else if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      CheckTemplateValue(r, it.value(), p + "/" + it.key(), depth + 1);
    }
  } else if (v.is_array()) {
    for (std::size_t i = 0; i < v.size(); ++i) {
      CheckTemplateValue(r, v[i], p + "/" + std::to_string(i), depth + 1);
    }
  }
}

// `payload` of an mqtt uplink: the message body per alert state or kind.
void ReadActionPayload(JsonReader& r, const json& o, const std::string& p, std::string* payload) {
  const std::initializer_list<std::string_view> keys = {"firing", "resolved", "aggregate"};
  if (!o.is_object() || o.empty()) {
    r.Error(p, "must be an object with at least one of firing, resolved, aggregate");
    return;
  }
  const std::size_t errors = static_cast<std::size_t>(r.errors());
  for (auto it = o.begin(); it != o.end(); ++it) {
    const std::string ptr = p + "/" + it.key();
    if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) {
      const std::string hint = DidYouMean(it.key(), keys);
      r.Error(ptr, "unknown key \"" + it.key() + "\"" +
                       (hint.empty() ? std::string() : " (did you mean \"" + hint + "\"?)") +
                       "; the keys are firing, resolved, aggregate");
    } else if (it->is_null()) {
      r.Error(ptr, "must be an object, list, string, number or boolean (leave " + it.key() +
                       " out to send nothing)");
    } else {
      CheckTemplateValue(r, it.value(), ptr, 1);
    }
  }
  if (static_cast<std::size_t>(r.errors()) == errors) *payload = o.dump();
}

// `headers` of uplink object `o` (at `p`): name → string.
void ReadHeaders(JsonReader& r, const json& o, const std::string& p,
                 std::vector<std::pair<std::string, std::string>>* headers) {
  if (auto h = o.find("headers"); h != o.end()) {
    if (!h->is_object()) r.Error(p + "/headers", "must be an object of strings");
    for (auto it = h->begin(); h->is_object() && it != h->end(); ++it) {
      if (!it->is_string()) {
        r.Error(p + "/headers/" + it.key(), "must be a string");
      } else {
        headers->emplace_back(it.key(), it->get<std::string>());
      }
    }
  }
}

// `batch` of uplink object `o` (at `p`): max_events, max_delay.
void ReadBatch(JsonReader& r, const json& o, const std::string& p, UplinkConfig* u) {
  if (auto b = o.find("batch"); b != o.end()) {
    std::string bp = p + "/batch";
    if (r.CheckObject(*b, bp, {"max_events", "max_delay"})) {
      std::int64_t n = static_cast<std::int64_t>(u->batch_max_events);
      r.Int(*b, "max_events", bp, 1, 100000, &n);
      u->batch_max_events = static_cast<std::size_t>(n);
      r.Duration(*b, "max_delay", bp, &u->batch_max_delay);
    }
  }
}

// `retry` of uplink object `o` (at `p`): initial > 0, max ≥ initial.
void ReadRetry(JsonReader& r, const json& o, const std::string& p, UplinkConfig* u) {
  if (auto rt = o.find("retry"); rt != o.end()) {
    std::string rp = p + "/retry";
    if (r.CheckObject(*rt, rp, {"initial", "max"})) {
      r.Duration(*rt, "initial", rp, &u->retry_initial);
      r.Duration(*rt, "max", rp, &u->retry_max);
      if (u->retry_initial.count() <= 0) r.Error(rp + "/initial", "must be more than 0");
      if (u->retry_max < u->retry_initial) r.Error(rp + "/max", "must be at least initial");
    }
  }
}

// Every key of an uplink object as read, whichever type it belongs to: each is read and
// checked alike for any type (so the diagnostics keep one order, and a key of another type
// stays allowed), then the uplink keeps those of its type.
struct UplinkKeys {
  std::string type;
  std::string url;
  std::string uri;
  std::vector<std::pair<std::string, std::string>> headers;
  bool gzip = false;
  std::string topic = MqttUplink{}.topic;
  int qos = MqttUplink{}.qos;
  std::string username;
  std::string password;
  std::string payload;
  bool retain = false;
};

// The secrets among an uplink's keys (Config::secrets), those of other types too: the
// password, the URLs', the authorization-like headers'.
void UplinkSecrets(const UplinkKeys& k, std::vector<std::string>* secrets) {
  secrets->push_back(k.password);
  UrlSecrets(k.url, secrets);
  UrlSecrets(k.uri, secrets);
  HeaderSecrets(k.headers, secrets);
}

// The type's part of the uplink: the keys only it has. An unknown type (an error already)
// leaves the default.
void KeepTypeKeys(UplinkKeys&& k, UplinkConfig* u) {
  if (k.type == HttpUplink::kType) {
    u->type = HttpUplink{.url = std::move(k.url), .headers = std::move(k.headers), .gzip = k.gzip};
  } else if (k.type == AlertmanagerUplink::kType) {
    u->type = AlertmanagerUplink{.url = std::move(k.url), .headers = std::move(k.headers)};
  } else if (k.type == InfluxUplink::kType) {
    u->type =
        InfluxUplink{.url = std::move(k.url), .headers = std::move(k.headers), .gzip = k.gzip};
  } else if (k.type == MqttUplink::kType) {
    u->type = MqttUplink{.uri = std::move(k.uri),
                         .topic = std::move(k.topic),
                         .qos = k.qos,
                         .username = std::move(k.username),
                         .password = std::move(k.password),
                         .payload = std::move(k.payload),
                         .retain = k.retain};
  }
}

// Uplink object `o` at pointer `p`; its secrets appended to *secrets.
void ReadUplink(JsonReader& r, const json& o, const std::string& p, const std::string& dir,
                UplinkConfig* u, std::vector<std::string>* secrets) {
  if (!r.CheckObject(o, p,
                     {"name", "type", "url", "headers", "batch", "retry", "timeout", "gzip", "tls",
                      "uri", "topic", "qos", "username", "password", "payload", "retain"})) {
    return;
  }
  UplinkKeys k;
  r.String(o, "name", p, &u->name);
  if (u->name.empty()) r.Error(p + "/name", "an uplink needs a name");
  r.String(o, "type", p, &k.type);
  const bool mqtt = k.type == MqttUplink::kType;
  if (k.type != HttpUplink::kType && k.type != AlertmanagerUplink::kType &&
      k.type != InfluxUplink::kType && !mqtt) {
    r.Error(p + "/type",
            "unknown uplink type \"" + k.type + "\" (http, alertmanager, influxdb, mqtt)");
  }
  r.String(o, "url", p, &k.url);
  r.String(o, "uri", p, &k.uri);
  if (mqtt ? k.uri.empty() : k.url.empty()) r.Error(p + (mqtt ? "/uri" : "/url"), "missing");
  ReadHeaders(r, o, p, &k.headers);
  ReadBatch(r, o, p, u);
  ReadRetry(r, o, p, u);
  r.Duration(o, "timeout", p, &u->timeout);
  r.Bool(o, "gzip", p, &k.gzip);
  if (o.contains("tls")) {
    ReadTls(r, o["tls"], p + "/tls", dir, &u->tls);
    if (mqtt && !k.uri.empty()) CheckMqttTls(r, p + "/tls", k.uri);
  }
  r.String(o, "topic", p, &k.topic);
  std::int64_t qos = k.qos;
  r.Int(o, "qos", p, 0, 2, &qos);
  k.qos = static_cast<int>(qos);
  r.String(o, "username", p, &k.username);
  r.String(o, "password", p, &k.password);
  for (const char* key : {"payload", "retain"}) {
    if (o.contains(key) && !mqtt) r.Error(p + "/" + key, "only for mqtt uplinks");
  }
  if (auto pl = o.find("payload"); pl != o.end()) {
    ReadActionPayload(r, *pl, p + "/payload", &k.payload);
  }
  r.Bool(o, "retain", p, &k.retain);
  UplinkSecrets(k, secrets);
  KeepTypeKeys(std::move(k), u);
}

// Route object `ro` at pointer `p`; nullopt when it is not an object.
std::optional<RouteConfig> ReadRoute(JsonReader& r, const json& ro, const std::string& p,
                                     const std::vector<UplinkConfig>& uplinks) {
  if (!r.CheckObject(ro, p, {"kinds", "rules", "severities", "to"})) return std::nullopt;
  RouteConfig rc;
  rc.kinds = ReadStrings(r, ro, "kinds", p);
  for (const auto& k : rc.kinds) {
    if (k != "alert" && k != "aggregate") {
      r.Error(p + "/kinds", "unknown kind \"" + k + "\" (alert, aggregate)");
    }
  }
  rc.rules = ReadStrings(r, ro, "rules", p);
  rc.severities = ReadStrings(r, ro, "severities", p);
  rc.to = ReadStrings(r, ro, "to", p);
  if (rc.to.empty()) r.Error(p + "/to", "a route needs at least one uplink");
  for (const auto& name : rc.to) {
    bool known = false;
    for (const auto& up : uplinks) known = known || up.name == name;
    if (!known) r.Error(p + "/to", "unknown uplink \"" + name + "\"");
  }
  return rc;
}

}  // namespace

void ReadUplinks(JsonReader& r, const json& root, const std::string& dir,
                 std::vector<UplinkConfig>* uplinks, std::vector<std::string>* secrets) {
  auto u = root.find("uplinks");
  if (u == root.end()) return;
  if (!u->is_array()) r.Error("/uplinks", "must be a list");
  for (std::size_t i = 0; u->is_array() && i < u->size(); ++i) {
    UplinkConfig up;
    std::string p = "/uplinks/" + std::to_string(i);
    ReadUplink(r, (*u)[i], p, dir, &up, secrets);
    for (const auto& other : *uplinks) {
      if (other.name == up.name) r.Error(p + "/name", "duplicate uplink \"" + up.name + "\"");
    }
    uplinks->push_back(std::move(up));
  }
}

void ReadRoutes(JsonReader& r, const json& root, const std::vector<UplinkConfig>& uplinks,
                std::vector<RouteConfig>* routes) {
  auto found = root.find("routes");
  if (found == root.end()) return;
  if (!found->is_array()) r.Error("/routes", "must be a list");
  for (std::size_t i = 0; found->is_array() && i < found->size(); ++i) {
    auto route = ReadRoute(r, (*found)[i], "/routes/" + std::to_string(i), uplinks);
    if (route) routes->push_back(std::move(*route));
  }
}

}  // namespace vigil::config::parse
