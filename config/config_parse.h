#pragma once

// The section parsers of vigil.json (SPEC §2), used by config.cpp's ParseConfig; not a public
// interface. Each reads one top-level section of the document `root` (an object, ${env:} and
// ${file:} already substituted) into its part of Config, applies its defaults and records
// every problem in the JsonReader (file and JSON pointer); none stops at the first problem.
// `dir` is the config file's folder: relative paths are resolved against it.
//
// ParseConfig calls them in this order, which is the order of the diagnostics:
//   ReadAgent → ReadMqtt → ReadRuleFiles → ReadStore → ReadUplinks → ReadRoutes → ReadTables →
//   ReadHttp.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/json_reader.h"  // nlohmann::json, for the loaders

namespace vigil::config::parse {

using nlohmann::json;

// --- Shared (config.cpp, config_mqtt.cpp) ---------------------------------------------------

// `path` relative to `dir`, unless absolute or empty.
std::string Resolve(const std::string& dir, const std::string& path);

// ASCII lower case.
std::string Lower(std::string_view s);

// `key` of `o` (at pointer `p`): a string or a list of strings; absent: empty.
std::vector<std::string> ReadStrings(JsonReader& r, const json& o, std::string_view key,
                                     const std::string& p);

// A `tls` object at `p`: its files resolved against `dir`.
void ReadTls(JsonReader& r, const json& o, const std::string& p, const std::string& dir,
             TlsConfig* tls);

// A `tls` block with a plaintext MQTT URI would silently stay plaintext: an error at `pointer`
// unless `uri` asks for TLS (ssl://, mqtts://, wss://).
void CheckMqttTls(JsonReader& r, const std::string& pointer, const std::string& uri);

// The secrets of a URL (Config::secrets): the password of its user info
// ("scheme://user:password@host/…") and the values of its query parameters whose names say
// secret ("?u=vigil&p=…", "token=…"); appended to *out.
void UrlSecrets(std::string_view url, std::vector<std::string>* out);

// The secrets among `headers`: the values of those named like Authorization, *token*, *key*,
// *secret*, *auth*, *cookie*, *password*, and the credentials after "Bearer "/"Basic ";
// appended to *out.
void HeaderSecrets(const std::vector<std::pair<std::string, std::string>>& headers,
                   std::vector<std::string>* out);

// --- Sections, in ParseConfig's order -------------------------------------------------------

// `agent` (config.cpp): id (default: the host name), state_dir (resolved), log_level.
void ReadAgent(JsonReader& r, const json& root, const std::string& dir, AgentSection* agent);

// `mqtt` (config_mqtt.cpp): the broker, its limits and the subscriptions (at least one; a
// missing section is an error). client_id defaults to "vigil-<agent_id>".
void ReadMqtt(JsonReader& r, const json& root, const std::string& dir, const std::string& agent_id,
              MqttConfig* mqtt);

// `rules` (config.cpp): the rule files (default <dir>/rules.d, resolved) and their limits.
void ReadRuleFiles(JsonReader& r, const json& root, const std::string& dir,
                   std::vector<std::string>* paths, RuleLimits* limits);

// `store` (config.cpp): size, intervals, sync, retention.
void ReadStore(JsonReader& r, const json& root, StoreConfig* store);

// `uplinks` (config_uplinks.cpp): a list; names unique; each uplink's type (UplinkConfig::type)
// with the keys of that type. Every uplink's secrets (its password, URLs and headers, also
// those of keys its type does not keep) are appended to *secrets.
void ReadUplinks(JsonReader& r, const json& root, const std::string& dir,
                 std::vector<UplinkConfig>* uplinks, std::vector<std::string>* secrets);

// `routes` (config_uplinks.cpp): a list; every `to` names one of `uplinks`.
void ReadRoutes(JsonReader& r, const json& root, const std::vector<UplinkConfig>& uplinks,
                std::vector<RouteConfig>* routes);

// `tables` (config.cpp): name → {file, key, format}, appended in name order; their names also
// go into limits->tables (what rules may name).
void ReadTables(JsonReader& r, const json& root, const std::string& dir,
                std::vector<TableConfig>* tables, RuleLimits* limits);

// `http` (config.cpp): the endpoint's listen address.
void ReadHttp(JsonReader& r, const json& root, HttpConfig* http);

}  // namespace vigil::config::parse
