/**
 * `--help` and the README's command list, both made from the command table
 * (commands.ts) and the flag table (options.ts), so neither can forget a flag
 * or a value. A test keeps the README's copy and a golden --help in step.
 */
import { ACTIONS, COMMANDS } from "./commands.js";
import { FLAG_GROUPS, FLAGS, flagUsage } from "./options.js";

/** Two lines per command: its usage, then what it does. */
export function commandList(): string {
  return [...ACTIONS, ...COMMANDS].map((c) => `kexec-ts ${c.name} ${c.usage}`.trimEnd() + `\n    ${c.summary}`).join("\n");
}

export function helpText(): string {
  const lines = ["usage: kexec-ts ACTION|COMMAND ...   (kexec-tools' actions and spellings work as in kexec)", "", commandList(), ""];
  for (const { group, title } of FLAG_GROUPS) {
    lines.push(`${title}:`);
    for (const f of FLAGS.filter((x) => x.group === group)) {
      const usage = flagUsage(f);
      lines.push(usage.length < 40 ? `  ${usage.padEnd(40)} ${f.help}` : `  ${usage}\n  ${"".padEnd(40)} ${f.help}`);
    }
    lines.push("");
  }
  return lines.join("\n");
}
