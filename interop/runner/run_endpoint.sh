#!/usr/bin/env bash
# quiver's endpoint for the QUIC interop runner
# (https://github.com/quic-interop/quic-interop-runner).
#
# The runner's contract: ROLE is `client` or `server`; TESTCASE names the
# test; a client downloads the space-separated URLs of REQUESTS into
# /downloads and exits 0 only if all arrived; a server serves /www on port
# 443 with /certs/cert.pem and /certs/priv.key; SSLKEYLOGFILE and QLOGDIR
# name where secrets and qlogs go; a test case the endpoint does not
# support MUST end with exit status 127.
#
# Outside docker (no /setup.sh), or with IN_DOCKER=0, the simulator steps
# are skipped, and these override the paths and the port:
#   QUIVER     the quiver binary (default: `quiver` on PATH)
#   WWW        server root (default /www)
#   DOWNLOADS  client output (default /downloads)
#   CERTS      directory of cert.pem and priv.key (default /certs)
#   PORT       server port (default 443)
#   LISTEN     server address (default [::]:$PORT)
#   PREFERRED_ADDRESS  the server's preferred address for the
#              connectionmigration case (default: its first IPv4
#              address, port 4433)
#   GET_ARGS / SERVE_ARGS  extra arguments for `quiver get` / `quiver serve`
set -u

ROLE=${ROLE:-}
TESTCASE=${TESTCASE:-}
QUIVER=${QUIVER:-quiver}
WWW=${WWW:-/www}
DOWNLOADS=${DOWNLOADS:-/downloads}
CERTS=${CERTS:-/certs}
PORT=${PORT:-443}
LISTEN=${LISTEN:-[::]:$PORT}

# One line per test case (the name the runner passes in TESTCASE):
#   NEEDS   a `quiver get` option that must exist (`quiver get --help`),
#           else the case is unsupported (127); `-` for none
#   CLIENT  `quiver get` arguments, joined by `+`; `-` for none
#   SERVER  `quiver serve` arguments, joined by `+`; `-` for none; a
#           list starting with `?` is passed only if `quiver serve --help`
#           lists its first option; `@preferred` is `--preferred-address`
#           with PREFERRED_ADDRESS
# `multiconnect` (handshakeloss, handshakecorruption) runs one `quiver get`
# per URL, each its own connection. Cases the runner passes under another
# name (multiplexing, blackhole, amplificationlimit, transferloss,
# transfercorruption, ipv6, rebind-port, rebind-addr, goodput,
# crosstraffic: `transfer`; longrtt: `handshake`) are listed too, for
# older runners and for running them by hand.
CASES='
handshake           -         -                   -
longrtt             -         -                   -
transfer            -         -                   -
multiplexing        -         -                   -
blackhole           -         -                   -
amplificationlimit  -         -                   -
transferloss        -         -                   -
transfercorruption  -         -                   -
ipv6                -         -                   -
rebind-port         -         -                   -
rebind-addr         -         -                   -
goodput             -         -                   -
crosstraffic        -         -                   -
ecn                 -         -                   -
multiconnect        -         -                   -
handshakeloss       -         -                   -
handshakecorruption -         -                   -
retry               -         -                   --retry
http3               -         --alpn=h3           --alpn=h3
keyupdate           -         --key-update        -
v2                  -         --versions=v1,v2    --versions=v2,v1
connectionmigration -         -                   @preferred
resumption          --resume  --resume            -
zerortt             --0rtt    --0rtt              -
chacha20            --cipher  --cipher=chacha20   ?--cipher=chacha20
'

die() {
    echo "run_endpoint.sh: $*" >&2
    exit 1
}

unsupported() {
    echo "run_endpoint.sh: test case '$TESTCASE' is not supported ($1)" >&2
    exit 127
}

# Whether `quiver SUBCOMMAND --help` lists the option FLAG.
has_option() {
    "$QUIVER" "$1" --help 2>/dev/null | grep -Eq -- "(^|[[:space:],])$2([[:space:]=,]|$)"
}

# Splits a `+`-joined table field into the array named by $2.
split_args() {
    local -n into=$2
    into=()
    [ "$1" = "-" ] && return
    IFS=+ read -r -a into <<<"$1"
}

case "$ROLE" in
client | server) ;;
*) unsupported "ROLE must be client or server, not '$ROLE'" ;;
esac

line=$(awk -v t="$TESTCASE" '$1 == t { print; exit }' <<<"$CASES")
[ -n "$TESTCASE" ] && [ -n "$line" ] || unsupported "unknown to quiver"
read -r _ needs client_field server_field <<<"$line"
if [ "$needs" != "-" ] && ! has_option get "$needs"; then
    unsupported "this quiver has no 'get $needs'"
fi

# Inside the simulator's endpoint image: routes first; the client then
# waits for the simulator.
if [ "${IN_DOCKER:-auto}" = "1" ] || { [ "${IN_DOCKER:-auto}" = "auto" ] && [ -x /setup.sh ]; }; then
    /setup.sh
    if [ "$ROLE" = "client" ]; then
        /wait-for-it.sh sim:57832 -s -t 30
    fi
fi

keylog=()
[ -n "${SSLKEYLOGFILE:-}" ] && keylog=(--keylog)

if [ "$ROLE" = "server" ]; then
    optional=0
    if [ "${server_field#\?}" != "$server_field" ]; then
        optional=1
        server_field=${server_field#\?}
    fi
    split_args "$server_field" args
    if [ "$optional" = 1 ] && ! has_option serve "${args[0]%%=*}"; then
        args=()
    fi
    if [ "${args[0]:-}" = "@preferred" ]; then
        preferred=${PREFERRED_ADDRESS:-}
        if [ -z "$preferred" ]; then
            ip=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -m1 -E '^[0-9]+\.')
            [ -n "$ip" ] || die "no IPv4 address for the preferred address; set PREFERRED_ADDRESS"
            preferred="$ip:4433"
        fi
        args=(--preferred-address "$preferred")
    fi
    # shellcheck disable=SC2086
    exec "$QUIVER" serve --listen "$LISTEN" --root "$WWW" \
        --cert "$CERTS/cert.pem" --key "$CERTS/priv.key" \
        "${keylog[@]}" "${args[@]}" ${SERVE_ARGS:-}
fi

# The client.
split_args "$client_field" args
read -r -a urls <<<"${REQUESTS:-}"
[ "${#urls[@]}" -gt 0 ] || die "REQUESTS names no URL"
mkdir -p "$DOWNLOADS" || die "cannot create $DOWNLOADS"
get() {
    # shellcheck disable=SC2086
    "$QUIVER" get --insecure --out "$DOWNLOADS" "${keylog[@]}" "${args[@]}" ${GET_ARGS:-} "$@"
}
case "$TESTCASE" in
multiconnect | handshakeloss | handshakecorruption)
    for url in "${urls[@]}"; do
        get "$url" || exit 1
    done
    ;;
*)
    get "${urls[@]}" || exit 1
    ;;
esac
exit 0
