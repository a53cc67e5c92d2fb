import { existsSync } from 'node:fs';
import { type Browser, chromium, type Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';

/**
 * The playground in a real browser: Debian's Chromium, headless, opens /graphql?token=…, runs a query
 * through GraphiQL's editor and run button, and reads the answer from the result pane — all from this
 * server, with no request leaving for another host (the page must work offline).
 *
 * Chromium comes from apt (`apt-get install -y chromium`; .ci/run installs it when missing). Without
 * it this test fails and says so, unless SKIP_BROWSER_TESTS=1.
 */

const CHROMIUM = '/usr/bin/chromium';
const skip = process.env.SKIP_BROWSER_TESTS === '1';
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

describe.skipIf(skip)('GraphiQL in headless Chromium', () => {
  let app: TestApp;
  let browser: Browser | undefined;

  beforeAll(async () => {
    // A missing browser fails the test below (a failure in a hook would count it as skipped).
    if (!existsSync(CHROMIUM)) return;
    const [started, launched] = await Promise.allSettled([
      startTestApp({ label: 'playground-browser' }),
      chromium.launch({
        executablePath: CHROMIUM,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      }),
    ]);
    // Whichever started is kept, so afterAll stops it even when the other failed.
    if (started.status === 'fulfilled') app = started.value;
    if (launched.status === 'fulfilled') browser = launched.value;
    if (started.status === 'rejected') throw started.reason;
    if (launched.status === 'rejected') throw launched.reason;
  });
  afterAll(async () => {
    await browser?.close();
    await app?.stop();
  });

  it('runs { health { status } } from the editor and shows "status": "ok", loading nothing from elsewhere', async () => {
    if (!browser) {
      throw new Error(
        `${CHROMIUM} is missing: install it with "apt-get install -y chromium" (CI's .ci/run does), ` +
          'or set SKIP_BROWSER_TESTS=1 to skip the browser tests',
      );
    }
    const context = await browser.newContext();
    const page = await context.newPage();
    const requests: Request[] = [];
    const foreign: string[] = [];
    page.on('request', (request) => requests.push(request));
    // Anything bound for another host is recorded and refused, so a CDN dependency fails loudly here.
    await context.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (url.protocol === 'data:' || url.protocol === 'blob:' || LOOPBACK_HOSTS.has(url.hostname)) {
        return route.continue();
      }
      foreign.push(url.href);
      return route.abort();
    });
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));

    await page.goto(`${app.baseUrl}/graphql?token=${encodeURIComponent(app.adminToken)}`);
    await page.locator('.graphiql-query-editor .CodeMirror').waitFor({ state: 'visible', timeout: 15_000 });

    // Type into the editor: select what the default query holds, then replace it key by key. GraphiQL
    // closes brackets itself, so the closing braces come from the editor, not from us.
    await page.locator('.graphiql-query-editor .CodeMirror').click();
    await page.keyboard.press('Control+A');
    await page.keyboard.press('Delete');
    await page.keyboard.type('{ health { status ');
    const typed = await page.locator('.graphiql-query-editor .CodeMirror').evaluate(readEditor);
    expect(typed.replace(/\s+/g, '')).toBe('{health{status}}');

    const graphqlPost = page.waitForRequest(
      (request) => request.method() === 'POST' && new URL(request.url()).pathname === '/graphql',
    );
    await page.locator('.graphiql-execute-button').click();
    const sent = await graphqlPost;
    expect(sent.postDataJSON()).toMatchObject({ query: expect.stringContaining('health') });
    // The ?token= parameter became the Authorization header of the request.
    expect(sent.headers().authorization).toBe(`Bearer ${app.adminToken}`);

    // The result pane is a read-only editor too: read what it holds, not how it is laid out.
    const result = page.locator('.graphiql-response .CodeMirror');
    await expect.poll(() => result.evaluate(readEditor), { timeout: 10_000 }).toContain('"status": "ok"');

    expect(foreign).toEqual([]);
    for (const request of requests) {
      const url = new URL(request.url());
      if (url.protocol === 'data:' || url.protocol === 'blob:') continue;
      expect(LOOPBACK_HOSTS.has(url.hostname), `request to ${url.href}`).toBe(true);
    }
    expect(pageErrors).toEqual([]);
    await context.close();
  });
});

/** Runs in the page: the text of a GraphiQL 3 (CodeMirror 5) editor element. */
function readEditor(element: unknown): string {
  return (element as { CodeMirror: { getValue(): string } }).CodeMirror.getValue();
}
