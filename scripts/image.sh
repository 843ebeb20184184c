#!/usr/bin/env bash
# The release image, built and run on this machine (docs/image.md):
#
#   scripts/image.sh build      build deploy/Dockerfile; the last line printed is the image
#   scripts/image.sh up [IMG]   run web, worker, scheduler (and the watchdog) from the image
#                               against the machine's PostgreSQL and RabbitMQ, then verify
#   scripts/image.sh rehearse   the rollout with two bad releases (docs/image.md "Rehearsal")
#   scripts/image.sh down       stop and remove every container this script started
#   scripts/image.sh build-ci   build deploy/ci/Dockerfile (Cloud Build's Tests step image)
#
# The Docker engine is installed (Debian's docker.io) and started if absent, with bridge
# networking off: every container is on the host network and every port it opens is bound
# to 127.0.0.1. The base images the Dockerfile names are pulled where a registry answers,
# otherwise built here: debian:bookworm-slim from Debian's packages (debootstrap), and
# rust:<version>-bookworm as that plus the compiler packages and this machine's own Rust
# toolchain of that version (no other toolchain can be fetched here). The script says which.
#
# Variables: IMAGE_WORK (target/image: the root filesystem, logs, fakes, tokens), IMAGE_NAME
# (lead-agent), IMAGE_PG_URL (postgres://postgres@127.0.0.1:5432; the database
# lead_agent_image is created on it), IMAGE_AMQP_URL (amqp://guest:guest@127.0.0.1:5672/%2f),
# IMAGE_PORT_BASE (18000: each colour's ports are above it), IMAGE_RECORD (where verify
# appends its verdicts; target/image/verification-log.md), IMAGE_NO_CACHE=1 (build every
# layer anew), IMAGE_KEEP=1 (rehearse leaves the last release running).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${IMAGE_WORK:-$ROOT/target/image}
NAME=${IMAGE_NAME:-lead-agent}
PG_URL=${IMAGE_PG_URL:-postgres://postgres@127.0.0.1:5432}
AMQP_URL_LOCAL=${IMAGE_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
PORT_BASE=${IMAGE_PORT_BASE:-18000}
RECORD=${IMAGE_RECORD:-$WORK/verification-log.md}
DATABASE=lead_agent_image
LABEL=lead-agent.image-sh
mkdir -p "$WORK"
# The engine here is older than the client and has no buildx: the classic builder, whose
# layer cache is what the Dockerfile's dependency layer relies on.
export DOCKER_BUILDKIT=0

say() { echo "image.sh: $*" >&2; }
die() {
    echo "image.sh: FATAL: $*" >&2
    exit 1
}

# --- the engine -------------------------------------------------------------------------

ensure_engine() {
    if docker info >/dev/null 2>&1; then
        say "Docker engine: running ($(docker version -f '{{.Server.Version}}' 2>/dev/null))"
        return
    fi
    if ! command -v dockerd >/dev/null; then
        say "Docker engine: not installed; installing Debian's docker.io"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq docker.io >/dev/null 2>&1 ||
            { apt-get update -qq && apt-get install -y -qq docker.io >/dev/null; } ||
            die "the Docker engine cannot be installed (apt-get install docker.io failed)"
    fi
    # A dockerd still stopping (or starting) holds its pid file: wait for it either way.
    if pgrep -x dockerd >/dev/null; then
        say "Docker engine: a dockerd runs but does not answer yet; waiting up to 30 s"
        for _ in $(seq 1 30); do
            docker info >/dev/null 2>&1 && { say "Docker engine: running"; return; }
            pgrep -x dockerd >/dev/null || break
            sleep 1
        done
        pgrep -x dockerd >/dev/null && die "the Docker engine cannot start: a dockerd runs but does not answer (stop it, or see its log)"
    fi
    # One killed outright leaves its pid file behind, naming a process that is gone.
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        rm -f /var/run/docker.pid
    fi
    say "Docker engine: starting dockerd (--bridge=none --iptables=false; log $WORK/dockerd.log)"
    nohup dockerd --bridge=none --iptables=false >"$WORK/dockerd.log" 2>&1 &
    for i in $(seq 1 60); do
        if docker info >/dev/null 2>&1; then
            say "Docker engine: up after ${i} s"
            return
        fi
        sleep 1
    done
    tail -n 5 "$WORK/dockerd.log" >&2 || true
    die "the Docker engine cannot start (dockerd did not answer within 60 s; $WORK/dockerd.log)"
}

# --- base images ------------------------------------------------------------------------

# The images the Dockerfile's FROM lines name, without its own stages.
dockerfile_bases() {
    awk 'toupper($1)=="FROM" { img[$2]=1; if (toupper($3)=="AS") stage[$4]=1 }
         END { for (i in img) if (!(i in stage)) print i }' deploy/Dockerfile | sort
}

provide_base() {
    local image=$1
    if docker image inspect "$image" >/dev/null 2>&1; then
        local how
        how=$(docker image inspect -f "{{index .Config.Labels \"$LABEL.standin\"}}" "$image" 2>/dev/null || true)
        say "$image: present (${how:-pulled earlier})"
        return
    fi
    if timeout 60 docker pull -q "$image" >/dev/null 2>&1; then
        say "$image: pulled from its registry"
        return
    fi
    case "$image" in
    debian:bookworm | debian:bookworm-slim) build_debian "$image" ;;
    rust:*-bookworm) build_rust "$image" ;;
    *) die "$image: no registry answered and there is no local recipe for it" ;;
    esac
}

build_debian() {
    local image=$1 rootfs=$WORK/bookworm-rootfs
    if [ ! -x "$rootfs/bin/sh" ]; then
        command -v debootstrap >/dev/null ||
            apt-get install -y -qq debootstrap >/dev/null 2>&1 ||
            { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; } ||
            die "debootstrap is missing and cannot be installed"
        say "$image: no registry answered; building it from Debian's packages (debootstrap --variant=minbase bookworm)"
        rm -rf "$rootfs.tmp"
        debootstrap --variant=minbase bookworm "$rootfs.tmp" http://deb.debian.org/debian \
            >"$WORK/debootstrap.log" 2>&1 || die "debootstrap failed ($WORK/debootstrap.log)"
        # As the public image: the release, its updates and security suites; no caches.
        rm -f "$rootfs.tmp/etc/apt/sources.list"
        cat >"$rootfs.tmp/etc/apt/sources.list.d/debian.sources" <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
        slim "$rootfs.tmp"
        mv "$rootfs.tmp" "$rootfs"
    else
        say "$image: no registry answered; importing the Debian bookworm root filesystem built earlier ($rootfs)"
    fi
    tar -C "$rootfs" -c . | docker import \
        --change 'CMD ["bash"]' \
        --change "LABEL $LABEL.standin=\"local stand-in: debootstrap bookworm minbase\"" \
        - "$image" >/dev/null
    say "$image: imported"
}

# What makes the public image "slim" (debuerreotype's settings, as the official images have
# them): no documentation, manuals or translations installed, and apt keeps no package
# files or caches in a layer.
slim() {
    local root=$1
    mkdir -p "$root/etc/dpkg/dpkg.cfg.d" "$root/etc/apt/apt.conf.d"
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
DPKG
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
    echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
    echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
    rm -rf "$root"/usr/share/{man,info,groff,linda,lintian}/* "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
}

build_rust() {
    local image=$1 version host sysroot triple ctx
    version=${image#rust:}
    version=${version%-bookworm}
    host=$(rustc --version | awk '{print $2}')
    case "$host" in
    "$version" | "$version".*) ;;
    *) die "$image: no registry answered, and the local stand-in needs this machine's Rust $version (it has $host)" ;;
    esac
    provide_base debian:bookworm-slim
    say "$image: no registry answered; building it from debian:bookworm-slim, Debian's compiler packages and this machine's Rust $host"
    sysroot=$(rustc --print sysroot)
    triple=$(rustc -vV | awk '/^host:/ {print $2}')
    ctx=$WORK/rust-standin
    rm -rf "$ctx"
    mkdir -p "$ctx/rustup/toolchains" "$ctx/cargo/bin" "$ctx/ca"
    cp -a "$sysroot" "$ctx/rustup/toolchains/$host-$triple"
    rm -rf "$ctx/rustup/toolchains/$host-$triple/share/doc"
    cp "$(command -v rustup)" "$ctx/cargo/bin/rustup"
    for tool in cargo rustc rustdoc cargo-clippy clippy-driver cargo-fmt rustfmt; do
        ln -s rustup "$ctx/cargo/bin/$tool"
    done
    printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\nauto_self_update = "disable"\n' \
        "$host-$triple" >"$ctx/rustup/settings.toml"
    # This machine reaches crates.io through an egress proxy with a CA of its own; the
    # stand-in trusts what the machine trusts (a public rust image needs nothing of it).
    cp /usr/local/share/ca-certificates/*.crt "$ctx/ca/" 2>/dev/null || true
    cat >"$ctx/Dockerfile" <<STANDIN
FROM debian:bookworm-slim
COPY ca/ /usr/local/share/ca-certificates/
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl git \\
      gcc g++ libc6-dev make pkg-config && update-ca-certificates \\
    && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo RUST_VERSION=$host \\
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY rustup /usr/local/rustup
COPY cargo /usr/local/cargo
RUN cargo --version && rustc --version
LABEL $LABEL.standin="local stand-in: debian bookworm + this machine's Rust $host"
STANDIN
    docker build --network host -q -t "$image" "$ctx" >/dev/null ||
        die "$image: the local stand-in did not build"
    rm -rf "$ctx"
    say "$image: built"
}

# --- build ------------------------------------------------------------------------------

cmd_build() {
    ensure_engine
    local base
    for base in $(dockerfile_bases); do provide_base "$base"; done
    local commit short tag started
    commit=$(git rev-parse HEAD)
    short=$(git rev-parse --short=12 HEAD)
    if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
        say "the work tree has uncommitted changes: the image is tagged $short-dirty and says so on /health"
        commit="$commit-dirty"
        short="$short-dirty"
    fi
    tag="$NAME:$short"
    started=$(date +%s)
    say "building $tag from deploy/Dockerfile (log $WORK/build.log)"
    # IMAGE_NO_CACHE=1: every layer anew (the cold figure in BENCHMARKS.md).
    if ! docker build ${IMAGE_NO_CACHE:+--no-cache} --network host -f deploy/Dockerfile --build-arg "GIT_COMMIT=$commit" \
        -t "$tag" -t "$NAME:local" . >"$WORK/build.log" 2>&1; then
        tail -n 30 "$WORK/build.log" >&2
        die "docker build failed ($WORK/build.log)"
    fi
    say "built $tag in $(($(date +%s) - started)) s; $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.1f MiB", $1/1048576}')"
    echo "$tag"
}

# The Tests step's image (deploy/ci/Dockerfile), as its own pipeline builds it; then the
# services it carries are started in it once, to show they run.
cmd_build_ci() {
    ensure_engine
    provide_base rust:1.95-bookworm
    local tag=$NAME-ci:rust-1.95
    say "building $tag from deploy/ci/Dockerfile (log $WORK/build-ci.log)"
    docker build --network host -f deploy/ci/Dockerfile -t "$tag" deploy/ci >"$WORK/build-ci.log" 2>&1 ||
        { tail -n 30 "$WORK/build-ci.log" >&2; die "the CI image did not build ($WORK/build-ci.log)"; }
    # Its own ports, so the machine's services are not in the way.
    docker run --rm --network host "$tag" bash -c '
        set -e
        sed -i "s/^#\?port = .*/port = 15432/" /etc/postgresql/*/main/postgresql.conf
        pg_ctlcluster "$(ls /etc/postgresql)" main start
        pg_isready -q -h 127.0.0.1 -p 15432 && psql -h 127.0.0.1 -p 15432 -U postgres -d test -Atc "SELECT 1" >/dev/null
        echo "PostgreSQL: up, database test answers"
        cargo --version; cargo clippy --version; cargo fmt --version
        chromium --version
        test -x /usr/lib/rabbitmq/bin/rabbitmq-server && echo "rabbitmq-server: installed"
    ' >&2 || die "the CI image does not run its services"
    echo "$tag"
}

# --- running the roles ------------------------------------------------------------------

secret() {
    local file=$WORK/$1
    [ -s "$file" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$file"
    cat "$file"
}

ensure_fakes() {
    if [ -s "$WORK/fakes.env" ] && kill -0 "$(cat "$WORK/fakes.pid" 2>/dev/null)" 2>/dev/null; then
        return
    fi
    say "starting the fake Twilio and Discord (testkit's, as a process: lead-agent-fakes)"
    cargo build -q -p lead-agent-testkit --bin lead-agent-fakes >&2 ||
        die "the fakes did not build"
    mkdir -p "$WORK/fakes"
    : >"$WORK/fakes.env"
    nohup "${CARGO_TARGET_DIR:-$ROOT/target}/debug/lead-agent-fakes" "$WORK/fakes" \
        >"$WORK/fakes.env" 2>"$WORK/fakes.log" &
    echo $! >"$WORK/fakes.pid"
    for _ in $(seq 1 50); do
        grep -q '^DISCORD_API_BASE=' "$WORK/fakes.env" && return
        sleep 0.1
    done
    die "the fakes did not start ($WORK/fakes.log)"
}

ensure_database() {
    if [ "${1:-}" = fresh ]; then
        psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" >/dev/null ||
            die "cannot drop the database $DATABASE on $PG_URL"
    fi
    psql -q "$PG_URL/postgres" -Atc "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'" | grep -q 1 ||
        psql -q "$PG_URL/postgres" -c "CREATE DATABASE $DATABASE" >/dev/null ||
        die "cannot create the database $DATABASE on $PG_URL"
}

# Ports of a colour: web public/ops, worker ops, scheduler ops, (public listeners too).
port() {
    local colour=$1 role=$2 listener=$3 c r
    case "$colour" in blue) c=100 ;; green) c=200 ;; *) c=300 ;; esac
    case "$role" in web) r=10 ;; worker) r=20 ;; scheduler) r=30 ;; watch) r=40 ;; esac
    echo $((PORT_BASE + c + r + listener))
}

# The manifests' environment (the example ConfigMap and Secret, "" = unset, and the base
# Deployment's own env) with what differs on this machine laid over it: the stores, the
# loopback binds, the ports, the tokens, the fakes.
role_env() {
    local colour=$1 role=$2 out=$3
    python3 - "$out" deploy/k8s/configmap.example.yaml deploy/k8s/secret.example.yaml \
        deploy/k8s/base/deployment.yaml <<'PY'
import sys, yaml
out, configmap, secret, base = sys.argv[1:5]
env = {}
def data(path, kind, name, field):
    for doc in yaml.safe_load_all(open(path)):
        if doc and doc.get("kind") == kind and doc["metadata"]["name"] == name:
            return doc.get(field) or {}
    sys.exit(f"{path}: no {kind} {name}")
# What the containers take through envFrom (base/deployment.yaml).
for k, v in list(data(configmap, "ConfigMap", "lead-agent-config", "data").items()) + \
        list(data(secret, "Secret", "lead-agent-secrets", "stringData").items()):
    if str(v) != "":
        env[k] = str(v)
for doc in yaml.safe_load_all(open(base)):
    for c in doc["spec"]["template"]["spec"]["containers"]:
        for e in c.get("env", []):
            env[e["name"]] = str(e["value"])
with open(out, "w") as f:
    for k, v in env.items():
        if "\n" in v:
            sys.exit(f"{k}: a value of several lines cannot be an env-file line")
        f.write(f"{k}={v}\n")
PY
    local web_port ops_port
    web_port=$(port "$colour" web 2)
    case "$role" in
    web) ops_port=$(port "$colour" web 3) ;;
    *) ops_port=$(port "$colour" "$role" 3) ;;
    esac
    {
        echo "DATABASE_URL=$PG_URL/$DATABASE"
        echo "AMQP_URL=$AMQP_URL_LOCAL"
        # Each colour has a queue of its own, so the synthetic SMS that verifies a new
        # release can only be answered by that release's workers (docs/image.md).
        echo "AMQP_QUEUE=lead_agent_image_$colour"
        echo "BIND_ADDRESS=127.0.0.1"
        echo "OPS_BIND_ADDRESS=127.0.0.1"
        echo "PORT=$(port "$colour" "$role" 2)"
        echo "OPS_PORT=$ops_port"
        echo "PUBLIC_BASE_URL=http://127.0.0.1:$web_port"
        echo "OPS_TOKEN=$(secret ops-token)"
        echo "TWILIO_AUTH_TOKEN=$(secret twilio-token)"
        echo "TWILIO_FROM_NUMBER=+13125550000"
        echo "DISCORD_DEFAULT_CHANNEL=900"
        echo "DISCORD_CHANNEL_ERROR=777"
        echo "DISCORD_CHANNEL_EVENT=901"
        echo "LOG_FORMAT=json"
        cat "$WORK/fakes.env"
    } >>"$out"
    # The last value of a key wins, as the overrides above mean.
    tac "$out" | awk -F= '!seen[$1]++' | tac >"$out.tmp" && mv "$out.tmp" "$out"
}

run_role() {
    local image=$1 colour=$2 role=$3 env_file=$WORK/env.$2.$3
    role_env "$colour" "$role" "$env_file"
    docker rm -f "lead-agent-$colour-$role" >/dev/null 2>&1 || true
    # As the Deployment runs it: the image's own non-root user, a read-only root filesystem
    # (readOnlyRootFilesystem: true), no capabilities, no privilege escalation.
    docker run -d --name "lead-agent-$colour-$role" --label "$LABEL=$colour" \
        --network host --read-only --cap-drop ALL --security-opt no-new-privileges \
        --env-file "$env_file" "$image" serve --role "$role" >/dev/null
}

run_watch() {
    local image=$1 colour=$2 env_file=$WORK/env.watch
    {
        echo "WATCH_URL=http://127.0.0.1:$(port "$colour" web 2)"
        echo "WATCH_OPS_URL=http://127.0.0.1:$(port "$colour" web 3)"
        echo "PUBLIC_BASE_URL=http://127.0.0.1:$(port "$colour" web 2)"
        echo "PORT=$(port "$colour" watch 2)"
        echo "BIND_ADDRESS=127.0.0.1"
        echo "WATCH_INTERVAL_SECS=10"
        echo "OPS_TOKEN=$(secret ops-token)"
        echo "TWILIO_AUTH_TOKEN=$(secret twilio-token)"
        echo "DISCORD_CHANNEL_ERROR=777"
        echo "LOG_FORMAT=json"
        grep '^DISCORD_' "$WORK/fakes.env"
    } >"$env_file"
    docker rm -f lead-agent-watch >/dev/null 2>&1 || true
    docker run -d --name lead-agent-watch --label "$LABEL=watch" --network host --read-only \
        --cap-drop ALL --security-opt no-new-privileges --env-file "$env_file" "$image" watch >/dev/null
}

# Up within `secs`: the container runs and its ops listener answers /health.
wait_up() {
    local colour=$1 secs=$2 role state
    for _ in $(seq 1 "$secs"); do
        local all=1
        for role in web worker scheduler; do
            state=$(docker inspect -f '{{.State.Status}}' "lead-agent-$colour-$role" 2>/dev/null || echo gone)
            [ "$state" = running ] || { [ "$state" = exited ] && return 1; all=0; continue; }
            curl -fsS -o /dev/null "http://127.0.0.1:$(port "$colour" "$role" 3)/health" 2>/dev/null || all=0
        done
        [ "$all" = 1 ] && return 0
        sleep 1
    done
    return 1
}

start_colour() {
    local image=$1 colour=$2 role
    for role in web worker scheduler; do run_role "$image" "$colour" "$role"; done
}

stop_colour() {
    local ids
    ids=$(docker ps -aq --filter "label=$LABEL=$1")
    [ -z "$ids" ] || docker rm -f $ids >/dev/null
}

# `lead-agent verify` from the image under test, as Cloud Build runs the new image's binary.
verify_colour() {
    local image=$1 colour=$2 json=$WORK/verify.$2.json expect
    expect=$(docker image inspect -f '{{index .Config.Labels "org.opencontainers.image.revision"}}' "$image")
    # With the bot token and the EVENT channel, its last step reads the event trace back.
    docker run --rm --network host --read-only --env-file <(grep '^DISCORD_' "$WORK/fakes.env") \
        -e DISCORD_CHANNEL_EVENT=901 \
        -e OPS_TOKEN="$(secret ops-token)" -e TWILIO_AUTH_TOKEN="$(secret twilio-token)" \
        "$image" verify --url "http://127.0.0.1:$(port "$colour" web 2)" \
        --ops-url "http://127.0.0.1:$(port "$colour" web 3)" \
        --expect-commit "$expect" --wait-secs "${IMAGE_VERIFY_WAIT_SECS:-45}" \
        --test-phone "+1312555$(printf '%04d' $((RANDOM % 10000)))" \
        --json >"$json" 2>"$WORK/verify.$colour.log"
}

cmd_up() {
    local image=${1:-$NAME:local} colour=${2:-blue}
    ensure_engine
    docker image inspect "$image" >/dev/null 2>&1 || die "no image $image: run scripts/image.sh build first"
    ensure_fakes
    ensure_database
    say "starting $colour: web, worker and scheduler from $image"
    start_colour "$image" "$colour"
    wait_up "$colour" 60 || {
        docker ps -a --filter "label=$LABEL=$colour" >&2
        die "$colour did not come up (docker logs lead-agent-$colour-ROLE)"
    }
    run_watch "$image" "$colour"
    say "$colour is up: webhook http://127.0.0.1:$(port "$colour" web 2)/twilio/sms, /ops on http://127.0.0.1:$(port "$colour" web 3)/ops"
    if verify_colour "$image" "$colour"; then
        say "verify: PASS ($WORK/verify.$colour.json)"
    else
        cat "$WORK/verify.$colour.log" >&2
        die "verify FAILED against $colour ($WORK/verify.$colour.json)"
    fi
}

cmd_down() {
    ensure_engine
    local ids
    ids=$(docker ps -aq --filter "label=$LABEL")
    [ -z "$ids" ] || docker rm -f $ids >/dev/null
    if [ -s "$WORK/fakes.pid" ]; then kill "$(cat "$WORK/fakes.pid")" 2>/dev/null || true; fi
    rm -f "$WORK/fakes.pid" "$WORK/fakes.env"
    say "every container of this script is stopped"
}

case "${1:-}" in
build) cmd_build ;;
build-ci) cmd_build_ci ;;
up) shift; cmd_up "$@" ;;
down) cmd_down ;;
rehearse) shift; source "$ROOT/scripts/image-rehearse.sh"; cmd_rehearse "$@" ;;
*)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
