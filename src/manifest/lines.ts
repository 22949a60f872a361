/**
 * Line splitting for manifests (list manifests, S3 Inventory CSV files): large, machine-written, read once.
 */
import type { Readable } from 'node:stream';

/**
 * Splits a byte stream into lines at `\n`, decoding each line once. A line split across chunks is gathered as a
 * list of pieces and joined once, so even a single-line manifest of many MB is read in linear time. (readline's
 * async iterator costs a promise per line: seconds for a million lines.) A `\r` before the `\n` stays on the line:
 * callers trim lines (and JSON ignores it), so CRLF files just work.
 */
export async function forEachLine(
  stream: Readable | AsyncIterable<Uint8Array>,
  onLine: (line: string, lineNo: number) => void,
): Promise<void> {
  let pieces: Buffer[] = [];
  let lineNo = 0;
  const emit = (bytes: Buffer): void => onLine(bytes.toString('utf8'), ++lineNo);
  for await (const chunk of stream as AsyncIterable<Uint8Array | string>) {
    const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    let start = 0;
    for (let nl = data.indexOf(0x0a); nl >= 0; nl = data.indexOf(0x0a, start)) {
      const piece = data.subarray(start, nl);
      if (pieces.length > 0) {
        pieces.push(piece);
        emit(Buffer.concat(pieces));
        pieces = [];
      } else {
        emit(piece);
      }
      start = nl + 1;
    }
    if (start < data.length) pieces.push(data.subarray(start));
  }
  if (pieces.length > 0) emit(Buffer.concat(pieces));
}
