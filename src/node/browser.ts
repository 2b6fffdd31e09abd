/**
 * Debian's chromium for the browser tests and the bench, driven by playwright-core (which never
 * downloads a browser here): headless, no sandbox (root in CI), no GPU, and nothing that reaches
 * for the network — the page must work from file:// with the network closed. Each launch gets a
 * fresh profile directory, removed on close.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const CHROMIUM = process.env.KEXEC_TS_CHROMIUM ?? "/usr/bin/chromium";

export const CHROMIUM_FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];

export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed: apt-get install chromium (bash .ci/setup-debian.sh does)`;
}

type Playwright = typeof import("playwright-core");
export type BrowserContext = Awaited<ReturnType<Playwright["chromium"]["launchPersistentContext"]>>;

export async function launchChromium(viewport = { width: 1280, height: 900 }): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const { chromium } = (await import("playwright-core")) as Playwright;
  const profile = mkdtempSync(join(tmpdir(), "kexec-ts-chromium-"));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS, viewport });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Where tests leave screenshots: $KEXEC_TS_ARTIFACTS or test-artifacts/ in the working directory. */
export function artifactDir(...parts: string[]): string {
  return join(process.env.KEXEC_TS_ARTIFACTS ?? "test-artifacts", ...parts);
}
