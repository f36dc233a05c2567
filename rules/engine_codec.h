#pragma once

// The checkpoint codec of the engine's state (rules/README.md "State and checkpoints"): one
// key's state as bytes (MessagePack, written and read in place: packed.h) and back, and the
// rules' processing-time timers as text. The byte format is what checkpoints on disk hold:
// keep it (or add a versioned migration with a test). Internal to rules/; not installed.
// Pure functions: decoding reads only the rule, so any thread may decode.

#include <string>
#include <vector>

#include "rules/engine_keys.h"

namespace vigil::rules::internal {

// The state of a key of `rs` as checkpoint bytes: the rule's fingerprint, the key's tags,
// watermark base, last reading's processing time, arrivals, windows, detector, join buffer,
// alert lifecycle.
std::string SerializeKey(const RuleState& rs, const KeyState& ks);
// The state of key `key` of `rule` from its checkpoint bytes (MessagePack, or the JSON text
// earlier versions wrote). False when the fingerprint is not the rule's (the rule changed),
// the bytes are of another key or malformed; *out and *tags are then unchanged. *tags: the
// key's tags (EncodeKey of them is `key`).
bool DecodeKey(const CompiledRule& rule, const std::string& key, const std::string& bytes,
               Tags* tags, KeyState* out);

// The rules' timers (when each next looks at its keys), one rule a line:
// `<id> <fingerprint> <next idle check> <next absent check>`.
std::string SaveTimers(const std::vector<RuleState>& rules);
// Sets the timers of the rules in `saved` whose fingerprint is unchanged; lines it cannot read
// are ignored.
void RestoreTimers(const std::string& saved, std::vector<RuleState>* rules);

}  // namespace vigil::rules::internal
