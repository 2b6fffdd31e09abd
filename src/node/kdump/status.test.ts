import { test } from "node:test";
import { strict as assert } from "node:assert";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { KexecError } from "../../core/errors.js";
import { kdumpPaths } from "./paths.js";
import { kdumpStatus } from "./status.js";

test("status when not armed still says what is wrong with the config and the target", () => {
  const root = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-status-"));
  try {
    const paths = kdumpPaths(root);
    mkdirSync(dirname(paths.config), { recursive: true });
    writeFileSync(paths.config, "target = /srv/crash\nbogus line\n");
    const s = kdumpStatus(paths);
    assert.equal(s.ready, false);
    assert.match(s.reasons[0]!, /not started in this boot/);
    assert.match(s.reasons[1] ?? "", /kdump\.conf:2: expected "key = value", found "bogus line"/, "the config error is not hidden behind \"not started\"");

    const file = join(root, "notadir");
    writeFileSync(file, "");
    writeFileSync(paths.config, `target = ${file}\n`);
    assert.match(kdumpStatus(paths).reasons.join("\n"), /notadir: the dump target is not a directory \(it is a regular file\)/);

    assert.throws(() => kdumpStatus({ ...paths, config: join(root, "typo.conf"), configGiven: true }),
      (e: unknown) => e instanceof KexecError && e.code === "io" && /typo\.conf: cannot read the kdump config: no such file/.test(e.message), "a --config FILE that is not there is the command's error");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
