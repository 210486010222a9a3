#!/usr/bin/env bash
# The hub behind `make demo`: a demo warehouse, one active study with its extract, the DEVELOPMENT
# OIDC provider (dev/oidc: demo users per role, simulated second factor) and JupyterHub with local
# bubbles on a free port, signing in through that provider as production signs in through the
# hospital's. Demo data only (no real person). Ctrl-C stops the bubbles, the hub, the proxy and
# the provider.
#
#   bash scripts/demo-hub.sh            # after `make proxy bubble-env dev-oidc venv` (make demo does it)
#   DEMO_PORT=8000 DEMO_PERSONS=5000 bash scripts/demo-hub.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BM=".venv/bin/bubble-manager"
HOME_DIR="$(realpath -m "${BUBBLE_MANAGER_HOME:-$PWD/var}")"
PERSONS="${DEMO_PERSONS:-2000}"
BUBBLE_ENV="${BUBBLE_ENV:-/opt/bubble-manager/bubble-env}"
PORT="${DEMO_PORT:-$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"

if [ "$(id -u)" != 0 ]; then
  echo "error: local bubbles switch to their own uids: run the demo as root (sudo make demo)" >&2
  exit 2
fi
if [ -e "$HOME_DIR" ] && [ ! -e "$HOME_DIR/.demo" ]; then
  echo "error: $HOME_DIR exists and is not a demo folder; set BUBBLE_MANAGER_HOME to another folder" >&2
  exit 2
fi
rm -rf "$HOME_DIR"
mkdir -p "$HOME_DIR/warehouse"
chmod 711 "$HOME_DIR"          # bubble uids pass through to their study's folder, never list it
touch "$HOME_DIR/.demo"
export BUBBLE_MANAGER_HOME="$HOME_DIR"
cat > "$HOME_DIR/bubble_manager_config.py" <<EOF
c.LocalBubbles.bubble_env = "$BUBBLE_ENV"
EOF

step() { echo "\$ bubble-manager $*"; "$BM" "$@"; }

step demo-warehouse --persons "$PERSONS" --seed 7 --out "$HOME_DIR/warehouse/warehouse.duckdb" --no-progress
step keys init
# Two demo custodians hold the shares of each study's archive key (k=2). In real life each keeps
# their age identity offline on their own machine; the demo keeps them in HOME/custodians/.
mkdir -p -m 700 "$HOME_DIR/custodians"
for custodian in claire david; do
  age-keygen -o "$HOME_DIR/custodians/$custodian.age" 2>/dev/null
  step keys custodians add "$custodian" "$(age-keygen -y "$HOME_DIR/custodians/$custodian.age")" --actor admin
done
today=$(date -u +%F)
ends=$(date -u -d "+90 days" +%F)
request="$HOME_DIR/t2d-statins.yaml"
sed -e "s/^starts: .*/starts: $today/" -e "s/^ends: .*/ends: $ends/" \
    -e "s/^members: .*/members: [alice@example.org, bob@example.org]/" docs/examples/study-request.yaml > "$request"
step studies request --file "$request" --actor eve@example.org
step studies submit t2d-statins --actor eve@example.org
step studies approve t2d-statins --actor sam@example.org --comment "Minimal data, sound legal basis."
step studies activate t2d-statins --actor ada@example.org
step studies show t2d-statins

export BUBBLE_HUB_URL="http://hub.localhost:$PORT" BUBBLE_HUB_BIND_URL="http://127.0.0.1:$PORT"
provider_log="$HOME_DIR/dev-oidc.log"
.venv/bin/python -m bubble_manager.auth.devprovider --hub-url "$BUBBLE_HUB_URL" --state "$HOME_DIR/dev-oidc" \
  > "$provider_log" 2>&1 &
provider=$!
for _ in $(seq 1 120); do
  grep -q "^demo users" "$provider_log" 2>/dev/null && break
  kill -0 "$provider" 2>/dev/null || { cat "$provider_log" >&2; echo "error: the OIDC provider did not start" >&2; exit 1; }
  sleep 0.5
done
eval "$(grep '^export ' "$provider_log")"
JUPYTERHUB_CRYPT_KEY="$(.venv/bin/python -c "import secrets; print(secrets.token_hex(32))")"
export JUPYTERHUB_CRYPT_KEY
cat > "$HOME_DIR/jupyterhub_config.py" <<EOF
load_subconfig("$PWD/hub_config/jupyterhub_config.py")
load_subconfig("$PWD/hub_config/oidc.py")
EOF

log="$HOME_DIR/jupyterhub.log"
(cd "$HOME_DIR" && exec "$OLDPWD/.venv/bin/jupyterhub" -f "$HOME_DIR/jupyterhub_config.py") > "$log" 2>&1 &
hub=$!

stop_demo() {
  trap - INT TERM EXIT
  echo; echo "stopping the hub and every demo bubble..."
  kill -TERM "$hub" 2>/dev/null || true
  wait "$hub" 2>/dev/null || true
  kill -TERM "$provider" 2>/dev/null || true
  wait "$provider" 2>/dev/null || true
  # The hub leaves bubbles running across restarts (by design); the demo stops them through their launchers.
  runtime="$(.venv/bin/python -c 'from bubble_manager.config import load_settings
from bubble_manager.runtime.settings import LocalBubbles
print(LocalBubbles(config=load_settings("'"$HOME_DIR"'").config).bubbles_dir)')"
  for state in "$runtime"/*/state.json; do
    [ -e "$state" ] || continue
    pid="$(.venv/bin/python -c 'import json, sys; print(json.load(open(sys.argv[1])).get("launcher_pid", ""))' "$state")"
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
  done
  echo "demo stopped (data kept in $HOME_DIR; the hub log is $log)"
}
trap stop_demo INT TERM EXIT

for _ in $(seq 1 120); do
  if ! kill -0 "$hub" 2>/dev/null; then tail -30 "$log" >&2; echo "error: the hub did not start (log: $log)" >&2; exit 1; fi
  if .venv/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
       "http://127.0.0.1:$PORT/hub/api/" 2>/dev/null; then break; fi
  sleep 0.5
done

cat <<EOF

  bubble-manager demo hub: http://hub.localhost:$PORT/      (the panel: Services > bubble-manager)

  Sign in through the DEVELOPMENT OIDC provider (demo only, never for real data):
$(sed -n '/^demo users/,$p' "$provider_log")

    alice, bob   researchers, members of study t2d-statins (requested by eve): open its bubble from the panel
    sam          data steward (reviews requests)        ada   platform admin (operates, cannot open bubbles)
    nina         in no allowed group (refused)          otto  no second factor (refused)

  Browsers resolve *.localhost to this machine; the panel and each user's bubbles live on their own
  subdomains. From another machine, tunnel the port: ssh -L $PORT:127.0.0.1:$PORT this-host
  Logs: $log and $provider_log        Ctrl-C stops the demo.

EOF
wait "$hub"
