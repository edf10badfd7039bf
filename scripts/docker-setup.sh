#!/usr/bin/env bash
# A Docker engine and a local base image for `make images` where no public registry can be
# reached (this machine and its CI: root, a real Linux kernel, apt and PyPI only). Idempotent:
# each step is skipped when its result is already there.
#
#   scripts/docker-setup.sh            # engine + base; prints BASE_IMAGE=<name>
#   scripts/docker-setup.sh --engine   # the engine only
#
# 1. Engine: Debian's docker.io (apt) when no `dockerd` is installed, started by hand with the
#    overlay2 driver when `docker info` gets no answer (no systemd needed).
# 2. Base: Debian bookworm from the mirror apt already uses (debootstrap --variant=minbase),
#    with Python 3.11 in a venv at /opt/venv on PATH, imported as $LOCAL_BASE. It stands in
#    for python:3.11-slim-bookworm, the Dockerfiles' default, which lives on Docker Hub. It
#    carries this machine's CA bundle (so pip reaches PyPI through the same trust as on the
#    host); it is built here, used here, and never pushed.
set -euo pipefail

LOCAL_BASE="${LOCAL_BASE:-sigdeploy-local/python:3.11-bookworm}"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/sigdeploy-dockerd.log}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

say() { echo "docker-setup: $*" >&2; }
die() { say "$*"; exit 1; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

engine() {
    if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
        say "installing docker.io (apt)"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
    fi
    if docker info >/dev/null 2>&1; then
        return
    fi
    say "starting dockerd (overlay2), log $DOCKERD_LOG"
    as_root setsid dockerd --storage-driver overlay2 >"$DOCKERD_LOG" 2>&1 </dev/null &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && return
        sleep 1
    done
    die "dockerd did not answer within 60 s; see $DOCKERD_LOG"
}

apt_mirror() {  # the Debian mirror apt uses here (deb822 sources or a sources.list line)
    local found
    found="$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' \
        | grep -v security | head -n1 || true)"
    [[ -n "$found" ]] || found="$(grep -hs '^deb ' /etc/apt/sources.list \
        /etc/apt/sources.list.d/*.list | awk '{print $2}' | grep -v security | head -n1 || true)"
    echo "${found:-http://deb.debian.org/debian}"
}

base() {
    if docker image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
        return
    fi
    command -v debootstrap >/dev/null || {
        say "installing debootstrap (apt)"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    [[ -f "$CA_BUNDLE" ]] || die "$CA_BUNDLE: no CA bundle; set CA_BUNDLE to this machine's"
    local root mirror
    root="$(mktemp -d /tmp/sigdeploy-base.XXXXXX)"
    trap 'as_root rm -rf "$root"' RETURN
    mirror="$(apt_mirror)"
    say "debootstrap bookworm from $mirror (about 100 s)"
    as_root debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$root" "$mirror" >/dev/null
    as_root cp "$CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt"
    as_root chroot "$root" python3 -m venv /opt/venv
    as_root rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    as_root tar -C "$root" -c . | docker import \
        --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'CMD ["python3"]' \
        - "$LOCAL_BASE" >/dev/null
    say "imported $LOCAL_BASE"
}

engine
if [[ "${1:-}" != "--engine" ]]; then
    base
    echo "BASE_IMAGE=$LOCAL_BASE"
fi
