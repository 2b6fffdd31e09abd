# Runs in the lab guest (busybox sh): kexec-tools' kexec and kexec-ts side by side on the same
# image and initrd, alternating, N rounds. Prints one line per run:
#   TIMING <case> <tool> <seconds> rc=<exit status>
# Time comes from /proc/uptime read by the shell's own `read` (no process of its own, 10 ms steps);
# each run also pays its fork and exec, as a user's does. Unloads are not timed.
set -u
N=${1:-5}
IMG=/boot/vmlinuz
INITRD=/boot/initrd.img
APPEND='console=ttyS0 panic=-1'
CRASH_APPEND='console=ttyS0 irqpoll nr_cpus=1 reset_devices panic=-1'

now() { read -r up _ < /proc/uptime; echo "$up"; }

# OpenSSL without its AVX2 and SHA extension paths (OPENSSL_ia32cap, the second word: leaf 7's
# EBX, AVX2 is bit 5 and SHA bit 29).
noavx2() { OPENSSL_ia32cap=':~0x20000020' "$@"; }

timed() { # timed CASE TOOL command...
  c=$1; t=$2; shift 2
  t0=$(now)
  "$@" >/tmp/bench-out 2>&1
  rc=$?
  t1=$(now)
  echo "TIMING $c $t $(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }") rc=$rc"
  [ $rc -eq 0 ] || [ $rc -eq 1 ] || sed 's/^/  | /' /tmp/bench-out | head -5
}

kexec -u >/dev/null 2>&1; kexec -p -u >/dev/null 2>&1
# Both tools read these very files: their digests before and after tell the bench nothing changed.
echo "INPUTS-BEFORE $(md5sum $IMG $INITRD | awk '{ printf "%s ", $1 }')"
i=0
while [ $i -lt "$N" ]; do
  i=$((i + 1))
  for case in c-l s-l c-p s-p; do
    sys=${case%-*}; what=${case#*-}
    if [ "$what" = p ]; then app=$CRASH_APPEND; else app=$APPEND; fi
    # Alternate which tool goes first, so neither always finds the caches warmer.
    if [ $((i % 2)) -eq 1 ]; then order="kexec kexec-ts"; else order="kexec-ts kexec"; fi
    for tool in $order; do
      timed "$case" "$tool" $tool -$sys -$what $IMG --initrd=$INITRD --append="$app"
      $tool -$what -u >/dev/null 2>&1 || kexec -$what -u >/dev/null 2>&1
    done
  done
  # Outside the goal: the crash load again with OpenSSL's AVX2 masked, which measures what hashing
  # the segments with AVX2 under QEMU's TCG costs kexec-ts (kexec-tools hashes with plain C).
  timed c-p-noavx2 kexec-ts noavx2 kexec-ts -c -p $IMG --initrd=$INITRD --append="$CRASH_APPEND"
  kexec-ts -p -u >/dev/null 2>&1 || kexec -p -u >/dev/null 2>&1
  for what in l p; do
    if [ "$what" = p ]; then app=$CRASH_APPEND; else app=$APPEND; fi
    timed "check-$what" kexec-ts kexec-ts check -$what $IMG --initrd=$INITRD --append="$app"
    timed "plan-$what" kexec-ts kexec-ts plan -c -$what $IMG --initrd=$INITRD --append="$app"
  done
  # The floors: Node starting and exiting, and kexec-ts printing its version.
  timed start node node -e 0
  timed start kexec-ts kexec-ts --version
done
echo "INPUTS-AFTER $(md5sum $IMG $INITRD | awk '{ printf "%s ", $1 }')"
echo "BENCH-DONE rounds=$N"
