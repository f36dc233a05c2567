#include "config/diagnostic.h"

namespace vigil::config {

std::string Diagnostic::ToString() const {
  if (location.empty()) return file + ": " + message;
  if (location[0] == '/') return file + ": " + location + ": " + message;
  return file + ":" + location + ": " + message;
}

}  // namespace vigil::config
