// The recurring-tasks view of the web page (issue 9) in headless Chromium, against the real API,
// worker and stack: create a recurring task through its form, watch its next runs and its runs'
// statuses update without reloading, pause it, delete it. Another user sees none of it.
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.ts';
import { connectStack, startWorker, testConfig, waitFor, type RunningWorker, type Stack } from '../support/stack.ts';

const CHROMIUM = '/usr/bin/chromium';
const tag = randomBytes(3).toString('hex');
const TOKEN = `dana-token-${tag}`;
const OTHER = `erin-token-${tag}`;

let stack: Stack;
let worker: RunningWorker;
let app: FastifyInstance;
let browser: Browser;
let page: Page;
let url = '';

beforeAll(async () => {
  stack = await connectStack(testConfig({ API_TOKENS: `${TOKEN}:dana-${tag},${OTHER}:erin-${tag}` }));
  worker = await startWorker(stack);
  app = buildApp(stack);
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  await page.goto(url);
});

afterAll(async () => {
  for await (const s of stack.client.schedule.list()) {
    if (s.scheduleId.startsWith(`${stack.config.WORKFLOW_ID_PREFIX}recurring-`)) await stack.client.schedule.getHandle(s.scheduleId).delete().catch(() => undefined);
  }
  await browser?.close();
  await app?.close();
  await worker?.stop();
  await stack?.close();
});

it('creates a recurring task, shows its next and recent runs live, pauses and deletes it', async () => {
  await page.fill('#token', TOKEN);
  await page.click('#token-form button');
  await page.locator('#whoami', { hasText: 'signed in as' }).waitFor();

  // Bad input is answered with the field.
  const name = `page-rec-${tag}`;
  await page.fill('#recurring-name', name);
  await page.fill('#recurring-namespace', stack.namespace);
  await page.fill('#recurring-image', 'alpine');
  await page.selectOption('#recurring-kind', 'cron');
  await page.fill('#recurring-when', '*/4 * * * * * *');
  await page.click('#recurring-form button[type="submit"]');
  await page.locator('#recurring-form-error', { hasText: 'cron' }).waitFor();

  await page.fill('#recurring-when', '*/4 * * * * *');
  await page.fill('#recurring-tz', 'Europe/Paris');
  await page.click('#recurring-form button[type="submit"]');
  const row = page.locator(`#recurring tbody tr[data-name="${name}"]`);
  await row.waitFor({ timeout: 15_000 });
  expect(await row.locator('td').nth(3).textContent()).toBe('cron */4 * * * * * (Europe/Paris)');
  expect(await row.locator('td').nth(4).textContent()).toBe('active');
  expect((await row.locator('td').nth(5).textContent())!.length).toBeGreaterThan(0);
  // Runs appear and reach Succeeded without a reload.
  await row.locator('.badge-Succeeded').first().waitFor({ timeout: 60_000 });

  await row.locator('button', { hasText: 'Pause' }).click();
  await page.locator(`#recurring tbody tr[data-name="${name}"] td:nth-child(5)`, { hasText: 'paused' }).waitFor({ timeout: 10_000 });
  const rec = await stack.prisma.recurringTask.findFirstOrThrow({ where: { name } });
  expect((await stack.client.schedule.getHandle(`${stack.config.WORKFLOW_ID_PREFIX}recurring-${rec.id}`).describe()).state.paused).toBe(true);

  // Another user's page shows none of it.
  const other = await (await browser.newContext()).newPage();
  await other.goto(url);
  await other.fill('#token', OTHER);
  await other.click('#token-form button');
  await other.locator('#recurring-empty').waitFor({ state: 'visible', timeout: 10_000 });
  expect(await other.locator('#recurring tbody tr').count()).toBe(0);

  await page.locator(`#recurring tbody tr[data-name="${name}"] button`, { hasText: 'Delete' }).click();
  await page.locator('#recurring-empty').waitFor({ state: 'visible', timeout: 10_000 });
  await waitFor('the recurring task row to go', async () => ((await stack.prisma.recurringTask.count()) === 0 ? true : undefined), 10_000);
  expect(await stack.prisma.task.count({ where: { recurringTaskId: rec.id } })).toBeGreaterThan(0);
}, 120_000);
