#!/usr/bin/env bash
# The QUIC interop runner's handshake cases, verified on the wire: each
# case runs quiver against an independent implementation (aioquic from
# PyPI with aioquic_peer.py, ngtcp2's gtlsclient/gtlsserver from Debian,
# 1.x from bookworm-backports for v2,
# quiche and s2n-quic from crates.io through interop/peers), in both
# directions where the peer can, while dumpcap captures the
# traffic; then tshark decrypts the capture with the TLS key log that
# quiver alone wrote (`--keylog`, SSLKEYLOGFILE) and wire_check.py checks:
#   resumption  the second connection sends no Certificate and its
#               ServerHello carries pre_shared_key (`get --resume`);
#   zerortt     the second connection's 0-RTT packets carry the requests
#               and the server accepted them (`get --0rtt`);
#   keyupdate   short-header packets with key phase 1 from both sides
#               (`get --key-update`);
#   chacha20    TLS_CHACHA20_POLY1305_SHA256 negotiated (`--cipher chacha20`);
#   v2          the client starts in v1 and the Handshake packets are QUIC
#               v2 (`serve --versions v2,v1`, `get --versions v1,v2`);
# Every Handshake, 0-RTT and 1-RTT packet must decrypt with quiver's key
# log: a secret it lacks fails the case.
#
#   sudo bash interop/external/wire.sh      # on its own
#   QUIVER_WIRE_PEERS=aioquic QUIVER_WIRE_PORT=32600 bash interop/external/wire.sh
#   QUIVER_WIRE_KEEP=/tmp/wire bash interop/external/wire.sh   # keep the captures
#
# run.sh sources it last (its results join run.sh's summary). Needs root:
# it installs tshark with apt when missing and captures on the loopback
# device of a network namespace of its own, whose loopback does no
# segmentation offload (on a GSO-capable loopback a capture sees a batch
# of datagrams as one oversize datagram, which tshark cannot split), and
# whose ports nothing else uses. Without root or tshark every case is
# skipped, loudly. Ports: QUIVER_WIRE_PORT (default 32400) and up, one
# per case. Prints one line per case, and with the evidence (tshark's
# counts); on its own, the summary `N passed, N failed, N skipped`.
if [ -z "${QUIVER_EXTERNAL_LIB:-}" ]; then
    . "$(dirname "$0")/lib.sh"
    WIRE_ALONE=1
fi

WIRE_CASES="resumption, zerortt, keyupdate, chacha20, v2"

# Starts capturing UDP port $WPORT on the namespace's loopback into $CAP.
capture_start() {
    "${IN[@]}" dumpcap -i lo -f "udp port $WPORT" -w "$CAP" >"$CAP.log" 2>&1 &
    CAPTURE=$!
    for _ in $(seq 200); do
        grep -q "^File:" "$CAP.log" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# wire_case NAME CHECK [wire_check.py options]: captures while
# wire_server (in the background) and wire_client run, both defined by
# the caller, with SSLKEYLOGFILE=$KEYS for quiver only; then checks the
# capture. The client must succeed, and the files in $WANT (under
# $WORK/wire/dl) arrive whole. With TRIES=N, a case whose capture check
# fails runs again, up to N times in all (the attempt is reported).
wire_case() {
    local name=$1 try line
    shift
    for try in $(seq "${TRIES:-1}"); do
        wire_attempt "$@"
        [ "$ATTEMPT" = ok ] && break
    done
    [ "$try" -gt 1 ] && line="attempt $try of ${TRIES:-1}; "
    case $ATTEMPT in
        ok) pass "$name" "${line:-}$EVIDENCE" ;;
        *) fail "$name" "${line:-}$EVIDENCE" ;;
    esac
}

# One run of a case; sets ATTEMPT (ok, client or capture) and EVIDENCE.
wire_attempt() {
    local check=$1 out rc line
    shift
    WIRE_N=$((WIRE_N + 1))
    CAP=$WORK/wire/$WIRE_N.pcap
    KEYS=$WORK/wire/$WIRE_N.keys
    : >"$KEYS"
    rm -rf "$WORK/wire/dl" && mkdir -p "$WORK/wire/dl"
    if ! capture_start; then
        ATTEMPT=capture EVIDENCE="dumpcap did not start: $(tail -1 "$CAP.log")"
        return
    fi
    wire_server >"$WORK/wire/$WIRE_N.server" 2>&1 &
    local server=$!
    if wait_udp "$WPORT" "${IN[*]}"; then
        out=$(wire_client 2>&1)
        rc=$?
        printf '%s\n' "$out" >"$WORK/wire/$WIRE_N.client"
    else
        out="the server did not start: $(tail -1 "$WORK/wire/$WIRE_N.server")"
        rc=1
    fi
    # dumpcap reads the kernel's capture buffer in blocks, handed over
    # when full or after its read timeout (250 ms): one not yet handed
    # over when it stops is lost (the end of the transfer, the closes).
    sleep 0.6
    kill "$server" 2>/dev/null
    wait "$server" 2>/dev/null
    kill -INT "$CAPTURE" 2>/dev/null
    wait "$CAPTURE" 2>/dev/null
    line=$(python3 "$ROOT/interop/external/wire_check.py" "$check" "$CAP" "$KEYS" "$WPORT" "$@")
    local checked=$?
    WPORT=$((WPORT + 1))
    if [ $rc -ne 0 ] || ! same_files "$WORK/wire/dl" "${WANT[@]}"; then
        ATTEMPT=client EVIDENCE="client: $(tail -1 <<<"$out" | cut -c1-160); capture: ${line#FAILED: }"
    elif [ $checked -ne 0 ]; then
        ATTEMPT=capture EVIDENCE=${line#FAILED: }
    else
        ATTEMPT=ok EVIDENCE=${line#ok }
    fi
}

# quiver serve in the namespace, logging its secrets to $KEYS. The
# servers exec, so that wire_attempt's kill reaches them (not only the
# subshell running wire_server).
quiver_serve() {
    SSLKEYLOGFILE=$KEYS exec "${IN[@]}" "$QUIVER" serve -v --keylog --listen "127.0.0.1:$WPORT" \
        --root "$WORK/www" --cert "$CERT" --key "$KEY" "$@"
}
# quiver get in the namespace, logging its secrets to $KEYS.
quiver_get() {
    SSLKEYLOGFILE=$KEYS timeout 20 "${IN[@]}" "$QUIVER" get -v --keylog --ca "$CERT" --timeout 5 \
        --out "$WORK/wire/dl" "$@"
}
url() { echo "https://localhost:$WPORT/$1"; }
files() { echo "$(url 1k.bin) $(url 5k.bin) $(url 100k.bin)"; } # the three files, on this case's port

wire_aioquic() {
    install_aioquic || {
        skip "wire: aioquic ($WIRE_CASES)" "pip install aioquic failed"
        return
    }
    local py=("${IN[@]}" timeout 20 "$AIOQUIC_VENV/bin/python" "$ROOT/interop/external/aioquic_peer.py")
    aioquic_server() {
        exec "${py[@]}" server --listen "127.0.0.1:$WPORT" --root "$WORK/www" --cert "$CERT" --key "$KEY" "$@"
    }
    aioquic_client() {
        "${py[@]}" client --ca "$CERT" --out "$WORK/wire/dl" "$@"
    }
    WANT=(1k.bin 5k.bin 100k.bin)

    # resumption: the first URL on a first connection, the others on a
    # second one resuming its session.
    wire_server() { quiver_serve; }
    wire_client() { aioquic_client --resume "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"; }
    wire_case "wire resumption: aioquic client -> quiver serve" resumption
    wire_server() { aioquic_server; }
    wire_client() { quiver_get --resume "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"; }
    wire_case "wire resumption: quiver get --resume -> aioquic" resumption

    # zerortt: as resumption, the second connection's requests in 0-RTT.
    # On loopback the server's first flight comes back within half a
    # millisecond: on a busy machine it can beat `quiver get`'s request
    # tasks to the wire, and the handshake completes before they send (in
    # 1-RTT then, as they should). A link with a real round trip (the
    # interop runner's) leaves them time: quiver get's cases try 3 times.
    wire_server() { quiver_serve; }
    wire_client() { aioquic_client --0rtt "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"; }
    wire_case "wire zerortt: aioquic client -> quiver serve" zerortt --paths /5k.bin,/100k.bin
    wire_server() { aioquic_server; }
    wire_client() { quiver_get --0rtt "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"; }
    TRIES=3 wire_case "wire zerortt: quiver get --0rtt -> aioquic" zerortt --paths /5k.bin,/100k.bin

    # keyupdate: the client updates as soon as the handshake is confirmed.
    wire_server() { quiver_serve; }
    wire_client() { aioquic_client --key-update "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"; }
    wire_case "wire keyupdate: aioquic client -> quiver serve" keyupdate
    wire_server() { aioquic_server; }
    wire_client() { quiver_get --key-update "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"; }
    wire_case "wire keyupdate: quiver get --key-update -> aioquic" keyupdate

    # chacha20: the client offers only TLS_CHACHA20_POLY1305_SHA256.
    wire_server() { quiver_serve; }
    wire_client() { aioquic_client --cipher chacha20 "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"; }
    wire_case "wire chacha20: aioquic client -> quiver serve" chacha20
    wire_server() { aioquic_server; }
    wire_client() { quiver_get --cipher chacha20 "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"; }
    wire_case "wire chacha20: quiver get --cipher chacha20 -> aioquic" chacha20

    # v2: a v1 client offering v2 upgraded by a server preferring v2.
    wire_server() { quiver_serve --versions v2,v1; }
    wire_client() { aioquic_client --versions v1,v2 "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"; }
    wire_case "wire v2: aioquic client v1,v2 -> quiver serve v2,v1" v2
    # aioquic's server has no preference of its own: it takes the first
    # version of the client's version_information it supports (RFC 9368
    # §3 lets a server follow the client's order). `get --versions v1,v2`
    # starts in v1 and lists v2 first, so it is upgraded here too.
    wire_server() { aioquic_server; }
    wire_client() { quiver_get --versions v1,v2 "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"; }
    wire_case "wire v2: quiver get --versions v1,v2 -> aioquic" v2
}

wire_ngtcp2() {
    install_ngtcp2 || {
        skip "wire: ngtcp2 ($WIRE_CASES)" "apt-get install ngtcp2-client ngtcp2-server failed"
        return
    }
    # gtlsclient/gtlsserver speak HTTP/3 only. They get no SSLKEYLOGFILE
    # (GnuTLS would honour it): the key log is quiver's.
    gtlsclient_run() { # [options] URL...: one connection
        "${IN[@]}" timeout 20 gtlsclient -q --timeout=5s --exit-on-all-streams-close \
            --download="$WORK/wire/dl" "$@"
    }
    gtlsserver_run() {
        exec "${IN[@]}" timeout 30 gtlsserver -q --timeout=5s -d "$WORK/www" 127.0.0.1 "$WPORT" "$KEY" "$CERT"
    }
    local session=$WORK/wire/gt.session tp=$WORK/wire/gt.tp
    WANT=(1k.bin 5k.bin 100k.bin)

    # resumption: gtlsclient keeps its session (and the server's transport
    # parameters) in files between two runs.
    wire_server() { quiver_serve --alpn h3; }
    wire_client() {
        rm -f "$session" "$tp"
        gtlsclient_run --session-file="$session" --tp-file="$tp" --disable-early-data \
            localhost "$WPORT" "$(url 1k.bin)" &&
            gtlsclient_run --session-file="$session" --tp-file="$tp" --disable-early-data \
                localhost "$WPORT" "$(url 5k.bin)" "$(url 100k.bin)"
    }
    wire_case "wire resumption: ngtcp2 client -> quiver serve" resumption
    wire_server() { gtlsserver_run; }
    wire_client() { quiver_get --resume "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"; }
    wire_case "wire resumption: quiver get --resume -> ngtcp2" resumption

    # zerortt: `quiver serve` takes 0-RTT over HTTP/3 too, and answers
    # it in 0.5-RTT.
    wire_server() { quiver_serve --alpn h3; }
    wire_client() {
        rm -f "$session" "$tp"
        gtlsclient_run --session-file="$session" --tp-file="$tp" localhost "$WPORT" "$(url 1k.bin)" &&
            gtlsclient_run --session-file="$session" --tp-file="$tp" localhost "$WPORT" \
                "$(url 5k.bin)" "$(url 100k.bin)"
    }
    TRIES=3 wire_case "wire zerortt: ngtcp2 client -> quiver serve" zerortt --h3 --paths /5k.bin,/100k.bin
    wire_server() { gtlsserver_run; }
    wire_client() { quiver_get --0rtt "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"; }
    TRIES=3 wire_case "wire zerortt: quiver get --0rtt -> ngtcp2" zerortt --h3 --paths /5k.bin,/100k.bin

    # keyupdate: gtlsclient updates 10 ms after the handshake and holds
    # its requests until after that.
    wire_server() { quiver_serve --alpn h3; }
    wire_client() {
        gtlsclient_run --key-update=10ms --delay-stream=100ms localhost "$WPORT" \
            "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"
    }
    wire_case "wire keyupdate: ngtcp2 client -> quiver serve" keyupdate
    wire_server() { gtlsserver_run; }
    wire_client() { quiver_get --key-update "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"; }
    wire_case "wire keyupdate: quiver get --key-update -> ngtcp2" keyupdate

    # chacha20
    wire_server() { quiver_serve --alpn h3; }
    wire_client() {
        gtlsclient_run --ciphers=NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305 \
            localhost "$WPORT" "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"
    }
    wire_case "wire chacha20: ngtcp2 client -> quiver serve" chacha20
    wire_server() { gtlsserver_run; }
    wire_client() { quiver_get --cipher chacha20 "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"; }
    wire_case "wire chacha20: quiver get --cipher chacha20 -> ngtcp2" chacha20

    # v2: Debian 12's ngtcp2 (0.12) predates RFC 9369 (its "v2draft" is
    # draft version 0x709a50c4, not QUIC v2, 0x6b3343cf), so these run
    # ngtcp2 1.x from bookworm-backports, unpacked beside (lib.sh).
    if ! install_ngtcp2_backports; then
        skip "wire v2: ngtcp2 client -> quiver serve --versions v2,v1" "$NG2_ERROR"
        skip "wire v2: quiver get --versions v1,v2 -> ngtcp2" "$NG2_ERROR"
        return
    fi
    # A v1 client offering v2, upgraded by a server preferring v2.
    wire_server() { quiver_serve --alpn h3 --versions v2,v1; }
    wire_client() {
        "${IN[@]}" env LD_LIBRARY_PATH="$NG2_LIBS" timeout 20 "$NG2_CLIENT" -q --timeout=5s \
            --exit-on-all-streams-close --download="$WORK/wire/dl" --version=v1 --available-versions=v2,v1 \
            localhost "$WPORT" "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"
    }
    wire_case "wire v2: ngtcp2 $NG2_VERSION client v1,v2 -> quiver serve v2,v1" v2
    wire_server() {
        exec "${IN[@]}" env LD_LIBRARY_PATH="$NG2_LIBS" timeout 30 "$NG2_SERVER" -q --timeout=5s \
            --preferred-versions=v2,v1 -d "$WORK/www" 127.0.0.1 "$WPORT" "$KEY" "$CERT"
    }
    wire_client() { quiver_get --versions v1,v2 "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"; }
    wire_case "wire v2: quiver get --versions v1,v2 -> ngtcp2 $NG2_VERSION v2,v1" v2
}

# The crates.io peers (interop/peers), built by s2n.sh and quiche.sh,
# which run.sh runs before this; a peer that is not built is skipped,
# loudly. Both speak HTTP/0.9 (hq-interop) and get no SSLKEYLOGFILE.
QUICHE_PEER=$ROOT/target/peers/quiche/release/quiche-peer
S2N_PEER=$ROOT/target/peers/s2n/release/s2n-peer

wire_quiche() {
    if [ ! -x "$QUICHE_PEER" ]; then
        skip "wire: quiche (resumption, zerortt, keyupdate, chacha20)" \
            "$QUICHE_PEER missing: run interop/external/quiche.sh first"
        return
    fi
    quiche_server() {
        exec "${IN[@]}" timeout 30 "$QUICHE_PEER" server --listen "127.0.0.1:$WPORT" --root "$WORK/www" \
            --cert "$CERT" --key "$KEY" "$@"
    }
    quiche_client() { # [options]: the three files; with --resume/--0rtt the
        # first on a first connection, the others on a resumed second one
        "${IN[@]}" timeout 20 "$QUICHE_PEER" client --ca "$CERT" --timeout 5 --out "$WORK/wire/dl" "$@" \
            "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"
    }
    WANT=(1k.bin 5k.bin 100k.bin)

    wire_server() { quiver_serve; }
    wire_client() { quiche_client --resume; }
    wire_case "wire resumption: quiche client -> quiver serve" resumption
    wire_server() { quiche_server; }
    # The peer's server offers h3 beside hq-interop, and quiver get would
    # take h3: its checks here read HTTP/0.9 requests, so hq-interop.
    wire_client() { quiver_get --alpn hq-interop --resume $(files); }
    wire_case "wire resumption: quiver get --resume -> quiche" resumption

    wire_server() { quiver_serve; }
    wire_client() { quiche_client --0rtt; }
    TRIES=3 wire_case "wire zerortt: quiche client -> quiver serve" zerortt --paths /5k.bin,/100k.bin
    wire_server() { quiche_server; }
    wire_client() { quiver_get --alpn hq-interop --0rtt $(files); }
    TRIES=3 wire_case "wire zerortt: quiver get --0rtt -> quiche" zerortt --paths /5k.bin,/100k.bin

    # quiche answers a key update but cannot start one.
    wire_server() { quiche_server; }
    wire_client() { quiver_get --alpn hq-interop --key-update $(files); }
    wire_case "wire keyupdate: quiver get --key-update -> quiche" keyupdate
    skip "wire keyupdate: quiche client -> quiver serve" "quiche has no API to start a key update"

    wire_server() { quiver_serve; }
    wire_client() { quiche_client --cipher chacha20; }
    wire_case "wire chacha20: quiche client -> quiver serve" chacha20
    wire_server() { quiche_server; }
    wire_client() { quiver_get --alpn hq-interop --cipher chacha20 $(files); }
    wire_case "wire chacha20: quiver get --cipher chacha20 -> quiche" chacha20
}

wire_s2n() {
    if [ ! -x "$S2N_PEER" ]; then
        skip "wire: s2n-quic (keyupdate, chacha20)" "$S2N_PEER missing: run interop/external/s2n.sh first"
        return
    fi
    s2n_server() {
        exec "${IN[@]}" timeout 30 "$S2N_PEER" server --listen "127.0.0.1:$WPORT" --root "$WORK/www" \
            --cert "$CERT" --key "$KEY" "$@"
    }
    s2n_client() {
        "${IN[@]}" timeout 20 "$S2N_PEER" client --ca "$CERT" --timeout 5 --out "$WORK/wire/dl" "$@" \
            "$(url 1k.bin)" "$(url 5k.bin)" "$(url 100k.bin)"
    }
    WANT=(1k.bin 5k.bin 100k.bin)

    # keyupdate: s2n-peer's --key-update N updates after every N packets
    # it sends (its confidentiality limit lowered to N); as a client
    # fetching these files it sends about a dozen.
    wire_server() { quiver_serve; }
    wire_client() { s2n_client --key-update 4; }
    wire_case "wire keyupdate: s2n client -> quiver serve" keyupdate
    wire_server() { s2n_server; }
    wire_client() { quiver_get --key-update $(files); }
    wire_case "wire keyupdate: quiver get --key-update -> s2n" keyupdate

    wire_server() { quiver_serve; }
    wire_client() { s2n_client --cipher chacha20; }
    wire_case "wire chacha20: s2n client -> quiver serve" chacha20
    wire_server() { s2n_server; }
    wire_client() { quiver_get --cipher chacha20 $(files); }
    wire_case "wire chacha20: quiver get --cipher chacha20 -> s2n" chacha20
    local why="s2n-quic has no session tickets (its rustls provider drops them), no 0-RTT and no QUIC v2"
    skip "wire: s2n-quic (resumption, zerortt, v2)" "$why"
}

wire_main() {
    local start peers=${QUIVER_WIRE_PEERS:-aioquic,ngtcp2,quiche,s2n}
    start=$(now)
    WPORT=${QUIVER_WIRE_PORT:-32400}
    WIRE_N=0
    if [ "$(id -u)" != 0 ]; then
        skip "wire: all cases ($WIRE_CASES)" "not root (packet capture, network namespace)"
        return
    fi
    if ! command -v tshark >/dev/null || ! command -v dumpcap >/dev/null; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark) \
            >"$WORK/apt-tshark.log" 2>&1
    fi
    if ! command -v tshark >/dev/null || ! command -v dumpcap >/dev/null; then
        skip "wire: all cases ($WIRE_CASES)" "tshark not installed (apt-get install tshark failed)"
        return
    fi
    local ns=quiver-wire-$$
    if ! { ip netns add "$ns" && ip -n "$ns" link set lo up && ip -n "$ns" link set lo gso_max_segs 1; } 2>"$WORK/netns.log"; then
        ip netns del "$ns" 2>/dev/null
        skip "wire: all cases ($WIRE_CASES)" "no network namespace: $(tail -1 "$WORK/netns.log")"
        return
    fi
    EXIT_HOOKS+=("ip netns del $ns 2>/dev/null")
    IN=(ip netns exec "$ns")
    mkdir -p "$WORK/wire"
    [[ $peers == *aioquic* ]] && wire_aioquic
    [[ $peers == *ngtcp2* ]] && wire_ngtcp2
    [[ $peers == *quiche* ]] && wire_quiche
    [[ $peers == *s2n* ]] && wire_s2n
    ip netns del "$ns"
    # QUIVER_WIRE_KEEP=DIR keeps the captures, key logs and logs.
    [ -n "${QUIVER_WIRE_KEEP:-}" ] && mkdir -p "$QUIVER_WIRE_KEEP" && cp -r "$WORK/wire/." "$QUIVER_WIRE_KEEP"
    echo "wire.sh took $(since "$start") s"
}

wire_main
if [ -n "${WIRE_ALONE:-}" ]; then
    summary
    exit
fi
