import { describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import {
  UriError,
  asPrefix,
  dirnameUri,
  joinUri,
  normalizeUri,
  parseUri,
  prefixesOverlap,
  resolveAgainst,
} from '../../src/storage/uri.js';

describe('parseUri', () => {
  it('splits s3 URIs into bucket and key', () => {
    expect(parseUri('s3://my-bucket/path/to/obj.json')).toEqual({
      scheme: 's3',
      bucket: 'my-bucket',
      key: 'path/to/obj.json',
    });
    expect(parseUri('s3://my-bucket/prefix/')).toEqual({ scheme: 's3', bucket: 'my-bucket', key: 'prefix/' });
    expect(parseUri('s3://my.bucket.01')).toEqual({ scheme: 's3', bucket: 'my.bucket.01', key: '' });
    expect(parseUri('s3://abc/')).toEqual({ scheme: 's3', bucket: 'abc', key: '' });
    // Keys are opaque: spaces, double slashes and percent signs are kept as written.
    expect(parseUri('s3://abc/a b//c%20d').key).toBe('a b//c%20d');
  });

  it('rejects invalid bucket names', () => {
    for (const bad of [
      's3://',
      's3://ab',
      's3://Upper-Case/x',
      's3://-leading/x',
      's3://trailing-/x',
      's3://under_score',
    ]) {
      expectIn(() => parseUri(bad), bad).toThrow(UriError);
    }
    expect(() => parseUri(`s3://${'a'.repeat(64)}/x`)).toThrow(/valid S3 bucket/);
    expect(parseUri(`s3://${'a'.repeat(63)}/x`).bucket).toHaveLength(63);
  });

  it('turns file URIs into absolute paths, decoding escapes and keeping a trailing slash', () => {
    expect(parseUri('file:///data/in/x.jsonl')).toEqual({
      scheme: 'file',
      bucket: '',
      key: '/data/in/x.jsonl',
    });
    expect(parseUri('file:///data/in/').key).toBe('/data/in/');
    expect(parseUri('file:///data/a%20b%23c.txt').key).toBe('/data/a b#c.txt');
    expect(parseUri('file://localhost/data/x').key).toBe('/data/x');
  });

  it('rejects other schemes and malformed file URIs with UriError', () => {
    for (const bad of [
      '/abs/path',
      'relative/path',
      'gs://bucket/key',
      'http://host/x',
      'S3://bucket/key',
      '',
    ]) {
      expectIn(() => parseUri(bad), bad).toThrow(UriError);
    }
    // A host in a file URI is usually a relative path typed as a URI.
    expect(() => parseUri('file://data/x.jsonl')).toThrow(UriError);
    expect(() => parseUri('file://data/x.jsonl')).toThrow(/file:\/\/\/absolute\/path/);
  });
});

describe('normalizeUri', () => {
  it('keeps s3 and file URIs as written', () => {
    expect(normalizeUri('s3://bucket/a/b', '/base')).toBe('s3://bucket/a/b');
    expect(normalizeUri('file:///x/y/', '/base')).toBe('file:///x/y/');
  });

  it('resolves paths against the base directory and keeps a trailing slash', () => {
    expect(normalizeUri('data/in.jsonl', '/work/job')).toBe('file:///work/job/data/in.jsonl');
    expect(normalizeUri('data/out/', '/work/job')).toBe('file:///work/job/data/out/');
    expect(normalizeUri('../shared/m.onnx', '/work/job')).toBe('file:///work/shared/m.onnx');
    expect(normalizeUri('/abs/file.csv', '/work/job')).toBe('file:///abs/file.csv');
    expect(normalizeUri('.', '/work/job')).toBe('file:///work/job');
    expect(normalizeUri('/', '/work/job')).toBe('file:///');
  });

  it('escapes characters that are special in URLs, so parsing gives the path back', () => {
    const uri = normalizeUri('a b#c?.txt', '/base');
    expect(uri).toBe('file:///base/a%20b%23c%3F.txt');
    expect(parseUri(uri).key).toBe('/base/a b#c?.txt');
  });

  it('rejects unsupported schemes', () => {
    expect(() => normalizeUri('https://example.com/x', '/base')).toThrow(UriError);
    expect(() => normalizeUri('gs://bucket/x', '/base')).toThrow(/unsupported scheme/);
  });
});

describe('joinUri', () => {
  it('joins with exactly one slash', () => {
    expect(joinUri('s3://b/p', 'x')).toBe('s3://b/p/x');
    expect(joinUri('s3://b/p/', 'x')).toBe('s3://b/p/x');
    expect(joinUri('s3://b/p//', '//x')).toBe('s3://b/p/x');
    expect(joinUri('s3://b/p', 'x/', 'y')).toBe('s3://b/p/x/y');
    expect(joinUri('s3://b', 'k')).toBe('s3://b/k');
    expect(joinUri('file:///tmp/run', 'shards', '0001.json')).toBe('file:///tmp/run/shards/0001.json');
  });

  it('skips empty parts and returns the prefix when there are none', () => {
    expect(joinUri('s3://b/p/', '', 'x')).toBe('s3://b/p/x');
    expect(joinUri('s3://b/p/')).toBe('s3://b/p/');
  });

  it('keeps the slashes of the filesystem root', () => {
    expect(joinUri('file:///', 'x.json')).toBe('file:///x.json');
    expect(joinUri('file:///', 'a', 'b')).toBe('file:///a/b');
  });
});

describe('asPrefix, dirnameUri, resolveAgainst', () => {
  it('adds exactly one trailing slash for prefixes', () => {
    expect(asPrefix('s3://b/p')).toBe('s3://b/p/');
    expect(asPrefix('s3://b/p/')).toBe('s3://b/p/');
  });

  it('takes the directory of a URI', () => {
    expect(dirnameUri('s3://b/a/b.json')).toBe('s3://b/a/');
    expect(dirnameUri('file:///x/y/')).toBe('file:///x/y/');
  });

  it('resolves references against the directory of a base URI', () => {
    expect(resolveAgainst('s3://b/jobs/spec.yaml', 'model.onnx')).toBe('s3://b/jobs/model.onnx');
    expect(resolveAgainst('s3://b/jobs/spec.yaml', 's3://other/m.onnx')).toBe('s3://other/m.onnx');
    expect(resolveAgainst('file:///work/spec.yaml', '/abs/m.onnx')).toBe('file:///abs/m.onnx');
    expect(resolveAgainst('file:///spec.yaml', 'model.onnx')).toBe('file:///model.onnx');
  });
});

describe('prefixesOverlap', () => {
  it('detects one prefix containing the other, in either order', () => {
    expect(prefixesOverlap('s3://b/data', 's3://b/data/out')).toBe(true);
    expect(prefixesOverlap('s3://b/data/out/', 's3://b/data/')).toBe(true);
    expect(prefixesOverlap('s3://b/data', 's3://b/data/')).toBe(true);
    expect(prefixesOverlap('file:///x/in', 'file:///x/in/sub')).toBe(true);
  });

  it('treats prefixes as directories: siblings with a common name start do not overlap', () => {
    expect(prefixesOverlap('s3://b/in', 's3://b/input')).toBe(false);
    expect(prefixesOverlap('s3://b/data/in', 's3://b/data/out')).toBe(false);
    expect(prefixesOverlap('s3://b1/data', 's3://b2/data')).toBe(false);
    expect(prefixesOverlap('s3://bkt/x', 'file:///bkt/x')).toBe(false);
  });
});
