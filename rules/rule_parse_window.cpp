// `window`: one table of window types (kWindowTypes) says which fields each type needs and
// which it has no use for; each field has one reader with its checks (kFields).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rules/rule_parse.h"

namespace vigil::rules::parse {
namespace {

// A reading belongs to size / slide hopping windows, each with its own accumulators.
constexpr std::int64_t kMaxWindowsPerReading = 1000;

// The type-specific fields of `window`. `lateness` and `idle_timeout` are read for every type
// (a count window refuses `lateness` first).
enum class Field { kSize, kSlide, kGap, kCount, kLateness };

// Reads one field of window object `w` (at pointer `wp`) into *spec, with its checks. Called
// whether the field is present or not (a missing field keeps its default, and a check may
// still fail on that default: a session's gap of 0).
using FieldReader = void (*)(JsonReader& r, const json& w, const std::string& wp, WindowSpec* spec);

// A duration that must be more than 0.
void ReadPositive(JsonReader& r, const json& w, const std::string& wp, const char* key,
                  Millis* out) {
  r.Duration(w, key, wp, out);
  if (out->count() <= 0) r.Error(wp + "/" + key, "must be more than 0");
}

// `size`; the slide is the size unless a hopping window says otherwise (read after it).
void ReadSize(JsonReader& r, const json& w, const std::string& wp, WindowSpec* spec) {
  ReadPositive(r, w, wp, "size", &spec->size);
  spec->slide = spec->size;
}

// `slide`: at most the size, and at most kMaxWindowsPerReading windows per reading.
void ReadSlide(JsonReader& r, const json& w, const std::string& wp, WindowSpec* spec) {
  r.Duration(w, "slide", wp, &spec->slide);
  if (spec->slide.count() <= 0 || spec->slide > spec->size) {
    r.Error(wp + "/slide", "must be more than 0 and at most size");
  } else if (spec->size.count() / spec->slide.count() > kMaxWindowsPerReading) {
    r.Error(wp + "/slide", "a reading would belong to " +
                               std::to_string(spec->size.count() / spec->slide.count()) +
                               " windows (size / slide); at most " +
                               std::to_string(kMaxWindowsPerReading));
  }
}

void ReadGap(JsonReader& r, const json& w, const std::string& wp, WindowSpec* spec) {
  ReadPositive(r, w, wp, "gap", &spec->gap);
}

void ReadCount(JsonReader& r, const json& w, const std::string& wp, WindowSpec* spec) {
  std::int64_t n = 0;
  r.Int(w, "count", wp, 1, 1'000'000, &n);
  spec->count = static_cast<std::uint64_t>(n);
}

struct FieldInfo {
  const char* key;
  FieldReader read;  // null: read for every type after the type's fields (lateness)
};

// Indexed by Field.
constexpr FieldInfo kFields[] = {
    {"size", ReadSize},   {"slide", ReadSlide},  {"gap", ReadGap},
    {"count", ReadCount}, {"lateness", nullptr},
};

const FieldInfo& Info(Field f) { return kFields[static_cast<int>(f)]; }

// What idle_timeout defaults to.
enum class IdleDefault { kSize, kGap, kNever };

struct WindowType {
  std::string_view name;
  WindowSpec::Type type;
  // Read in this order, each an error when missing.
  std::vector<Field> needs;
  // An error when present, in this order.
  std::vector<Field> refuses;
  IdleDefault idle;
};

const WindowType kWindowTypes[] = {
    {"tumbling",
     WindowSpec::Type::kTumbling,
     {Field::kSize},
     {Field::kSlide, Field::kGap, Field::kCount},
     IdleDefault::kSize},
    {"hopping",
     WindowSpec::Type::kHopping,
     {Field::kSize, Field::kSlide},
     {Field::kGap, Field::kCount},
     IdleDefault::kSize},
    {"sliding",
     WindowSpec::Type::kSliding,
     {Field::kSize},
     {Field::kSlide, Field::kGap, Field::kCount},
     IdleDefault::kSize},
    {"session",
     WindowSpec::Type::kSession,
     {Field::kGap},
     {Field::kSize, Field::kSlide, Field::kCount},
     IdleDefault::kGap},
    {"count",
     WindowSpec::Type::kCount,
     {Field::kCount},
     {Field::kSize, Field::kSlide, Field::kGap, Field::kLateness},
     IdleDefault::kNever},
};

constexpr const char* kTypeNames = "tumbling, hopping, sliding, session, count";

// The fields of a window of type `t`: each needed one read (an error when missing), each
// refused one an error when present, then the idle_timeout default.
void ReadTypeFields(JsonReader& r, const json& w, const std::string& wp, const WindowType& t,
                    WindowSpec* spec) {
  const std::string type(t.name);
  spec->type = t.type;
  for (Field f : t.needs) {
    const char* key = Info(f).key;
    if (!w.contains(key)) r.Error(wp + "/" + key, "missing (a " + type + " window needs it)");
    Info(f).read(r, w, wp, spec);
  }
  for (Field f : t.refuses) {
    const char* key = Info(f).key;
    if (w.contains(key)) r.Error(wp + "/" + key, "a " + type + " window has no " + key);
  }
  switch (t.idle) {
    case IdleDefault::kSize:
      spec->idle_timeout = spec->size;
      break;
    case IdleDefault::kGap:
      spec->idle_timeout = spec->gap;
      break;
    case IdleDefault::kNever:
      spec->idle_timeout = Millis(0);
      break;
  }
}

}  // namespace

void ParseWindow(JsonReader& r, const json& o, const std::string& p, CompiledRule* rule) {
  auto w = o.find("window");
  const std::string wp = p + "/window";
  if (w == o.end()) {
    rule->has_window = false;
    if (!rule->detector && !o.contains("detector")) {
      r.Error(wp, "missing (a rule needs a window or a detector)");
    }
    return;
  }
  if (!r.CheckObject(*w, wp,
                     {"type", "size", "slide", "lateness", "idle_timeout", "gap", "count"})) {
    return;
  }
  std::string type;
  r.String(*w, "type", wp, &type);
  const WindowType* known = nullptr;
  for (const WindowType& t : kWindowTypes) {
    if (type == t.name) known = &t;
  }
  if (known != nullptr) {
    ReadTypeFields(r, *w, wp, *known, &rule->window);
  } else if (type.empty()) {
    r.Error(wp + "/type", std::string("missing (") + kTypeNames + ")");
  } else {
    r.Error(wp + "/type", "unknown window type \"" + type + "\" (" + kTypeNames + ")");
  }
  r.Duration(*w, "lateness", wp, &rule->window.lateness);
  r.Duration(*w, "idle_timeout", wp, &rule->window.idle_timeout);
}

}  // namespace vigil::rules::parse
