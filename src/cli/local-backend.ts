/** The local backend for a command's options (state directory, S3 endpoint). */
import { LocalBackend } from '../operate/local-backend.js';
import { createObjectStore } from '../storage/index.js';
import { resolveStateDir, type StateOptions } from './common.js';
import type { CliIo } from './io.js';

export interface BackendOptions extends StateOptions {
  readonly s3Endpoint?: string;
}

export function localBackend(options: BackendOptions, io: CliIo): LocalBackend {
  const s3Endpoint = options.s3Endpoint ?? io.env.BATCH_INFER_S3_ENDPOINT;
  return new LocalBackend({
    stateDir: resolveStateDir(options, io),
    store: createObjectStore({ s3Endpoint }),
  });
}
