"""What drgn sees in a dump: the release, the panic message and the task list (pid, comm).

Usage: python3 drgn-summary.py DUMP VMLINUX   (Debian's python3-drgn, /usr/bin/python3)
"""
import sys

import drgn
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.printk import get_printk_records

prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
prog.load_debug_info([sys.argv[2]])
print("release", prog["init_uts_ns"].name.release.string_().decode())
panics = [r.text.decode(errors="replace") for r in get_printk_records(prog) if b"Kernel panic - not syncing" in r.text]
print("panic", panics[-1] if panics else "(none)")
tasks = sorted((t.pid.value_(), t.comm.string_().decode(errors="replace")) for t in for_each_task(prog))
print("tasks", len(tasks))
for pid, comm in tasks:
    print("task", pid, comm)
