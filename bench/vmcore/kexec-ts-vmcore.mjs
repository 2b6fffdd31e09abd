// `kexec-ts vmcore ...` without the main CLI (until src/cli/commands.ts routes `vmcore` to vmcoreCommand).
import { parseArgs } from "../../dist/cli/options.js";
import { vmcoreCommand } from "../../dist/cli/vmcore.js";

const args = parseArgs(["vmcore", ...process.argv.slice(2)]);
try {
  process.exitCode = await vmcoreCommand(args, args.positionals.slice(1));
} catch (e) {
  process.stderr.write(`kexec-ts: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ""}`);
  process.exitCode = e.code ? 1 : 70;
}
