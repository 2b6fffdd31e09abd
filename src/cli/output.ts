/** Writing a command's result: JSON with --json, else the text view. */
import { has, type ParsedArgs } from "./options.js";

export function print(args: ParsedArgs, json: () => unknown, text: () => string): void {
  if (has(args, "json")) process.stdout.write(`${JSON.stringify(json(), null, 2)}\n`);
  else process.stdout.write(`${text()}\n`);
}
