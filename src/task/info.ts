// The one schema for a task's `info`: the JSON text in the `task` row that describes its Job.
// Every type for `info` is inferred from it. An invalid `info` fails only its own task, so every
// message names the field and says how to fix it. Pure module: no I/O, safe to import anywhere.
import { z } from 'zod';

/** The whole `info` text, in UTF-8 bytes. Large inputs belong in the image or behind a URL. */
export const MAX_INFO_BYTES = 64 * 1024;
/** Entries in `command`, `args` and `env` each. */
export const MAX_LIST_ENTRIES = 100;
/** Characters in one `command` or `args` entry. */
export const MAX_ENTRY_CHARS = 4096;
/** An image reference, tag and digest included, is far shorter in practice. */
export const MAX_IMAGE_CHARS = 512;
export const MAX_BACKOFF_LIMIT = 10;
/**
 * A task runs once unless it asks for retries: a failure is reported, not silently repeated
 * (Kubernetes would default to 6), and a user who wants another go retries the task explicitly.
 */
/** Polls are at most 30 s apart (workflows/task.ts) and may be late during an outage: keep finished Jobs 5 minutes at least. */
export const MIN_TTL_SECONDS = 300;
export const DEFAULT_BACKOFF_LIMIT = 0;

const EXAMPLE_IMAGE = '"alpine:3.20"';
const EXAMPLE_INFO = '{"image": "alpine:3.20"}';

// [registry[:port]/]path[:tag][@digest], after the distribution/reference grammar. A registry must
// look like a host (a dot, a port or "localhost") so "MyOrg/app" is not mistaken for one.
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `(?:localhost|${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})+|\\[[0-9a-fA-F:.]+\\])(?::[0-9]+)?|${DOMAIN_COMPONENT}:[0-9]+`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const IMAGE_REFERENCE = new RegExp(
  `^(?:(?:${DOMAIN})/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*(?::${TAG})?(?:@${DIGEST})?$`,
);

// Kubernetes' long-standing rule for variable names: newer clusters accept more, every cluster accepts this.
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

// A Kubernetes quantity without a sign: "500m", "0.5", "128Mi", "1G", "1e3".
export const QUANTITY = /^(\d+(?:\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$/;
const QUANTITY_SCALE: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** Accurate enough to compare a request with its limit or a maximum; not for arithmetic. */
export function quantityValue(text: string): number {
  const [, number = '0', suffix = ''] = QUANTITY.exec(text) ?? [];
  const scale = /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : (QUANTITY_SCALE[suffix] ?? 1);
  return Number(number) * scale;
}

function quote(value: unknown, max = 80): string {
  const text = typeof value === 'string' ? value : String(value);
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${quote(value, 40)}`;
  return `the ${typeof value} ${String(value)}`;
}

// Zod falls back to a schema's own error function for the checks chained on it, so each field
// below carries one function that phrases every way it can be wrong. Messages follow the field's
// path ("info.image is required: …"); see describeTaskInfoIssues.
type Issue = z.core.$ZodRawIssue;

const image = z
  .string({
    error: (iss: Issue) => {
      if (iss.input === undefined) return `is required: set the container image, for example ${EXAMPLE_IMAGE}`;
      if (typeof iss.input !== 'string') return `must be a string naming the container image, for example ${EXAMPLE_IMAGE}`;
      if (iss.input === '') return `must not be empty: set the container image, for example ${EXAMPLE_IMAGE}`;
      if (iss.code === 'too_big') return `is ${iss.input.length} characters long; at most ${MAX_IMAGE_CHARS} are allowed`;
      return (
        `must be an image reference like [registry/]name[:tag][@digest], with a lowercase name and no spaces ` +
        `(got ${quote(iss.input)}), for example ${EXAMPLE_IMAGE} or "ghcr.io/acme/report:1.4"`
      );
    },
  })
  .min(1)
  .max(MAX_IMAGE_CHARS)
  .regex(IMAGE_REFERENCE);

function stringList(example: string) {
  const entry = z
    .string({
      error: (iss: Issue) =>
        typeof iss.input === 'string'
          ? `is ${iss.input.length} characters long; at most ${MAX_ENTRY_CHARS} are allowed`
          : `must be a string, not ${jsonType(iss.input)}`,
    })
    .max(MAX_ENTRY_CHARS);
  return z
    .array(entry, {
      error: (iss: Issue) =>
        Array.isArray(iss.input)
          ? `has ${iss.input.length} entries; at most ${MAX_LIST_ENTRIES} are allowed`
          : `must be a list of strings, for example ${example}, not ${jsonType(iss.input)}`,
    })
    .max(MAX_LIST_ENTRIES);
}

const env = z
  .record(
    z.string().regex(ENV_NAME),
    z.string({
      error: (iss: Issue) =>
        `must be a string, not ${jsonType(iss.input)}` +
        (typeof iss.input === 'number' || typeof iss.input === 'boolean' ? ` (write "${String(iss.input)}")` : ''),
    }),
    {
      error: (iss: Issue) =>
        iss.code === 'invalid_key'
          ? 'is not a valid environment variable name: use letters, digits, "_", "-" and ".", not starting with a digit, for example "LOG_LEVEL"'
          : `must be an object mapping variable names to string values, for example {"LOG_LEVEL": "debug"}, not ${jsonType(iss.input)}`,
    },
  )
  .refine((vars) => Object.keys(vars).length <= MAX_LIST_ENTRIES, {
    error: (iss: Issue) =>
      `has ${Object.keys(iss.input as object).length} variables; at most ${MAX_LIST_ENTRIES} are allowed`,
  });

function quantity(example: string) {
  return z
    .string({
      error: (iss: Issue) => {
        if (typeof iss.input === 'number') return `must be a string, for example ${example} (write "${iss.input}", not ${iss.input})`;
        if (typeof iss.input !== 'string') return `must be a Kubernetes quantity string, for example ${example}`;
        return `must be a Kubernetes quantity like ${example} (got ${quote(iss.input)})`;
      },
    })
    .regex(QUANTITY);
}

function knownFields(fields: string) {
  return (iss: Issue) =>
    iss.code === 'unrecognized_keys' ? undefined : `must be an object with ${fields}, not ${jsonType(iss.input)}`;
}

const resourceList = z.strictObject(
  {
    cpu: quantity('"500m" (half a CPU) or "2"').optional(),
    memory: quantity('"512Mi" or "2Gi"').optional(),
  },
  { error: knownFields('"cpu" and/or "memory", for example {"cpu": "500m", "memory": "256Mi"}') },
);

const resources = z
  .strictObject(
    { requests: resourceList.optional(), limits: resourceList.optional() },
    { error: knownFields('"requests" and/or "limits", for example {"limits": {"memory": "256Mi"}}') },
  )
  .superRefine((r, ctx) => {
    for (const kind of ['cpu', 'memory'] as const) {
      const request = r.requests?.[kind];
      const limit = r.limits?.[kind];
      if (request !== undefined && limit !== undefined && quantityValue(request) > quantityValue(limit)) {
        ctx.addIssue({
          code: 'custom',
          path: ['requests', kind],
          message: `(${quote(request)}) must not exceed info.resources.limits.${kind} (${quote(limit)}): lower the request or raise the limit`,
        });
      }
    }
  });

// Kubernetes' qualified name: an optional DNS-subdomain prefix and '/', then a 63-character name.
const ANNOTATION_KEY = /^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

const annotations = z
  .record(
    z.string().max(316).regex(ANNOTATION_KEY),
    z.string({ error: (iss: Issue) => `must be a string, not ${jsonType(iss.input)}` }).max(MAX_ENTRY_CHARS),
    {
      error: (iss: Issue) =>
        iss.code === 'invalid_key'
          ? 'is not a valid annotation key: use a name like "example.com/owner" or "owner" (letters, digits, "-", "_", "."; at most 63 characters after an optional DNS prefix)'
          : `must be an object mapping annotation keys to string values, for example {"example.com/owner": "team-a"}, not ${jsonType(iss.input)}`,
    },
  )
  .refine((a) => Object.keys(a).length <= MAX_LIST_ENTRIES, {
    error: (iss: Issue) => `has ${Object.keys(iss.input as object).length} annotations; at most ${MAX_LIST_ENTRIES} are allowed`,
  });

function wholeNumber(rule: string, example: string, min: number, max?: number) {
  const schema = z.int({
    error: (iss: Issue) => `must be ${rule}, for example ${example}, not ${jsonType(iss.input)}`,
  });
  return max === undefined ? schema.min(min) : schema.min(min).max(max);
}

export const taskInfoSchema = z.strictObject(
  {
    /** The container image, e.g. "alpine:3.20" or "ghcr.io/acme/report@sha256:…". */
    image,
    /** Replaces the image's entrypoint. */
    command: stringList('["sh", "-c", "echo hello"]').optional(),
    /** Arguments to the entrypoint (or to `command`). */
    args: stringList('["--verbose", "input.csv"]').optional(),
    /**
     * Environment variables as an object, {"NAME": "value"}: names are unique by construction and
     * it is what people write by hand. buildJob turns it into Kubernetes' [{name, value}] list.
     */
    env: env.optional(),
    /** Annotations for the task's pod (monitoring, sidecar injection; on the local stack, KWOK's test knobs). */
    annotations: annotations.optional(),
    /** Kubernetes requests and limits, as quantity strings. */
    resources: resources.optional(),
    /** Wall-clock limit for the whole Job, retries included (activeDeadlineSeconds). */
    timeoutSeconds: wholeNumber('a whole number of seconds greater than 0', '3600', 1).optional(),
    /** Pod retries before the Job fails; see DEFAULT_BACKOFF_LIMIT. */
    backoffLimit: wholeNumber(`a whole number from 0 to ${MAX_BACKOFF_LIMIT}`, '2', 0, MAX_BACKOFF_LIMIT).default(
      DEFAULT_BACKOFF_LIMIT,
    ),
    /**
     * Seconds Kubernetes keeps the finished Job before deleting it; unset keeps it until someone
     * deletes it. At least MIN_TTL_SECONDS: a Job deleted before nightwatch read its outcome
     * would fail its task as "disappeared".
     */
    ttlSecondsAfterFinished: wholeNumber(`a whole number of seconds, ${MIN_TTL_SECONDS} or more (nightwatch reads the outcome from the finished Job)`, '86400', MIN_TTL_SECONDS).optional(),
  },
  {
    error: (iss: Issue) =>
      iss.code === 'unrecognized_keys' ? undefined : `must be a JSON object like ${EXAMPLE_INFO}, not ${jsonType(iss.input)}`,
  },
);

/** A valid `info`, defaults applied: what buildJob receives. */
export type TaskInfo = z.output<typeof taskInfoSchema>;
/** What a user may write in `info`. */
export type TaskInfoInput = z.input<typeof taskInfoSchema>;

const FIELDS = Object.keys(taskInfoSchema.shape);
// Names people reach for first, from Kubernetes or other job runners.
const FIELD_ALIASES: Record<string, string> = {
  activedeadlineseconds: 'timeoutSeconds',
  timeout: 'timeoutSeconds',
  retries: 'backoffLimit',
  ttl: 'ttlSecondsAfterFinished',
  cmd: 'command',
  entrypoint: 'command',
  arguments: 'args',
  environment: 'env',
};

const ALLOWED_FIELDS: Record<string, string[]> = {
  info: FIELDS,
  'info.resources': Object.keys(resources.shape),
  'info.resources.requests': Object.keys(resourceList.shape),
  'info.resources.limits': Object.keys(resourceList.shape),
};

function suggestField(key: string): string | undefined {
  const lower = key.toLowerCase();
  return FIELDS.find((f) => f.toLowerCase() === lower) ?? FIELD_ALIASES[lower];
}

/** `["env", "A B"]` → `info.env["A B"]`; `["args", 3]` → `info.args[3]`. */
function fieldPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, key) => {
    if (typeof key === 'number') return `${out}[${key}]`;
    const name = String(key);
    return /^[A-Za-z_$][\w$]*$/.test(name) ? `${out}.${name}` : `${out}[${JSON.stringify(name)}]`;
  }, 'info');
}

export type TaskInfoProblem = { field: string; message: string };

/**
 * One readable problem per bad field, from taskInfoSchema's issues: what an HTTP API shows next
 * to each field, and what parseTaskInfo joins into a task's failure reason.
 */
export function describeTaskInfoIssues(issues: readonly z.core.$ZodIssue[]): TaskInfoProblem[] {
  const problems: TaskInfoProblem[] = [];
  const seen = new Set<string>();
  const add = (field: string, message: string) => {
    if (seen.has(field)) return;
    seen.add(field);
    problems.push({ field, message });
  };
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      const parent = fieldPath(issue.path);
      const allowed = ALLOWED_FIELDS[parent] ?? [];
      for (const key of issue.keys) {
        const field = fieldPath([...issue.path, key]);
        const suggestion = issue.path.length === 0 ? suggestField(key) : undefined;
        add(
          field,
          `${field} is not a known field` +
            (suggestion ? ` (did you mean ${parent}.${suggestion}?)` : '') +
            `: remove it; ${parent} accepts ${allowed.join(', ')}`,
        );
      }
    } else {
      const field = fieldPath(issue.path);
      add(field, `${field} ${issue.message}`);
    }
  }
  return problems;
}

export type TaskInfoParseResult = { ok: true; info: TaskInfo } | { ok: false; reason: string };

/** Parses and validates the `info` text of a task row. Never throws. */
export function parseTaskInfo(raw: string): TaskInfoParseResult {
  const bytes = utf8ByteLength(raw);
  if (bytes > MAX_INFO_BYTES) {
    return {
      ok: false,
      reason:
        `info is ${formatKiB(bytes)}; at most ${formatKiB(MAX_INFO_BYTES)} is allowed: ` +
        'keep large inputs out of info (bake them into the image or pass a URL in args)',
    };
  }
  if (raw.trim() === '') {
    return { ok: false, reason: `info is empty: set it to a JSON object with at least an image, for example ${EXAMPLE_INFO}` };
  }
  let value: unknown;
  let protoKey = false;
  try {
    // Parsed objects keep a "__proto__" key, but validation would drop it without a word.
    value = JSON.parse(raw, (key, v: unknown) => {
      if (key === '__proto__') protoKey = true;
      return v;
    });
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    return { ok: false, reason: `info is not valid JSON (${detail}): fix the syntax, for example ${EXAMPLE_INFO}` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, reason: `info must be a JSON object like ${EXAMPLE_INFO}, not ${jsonType(value)}` };
  }
  if (protoKey) return { ok: false, reason: 'info uses the key "__proto__", which is not allowed anywhere in info: remove or rename it' };
  const parsed = taskInfoSchema.safeParse(value);
  if (parsed.success) return { ok: true, info: parsed.data };
  return { ok: false, reason: describeTaskInfoIssues(parsed.error.issues).map((p) => p.message).join('; ') };
}

function utf8ByteLength(text: string): number {
  // Most texts are decided without counting: each UTF-16 unit takes 1 to 3 bytes.
  if (text.length * 3 <= MAX_INFO_BYTES) return text.length;
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      // A surrogate pair: one character outside the BMP, 4 bytes.
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

function formatKiB(bytes: number): string {
  const kib = bytes / 1024;
  return `${Number.isInteger(kib) ? kib : kib.toFixed(1)} KiB`;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_LABEL_MAX = 63;

function dnsLabelProblem(value: string, what: string, role: string): string | null {
  const rule = 'lowercase letters, digits and "-", starting and ending with a letter or digit';
  if (value === '') return `${what} is empty: it ${role}, so use ${rule}, for example "nightly-report"`;
  if (value.length > DNS_LABEL_MAX) {
    return `${what} ${quote(value, 40)} is ${value.length} characters long; it ${role}, which may be at most ${DNS_LABEL_MAX}: shorten it`;
  }
  if (DNS_LABEL.test(value)) return null;
  const fixed = value
    .toLowerCase()
    .replace(/[^-a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  const example = fixed && DNS_LABEL.test(fixed) ? `, for example ${quote(fixed)}` : '';
  return `${what} ${quote(value)} is not valid: it ${role}, so use only ${rule}${example}`;
}

/**
 * null if `name` can be a Job name, else why not. Job names are held to a DNS-1123 label (not the
 * 253-character subdomain other objects get) because the Job controller copies the name into a
 * label on its pods, and label values stop at 63 characters.
 */
export function validateTaskName(name: string): string | null {
  return dnsLabelProblem(name, 'task name', 'becomes the Kubernetes Job name');
}

/** null if `namespace` can name a Kubernetes namespace (a DNS-1123 label), else why not. */
export function validateNamespaceName(namespace: string): string | null {
  return dnsLabelProblem(namespace, 'namespace', 'must name a Kubernetes namespace');
}

/** Whether ALLOWED_NAMESPACES lets tasks target `namespace`; `*` allows any. */
export function namespaceAllowed(allowed: readonly string[], namespace: string): boolean {
  return allowed.includes('*') || allowed.includes(namespace);
}
