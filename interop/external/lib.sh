# Shared by run.sh and wire.sh (sourced, not run): the pass/fail/skip
# lines and summary, timing helpers, the release build of `quiver`, the
# files and certificate served, and the installs of the peers. Sourcing it
# sets ROOT (the repository), WORK (a temporary directory removed on exit),
# QUIVER, CERT, KEY and the counters.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
WORK=$(mktemp -d /tmp/quiver-external.XXXXXX)
# Commands run on exit, after the background jobs are stopped (wire.sh
# adds the removal of its network namespace).
EXIT_HOOKS=()
on_exit() {
    kill $(jobs -p) 2>/dev/null
    wait 2>/dev/null
    local hook
    for hook in "${EXIT_HOOKS[@]}"; do eval "$hook"; done
    rm -rf "$WORK"
}
trap on_exit EXIT
QUIVER_EXTERNAL_LIB=1
PASS=0
FAIL=0
SKIP=0

say() { printf '%-58s %s\n' "$1" "$2"; }
pass() { PASS=$((PASS + 1)); say "$1" "ok${2:+ ($2)}"; }
fail() { FAIL=$((FAIL + 1)); say "$1" "FAILED${2:+: $2}"; }
# A peer that cannot be installed (its registry out of reach) is skipped,
# loudly: nothing was checked against it.
skip() { SKIP=$((SKIP + 1)); say "$1" "SKIPPED${2:+: $2}"; }
summary() { echo "$PASS passed, $FAIL failed, $SKIP skipped"; [ "$FAIL" = 0 ]; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc | sed 's/^\./0./'; }
under() { [ "$(echo "$1 < $2" | bc)" = 1 ]; }
# Waits until something listens on UDP port $1 (in the current network
# namespace, or with $2 the command prefix that enters another).
wait_udp() {
    for _ in $(seq 100); do
        ${2:-} ss -Hlun "sport = :$1" 2>/dev/null | grep -q . && return 0
        sleep 0.05
    done
    return 1
}

cargo build -q --release -p quiver-cli || exit 1
QUIVER=$ROOT/target/release/quiver

# Files to serve: a few of mixed sizes, and many small ones.
mkdir -p "$WORK/www/small" "$WORK/certs"
head -c 1000 /dev/urandom >"$WORK/www/1k.bin"
head -c 5000 /dev/urandom >"$WORK/www/5k.bin"
head -c 100000 /dev/urandom >"$WORK/www/100k.bin"
head -c 1048576 /dev/urandom >"$WORK/www/1m.bin"
head -c 10000000 /dev/urandom >"$WORK/www/10m.bin"
for i in $(seq 500); do head -c $((100 + i * 7)) /dev/urandom >"$WORK/www/small/f$i.bin"; done
# An end-entity certificate (CA:FALSE: webpki refuses a CA certificate
# as a server's own).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$WORK/certs/key.pem" -out "$WORK/certs/cert.pem" -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -addext "basicConstraints=critical,CA:FALSE" 2>/dev/null || { echo "openssl failed"; exit 1; }
CERT=$WORK/certs/cert.pem
KEY=$WORK/certs/key.pem

# Same bytes under www and in $1 for each file named after it?
same_files() {
    local dir=$1
    shift
    for f in "$@"; do cmp -s "$WORK/www/$f" "$dir/$(basename "$f")" || return 1; done
}

# aioquic from PyPI in target/external-venv; sets AIOQUIC_VENV. Fails
# (the caller skips) when pip cannot install it.
install_aioquic() {
    AIOQUIC_VENV=$ROOT/target/external-venv
    if [ ! -x "$AIOQUIC_VENV/bin/python" ] || ! "$AIOQUIC_VENV/bin/python" -c 'import aioquic' 2>/dev/null; then
        python3 -m venv "$AIOQUIC_VENV" && "$AIOQUIC_VENV/bin/pip" install -q 'aioquic==1.7.2'
    fi
}

# ngtcp2 1.x's gtlsclient/gtlsserver from Debian's bookworm-backports,
# for what the release's 0.12 cannot do (QUIC v2, RFC 9369): the packages
# are downloaded with a private apt list directory (the system's sources
# are left alone) and unpacked under target/peers/ngtcp2-bpo, not
# installed. Sets NG2_CLIENT, NG2_SERVER, NG2_LIBS (for LD_LIBRARY_PATH)
# and NG2_VERSION; fails (the caller skips, saying NG2_ERROR) when the
# packages cannot be had.
install_ngtcp2_backports() {
    local dir=$ROOT/target/peers/ngtcp2-bpo
    NG2_CLIENT=$dir/root/usr/bin/gtlsclient
    NG2_SERVER=$dir/root/usr/sbin/gtlsserver
    NG2_LIBS=$dir/root/usr/lib/x86_64-linux-gnu
    if [ ! -x "$NG2_CLIENT" ] || [ ! -x "$NG2_SERVER" ]; then
        rm -rf "$dir" && mkdir -p "$dir/lists/partial" "$dir/debs" || return 1
        echo "deb http://deb.debian.org/debian bookworm-backports main" >"$dir/sources.list"
        local apt=(-o "Dir::Etc::sourcelist=$dir/sources.list" -o Dir::Etc::sourceparts=/dev/null
            -o "Dir::State::Lists=$dir/lists")
        if ! (cd "$dir/debs" && apt-get "${apt[@]}" update -qq &&
            apt-get "${apt[@]}" download ngtcp2-client/bookworm-backports \
                ngtcp2-server/bookworm-backports libngtcp2-16/bookworm-backports \
                libngtcp2-crypto-gnutls8/bookworm-backports libnghttp3-9/bookworm-backports) \
            >"$dir/apt.log" 2>&1; then
            NG2_ERROR="apt-get download from bookworm-backports failed: $(grep -m1 -E '^(E|W):' "$dir/apt.log")"
            return 1
        fi
        for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/root" || return 1; done
    fi
    NG2_VERSION=$(ls "$dir"/debs/ngtcp2-client_*.deb 2>/dev/null | sed -n 's/.*ngtcp2-client_\([0-9.]*\).*/\1/p')
    if ! LD_LIBRARY_PATH=$NG2_LIBS "$NG2_CLIENT" --help 2>/dev/null | grep -q -- --available-versions; then
        NG2_ERROR="the bookworm-backports gtlsclient does not run here"
        return 1
    fi
}

# ngtcp2's gtlsclient/gtlsserver from Debian (apt, as root). Fails (the
# caller skips) when they cannot be installed.
install_ngtcp2() {
    if ! command -v gtlsclient >/dev/null; then
        if [ "$(id -u)" = 0 ]; then
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                ngtcp2-client ngtcp2-server) >/dev/null 2>&1
        fi
        command -v gtlsclient >/dev/null
    fi
}
