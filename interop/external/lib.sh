# Shared by run.sh and impaired.sh (sourced, not run): result lines and
# the summary counters, timing helpers, the build of `quiver`, the files
# and certificate served, and the installation of the peers (aioquic from
# PyPI into target/external-venv, ngtcp2's gtlsclient/gtlsserver from
# Debian when run as root). Expects ROOT (the repository) and WORK (a
# scratch directory) to be set.

PASS=${PASS:-0}
FAIL=${FAIL:-0}
SKIP=${SKIP:-0}

say() { printf '%-58s %s\n' "$1" "$2"; }
pass() { PASS=$((PASS + 1)); say "$1" "ok${2:+ ($2)}"; }
fail() { FAIL=$((FAIL + 1)); say "$1" "FAILED${2:+: $2}"; }
# A peer that cannot be installed (its registry out of reach) is skipped,
# loudly: nothing was checked against it.
skip() { SKIP=$((SKIP + 1)); say "$1" "SKIPPED${2:+: $2}"; }
summary() { echo "$PASS passed, $FAIL failed, $SKIP skipped"; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc | sed 's/^\./0./'; }
under() { [ "$(echo "$1 < $2" | bc)" = 1 ]; }
# Waits until something listens on UDP port $1.
wait_udp() {
    for _ in $(seq 100); do
        ss -Hlun "sport = :$1" 2>/dev/null | grep -q . && return 0
        sleep 0.05
    done
    return 1
}

# Builds `quiver` in release mode; sets QUIVER.
build_quiver() {
    cargo build -q --release -p quiver-cli || return 1
    QUIVER=$ROOT/target/release/quiver
}

# Files to serve under $WORK/www: a few of mixed sizes, and many small
# ones; an end-entity certificate (CA:FALSE: webpki refuses a CA
# certificate as a server's own) in CERT and KEY.
make_files() {
    mkdir -p "$WORK/www/small" "$WORK/certs"
    head -c 1000 /dev/urandom >"$WORK/www/1k.bin"
    head -c 1048576 /dev/urandom >"$WORK/www/1m.bin"
    head -c 10000000 /dev/urandom >"$WORK/www/10m.bin"
    for i in $(seq 500); do head -c $((100 + i * 7)) /dev/urandom >"$WORK/www/small/f$i.bin"; done
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$WORK/certs/key.pem" -out "$WORK/certs/cert.pem" -days 2 -subj /CN=localhost \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -addext "basicConstraints=critical,CA:FALSE" 2>/dev/null || { echo "openssl failed"; return 1; }
    CERT=$WORK/certs/cert.pem
    KEY=$WORK/certs/key.pem
}

# Same bytes under www and in $1 for each file named after it?
same_files() {
    local dir=$1
    shift
    for f in "$@"; do cmp -s "$WORK/www/$f" "$dir/$(basename "$f")" || return 1; done
}

# aioquic in target/external-venv, installed from PyPI when missing; sets
# VENV. Fails when pip cannot install it.
ensure_aioquic() {
    VENV=$ROOT/target/external-venv
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import aioquic' 2>/dev/null; then
        python3 -m venv "$VENV" && "$VENV/bin/pip" install -q 'aioquic==1.7.2' || return 1
    fi
}

# gtlsclient and gtlsserver (Debian's ngtcp2-client, ngtcp2-server),
# installed with apt when missing and run as root.
ensure_ngtcp2() {
    if ! command -v gtlsclient >/dev/null; then
        if [ "$(id -u)" = 0 ]; then
            (apt-get update -qq && apt-get install -y -qq ngtcp2-client ngtcp2-server) >/dev/null 2>&1
        fi
        command -v gtlsclient >/dev/null || return 1
    fi
}
