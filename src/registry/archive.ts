/**
 * Model archives: a `model.tar.gz` (SageMaker's packaging) holding exactly one `.onnx` file and its companions
 * (labels, tokenizer, processor). Plan extracts the archive once into the run's folder (`<runUri>model/`), so every
 * worker loads plain files from storage, and the run's audit names both the archive (URI, ETag, sha256) and the
 * extracted model (sha256).
 *
 * A corrupt archive (not gzip, truncated, a bad tar header) or one without exactly one .onnx file is a ModelError
 * that says which and how to fix it. macOS resource forks (`._name`) and `__MACOSX/` are not model files and are
 * left out.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ModelError } from '../spec/errors.js';
import { NotFoundError, type ObjectInfo, type ObjectStore } from '../storage/object-store.js';
import { asPrefix, joinUri } from '../storage/uri.js';
import { readTar, TarError } from './tar.js';

/** Names that mean "a model archive" (case-insensitive). */
export const ARCHIVE_PATTERN = /\.(tar\.gz|tgz)$/i;

export function isModelArchive(uri: string): boolean {
  return ARCHIVE_PATTERN.test(uri);
}

export interface ExtractedFile {
  /** Path inside the archive, e.g. `model.onnx` or `model/labels.txt`. */
  readonly path: string;
  /** Where it was extracted to. */
  readonly uri: string;
  readonly size: number;
  readonly etag: string;
  readonly sha256: string;
}

export interface ExtractedArchive {
  /** The archive itself, as read. */
  readonly archive: {
    readonly uri: string;
    readonly etag: string;
    readonly size: number;
    readonly sha256: string;
  };
  /** The one .onnx file. */
  readonly model: ExtractedFile;
  /** Every extracted file, by path. */
  readonly files: ReadonlyMap<string, ExtractedFile>;
  /** `<target>/`: the folder the archive was extracted into. */
  readonly rootUri: string;
}

/**
 * Extracts `archiveUri` under `targetUri`, streaming (gunzip and untar as the bytes arrive, each file written as it
 * is read). `what` names the artifact in errors (e.g. `the artifact of model iris version 3`).
 */
export async function extractModelArchive(
  store: ObjectStore,
  archiveUri: string,
  targetUri: string,
  what: string,
): Promise<ExtractedArchive> {
  const rootUri = asPrefix(targetUri);
  let info: ObjectInfo;
  let raw: Readable;
  try {
    info = await store.head(archiveUri);
    raw = await store.getStream(archiveUri);
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new ModelError(`${what} ${archiveUri} does not exist; check the path or the registry entry`);
    }
    throw err;
  }
  if (info.size === 0) {
    raw.destroy();
    throw new ModelError(`${what} ${archiveUri} is empty (0 bytes); upload the model archive again`);
  }
  const archiveHash = createHash('sha256');
  let first = true;
  let archiveBytes = 0;
  // Hash the stored bytes on their way into gunzip, and check the gzip magic on the first chunk for a clear error.
  const hashed = Readable.from(
    (async function* () {
      for await (const chunk of raw as AsyncIterable<Uint8Array>) {
        if (first && chunk.length > 0) {
          first = false;
          if (chunk[0] !== 0x1f || (chunk.length > 1 && chunk[1] !== 0x8b)) {
            throw new ModelError(
              `${what} ${archiveUri} is not a gzip file (a .tar.gz must start with the gzip signature 1f 8b); ` +
                'package the model with `tar -czf model.tar.gz model.onnx ...`',
            );
          }
        }
        archiveHash.update(chunk);
        archiveBytes += chunk.length;
        yield chunk;
      }
    })(),
  );
  const gunzip = createGunzip();
  hashed.on('error', (err) => gunzip.destroy(err));
  const tar = hashed.pipe(gunzip);

  const files = new Map<string, ExtractedFile>();
  try {
    for await (const entry of readTar(tar)) {
      if (entry.type !== 'file' || isJunk(entry.path)) continue;
      const uri = joinUri(rootUri, entry.path);
      const hash = createHash('sha256');
      let size = 0;
      const body = (async function* () {
        for await (const piece of entry.body) {
          hash.update(piece);
          size += piece.length;
          yield piece;
        }
      })();
      const written = await store.putStream(uri, body, { contentType: contentTypeOf(entry.path) });
      files.set(entry.path, { path: entry.path, uri, size, etag: written.etag, sha256: hash.digest('hex') });
    }
  } catch (err) {
    if (err instanceof ModelError) throw err;
    const reason = err instanceof TarError ? err.message : describeZlib(err);
    throw new ModelError(
      `${what} ${archiveUri} is a corrupt model archive: ${reason}. Re-create it with ` +
        '`tar -czf model.tar.gz model.onnx <companion files>` and upload it again',
    );
  }

  const models = [...files.values()].filter((f) => /\.onnx$/i.test(f.path));
  if (models.length !== 1) {
    const listing = [...files.keys()].slice(0, 20).join(', ') || 'no files';
    throw new ModelError(
      models.length === 0
        ? `${what} ${archiveUri} holds no .onnx file (it has ${listing}); put the exported ONNX model in the archive`
        : `${what} ${archiveUri} holds ${models.length} .onnx files (${models.map((m) => m.path).join(', ')}); ` +
            'a model archive must hold exactly one, so it is clear which model runs',
    );
  }
  return {
    archive: { uri: archiveUri, etag: info.etag, size: archiveBytes, sha256: archiveHash.digest('hex') },
    model: models[0]!,
    files,
    rootUri,
  };
}

/** macOS metadata that tar picks up from Finder copies: never part of a model. */
function isJunk(path: string): boolean {
  return path.split('/').some((segment) => segment.startsWith('._') || segment === '__MACOSX');
}

function contentTypeOf(path: string): string {
  if (/\.json$/i.test(path)) return 'application/json';
  if (/\.(txt|csv)$/i.test(path)) return 'text/plain';
  return 'application/octet-stream';
}

function describeZlib(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'Z_BUF_ERROR') return 'the gzip stream ends early (the file is truncated)';
  if (code === 'Z_DATA_ERROR') return `the gzip data is damaged (${(err as Error).message})`;
  return err instanceof Error ? err.message : String(err);
}
