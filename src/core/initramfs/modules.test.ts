import { test } from "node:test";
import { strict as assert } from "node:assert";
import { modulesDepLookup, moduleName, resolveModules } from "./modules.js";

test("modules come with their dependencies first, from modules.dep", () => {
  const dep = [
    "kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz kernel/drivers/virtio/virtio.ko.xz",
    "kernel/drivers/virtio/virtio_ring.ko.xz: kernel/drivers/virtio/virtio.ko.xz",
    "kernel/drivers/virtio/virtio.ko.xz:",
    "kernel/drivers/virtio/virtio_pci.ko.xz: kernel/drivers/virtio/virtio_pci_modern_dev.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz kernel/drivers/virtio/virtio.ko.xz",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko.xz:",
  ].join("\n");
  const lookup = modulesDepLookup(dep);
  assert.deepEqual(resolveModules(lookup, ["virtio-blk", "virtio_pci"], "t").map((m) => m.name), ["virtio", "virtio_ring", "virtio_blk", "virtio_pci_modern_dev", "virtio_pci"]);
  assert.throws(() => resolveModules(lookup, ["ext4"], "t"), /no module "ext4"/);
});

test("module names treat - and _ alike and drop the compression suffix", () => {
  assert.equal(moduleName("kernel/drivers/block/virtio-blk.ko.xz"), "virtio_blk");
  assert.equal(moduleName("ext4.ko"), "ext4");
  assert.equal(moduleName("kernel/fs/jbd2/jbd2.ko.zst"), "jbd2");
});
