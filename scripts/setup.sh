#!/usr/bin/env bash
# Prepare this machine for `make run` and `make test`. Safe to run again: each step checks before it acts.
#
#   1. system packages: docker.io (engine and client), debootstrap, gcc, python3-venv; runsc (gVisor) if available
#   2. a Docker engine: started in the background if none is running (log: /var/log/sandboxd-dockerd.log)
#   3. test services: PostgreSQL (ledger tests), Prometheus + promtool (scrape and alert-rule tests) and
#      docker-compose (compose file validation), installed but not started: the tests start their own
#      throwaway instances on loopback
#   4. .venv with `pip install -e '.[dev]'`, redone only when pyproject.toml is newer than the stamp
#   5. the runner image, built by `sandboxd image build` if it is missing
#
# Runs as root (CI) or as a user with sudo (for apt-get and dockerd).
# Optional: SANDBOXD_DOCKERD_ARGS (extra dockerd flags, e.g. another -H/--data-root) and SANDBOXD_DOCKERD_LOG.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
DOCKERD_LOG="${SANDBOXD_DOCKERD_LOG:-/var/log/sandboxd-dockerd.log}"
VENV=.venv
STAMP="$VENV/.installed-stamp"
export PATH="$PATH:/usr/sbin:/sbin"   # dockerd and debootstrap live in sbin, which a user's PATH may lack

log() { echo "setup: $*" >&2; }
warn() { echo "setup: warning: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        apt_updated=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

docker_ok() { docker info >/dev/null 2>&1; }
dockerd_running() { pgrep -x dockerd >/dev/null 2>&1 || pidof dockerd >/dev/null 2>&1; }

# --- 1. system packages -------------------------------------------------------------------------------------
ensure_packages() {
    local missing=()
    have dockerd || missing+=(docker.io)
    have docker || missing+=(docker.io)          # the client ships in docker.io too
    have debootstrap || missing+=(debootstrap)   # the registry-free image build
    have cc || missing+=(gcc libc6-dev)          # the runner's native spare path (sandboxd/runner/spare.c)
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
    if [ "${#missing[@]}" -gt 0 ]; then
        # shellcheck disable=SC2207  # package names have no spaces
        missing=($(printf '%s\n' "${missing[@]}" | sort -u))
        apt_install "${missing[@]}"
    fi
    # gVisor is optional: only tried on a machine whose engine is not up yet, so a second run stays fast.
    if ! docker_ok && ! have runsc; then
        apt_install runsc || warn "runsc (gVisor) could not be installed; policies that ask for it will fail"
    fi
}

# --- 2. Docker engine ---------------------------------------------------------------------------------------
ensure_dockerd() {
    if docker_ok; then
        if [ -x /usr/bin/runsc ] && ! docker info --format '{{json .Runtimes}}' | grep -q '"runsc"'; then
            warn "runsc is installed but not registered with the running dockerd; restart it with" \
                "a runsc runtime entry (runtimeArgs --network=none, see docs/runtimes.md) to use gVisor"
        fi
        return
    fi
    if dockerd_running; then
        log "dockerd is running but \`docker info\` fails; waiting for it"
    else
        local args=(--bridge=none --iptables=false --ip-masq=false)
        if [ -x /usr/bin/runsc ]; then
            # gVisor needs --network=none for containers without networking; --add-runtime cannot pass
            # runtime arguments, so the runtime goes in a config file of our own (docs/runtimes.md).
            local config=/etc/sandboxd/dockerd.json
            as_root mkdir -p /etc/sandboxd
            echo '{"runtimes": {"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]}}}' \
                | as_root tee "$config" >/dev/null
            args+=(--config-file "$config")
        fi
        local extra=()
        read -ra extra <<<"${SANDBOXD_DOCKERD_ARGS:-}"
        args+=("${extra[@]}")
        log "starting dockerd ${args[*]} (log: $DOCKERD_LOG)"
        # shellcheck disable=SC2016  # $@ and $0 are expanded by the inner shell
        as_root sh -c 'nohup "$@" >>"$0" 2>&1 </dev/null &' "$DOCKERD_LOG" dockerd "${args[@]}"
    fi
    for _ in $(seq 60); do
        docker_ok && { log "docker engine is up"; return; }
        sleep 1
    done
    echo "setup: error: the docker engine did not come up within 60 s; see $DOCKERD_LOG" >&2
    tail -n 20 "$DOCKERD_LOG" >&2 2>/dev/null || true
    exit 1
}

# --- 3. test services ---------------------------------------------------------------------------------------
# Binaries only. Tests start throwaway servers on loopback in temporary directories
# (tests/postgres_server.py, tests/prometheus_server.py);
# nothing here runs as a system service. Skipped for `make run` (SANDBOXD_SETUP_TEST_SERVICES=0).
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
ensure_test_services() {
    [ "${SANDBOXD_SETUP_TEST_SERVICES:-1}" = 1 ] || return 0
    local missing=()
    [ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ] || missing+=(postgresql)
    have prometheus || missing+=(prometheus)
    have promtool || missing+=(prometheus)
    have docker-compose || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
    # tests/test_forkserver_bursts.py runs the fork-server on the host, which compiles its filter with libseccomp
    /sbin/ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || missing+=(libseccomp2)
    if [ "${#missing[@]}" -gt 0 ]; then
        # shellcheck disable=SC2207  # package names have no spaces
        missing=($(printf '%s\n' "${missing[@]}" | sort -u))
        apt_install --no-install-recommends "${missing[@]}"
    fi
}

# --- 4. Python environment ----------------------------------------------------------------------------------
ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
    if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
        log "pip install -e '.[dev]'"
        "$VENV/bin/pip" install -q -e '.[dev]'
        touch "$STAMP"
    fi
}

# --- 5. runner image ----------------------------------------------------------------------------------------
ensure_image() {
    local tag
    tag="$("$VENV/bin/sandboxd" image tag)"
    if docker image inspect "$tag" >/dev/null 2>&1; then
        docker tag "$tag" sandboxd-runner:latest
        return
    fi
    log "building the runner image $tag"
    "$VENV/bin/sandboxd" image build >/dev/null
}

main() {
    ensure_packages
    ensure_dockerd
    ensure_test_services
    ensure_venv
    ensure_image
    log "ready"
}

main "$@"
