#!/usr/bin/env bash
# `npm test`'s first step (the pretest script): installs the Debian packages the suite needs
# that are missing, and says which. Idempotent: with everything installed it only checks. As
# non-root it installs nothing: it names what is missing, and the tests that need root report
# themselves skipped with that reason.
set -euo pipefail

# busybox-static: tiny static input roots; jsonnet: Jsonnet configurations; bindfs and fuse
# (fusermount): FUSE input roots like bb_worker's; protobuf-compiler and libprotobuf-dev: protoc
# and the well-known types, to check the generated code; python3-grpcio and python3-protobuf: a
# gRPC client that is not ours; gcc, libc6-dev, python3, bash, procps, util-linux (setpriv,
# unshare) and perl: the addon's build, the helpers and the acceptance suite's tools (usually
# there already); bubblewrap and librsvg2-bin: `npm run bench`. Go comes with the machine
# (/usr/local/go): the toolchain rows use whichever go is on PATH.
packages=(busybox-static jsonnet bindfs fuse protobuf-compiler libprotobuf-dev python3-grpcio
  python3-protobuf gcc libc6-dev python3 bash procps util-linux perl bubblewrap librsvg2-bin)
command -v javac >/dev/null || packages+=(default-jdk-headless)

if ! command -v dpkg-query >/dev/null; then
  echo "npm test: not a Debian system; the suite needs: ${packages[*]}"
  exit 0
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$package")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "npm test: the Debian packages the suite needs are installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "npm test: missing Debian packages: ${missing[*]}; as root: apt-get install ${missing[*]}"
  echo "npm test: not root: the tests that need root skip themselves (npm test as root installs these)"
  exit 0
fi
echo "npm test: installing the missing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Other engineers install at the same time: wait for dpkg's lock instead of failing.
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}"
