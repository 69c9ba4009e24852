// `npm run db:seed`: the two classic demo tasks. Safe to run again: rows are matched on their
// unique (name, namespace) and left as they are if they exist, so a demo task that has
// already run keeps its status.
import { pathToFileURL } from 'node:url';
import { loadConfig } from '../src/config.ts';
import { createPrisma, type PrismaClient } from '../src/db/client.ts';
import { TaskStatus } from '../src/task-status.ts';

const DEMO_TASKS = [
  { name: 'demo-task-1', namespace: 'default', info: { image: 'alpine', command: ['sleep', '60'] } },
  { name: 'demo-task-2', namespace: 'demo', info: { image: 'busybox', command: ['sleep', '3600'] } },
];

export async function seedDemoTasks(prisma: PrismaClient): Promise<void> {
  for (const { name, namespace, info } of DEMO_TASKS) {
    await prisma.task.upsert({
      where: { name_namespace: { name, namespace } },
      create: { name, namespace, info: JSON.stringify(info), status: TaskStatus.Normal, userId: 'demo' },
      update: {},
    });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const prisma = createPrisma(loadConfig().DATABASE_URL, 1);
  try {
    await seedDemoTasks(prisma);
    console.log(`seeded ${DEMO_TASKS.map((t) => `${t.namespace}/${t.name}`).join(', ')}`);
  } catch (err) {
    console.error(`db:seed failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  } finally {
    await prisma.$disconnect();
  }
}
