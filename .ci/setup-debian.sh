#!/usr/bin/env bash
# Prepare a Debian 12 machine for the QEMU lab: system packages, the Debian kernels the lab
# boots, and a 32-bit Node for i386 user space. Idempotent; when everything is in place it
# only checks and returns within a second or two.
#
# Cache: ${KEXEC_TS_CACHE:-$HOME/.cache/kexec-ts}
#   debian/*.deb, debian/x/<package>/     kernel packages and their extracted trees
#   kernels.json                          short name -> vmlinuz, modules dir, version (paths
#                                         relative to the cache directory)
#   i386-node/debs/*.deb, i386-node/root/ Debian's nodejs:i386, kexec-tools:i386 and
#                                         makedumpfile:i386 with their libraries, extracted
#                                         (never installed: the host's node stays as it is);
#                                         the 32-bit peers are the reference for i386 user space
#   i386-busybox/root/bin/busybox         Debian's busybox-static:i386, extracted
#   debian-dbg/vmlinux-<version>          the amd64-6.1 kernel's debug vmlinux, for crash and drgn
#                                         (only that file of linux-image-<version>-dbg, whose .deb is
#                                         deleted once it is extracted: 860 MB download, 630 MB kept)
# KEXEC_TS_REFRESH=1 looks for newer kernels even when the cache is complete.
set -euo pipefail

CACHE="${KEXEC_TS_CACHE:-$HOME/.cache/kexec-ts}"
REFRESH="${KEXEC_TS_REFRESH:-0}"
export DEBIAN_FRONTEND=noninteractive

say() { printf 'setup-debian: %s\n' "$*"; }
die() { printf 'setup-debian: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it adds an architecture, an apt source and packages)"
command -v apt-get >/dev/null || die "apt-get not found: this script is for Debian 12"

APT_UPDATED=0
apt_update() {
  [ "$APT_UPDATED" = 1 ] && return 0
  say "apt-get update"
  # A mirror mid-sync (seen with one i386 security index) makes update exit non-zero while
  # every index we need is fine, so a failure here is reported, not fatal; a missing package
  # fails later with its own message.
  if ! apt-get update -qq >/tmp/kexec-ts-apt-update.log 2>&1; then
    say "apt-get update reported errors (continuing; see /tmp/kexec-ts-apt-update.log):"
    grep -E '^(E|W):' /tmp/kexec-ts-apt-update.log | head -5 | sed 's/^/  /' || true
  fi
  APT_UPDATED=1
}

# --- apt configuration -------------------------------------------------------------------
if ! dpkg --print-foreign-architectures | grep -qx i386; then
  say "dpkg --add-architecture i386"
  dpkg --add-architecture i386
  APT_UPDATED=0
  NEED_UPDATE=1
fi

if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  say "adding bookworm-backports (the 6.12 kernel comes from there)"
  cat >/etc/apt/sources.list.d/bookworm-backports.sources <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  NEED_UPDATE=1
fi
[ "${NEED_UPDATE:-0}" = 1 ] && apt_update

# --- system packages ---------------------------------------------------------------------
# gcc and libc6-dev: the purgatory tests rebuild the committed blobs byte for byte and compile
# its SHA-256 for the host (a skipped test is a failure under CI=true).
# crash, python3-drgn: the debuggers that must open every dump kexec-ts writes; dwarves: pahole,
# which prints the kernel's own struct layouts (BTF) that the layout tables are checked against.
# mmdebstrap (with arch-test for the i386 image that adds amd64) builds the system tier's Debian images (src/lab/system-image.ts).
# chromium: the browser tests of `kexec-ts report` and the web app (src/cli/report.browser.test.ts)
# drive Debian's own build through playwright-core, which never downloads a browser.
PACKAGES=(qemu-system-x86 busybox-static xz-utils lz4 lzop zstd bzip2 cpio binutils makedumpfile kexec-tools ovmf gcc libc6-dev crash python3-drgn dwarves chromium mmdebstrap arch-test)
MISSING=()
for p in "${PACKAGES[@]}"; do
  if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" != installed ]; then
    MISSING+=("$p")
  fi
done
if [ "${#MISSING[@]}" -gt 0 ]; then
  apt_update
  say "installing ${MISSING[*]}"
  apt-get install -y -qq --no-install-recommends "${MISSING[@]}" >/dev/null
else
  say "system packages present"
fi

# --- kernels -----------------------------------------------------------------------------
mkdir -p "$CACHE/debian/x"
INDEX="$CACHE/kernels.json"

# short name | package regex (apt-cache search) | architecture | user-space arch of the kernel
KERNELS=(
  'amd64-6.1|^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$|amd64|x86_64'
  'amd64-6.12|^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$|amd64|x86_64'
  '686-pae-6.1|^linux-image-6\.1\.0-[0-9]+-686-pae-unsigned$|i386|i386'
  '686-6.1|^linux-image-6\.1\.0-[0-9]+-686-unsigned$|i386|i386'
)

index_complete() {
  [ -s "$INDEX" ] || return 1
  local name
  for entry in "${KERNELS[@]}"; do
    name="${entry%%|*}"
    grep -q "\"$name\"" "$INDEX" || return 1
  done
  # Every path the index names must still exist.
  local p
  for p in $(grep -oE '"(vmlinuz|modules)": "[^"]+"' "$INDEX" | sed -E 's/.*: "(.*)"/\1/'); do
    [ -e "$CACHE/$p" ] || return 1
  done
}

# Download (if needed) and extract one package; prints the extracted directory.
fetch_package() { # package arch destdir
  local pkg="$1" arch="$2" dest="$3" deb
  deb=$(ls "$dest"/"${pkg}"_*_"${arch}".deb 2>/dev/null | head -1 || true)
  if [ -z "$deb" ]; then
    (cd "$dest" && apt-get download -qq "${pkg}:${arch}" >/dev/null 2>&1) || return 1
    deb=$(ls "$dest"/"${pkg}"_*_"${arch}".deb 2>/dev/null | head -1 || true)
    [ -n "$deb" ] || return 1
  fi
  printf '%s\n' "$deb"
}

# The system tier installs the same kernel version as the signed package (linux-image-V, the one
# Debian's users have, and the one lockdown's signature checks need). Debian publishes the
# unsigned build first and the signed one days later (seen: 6.12.118 unsigned in
# bookworm-security while only 6.12.117 was signed), so among the unsigned candidates those
# whose signed twin is available come first.
# apt-cache show exits 0 with no record for a name that is only referred to (a virtual package).
# grep reads it all (no -q): under pipefail an early exit would fail the pipe with SIGPIPE.
package_available() { apt-cache show "$1" 2>/dev/null | grep '^Package: ' >/dev/null; }

signed_first() { # candidates arch
  local pkg with=() without=()
  for pkg in $1; do
    if package_available "${pkg%-unsigned}:$2"; then with+=("$pkg"); else without+=("$pkg"); fi
  done
  printf '%s\n' "${with[@]}" "${without[@]}"
}

# A cached index whose amd64 kernel lost its signed twin (or never had one) is resolved again.
signed_twins_present() {
  local pkg
  for pkg in $(grep -oE '"package": "linux-image-[^"]+-amd64-unsigned"' "$INDEX" | sed -E 's/.*: "(.*)"/\1/'); do
    package_available "${pkg%-unsigned}:amd64" || return 1
  done
}

if [ "$REFRESH" != 1 ] && index_complete && signed_twins_present; then
  say "kernels cached ($INDEX)"
else
  apt_update
  ENTRIES=()
  for entry in "${KERNELS[@]}"; do
    IFS='|' read -r name regex arch userarch <<<"$entry"
    candidates=$(apt-cache search --names-only "$regex" | awk '{print $1}' | sort -Vr)
    [ -n "$candidates" ] || die "no package matches $regex (is bookworm-backports configured and apt-get update done?)"
    candidates=$(signed_first "$candidates" "$arch")
    got=""
    for pkg in $candidates; do
      if deb=$(fetch_package "$pkg" "$arch" "$CACHE/debian"); then got="$pkg"; break; fi
      say "  $pkg:$arch did not download; trying an older one"
    done
    [ -n "$got" ] || die "could not download any of: $candidates"
    x="$CACHE/debian/x/$got"
    if ! ls "$x"/boot/vmlinuz-* >/dev/null 2>&1; then
      rm -rf "$x.tmp" && mkdir -p "$x.tmp" && dpkg-deb -x "$deb" "$x.tmp" && rm -rf "$x" && mv "$x.tmp" "$x"
    fi
    vmlinuz=$(ls "$x"/boot/vmlinuz-* | head -1)
    version="${vmlinuz##*/vmlinuz-}"
    modules=$(ls -d "$x"/lib/modules/* 2>/dev/null | head -1 || true)
    [ -n "$modules" ] || modules=$(ls -d "$x"/usr/lib/modules/* | head -1)
    say "kernel $name: $got ($version)"
    ENTRIES+=("$(printf '  "%s": { "package": "%s", "version": "%s", "arch": "%s", "userArch": "%s", "vmlinuz": "%s", "modules": "%s" }' \
      "$name" "$got" "$version" "$arch" "$userarch" "${vmlinuz#"$CACHE"/}" "${modules#"$CACHE"/}")")
  done
  {
    echo "{"
    for i in "${!ENTRIES[@]}"; do
      if [ "$i" -lt $((${#ENTRIES[@]} - 1)) ]; then echo "${ENTRIES[$i]},"; else echo "${ENTRIES[$i]}"; fi
    done
    echo "}"
  } >"$INDEX.tmp"
  mv "$INDEX.tmp" "$INDEX"
  say "wrote $INDEX"
fi

# --- 32-bit Node for i386 user space -----------------------------------------------------
NODE_DIR="$CACHE/i386-node"
if [ "$REFRESH" != 1 ] && [ -x "$NODE_DIR/root/usr/bin/node" ] && [ -x "$NODE_DIR/root/sbin/kexec" ] &&
   [ -x "$NODE_DIR/root/usr/bin/makedumpfile" ] && [ -s "$NODE_DIR/packages.txt" ]; then
  say "i386 node cached ($NODE_DIR)"
else
  apt_update
  rm -rf "$NODE_DIR/debs" && mkdir -p "$NODE_DIR/debs"
  # Every i386 library in nodejs:i386's dependency closure plus the arch-independent node-*
  # modules Debian unbundled from node (undici, acorn, cjs-module-lexer...). Extra libraries
  # pulled in through dpkg:i386 are harmless; the initramfs builder takes only what the ELF
  # files really need.
  mapfile -t NODE_PKGS < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
      --no-breaks --no-replaces --no-enhances nodejs:i386 kexec-tools:i386 makedumpfile:i386 2>/dev/null |
    grep -v '^ ' | sort -u | grep -E '^(lib[^ <>]*:i386|zlib1g:i386|nodejs:i386|kexec-tools:i386|makedumpfile:i386|node-[a-z0-9.-]+)$')
  [ "${#NODE_PKGS[@]}" -gt 0 ] || die "apt-cache found no dependencies for nodejs:i386 (apt-get update done?)"
  say "fetching nodejs:i386, kexec-tools:i386, makedumpfile:i386 (${#NODE_PKGS[@]} packages) into $NODE_DIR"
  (cd "$NODE_DIR/debs" && apt-get download -qq "${NODE_PKGS[@]}" >/dev/null 2>"$NODE_DIR/download.log") ||
    die "apt-get download failed for nodejs:i386's packages (see $NODE_DIR/download.log)"
  rm -rf "$NODE_DIR/root.tmp" && mkdir -p "$NODE_DIR/root.tmp"
  for deb in "$NODE_DIR"/debs/*.deb; do dpkg-deb -x "$deb" "$NODE_DIR/root.tmp"; done
  rm -rf "$NODE_DIR/root" && mv "$NODE_DIR/root.tmp" "$NODE_DIR/root"
  (cd "$NODE_DIR/debs" && ls *.deb) >"$NODE_DIR/packages.txt"
  say "i386 node: $(ls "$NODE_DIR"/debs/nodejs_*_i386.deb | sed 's/.*nodejs_//; s/_i386.deb//')"
fi

# --- static busybox for i386 user space ----------------------------------------------------
# A 32-bit kernel cannot run the host's x86_64 busybox, so the i386 guests get Debian's i386 build.
BB_DIR="$CACHE/i386-busybox"
if [ "$REFRESH" != 1 ] && [ -x "$BB_DIR/root/bin/busybox" ]; then
  say "i386 busybox cached ($BB_DIR)"
else
  apt_update
  rm -rf "$BB_DIR" && mkdir -p "$BB_DIR"
  (cd "$BB_DIR" && apt-get download -qq busybox-static:i386 >/dev/null 2>&1) || die "apt-get download busybox-static:i386 failed"
  dpkg-deb -x "$BB_DIR"/busybox-static_*_i386.deb "$BB_DIR/root"
  say "i386 busybox: $(ls "$BB_DIR"/busybox-static_*_i386.deb | sed 's/.*busybox-static_//; s/_i386.deb//')"
fi

# --- debug vmlinux for crash and drgn ------------------------------------------------------
# The vmcore scenario's host steps open its dumps with crash and drgn, which need the crashed
# kernel's debug information: linux-image-<version>-dbg of the cached amd64-6.1 kernel. Only the
# vmlinux is extracted (it is the first file in the package's data.tar, so tar stops early).
DBG_DIR="$CACHE/debian-dbg"
DBG_VERSION=$(sed -n 's/.*"amd64-6.1": {[^}]*"version": "\([^"]*\)".*/\1/p' "$INDEX")
[ -n "$DBG_VERSION" ] || die "no amd64-6.1 kernel in $INDEX"
DBG_VMLINUX="$DBG_DIR/vmlinux-$DBG_VERSION"
if [ -s "$DBG_VMLINUX" ]; then
  say "debug vmlinux cached ($DBG_VMLINUX)"
else
  apt_update
  mkdir -p "$DBG_DIR"
  tmp=$(mktemp -d "$DBG_DIR/tmp.XXXXXX")
  say "fetching linux-image-$DBG_VERSION-dbg (about 860 MB) for its vmlinux"
  (cd "$tmp" && apt-get download -qq "linux-image-$DBG_VERSION-dbg" >/dev/null 2>"$tmp/download.log") ||
    { rm -rf "$tmp"; die "apt-get download linux-image-$DBG_VERSION-dbg failed"; }
  # tar stops after the one member (--occurrence), so dpkg-deb may die of SIGPIPE: not an error here.
  { dpkg-deb --fsys-tarfile "$tmp"/linux-image-*-dbg_*.deb 2>/dev/null || true; } |
    tar -x -C "$tmp" --occurrence=1 "./usr/lib/debug/boot/vmlinux-$DBG_VERSION"
  [ -s "$tmp/usr/lib/debug/boot/vmlinux-$DBG_VERSION" ] || { rm -rf "$tmp"; die "no vmlinux-$DBG_VERSION in linux-image-$DBG_VERSION-dbg"; }
  mv "$tmp/usr/lib/debug/boot/vmlinux-$DBG_VERSION" "$DBG_VMLINUX.tmp" && mv "$DBG_VMLINUX.tmp" "$DBG_VMLINUX"
  rm -rf "$tmp"
  say "debug vmlinux: $DBG_VMLINUX ($(du -m "$DBG_VMLINUX" | cut -f1) MiB)"
fi

say "done"
