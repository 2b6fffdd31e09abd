/**
 * Each command takes only the flags it reads (CommandSpec.takes): one it does not read is
 * refused by name, before its module loads. Here: a table of what each command takes and
 * refuses; the source read for what each command's code reads (so `takes` cannot fall behind
 * a new has(args, ...)); and every kexec-ts command line of the lab's scenarios (lab/scenarios,
 * lab/system) parsed and routed as main.ts does, without running it, so a change to `takes`
 * cannot break a scenario silently.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import ts from "typescript";
import { EXIT_STATUS, KexecError } from "../core/errors.js";
import { ACTIONS, COMMANDS, flagsTaken, parseCommandLine, routeFor, type CommandSpec } from "./commands.js";
import { planMakedumpfile } from "./commands/makedumpfile.js";
import { FLAGS } from "./options.js";

const repo = new URL("../../", import.meta.url).pathname;
const ALL: readonly CommandSpec[] = [...ACTIONS, ...COMMANDS];

interface Row {
  /** The command's name in the table (-l, plan). */
  command: string;
  /** Command lines it takes. */
  accepts: string[][];
  /** A command line with one flag it must refuse, and that flag as written. */
  refuses: [string[], string][];
}

const K = "/boot/vmlinuz";
const ROWS: Row[] = [
  {
    command: "-l",
    accepts: [["-l", K, "--initrd=/i", "--append=x", "--reuse-cmdline", "-s", "-c", "-a", "-t", "bzImage64", "--mem-min=0", "--mem-max=0xffffffff", "--entry-32bit", "--args-linux", "-d", "--json", "--root", "/r", "--userspace=i386", "-f", "-x", "-y"],
      ["--load", K, "--append", "root=/dev/vda1", "--initrd", "/i"]],
    refuses: [[["-l", K, "--vmcore", "/v"], "--vmcore"], [["-l", K, "--dump-level", "3"], "--dump-level"], [["-l", K, "--tar", "/t"], "--tar"], [["-l", K, "--from", "a"], "--from"]],
  },
  {
    command: "-p",
    accepts: [["-p", "-s", "--command-line=x", "--initrd=/i", K], ["--elf32-core-headers", "-p", "--ramdisk=/i", K], ["-p", K, "--append=x", "--initrd=/i", "-a"]],
    refuses: [[["-p", K, "--config", "/c"], "--config"], [["-p", K, "-o", "/o"], "-o"], [["-p", K, "--vmlinux"], "--vmlinux"]],
  },
  { command: "-e", accepts: [["-e"], ["-e", "--force", "--no-sync"], ["-e", "-x", "--initrd=/i"]], refuses: [[["-e", "--yes"], "--yes"]] },
  { command: "-u", accepts: [["-p", "-u"], ["-s", "-p", "-u"], ["-a", "-p", "-u"], ["-u", "-c"]], refuses: [[["-u", "--now"], "--now"]] },
  { command: "-S", accepts: [["-S"], ["-S", "-l"], ["-S", "-p"]], refuses: [[["-S", "--all"], "--all"]] },
  { command: "-f", accepts: [["-f", K, "--initrd=/i", "--reuse-cmdline", "-y"]], refuses: [[["-f", K, "--extract=/x"], "--extract"]] },
  {
    command: "check",
    accepts: [["check", "-c", "-l", K, "--initrd=/i", "--reuse-cmdline", "--json"], ["check", "-p", K, "--root", "/r", "--userspace", "i386", "--mem-min=0x1000000", "-t", "bzImage"]],
    refuses: [[["check", "-l", K, "--force"], "--force"], [["check", "-e"], "-e"], [["check", "-l", K, "-d"], "-d"]],
  },
  { command: "plan", accepts: [["plan", "-c", "-p", K, "--json", "--elf64-core-headers"], ["plan", "-s", "-l", K, "--append=x"]], refuses: [[["plan", "-l", K, "--debug"], "--debug"], [["plan", "-l", K, "-o", "/o"], "-o"]] },
  { command: "inspect", accepts: [["inspect", K, "--json", "--vmlinux"], ["inspect", K, "--extract=/x"]], refuses: [[["inspect", K, "--reuse-cmdline"], "--reuse-cmdline"], [["inspect", K, "--root", "/r"], "--root"]] },
  { command: "machine", accepts: [["machine"], ["machine", "--root", "/r", "--json"]], refuses: [[["machine", "--initrd=/x"], "--initrd"], [["machine", "-p"], "-p"]] },
  { command: "snapshot", accepts: [["snapshot", "/d"], ["snapshot", "--tar", "/t", "--root", "/r"]], refuses: [[["snapshot", "/d", "--json"], "--json"]] },
  { command: "report", accepts: [["report", "-p", K, "--initrd=/i", "--reuse-cmdline", "-s", "--root", "/r", "--vmcore", "/v", "-o", "/o"], ["report", "-o", "/o"]], refuses: [[["report", "-o", "/o", "--json"], "--json"]] },
  {
    command: "lab",
    accepts: [["lab", "--from", "a", "--to", "b", "--crash", "--crashkernel", "256M@1968M", "--mem", "4G", "--cpu", "max", "--userspace", "i386", "--load-flags=-c", "--with-kexec-tools", "--append=x", "--debug", "--json"], ["lab", "suite", "-d"]],
    refuses: [[["lab", "--from", "a", "--to", "b", "-c"], "-c"], [["lab", "--from", "a", "--to", "b", "--initrd=/i"], "--initrd"]],
  },
  {
    command: "vmcore",
    accepts: [["vmcore", "save", "-d", "31", "--format", "flat", "--compress", "lzo", "--threads", "2", "/proc/vmcore", "/d"], ["vmcore", "save", "--dump-level=1", "/s", "/d"], ["vmcore", "save", "--force", "/s", "/d"], ["vmcore", "save", "-f", "/s", "/d"], ["vmcore", "info", "--json", "/d"], ["vmcore", "dmesg", "/d"]],
    refuses: [[["vmcore", "info", "/d", "--root=/r"], "--root"], [["vmcore", "save", "-c", "/s", "/d"], "-c"]],
  },
  { command: "makedumpfile", accepts: [["makedumpfile", "/proc/vmcore", "/d"]], refuses: [[["--json", "makedumpfile", "/proc/vmcore", "/d"], "--json"]] },
  {
    command: "kdump",
    accepts: [["kdump", "start", "--force", "--config", "/c", "--json"], ["kdump", "test", "--yes"], ["kdump", "report", "--all"], ["kdump", "install", "--now"], ["kdump", "rebuild", "--kernel-version", "6.1.0-57-amd64", "--force"], ["kdump", "save", "/run/kexec-ts/capture.json"]],
    refuses: [[["kdump", "status", "--root", "/r"], "--root"], [["kdump", "start", "-p"], "-p"]],
  },
  { command: "drop-in", accepts: [["drop-in", "status", "--json"], ["drop-in", "install", "kexec", "makedumpfile"]], refuses: [[["drop-in", "status", "--root=/r"], "--root"]] },
  { command: "demo", accepts: [["demo"], ["demo", "--root", "/r"]], refuses: [[["demo", "--json"], "--json"]] },
];

test("an operand a command does not read is refused, not ignored (inspect A B inspected A alone)", () => {
  for (const [argv, message] of [
    [["inspect", K, "/boot/vmlinuz-2"], 'inspect takes one operand; "/boot/vmlinuz-2" is one too many'],
    [["check", "-l", K, "/i", "--json"], 'check takes one operand; "/i" is one too many'],
    [["machine", "extra", "--root", "/r"], 'machine takes no operands; "extra" is one too many'],
    [["snapshot", "/d", "/e", "/f"], 'snapshot takes one operand; "/e" "/f" are 2 too many'],
  ] as const) {
    assert.throws(() => routeFor(parseCommandLine(argv)), (e: unknown) => e instanceof KexecError && e.code === "usage" && e.message === message, argv.join(" "));
  }
  for (const argv of [["inspect", K], ["plan", "-p", K], ["machine"], ["snapshot", "--tar", "/t"], ["report", "-o", "/o"], ["-l", K, "extra"]]) routeFor(parseCommandLine(argv));
});

for (const row of ROWS) {
  test(`${row.command} takes what it reads and refuses by name what it does not`, () => {
    for (const argv of row.accepts) assert.equal(routeFor(parseCommandLine(argv)).command.name, row.command, argv.join(" "));
    for (const [argv, flag] of row.refuses) {
      assert.throws(() => routeFor(parseCommandLine(argv)), (e: unknown) => {
        assert.ok(e instanceof KexecError, String(e));
        assert.equal(e.code, "usage");
        assert.equal(EXIT_STATUS[e.code], 64);
        assert.ok(e.message.startsWith(`${row.command} does not take ${flag}`), e.message);
        assert.ok(e.hint?.startsWith(`kexec-ts ${row.command} takes `) && e.hint.includes(`; ${flag}`), e.hint);
        return true;
      }, argv.join(" "));
    }
  });
}

test("the refusal names the flag, the command, what the command takes, and which commands take the flag", () => {
  assert.throws(() => routeFor(parseCommandLine(["machine", "--initrd=/x"])), (e: unknown) => e instanceof KexecError
    && e.message === "machine does not take --initrd"
    && e.hint === "kexec-ts machine takes --root, --json; --initrd is a load flag (for -l, -p (and kexec-tools' other actions), check, plan, report)");
  // The user's spelling, and the flag's name in --help.
  assert.throws(() => routeFor(parseCommandLine(["inspect", K, "-c"])), /^KexecError: inspect does not take -c \(--kexec-syscall\)$/);
  assert.throws(() => routeFor(parseCommandLine(["machine", "--ramdisk=/x"])), /does not take --ramdisk \(--initrd\)/);
  // Run as /sbin/kexec, a word is an image, and the actions are as permissive as ever.
  assert.equal(routeFor(parseCommandLine(["-l", "check", "--initrd=/i", "-d"], true), true).command.name, "-l");
  assert.throws(() => routeFor(parseCommandLine(["-p", K, "--dump-level=31"], true), true), /-p does not take --dump-level/);
});

test("every command of the table has a row above, and every flag is taken by some command", () => {
  assert.deepEqual(ALL.map((c) => c.name).filter((n) => !ROWS.some((r) => r.command === n)), []);
  for (const f of FLAGS) assert.ok(ALL.some((c) => flagsTaken(c).has(f.long)), `no command takes --${f.long}`);
  for (const c of ALL) {
    for (const t of c.takes) assert.ok(t.startsWith("--") ? FLAGS.some((f) => `--${f.long}` === t) : FLAGS.some((f) => f.group === t), `${c.name} takes ${t}, which is neither a flag nor a group`);
    // What --help shows a command taking, it takes (makedumpfile's usage shows makedumpfile's own options).
    if (c.ownOptions !== undefined) continue;
    for (const m of c.usage.matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)|(?<![\w-])-([a-zA-Z])\b/g)) {
      const flag = FLAGS.find((f) => (m[1] !== undefined ? f.long === m[1] : f.short === m[2]));
      assert.ok(flag && flagsTaken(c).has(flag.long), `${c.name}'s usage shows ${m[0]}, which it does not take`);
    }
  }
});

/**
 * What each command's code reads, from the source: has(args, "x") and value(args, "x") in its
 * module, and in the functions of src/cli it calls, followed through imports and local calls.
 */
function flagsRead(moduleFile: string): Set<string> {
  const sources = new Map<string, ts.SourceFile>();
  const source = (file: string) => {
    if (!sources.has(file)) sources.set(file, ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true));
    return sources.get(file)!;
  };
  const read = new Set<string>();
  const seen = new Set<string>();
  // A function (or the whole module, name "*") of a src/cli file: the flags it reads and what it calls.
  const visitFunction = (file: string, name: string) => {
    const key = `${file}#${name}`;
    if (seen.has(key) || !file.includes("/src/cli/")) return;
    seen.add(key);
    const sf = source(file);
    const imported = new Map<string, { file: string; name: string }>();
    const local = new Map<string, ts.Node>();
    for (const s of sf.statements) {
      if (ts.isImportDeclaration(s) && ts.isStringLiteral(s.moduleSpecifier) && s.moduleSpecifier.text.startsWith(".")) {
        const from = join(dirname(file), s.moduleSpecifier.text.replace(/\.js$/, ".ts"));
        const named = s.importClause?.namedBindings;
        if (named && ts.isNamedImports(named)) for (const el of named.elements) imported.set(el.name.text, { file: from, name: (el.propertyName ?? el.name).text });
      }
      if (ts.isFunctionDeclaration(s) && s.name) local.set(s.name.text, s);
    }
    const body = name === "*" ? sf : local.get(name);
    if (!body) return;
    const walk = (n: ts.Node) => {
      if (ts.isCallExpression(n) && ts.isIdentifier(n.expression)) {
        const callee = n.expression.text;
        const target = imported.get(callee);
        const flag = n.arguments[1];
        if ((callee === "has" || callee === "value") && target?.file.endsWith("/options.ts") && flag && ts.isStringLiteral(flag)) read.add(flag.text);
        else if (target) visitFunction(target.file, target.name);
        else if (local.has(callee)) visitFunction(file, callee);
      }
      ts.forEachChild(n, walk);
    };
    walk(body);
  };
  visitFunction(moduleFile, "*");
  return read;
}

test("every flag a command's code reads is one it takes (src/cli/commands/*.ts and the helpers they call)", () => {
  for (const c of ALL) {
    const module = /import\("\.\/(commands\/[a-z-]+)\.js"\)/.exec(c.load.toString())?.[1];
    assert.ok(module, `${c.name}: its module`);
    const read = flagsRead(join(repo, "src/cli", `${module}.ts`));
    if (c.name === "-l") assert.ok(read.has("initrd") && read.has("reuse-cmdline") && read.has("force"), "the reader follows prepareLoad and loadRequest");
    const taken = flagsTaken(c);
    assert.deepEqual([...read].filter((f) => !taken.has(f)), [], `${c.name} (${module}.ts) reads these but does not take them`);
  }
});

// ---- The lab's command lines ----

/** The `run` shell scripts of the lab's scenario files. */
function scenarioScripts(): { file: string; run: string }[] {
  const out: { file: string; run: string }[] = [];
  for (const dir of ["lab/scenarios", "lab/system"]) {
    for (const name of readdirSync(join(repo, dir)).filter((n) => n.endsWith(".json"))) {
      const file = `${dir}/${name}`;
      const walk = (v: unknown, key: string) => {
        if (typeof v === "string") {
          if (key === "run") out.push({ file, run: v });
        } else if (Array.isArray(v)) for (const x of v) walk(x, key);
        else if (v !== null && typeof v === "object") for (const [k, x] of Object.entries(v)) walk(x, k);
      };
      walk(JSON.parse(readFileSync(join(repo, file), "utf8")), "");
    }
  }
  return out;
}

/**
 * The simple commands of a shell script as words, quotes removed: enough of sh for the lab's
 * scripts. A command ends at ; & | newline ( ) ` and $( outside quotes; a redirection and its
 * target are dropped; $VARIABLES stay as written; # starts a comment.
 */
function simpleCommands(script: string): string[][] {
  const commands: string[][] = [];
  let words: string[] = [];
  let word: string | null = null;
  let quote: "'" | '"' | null = null;
  let dropNext = false;
  const endWord = () => {
    if (word === null) return;
    if (dropNext) dropNext = false;
    else if (/^[0-9]*[<>]/.test(word)) dropNext = !/^[0-9]*[<>]+&?[^<>&]+$/.test(word) && !/&[0-9-]$/.test(word);
    else words.push(word);
    word = null;
  };
  const endCommand = () => {
    endWord();
    if (words.length) commands.push(words);
    words = [];
    dropNext = false;
  };
  const s = script.replace(/\\\n/g, " ");
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (quote === "'") {
      if (ch === "'") quote = null;
      else word = (word ?? "") + ch;
    } else if (quote === '"') {
      if (ch === '"') quote = null;
      else if (ch === "\\" && i + 1 < s.length) word = (word ?? "") + s[++i];
      else word = (word ?? "") + ch;
    } else if (ch === "#" && word === null) {
      // A comment, to the end of the line.
      while (i + 1 < s.length && s[i + 1] !== "\n") i++;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      word ??= "";
    } else if (ch === "\\" && i + 1 < s.length) {
      word = (word ?? "") + s[++i];
    } else if (ch === " " || ch === "\t") {
      endWord();
    } else if (";&|\n()`".includes(ch) || (ch === "$" && s[i + 1] === "(")) {
      // 2>&1 and >&2 are redirections, not a background &.
      if (ch === "&" && word !== null && /[<>]$/.test(word)) word += ch;
      else endCommand();
    } else {
      word = (word ?? "") + ch;
    }
  }
  endCommand();
  return commands;
}

/** What may stand before the program's name in a lab script's command (and `chroot DIR`). */
const PREFIX = /^([A-Za-z_][A-Za-z0-9_]*=.*|if|then|else|elif|do|while|until|!|time|\{)$/;

/**
 * A shell variable as the value of a flag with choices (`--compress $c` in a loop over codecs)
 * stands for one of them: the first, so the rest of the line is still checked.
 */
function withChoicesForVariables(argv: readonly string[]): string[] {
  const variable = /^\$(\w+|\{\w+\})$/;
  const choices = (spelling: string) => FLAGS.find((f) => (spelling.startsWith("--") ? `--${f.long}` === spelling || f.aliases?.some((a) => `--${a}` === spelling) : `-${f.short}` === spelling))?.choices;
  return argv.map((w, i) => {
    const eq = w.indexOf("=");
    if (w.startsWith("--") && eq > 0 && variable.test(w.slice(eq + 1))) {
      const c = choices(w.slice(0, eq));
      return c ? `${w.slice(0, eq)}=${c[0]}` : w;
    }
    const c = i > 0 && variable.test(w) ? choices(argv[i - 1]!) : undefined;
    return c ? c[0]! : w;
  });
}

/** kexec-ts's command lines in a script: `kexec-ts ...`, and `kexec ...` where kexec is kexec-ts (the script links it so). */
function kexecTsLines(run: string, kexecIsOurs: boolean): { argv: string[]; asKexec: boolean }[] {
  const out: { argv: string[]; asKexec: boolean }[] = [];
  for (const words of simpleCommands(run)) {
    let at = 0;
    while (at < words.length && (PREFIX.test(words[at]!) || words[at] === "chroot")) at += words[at] === "chroot" ? 2 : 1;
    const program = words[at];
    if (program === undefined || !(program === "kexec-ts" || program.endsWith("/kexec-ts") || (kexecIsOurs && ["kexec", "/bin/kexec", "/sbin/kexec"].includes(program)))) continue;
    out.push({ argv: withChoicesForVariables(words.slice(at + 1)), asKexec: !words[at]!.endsWith("kexec-ts") });
  }
  return out;
}

test("a shell script's simple commands, as the lab scenario test reads them", () => {
  assert.deepEqual(simpleCommands("kexec-ts check -c -l $K --initrd=$I --reuse-cmdline >/dev/null 2>&1; echo check-exit=$?"),
    [["kexec-ts", "check", "-c", "-l", "$K", "--initrd=$I", "--reuse-cmdline"], ["echo", "check-exit=$?"]]);
  assert.deepEqual(simpleCommands("ln -sf a /bin/kexec && KEXEC_TS_PURGATORY_SERIAL=1 kexec -p /boot/capture --append='console=ttyS0 panic=-1' > out 2> err && cat x"),
    [["ln", "-sf", "a", "/bin/kexec"], ["KEXEC_TS_PURGATORY_SERIAL=1", "kexec", "-p", "/boot/capture", "--append=console=ttyS0 panic=-1"], ["cat", "x"]]);
  assert.deepEqual(simpleCommands("# kdump-tools' savecore\nkexec-ts makedumpfile -R d < f # it's the same"), [["kexec-ts", "makedumpfile", "-R", "d"]]);
  assert.deepEqual(simpleCommands('x=$(kexec-ts vmcore info --json \\\n /d | grep y)'), [["x="], ["kexec-ts", "vmcore", "info", "--json", "/d"], ["grep", "y"]]);
});

test("every kexec-ts command line in the lab's scenarios parses and is routed to a command that takes its flags", () => {
  let lines = 0;
  const failures: string[] = [];
  for (const { file, run } of scenarioScripts()) {
    const text = readFileSync(join(repo, file), "utf8");
    // A scenario that copies kexec-tools in as /sbin/kexec runs it as `kexec`; elsewhere `kexec` is a link to kexec-ts.
    const kexecTools = /"guest": "\/sbin\/kexec"/.test(text) || /"program": "\/(usr\/)?sbin\/kexec"/.test(text);
    for (const { argv, asKexec } of kexecTsLines(run, !kexecTools)) {
      lines++;
      try {
        if (!asKexec && argv[0] === "makedumpfile") planMakedumpfile(argv.slice(1));
        else {
          const args = parseCommandLine(argv, asKexec);
          if (argv.length > 0 && !args.flags.has("version") && !args.flags.has("help")) routeFor(args, asKexec);
        }
      } catch (e) {
        failures.push(`${file}: ${asKexec ? "kexec" : "kexec-ts"} ${argv.join(" ")}: ${(e as Error).message}`);
      }
    }
  }
  assert.deepEqual(failures, []);
  assert.ok(lines > 100, `only ${lines} command lines found: has the scenarios' shape changed?`);
});
