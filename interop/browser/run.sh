#!/usr/bin/env bash
# A real browser against `quiver serve`: headless Chromium (Debian's
# `chromium`) forced onto QUIC for the server's origin loads a page whose
# stylesheet, image and 2 MB script are sub-resources, over HTTP/3.
#
#   bash interop/browser/run.sh
#   QUIVER_CHROMIUM=/path/to/chrome bash interop/browser/run.sh
#
# Checks that the DOM Chromium dumps shows the page with its
# sub-resources applied (a load handler writes the stylesheet's colour,
# the image's width and a checksum of the script's string into the page),
# and that `quiver serve -v` logged every request over HTTP/3. Chromium
# sends nothing beyond loopback: every host but localhost resolves to
# nothing, background networking and updates are off. There is no TCP
# listener, so a page that loads came over QUIC.
#
# Installs chromium with apt when run as root; when it cannot be had,
# the cases are skipped, loudly. Prints one line per case and a summary
# `N passed, N failed, N skipped` (as interop/external/run.sh does);
# exits non-zero on any failure.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
WORK=$(mktemp -d /tmp/quiver-browser.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
PASS=0
FAIL=0
SKIP=0
PORT=${QUIVER_BROWSER_PORT:-25433}

say() { printf '%-58s %s\n' "$1" "$2"; }
pass() { PASS=$((PASS + 1)); say "$1" "ok${2:+ ($2)}"; }
fail() { FAIL=$((FAIL + 1)); say "$1" "FAILED${2:+: $2}"; }
skip() { SKIP=$((SKIP + 1)); say "$1" "SKIPPED${2:+: $2}"; }
summary() { echo "$PASS passed, $FAIL failed, $SKIP skipped"; [ "$FAIL" = 0 ]; }
# Waits until something listens on UDP port $1.
wait_udp() {
    for _ in $(seq 100); do
        ss -Hlun "sport = :$1" 2>/dev/null | grep -q . && return 0
        sleep 0.05
    done
    return 1
}

# QUIVER_CHROMIUM names the browser to use (nothing is installed then).
CHROMIUM=${QUIVER_CHROMIUM:-$(command -v chromium || command -v chromium-browser)}
[ -x "$CHROMIUM" ] || CHROMIUM=
if [ -z "$CHROMIUM" ] && [ -z "${QUIVER_CHROMIUM:-}" ] && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
        >"$WORK/apt.log" 2>&1
    CHROMIUM=$(command -v chromium)
fi
if [ -z "$CHROMIUM" ]; then
    echo "!!! SKIP: no chromium (not installed; apt-get install chromium failed or was" \
        "not tried): nothing was checked against a browser !!!"
    skip "chromium -> quiver serve: page over HTTP/3" "chromium not installed"
    skip "chromium -> quiver serve: requests logged over HTTP/3" "chromium not installed"
    skip "chromium -> quiver serve --retry" "chromium not installed"
    summary
    exit
fi
VERSION=$("$CHROMIUM" --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -n1)

cargo build -q --release -p quiver-cli || exit 1
QUIVER=$ROOT/target/release/quiver

# The site: a page, its stylesheet, a 1x1 PNG and a 2 MB script (many
# packets, flow-control updates); the load handler reports what arrived.
mkdir -p "$WORK/www" "$WORK/certs"
cat >"$WORK/www/index.html" <<'EOF'
<!doctype html>
<html><head><meta charset="utf-8"><title>quiver over HTTP/3</title>
<link rel="stylesheet" href="style.css"><script src="big.js"></script></head>
<body><h1 id="hello">Hello from quiver</h1><img id="dot" src="dot.png" alt="dot">
<p id="result">not loaded</p>
<script>
window.addEventListener('load', () => {
  const color = getComputedStyle(document.getElementById('hello')).color;
  const width = document.getElementById('dot').naturalWidth;
  let h = 0;
  for (let i = 0; i < window.big.length; i++) h = (h * 31 + window.big.charCodeAt(i)) >>> 0;
  document.getElementById('result').textContent =
    'css ' + color + ', image ' + width + 'px, script ' + window.big.length + ' ' + h;
});
</script></body></html>
EOF
echo 'h1 { color: rgb(1, 2, 3); }' >"$WORK/www/style.css"
base64 -d >"$WORK/www/dot.png" <<<'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=='
# The script's string and the checksum the page must compute from it.
EXPECT=$(python3 - "$WORK/www/big.js" <<'EOF'
import base64, os, sys
s = base64.b64encode(os.urandom(1_500_000)).decode()
open(sys.argv[1], "w").write('window.big = "' + s + '";\n')
h = 0
for c in s:
    h = (h * 31 + ord(c)) & 0xFFFFFFFF
print(f"css rgb(1, 2, 3), image 1px, script {len(s)} {h}")
EOF
) || { echo "python3 failed"; exit 1; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$WORK/certs/key.pem" -out "$WORK/certs/cert.pem" -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -addext "basicConstraints=critical,CA:FALSE" 2>/dev/null || { echo "openssl failed"; exit 1; }
# Chromium trusts the certificate by the SHA-256 of its public key
# (SubjectPublicKeyInfo, DER), base64.
SPKI=$(openssl x509 -in "$WORK/certs/cert.pem" -pubkey -noout |
    openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)

serve() { # quiver serve on $PORT with extra flags; sets SERVER
    "$QUIVER" serve -v --listen "127.0.0.1:$PORT" --root "$WORK/www" \
        --cert "$WORK/certs/cert.pem" --key "$WORK/certs/key.pem" "$@" >"$WORK/serve.log" 2>&1 &
    SERVER=$!
    wait_udp "$PORT"
}
stop() { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; PORT=$((PORT + 1)); }

# Loads https://localhost:$PORT/ in a fresh profile; the DOM goes to $1.
browse() {
    rm -rf "$WORK/profile"
    timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu \
        --user-data-dir="$WORK/profile" \
        --origin-to-force-quic-on="localhost:$PORT" \
        --ignore-certificate-errors-spki-list="$SPKI" \
        --host-resolver-rules='MAP localhost 127.0.0.1, MAP * ~NOTFOUND' \
        --disable-background-networking --disable-component-update --disable-sync \
        --no-first-run --dump-dom "https://localhost:$PORT/" >"$1" 2>"$WORK/chromium.log"
}

# What the page wrote, or what went wrong.
result_of() {
    grep -o '<p id="result">[^<]*' "$1" | sed 's/.*>//' | grep . ||
        echo "no page: $(grep -v 'dbus\|^$' "$WORK/chromium.log" | tail -n1)"
}

serve
browse "$WORK/dom.html"
line=$(result_of "$WORK/dom.html")
if grep -q 'Hello from quiver' "$WORK/dom.html" && [ "$line" = "$EXPECT" ]; then
    pass "chromium -> quiver serve: page over HTTP/3" "Chromium $VERSION: $line"
else fail "chromium -> quiver serve: page over HTTP/3" "$line"; fi
missing=
for request in "GET /: 200" "GET /style.css: 200" "GET /dot.png: 200" "GET /big.js: 200"; do
    grep -q ": HTTP/3 $request" "$WORK/serve.log" || missing="$missing, $request"
done
if grep -q ": connected (HTTP/3" "$WORK/serve.log" && ! grep -q "(HTTP/0.9" "$WORK/serve.log" &&
    [ -z "$missing" ]; then
    pass "chromium -> quiver serve: requests logged over HTTP/3" \
        "$(grep -c ': HTTP/3 GET' "$WORK/serve.log") requests"
else fail "chromium -> quiver serve: requests logged over HTTP/3" "not logged: ${missing#, }"; fi
# Chromium offers the hybrid post-quantum group X25519MLKEM768, whose key
# share makes its ClientHello span two Initial packets; quiver accepts it.
line=$(grep -m1 ": connected (HTTP/3" "$WORK/serve.log")
if [[ $line == *x25519mlkem768* ]]; then
    pass "chromium -> quiver serve: X25519MLKEM768 key exchange" "$line"
else fail "chromium -> quiver serve: X25519MLKEM768 key exchange" "${line:-no connection logged}"; fi
stop

serve --retry
browse "$WORK/dom-retry.html"
line=$(result_of "$WORK/dom-retry.html")
if [ "$line" = "$EXPECT" ] && grep -q ": retry" "$WORK/serve.log"; then
    pass "chromium -> quiver serve --retry" "$line"
else fail "chromium -> quiver serve --retry" "$line"; fi
stop

summary
