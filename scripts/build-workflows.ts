// `npm run build:workflows`: bundle the workflow code once, ahead of time (Temporal's
// production sample), so workers start without webpack. Point WORKFLOW_BUNDLE_PATH at the file.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { bundleWorkflows } from '../src/worker-setup.ts';

const out = resolve(process.argv[2] ?? 'lib/workflow-bundle.js');
const { code } = await bundleWorkflows();
await mkdir(dirname(out), { recursive: true });
await writeFile(out, code);
console.log(`workflow bundle written to ${out}; start workers with WORKFLOW_BUNDLE_PATH=${out}`);
