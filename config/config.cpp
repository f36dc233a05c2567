#include "config/config.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "config/json_reader.h"
#include "config/text_template.h"

namespace vigil::config {
namespace {

using nlohmann::json;

std::string Resolve(const std::string& dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || dir.empty()) return path;
  return dir + "/" + path;
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "vigil";
  return buf;
}

// Substitutes ${env:}/${file:} in every string of the document, in place; each value
// substituted is a secret.
void SubstituteAll(json& node, const std::string& pointer, const std::string& dir,
                   JsonReader* reader, std::vector<std::string>* secrets) {
  if (node.is_string()) {
    const std::string& text = node.get_ref<const std::string&>();
    if (text.find("${") == std::string::npos) return;
    Result<std::string> r = Substitute(text, dir, secrets);
    if (r.ok()) {
      node = r.value();
    } else {
      reader->Error(pointer, r.error());
    }
  } else if (node.is_object()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      SubstituteAll(it.value(), pointer + "/" + it.key(), dir, reader, secrets);
    }
  } else if (node.is_array()) {
    for (std::size_t i = 0; i < node.size(); ++i) {
      SubstituteAll(node[i], pointer + "/" + std::to_string(i), dir, reader, secrets);
    }
  }
}

void ReadTls(JsonReader& r, const json& o, const std::string& p, const std::string& dir,
             TlsConfig* tls) {
  if (!r.CheckObject(o, p, {"ca_file", "cert_file", "key_file", "insecure_skip_verify"})) return;
  r.String(o, "ca_file", p, &tls->ca_file);
  r.String(o, "cert_file", p, &tls->cert_file);
  r.String(o, "key_file", p, &tls->key_file);
  r.Bool(o, "insecure_skip_verify", p, &tls->insecure_skip_verify);
  tls->ca_file = Resolve(dir, tls->ca_file);
  tls->cert_file = Resolve(dir, tls->cert_file);
  tls->key_file = Resolve(dir, tls->key_file);
}

// Whether an MQTT URI asks for TLS (ssl://, mqtts://, wss://). Paho connects in plaintext to
// every other one (tcp://, mqtt://, ws://, or none), whatever TLS options it is given.
bool TlsUri(std::string_view uri) {
  return uri.rfind("ssl://", 0) == 0 || uri.rfind("mqtts://", 0) == 0 ||
         uri.rfind("wss://", 0) == 0;
}

// A `tls` block with a plaintext MQTT URI would silently stay plaintext: an error at `pointer`.
void CheckMqttTls(JsonReader& r, const std::string& pointer, const std::string& uri) {
  if (TlsUri(uri)) return;
  const std::size_t colon = uri.find("://");
  const std::string scheme = colon == std::string::npos ? "tcp" : uri.substr(0, colon);
  r.Error(pointer, "given for a plaintext " + scheme +
                       ":// broker, which would not use it: use an ssl:// or mqtts:// URI "
                       "for TLS (e.g. ssl://host:8883), or remove tls");
}

std::vector<std::string> ReadStrings(JsonReader& r, const json& o, std::string_view key,
                                     const std::string& p) {
  std::vector<std::string> out;
  auto it = o.find(key);
  if (it == o.end()) return out;
  std::string ptr = p + "/" + std::string(key);
  if (it->is_string()) {
    out.push_back(it->get<std::string>());
    return out;
  }
  if (!it->is_array()) {
    r.Error(ptr, "must be a list of strings");
    return out;
  }
  for (std::size_t i = 0; i < it->size(); ++i) {
    if (!(*it)[i].is_string()) {
      r.Error(ptr + "/" + std::to_string(i), "must be a string");
    } else {
      out.push_back((*it)[i].get<std::string>());
    }
  }
  return out;
}

std::optional<TimeUnit> ParseTimeUnit(const std::string& s) {
  if (s == "s") return TimeUnit::kSeconds;
  if (s == "ms") return TimeUnit::kMillis;
  if (s == "us") return TimeUnit::kMicros;
  if (s == "ns") return TimeUnit::kNanos;
  if (s == "rfc3339") return TimeUnit::kRfc3339;
  return std::nullopt;
}

void ReadPayload(JsonReader& r, const json& o, const std::string& p, PayloadMapping* m) {
  if (!r.CheckObject(o, p, {"format", "value", "metrics", "time", "time_unit", "tags"})) return;
  std::string format = "json";
  r.String(o, "format", p, &format);
  if (format == "json") {
    m->format = PayloadMapping::Format::kJson;
  } else if (format == "number") {
    m->format = PayloadMapping::Format::kNumber;
  } else {
    r.Error(p + "/format", "unknown format \"" + format + "\" (json, number)");
  }
  r.String(o, "value", p, &m->value);
  m->metrics = ReadStrings(r, o, "metrics", p);
  r.String(o, "time", p, &m->time);
  std::string unit;
  if (r.String(o, "time_unit", p, &unit) && !unit.empty()) {
    m->time_unit = ParseTimeUnit(unit);
    if (!m->time_unit) {
      r.Error(p + "/time_unit", "unknown time unit \"" + unit + "\" (s, ms, us, ns, rfc3339)");
    }
  }
  m->tags = ReadStrings(r, o, "tags", p);
}

void ReadMqtt(JsonReader& r, const json& o, const std::string& p, const std::string& dir,
              MqttConfig* m) {
  if (!r.CheckObject(o, p,
                     {"uri", "client_id", "ack", "username", "password", "tls", "subscriptions",
                      "max_clock_skew", "max_payload_bytes", "keepalive",
                      "max_readings_per_message", "max_tags", "max_tag_bytes"})) {
    return;
  }
  r.String(o, "uri", p, &m->uri);
  r.String(o, "client_id", p, &m->client_id);
  std::string ack = "after_commit";
  r.String(o, "ack", p, &ack);
  if (ack == "after_commit") {
    m->ack = MqttConfig::Ack::kAfterCommit;
  } else if (ack == "on_receive") {
    m->ack = MqttConfig::Ack::kOnReceive;
  } else {
    r.Error(p + "/ack", "must be \"after_commit\" or \"on_receive\"");
  }
  r.String(o, "username", p, &m->username);
  r.String(o, "password", p, &m->password);
  if (o.contains("tls")) {
    m->tls.emplace();
    ReadTls(r, o["tls"], p + "/tls", dir, &*m->tls);
    CheckMqttTls(r, p + "/tls", m->uri);
  }
  r.Duration(o, "max_clock_skew", p, &m->max_clock_skew);
  r.Size(o, "max_payload_bytes", p, &m->max_payload_bytes);
  r.Duration(o, "keepalive", p, &m->keepalive);
  auto count = [&](std::string_view key, std::int64_t max, std::size_t* out) {
    auto n = static_cast<std::int64_t>(*out);
    if (r.Int(o, key, p, 1, max, &n)) *out = static_cast<std::size_t>(n);
  };
  count("max_readings_per_message", 1'000'000, &m->max_readings_per_message);
  count("max_tags", 1000, &m->max_tags);
  count("max_tag_bytes", 1024, &m->max_tag_bytes);
  auto subs = o.find("subscriptions");
  if (subs == o.end() || !subs->is_array() || subs->empty()) {
    r.Error(p + "/subscriptions", "at least one subscription is needed");
    return;
  }
  for (std::size_t i = 0; i < subs->size(); ++i) {
    const json& s = (*subs)[i];
    std::string sp = p + "/subscriptions/" + std::to_string(i);
    if (!r.CheckObject(s, sp, {"topic", "qos", "metric", "payload"})) continue;
    std::string topic;
    r.String(s, "topic", sp, &topic);
    std::string error;
    auto tmpl = TopicTemplate::Parse(topic, &error);
    if (!tmpl) {
      r.Error(sp + "/topic", topic.empty() ? "a topic is needed" : error);
      continue;
    }
    Subscription sub{*tmpl, 1, "", {}};
    std::int64_t qos = 1;
    r.Int(s, "qos", sp, 0, 2, &qos);
    sub.qos = static_cast<int>(qos);
    r.String(s, "metric", sp, &sub.metric);
    if (s.contains("payload")) ReadPayload(r, s["payload"], sp + "/payload", &sub.payload);
    // Captures, payload tags and `metric`: more than mqtt.max_tags would reject every reading.
    std::size_t tags = sub.payload.tags.size() + 1;
    for (const auto& name : sub.topic.Names()) tags += name == "metric" ? 0 : 1;
    if (tags > m->max_tags) {
      r.Error(sp, "makes readings of up to " + std::to_string(tags) + " tags; mqtt.max_tags is " +
                      std::to_string(m->max_tags));
    }
    m->subscriptions.push_back(std::move(sub));
  }
}

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
void ReadActionPayload(JsonReader& r, const json& o, const std::string& p, UplinkConfig* u) {
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
  if (static_cast<std::size_t>(r.errors()) == errors) u->payload = o.dump();
}

void ReadUplink(JsonReader& r, const json& o, const std::string& p, const std::string& dir,
                UplinkConfig* u) {
  if (!r.CheckObject(o, p,
                     {"name", "type", "url", "headers", "batch", "retry", "timeout", "gzip", "tls",
                      "uri", "topic", "qos", "username", "password", "payload", "retain"})) {
    return;
  }
  r.String(o, "name", p, &u->name);
  if (u->name.empty()) r.Error(p + "/name", "an uplink needs a name");
  r.String(o, "type", p, &u->type);
  if (u->type != "http" && u->type != "alertmanager" && u->type != "influxdb" &&
      u->type != "mqtt") {
    r.Error(p + "/type",
            "unknown uplink type \"" + u->type + "\" (http, alertmanager, influxdb, mqtt)");
  }
  r.String(o, "url", p, &u->url);
  r.String(o, "uri", p, &u->uri);
  if (u->type == "mqtt" ? u->uri.empty() : u->url.empty()) {
    r.Error(p + (u->type == "mqtt" ? "/uri" : "/url"), "missing");
  }
  if (auto h = o.find("headers"); h != o.end()) {
    if (!h->is_object()) r.Error(p + "/headers", "must be an object of strings");
    for (auto it = h->begin(); h->is_object() && it != h->end(); ++it) {
      if (!it->is_string()) {
        r.Error(p + "/headers/" + it.key(), "must be a string");
      } else {
        u->headers.emplace_back(it.key(), it->get<std::string>());
      }
    }
  }
  if (auto b = o.find("batch"); b != o.end()) {
    std::string bp = p + "/batch";
    if (r.CheckObject(*b, bp, {"max_events", "max_delay"})) {
      std::int64_t n = static_cast<std::int64_t>(u->batch_max_events);
      r.Int(*b, "max_events", bp, 1, 100000, &n);
      u->batch_max_events = static_cast<std::size_t>(n);
      r.Duration(*b, "max_delay", bp, &u->batch_max_delay);
    }
  }
  if (auto rt = o.find("retry"); rt != o.end()) {
    std::string rp = p + "/retry";
    if (r.CheckObject(*rt, rp, {"initial", "max"})) {
      r.Duration(*rt, "initial", rp, &u->retry_initial);
      r.Duration(*rt, "max", rp, &u->retry_max);
      if (u->retry_initial.count() <= 0) r.Error(rp + "/initial", "must be more than 0");
      if (u->retry_max < u->retry_initial) r.Error(rp + "/max", "must be at least initial");
    }
  }
  r.Duration(o, "timeout", p, &u->timeout);
  r.Bool(o, "gzip", p, &u->gzip);
  if (o.contains("tls")) {
    ReadTls(r, o["tls"], p + "/tls", dir, &u->tls);
    if (u->type == "mqtt" && !u->uri.empty()) CheckMqttTls(r, p + "/tls", u->uri);
  }
  r.String(o, "topic", p, &u->topic);
  std::int64_t qos = u->qos;
  r.Int(o, "qos", p, 0, 2, &qos);
  u->qos = static_cast<int>(qos);
  r.String(o, "username", p, &u->username);
  r.String(o, "password", p, &u->password);
  for (const char* key : {"payload", "retain"}) {
    if (o.contains(key) && u->type != "mqtt") r.Error(p + "/" + key, "only for mqtt uplinks");
  }
  if (auto pl = o.find("payload"); pl != o.end()) ReadActionPayload(r, *pl, p + "/payload", u);
  r.Bool(o, "retain", p, &u->retain);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// [a-z][a-z0-9_]*: what rules spell before the dot of `<table>.<column>`.
bool IsTableName(std::string_view name) {
  if (name.empty() || name[0] < 'a' || name[0] > 'z') return false;
  for (char ch : name) {
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) return false;
  }
  return true;
}

// [A-Za-z_][A-Za-z0-9_]*: a column name (rules/table_loader.h), and so a key column's.
bool IsColumnName(std::string_view name) {
  auto alpha = [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
  };
  if (name.empty() || !alpha(name[0])) return false;
  for (char ch : name) {
    if (!alpha(ch) && !(ch >= '0' && ch <= '9')) return false;
  }
  return true;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// `tables`: name → {file, key, format}; appended to *out in name order (JSON objects are).
void ReadTables(JsonReader& r, const json& o, const std::string& dir,
                std::vector<TableConfig>* out) {
  if (!o.is_object()) {
    r.Error("/tables", "must be an object: table name → {\"file\", \"key\", \"format\"}");
    return;
  }
  for (auto it = o.begin(); it != o.end(); ++it) {
    const std::string p = "/tables/" + it.key();
    if (!IsTableName(it.key()) || it.key() == "value") {
      r.Error(p, "table name \"" + it.key() +
                     "\" must be lower-case letters, digits and _, start with a letter, and not "
                     "be \"value\"");
    }
    if (!r.CheckObject(*it, p, {"file", "key", "format"})) continue;
    TableConfig t;
    t.name = it.key();
    if (!it->contains("file")) {
      r.Error(p + "/file", "missing (the table's CSV or JSON file)");
    } else if (r.String(*it, "file", p, &t.file) && t.file.empty()) {
      r.Error(p + "/file", "must not be empty");
    }
    if (!it->contains("key")) {
      r.Error(p + "/key", "missing (the column matched against the reading's tag of that name)");
    } else if (r.String(*it, "key", p, &t.key) && !IsColumnName(t.key)) {
      r.Error(p + "/key", "\"" + t.key +
                              "\" cannot be a column name (letters, digits and _, not starting "
                              "with a digit)");
    }
    if (it->contains("format")) {
      if (r.String(*it, "format", p, &t.format) && t.format != "csv" && t.format != "json") {
        r.Error(p + "/format", "unknown format \"" + t.format + "\" (csv, json)");
      }
    } else if (EndsWith(Lower(t.file), ".csv")) {
      t.format = "csv";
    } else if (EndsWith(Lower(t.file), ".json")) {
      t.format = "json";
    } else if (!t.file.empty()) {
      r.Error(p + "/format", "missing, and the file name \"" + t.file +
                                 "\" ends in neither .csv nor .json (csv, json)");
    }
    t.file = Resolve(dir, t.file);
    out->push_back(std::move(t));
  }
}

// The password of a URL's user info ("scheme://user:password@host/…") and the values of its
// query parameters whose names say secret ("?u=vigil&p=…", "token=…").
void UrlSecrets(std::string_view url, std::vector<std::string>* out) {
  const std::size_t scheme = url.find("://");
  const std::size_t host = scheme == std::string_view::npos ? 0 : scheme + 3;
  const std::size_t path = url.find_first_of("/?#", host);
  const std::string_view authority = url.substr(host, path - host);
  if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view info = authority.substr(0, at);
    if (const std::size_t colon = info.find(':'); colon != std::string_view::npos) {
      out->emplace_back(info.substr(colon + 1));
    }
  }
  std::size_t q = url.find('?');
  while (q != std::string_view::npos) {
    const std::size_t end = url.find_first_of("&#", q + 1);
    const std::string_view param = url.substr(q + 1, end - q - 1);
    if (const std::size_t eq = param.find('='); eq != std::string_view::npos) {
      const std::string name = Lower(param.substr(0, eq));
      bool secret =
          name.find("token") != std::string::npos || name.find("secret") != std::string::npos ||
          name.find("key") != std::string::npos || name.find("password") != std::string::npos;
      for (const char* exact : {"p", "pass", "pwd", "auth", "sig", "signature"}) {
        secret = secret || name == exact;
      }
      if (secret) out->emplace_back(param.substr(eq + 1));
    }
    q = end == std::string_view::npos || url[end] == '#' ? std::string_view::npos : end;
  }
}

// Config::secrets besides the substituted values.
void CollectSecrets(Config* c) {
  std::vector<std::string>& s = c->secrets;
  s.push_back(c->mqtt.password);
  UrlSecrets(c->mqtt.uri, &s);
  for (const auto& u : c->uplinks) {
    s.push_back(u.password);
    UrlSecrets(u.url, &s);
    UrlSecrets(u.uri, &s);
    for (const auto& [name, value] : u.headers) {
      const std::string n = Lower(name);
      if (n.find("auth") == std::string::npos && n.find("token") == std::string::npos &&
          n.find("key") == std::string::npos && n.find("secret") == std::string::npos &&
          n.find("cookie") == std::string::npos && n.find("password") == std::string::npos) {
        continue;
      }
      s.push_back(value);
      // "Bearer abc", "Basic abc": the credentials alone too.
      if (const std::size_t space = value.find(' '); space != std::string::npos) {
        s.push_back(value.substr(space + 1));
      }
    }
  }
  s.erase(std::remove(s.begin(), s.end(), std::string()), s.end());
  std::sort(s.begin(), s.end());
  s.erase(std::unique(s.begin(), s.end()), s.end());
}

}  // namespace

ConfigResult ParseConfig(std::string_view text, const std::string& path) {
  ConfigResult result;
  JsonReader r(path, &result.diagnostics);
  auto doc = r.Parse(text);
  if (!doc) return result;
  Config c;
  c.path = path;
  std::size_t slash = path.rfind('/');
  c.dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  SubstituteAll(*doc, "", c.dir, &r, &c.secrets);
  result.secrets = c.secrets;
  const json& o = *doc;
  if (!r.CheckObject(o, "",
                     {"agent", "mqtt", "rules", "store", "uplinks", "routes", "tables", "http"})) {
    if (!o.is_object()) return result;
  }

  if (auto a = o.find("agent"); a != o.end()) {
    if (r.CheckObject(*a, "/agent", {"id", "state_dir", "log_level"})) {
      r.String(*a, "id", "/agent", &c.agent.id);
      r.String(*a, "state_dir", "/agent", &c.agent.state_dir);
      r.String(*a, "log_level", "/agent", &c.agent.log_level);
      if (c.agent.log_level != "error" && c.agent.log_level != "warning" &&
          c.agent.log_level != "info" && c.agent.log_level != "debug") {
        r.Error("/agent/log_level",
                "unknown level \"" + c.agent.log_level + "\" (error, warning, info, debug)");
      }
    }
  }
  if (c.agent.id.empty()) c.agent.id = HostName();
  c.agent.state_dir = Resolve(c.dir, c.agent.state_dir);

  if (auto m = o.find("mqtt"); m != o.end()) {
    ReadMqtt(r, *m, "/mqtt", c.dir, &c.mqtt);
  } else {
    r.Error("/mqtt", "missing (at least one subscription is needed)");
  }
  if (c.mqtt.client_id.empty()) c.mqtt.client_id = "vigil-" + c.agent.id;

  c.rule_paths = {c.dir + "/rules.d"};
  if (auto rules = o.find("rules"); rules != o.end()) {
    if (r.CheckObject(*rules, "/rules",
                      {"paths", "max_files", "max_file_bytes", "max_expression_bytes",
                       "max_keys_total", "key_idle_evict"})) {
      if (rules->contains("paths")) {
        c.rule_paths = ReadStrings(r, *rules, "paths", "/rules");
        for (auto& rp : c.rule_paths) rp = Resolve(c.dir, rp);
      }
      RuleLimits& limits = c.rule_limits;
      auto n = static_cast<std::int64_t>(limits.max_files);
      if (r.Int(*rules, "max_files", "/rules", 1, 1'000'000, &n)) {
        limits.max_files = static_cast<std::size_t>(n);
      }
      r.Size(*rules, "max_file_bytes", "/rules", &limits.max_file_bytes);
      n = static_cast<std::int64_t>(limits.max_expression_bytes);
      if (r.Int(*rules, "max_expression_bytes", "/rules", 16, 65'536, &n)) {
        limits.max_expression_bytes = static_cast<std::size_t>(n);
      }
      n = static_cast<std::int64_t>(limits.max_keys_total);
      if (r.Int(*rules, "max_keys_total", "/rules", 0, 1'000'000'000, &n)) {
        limits.max_keys_total = static_cast<std::size_t>(n);
      }
      r.Duration(*rules, "key_idle_evict", "/rules", &limits.key_idle_evict);
    }
  }

  if (auto s = o.find("store"); s != o.end()) {
    const std::string p = "/store";
    if (r.CheckObject(*s, p,
                      {"max_bytes", "commit_interval", "checkpoint_interval", "sync",
                       "journal_retention", "ttl"})) {
      r.Size(*s, "max_bytes", p, &c.store.max_bytes);
      r.Duration(*s, "commit_interval", p, &c.store.commit_interval);
      if (c.store.commit_interval.count() <= 0) r.Error(p + "/commit_interval", "must be > 0");
      r.Duration(*s, "checkpoint_interval", p, &c.store.checkpoint_interval);
      if (c.store.checkpoint_interval.count() <= 0) {
        r.Error(p + "/checkpoint_interval", "must be > 0");
      }
      std::string sync = "normal";
      r.String(*s, "sync", p, &sync);
      if (sync == "normal") {
        c.store.sync = StoreConfig::Sync::kNormal;
      } else if (sync == "full") {
        c.store.sync = StoreConfig::Sync::kFull;
      } else {
        r.Error(p + "/sync", "must be \"normal\" or \"full\"");
      }
      r.Duration(*s, "journal_retention", p, &c.store.journal_retention);
      r.Duration(*s, "ttl", p, &c.store.ttl);
    }
  }

  if (auto u = o.find("uplinks"); u != o.end()) {
    if (!u->is_array()) r.Error("/uplinks", "must be a list");
    for (std::size_t i = 0; u->is_array() && i < u->size(); ++i) {
      UplinkConfig up;
      std::string p = "/uplinks/" + std::to_string(i);
      ReadUplink(r, (*u)[i], p, c.dir, &up);
      for (const auto& other : c.uplinks) {
        if (other.name == up.name) r.Error(p + "/name", "duplicate uplink \"" + up.name + "\"");
      }
      c.uplinks.push_back(std::move(up));
    }
  }

  if (auto routes = o.find("routes"); routes != o.end()) {
    if (!routes->is_array()) r.Error("/routes", "must be a list");
    for (std::size_t i = 0; routes->is_array() && i < routes->size(); ++i) {
      std::string p = "/routes/" + std::to_string(i);
      const json& ro = (*routes)[i];
      if (!r.CheckObject(ro, p, {"kinds", "rules", "severities", "to"})) continue;
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
        for (const auto& up : c.uplinks) known = known || up.name == name;
        if (!known) r.Error(p + "/to", "unknown uplink \"" + name + "\"");
      }
      c.routes.push_back(std::move(rc));
    }
  }

  if (auto t = o.find("tables"); t != o.end()) ReadTables(r, *t, c.dir, &c.tables);
  for (const auto& table : c.tables) c.rule_limits.tables.push_back(table.name);

  if (auto h = o.find("http"); h != o.end()) {
    if (r.CheckObject(*h, "/http", {"listen"})) r.String(*h, "listen", "/http", &c.http.listen);
  }

  CollectSecrets(&c);
  result.secrets = c.secrets;
  if (!r.failed()) result.config = std::move(c);
  return result;
}

ConfigResult LoadConfig(const std::string& path) {
  std::optional<std::string> text = ReadFile(path);
  if (!text) {
    ConfigResult result;
    result.diagnostics.push_back({path, "", "cannot read the config file"});
    return result;
  }
  return ParseConfig(*text, path);
}

}  // namespace vigil::config
