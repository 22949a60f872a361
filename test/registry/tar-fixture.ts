/**
 * Writes tar archives for tests, byte by byte per POSIX ustar (POSIX.1-2001: 512-byte header blocks, padded content, two zero blocks at the end), with the
 * options real archivers use: a `./` prefix, directory entries, pax headers and GNU long names for long paths.
 */
import { gzipSync } from 'node:zlib';

export interface TarInput {
  readonly path: string;
  /** Omitted for a directory. */
  readonly content?: string | Uint8Array;
  /** How a path over 100 bytes is stored. */
  readonly longName?: 'pax' | 'gnu' | 'prefix';
  /** Override the typeflag (e.g. '2' for a symlink). */
  readonly type?: string;
}

const BLOCK = 512;

function header(
  name: string,
  size: number,
  type: string,
  options: { prefix?: string; gnu?: boolean } = {},
): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100, 'latin1');
  h.write('0001750\0', 108, 'latin1');
  h.write('0001750\0', 116, 'latin1');
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  h.write(`${(1714953600).toString(8).padStart(11, '0')}\0`, 136, 'latin1');
  h.write(type, 156, 'latin1');
  if (options.gnu) h.write('ustar  \0', 257, 'latin1');
  else h.write('ustar\u000000', 257, 'latin1');
  h.write('user', 265, 'latin1');
  h.write('user', 297, 'latin1');
  if (options.prefix) h.write(options.prefix, 345, 155, 'utf8');
  h.write('        ', 148, 'latin1');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

function padded(content: Uint8Array): Buffer {
  const out = Buffer.alloc(Math.ceil(content.length / BLOCK) * BLOCK);
  Buffer.from(content).copy(out);
  return out;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  return `${length}${body}`;
}

/** An uncompressed tar archive of `entries`, with the two zero blocks at the end unless `noEnd`. */
export function tarBytes(entries: readonly TarInput[], options: { noEnd?: boolean } = {}): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const content =
      entry.content === undefined
        ? Buffer.alloc(0)
        : typeof entry.content === 'string'
          ? Buffer.from(entry.content)
          : Buffer.from(entry.content);
    const type = entry.type ?? (entry.content === undefined ? '5' : '0');
    let name = entry.path;
    let prefix: string | undefined;
    if (Buffer.byteLength(name) > 100) {
      if (entry.longName === 'gnu') {
        const long = Buffer.from(`${name}\0`);
        blocks.push(header('././@LongLink', long.length, 'L', { gnu: true }), padded(long));
        name = name.slice(0, 100);
      } else if (entry.longName === 'prefix') {
        const cut = name.lastIndexOf('/', name.length - 2);
        prefix = name.slice(0, cut);
        name = name.slice(cut + 1);
      } else {
        const pax = Buffer.from(paxRecord('path', name));
        blocks.push(header(`PaxHeader/${name.slice(-80)}`, pax.length, 'x'), padded(pax));
        name = name.slice(0, 100);
      }
    }
    blocks.push(header(name, content.length, type, { prefix }), padded(content));
  }
  if (!options.noEnd) blocks.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(blocks);
}

export function tarGz(entries: readonly TarInput[]): Buffer {
  return gzipSync(tarBytes(entries));
}
