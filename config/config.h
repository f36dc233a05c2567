#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "config/diagnostic.h"
#include "config/topic_template.h"
#include "config/values.h"

namespace vigil::config {

// The agent configuration (vigil.json, SPEC §2) as plain values, every default applied,
// every `${env:}`/`${file:}` substituted, every relative path made relative to the config
// file's folder (SPEC §12.23).

struct TlsConfig {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool insecure_skip_verify = false;
};

enum class TimeUnit { kSeconds, kMillis, kMicros, kNanos, kRfc3339 };

struct PayloadMapping {
  enum class Format { kJson, kNumber };
  Format format = Format::kJson;
  std::string value = "value";       // field path (dots for nesting); unused with `metrics`
  std::vector<std::string> metrics;  // several numeric fields, each its own reading
  std::string time;                  // field path; empty: readings get the arrival time
  // Without `time_unit` a numeric time is milliseconds and a string time RFC 3339 (§12.1).
  std::optional<TimeUnit> time_unit;
  std::vector<std::string> tags;  // field paths copied as tags (tag name = the path)
};

struct Subscription {
  TopicTemplate topic;
  int qos = 1;
  std::string metric;  // used when the template captures no `metric`; else last level
  PayloadMapping payload;
};

struct MqttConfig {
  enum class Ack { kAfterCommit, kOnReceive };
  std::string uri = "tcp://localhost:1883";
  std::string client_id;  // default "vigil-<agent.id>"
  Ack ack = Ack::kAfterCommit;
  std::string username;
  std::string password;  // secret: never logged
  std::optional<TlsConfig> tls;
  std::vector<Subscription> subscriptions;  // at least one
  Millis max_clock_skew{3'600'000};
  std::uint64_t max_payload_bytes = std::uint64_t{256} * 1024;
  Millis keepalive{30'000};
  // Limits on what one message may make (README "Limits"); beyond them the message or the
  // reading is rejected and counted, never kept.
  std::size_t max_readings_per_message = 1000;  // a batch (or `metrics`) beyond: "readings"
  std::size_t max_tags = 32;                    // tags of one reading, `metric` included: "tags"
  std::size_t max_tag_bytes = 256;              // one tag value (a topic level, the metric): "tags"
};

// Limits on the rule files (`rules.*`); beyond them loading fails with a diagnostic.
struct RuleLimits {
  std::size_t max_files = 1000;             // rule files in all `rules.paths`
  std::uint64_t max_file_bytes = 1 << 20;   // one rule file
  std::size_t max_expression_bytes = 4096;  // one expression (`where`, `when`, an aggregate)
  // Not limits on the files but on what the rules keep (rules/README.md "Cardinality"): the
  // (rule, key) states of all rules together (0: no budget), and how long an idle key with
  // nothing left to emit is kept by default (a rule's `evict_after`; 0: not by idleness).
  std::size_t max_keys_total = 1'000'000;
  Millis key_idle_evict{24 * 3'600'000};
  // Not a limit but what rules may name besides their own: the configured `tables`, whose
  // columns expressions read as `<table>.<column>`.
  std::vector<std::string> tables;
};

// `tables.<name>`: reference data for enrichment (rules/table.h).
struct TableConfig {
  std::string name;
  std::string file;    // resolved against the config's folder
  std::string key;     // the key column, matched against the reading's tag of that name
  std::string format;  // "csv" or "json"; default: from the file's extension
};

struct AgentSection {
  std::string id;  // default: the host name
  std::string state_dir = "/var/lib/vigil";
  std::string log_level = "info";
};

struct StoreConfig {
  enum class Sync { kNormal, kFull };
  std::uint64_t max_bytes = 512ull * 1024 * 1024;
  Millis commit_interval{100};         // events and the journal position
  Millis checkpoint_interval{30'000};  // rule state (the journal since covers the rest)
  Sync sync = Sync::kNormal;
  Millis journal_retention{3'600'000};
  Millis ttl{7ll * 24 * 3'600'000};
};

// `type: "http"` (SPEC §9): POSTs batches of events as a JSON array.
struct HttpUplink {
  static constexpr std::string_view kType = "http";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  // values may be secrets
  bool gzip = false;
};

// `type: "alertmanager"`: alert events in Alertmanager's schema, to `<url>/api/v2/alerts`.
struct AlertmanagerUplink {
  static constexpr std::string_view kType = "alertmanager";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  // values may be secrets
};

// `type: "influxdb"`: aggregate events as line protocol, to the write URL.
struct InfluxUplink {
  static constexpr std::string_view kType = "influxdb";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  // values may be secrets
  bool gzip = false;
};

// `type: "mqtt"`: one message per event on a broker (a cloud broker, or the local one for
// actions).
struct MqttUplink {
  static constexpr std::string_view kType = "mqtt";
  std::string uri;
  std::string topic = "vigil/{agent}/{kind}/{rule}";
  int qos = 1;
  std::string username;
  std::string password;  // secret: never logged
  // Actions (a command to devices, e.g. on the local broker): the message body per event:
  // the JSON text of a template keyed by state (`firing`, `resolved`) or kind (`aggregate`);
  // empty: the event's JSON (SPEC §6). See uplink/README.md.
  std::string payload;
  bool retain = false;
};

// One uplink (`uplinks[]`): the keys every type has, and `type`, the uplink's type holding
// the keys only that type has, so that no code can read a key of another type (MakeSink
// visits it). A key of another type in the file is accepted as it always was, and not kept.
struct UplinkConfig {
  using Type = std::variant<HttpUplink, AlertmanagerUplink, InfluxUplink, MqttUplink>;
  std::string name;
  Type type;  // as a config file gives it, never the default: `type` is required
  std::size_t batch_max_events = 500;
  Millis batch_max_delay{1000};
  Millis retry_initial{1000};
  Millis retry_max{300'000};
  Millis timeout{10'000};
  TlsConfig tls;
};

struct RouteConfig {
  std::vector<std::string> kinds;       // empty: any kind
  std::vector<std::string> rules;       // globs (`*`, `?`); empty: any rule
  std::vector<std::string> severities;  // empty: any severity
  std::vector<std::string> to;          // uplink names (checked to exist)
};

struct HttpConfig {
  std::string listen = "127.0.0.1:9460";  // "" disables the endpoint
};

struct Config {
  std::string path;  // the config file as given
  std::string dir;   // its folder; relative paths in the config are relative to it
  AgentSection agent;
  MqttConfig mqtt;
  std::vector<std::string> rule_paths;  // `rules.paths`, resolved; default <dir>/rules.d
  RuleLimits rule_limits;               // `rules.max_files`, `max_file_bytes`, …
  StoreConfig store;
  std::vector<UplinkConfig> uplinks;
  std::vector<RouteConfig> routes;
  std::vector<TableConfig> tables;  // in name order
  HttpConfig http;
  // Every value that must never be shown (README "Security"): what ${env:} and ${file:}
  // gave, passwords, the credentials of authorization-like headers, the password in a URL's
  // user info and secret-looking URL query parameters. For log::SetSecrets.
  std::vector<std::string> secrets;
};

struct ConfigResult {
  std::optional<Config> config;  // set only when diagnostics is empty
  Diagnostics diagnostics;
  std::vector<std::string> secrets;  // as Config::secrets, also when the config is invalid
};

// Reads and validates the file. Every problem is reported (unknown keys with a did-you-mean,
// wrong types, bad durations/sizes/templates, missing ${env:}/${file:} naming the key).
ConfigResult LoadConfig(const std::string& path);
// The same from text; `path` is used for diagnostics and to resolve relative paths.
ConfigResult ParseConfig(std::string_view text, const std::string& path);

}  // namespace vigil::config
