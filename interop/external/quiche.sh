#!/usr/bin/env bash
# quiver against Cloudflare's quiche (crates.io), both directions, on
# loopback, over HTTP/0.9 (ALPN hq-interop) and HTTP/3 (ALPN h3, quiche's
# own quiche::h3: a third HTTP/3 implementation beside aioquic's and
# nghttp3), with the peer in interop/peers/quiche (`quiche-peer
# client|server`, a standalone crate that builds quiche's vendored
# BoringSSL with cmake and a C/C++ compiler):
#   - quiche client -> `quiver serve`: 3 files, 500 small files, a missing
#     file, --retry, resumption, 0-RTT, chacha20; over HTTP/3, 3 files and
#     a missing one (404);
#   - `quiver get` -> quiche server: the same files, a missing file,
#     --key-update, --cipher chacha20, --resume, --0rtt, the quiche server
#     with --retry; over HTTP/3 (quiver's choice when the server offers
#     h3), 3 files and a missing one (404).
# What quiche cannot do is skipped, loudly: starting a key update (it only
# answers the peer's) and ECN (it neither marks nor reports).
#
#   bash interop/external/quiche.sh
#   QUIVER_QUICHE_PORT=34400 bash interop/external/quiche.sh
#
# Installs cmake with apt when missing (as root), builds quiche-peer in
# target/peers/quiche (a failed build is a skip of every case, never a
# pass) and `quiver` in release mode (lib.sh); servers listen on ports
# from 34400 up, one each. Prints one line per case and the summary
# `N passed, N failed, N skipped`; exits non-zero on any failure.
. "$(dirname "$0")/lib.sh"
PORT=${QUIVER_QUICHE_PORT:-34400}
PEER_DIR=$ROOT/interop/peers/quiche
PEER_TARGET=$ROOT/target/peers/quiche
PEER=$PEER_TARGET/release/quiche-peer

# cmake (apt, as root) and the peer; fails (the caller skips) when either
# cannot be had.
build_quiche() {
    if ! command -v cmake >/dev/null; then
        if [ "$(id -u)" = 0 ]; then
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake) \
                >"$WORK/apt.log" 2>&1
        fi
        command -v cmake >/dev/null || { BUILD_ERROR="cmake missing, apt-get install cmake failed"; return 1; }
    fi
    (cd "$PEER_DIR" && CARGO_TARGET_DIR=$PEER_TARGET cargo build -q --release --locked) \
        >"$WORK/quiche-build.log" 2>&1 || {
        BUILD_ERROR="cargo build failed: $(grep -m1 -E '^error' "$WORK/quiche-build.log")"
        return 1
    }
}

next_port() { PORT=$((PORT + 1)); }
stop() { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; next_port; }
serve() { # quiver serve on $PORT with extra flags; sets SERVER and URL
    "$QUIVER" serve -v --listen "127.0.0.1:$PORT" --root "$WORK/www" --cert "$CERT" --key "$KEY" "$@" \
        >"$WORK/serve.log" 2>&1 &
    SERVER=$!
    URL=https://localhost:$PORT
    wait_udp "$PORT"
}
quiche_serve() { # the quiche server on $PORT with extra flags
    "$PEER" server --listen "127.0.0.1:$PORT" --root "$WORK/www" --cert "$CERT" --key "$KEY" "$@" \
        >"$WORK/quiche-serve.log" 2>&1 &
    SERVER=$!
    URL=https://localhost:$PORT
    wait_udp "$PORT"
}
quiche_get() { # DIR URL...: the quiche client's line
    local out=$1
    shift
    rm -rf "$out" && mkdir -p "$out"
    timeout 60 "$PEER" client --ca "$CERT" --timeout 5 --out "$out" "$@" 2>>"$WORK/quiche-client.log"
}
quiver_get() { # DIR FLAGS/URL...: quiver get's output, stdout and stderr
    local out=$1
    shift
    rm -rf "$out" && mkdir -p "$out"
    timeout 60 "$QUIVER" get --alpn hq-interop --ca "$CERT" --timeout 5 --out "$out" "$@" 2>&1
}
quiver_get_any() { # as quiver_get, ALPN left to quiver (h3 when offered)
    local out=$1
    shift
    rm -rf "$out" && mkdir -p "$out"
    timeout 60 "$QUIVER" get --ca "$CERT" --timeout 5 --out "$out" "$@" 2>&1
}

t=$(now)
if ! build_quiche; then
    skip "quiche: every case (peer not built)" "$BUILD_ERROR"
    summary
    exit
fi
echo "quiche-peer built in $(since "$t") s"
t=$(now)
SMALL=() NAMES=()
for i in $(seq 500); do NAMES+=("small/f$i.bin"); done

# quiche client -> quiver serve
serve && out=$WORK/c1
line=$(quiche_get "$out" "$URL/1k.bin" "$URL/1m.bin" "$URL/10m.bin")
if [[ $line == ok* ]] && same_files "$out" 1k.bin 1m.bin 10m.bin; then
    pass "quiche client -> quiver: 3 files, checksums" "$line"
else fail "quiche client -> quiver: 3 files, checksums" "$line"; fi
SMALL=()
for f in "${NAMES[@]}"; do SMALL+=("$URL/$f"); done
line=$(quiche_get "$WORK/c2" "${SMALL[@]}")
if [[ $line == ok* ]] && same_files "$WORK/c2" "${NAMES[@]}"; then
    pass "quiche client -> quiver: 500 small files" "$line"
else fail "quiche client -> quiver: 500 small files" "$line"; fi
line=$(quiche_get "$WORK/c3" "$URL/missing")
if [ $? -ne 0 ] && [[ $line == "reset /missing 0x"* ]]; then
    pass "quiche client -> quiver: missing file resets" "$line"
else fail "quiche client -> quiver: missing file resets" "$line"; fi
# Resumption: the first URL, then the others on a second connection
# resuming the first one's session (quiver serve -v says so).
line=$(quiche_get "$WORK/c4" --resume "$URL/1k.bin" "$URL/5k.bin" "$URL/100k.bin")
if [[ $line == ok*" resumed 0,1" ]] && same_files "$WORK/c4" 1k.bin 5k.bin 100k.bin &&
    grep -q "connected (HTTP/0.9, resumed," "$WORK/serve.log"; then
    pass "quiche client -> quiver: resumption" "$line"
else fail "quiche client -> quiver: resumption" "$line"; fi
# 0-RTT: as resumption, the second connection's requests in 0-RTT.
line=$(quiche_get "$WORK/c5" --0rtt "$URL/1k.bin" "$URL/5k.bin" "$URL/100k.bin")
if [[ $line == ok*" resumed 0,1 0rtt 1" ]] && same_files "$WORK/c5" 1k.bin 5k.bin 100k.bin &&
    grep -q "resumed, 0-RTT accepted" "$WORK/serve.log"; then
    pass "quiche client -> quiver: 0-RTT" "$line"
else fail "quiche client -> quiver: 0-RTT" "$line"; fi
# chacha20: BoringSSL cannot be told which TLS 1.3 suites to offer; the
# peer masks AES-NI (OPENSSL_ia32cap) and it offers ChaCha20 first.
n=$(grep -c "connected (" "$WORK/serve.log")
line=$(quiche_get "$WORK/c6" --cipher chacha20 "$URL/1m.bin")
suite=$(grep "connected (" "$WORK/serve.log" | sed -n "$((n + 1))p")
if [[ $line == ok* ]] && same_files "$WORK/c6" 1m.bin && [[ $suite == *chacha20* ]]; then
    pass "quiche client -> quiver: chacha20" "${suite#*: }"
else fail "quiche client -> quiver: chacha20" "$line; ${suite:-no connection logged}"; fi
# HTTP/3: quiche's h3 client against quiver-h3.
n=$(grep -c "connected (HTTP/3" "$WORK/serve.log")
line=$(quiche_get "$WORK/c8" --h3 "$URL/1k.bin" "$URL/1m.bin" "$URL/10m.bin")
if [[ $line == ok* ]] && same_files "$WORK/c8" 1k.bin 1m.bin 10m.bin &&
    [ "$(grep -c "connected (HTTP/3" "$WORK/serve.log")" -gt "$n" ]; then
    pass "quiche h3 client -> quiver: 3 files, checksums" "$line"
else fail "quiche h3 client -> quiver: 3 files, checksums" "$line"; fi
line=$(quiche_get "$WORK/c9" --h3 "$URL/missing")
if [ $? -ne 0 ] && [[ $line == "status /missing 404" ]]; then
    pass "quiche h3 client -> quiver: missing file, 404" "$line"
else fail "quiche h3 client -> quiver: missing file, 404" "$line"; fi
stop

serve --retry
line=$(quiche_get "$WORK/c7" "$URL/1m.bin")
if [[ $line == ok* ]] && same_files "$WORK/c7" 1m.bin && grep -q ": retry" "$WORK/serve.log"; then
    pass "quiche client -> quiver --retry" "$line"
else fail "quiche client -> quiver --retry" "$line"; fi
stop
skip "quiche client -> quiver: key update" "quiche has no API to start one (it answers the peer's)"
skip "quiche <-> quiver: ECN" "quiche neither sets nor reports ECN marks"

# quiver get -> quiche server
quiche_serve
if line=$(quiver_get "$WORK/s1" "$URL/1k.bin" "$URL/1m.bin" "$URL/10m.bin") &&
    same_files "$WORK/s1" 1k.bin 1m.bin 10m.bin; then
    pass "quiver get -> quiche: 3 files, checksums" "$(head -1 <<<"$line")"
else fail "quiver get -> quiche: 3 files, checksums" "$(tail -1 <<<"$line")"; fi
SMALL=()
for f in "${NAMES[@]}"; do SMALL+=("$URL/$f"); done
if line=$(quiver_get "$WORK/s2" "${SMALL[@]}") && same_files "$WORK/s2/small" "${NAMES[@]}"; then
    pass "quiver get -> quiche: 500 small files" "$(head -1 <<<"$line")"
else fail "quiver get -> quiche: 500 small files" "$(tail -1 <<<"$line")"; fi
line=$(quiver_get "$WORK/s3" "$URL/missing")
if [ $? -ne 0 ] && [[ $line == "error: no such file /missing (stream reset 0x10)" ]]; then
    pass "quiver get -> quiche: missing file" "$line"
else fail "quiver get -> quiche: missing file" "$line"; fi
# Key update: quiver starts one as soon as the handshake is confirmed
# (its qlog shows generation 1, local_update); quiche must follow for the
# acknowledgements of 11 MB to get through.
if line=$(quiver_get "$WORK/s4" --key-update --qlog-dir "$WORK/s4q" "$URL/1m.bin" "$URL/10m.bin") &&
    same_files "$WORK/s4" 1m.bin 10m.bin &&
    grep -q '"key_type":"client_1rtt_secret","generation":1,"trigger":"local_update"' "$WORK"/s4q/*; then
    pass "quiver get --key-update -> quiche" "$(head -1 <<<"$line")"
else fail "quiver get --key-update -> quiche" "$(tail -1 <<<"$line")"; fi
line=$(quiver_get "$WORK/s5" -v --cipher chacha20 "$URL/1m.bin")
if [ $? -eq 0 ] && same_files "$WORK/s5" 1m.bin && [[ $line == *"TLS cipher suite: chacha20"* ]]; then
    pass "quiver get --cipher chacha20 -> quiche" "$(grep -m1 'cipher suite' <<<"$line")"
else fail "quiver get --cipher chacha20 -> quiche" "$(tail -2 <<<"$line")"; fi
line=$(quiver_get "$WORK/s6" --json --resume "$URL/1k.bin" "$URL/5k.bin" "$URL/100k.bin")
if [ $? -eq 0 ] && same_files "$WORK/s6" 1k.bin 5k.bin 100k.bin && [[ $line == *'"resumed":[false,true]'* ]] &&
    grep -q "connected (resumed)" "$WORK/quiche-serve.log"; then
    pass "quiver get --resume -> quiche" '"resumed":[false,true]'
else fail "quiver get --resume -> quiche" "$(cut -c1-200 <<<"$line")"; fi
line=$(quiver_get "$WORK/s7" --json --0rtt "$URL/1k.bin" "$URL/5k.bin" "$URL/100k.bin")
if [ $? -eq 0 ] && same_files "$WORK/s7" 1k.bin 5k.bin 100k.bin && [[ $line == *'"zero_rtt":true'* ]] &&
    grep -q "connected (resumed, 0-RTT accepted)" "$WORK/quiche-serve.log"; then
    pass "quiver get --0rtt -> quiche" '"resumed":[false,true], "zero_rtt":true'
else fail "quiver get --0rtt -> quiche" "$(cut -c1-200 <<<"$line")"; fi
# HTTP/3: the quiche server offers h3 beside hq-interop, and quiver get
# takes h3 when offered (quiche's h3 server logs `h3 GET PATH: STATUS`).
if line=$(quiver_get_any "$WORK/s9" "$URL/1k.bin" "$URL/1m.bin" "$URL/10m.bin") &&
    same_files "$WORK/s9" 1k.bin 1m.bin 10m.bin && grep -q "^h3 GET /10m.bin: 200" "$WORK/quiche-serve.log"; then
    pass "quiver get (h3) -> quiche h3: 3 files, checksums" "$(head -1 <<<"$line")"
else fail "quiver get (h3) -> quiche h3: 3 files, checksums" "$(tail -1 <<<"$line")"; fi
line=$(quiver_get_any "$WORK/s10" "$URL/missing")
if [ $? -ne 0 ] && [[ $line == *"HTTP 404"* ]] && grep -q "^h3 GET /missing: 404" "$WORK/quiche-serve.log"; then
    pass "quiver get (h3) -> quiche h3: missing file, 404" "$line"
else fail "quiver get (h3) -> quiche h3: missing file, 404" "$line"; fi
stop

quiche_serve --retry
if line=$(quiver_get "$WORK/s8" "$URL/1m.bin") && same_files "$WORK/s8" 1m.bin &&
    grep -q ": retry" "$WORK/quiche-serve.log"; then
    pass "quiver get -> quiche --retry" "$(head -1 <<<"$line")"
else fail "quiver get -> quiche --retry" "$(tail -1 <<<"$line")"; fi
stop
echo "cases ran in $(since "$t") s"
summary
