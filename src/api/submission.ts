// The body of POST /tasks: { name, namespace, info }. `info` is exactly the task's `info` (taskInfoSchema),
// stored as sent, so error fields read the same in the request ("info.args[3]") as in a task's failure
// reason, and a field added to the info schema needs no change here. Pure module.
import { describeTaskInfoIssues, MAX_INFO_BYTES, taskInfoSchema, validateNamespaceName, validateTaskName, type TaskInfo } from '../task/info.ts';
import { formatKiB, type FieldProblem } from './errors.ts';

const EXAMPLE_SUBMISSION = '{"name": "nightly-report", "namespace": "default", "info": {"image": "alpine:3.20", "args": ["echo", "hi"]}}';
const BODY_FIELDS = ['name', 'namespace', 'info'];
const INFO_FIELDS = Object.keys(taskInfoSchema.shape);

export interface Submission {
  name: string;
  namespace: string;
  /** The `info` column: the request's info as compact JSON. */
  infoText: string;
  /** The same info, validated (defaults of the schema applied): what the operator's policy is checked against. */
  info: TaskInfo;
}

export type SubmissionResult =
  | { ok: true; submission: Submission }
  | { ok: false; status: 400 | 413; problems: FieldProblem[] };

export function validateSubmission(body: unknown): SubmissionResult {
  if (body === undefined) {
    return invalid([{ field: '(body)', message: `the request has no body: send a JSON object like ${EXAMPLE_SUBMISSION}` }]);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return invalid([{ field: '(body)', message: `the request body must be a JSON object like ${EXAMPLE_SUBMISSION}` }]);
  }
  const fields = body as Record<string, unknown>;
  const problems: FieldProblem[] = [];

  for (const key of Object.keys(fields)) {
    if (BODY_FIELDS.includes(key)) continue;
    // The commonest mistake is a flat body: {"name", "namespace", "image", …}.
    const hint = INFO_FIELDS.includes(key) ? ` (task settings go inside info: did you mean info.${key}?)` : '';
    problems.push({ field: key, message: `${key} is not a known field${hint}: remove it; the body accepts ${BODY_FIELDS.join(', ')}` });
  }

  const name = requiredString(fields, 'name', '"nightly-report"', problems);
  if (name !== undefined) {
    const problem = validateTaskName(name);
    if (problem) problems.push({ field: 'name', message: problem });
  }
  const namespace = requiredString(fields, 'namespace', '"default"', problems);
  if (namespace !== undefined) {
    const problem = validateNamespaceName(namespace);
    if (problem) problems.push({ field: 'namespace', message: problem });
  }

  let infoText: string | undefined;
  let info: TaskInfo | undefined;
  if (fields.info === undefined) {
    problems.push({ field: 'info', message: 'info is required: an object describing the Job, at least {"image": "alpine:3.20"}' });
  } else {
    const parsed = taskInfoSchema.safeParse(fields.info);
    if (parsed.success) {
      infoText = JSON.stringify(fields.info);
      info = parsed.data;
    }
    else problems.push(...describeTaskInfoIssues(parsed.error.issues));
  }

  if (problems.length > 0) return invalid(problems);
  // The body limit leaves room around a full info; the info itself is held to the limit the worker applies.
  const infoBytes = Buffer.byteLength(infoText!, 'utf8');
  if (infoBytes > MAX_INFO_BYTES) {
    return {
      ok: false,
      status: 413,
      problems: [
        {
          field: 'info',
          message:
            `info is ${formatKiB(infoBytes)}; at most ${formatKiB(MAX_INFO_BYTES)} is allowed: ` +
            'keep large inputs out of info (bake them into the image or pass a URL in args)',
        },
      ],
    };
  }
  return { ok: true, submission: { name: name!, namespace: namespace!, infoText: infoText!, info: info! } };
}

function requiredString(fields: Record<string, unknown>, key: string, example: string, problems: FieldProblem[]): string | undefined {
  const value = fields[key];
  if (typeof value === 'string') return value;
  problems.push({
    field: key,
    message: value === undefined ? `${key} is required, for example ${example}` : `${key} must be a string, for example ${example}`,
  });
  return undefined;
}

function invalid(problems: FieldProblem[]): SubmissionResult {
  return { ok: false, status: 400, problems };
}

export { namespaceAllowed } from '../task/info.ts';
