/**
 * The Plan step: from a PlanRequest to a frozen plan in `<output>/_runs/<runId>/`, and the RunState that starts
 * round 0.
 *
 *   spec -> model (registry or URI; HEAD, sha256; a model.tar.gz is extracted into <runUri>model/; companion files)
 *        -> input listing -> input.jsonl (snapshot) -> Parquet footers / line sampling -> shards -> shards.jsonl
 *        -> shards.index.json (each shard's line: offset, length, counts) -> plan.json (last)
 *
 * plan.json is written last and is the commit point: a Plan Lambda retried after a crash finds no plan.json and
 * plans again (overwriting the earlier partial files); one retried after success finds it and returns the same
 * RunState without touching anything.
 *
 * Memory: for a million input objects the snapshot and the shard list are tens of MB as text, so they are
 * streamed to storage in chunks rather than joined into one string.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { mapConcurrent } from '../manifest/concurrency.js';
import { FORMAT_EXTENSIONS, listInput } from '../manifest/list-input.js';
import { parquetLayout } from '../formats/parquet-read.js';
import { firstQuotedLineBreak } from '../formats/lines.js';
import { extractModelArchive, isModelArchive, type ExtractedArchive } from '../registry/archive.js';
import type { ApprovalStatus, ModelRegistry } from '../registry/model-registry.js';
import { writeShardList } from '../results/shard-list.js';
import { RUN_ID_PATTERN, RUN_ID_RULE, runLayout, type RunLayout } from '../runs/layout.js';
import { planRequestSchema, withRunContext, type PlanRequest, type RunState } from '../runs/tasks.js';
import {
  planSchema,
  type CompanionLocation,
  type InputObject,
  type Plan,
  type ResolvedModel,
} from '../runs/types.js';
import { InputError, ModelError, RunStateError, SpecError } from '../spec/errors.js';
import { modelFileReferences, parseJobSpec, parseJobSpecText, specFolderUri } from '../spec/load.js';
import { inputColumnsOf } from '../spec/model-io.js';
import { challengerSpecOf } from '../spec/challenger.js';
import { CHALLENGER_MODEL_FOLDER, challengerProblems } from '../challenger/plan.js';
import type { JobSpec } from '../spec/schema.js';
import {
  getJson,
  NotFoundError,
  ObjectChangedError,
  putJson,
  readOptionsOf,
  type ObjectStore,
} from '../storage/object-store.js';
import { boundText } from '../runtime/bounded-text.js';
import { pinObjects } from '../storage/pinned.js';
import { writeJsonLines } from '../storage/json-lines.js';
import { asPrefix, joinUri, resolveAgainst } from '../storage/uri.js';
import { planShards, type ParquetLayoutLike } from './planner.js';
import type { ResolvedPreflightInput } from '../preflight/index.js';
import { PreflightError, type Problem } from '../preflight/problems.js';

export interface PlanDeps {
  readonly store: ObjectStore;
  readonly registry: ModelRegistry;
  /** Clock for runDate/createdAt; injectable so tests can pin the date. */
  readonly now?: () => Date;
  /**
   * The folder of the job spec file (`specFolderUri(file)` in spec/load.ts), for a caller that read the spec from
   * a file and sends it inline (the local runner). Companion files not found next to the model artifact are looked
   * for there. Not needed with `PlanRequest.specUri`, whose folder is used.
   */
  readonly specFolderUri?: string;
  /**
   * Checks the spec against the model's signature and a sample of the input before anything is written beyond the
   * model (src/preflight: `preflightResolved`); any problem fails the plan with a PreflightError. The Lambda handler
   * and the local runner pass it; left out, nothing is checked (tests of planning alone, with stand-in models).
   */
  readonly preflight?: PreflightCheck;
}

/** What Plan asks of preflight: the problems of a spec, given its resolved model and listed input. */
export type PreflightCheck = (spec: JobSpec, resolved: ResolvedPreflightInput) => Promise<Problem[]>;

/** File name of the input snapshot inside the run prefix. */
export const SNAPSHOT_FILE = 'input.jsonl';
/** Folder inside the run prefix where a model archive is extracted. */
export const MODEL_FOLDER = 'model/';

/** Parquet footers read at once. Each is one or two small ranged GETs. */
const FOOTER_CONCURRENCY = 32;
/** Line-format objects sampled for the bytes-per-record estimate, and bytes read from the start of each. */
const SAMPLE_OBJECTS = 8;
const SAMPLE_BYTES = 1 << 20;
/** Objects named in a "missing column" error before it says "and N more". */
const MAX_LISTED = 5;

export async function planRun(request: PlanRequest, deps: PlanDeps): Promise<RunState> {
  const { store, registry } = deps;
  const now = (deps.now ?? (() => new Date()))();
  const req = checkRequest(request);
  const spec = await loadSpec(req, store);
  const specFolder = req.specUri !== undefined ? specFolderUri(req.specUri) : deps.specFolderUri;
  const runDate = now.toISOString().slice(0, 10);
  const layout = runLayout(spec.output.uri, req.runId, runDate);

  const existing = await readExistingPlan(store, layout);
  if (existing) {
    // Reusing a run id resumes that run: with another spec it would silently run the old plan (ADR 0014).
    const changed = specChanges(existing.spec, spec);
    if (changed.length > 0) {
      throw new RunStateError(
        `run ${req.runId} was planned with a different job spec; changed: ${changed.join('; ')}. ` +
          'A run id resumes the run it names with the spec it was planned with: rerun with that spec to resume, or ' +
          'start the changed job under a new run id',
      );
    }
    return withRunContext(runStateOf(existing, layout.runUri), req);
  }

  const model = await resolveModel(spec, registry, store, joinUri(layout.runUri, MODEL_FOLDER), specFolder);
  // The challenger (docs/adr/0020) is resolved like the champion, its companions next to its own artifact.
  const challengerSpec = challengerSpecOf(spec);
  const challenger = challengerSpec
    ? await resolveModel(
        challengerSpec,
        registry,
        store,
        joinUri(layout.runUri, CHALLENGER_MODEL_FOLDER),
        specFolder,
      )
    : undefined;
  const objects = await listInput(store, spec.input, { outputUri: spec.output.uri });
  if (objects.length === 0) throw await noInputError(store, spec);
  if (deps.preflight) {
    const problems = await deps.preflight(spec, {
      store,
      modelUri: model.artifactUri,
      files: model.files,
      objects,
    });
    if (challengerSpec && challenger) {
      const found = await deps.preflight(challengerSpec, {
        store,
        modelUri: challenger.artifactUri,
        files: challenger.files,
        objects,
      });
      problems.push(...challengerProblems(found, spec.model.challenger?.outputs !== undefined, problems));
    }
    if (problems.length > 0) throw new PreflightError(problems);
  }
  const snapshotUri = joinUri(layout.runUri, SNAPSHOT_FILE);
  const snapshot = await writeJsonLines(store, snapshotUri, objects);

  let layouts: Map<string, ParquetLayoutLike> | undefined;
  let bytesPerRecord: number | undefined;
  let longestLine: number | undefined;
  let wholeObjects: ReadonlySet<string> | undefined;
  if (spec.input.format === 'parquet') {
    layouts = await readParquetLayouts(store, objects, requiredColumns(spec));
  } else if (spec.input.format !== 'files') {
    // Files are one record each: their count is exact without reading anything.
    ({ bytesPerRecord, longestLine, wholeObjects } = await sampleLines(
      store,
      objects,
      spec.input.format === 'csv',
    ));
  }
  const shards = planShards(objects, spec.input.format, layouts, spec.run.shards, {
    bytesPerRecord,
    longestLine,
    wholeObjects,
  });
  // shards.jsonl and its index (byte offsets and counts), so no reader has to decode the whole list.
  await writeShardList(store, layout, shards);

  const plan: Plan = planSchema.parse({
    version: 1,
    runId: req.runId,
    runDate,
    createdAt: now.toISOString(),
    spec,
    model,
    ...(challenger && { challenger }),
    input: {
      objects: objects.length,
      bytes: objects.reduce((sum, o) => sum + o.size, 0),
      snapshotSha256: snapshot.sha256,
      snapshotUri,
    },
    shardCount: shards.length,
    maxRounds: spec.run.maxRounds,
  } satisfies Plan);
  await putJson(store, layout.planUri, plan);
  return withRunContext(runStateOf(plan, layout.runUri), req);
}

function runStateOf(plan: Plan, runUri: string): RunState {
  return {
    runId: plan.runId,
    runUri,
    shardCount: plan.shardCount,
    round: 0,
    maxRounds: plan.maxRounds,
    pending: plan.shardCount,
    compute: plan.spec.run.compute,
    next: 'infer',
    // run.canary: the state machine runs it before the first round (only when there is a shard to take it from).
    ...(plan.spec.run.canary && plan.shardCount > 0 && { canary: plan.spec.run.canary.records }),
  };
}

function checkRequest(request: PlanRequest): PlanRequest {
  const parsed = planRequestSchema.safeParse(request);
  if (!parsed.success) {
    throw new SpecError(
      parsed.error.issues.map((issue) => ({
        path: issue.path.join('.'),
        value:
          issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : describeValue(request, issue.path),
        message:
          issue.code === 'unrecognized_keys'
            ? 'has unknown field(s); expected runId, spec, specUri, inputUri'
            : issue.message,
      })),
      'PlanRequest',
    );
  }
  const req = parsed.data;
  if (!RUN_ID_PATTERN.test(req.runId)) {
    throw new SpecError(
      [
        {
          path: 'runId',
          value: JSON.stringify(req.runId),
          message: RUN_ID_RULE,
        },
      ],
      'PlanRequest',
    );
  }
  if ((req.spec === undefined) === (req.specUri === undefined)) {
    throw new SpecError(
      [
        {
          path: req.spec ? 'spec, specUri' : 'spec',
          value: req.spec ? 'both' : 'undefined',
          message: 'set exactly one of spec (the job spec inline) or specUri (where it is stored)',
        },
      ],
      'PlanRequest',
    );
  }
  return req;
}

function describeValue(root: unknown, keys: readonly PropertyKey[]): string {
  let value: unknown = root;
  for (const key of keys)
    value =
      typeof value === 'object' && value !== null ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  const text = JSON.stringify(value) ?? 'undefined';
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * The spec, with `inputUri` applied. The override goes through the full spec validation again, so it must be an
 * s3:// or file:// URI and may not overlap the output, exactly as if it had been written in the spec.
 */
async function loadSpec(req: PlanRequest, store: ObjectStore): Promise<JobSpec> {
  let spec: JobSpec;
  let source: string;
  if (req.spec !== undefined) {
    source = 'PlanRequest.spec';
    spec = parseJobSpec(req.spec, { source });
  } else {
    const specUri = req.specUri!;
    source = specUri;
    let text: string;
    try {
      text = new TextDecoder().decode(await store.get(specUri));
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      throw new SpecError(
        [{ path: '', value: specUri, message: 'does not exist (PlanRequest.specUri)' }],
        specUri,
      );
    }
    spec = parseJobSpecText(text, { source });
  }
  if (req.inputUri !== undefined) {
    spec = parseJobSpec(
      { ...spec, input: { ...spec.input, uri: req.inputUri } },
      { source: `${source} with PlanRequest.inputUri ${req.inputUri} as input.uri` },
    );
  }
  return spec;
}

/** Differences shown in a "changed spec" error before "and N more". */
const MAX_SPEC_CHANGES = 5;

/** `path (was X, now Y)` for each leaf that differs between two specs (plain JSON data), first few only. */
export function specChanges(planned: unknown, requested: unknown): string[] {
  const out: string[] = [];
  let total = 0;
  const show = (v: unknown): string => boundText(v === undefined ? 'absent' : JSON.stringify(v), 80);
  const walk = (a: unknown, b: unknown, at: string): void => {
    const objects =
      a !== null &&
      b !== null &&
      typeof a === 'object' &&
      typeof b === 'object' &&
      Array.isArray(a) === Array.isArray(b);
    if (objects) {
      const ra = a as Record<string, unknown>;
      const rb = b as Record<string, unknown>;
      for (const key of [...new Set([...Object.keys(ra), ...Object.keys(rb)])].sort()) {
        walk(ra[key], rb[key], at === '' ? key : `${at}.${key}`);
      }
      return;
    }
    if (JSON.stringify(a) === JSON.stringify(b)) return;
    total++;
    if (out.length < MAX_SPEC_CHANGES) out.push(`${at || '(root)'} (was ${show(a)}, now ${show(b)})`);
  };
  walk(planned, requested, '');
  if (total > out.length) out.push(`and ${total - out.length} more`);
  return out;
}

async function readExistingPlan(store: ObjectStore, layout: RunLayout): Promise<Plan | undefined> {
  if (!(await store.tryHead(layout.planUri))) return undefined;
  const parsed = planSchema.safeParse(await getJson(store, layout.planUri));
  if (!parsed.success || parsed.data.runId !== layout.runId) {
    throw new RunStateError(
      `${layout.planUri} exists but is not a valid plan for run ${layout.runId}` +
        (parsed.success ? ` (it belongs to run ${parsed.data.runId})` : `: ${parsed.error.message}`) +
        '; start the run under a new run id',
    );
  }
  return parsed.data;
}

async function resolveModel(
  spec: JobSpec,
  registry: ModelRegistry,
  store: ObjectStore,
  modelFolderUri: string,
  specFolder: string | undefined,
): Promise<ResolvedModel> {
  let artifactUri: string;
  let described: string;
  let fromRegistry: { group: string; version: number; status: ApprovalStatus } | undefined;
  let archive = false;
  if (spec.model.registry) {
    const { group, version } = spec.model.registry;
    const resolved = await registry.resolve(group, version);
    fromRegistry = { group: resolved.group, version: resolved.version, status: resolved.status };
    artifactUri = resolved.artifactUri;
    archive = resolved.archive === true;
    described = `the artifact of model ${resolved.group} version ${resolved.version} (${resolved.status})`;
  } else {
    artifactUri = spec.model.uri!;
    described = 'model.uri';
  }

  // An archive is extracted into the run's folder; the run then loads the extracted .onnx like any other.
  let extracted: ExtractedArchive | undefined;
  let model: { uri: string; etag: string; size: number; sha256: string };
  if (archive || isModelArchive(artifactUri)) {
    extracted = await extractModelArchive(store, artifactUri, modelFolderUri, described);
    model = extracted.model;
  } else {
    const info = await store.tryHead(artifactUri);
    if (!info) {
      throw new ModelError(
        `${described} ${artifactUri} does not exist; check the path or the registry entry`,
      );
    }
    model = {
      uri: artifactUri,
      etag: info.etag,
      size: info.size,
      sha256: await sha256Of(store, artifactUri),
    };
  }

  // Companion files (labels, tokenizer, processor): checked here, so a typo fails the plan and not every shard.
  const files: Record<string, string> = {};
  const fileLocations: Record<string, CompanionLocation> = {};
  for (const { ref, field } of modelFileReferences(spec)) {
    if (ref in files) continue;
    const found = await resolveCompanion(store, ref, field, artifactUri, model.uri, extracted, specFolder);
    files[ref] = found.uri;
    fileLocations[ref] = found.location;
  }
  return {
    source: fromRegistry ? 'registry' : 'uri',
    ...(fromRegistry ?? {}),
    artifactUri: model.uri,
    etag: model.etag,
    size: model.size,
    sha256: model.sha256,
    files,
    fileLocations,
    ...(extracted && { archive: extracted.archive }),
  };
}

/**
 * Where a companion file is, and which of the places it was found in. A URI (or an absolute path) is taken as it
 * is. A relative reference is looked up, first found wins:
 * 1. inside an extracted model archive: next to the .onnx, then at the archive's root (`archive`);
 * 2. next to the model artifact as it is stored (`artifact`): a file shipped with the model;
 * 3. next to the job spec, when its folder is known (`spec`): a file shipped with the job, such as a processor
 *    module kept in the pipeline's repository next to its spec.
 * When none has it, the error lists every place looked at.
 */
async function resolveCompanion(
  store: ObjectStore,
  ref: string,
  field: string,
  artifactUri: string,
  modelUri: string,
  extracted: ExtractedArchive | undefined,
  specFolder: string | undefined,
): Promise<{ uri: string; location: CompanionLocation }> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(ref) || path.isAbsolute(ref)) {
    const uri = resolveAgainst(artifactUri, ref);
    if (await store.tryHead(uri)) return { uri, location: 'uri' };
    throw new ModelError(`${field} "${ref}" does not exist at ${uri}; check the URI`);
  }
  const inArchive: string[] = [];
  if (extracted) {
    const archived = new Set([...extracted.files.values()].map((f) => f.uri));
    for (const uri of [resolveAgainst(modelUri, ref), joinUri(asPrefix(extracted.rootUri), ref)]) {
      if (archived.has(uri)) return { uri, location: 'archive' };
      if (!inArchive.includes(uri)) inArchive.push(uri);
    }
  }
  const nextToArtifact = resolveAgainst(artifactUri, ref);
  if (await store.tryHead(nextToArtifact)) return { uri: nextToArtifact, location: 'artifact' };
  const nextToSpec = specFolder === undefined ? undefined : resolveAgainst(asPrefix(specFolder), ref);
  if (nextToSpec !== undefined && (await store.tryHead(nextToSpec)))
    return { uri: nextToSpec, location: 'spec' };

  const places = [
    ...(extracted ? [`in the model archive ${artifactUri} (at ${inArchive.join(', ')})`] : []),
    `next to the model artifact (${nextToArtifact})`,
    nextToSpec !== undefined
      ? `next to the job spec (${nextToSpec})`
      : 'next to the job spec (not looked at: the spec was sent inline, so its folder is not known; send specUri)',
  ];
  throw new ModelError(
    `${field} "${ref}" was not found ${places.join(', nor ')}; put the file in one of those places or give its ` +
      'full URI',
  );
}

async function sha256Of(store: ObjectStore, uri: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of await store.getStream(uri)) hash.update(chunk as Uint8Array);
  return hash.digest('hex');
}

/** Moved to storage/json-lines.ts; re-exported for callers that imported it from here. */
export { writeJsonLines };

/** Columns every Parquet input must have: the model's input columns, the id column and the passthrough columns. */
function requiredColumns(spec: JobSpec): string[] {
  const columns = new Set<string>();
  for (const input of spec.model.inputs) for (const c of inputColumnsOf(input)) columns.add(c);
  if (spec.input.id) columns.add(spec.input.id);
  for (const c of spec.output.passthrough) columns.add(c);
  return [...columns];
}

/**
 * Footers of every Parquet input (row groups for sharding) with a column check: a file without a column the job
 * reads would fail its shard in every round, so it fails the plan instead, naming the files.
 */
async function readParquetLayouts(
  store: ObjectStore,
  objects: readonly InputObject[],
  columns: readonly string[],
): Promise<Map<string, ParquetLayoutLike>> {
  const problems: string[] = [];
  const layouts = await mapConcurrent(objects, FOOTER_CONCURRENCY, async (object) => {
    let layout;
    try {
      // Pinned to the snapshot: a footer read from a replaced file would plan row groups the workers never see.
      layout = await parquetLayout(pinObjects(store, [object]), object.uri, object.size);
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new InputError(
          `input object ${object.uri} disappeared while the run was being planned; start again`,
        );
      }
      if (err instanceof ObjectChangedError) throw changedWhilePlanning(object);
      // The footer reader reports every failure as an unreadable file, a conditional read's included: a file
      // that is no longer the one listed is reported as changed, whatever its bytes looked like.
      const now = await store.tryHead(object.uri).catch(() => undefined);
      if (now && now.etag !== object.etag) throw changedWhilePlanning(object);
      throw err;
    }
    const missing = columns.filter((c) => !layout.columns.includes(c));
    if (missing.length > 0) {
      problems.push(
        `${object.uri} has no column ${missing.map((c) => `"${c}"`).join(', ')} (it has ${layout.columns.join(', ')})`,
      );
    }
    // Only what the planner needs: a million column lists would be most of the plan's memory.
    return { rows: layout.rows, rowGroups: layout.rowGroups };
  });
  if (problems.length > 0) {
    problems.sort();
    const more = problems.length > MAX_LISTED ? `\n  ... and ${problems.length - MAX_LISTED} more` : '';
    throw new InputError(
      `${problems.length} Parquet input file(s) lack columns the job reads (model inputs, input.id, ` +
        `output.passthrough):\n${problems
          .slice(0, MAX_LISTED)
          .map((p) => `  - ${p}`)
          .join('\n')}${more}\nFix the spec's column names or remove those files from the input`,
    );
  }
  return new Map(objects.map((object, i) => [object.uri, layouts[i]!]));
}

/**
 * Average bytes per record of a line-format input, from the first MiB of a few objects spread over the snapshot.
 * An estimate only (it sizes shards by `targetRecords` and fills `Shard.records`); undefined when nothing could be
 * sampled. A sampled object that has vanished is skipped: the shard that owns it reports that, with its range.
 */
async function sampleLines(
  store: ObjectStore,
  objects: readonly InputObject[],
  csvHeader: boolean,
): Promise<{ bytesPerRecord?: number; longestLine?: number; wholeObjects?: ReadonlySet<string> }> {
  if (objects.length === 0) return {};
  const picks = [
    ...new Set(
      Array.from({ length: Math.min(SAMPLE_OBJECTS, objects.length) }, (_, i) =>
        Math.floor((i * objects.length) / Math.min(SAMPLE_OBJECTS, objects.length)),
      ),
    ),
  ].map((i) => objects[i]!);
  const samples = await mapConcurrent(picks, SAMPLE_OBJECTS, async (object) => {
    const length = Math.min(object.size, SAMPLE_BYTES);
    let bytes: Uint8Array;
    try {
      bytes = await store.get(object.uri, { start: 0, end: length }, readOptionsOf(object));
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      if (err instanceof ObjectChangedError) throw changedWhilePlanning(object);
      throw err;
    }
    const whole = bytes.length >= object.size;
    const counted = countLines(bytes, whole, csvHeader);
    let longest = longestLineIn(bytes, whole);
    const tail = bytes.length - (bytes.lastIndexOf(0x0a) + 1);
    if (!whole && tail > Math.max(longest, LONG_LINE_PROBE_FROM)) {
      // The sample ends inside a line longer than any it holds: find where that line ends.
      longest = Math.max(longest, await lineLengthFrom(store, object, bytes.length - tail, bytes.length));
    }
    // CSV: a quoted line break means the object is read by one range (ADR 0014).
    const quotedBreak = csvHeader && firstQuotedLineBreak(bytes) >= 0;
    return { counted, longest, quotedBreak, uri: object.uri };
  });
  const wholeObjects = new Set(samples.flatMap((s) => (s?.quotedBreak ? [s.uri] : [])));
  let totalBytes = 0;
  let totalRecords = 0;
  let longestLine = 0;
  for (const sample of samples) {
    if (!sample) continue;
    longestLine = Math.max(longestLine, sample.longest);
    if (!sample.counted) continue;
    totalBytes += sample.counted.bytes;
    totalRecords += sample.counted.records;
  }
  return {
    ...(totalRecords > 0 && { bytesPerRecord: totalBytes / totalRecords }),
    ...(longestLine > 0 && { longestLine }),
    ...(wholeObjects.size > 0 && { wholeObjects }),
  };
}

/** A line that reaches the end of a sample is looked for further only when longer than this. */
const LONG_LINE_PROBE_FROM = 64 << 10;
/** Bytes read past a sample to find the end of a long line; a longer line is taken to run to the object's end. */
const LONG_LINE_PROBE_BYTES = 16 << 20;

/** The longest line in a sample, newline included; a trailing partial line counts only for a whole object. */
export function longestLineIn(bytes: Uint8Array, wholeObject: boolean): number {
  let longest = 0;
  let start = 0;
  for (let i = bytes.indexOf(0x0a); i >= 0; i = bytes.indexOf(0x0a, i + 1)) {
    longest = Math.max(longest, i + 1 - start);
    start = i + 1;
  }
  return wholeObject ? Math.max(longest, bytes.length - start) : longest;
}

/**
 * Length of the line starting at `lineStart`, reading on from `from` in SAMPLE_BYTES windows up to
 * LONG_LINE_PROBE_BYTES. A line still open after that is taken to run to the end of the object: planning one shard
 * too few costs little, planning thousands of empty ones costs a worker each.
 */
async function lineLengthFrom(
  store: ObjectStore,
  object: InputObject,
  lineStart: number,
  from: number,
): Promise<number> {
  let offset = from;
  while (offset < object.size && offset - from < LONG_LINE_PROBE_BYTES) {
    const end = Math.min(object.size, offset + SAMPLE_BYTES);
    let window: Uint8Array;
    try {
      window = await store.get(object.uri, { start: offset, end }, readOptionsOf(object));
    } catch (err) {
      if (err instanceof ObjectChangedError) throw changedWhilePlanning(object);
      throw err;
    }
    const newline = window.indexOf(0x0a);
    if (newline >= 0) return offset + newline + 1 - lineStart;
    offset = end;
  }
  return object.size - lineStart;
}

/** Objects of a prefix looked at to explain why none of them is input. */
const EXPLAIN_LISTED = 1000;

/**
 * A run over no input is an error, not a success with 0 records (ADR 0014): an empty folder, or a folder whose
 * files do not have the declared format's extension (`format: jsonl` over CSV files), is almost always a mistake in
 * the spec or a pipeline that ran before its data landed. The message says what the prefix does hold.
 */
async function noInputError(store: ObjectStore, spec: JobSpec): Promise<InputError> {
  const { uri, format } = spec.input;
  const base = `input.uri ${uri} holds no ${format} input`;
  const extensions = FORMAT_EXTENSIONS[format];
  const wanted = extensions ? ` (objects ending in ${extensions.join(', ')})` : '';
  if (!uri.endsWith('/')) return new InputError(`${base}: the object is empty (0 bytes)`);
  const others: string[] = [];
  let listed = 0;
  for await (const info of store.list(uri)) {
    listed++;
    if (others.length < 3 && info.size > 0) others.push(info.uri.slice(uri.length));
    if (listed >= EXPLAIN_LISTED) break;
  }
  if (listed === 0) {
    return new InputError(
      `${base}: the folder is empty. Point input.uri at a folder with data, or start the run once the data has landed`,
    );
  }
  return new InputError(
    `${base}${wanted}: it holds ${listed >= EXPLAIN_LISTED ? `${EXPLAIN_LISTED}+` : listed} other object(s)` +
      (others.length > 0
        ? `, e.g. ${others.join(', ')}`
        : ', all empty or bookkeeping (_SUCCESS, .staging/)') +
      `. Set input.format to the format of those files, or point input.uri at the ${format} data`,
  );
}

/** An input object replaced between the listing and a read of it by the planner: its snapshot is already stale. */
function changedWhilePlanning(object: InputObject): InputError {
  return new InputError(
    `input object ${object.uri} changed while the run was being planned (ETag was ${object.etag}); start again ` +
      'once the data has stopped changing',
  );
}

/** Complete lines in a sample (a trailing partial line counts only when the sample is the whole object). */
export function countLines(
  bytes: Uint8Array,
  wholeObject: boolean,
  csvHeader: boolean,
): { bytes: number; records: number } | undefined {
  let records = 0;
  let lastNewline = -1;
  for (let i = bytes.indexOf(0x0a); i >= 0; i = bytes.indexOf(0x0a, i + 1)) {
    records++;
    lastNewline = i;
  }
  let covered = lastNewline + 1;
  if (wholeObject && covered < bytes.length) {
    records++;
    covered = bytes.length;
  }
  if (csvHeader) records--;
  return records > 0 ? { bytes: covered, records } : undefined;
}
