/**
 * One ONNX Runtime session per worker process. Execution providers are tried in order and a fallback is always
 * logged: a GPU job silently running on CPU costs hours, so the operator must be able to see it.
 */
import * as ort from 'onnxruntime-node';
import { ModelError } from '../spec/errors.js';

export type ExecutionProvider = 'cuda' | 'cpu';

/**
 * Creates an ONNX Runtime session; `options.executionProviders` holds the one provider being tried. The default is
 * `ort.InferenceSession.create`; another one decides which providers "exist" (a test making CUDA fail, to check the
 * fallback and its log line whether or not the machine has a GPU), or wraps the real one (counting sessions).
 */
export type SessionFactory = (
  model: Uint8Array,
  options: ort.InferenceSession.SessionOptions,
) => Promise<ort.InferenceSession>;

export const createOrtSession: SessionFactory = (model, options) =>
  ort.InferenceSession.create(model, options);

export interface SessionOptions {
  /** Providers to try, in order. `cpu` always works. @default ['cpu'] */
  readonly providers?: readonly ExecutionProvider[];
  /** Intra-op threads; undefined lets ONNX Runtime use every core. */
  readonly threads?: number;
  /** Receives one line per provider that could not be used. */
  readonly log?: (message: string, fields?: Record<string, unknown>) => void;
  /** How sessions are created. @default createOrtSession */
  readonly createSession?: SessionFactory;
}

export interface TensorInfo {
  readonly name: string;
  /** ONNX element type (`float32`, `int64`...), when the model declares it. */
  readonly type?: ort.Tensor.Type;
  /** Declared shape; strings are symbolic dimensions (e.g. the batch dimension). */
  readonly shape?: readonly (number | string)[];
}

export interface ModelSession {
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  /** The provider that actually runs the model. */
  readonly executionProvider: ExecutionProvider;
  run(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>>;
  release(): Promise<void>;
}

export async function loadModel(model: Uint8Array, options: SessionOptions = {}): Promise<ModelSession> {
  const providers = options.providers?.length ? options.providers : (['cpu'] as const);
  const failures: string[] = [];
  const create = options.createSession ?? createOrtSession;
  for (const provider of providers) {
    try {
      const session = await create(model, {
        executionProviders: [provider],
        graphOptimizationLevel: 'all',
        ...(options.threads ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
        logSeverityLevel: 3,
      });
      if (failures.length > 0) {
        options.log?.(`execution provider fallback: running on ${provider}`, { failures });
      }
      return wrap(session, provider);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      if (isModelDefect(reason)) {
        throw new ModelError(`The model could not be loaded by ONNX Runtime: ${reason}`);
      }
      failures.push(`${provider}: ${reason}`);
      const next = providers[providers.indexOf(provider) + 1];
      options.log?.(
        `execution provider ${provider} unavailable${next ? `, falling back to ${next}` : ''}: ${reason}`,
        { provider, fallback: next },
      );
    }
  }
  throw new ModelError(`No execution provider could run the model (${failures.join('; ')})`);
}

/** Errors that no other provider will fix: the artifact itself is bad. */
function isModelDefect(message: string): boolean {
  return /protobuf parsing failed|invalid model|model_path|Load model from .* failed|INVALID_GRAPH|INVALID_PROTOBUF/i.test(
    message,
  );
}

function wrap(session: ort.InferenceSession, provider: ExecutionProvider): ModelSession {
  const info = (meta: readonly ort.InferenceSession.ValueMetadata[]): TensorInfo[] =>
    meta.map((m) => (m.isTensor ? { name: m.name, type: m.type, shape: m.shape } : { name: m.name }));
  return {
    inputs: info(session.inputMetadata),
    outputs: info(session.outputMetadata),
    executionProvider: provider,
    run: (feeds) => session.run(feeds),
    release: () => session.release(),
  };
}
