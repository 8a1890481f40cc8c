#!/usr/bin/env bash
# The README's front door, exactly as written, in this clone and with nothing set that the
# README does not tell a newcomer to set:
#   1. its first command (`npm install && npm start`), in the background, until it says it runs;
#   2. a second `npm start` beside it must refuse in words;
#   3. the "Call it" block, as written, in an empty directory: connect, confirm, token, capability, git clone;
#   4. Ctrl-C, the first command again: the connection and the capability still work;
#   5. its second command (`npm install && npm test`).
# Writes artifacts/readme.json (checks passed and failed) for scripts/summary.mjs.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p artifacts
work=$(mktemp -d)
passed=0
failed=0
pid=""

check() { # check NAME COMMAND...: runs the command, counts and prints the outcome
  local name=$1
  shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); echo "FAIL $name"; fi
}
report() { printf '{"numPassedTests":%d,"numFailedTests":%d}\n' "$passed" "$failed" >artifacts/readme.json; }
stop_start() {
  [ -n "$pid" ] || return 0
  kill -INT -- "-$pid" 2>/dev/null
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$pid" 2>/dev/null
  pid=""
}
trap 'stop_start; report; rm -rf "$work"' EXIT

# The two commands: the first fenced sh block's lines that run npm start and npm test.
commands=$(awk '/^```sh$/{on=1; next} on && /^```$/{exit} on' README.md)
start_line=$(grep -m1 'npm start' <<<"$commands")
test_line=$(grep -m1 'npm test' <<<"$commands")
# The "Call it" block.
awk '/^## Call it/{s=1} s && /^```sh$/{on=1; next} on && /^```$/{exit} on' README.md >"$work/call-it.sh"
[ -n "$start_line" ] && [ -n "$test_line" ] && [ -s "$work/call-it.sh" ] || { echo "README: the two commands or the Call it block not found"; failed=1; exit 1; }

start() { # runs the README's first command in its own process group; waits until it says it runs
  setsid bash -c "$start_line" >"artifacts/npm-start-$1.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 360); do
    grep -q "Token broker is running" "artifacts/npm-start-$1.log" && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  echo "--- npm start ($1) ---"
  tail -40 "artifacts/npm-start-$1.log"
  return 1
}

echo "README, first command: $start_line"
check "npm start serves the broker and the emulators" start first || exit 1

second() {
  local out
  out=$(npm start 2>&1)
  local code=$?
  [ "$code" -ne 0 ] && grep -q "already running" <<<"$out" || { echo "$out" | tail -5; return 1; }
}
check "a second npm start says it is already running and exits" second

echo "README, Call it:"
call_it() {
  (cd "$work" && printf '\nprintf %%s "$REMOTE" > remote.txt\n' >>call-it.sh && bash -eo pipefail call-it.sh) | tee "$work/call-it.out"
}
check "the Call it block runs as written" call_it
check "it connected alice as octocat" grep -q '"status":"connected","appType":"standard","githubUserId":"583231","githubLogin":"octocat"' "$work/call-it.out"
check "its git clone has the repository" test -f "$work/hello-world/README.md"

stop_start
check "npm start starts again on the same state" start second || exit 1
connected() {
  curl -sS -H "Authorization: Bearer dev-internal-api-token" "http://127.0.0.1:8787/v1/users/alice/connection?appType=standard" | grep -q '"status":"connected"'
}
check "after the restart alice is still connected" connected
check "after the restart the capability still clones" git clone -q "$(cat "$work/remote.txt")" "$work/again"
stop_start

echo "README, second command: $test_line"
check "npm test" bash -c "$test_line"
[ "$failed" -eq 0 ]
