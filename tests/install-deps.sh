#!/usr/bin/env bash
# Installs the system packages kubebridge needs to build, on Debian-like machines:
# ./tests/install-deps.sh (as root; otherwise it prints the apt-get command to run).
# The README's demo command and tests/run.sh both start with it.
set -euo pipefail

# rdkafka builds librdkafka from source (Debian's 2.0.2 cannot talk to current
# brokers): cmake, a C compiler, OpenSSL (TLS, SASL), zlib, and curl's header, which
# librdkafka's config includes unconditionally. python3 + pip fetch the test brokers.
apt_packages=(build-essential cmake pkg-config libssl-dev zlib1g-dev libcurl4-openssl-dev python3-pip)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "install-deps: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "install-deps: missing ${missing[*]}; as root run: apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
