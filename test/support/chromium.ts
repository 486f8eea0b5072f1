import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Debian's chromium (.ci/run installs it), or CHROMIUM_PATH. Playwright downloads no browser here. */
const CHROMIUM_CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'];
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * The Chromium a browser suite runs, for its `before` hook: CI must run it (.ci/run installs chromium),
 * so there a missing browser fails the suite; elsewhere it only skips it.
 */
export function chromiumPathOrSkip(suite: Mocha.Context): string {
  const executablePath = CHROMIUM_CANDIDATES.find(
    (candidate): candidate is string => !!candidate && existsSync(candidate),
  );
  if (executablePath) return executablePath;
  if (process.env.CI)
    throw new Error(
      `no Chromium at ${CHROMIUM_CANDIDATES.filter(Boolean).join(' or ')}: .ci/run installs it (apt-get install -y chromium)`,
    );
  console.log(
    '      SKIPPED: no Chromium found (/usr/bin/chromium, or set CHROMIUM_PATH); `apt-get install -y chromium` to run the browser test',
  );
  return suite.skip();
}

export function launchChromium(executablePath: string): Promise<Browser> {
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_FLAGS });
}
