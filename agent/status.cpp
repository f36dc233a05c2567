#include <httplib.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "agent/commands.h"

namespace vigil::agent {
namespace {

// "127.0.0.1:9460" → host, port; "[::1]:9460" too.
bool SplitListen(const std::string& listen, std::string* host, int* port) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  *host = listen.substr(0, colon);
  if (host->size() > 1 && host->front() == '[') *host = host->substr(1, host->size() - 2);
  if (host->empty() || *host == "0.0.0.0") *host = "127.0.0.1";
  if (*host == "::") *host = "::1";
  try {
    *port = std::stoi(listen.substr(colon + 1));
  } catch (const std::exception&) {
    return false;
  }
  return *port > 0 && *port < 65536;
}

std::string Str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "-";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

}  // namespace

int ShowStatus(const config::Config& config) {
  std::string host;
  int port = 0;
  if (config.http.listen.empty() || !SplitListen(config.http.listen, &host, &port)) {
    std::cerr << "status: the HTTP endpoint is disabled (http.listen), so vigil cannot be asked\n";
    return kExitNotRunning;
  }
  httplib::Client client(host, port);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(5, 0);
  auto res = client.Get("/api/v1/status");
  if (!res || res->status != 200) {
    std::cout << "vigil is not running (nothing answers on " << config.http.listen << ")\n";
    return kExitNotRunning;
  }
  nlohmann::json s = nlohmann::json::parse(res->body, nullptr, false);
  if (!s.is_object()) {
    std::cerr << "status: unexpected answer from " << config.http.listen << '\n';
    return kExitNotRunning;
  }
  std::cout << "vigil " << Str(s, "version") << ", agent " << Str(s, "agent") << ", up "
            << Str(s, "uptime_seconds") << " s\n";
  const auto& mqtt = s["mqtt"];
  std::cout << "broker     " << Str(mqtt, "uri") << ": "
            << (mqtt.value("connected", false) ? "connected" : "NOT connected") << '\n';
  std::cout << "readings   " << Str(s, "readings_total") << " accepted, "
            << Str(s, "readings_per_second") << "/s, " << Str(s, "rejected_total") << " rejected\n";
  std::cout << "rules      " << s["rules"].size() << '\n';
  for (const auto& r : s["rules"]) {
    std::cout << "  " << Str(r, "id") << ": " << Str(r, "keys") << " keys, "
              << Str(r, "evaluations") << " evaluations, " << Str(r, "late_readings") << " late\n";
  }
  if (s.contains("tables") && !s["tables"].empty()) {
    std::cout << "tables\n";
    for (const auto& t : s["tables"]) {
      std::cout << "  " << Str(t, "name") << ": " << Str(t, "rows") << " rows, "
                << Str(t, "reloads") << " reloads, " << Str(t, "reload_errors")
                << " refused (the previous version kept)\n";
    }
  }
  std::cout << "firing     " << s["alerts"].size() << '\n';
  for (const auto& a : s["alerts"]) {
    std::cout << "  " << Str(a, "rule") << " " << a["key"].dump() << " " << Str(a, "severity")
              << ": " << Str(a, "summary") << '\n';
  }
  if (s.contains("store") && s["store"].is_object()) {
    const auto& st = s["store"];
    std::cout << "store      " << Str(st, "bytes") << " of " << Str(st, "max_bytes")
              << " bytes, rule state " << Str(st, "state_bytes") << " bytes";
    if (st.contains("dropped") && st["dropped"].is_object()) {
      std::cout << "; dropped:";
      for (const auto& [what, n] : st["dropped"].items()) std::cout << " " << what << " " << n;
    }
    std::cout << '\n';
    if (st.value("quota_exceeded_by_state", false)) {
      std::cout << "  QUOTA EXCEEDED BY RULE STATE: the outbox keeps only its newest "
                << Str(st, "outbox_floor_bytes")
                << " bytes of undelivered events; raise store.max_bytes or lower the rules' "
                   "keys\n";
    }
  }
  if (s.contains("warnings") && s["warnings"].is_array()) {
    for (const auto& w : s["warnings"]) {
      if (w.is_string()) std::cout << "warning: " << w.get<std::string>() << '\n';
    }
  }
  std::cout << "uplinks\n";
  for (const auto& u : s["uplinks"]) {
    std::cout << "  " << Str(u, "name") << ": " << Str(u, "pending") << " pending, "
              << Str(u, "dead") << " dead, " << Str(u, "delivered") << " delivered";
    if (u.contains("last_error") && !u["last_error"].get<std::string>().empty()) {
      std::cout << ", last error: " << u["last_error"].get<std::string>();
    }
    std::cout << '\n';
  }
  return kExitOk;
}

}  // namespace vigil::agent
