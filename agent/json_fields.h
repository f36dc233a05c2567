#pragma once

#include <cstddef>
#include <string_view>

namespace vigil::agent {

// One member of a JSON object, as the payload mapping reads it.
struct JsonField {
  enum class Kind { kMissing, kNull, kBool, kNumber, kString, kOther };
  Kind kind = Kind::kMissing;
  bool boolean = false;   // kBool
  double number = 0;      // kNumber: what a full parse gives as a double
  std::string_view text;  // kString: the value (it has no escapes); a view into the payload
};

// Reads the named members of a JSON object in place, without building a document: fields[i]
// gets the member named names[i] (kMissing when there is none). It takes only the plain shape
// of sensor payloads: one object whose member names and string values are ASCII without
// escapes, whose values are strings, numbers (integers of up to 18
// digits, or finite decimals), true, false or null, never an object or array, and which names
// a wanted member at most once. For anything else, valid JSON or not, it returns false and
// the caller parses the payload in full (agent/decode.cpp); when it returns true the payload
// is valid JSON and every field is what the full parse reads (tests/unit/agent, differential).
bool ScanFlatObject(std::string_view text, const std::string_view* names, std::size_t count,
                    JsonField* fields);

}  // namespace vigil::agent
