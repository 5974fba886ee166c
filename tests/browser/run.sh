#!/usr/bin/env bash
# Browser test of `googlenet serve`'s page: headless Chromium (playwright-core driving Debian's
# chromium) opens the page, uploads a reference image through its file input, and the top-1 name
# the page shows must be `googlenet classify --json`'s for that image; the page must name the model
# and its variant and draw 5 bars. SCREENSHOT=path saves the page as it looks then.
#
# Needs: a release build (BIN, default target/release/googlenet), node, `npm ci` in tests/browser,
# chromium (CHROMIUM, default /usr/bin/chromium), and ../shared. About 10 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/release/googlenet}
WEIGHTS=../shared/reference/torchvision/torchvision_seed1234_calibrated.pth
IMAGE=../shared/reference/inputs/2_hymenoptera_val_ant.png
for f in "$WEIGHTS" "$IMAGE"; do
  [ -f "$f" ] || { echo "ground truth missing: $f (this test needs ../shared beside the repository)"; exit 1; }
done

json_field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);console.log(eval(process.argv[1]))})' "$1"; }

want=$("$BIN" classify --variant torchvision --json --top 1 --weights "$WEIGHTS" "$IMAGE" | json_field 'v[0].top[0].name')

work=$(mktemp -d)
"$BIN" serve --variant torchvision --weights "$WEIGHTS" --listen 127.0.0.1:0 >"$work/out" 2>"$work/err" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 600); do
  grep -q '^listening on ' "$work/out" && break
  kill -0 "$server" 2>/dev/null || { cat "$work/err"; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/^listening on //p' "$work/out")
[[ $url == http://127.0.0.1:* ]] || { echo "no loopback address: $url"; exit 1; }

got=$(node tests/browser/page_test.mjs "$url/" "$IMAGE" ${SCREENSHOT:+"$SCREENSHOT"})
echo "page: $got"
top1=$(json_field 'v.top1' <<<"$got")
model=$(json_field 'v.model' <<<"$got")
bars=$(json_field 'v.bars' <<<"$got")
status=0
[ "$top1" = "$want" ] || { echo "FAIL: the page's top-1 is '$top1', classify --json says '$want'"; status=1; }
[[ $model == *GoogLeNet*torchvision* ]] || { echo "FAIL: the page does not name the model and variant: '$model'"; status=1; }
[ "$bars" = 5 ] || { echo "FAIL: $bars bars instead of the top 5"; status=1; }
[ $status = 0 ] && echo "browser test passed: top-1 '$top1' as classify --json"
exit $status
