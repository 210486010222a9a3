#!/usr/bin/env bash
# The demo behind `make demo`: builds a synthetic warehouse and walks one study through its
# lifecycle with the CLI, printing each command before it runs. Demo data only, no real person.
set -euo pipefail
cd "$(dirname "$0")/.."
BM=".venv/bin/bubble-manager"
HOME_DIR="${BUBBLE_MANAGER_HOME:-$PWD/var}"
PERSONS="${DEMO_PERSONS:-20000}"

if [ -e "$HOME_DIR" ] && [ ! -e "$HOME_DIR/.demo" ]; then
  echo "error: $HOME_DIR exists and is not a demo folder; set BUBBLE_MANAGER_HOME to another folder" >&2
  exit 2
fi
rm -rf "$HOME_DIR"
mkdir -p "$HOME_DIR/warehouse"
touch "$HOME_DIR/.demo"
export BUBBLE_MANAGER_HOME="$HOME_DIR"

step() { echo; echo "\$ bubble-manager $*"; "$BM" "$@"; }
refused() { echo; echo "\$ bubble-manager $*   # expected to be refused"; if "$BM" "$@"; then echo "BUG: accepted" >&2; exit 1; fi; }

step demo-warehouse --persons "$PERSONS" --seed 7 --out "$HOME_DIR/warehouse/warehouse.duckdb"
step keys init
# Two custodians hold the shares of each study's archive key (k=2 of n=2). Each makes an age
# identity on their own machine and keeps it offline; the demo keeps them in HOME/custodians/.
mkdir -p -m 700 "$HOME_DIR/custodians"
for custodian in claire david; do
  identity="$HOME_DIR/custodians/$custodian.age"
  echo; echo "\$ bubble-manager keys custodian-new --out $identity"
  public=$("$BM" keys custodian-new --out "$identity" | sed -n 1p)
  echo "${public:0:24}... (the public key; the identity stays with $custodian)"
  echo; echo "\$ bubble-manager keys custodians add $custodian ${public:0:24}... --actor admin"
  "$BM" keys custodians add "$custodian" "$public" --actor admin
done

today=$(date -u +%F)
ends=$(date -u -d "+90 days" +%F)
request="$HOME_DIR/t2d-statins.yaml"
sed -e "s/^starts: .*/starts: $today/" -e "s/^ends: .*/ends: $ends/" docs/examples/study-request.yaml > "$request"
echo; echo "request file $request (starts $today, ends $ends)"

step studies request --file "$request" --actor carol
step studies submit t2d-statins --actor carol
refused studies approve t2d-statins --actor carol
refused studies approve t2d-statins --actor alice
step studies request-changes t2d-statins --actor sam --comment "Please state the follow-up period in the purpose."
sed -i 's/over two years of follow-up./over two years of follow-up (2018-2024)./' "$request"
step studies edit --file "$request" --actor carol
step studies submit t2d-statins --actor carol
step studies approve t2d-statins --actor sam --comment "Minimal data, sound legal basis."
step studies activate t2d-statins --actor admin
step studies extend t2d-statins --until "$(date -u -d '+120 days' +%F)" --actor alice
step studies approve t2d-statins --actor sam --comment "Extension for the revision of the paper."
step studies show t2d-statins
step studies list
step audit verify
echo
echo "demo home: $HOME_DIR (warehouse, keys, store, audit checkpoints)"
