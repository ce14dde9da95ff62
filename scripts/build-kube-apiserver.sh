#!/usr/bin/env bash
# Builds kube-apiserver v1.20.2 from Debian bookworm's `kubernetes` source package, once, and caches
# it outside the checkout under $HOME/.cache/gitops-guard/kube-apiserver-<version>/kube-apiserver.
# Prints the path of the binary on stdout. Needs root for apt-get (as on CI and dev machines).
set -euo pipefail

DEB_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
K8S_VERSION="1.20.2"
CACHE="${GITOPS_GUARD_CACHE:-$HOME/.cache/gitops-guard}"
OUT="$CACHE/kube-apiserver-$K8S_VERSION"
BIN="$OUT/kube-apiserver"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

log() { echo "build-kube-apiserver: $*" >&2; }

if [ ! -f /etc/apt/sources.list.d/gitops-guard-src.sources ]; then
  log "adding a deb-src entry for bookworm main"
  cat > /etc/apt/sources.list.d/gitops-guard-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq golang-go rsync etcd-server golang-github-modern-go-reflect2-dev dpkg-dev >&2

WORK="$(mktemp -d "${TMPDIR:-/tmp}/kube-apiserver-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
log "downloading the kubernetes $DEB_VERSION source package"
apt-get source --download-only "kubernetes=$DEB_VERSION" >&2
tar xzf "kubernetes_1.20.5+really${K8S_VERSION}.orig.tar.gz"
cd "kubernetes-$K8S_VERSION"
# The vendored reflect2 v1.0.1 segfaults under Go >= 1.18; Debian's 1.0.2 is a drop-in replacement.
rm -rf vendor/github.com/modern-go/reflect2
mkdir vendor/github.com/modern-go/reflect2
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go \
   /usr/share/gocode/src/github.com/modern-go/reflect2/*.s vendor/github.com/modern-go/reflect2/
mkdir -p .go/src/k8s.io
ln -s ../../.. .go/src/k8s.io/kubernetes
log "building kube-apiserver (about 13 minutes on 2 cores)"
GOPATH="$PWD/.go" CGO_ENABLED=0 HOME="$(mktemp -d)" make WHAT=cmd/kube-apiserver >&2
mkdir -p "$OUT"
cp _output/bin/kube-apiserver "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
log "cached at $BIN"
echo "$BIN"
