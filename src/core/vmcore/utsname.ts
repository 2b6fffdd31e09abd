/**
 * The crashed kernel's own utsname, as makedumpfile copies it into the kdump header: the
 * struct new_utsname inside init_uts_ns (SYMBOL(init_uts_ns) + OFFSET(uts_namespace.name); a
 * kernel that exports no such OFFSET has the name after a 4-byte kref, as makedumpfile assumes).
 * Readers depend on it: libkdumpfile (drgn) takes the architecture from utsname.machine and
 * crash prints nodename and version from it.
 */
import { readStruct } from "../bytes/layout.js";
import { isKexecError } from "../errors.js";
import { NEW_UTSNAME, type Utsname } from "./kdump.js";
import { vmcoreKernelMemory, type Vmcore } from "./vmcore.js";

export interface CrashedUtsname {
  utsname: Utsname;
  /** Where it came from, for `vmcore info` and for tests: init_uts_ns, the source's kdump header, or VMCOREINFO alone. */
  source: "init_uts_ns" | "kdump header" | "vmcoreinfo";
}

export function crashedUtsname(core: Vmcore): CrashedUtsname {
  if (core.kdump) return { utsname: core.kdump.header.utsname, source: "kdump header" };
  const info = core.vmcoreinfo;
  const symbol = info?.symbols.get("init_uts_ns");
  if (info && symbol !== undefined) {
    try {
      const at = symbol + BigInt(info.offsets.get("uts_namespace.name") ?? 4);
      const raw = vmcoreKernelMemory(core).read(at, NEW_UTSNAME.size, "init_uts_ns.name");
      const name = readStruct(NEW_UTSNAME, raw, 0, { what: "init_uts_ns.name" });
      // A name that does not say Linux is not the struct we were looking for (a wrong offset, an unmapped page).
      if (name.sysname === "Linux" && name.release !== "") return { utsname: name, source: "init_uts_ns" };
    } catch (e) {
      if (!isKexecError(e)) throw e;
    }
  }
  // No way to the struct: what VMCOREINFO says (the release) and the machine from the ELF header.
  return { utsname: { sysname: "Linux", nodename: "", release: info?.osRelease ?? "", version: "", machine: core.machine, domainname: "" }, source: "vmcoreinfo" };
}
