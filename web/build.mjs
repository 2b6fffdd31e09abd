// Builds the web page once, for both uses: dist/web/index.html is the static app (open it from
// file://, drop a snapshot archive and a kernel image) and the template `kexec-ts report` fills
// with its data. Scripts and styles are inlined: the page loads nothing from anywhere.
import { build } from "esbuild";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "dist", "web");
const result = await build({
  entryPoints: [join(here, "src", "main.ts")],
  bundle: true,
  format: "iife",
  target: "es2022",
  platform: "browser",
  minify: true,
  legalComments: "none",
  write: false,
  outdir: out,
  logLevel: "warning",
});
const js = result.outputFiles.find((f) => f.path.endsWith(".js")).text;
const css = result.outputFiles.find((f) => f.path.endsWith(".css"))?.text ?? "";
const template = await readFile(join(here, "index.html"), "utf8");
// "</script" inside the bundle would end the inline script early.
const html = template.replace("/*STYLE*/", () => css).replace("/*SCRIPT*/", () => js.replace(/<\/script/gi, "<\\/script"));
await mkdir(out, { recursive: true });
await writeFile(join(out, "index.html"), html);
console.log(`web: dist/web/index.html (${Math.round(html.length / 1024)} KiB)`);
