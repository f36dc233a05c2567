// ParseConfig reads the document section by section with the parsers of config_parse.h
// (mqtt and its subscriptions: config_mqtt.cpp; uplinks and routes: config_uplinks.cpp; the
// smaller sections here), after substituting ${env:}/${file:}, and collects the secrets.

#include "config/config.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "config/config_parse.h"
#include "config/json_reader.h"

namespace vigil::config {
namespace parse {
namespace {

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "vigil";
  return buf;
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
void ReadTablesObject(JsonReader& r, const json& o, const std::string& dir,
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

}  // namespace

std::string Resolve(const std::string& dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || dir.empty()) return path;
  return dir + "/" + path;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
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

void ReadAgent(JsonReader& r, const json& root, const std::string& dir, AgentSection* agent) {
  if (auto a = root.find("agent"); a != root.end()) {
    if (r.CheckObject(*a, "/agent", {"id", "state_dir", "log_level"})) {
      r.String(*a, "id", "/agent", &agent->id);
      r.String(*a, "state_dir", "/agent", &agent->state_dir);
      r.String(*a, "log_level", "/agent", &agent->log_level);
      if (agent->log_level != "error" && agent->log_level != "warning" &&
          agent->log_level != "info" && agent->log_level != "debug") {
        r.Error("/agent/log_level",
                "unknown level \"" + agent->log_level + "\" (error, warning, info, debug)");
      }
    }
  }
  if (agent->id.empty()) agent->id = HostName();
  agent->state_dir = Resolve(dir, agent->state_dir);
}

void ReadRuleFiles(JsonReader& r, const json& root, const std::string& dir,
                   std::vector<std::string>* paths, RuleLimits* limits) {
  *paths = {dir + "/rules.d"};
  if (auto rules = root.find("rules"); rules != root.end()) {
    if (r.CheckObject(*rules, "/rules",
                      {"paths", "max_files", "max_file_bytes", "max_expression_bytes",
                       "max_keys_total", "key_idle_evict"})) {
      if (rules->contains("paths")) {
        *paths = ReadStrings(r, *rules, "paths", "/rules");
        for (auto& rp : *paths) rp = Resolve(dir, rp);
      }
      auto n = static_cast<std::int64_t>(limits->max_files);
      if (r.Int(*rules, "max_files", "/rules", 1, 1'000'000, &n)) {
        limits->max_files = static_cast<std::size_t>(n);
      }
      r.Size(*rules, "max_file_bytes", "/rules", &limits->max_file_bytes);
      n = static_cast<std::int64_t>(limits->max_expression_bytes);
      if (r.Int(*rules, "max_expression_bytes", "/rules", 16, 65'536, &n)) {
        limits->max_expression_bytes = static_cast<std::size_t>(n);
      }
      n = static_cast<std::int64_t>(limits->max_keys_total);
      if (r.Int(*rules, "max_keys_total", "/rules", 0, 1'000'000'000, &n)) {
        limits->max_keys_total = static_cast<std::size_t>(n);
      }
      r.Duration(*rules, "key_idle_evict", "/rules", &limits->key_idle_evict);
    }
  }
}

void ReadStore(JsonReader& r, const json& root, StoreConfig* store) {
  if (auto s = root.find("store"); s != root.end()) {
    const std::string p = "/store";
    if (r.CheckObject(*s, p,
                      {"max_bytes", "commit_interval", "checkpoint_interval", "sync",
                       "journal_retention", "ttl"})) {
      r.Size(*s, "max_bytes", p, &store->max_bytes);
      r.Duration(*s, "commit_interval", p, &store->commit_interval);
      if (store->commit_interval.count() <= 0) r.Error(p + "/commit_interval", "must be > 0");
      r.Duration(*s, "checkpoint_interval", p, &store->checkpoint_interval);
      if (store->checkpoint_interval.count() <= 0) {
        r.Error(p + "/checkpoint_interval", "must be > 0");
      }
      std::string sync = "normal";
      r.String(*s, "sync", p, &sync);
      if (sync == "normal") {
        store->sync = StoreConfig::Sync::kNormal;
      } else if (sync == "full") {
        store->sync = StoreConfig::Sync::kFull;
      } else {
        r.Error(p + "/sync", "must be \"normal\" or \"full\"");
      }
      r.Duration(*s, "journal_retention", p, &store->journal_retention);
      r.Duration(*s, "ttl", p, &store->ttl);
    }
  }
}

void ReadTables(JsonReader& r, const json& root, const std::string& dir,
                std::vector<TableConfig>* tables, RuleLimits* limits) {
  if (auto t = root.find("tables"); t != root.end()) ReadTablesObject(r, *t, dir, tables);
  for (const auto& table : *tables) limits->tables.push_back(table.name);
}

void ReadHttp(JsonReader& r, const json& root, HttpConfig* http) {
  if (auto h = root.find("http"); h != root.end()) {
    if (r.CheckObject(*h, "/http", {"listen"})) r.String(*h, "listen", "/http", &http->listen);
  }
}

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

void HeaderSecrets(const std::vector<std::pair<std::string, std::string>>& headers,
                   std::vector<std::string>* out) {
  for (const auto& [name, value] : headers) {
    const std::string n = Lower(name);
    if (n.find("auth") == std::string::npos && n.find("token") == std::string::npos &&
        n.find("key") == std::string::npos && n.find("secret") == std::string::npos &&
        n.find("cookie") == std::string::npos && n.find("password") == std::string::npos) {
      continue;
    }
    out->push_back(value);
    // "Bearer abc", "Basic abc": the credentials alone too.
    if (const std::size_t space = value.find(' '); space != std::string::npos) {
      out->push_back(value.substr(space + 1));
    }
  }
}

}  // namespace parse

namespace {

using nlohmann::json;
using parse::Lower;

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

// Config::secrets besides the substituted values.
void CollectSecrets(Config* c) {
  std::vector<std::string>& s = c->secrets;
  s.push_back(c->mqtt.password);
  parse::UrlSecrets(c->mqtt.uri, &s);
  // The uplinks' were collected as they were read (parse::ReadUplinks).
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

  parse::ReadAgent(r, o, c.dir, &c.agent);
  parse::ReadMqtt(r, o, c.dir, c.agent.id, &c.mqtt);
  parse::ReadRuleFiles(r, o, c.dir, &c.rule_paths, &c.rule_limits);
  parse::ReadStore(r, o, &c.store);
  parse::ReadUplinks(r, o, c.dir, &c.uplinks, &c.secrets);
  parse::ReadRoutes(r, o, c.uplinks, &c.routes);
  parse::ReadTables(r, o, c.dir, &c.tables, &c.rule_limits);
  parse::ReadHttp(r, o, &c.http);
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
