/**
 * A squashfs 4.0 image writer (Documentation/filesystems/squashfs.rst; fs/squashfs/squashfs_fs.h
 * for the on-disk structures), for what a capture initramfs must carry but cannot afford to
 * unpack: Node and its libraries are ~100 MiB unpacked, but mounted from a compressed image
 * (loop + squashfs, both modules in Debian's kernels) they cost the image's size plus the pages
 * actually read, which the kernel can drop again under memory pressure.
 *
 * The subset written: regular files, directories and symlinks, owned by root, with no
 * fragments (a file's tail is a short block of its own), no export table and no xattrs; data
 * in 128 KiB blocks and metadata in 8 KiB blocks, each compressed by the given codec and
 * stored raw where that does not make it smaller. Inode numbers are given children first, so a
 * directory's listing can name its children's inodes when it is written. Pure: the codec is
 * passed in (zlib from Node, zstd from the system's libzstd), bytes come out.
 */
import { KexecError } from "../errors.js";
import { normalizeArchivePath } from "./cpio.js";

export const SQUASHFS_MAGIC = 0x73717368;
/** Compressor ids of the superblock (squashfs_fs.h: ZLIB_COMPRESSION ... ZSTD_COMPRESSION). */
export const SQUASHFS_COMPRESSION = { zlib: 1, zstd: 6 } as const;
export type SquashfsCompression = keyof typeof SQUASHFS_COMPRESSION;

const BLOCK_LOG = 17;
const BLOCK_SIZE = 1 << BLOCK_LOG;
const METADATA_SIZE = 8192;
/** A metadata block's length word: the block follows uncompressed. */
const METADATA_UNCOMPRESSED = 0x8000;
/** A data block's size word: the block is stored uncompressed. */
const DATA_UNCOMPRESSED = 1 << 24;
const INVALID_FRAGMENT = 0xffffffff;
const INVALID_TABLE = 0xffffffffffffffffn;
/** Superblock flags (informational for the kernel): no fragments, no xattrs. */
const FLAG_NO_FRAGMENTS = 0x0010;
const FLAG_NO_XATTRS = 0x0200;
/** The kernel reads the image in device blocks; squashfs-tools pads to 4 KiB. */
const PAD_TO = 4096;
/** A directory header covers at most this many entries (SQUASHFS_DIR_COUNT). */
const DIR_COUNT = 256;

const INODE_DIR = 1;
const INODE_FILE = 2;
const INODE_SYMLINK = 3;

export interface SquashfsInput {
  /** Path without a leading slash, "usr/bin/node". */
  name: string;
  type: "file" | "dir" | "symlink";
  perm: number;
  /** File contents, or the link target. */
  data: Uint8Array;
}

/** Compresses one block; the writer stores it raw when the result is not smaller. */
export type BlockCompressor = (block: Uint8Array) => Uint8Array;

interface Node {
  name: string;
  type: SquashfsInput["type"];
  perm: number;
  data: Uint8Array;
  children: Map<string, Node>;
  inode: number;
  /** Inode reference: (metadata block position << 16) | offset in the uncompressed block. */
  ref: bigint;
  dataStart: number;
  blockSizes: number[];
}

const encoder = new TextEncoder();

class Bytes {
  private chunks: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array): number {
    const at = this.length;
    this.chunks.push(b);
    this.length += b.length;
    return at;
  }
  parts(): Uint8Array[] {
    return this.chunks;
  }
}

/** A stream of records cut into 8 KiB metadata blocks, each compressed as it fills. */
class MetadataStream {
  readonly out = new Bytes();
  private block = new Uint8Array(METADATA_SIZE);
  private used = 0;
  constructor(private readonly compress: BlockCompressor) {}
  /** Where the next record starts, as a metadata reference (block position relative to this stream, offset). */
  get position(): { block: number; offset: number } {
    return { block: this.out.length, offset: this.used };
  }
  write(record: Uint8Array): void {
    let at = 0;
    while (at < record.length) {
      const n = Math.min(record.length - at, METADATA_SIZE - this.used);
      this.block.set(record.subarray(at, at + n), this.used);
      this.used += n;
      at += n;
      if (this.used === METADATA_SIZE) this.flush();
    }
  }
  flush(): void {
    if (this.used === 0) return;
    const raw = this.block.subarray(0, this.used);
    const packed = this.compress(raw);
    const stored = packed.length < raw.length ? packed : raw.slice();
    const head = new Uint8Array(2);
    new DataView(head.buffer).setUint16(0, stored.length | (stored === packed ? 0 : METADATA_UNCOMPRESSED), true);
    this.out.push(head);
    this.out.push(stored);
    this.block = new Uint8Array(METADATA_SIZE);
    this.used = 0;
  }
}

function record(size: number, fill: (v: DataView) => void): Uint8Array {
  const b = new Uint8Array(size);
  fill(new DataView(b.buffer));
  return b;
}

function buildTree(inputs: readonly SquashfsInput[]): Node {
  const root: Node = { name: "", type: "dir", perm: 0o755, data: new Uint8Array(0), children: new Map(), inode: 0, ref: 0n, dataStart: 0, blockSizes: [] };
  for (const input of inputs) {
    const parts = normalizeArchivePath(input.name).split("/");
    let dir = root;
    for (const [i, part] of parts.entries()) {
      if (encoder.encode(part).length > 256) throw new KexecError("usage", `squashfs: the name ${JSON.stringify(part)} is longer than 256 bytes`, { field: "name", actual: input.name }, "the self-contained capture image holds the files kexec-ts chose; this is a bug in kexec-ts's image writer — please report it with `kexec-ts kdump rebuild --json`");
      const last = i === parts.length - 1;
      let next = dir.children.get(part);
      if (next === undefined) {
        next = { name: part, type: last ? input.type : "dir", perm: last ? input.perm : 0o755, data: last ? input.data : new Uint8Array(0), children: new Map(), inode: 0, ref: 0n, dataStart: 0, blockSizes: [] };
        dir.children.set(part, next);
      } else if (last) {
        if (next.type === "dir" && input.type !== "dir") throw new KexecError("usage", `squashfs: ${input.name} is a directory and a ${input.type}`, { field: "name", actual: input.name }, "the self-contained capture image holds the files kexec-ts chose; this is a bug in kexec-ts's image writer — please report it with `kexec-ts kdump rebuild --json`");
        Object.assign(next, { type: input.type, perm: input.perm, data: input.data });
      } else if (next.type !== "dir") {
        throw new KexecError("usage", `squashfs: ${parts.slice(0, i + 1).join("/")} is a ${next.type}, so ${input.name} cannot be under it`, { field: "name", actual: input.name }, "the self-contained capture image holds the files kexec-ts chose; this is a bug in kexec-ts's image writer — please report it with `kexec-ts kdump rebuild --json`");
      }
      dir = next;
    }
  }
  return root;
}

/** Children in the order the kernel's lookup expects: by name, byte for byte. */
function sortedChildren(dir: Node): Node[] {
  return [...dir.children.values()].sort((a, b) => compareBytes(encoder.encode(a.name), encoder.encode(b.name)));
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** Post-order: children before their directory, so that directories are written last. */
function postOrder(dir: Node, out: Node[] = []): Node[] {
  for (const c of sortedChildren(dir)) {
    if (c.type === "dir") postOrder(c, out);
    else out.push(c);
  }
  out.push(dir);
  return out;
}

/**
 * The image for `inputs`, as chunks (the file data is not copied into one buffer). `mtime` is
 * the superblock's and every inode's (0 by default, so equal inputs give equal bytes).
 */
export function writeSquashfs(inputs: readonly SquashfsInput[], compression: SquashfsCompression, compress: BlockCompressor, mtime = 0): Uint8Array[] {
  const root = buildTree(inputs);
  const order = postOrder(root);
  order.forEach((n, i) => (n.inode = i + 1));
  const out = new Bytes();
  out.push(new Uint8Array(96)); // the superblock, filled in last

  // File data, in the order the inodes are written, so a file's blocks are contiguous.
  for (const n of order) {
    if (n.type !== "file") continue;
    n.dataStart = out.length;
    for (let at = 0; at < n.data.length; at += BLOCK_SIZE) {
      const raw = n.data.subarray(at, Math.min(n.data.length, at + BLOCK_SIZE));
      const packed = compress(raw);
      if (packed.length < raw.length) {
        out.push(packed);
        n.blockSizes.push(packed.length);
      } else {
        out.push(raw);
        n.blockSizes.push(raw.length | DATA_UNCOMPRESSED);
      }
    }
  }

  const inodes = new MetadataStream(compress);
  const dirs = new MetadataStream(compress);
  const parentOf = new Map<Node, Node>();
  for (const n of order) for (const c of n.children.values()) parentOf.set(c, n);
  const header = (v: DataView, type: number, n: Node): void => {
    v.setUint16(0, type, true);
    v.setUint16(2, n.perm & 0o7777, true);
    v.setUint16(4, 0, true); // uid: index 0 of the id table (root)
    v.setUint16(6, 0, true); // gid
    v.setUint32(8, mtime >>> 0, true);
    v.setUint32(12, n.inode, true);
  };
  for (const n of order) {
    const at = inodes.position;
    n.ref = (BigInt(at.block) << 16n) | BigInt(at.offset);
    if (n.type === "file") {
      if (n.dataStart > 0xffffffff || n.data.length > 0xffffffff) throw new KexecError("usage", `squashfs: ${n.name} lies beyond the 4 GiB a basic file inode can address`, { field: "name", actual: n.name }, "the self-contained capture image holds the files kexec-ts chose; this is a bug in kexec-ts's image writer — please report it with `kexec-ts kdump rebuild --json`");
      inodes.write(record(32 + 4 * n.blockSizes.length, (v) => {
        header(v, INODE_FILE, n);
        v.setUint32(16, n.dataStart, true);
        v.setUint32(20, INVALID_FRAGMENT, true);
        v.setUint32(24, 0, true);
        v.setUint32(28, n.data.length, true);
        n.blockSizes.forEach((s, i) => v.setUint32(32 + 4 * i, s, true));
      }));
    } else if (n.type === "symlink") {
      inodes.write(record(24 + n.data.length, (v) => {
        header(v, INODE_SYMLINK, n);
        v.setUint32(16, 1, true);
        v.setUint32(20, n.data.length, true);
        new Uint8Array(v.buffer).set(n.data, 24);
      }));
    } else {
      // The listing first (its place goes into the inode), children already written.
      const listingAt = dirs.position;
      let listingSize = 0;
      const children = sortedChildren(n);
      for (let i = 0; i < children.length;) {
        const block = children[i]!.ref >> 16n;
        const base = children[i]!.inode;
        let j = i;
        while (j < children.length && j - i < DIR_COUNT && children[j]!.ref >> 16n === block && Math.abs(children[j]!.inode - base) < 0x8000) j++;
        const head = record(12, (v) => {
          v.setUint32(0, j - i - 1, true);
          v.setUint32(4, Number(block), true);
          v.setUint32(8, base, true);
        });
        dirs.write(head);
        listingSize += head.length;
        for (const c of children.slice(i, j)) {
          const name = encoder.encode(c.name);
          const entry = record(8 + name.length, (v) => {
            v.setUint16(0, Number(c.ref & 0xffffn), true);
            v.setInt16(2, c.inode - base, true);
            v.setUint16(4, c.type === "dir" ? INODE_DIR : c.type === "file" ? INODE_FILE : INODE_SYMLINK, true);
            v.setUint16(6, name.length - 1, true);
            new Uint8Array(v.buffer).set(name, 8);
          });
          dirs.write(entry);
          listingSize += entry.length;
        }
        i = j;
      }
      // The kernel counts "." and ".." as 3 bytes of the listing (the size is 3 more than written).
      if (listingSize + 3 > 0xffff) throw new KexecError("usage", `squashfs: the directory ${n.name || "/"} has too many entries for a basic directory inode`, { field: "name", actual: n.name }, "the self-contained capture image holds the files kexec-ts chose; this is a bug in kexec-ts's image writer — please report it with `kexec-ts kdump rebuild --json`");
      const subdirs = children.filter((c) => c.type === "dir").length;
      const parent = parentOf.get(n);
      inodes.write(record(32, (v) => {
        header(v, INODE_DIR, n);
        v.setUint32(16, listingAt.block, true);
        v.setUint32(20, 2 + subdirs, true);
        v.setUint16(24, listingSize + 3, true);
        v.setUint16(26, listingAt.offset, true);
        // The root's parent is one past the last inode, as squashfs-tools writes it.
        v.setUint32(28, parent === undefined ? order.length + 1 : parent.inode, true);
      }));
    }
  }
  inodes.flush();
  dirs.flush();
  const inodeTableStart = out.length;
  for (const p of inodes.out.parts()) out.push(p);
  const directoryTableStart = out.length;
  for (const p of dirs.out.parts()) out.push(p);
  // The id table: one id (0, root) in one metadata block, then the list of that block's position.
  const ids = new MetadataStream(compress);
  const idBlockAt = out.length;
  ids.write(record(4, (v) => v.setUint32(0, 0, true)));
  ids.flush();
  for (const p of ids.out.parts()) out.push(p);
  const idTableStart = out.length;
  out.push(record(8, (v) => v.setBigUint64(0, BigInt(idBlockAt), true)));
  const bytesUsed = out.length;
  const pad = (PAD_TO - (bytesUsed % PAD_TO)) % PAD_TO;
  if (pad) out.push(new Uint8Array(pad));

  const parts = out.parts();
  parts[0] = record(96, (v) => {
    v.setUint32(0, SQUASHFS_MAGIC, true);
    v.setUint32(4, order.length, true);
    v.setUint32(8, mtime >>> 0, true);
    v.setUint32(12, BLOCK_SIZE, true);
    v.setUint32(16, 0, true); // fragments
    v.setUint16(20, SQUASHFS_COMPRESSION[compression], true);
    v.setUint16(22, BLOCK_LOG, true);
    v.setUint16(24, FLAG_NO_FRAGMENTS | FLAG_NO_XATTRS, true);
    v.setUint16(26, 1, true); // ids
    v.setUint16(28, 4, true); // major
    v.setUint16(30, 0, true); // minor
    v.setBigUint64(32, root.ref, true);
    v.setBigUint64(40, BigInt(bytesUsed), true);
    v.setBigUint64(48, BigInt(idTableStart), true);
    v.setBigUint64(56, INVALID_TABLE, true); // xattr id table
    v.setBigUint64(64, BigInt(inodeTableStart), true);
    v.setBigUint64(72, BigInt(directoryTableStart), true);
    v.setBigUint64(80, INVALID_TABLE, true); // fragment table
    v.setBigUint64(88, INVALID_TABLE, true); // export table
  });
  return parts;
}

/** Collects a squashfs image's entries with the same calls a cpio archive takes (dir, file, symlink). */
export class SquashfsTree {
  readonly inputs: SquashfsInput[] = [];
  dir(path: string, perm = 0o755): this {
    this.inputs.push({ name: normalizeArchivePath(path), type: "dir", perm, data: new Uint8Array(0) });
    return this;
  }
  file(path: string, data: Uint8Array | string, perm = 0o644): this {
    this.inputs.push({ name: normalizeArchivePath(path), type: "file", perm, data: typeof data === "string" ? encoder.encode(data) : data });
    return this;
  }
  symlink(path: string, target: string): this {
    this.inputs.push({ name: normalizeArchivePath(path), type: "symlink", perm: 0o777, data: encoder.encode(target) });
    return this;
  }
}
