/**
 * A file system's UUID from its superblock, for the capture init to find the device again by
 * `findfs UUID=...` (device names can differ in the capture kernel), without udev's
 * /dev/disk/by-uuid, which an initramfs-tier guest or a chroot lacks. Layouts:
 * ext2/3/4 fs/ext4/ext4.h (struct ext4_super_block at 1024: s_magic 0xEF53 at +0x38, s_uuid
 * at +0x68); xfs fs/xfs/libxfs/xfs_format.h (sb_magicnum "XFSB" at 0, sb_uuid at 32); btrfs
 * fs/btrfs/ctree.h (the super block at 64 KiB: fsid at +0x20, magic "_BHRfS_M" at +0x40).
 */

/** How many bytes from the device's start the readers need. */
export const SUPERBLOCK_BYTES = 0x10000 + 0x1000;

function uuidText(b: Uint8Array, at: number): string | null {
  const bytes = b.subarray(at, at + 16);
  if (bytes.length < 16 || bytes.every((x) => x === 0)) return null;
  const h = Array.from(bytes, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function ascii(b: Uint8Array, at: number, text: string): boolean {
  for (let i = 0; i < text.length; i++) if (b[at + i] !== text.charCodeAt(i)) return false;
  return true;
}

export function filesystemUuid(head: Uint8Array, fstype: string): string | null {
  if (/^ext[234]$/.test(fstype)) {
    const sb = 1024;
    if (head.length < sb + 0x78 || head[sb + 0x38] !== 0x53 || head[sb + 0x39] !== 0xef) return null;
    return uuidText(head, sb + 0x68);
  }
  if (fstype === "xfs") return ascii(head, 0, "XFSB") ? uuidText(head, 32) : null;
  if (fstype === "btrfs") return ascii(head, 0x10040, "_BHRfS_M") ? uuidText(head, 0x10020) : null;
  return null;
}
