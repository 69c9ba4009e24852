// The web page in headless Chromium, against the real API, worker and stack: a user enters a token,
// submits a task through the form and watches it reach Succeeded without reloading, uses the
// Retry and Cancel buttons, and signs out (the token is kept for the tab's session only). A screenshot is left at /tmp/nightwatch-page.png for a human look.
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.ts';
import { workflowUrl } from '../../src/temporal.ts';
import { taskWorkflowId } from '../../workflows/ids.ts';
import { expectOneRunPerAttempt, expectOneRunPerTask } from '../support/job-ledger.ts';
import { connectStack, startWorker, testConfig, waitFor, type RunningWorker, type Stack } from '../support/stack.ts';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = '/tmp/nightwatch-page.png';
const tag = randomBytes(3).toString('hex');
const USER = `carol-${tag}`;
const TOKEN = `carol-token-${tag}`;

let stack: Stack;
/** The first of the file's two namespaces: the form's default choice. */
let NAMESPACE: string;
let worker: RunningWorker;
let app: FastifyInstance;
let browser: Browser;
let page: Page;
let navigations = 0;
/** The task submitted through the form, retried by a later test. */
let submitted = '';

beforeAll(async () => {
  stack = await connectStack(testConfig({ API_TOKENS: `${TOKEN}:${USER}` }), { namespaces: 2 });
  NAMESPACE = stack.namespace;
  worker = await startWorker(stack);
  app = buildApp(stack);
  await app.listen({ host: '127.0.0.1', port: 0 });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  // A context of its own, so a test can open a second tab in the same browser session.
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) navigations += 1;
  });
  await page.goto(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/`);
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await worker?.stop();
  await stack?.close();
});

const taskName = (label: string) => `page-${label}-${tag}`;

const rowOf = (name: string) => page.locator(`#tasks tbody tr[data-name="${name}"]`);
const waitForStatus = (name: string, status: string, timeout = 60_000) =>
  rowOf(name).locator(`td.status .badge-${status}`).waitFor({ timeout });
const dbRow = (name: string) => stack.prisma.task.findUniqueOrThrow({ where: { name_namespace: { name, namespace: NAMESPACE } } });

describe('the web page', () => {
  it('asks for a token, then shows who is signed in and the allowed namespaces', async () => {
    await expect(page.locator('#token-error').textContent()).resolves.toContain('Enter your API token');

    await page.fill('#token', `wrong-${TOKEN}`);
    await page.click('#token-form button');
    await page.locator('#token-error', { hasText: 'Token rejected: the API token is not valid' }).waitFor();

    await page.fill('#token', TOKEN);
    await page.click('#token-form button');
    await page.locator('#whoami', { hasText: `signed in as ${USER}` }).waitFor();
    expect(await page.locator('#token-error').isHidden()).toBe(true);
    expect(await page.locator('#namespace option').allTextContents()).toEqual(stack.namespaces);
    // Kept for this tab's session only: never in localStorage, where every later visit would find it.
    expect(await page.evaluate(() => sessionStorage.getItem('nightwatch.token'))).toBe(TOKEN);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    expect(await page.locator('#sign-out').isVisible()).toBe(true);
  });

  it("shows the server's message next to the field that is wrong, and stores nothing", async () => {
    await page.fill('#name', 'Nightly_Report');
    await page.fill('#image', 'alpine:3.20');
    await page.fill('#timeout', 'soon');
    await page.click('#submit');

    const nameError = page.locator('[data-error-for="name"]');
    await nameError.filter({ hasText: 'task name "Nightly_Report" is not valid' }).waitFor();
    expect(await page.locator('[data-error-for="info.timeoutSeconds"]').textContent()).toContain(
      'info.timeoutSeconds must be a whole number of seconds greater than 0',
    );
    expect(await page.getAttribute('#name', 'aria-invalid')).toBe('true');
    expect(await stack.prisma.task.count({ where: { userId: USER } })).toBe(0);
  });

  it('submits a task through the form and shows it reach Succeeded without reloading, linked to its workflow', async () => {
    const name = taskName('ok');
    submitted = name;
    await page.fill('#name', name);
    await page.fill('#image', 'alpine:3.20');
    await page.fill('#command', 'sh\n-c');
    await page.fill('#args', 'echo hello from the page\n');
    await page.fill('#timeout', '600');
    await page.click('#submit');

    await page.locator('#submit-ok', { hasText: 'Submitted task' }).waitFor();
    expect(await page.locator('[data-error-for]').allTextContents()).toEqual(['', '', '', '', '', '']);
    const stored = await dbRow(name);
    expect(JSON.parse(stored.info)).toEqual({ image: 'alpine:3.20', command: ['sh', '-c'], args: ['echo hello from the page'], timeoutSeconds: 600 });

    await waitForStatus(name, 'Succeeded');
    expect((await dbRow(name)).status).toBe('Succeeded');
    const id = stored.id.toString();
    expect(await rowOf(name).locator('td.id').textContent()).toBe(id);
    const expected = workflowUrl(stack.config, taskWorkflowId(id, stack.config.WORKFLOW_ID_PREFIX));
    expect(await rowOf(name).locator('td.workflow a').getAttribute('href')).toBe(expected);
    expect(expected.startsWith(stack.config.TEMPORAL_UI_URL.replace(/\/$/, ''))).toBe(true);
    expect(navigations).toBe(1);
    await expectOneRunPerTask(stack.jobs, [await dbRow(name)]);
  });

  it('retries a finished task and cancels a running one with the row buttons', async () => {
    const done = submitted;
    await rowOf(done).getByRole('button', { name: 'Retry' }).click();
    await rowOf(done).locator('td.attempt', { hasText: '2' }).waitFor();
    await waitForStatus(done, 'Succeeded');
    expect(await dbRow(done)).toMatchObject({ status: 'Succeeded', attempt: 2 });
    await expectOneRunPerAttempt(stack.jobs, await dbRow(done), [1, 2]);

    const long = taskName('long');
    await page.fill('#name', long);
    await page.fill('#image', 'alpine:3.20');
    await page.fill('#command', '');
    await page.fill('#args', '');
    await page.fill('#timeout', '');
    // The form has no annotations field; the KWOK knob that keeps the pod running goes through the API.
    const response = await page.evaluate(
      async ({ name, namespace, token }) => {
        const r = await fetch('/tasks', {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ name, namespace, info: { image: 'alpine:3.20', annotations: { 'nightwatch.io/kwok-run-duration': '60s' } } }),
        });
        return r.status;
      },
      { name: long, namespace: NAMESPACE, token: TOKEN },
    );
    expect(response).toBe(201);
    await waitForStatus(long, 'Running');
    await rowOf(long).getByRole('button', { name: 'Cancel' }).click();
    await waitForStatus(long, 'Cancelled', 20_000);
    expect(await rowOf(long).locator('td.reason').textContent()).toBe('cancelled on request');
    await waitFor('the cancelled Job to be deleted', () =>
      stack.kube.batch.readNamespacedJob({ name: long, namespace: NAMESPACE }).then(
        () => undefined,
        (err: { code?: number }) => (err.code === 404 ? true : undefined),
      ),
    10_000);
    await expectOneRunPerTask(stack.jobs, [await dbRow(long)]);
    expect(navigations).toBe(1);
  });

  it('shows text from the server as text, never as markup', async () => {
    const hostile = '<img src=x onerror="window.__injected = true"><b>bold</b>';
    const name = taskName('xss');
    await stack.prisma.task.create({
      data: { name, namespace: NAMESPACE, info: '{"image":"alpine:3.20"}', status: 'Failed', reason: hostile, userId: USER },
    });

    await waitFor('the row to be listed', async () => ((await rowOf(name).count()) === 1 ? true : undefined), 10_000);

    expect(await rowOf(name).locator('td.reason').textContent()).toBe(hostile);
    expect(await page.locator('#tasks img, #tasks b').count()).toBe(0);
    expect(await page.evaluate('window.__injected')).toBeUndefined();

    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  it('keeps the token for this tab only: another tab asks for it, a reload keeps it', async () => {
    const other = await page.context().newPage();
    try {
      // Same browser, same origin, same storage partition: localStorage would be shared here.
      await other.goto(page.url());
      await other.locator('#token-error', { hasText: 'Enter your API token' }).waitFor();
      expect(await other.locator('#whoami').textContent()).toBe('');
      expect(await other.locator('#sign-out').isHidden()).toBe(true);
      expect(await other.locator('#tasks tbody tr').count()).toBe(0);
    } finally {
      await other.close();
    }

    await page.reload();
    await page.locator('#whoami', { hasText: `signed in as ${USER}` }).waitFor();
    await rowOf(submitted).waitFor();
  });

  it('signs out: forgets the token, clears the list and stops asking the API', async () => {
    const calls: string[] = [];
    page.on('request', (request) => {
      if (request.resourceType() === 'fetch') calls.push(request.url());
    });

    await page.getByRole('button', { name: 'Sign out' }).click();

    await page.locator('#token-error', { hasText: 'Enter your API token' }).waitFor();
    expect(await page.locator('#whoami').textContent()).toBe('');
    expect(await page.locator('#tasks tbody tr').count()).toBe(0);
    expect(await page.locator('#sign-out').isHidden()).toBe(true);
    expect(await page.evaluate(() => [sessionStorage.getItem('nightwatch.token'), localStorage.length])).toEqual([null, 0]);
    // Longer than two poll intervals (1.5 s): nothing is fetched without a token.
    calls.length = 0;
    await page.waitForTimeout(3_500);
    expect(calls).toEqual([]);

    // Signed out stays signed out across a reload.
    await page.reload();
    await page.locator('#token-error', { hasText: 'Enter your API token' }).waitFor();
    expect(await page.locator('#tasks tbody tr').count()).toBe(0);
  });
});
