#!/bin/sh
# The crash utility and drgn open each dump and must see what they see in the source dump: the
# same release, panic message and task list. Usage: debuggers.sh SOURCE DUMP...
# Needs DEBUG_VMLINUX (the crashed kernel's debug vmlinux, from linux-image-*-dbg; the lab's
# host steps set it), Debian's crash and python3-drgn.
set -eu
here=$(dirname "$0")
[ -n "${DEBUG_VMLINUX:-}" ] && [ -f "$DEBUG_VMLINUX" ] || { echo "no debug vmlinux (DEBUG_VMLINUX=${DEBUG_VMLINUX:-unset}): run .ci/setup-debian.sh" >&2; exit 1; }
command -v crash >/dev/null || { echo "crash is not installed (apt-get install crash)" >&2; exit 1; }
/usr/bin/python3 -c 'import drgn' 2>/dev/null || { echo "drgn is not installed (apt-get install python3-drgn)" >&2; exit 1; }

summarize() { # dump -> NAME.crash, NAME.drgn
  printf 'sys\nps\nlog\nquit\n' > crash.cmds
  # crash prints the kernel's own lines; keep the ones that tell release, panic and tasks.
  crash -s "$DEBUG_VMLINUX" "$1" -i crash.cmds > "$2.crash.raw" 2>&1 || { tail -20 "$2.crash.raw" >&2; echo "crash cannot open $1" >&2; exit 1; }
  {
    grep -E '^ +RELEASE:' "$2.crash.raw" | sed 's/^ *//'
    grep -o 'Kernel panic - not syncing: [^"]*' "$2.crash.raw" | tail -1
    # ps: PID PPID CPU TASK ST %MEM VSZ RSS COMM
    grep -E '^[> ] +[0-9]+ +-?[0-9]+ +[0-9]+ +[0-9a-f]+ ' "$2.crash.raw" | sed 's/^>/ /'
  } > "$2.crash"
  /usr/bin/python3 "$here/drgn-summary.py" "$1" "$DEBUG_VMLINUX" > "$2.drgn" 2>"$2.drgn.err" || { cat "$2.drgn.err" >&2; echo "drgn cannot open $1" >&2; exit 1; }
}

source=$1; shift
summarize "$source" source
grep -q '^RELEASE: ' source.crash && grep -q 'Kernel panic - not syncing' source.crash || { cat source.crash.raw | tail -30 >&2; echo "crash saw no release or panic in the source" >&2; exit 1; }
grep -q '^panic Kernel panic - not syncing' source.drgn || { cat source.drgn >&2; echo "drgn saw no panic in the source" >&2; exit 1; }
echo "source: crash sees $(grep -c '^ ' source.crash) tasks, drgn $(sed -n 's/^tasks //p' source.drgn); $(head -1 source.crash); $(grep -o 'Kernel panic.*' source.crash)"
# Two dumps at a time: crash spends most of its ~15 s per dump reading the vmlinux's DWARF, on one core.
i=0
for dump in "$@"; do
  name=$(basename "$dump")
  ( summarize "$dump" "$name" > "$name.summary.log" 2>&1 && touch "$name.summarized" ) &
  i=$((i + 1))
  [ $((i % 2)) -ne 0 ] || wait
done
wait
for dump in "$@"; do
  name=$(basename "$dump")
  [ -f "$name.summarized" ] || { cat "$name.summary.log" >&2; exit 1; }
  cmp -s source.crash "$name.crash" || { diff source.crash "$name.crash" | head -20 >&2; echo "$name: crash sees something else than in the source" >&2; exit 1; }
  cmp -s source.drgn "$name.drgn" || { diff source.drgn "$name.drgn" | head -20 >&2; echo "$name: drgn sees something else than in the source" >&2; exit 1; }
  echo "$name: crash and drgn see the source's release, panic and tasks"
done
