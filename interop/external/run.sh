#!/usr/bin/env bash
# quiver against independent QUIC implementations that are not in this
# repository, both directions, on loopback:
#   - aioquic (PyPI), over HTTP/0.9 (ALPN hq-interop) with aioquic_peer.py
#     and over HTTP/3 (ALPN h3, aioquic.h3) with aioquic_h3.py;
#   - ngtcp2 (Debian's ngtcp2-client/ngtcp2-server: gtlsclient/gtlsserver,
#     which speak HTTP/3 only: gtlsclient downloads from `quiver serve`,
#     also moving to `quiver serve --preferred-address`, and `quiver get`
#     downloads from gtlsserver, also moving to its --preferred-ipv4-addr);
#   - s2n-quic and quiche (crates.io), over HTTP/0.9, with small peers of
#     our own in interop/peers (s2n.sh, quiche.sh: each builds its peer
#     and runs on its own too).
#
#   bash interop/external/run.sh            # everything it can install
#   QUIVER_EXTERNAL=aioquic bash interop/external/run.sh   # also s2n, quiche, ngtcp2, wire
#
# Installs what is missing (pip into target/external-venv; apt for ngtcp2
# when run as root), builds `quiver` in release mode, prints one line per
# case and a summary `N passed, N failed, N skipped`; exits non-zero on any
# failure. A peer that cannot be installed is skipped, not failed. Last,
# wire.sh checks the interop runner's handshake cases (resumption, zerortt,
# keyupdate, chacha20, v2) in decrypted packet captures
# (QUIVER_EXTERNAL=aioquic,ngtcp2 leaves it out). Before that,
# impaired.sh runs the same peers through an impairing relay (relay.py:
# rebinding, loss, corruption, black holes, a bottleneck; ECN marks
# counted). What they share is in lib.sh.
. "$(dirname "$0")/lib.sh"
WHICH=${QUIVER_EXTERNAL:-aioquic,ngtcp2,s2n,quiche,wire}
PORT=${QUIVER_EXTERNAL_PORT:-24433}
next_port() { PORT=$((PORT + 1)); }

serve() { # quiver serve on $PORT with extra flags; sets SERVER
    "$QUIVER" serve -v --listen "127.0.0.1:$PORT" --root "$WORK/www" --cert "$CERT" --key "$KEY" "$@" \
        >"$WORK/serve.log" 2>&1 &
    SERVER=$!
    wait_udp "$PORT"
}
stop() { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; next_port; }

aioquic_cases() {
    install_aioquic || {
        skip "aioquic: not installed" "pip install aioquic failed"
        return
    }
    local venv=$AIOQUIC_VENV
    local py="$venv/bin/python $ROOT/interop/external/aioquic_peer.py"
    local url="https://localhost:$PORT"
    local out t line

    # aioquic client -> quiver server
    serve && out=$WORK/a1 && mkdir -p "$out"
    line=$($py client --ca "$CERT" --out "$out" "$url/1k.bin" "$url/1m.bin" "$url/10m.bin")
    if [[ $line == ok* ]] && same_files "$out" 1k.bin 1m.bin 10m.bin; then
        pass "aioquic client -> quiver: 3 files, checksums" "$line"
    else fail "aioquic client -> quiver: 3 files, checksums" "$line"; fi
    stop

    serve && out=$WORK/a2 && mkdir -p "$out" && url="https://localhost:$PORT"
    local urls=() names=()
    for i in $(seq 500); do urls+=("$url/small/f$i.bin"); names+=("small/f$i.bin"); done
    line=$($py client --ca "$CERT" --out "$out" "${urls[@]}")
    if [[ $line == ok* ]] && same_files "$out" "${names[@]}"; then
        pass "aioquic client -> quiver: 500 small files" "$line"
    else fail "aioquic client -> quiver: 500 small files" "$line"; fi
    line=$($py client --ca "$CERT" --out "$out" "$url/missing")
    if [[ $line == reset* ]]; then pass "aioquic client -> quiver: missing file resets" "$line"
    else fail "aioquic client -> quiver: missing file resets" "$line"; fi
    stop

    serve --retry && out=$WORK/a3 && mkdir -p "$out" && url="https://localhost:$PORT"
    line=$($py client --ca "$CERT" --out "$out" "$url/1m.bin")
    if [[ $line == ok* ]] && same_files "$out" 1m.bin && grep -q ": retry" "$WORK/serve.log"; then
        pass "aioquic client -> quiver --retry" "$line"
    else fail "aioquic client -> quiver --retry" "$line"; fi
    stop

    serve --close-after-hello 0x2a && url="https://localhost:$PORT"
    line=$($py client --ca "$CERT" --timeout 5 --out "$WORK" "$url/1k.bin")
    t=$(awk '{print $NF}' <<<"$line")
    # It holds only Initial keys when the close comes: APPLICATION_ERROR.
    if [[ $line == closed\ 0xc* || $line == closed\ 0x2a* ]] && under "$t" 1; then
        pass "aioquic client -> quiver --close-after-hello" "$line"
    else fail "aioquic client -> quiver --close-after-hello" "$line"; fi
    stop

    # quiver client -> aioquic server
    start_aioquic() {
        $py server --listen "127.0.0.1:$PORT" --root "$WORK/www" --cert "$CERT" --key "$KEY" "$@" \
            >"$WORK/aioquic.log" 2>&1 &
        SERVER=$!
        wait_udp "$PORT"
        url="https://localhost:$PORT"
    }
    start_aioquic && out=$WORK/q1 && mkdir -p "$out"
    if line=$("$QUIVER" get --ca "$CERT" --out "$out" "$url/1k.bin" "$url/1m.bin" "$url/10m.bin" 2>&1) &&
        same_files "$out" 1k.bin 1m.bin 10m.bin; then
        pass "quiver get -> aioquic: 3 files, checksums" "$line"
    else fail "quiver get -> aioquic: 3 files, checksums" "$line"; fi
    urls=()
    for i in $(seq 500); do urls+=("$url/small/f$i.bin"); done
    if line=$("$QUIVER" get --ca "$CERT" --out "$WORK/q2" "${urls[@]}" 2>&1) &&
        same_files "$WORK/q2/small" "${names[@]}"; then
        pass "quiver get -> aioquic: 500 small files" "$line"
    else fail "quiver get -> aioquic: 500 small files" "$line"; fi
    line=$("$QUIVER" get --ca "$CERT" --out "$WORK/q2" "$url/missing" 2>&1)
    if [ $? -ne 0 ] && [[ $line == "error: no such file /missing (stream reset 0x"* ]]; then
        pass "quiver get -> aioquic: missing file" "$line"
    else fail "quiver get -> aioquic: missing file" "$line"; fi
    stop

    start_aioquic --retry && out=$WORK/q3 && mkdir -p "$out"
    if line=$("$QUIVER" get --ca "$CERT" --out "$out" "$url/1m.bin" 2>&1) && same_files "$out" 1m.bin; then
        pass "quiver get -> aioquic --retry" "$line"
    else fail "quiver get -> aioquic --retry" "$line"; fi
    stop

    start_aioquic --close-after-hello 0x2a
    t=$(now)
    line=$("$QUIVER" get --ca "$CERT" --timeout 5 --out "$WORK" "$url/1k.bin" 2>&1)
    local rc=$? took
    took=$(since "$t")
    if [ $rc -ne 0 ] && [[ $line == "error: connection closed by peer: "* ]] && under "$took" 1; then
        pass "quiver get -> aioquic closing after hello" "${took}s: $line"
    else fail "quiver get -> aioquic closing after hello" "rc $rc, ${took}s: $line"; fi
    stop

    # HTTP/3 both ways (aioquic.h3, aioquic_h3.py).
    local h3="$venv/bin/python $ROOT/interop/external/aioquic_h3.py"
    serve && out=$WORK/h1 && mkdir -p "$out" && url="https://localhost:$PORT"
    line=$($h3 client --ca "$CERT" --out "$out" "$url/1k.bin" "$url/1m.bin" "$url/10m.bin")
    if [[ $line == ok* ]] && same_files "$out" 1k.bin 1m.bin 10m.bin &&
        grep -q ": HTTP/3 GET /10m.bin: 200" "$WORK/serve.log"; then
        pass "aioquic h3 client -> quiver: HTTP/3, 3 files, checksums" "$line"
    else fail "aioquic h3 client -> quiver: HTTP/3, 3 files, checksums" "$line"; fi
    line=$($h3 client --ca "$CERT" --out "$out" "$url/missing")
    if [ "$line" = "status /missing 404" ]; then pass "aioquic h3 client -> quiver: missing file is 404" "$line"
    else fail "aioquic h3 client -> quiver: missing file is 404" "$line"; fi
    stop

    $h3 server --listen "127.0.0.1:$PORT" --root "$WORK/www" --cert "$CERT" --key "$KEY" \
        >"$WORK/aioquic.log" 2>&1 &
    SERVER=$!
    wait_udp "$PORT"
    url="https://localhost:$PORT" && out=$WORK/h2 && mkdir -p "$out"
    if line=$("$QUIVER" get --json --ca "$CERT" --out "$out" "$url/1k.bin" "$url/1m.bin" "$url/10m.bin" 2>&1) &&
        [[ $line == *'"protocol":"h3"'* ]] && same_files "$out" 1k.bin 1m.bin 10m.bin; then
        pass "quiver get -> aioquic h3: HTTP/3, 3 files, checksums" "$(cut -c1-60 <<<"$line")..."
    else fail "quiver get -> aioquic h3: HTTP/3, 3 files, checksums" "$line"; fi
    line=$("$QUIVER" get --ca "$CERT" --out "$out" "$url/missing" 2>&1)
    if [ $? -ne 0 ] && [ "$line" = "error: /missing: HTTP 404 Not Found" ]; then
        pass "quiver get -> aioquic h3: missing file" "$line"
    else fail "quiver get -> aioquic h3: missing file" "$line"; fi
    stop
}

ngtcp2_cases() {
    install_ngtcp2 || { skip "ngtcp2: not installed" "apt-get install ngtcp2-client ngtcp2-server failed"; return; }
    local log=$WORK/gt.log t took line

    # gtlsclient speaks HTTP/3, which `quiver serve` offers (ALPN h3):
    # three files, each arriving whole. Quiet: its debug output dumps every
    # byte received in hex, slower than the transfer.
    serve --alpn h3
    mkdir -p "$WORK/gt-dl"
    timeout 20 gtlsclient -q --timeout=5s --exit-on-all-streams-close --download="$WORK/gt-dl" \
        localhost "$PORT" "https://localhost:$PORT/1k.bin" "https://localhost:$PORT/1m.bin" \
        "https://localhost:$PORT/10m.bin" >"$log" 2>&1
    if same_files "$WORK/gt-dl" 1k.bin 1m.bin 10m.bin; then
        pass "ngtcp2 client -> quiver: HTTP/3, 3 files"
    else fail "ngtcp2 client -> quiver: HTTP/3, 3 files" "$(tail -n1 "$WORK/serve.log")"; fi
    stop

    serve --alpn h3 --close-after-hello 0x2a
    t=$(now)
    timeout 10 gtlsclient --timeout=5s "127.0.0.1" "$PORT" "https://127.0.0.1:$PORT/1k.bin" >"$log" 2>&1
    took=$(since "$t")
    line=$(grep -m1 -o "CONNECTION_CLOSE(0x1c) error_code=[A-Z_]*(0x[0-9a-f]*)" "$log")
    if [ -n "$line" ] && under "$took" 1; then
        pass "ngtcp2 client -> quiver --close-after-hello" "${took}s: $line"
    else fail "ngtcp2 client -> quiver --close-after-hello" "${took}s: ${line:-no close seen}"; fi
    stop

    # A key update initiated by the peer (RFC 9001 §6), then a request
    # under the new keys.
    serve --alpn h3
    mkdir -p "$WORK/gt-ku"
    timeout 10 gtlsclient --timeout=2s --key-update=50ms --delay-stream=300ms \
        --exit-on-all-streams-close --download="$WORK/gt-ku" localhost "$PORT" \
        "https://localhost:$PORT/1k.bin" >"$log" 2>&1
    if grep -q "key update confirmed" "$log" && same_files "$WORK/gt-ku" 1k.bin; then
        pass "ngtcp2 client -> quiver: key update"
    else fail "ngtcp2 client -> quiver: key update"; fi
    stop

    # The interop runner's chacha20 case: gtlsclient offers only
    # TLS_CHACHA20_POLY1305_SHA256 (RFC 9001 §5.3); serve -v names the
    # suite of each connection.
    serve --alpn h3
    rm -rf "$WORK/gt-cc" && mkdir -p "$WORK/gt-cc"
    timeout 20 gtlsclient -q --timeout=5s --ciphers=NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305 \
        --exit-on-all-streams-close --download="$WORK/gt-cc" localhost "$PORT" \
        "https://localhost:$PORT/1m.bin" >"$log" 2>&1
    line=$(grep -m1 "connected (" "$WORK/serve.log")
    if same_files "$WORK/gt-cc" 1m.bin && [[ $line == *chacha20* ]]; then
        pass "ngtcp2 client -> quiver: chacha20" "$line"
    else fail "ngtcp2 client -> quiver: chacha20" "${line:-no connection logged}"; fi
    stop

    # The server's preferred address (RFC 9000 §9.6) on another loopback
    # address: gtlsclient moves there by default, validating the path,
    # and then gets nearly every packet from it (its log names the peer
    # address of each packet; --no-quic-dump keeps the log small); with
    # --no-preferred-addr it stays. The file arrives whole either way.
    local pref n_pref n_orig
    for mode in moves stays; do
        serve --alpn h3 --preferred-address 127.0.0.2:0
        pref=""
        for _ in $(seq 100); do
            pref=$(sed -n 's/^preferred address: //p' "$WORK/serve.log")
            [ -n "$pref" ] && break
            sleep 0.05
        done
        rm -rf "$WORK/gt-pa" && mkdir -p "$WORK/gt-pa"
        timeout 20 gtlsclient --no-quic-dump --no-http-dump --timeout=5s --exit-on-all-streams-close \
            $([ $mode = stays ] && echo --no-preferred-addr) --download="$WORK/gt-pa" \
            127.0.0.1 "$PORT" "https://127.0.0.1:$PORT/10m.bin" >"$log" 2>&1
        n_pref=$(grep -c "^Received packet: .* remote=\[${pref%:*}\]:${pref##*:} " "$log")
        n_orig=$(grep -c "^Received packet: .* remote=\[127.0.0.1\]:$PORT " "$log")
        line="$n_orig packets from the original address, $n_pref from the preferred ${pref:-(none printed)}"
        if [ -z "$pref" ] || ! same_files "$WORK/gt-pa" 10m.bin; then
            fail "ngtcp2 client -> quiver --preferred-address: $mode" "${pref:+file differs; }$line"
        elif [ $mode = moves ] && grep -q "path has been validated" "$log" &&
            [ "$n_pref" -gt $((n_orig * 4)) ]; then
            pass "ngtcp2 client -> quiver --preferred-address: moves" "$line"
        elif [ $mode = stays ] && [ "$n_pref" = 0 ] && [ "$n_orig" -gt 0 ]; then
            pass "ngtcp2 client -> quiver --preferred-address: stays" "$line"
        else fail "ngtcp2 client -> quiver --preferred-address: $mode" "$line"; fi
        stop
    done

    # quiver get against gtlsserver over HTTP/3: three files, each whole,
    # and a missing one, which gtlsserver answers with 404.
    gtlsserver -q --timeout=5s -d "$WORK/www" 127.0.0.1 "$PORT" "$KEY" "$CERT" >"$WORK/gts.log" 2>&1 &
    SERVER=$!
    wait_udp "$PORT"
    mkdir -p "$WORK/gts-dl"
    local url="https://localhost:$PORT"
    if line=$("$QUIVER" get --json --ca "$CERT" --timeout 5 --out "$WORK/gts-dl" \
        "$url/1k.bin" "$url/1m.bin" "$url/10m.bin" 2>&1) &&
        [[ $line == *'"protocol":"h3"'* ]] && same_files "$WORK/gts-dl" 1k.bin 1m.bin 10m.bin; then
        pass "quiver get -> ngtcp2: HTTP/3, 3 files, checksums" "$(cut -c1-60 <<<"$line")..."
    else fail "quiver get -> ngtcp2: HTTP/3, 3 files, checksums" "$line"; fi
    line=$("$QUIVER" get --ca "$CERT" --timeout 5 --out "$WORK/gts-dl" "$url/missing" 2>&1)
    if [ $? -ne 0 ] && [ "$line" = "error: /missing: HTTP 404 Not Found" ]; then
        pass "quiver get -> ngtcp2: missing file" "$line"
    else fail "quiver get -> ngtcp2: missing file" "$line"; fi
    stop

    # The chacha20 case the other way: `quiver get --cipher chacha20`.
    gtlsserver -q --timeout=5s -d "$WORK/www" 127.0.0.1 "$PORT" "$KEY" "$CERT" >"$WORK/gts.log" 2>&1 &
    SERVER=$!
    wait_udp "$PORT"
    rm -rf "$WORK/gts-cc" && mkdir -p "$WORK/gts-cc"
    url="https://localhost:$PORT"
    line=$("$QUIVER" get -v --cipher chacha20 --ca "$CERT" --timeout 5 --out "$WORK/gts-cc" \
        "$url/1m.bin" 2>&1)
    if [ $? -eq 0 ] && same_files "$WORK/gts-cc" 1m.bin && [[ $line == *"TLS cipher suite: chacha20"* ]]; then
        pass "quiver get --cipher chacha20 -> ngtcp2" "$(grep -m1 'cipher suite' <<<"$line")"
    else fail "quiver get --cipher chacha20 -> ngtcp2" "$(tail -2 <<<"$line")"; fi
    stop

    # quiver get against gtlsserver's preferred address (RFC 9000 §9.6, the
    # interop runner's connectionmigration case): by default it validates
    # the preferred address after the handshake and moves there (`-v`
    # says where it ended); with --no-migrate it stays. Files whole both
    # ways.
    local pa_port=$((PORT + 100))
    gtlsserver -q --timeout=5s --preferred-ipv4-addr="127.0.0.2:$pa_port" -d "$WORK/www" \
        127.0.0.1 "$PORT" "$KEY" "$CERT" >"$WORK/gts-pa.log" 2>&1 &
    SERVER=$!
    wait_udp "$PORT"
    url="https://localhost:$PORT"
    for mode in moves stays; do
        rm -rf "$WORK/gts-pa" && mkdir -p "$WORK/gts-pa"
        line=$("$QUIVER" get -v --ca "$CERT" --timeout 5 --out "$WORK/gts-pa" \
            $([ $mode = stays ] && echo --no-migrate) "$url/1m.bin" "$url/10m.bin" 2>&1)
        local ok=$? where
        where=$(grep -E "preferred address|address unchanged" <<<"$line" | head -1)
        if [ $ok -eq 0 ] && same_files "$WORK/gts-pa" 1m.bin 10m.bin &&
            { { [ $mode = moves ] && [[ $where == *"moved to the server's preferred address 127.0.0.2:$pa_port"* ]]; } ||
                { [ $mode = stays ] && [[ $where == *"address unchanged"* ]]; }; }; then
            pass "quiver get -> ngtcp2 --preferred-ipv4-addr: $mode" "$where"
        else fail "quiver get -> ngtcp2 --preferred-ipv4-addr: $mode" "$(tail -3 <<<"$line")"; fi
    done
    stop
}

# s2n.sh and quiche.sh run as scripts of their own (they build their
# peers, crates of their own under interop/peers); their lines are shown
# and their counts join ours.
peer_script() {
    local log=$WORK/$1.out counts
    bash "$ROOT/interop/external/$1.sh" | tee "$log" | grep -Ev '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$'
    counts=$(tail -n 1 "$log")
    if [[ $counts =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed,\ ([0-9]+)\ skipped$ ]]; then
        PASS=$((PASS + BASH_REMATCH[1]))
        FAIL=$((FAIL + BASH_REMATCH[2]))
        SKIP=$((SKIP + BASH_REMATCH[3]))
    else fail "interop/external/$1.sh" "ended without its summary: $counts"; fi
}

[[ $WHICH == *aioquic* ]] && aioquic_cases
[[ $WHICH == *ngtcp2* ]] && ngtcp2_cases
[[ $WHICH == *s2n* ]] && peer_script s2n
[[ $WHICH == *quiche* ]] && peer_script quiche
# The same peers through an impairing relay (impaired.sh, sourced: it
# shares the counters, files and build; QUIVER_IMPAIRED=0 leaves it out).
[ "${QUIVER_IMPAIRED:-1}" = 1 ] && . "$ROOT/interop/external/impaired.sh"
[[ $WHICH == *wire* ]] && . "$ROOT/interop/external/wire.sh"
summary
