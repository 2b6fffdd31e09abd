/**
 * `kexec-ts drop-in install|remove|status [TOOL]`: kexec-ts stands in for /sbin/kexec or
 * /usr/bin/makedumpfile (the names distribution scripts such as kdump-tools call), reversibly;
 * src/node/drop-in.ts does the work the Debian way (dpkg-divert). A package's maintainer scripts
 * can run the same commands.
 */
import { existsSync, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { KexecError } from "../../core/errors.js";
import { DROP_IN_TOOLS, dropInStatus, dropInTool, installDropIn, removeDropIn, systemEnv } from "../../node/drop-in.js";
import { has, type ParsedArgs } from "../options.js";

/** This kexec-ts's installed entry point (the package's bin, else dist/cli/main.js), which the link names. */
function program(): string {
  const bin = fileURLToPath(new URL("../../../bin/kexec-ts.cjs", import.meta.url));
  return realpathSync(existsSync(bin) ? bin : fileURLToPath(new URL("../main.js", import.meta.url)));
}

export async function run(args: ParsedArgs, rest: string[]): Promise<number> {
  const [action, ...names] = rest;
  const env = systemEnv(program());
  const tools = names.length === 0 ? (action === "status" ? DROP_IN_TOOLS : []) : names.map(dropInTool);
  if (action === "status") {
    const status = tools.map((t) => dropInStatus(t, env));
    if (has(args, "json")) {
      process.stdout.write(`${JSON.stringify({ program: env.program, dpkgDivert: env.dpkgDivert, tools: status }, null, 2)}\n`);
    } else {
      for (const s of status) {
        const what = s.installed ? `kexec-ts (${env.program})` : s.current === null ? "missing" : s.current === "file" ? "its own program" : `a link to ${s.current}`;
        process.stdout.write(`${s.path}: ${what}${s.original !== null ? `; the original is ${s.original}` : ""}${s.diversion !== null ? ` (diverted by ${s.diversion.by})` : ""}\n`);
      }
    }
    // Like `kdumpctl status`: 0 when every tool asked about runs kexec-ts, 3 when not.
    return status.every((s) => s.installed) ? 0 : 3;
  }
  if (action !== "install" && action !== "remove") {
    throw new KexecError("usage", action === undefined ? "drop-in needs an action: install, remove or status" : `drop-in: unknown action ${JSON.stringify(action)}`, { field: "action", actual: action ?? "", expected: "install | remove | status" }, `kexec-ts drop-in install ${DROP_IN_TOOLS.map((t) => t.name).join("|")}`);
  }
  if (tools.length === 0) {
    throw new KexecError("usage", `drop-in ${action} needs the tool to stand in for`, { field: "tool", expected: DROP_IN_TOOLS.map((t) => t.name).join(" | ") }, `kexec-ts drop-in ${action} kexec`);
  }
  if (process.getuid?.() !== 0) throw new KexecError("io", `drop-in ${action} changes ${tools.map((t) => t.path).join(", ")}: run it as root`, { expected: "root" }, `sudo kexec-ts drop-in ${action} ${tools.map((t) => t.name).join(" ")}`);
  for (const tool of tools) {
    for (const line of action === "install" ? installDropIn(tool, env) : removeDropIn(tool, env)) process.stdout.write(`${line}\n`);
  }
  return 0;
}
