/**
 * Trigger state kept as small objects in one bucket (the data bucket's `state/` prefixes): the objects an upload
 * window or a volume counter collected, the claims that make an object count once, the list manifests runs read.
 * Every object is written by one invocation under a key derived from what it describes, so there is no
 * read-modify-write and no contention: the only conditional write is `putIfAbsent` (S3 `If-None-Match: *`), which
 * decides who was first.
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';

export interface TriggerStateStore {
  /** The bucket the keys are in (list manifests are named by `s3://<bucket>/<key>`). */
  readonly bucket: string;
  /** The object's text, or undefined when there is none. */
  get(key: string): Promise<string | undefined>;
  exists(key: string): Promise<boolean>;
  put(key: string, body: string): Promise<void>;
  /** Writes only if no object has the key: true if this call created it, false if one existed. */
  putIfAbsent(key: string, body: string): Promise<boolean>;
  /** Keys under a prefix, in key order. */
  list(prefix: string): Promise<string[]>;
  delete(key: string): Promise<void>;
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function isMissing(error: unknown): boolean {
  const name = (error as { name?: unknown }).name;
  return error instanceof NoSuchKey || name === 'NoSuchKey' || name === 'NotFound' || statusOf(error) === 404;
}

/** The store on S3: one object per key. */
export class S3TriggerStateStore implements TriggerStateStore {
  constructor(
    private readonly client: S3Client,
    readonly bucket: string,
  ) {}

  async get(key: string): Promise<string | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return (await out.Body?.transformToString('utf8')) ?? '';
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (error) {
      if (isMissing(error)) return false;
      throw error;
    }
  }

  async put(key: string, body: string): Promise<void> {
    await this.client.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType(key) }),
    );
  }

  async putIfAbsent(key: string, body: string): Promise<boolean> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: contentType(key),
          IfNoneMatch: '*',
        }),
      );
      return true;
    } catch (error) {
      // 412: the object exists. 409: a concurrent conditional write of the same key is in progress; it will exist.
      const status = statusOf(error);
      if (status === 412 || status === 409) return false;
      throw error;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const out = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const object of out.Contents ?? []) if (object.Key) keys.push(object.Key);
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }
}

function contentType(key: string): string {
  return key.endsWith('.jsonl') ? 'application/x-ndjson' : 'application/json';
}
