// What the browser scripts (graphiql.mjs, console.mjs) share: Chromium as
// the tests launch it, and the run of their steps with the report they print.

import puppeteer from 'puppeteer-core';

/** Headless Chromium (CHROMIUM, default /usr/bin/chromium), 1400×900. */
export function launch() {
  return puppeteer.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    // Root in a container has no user namespace for Chromium's sandbox.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--window-size=1400,900'],
    defaultViewport: { width: 1400, height: 900 },
  });
}

/**
 * Runs `steps`, closes `browser` and prints `seen` as one JSON object on
 * standard output. When a step throws: the error and the steps seen so far
 * on standard error, and exit status 2.
 */
export async function report(browser, seen, steps) {
  try {
    await steps();
  } catch (error) {
    console.error(`a step could not run: ${error?.stack ?? error}`);
    console.error(JSON.stringify(seen, null, 1));
    await browser.close();
    process.exit(2);
  }
  await browser.close();
  console.log(JSON.stringify(seen));
}
