/**
 * Who talks to whom: the user space's arch (seed 002: i386 user space on an
 * x86_64 kernel), the running kernel's arch, the image's arch and its entry
 * points, and the kernel's own bzImage64 probe for kexec_file_load.
 */
import { hex, size } from "../format.js";
import { GiB4, KEXEC_FILE_SIZE_MAX, KEXEC_FILE_SIZE_MAX_BEFORE_6_0, bzImage64Probe, fileSyscallMissing, filesKexecFileReads, kexecFileSizeLimit, namedFile, protocolText, versionAtLeast, type FileRead } from "./context.js";
import { fail, ok, syscallEvidence, warn, type Rule } from "./result.js";

export const kexecFileAvailable: Rule = (c) => {
  const id = "kexec-file-available";
  const evidence = { kernelArch: c.machine.kernelArch, userArch: c.req.userArch, ...syscallEvidence(c) };
  const missing = fileSyscallMissing(c);
  if (c.req.syscall === "kexec_load") return ok(id, "kexec_load was asked for (-c): kexec_file_load is not used", evidence);
  if (!missing) return ok(id, "an x86_64 process on an x86_64 kernel can call kexec_file_load", evidence);
  if (c.req.syscall === "auto") return ok(id, `${missing}; -a goes straight on to kexec_load`, evidence);
  return fail(id, `kexec_file_load cannot be used: ${missing}`, evidence, "use kexec_load: -c, or -a (the default), which falls back to it");
};

export const kexecFileProbe: Rule = (c) => {
  const id = "kexec-file-probe";
  const evidence = { ...syscallEvidence(c), ...(c.bz ? { protocol: hex(c.bz.protocol, 4), loadflags: hex(c.bz.loadflags, 2), xloadflags: hex(c.bz.xloadflags, 2), xloadflagNames: c.bz.xloadflagNames } : { format: "elf" }) };
  if (!c.tries.includes("kexec_file_load")) return ok(id, "kexec_file_load is not used", evidence);
  if (fileSyscallMissing(c)) return ok(id, "kexec_file_load is not available here (see kexec-file-available)", evidence);
  const fallback = c.req.syscall === "auto";
  const after = fallback ? "; -a then falls back to kexec_load (where kexec-tools would only print \"syscall kexec_file_load not available.\")" : "";
  const remedy = fallback ? "nothing needed if kexec_load can take the image (see the other checks); to see the kernel's refusal yourself, look in dmesg" : "use kexec_load (-c) for this image, or an x86_64 bzImage built by Linux 3.8 or later";
  if (!c.bz) {
    const r = "x86's kexec_file_load has only the bzImage64 loader, so an ELF vmlinux is refused with ENOEXEC";
    return fallback ? warn(id, r + after, evidence, remedy) : fail(id, r, evidence, "give the bzImage (vmlinuz) instead of the vmlinux");
  }
  const probe = bzImage64Probe(c.bz, c.machine);
  if (probe === null || probe.kernelSays.startsWith("bzImage cannot handle")) {
    return ok(id, `protocol ${protocolText(c.bz.protocol)}, LOADED_HIGH, XLF_KERNEL_64 and XLF_CAN_BE_LOADED_ABOVE_4G: the bzImage64 probe's header checks pass${probe ? " (its 5-level check: see paging-5level)" : ""}`, evidence);
  }
  const reason = `kexec_file_load refuses the image with ENOEXEC: ${probe.reason}; the kernel logs "kexec-bzImage64: ${probe.kernelSays}"${after}`;
  return fallback ? warn(id, reason, { ...evidence, kernelSays: probe.kernelSays }, remedy) : fail(id, reason, { ...evidence, kernelSays: probe.kernelSays }, remedy);
};

/**
 * kexec_file_load reads the image and the initrd with kernel_read_file(), up to a limit
 * (KEXEC_FILE_SIZE_MAX; see kexecFileSizeLimit), and refuses a longer file with EFBIG.
 * kexec-tools' -a does not fall back to kexec_load after EFBIG (only after ENOSYS, EINVAL,
 * ENOEXEC, ENOTSUP: do_kexec_file_load in kexec/kexec.c), and neither does kexec-ts.
 */
export const kexecFileSize: Rule = (c) => {
  const id = "kexec-file-size";
  const limit = kexecFileSizeLimit(c.machine);
  const files = filesKexecFileReads(c);
  const evidence = {
    ...syscallEvidence(c), kernelRelease: c.machine.kernelRelease, limit: BigInt(limit.most), limitReason: limit.why,
    files: files.map((f) => ({ what: f.what, file: f.file ?? null, bytes: BigInt(f.bytes) })),
  };
  if (!c.tries.includes("kexec_file_load")) return ok(id, "kexec_file_load is not used: kexec_load is handed the files' bytes by kexec-ts", evidence);
  if (fileSyscallMissing(c)) return ok(id, "kexec_file_load is not available here (see kexec-file-available)", evidence);
  if (c.effective === "kexec_load") return ok(id, `kexec_file_load refuses the load for another reason (see ${c.fileRefusal?.rule ?? "kexec-file-probe"}), and -a goes on with kexec_load, which kexec-ts hands the files' bytes`, evidence);
  const over = files.find((f) => f.bytes > limit.most);
  if (over) {
    const noFallback = c.req.syscall === "auto" ? "; -a does not fall back to kexec_load after EFBIG (nor does kexec-tools: it falls back only after ENOSYS, EINVAL, ENOEXEC or ENOTSUP)" : "";
    // The release says "before 6.0", but a distribution kernel (RHEL 9's 5.14, SLES 15's) may carry
    // the 6.0 change that raised the limit to 4 GiB: a file between the two is a warning, not a
    // verdict that would stop a load such a kernel takes.
    if (limit.most === KEXEC_FILE_SIZE_MAX_BEFORE_6_0 && over.bytes <= KEXEC_FILE_SIZE_MAX) {
      return warn(id, `${describe(over)}, more than the ${limitText(limit.most)} kexec_file_load reads before Linux 6.0 (the running kernel is ${c.machine.kernelRelease}): the kernel refuses it with EFBIG${noFallback}, unless its distribution carries the 6.0 change "kexec_file: increase maximum file size to 4G"`,
        evidence, sizeRemedy(over, limit.most));
    }
    return fail(id, `${describe(over)}, more than the ${limitText(limit.most)} kexec_file_load reads (${limit.why}): the kernel refuses it with EFBIG${noFallback}`, evidence, sizeRemedy(over, limit.most));
  }
  const pastIntMax = files.find((f) => f.bytes > KEXEC_FILE_SIZE_MAX_BEFORE_6_0);
  if (pastIntMax && !limit.known) {
    return warn(id, `${describe(pastIntMax)}, more than the ${limitText(KEXEC_FILE_SIZE_MAX_BEFORE_6_0)} kexec_file_load reads on Linux before 6.0 (4 GiB since), and the running kernel's version is unknown: an older kernel refuses it with EFBIG`,
      evidence, sizeRemedy(pastIntMax, KEXEC_FILE_SIZE_MAX_BEFORE_6_0));
  }
  if (pastIntMax && versionAtLeast(c.machine.kernelRelease, 6, 16) === false) {
    // The 4 GiB limit of 6.0 met an int in the SHA-256 update: blocks * 64 overflows from 2 GiB on,
    // and kexec_calculate_store_digests() faults hashing the segment; fixed in 6.16, later in stable.
    return warn(id, `${describe(pastIntMax)}: Linux 6.0 to 6.15 reads it, then faults hashing a segment of 2 GiB or more (an int overflow in sha256_update, under kexec_calculate_store_digests) unless the kernel carries the stable fix "crypto: sha256 - fix crash at kexec" (2025); the running kernel is ${c.machine.kernelRelease}`,
      evidence, "load with kexec_load (-c), whose segments kexec-ts hashes itself, or use an initrd under 2 GiB");
  }
  const sizes = files.map((f) => `${f.what} ${size(f.bytes)}`).join(", ");
  return ok(id, `${sizes || "no file"} within the ${limitText(limit.most)} kexec_file_load reads (${limit.why})`, evidence);
};

function describe(f: FileRead): string {
  return `${namedFile(f)} is ${size(f.bytes)} (${hex(f.bytes)} bytes)`;
}

function limitText(most: number): string {
  return most === KEXEC_FILE_SIZE_MAX_BEFORE_6_0 ? "2 GiB - 1 byte (INT_MAX)" : `${size(most)} (${hex(most)} bytes)`;
}

function sizeRemedy(f: FileRead, most: number): string {
  const smaller = `a smaller ${f.what} (at most ${hex(most)} bytes for kexec_file_load here)`;
  if (f.what === "kernel image") return `load with kexec_load (-c), which kexec-ts hands the image's bytes, or use ${smaller}`;
  // kexec-ts hands kexec_load the initrd from one buffer, and Node 18's and 20's stop at 4 GiB (refuseInitrdPastOneBuffer, src/cli/prepare.ts).
  if (BigInt(f.bytes) < GiB4) return `load with kexec_load (-c), which kexec-ts hands the initrd from its own memory, or use ${smaller}`;
  return `use ${smaller}; kexec_load (-c) is no way around it: kexec-ts hands it the initrd from one buffer, which stops at 4 GiB`;
}

export const userArch: Rule = (c) => {
  const id = "user-arch";
  const k = c.machine.kernelArch;
  const evidence = { userArch: c.req.userArch, kernelArch: k, kernelArchEvidence: c.machine.kernelArchEvidence, ...syscallEvidence(c) };
  if (k === null) return warn(id, "the running kernel's arch is unknown, so the user space cannot be matched to it", evidence, "run on the machine, or use a snapshot with /proc/version and /proc/sys/kernel/arch");
  if (c.req.userArch === "x86_64" && k === "i386") {
    return fail(id, "an x86_64 user space cannot run on an i386 kernel: the load would be done by a 64-bit process that cannot exist there", evidence, "check for the user space the machine really has: --userspace i386");
  }
  if (c.req.userArch === k) return ok(id, `${k} user space on an ${k} kernel`, evidence);
  // i386 user space, x86_64 kernel: seed 002.
  if (c.effective === "kexec_file_load") return ok(id, "i386 user space on an x86_64 kernel (see kexec-file-available)", evidence);
  const p = c.placement();
  const high = p.ok ? p.segments.filter((s) => s.mem + s.memsz > 1n << 32n) : [];
  if (high.length) {
    return fail(id, `a 32-bit kexec_load passes 32-bit destination addresses (compat_kexec_segment), but ${high.map((s) => `${s.kind} at ${hex(s.mem)}`).join(", ")} would lie above 4 GiB`, evidence, "pass --mem-max=0xffffffff");
  }
  return ok(id, "i386 user space on an x86_64 kernel: kexec-ts passes KEXEC_ARCH_X86_64 with a 64-bit purgatory and keeps every segment below 4 GiB, without the 896 MiB limit of kexec-tools' i386 loader", evidence);
};

export const imageArch: Rule = (c) => {
  const id = "image-arch";
  const k = c.machine.kernelArch;
  const bz = c.bz;
  const flags = c.machine.cpu?.flags ?? null;
  const evidence = { kernelArch: k, imageIs64: bz ? bz.is64 : null, cpuLongMode: flags === null ? null : flags.includes("lm") };
  if (!bz) return ok(id, "an ELF vmlinux (see placement-hole)", evidence);
  if (k === "i386" && bz.is64) {
    if (flags === null) return warn(id, "a 64-bit image from an i386 kernel needs a CPU with long mode, and the CPU flags are unknown", evidence, "check /proc/cpuinfo for the lm flag");
    if (!flags.includes("lm")) return fail(id, "the image is a 64-bit kernel but the CPU has no long mode (no lm in the cpuinfo flags): it cannot run here", evidence, "use a 32-bit (686/686-pae) kernel image");
    return ok(id, "a 64-bit image from an i386 kernel: the i386 kernel hands over with paging off, so it is entered through its 32-bit entry; the CPU has long mode", evidence);
  }
  if (k === "x86_64" && !bz.is64) return ok(id, "a 32-bit image from an x86_64 kernel: entered through its 32-bit entry with paging off", evidence);
  return ok(id, `${bz.is64 ? "64-bit" : "32-bit"} image on a${k === "x86_64" ? "n x86_64" : k === "i386" ? "n i386" : "n unknown"} kernel`, evidence);
};

export const entryMode: Rule = (c) => {
  const id = "entry-mode";
  const bz = c.bz;
  const evidence = { entry32Requested: c.req.entry32 === true, imageIs64: bz ? bz.is64 : null, code32Start: bz?.code32Start ?? null, ...syscallEvidence(c) };
  if (!bz) return ok(id, "an ELF vmlinux (see placement-hole)", evidence);
  if (c.effective === "kexec_file_load") {
    if (!bz.is64) return fail(id, "kexec_file_load always enters the kernel at its 64-bit entry (load address + 0x200), and this 32-bit image has none (no XLF_KERNEL_64)", evidence, "use kexec_load (-c), which enters it through its 32-bit entry");
    if (c.req.entry32) return warn(id, "--entry-32bit means nothing to kexec_file_load: the kernel's purgatory always enters at +0x200", evidence, "use -c (kexec_load) for a 32-bit entry");
    return ok(id, "64-bit entry at load address + 0x200, by the kernel's purgatory", evidence);
  }
  if (!bz.is64 || c.machine.kernelArch === "i386") return ok(id, `entered through the 32-bit entry (${!bz.is64 ? "a 32-bit image" : "an i386 kernel hands over with paging off"}), below 4 GiB`, evidence);
  if (c.req.entry32) return ok(id, "entered through the 32-bit entry as asked (--entry-32bit): every segment stays below 4 GiB", evidence);
  return ok(id, "64-bit entry at load address + 0x200", evidence);
};

