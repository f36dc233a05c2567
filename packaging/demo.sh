#!/usr/bin/env bash
# `make run`: a local mosquitto, the agent with the example config and rules, and the built-in
# simulator, all in ./.run; alerts show in the agent's log within a minute. Ctrl-C stops all.
set -euo pipefail
vigil=$(realpath "${1:-build/agent/vigil}")
here=$(cd "$(dirname "$0")" && pwd)
run=$(pwd)/.run
port=${VIGIL_DEMO_PORT:-18830}
mkdir -p "$run/state"

cat > "$run/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000
CONF
# The example config, pointed at the demo broker and a local state folder.
python3 - "$here/vigil.json" "$run/vigil.json" "$port" "$here/rules.d" "$run/state" <<'PY'
import json, sys
src, dst, port, rules, state = sys.argv[1:]
c = json.load(open(src))
c["agent"].update({"id": "demo-gateway", "state_dir": state})
c["mqtt"]["uri"] = f"tcp://127.0.0.1:{port}"
c["mqtt"]["client_id"] = "vigil-demo"
c["rules"]["paths"] = [rules]
json.dump(c, open(dst, "w"), indent=2)
PY

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "stopping the simulator, the agent and the broker…"
  # Simulator, then agent (it commits and drains), then the broker.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
}
trap cleanup INT TERM EXIT

/usr/sbin/mosquitto -c "$run/mosquitto.conf" >"$run/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

"$vigil" check --config "$run/vigil.json"
echo "broker on 127.0.0.1:$port; agent state in $run/state; Ctrl-C to stop"
echo "every fifth simulated device drifts above 45 °C and back: watch for 'alert firing'"
"$vigil" run --config "$run/vigil.json" &
pids+=($!)
"$vigil" simulate --config "$run/vigil.json" --devices 10 --rate 20 >"$run/simulate.log" 2>&1 &
pids+=($!)
wait "${pids[1]}"
