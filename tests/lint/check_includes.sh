#!/usr/bin/env bash
# Each library has one owner (DESIGN.md §7): SQLite only in store/, libcurl only in uplink/,
# Paho only in agent/ and uplink/, cpp-httplib only in agent/ (and tests), and no
# nlohmann/json in module headers (but the loaders' JSON reader). Prints every stray include and fails if there is one.
set -u
cd "$(dirname "$0")/../.."
status=0
check() {  # pattern, allowed folders regex, description
  local hits
  hits=$(grep -rnE "#include *[<\"]($1)" config rules store uplink agent --include='*.h' --include='*.cpp' \
    | grep -vE "^($2)/" || true)
  if [ -n "$hits" ]; then
    echo "$3:"; echo "$hits"; status=1
  fi
}
check 'sqlite3\.h' 'store' 'SQLite outside store/'
check 'curl/' 'uplink' 'libcurl outside uplink/'
check 'mqtt/' 'agent|uplink' 'Paho outside agent/ and uplink/'
check 'httplib\.h' 'agent' 'cpp-httplib outside agent/'
# Exceptions: config/json_reader.h (the loaders' JSON reader) and forward declarations
# (json_fwd.hpp) for the checkpoint functions of rules/.
hits=$(grep -rnE '#include *[<"]nlohmann/' config rules store uplink agent --include='*.h' \
  | grep -v '^config/json_reader.h:' | grep -v 'nlohmann/json_fwd.hpp' || true)
if [ -n "$hits" ]; then echo "nlohmann/json in a module header:"; echo "$hits"; status=1; fi
[ $status -eq 0 ] && echo "includes: every library stays with its owner"
exit $status
