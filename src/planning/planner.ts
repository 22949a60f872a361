/**
 * Sharding: cuts the input snapshot into shards of about equal work. Pure and deterministic: the same objects,
 * layouts and targets always give the same shards, so a re-planned run (or a test) can rely on the ids.
 *
 * Model of the input: the objects in snapshot order form one sequence of "units" and every shard is a contiguous
 * run of that sequence (object order, then byte / row-group order inside an object).
 * - jsonl/csv: an object is one unit that can be cut at any byte; the reader realigns each range to lines (see
 *   InputRange). Objects smaller than the minimum piece are never cut, so small objects are packed whole.
 * - parquet: the units are row groups, which are never cut; a range covers consecutive row groups of one object.
 * - files: every object is one record and one unit, never cut; a range is a whole object.
 *
 * Weight: shards are balanced on one additive quantity measured in bytes. For line formats it is the byte count
 * (records are estimated from bytes, so a records target is just another byte target). For Parquet, where rows are
 * known exactly, a row group weighs max(its bytes, its rows converted at targetBytes/targetRecords bytes per row),
 * so a shard fills up on whichever of the two targets it reaches first. A `files` object weighs the same way, as
 * one record: small files are packed by count, big ones by bytes.
 */
import type { InputObject, InputRange, Shard } from '../runs/types.js';
import type { InputFormat } from '../spec/schema.js';

/** What the planner needs of a Parquet footer (the shape `parquetLayout` returns). */
export interface ParquetLayoutLike {
  readonly rows: number;
  readonly rowGroups: readonly { readonly rows: number; readonly bytes: number }[];
}

export interface ShardTargets {
  /** About this many records per shard. */
  readonly targetRecords: number;
  /** About this many input bytes per shard. */
  readonly targetBytes: number;
  /** Never more shards than this: shards grow instead. */
  readonly max: number;
}

export interface PlanShardsOptions {
  /**
   * Average bytes per record of a line-format input (planRun samples it). Without it, line-format shards are sized
   * by bytes alone and their record counts are estimated at DEFAULT_BYTES_PER_RECORD.
   */
  readonly bytesPerRecord?: number;
  /**
   * Bytes of the longest line planRun found in a line-format input (a lower bound where it could not see a line's
   * end). A line-format shard is never cut smaller than this: a byte range shorter than a line holds at most one line
   * start, so cutting a 10 MB line into 1 KB ranges plans thousands of shards that read nothing (issue 17).
   */
  readonly longestLine?: number;
  /**
   * URIs of line-format objects that are never cut into ranges: CSV objects whose sample shows a line break inside
   * a quoted field, since a range start cannot see quotes before it (lines.ts, QuotedLines).
   */
  readonly wholeObjects?: ReadonlySet<string>;
}

/** Record estimate for line formats when nothing was sampled. Only fills `Shard.records`; never sizes shards. */
export const DEFAULT_BYTES_PER_RECORD = 100;

/** A piece is never smaller than this share of the shard target (except a whole object smaller than that). */
const MIN_PIECE_FRACTION = 1 / 20;

export interface ShardPlan {
  readonly shards: Shard[];
  /** The weight each shard but the last aims at, after growing shards to stay within `max`. */
  readonly target: number;
  /** Sum of all weights. For line formats weights are bytes. */
  readonly totalWeight: number;
}

export function planShards(
  objects: readonly InputObject[],
  format: InputFormat,
  layouts: ReadonlyMap<string, ParquetLayoutLike> | undefined,
  targets: ShardTargets,
  options: PlanShardsOptions = {},
): Shard[] {
  return planShardsDetailed(objects, format, layouts, targets, options).shards;
}

/** planShards, also returning the target the shards were cut to (tests check balance against it). */
export function planShardsDetailed(
  objects: readonly InputObject[],
  format: InputFormat,
  layouts: ReadonlyMap<string, ParquetLayoutLike> | undefined,
  targets: ShardTargets,
  options: PlanShardsOptions = {},
): ShardPlan {
  checkTargets(targets);
  const bytesPerRecord = options.bytesPerRecord;
  if (bytesPerRecord !== undefined && !(bytesPerRecord > 0 && Number.isFinite(bytesPerRecord))) {
    throw new RangeError(`bytesPerRecord must be a positive number, got ${bytesPerRecord}`);
  }
  const { longestLine } = options;
  if (longestLine !== undefined && !(longestLine >= 0 && Number.isFinite(longestLine))) {
    throw new RangeError(`longestLine must be a non-negative number, got ${longestLine}`);
  }
  const units =
    format === 'parquet'
      ? parquetUnits(objects, layouts, targets)
      : format === 'files'
        ? fileUnits(objects, targets)
        : lineUnits(objects, options.wholeObjects);
  const totalWeight = units.reduce((sum, unit) => sum + unit.weight, 0);
  if (units.length === 0) return { shards: [], target: 0, totalWeight: 0 };

  // The base target: targetBytes, or fewer bytes when a line format would exceed targetRecords first.
  let target = targets.targetBytes;
  if (isLineFormat(format) && bytesPerRecord !== undefined) {
    target = Math.min(target, targets.targetRecords * bytesPerRecord);
  }
  if (isLineFormat(format) && options.longestLine !== undefined) {
    target = Math.max(target, options.longestLine);
  }
  target = Math.max(1, Math.ceil(target), Math.ceil(totalWeight / targets.max));

  // Greedy cutting can overshoot the count a little (pieces end within a tolerance of the target, not on it);
  // grow the target until the count fits. Each pass grows it by at least 1%, and a target of totalWeight always
  // gives one shard, so this ends.
  let built = cut(units, target);
  while (built.length > targets.max) {
    target = Math.min(
      Math.max(Math.ceil(target * 1.01), Math.ceil((target * built.length) / targets.max)),
      totalWeight,
    );
    built = cut(units, target);
  }
  const shards = built.map((pieces, id) => toShard(id, pieces, format, bytesPerRecord));
  return { shards, target, totalWeight };
}

function checkTargets(targets: ShardTargets): void {
  for (const key of ['targetRecords', 'targetBytes', 'max'] as const) {
    const value = targets[key];
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`shards.${key} must be a positive integer, got ${value}`);
    }
  }
}

/** One indivisible (row group) or divisible (line object) piece of input, in plan order. */
interface Unit {
  readonly object: InputObject;
  readonly weight: number;
  /** Line formats: the unit can be cut at any byte, and `weight` is its size. */
  readonly splittable: boolean;
  /** Parquet: index of the row group in its object, the row it starts at, its rows and compressed bytes. */
  readonly rowGroup?: number;
  readonly rowStart?: number;
  readonly rows?: number;
  readonly bytes?: number;
}

/** Formats whose objects are cut at byte offsets, with records estimated. */
function isLineFormat(format: InputFormat): boolean {
  return format !== 'parquet' && format !== 'files';
}

function fileUnits(objects: readonly InputObject[], targets: ShardTargets): Unit[] {
  const bytesPerRecord = targets.targetBytes / targets.targetRecords;
  return objects.map((object) => ({
    object,
    // At least 1, so that even an empty object is a unit: every object belongs to exactly one shard.
    weight: Math.max(1, object.size, Math.ceil(bytesPerRecord)),
    splittable: false,
    rows: 1,
    bytes: object.size,
  }));
}

function lineUnits(objects: readonly InputObject[], whole?: ReadonlySet<string>): Unit[] {
  // A zero-byte object owns no bytes, so no range: it can hold no line.
  return objects
    .filter((o) => o.size > 0)
    .map((object) => ({ object, weight: object.size, splittable: !whole?.has(object.uri) }));
}

function parquetUnits(
  objects: readonly InputObject[],
  layouts: ReadonlyMap<string, ParquetLayoutLike> | undefined,
  targets: ShardTargets,
): Unit[] {
  const bytesPerRow = targets.targetBytes / targets.targetRecords;
  const units: Unit[] = [];
  for (const object of objects) {
    const layout = layouts?.get(object.uri);
    if (!layout) throw new Error(`planShards: no Parquet layout for ${object.uri}; read every footer first`);
    let rowStart = 0;
    layout.rowGroups.forEach((group, rowGroup) => {
      // At least 1, so that even an empty row group is a unit: every row group belongs to exactly one shard.
      const weight = Math.max(1, group.bytes, Math.ceil(group.rows * bytesPerRow));
      units.push({
        object,
        weight,
        splittable: false,
        rowGroup,
        rowStart,
        rows: group.rows,
        bytes: group.bytes,
      });
      rowStart += group.rows;
    });
  }
  return units;
}

/** A piece of a unit assigned to a shard: the whole unit, or bytes [start, end) of a line object. */
interface Piece {
  readonly unit: Unit;
  readonly start: number;
  readonly end: number;
}

/**
 * Greedy cut. Line objects: a shard is filled to the target exactly, except that no piece is made smaller than
 * `minPiece` (the shard closes a little early, or takes a small remainder whole), so every shard but the last
 * ends within `minPiece` (5%) of the target. Row groups: each goes to the shard whose fill it leaves closer to
 * the target. A tail shard under `minPiece` is merged into the one before.
 */
function cut(units: readonly Unit[], target: number): Piece[][] {
  const minPiece = Math.max(1, Math.floor(target * MIN_PIECE_FRACTION));
  const shards: Piece[][] = [];
  let current: Piece[] = [];
  let fill = 0;
  const close = (): void => {
    if (current.length > 0) shards.push(current);
    current = [];
    fill = 0;
  };
  for (const unit of units) {
    if (!unit.splittable) {
      if (fill > 0 && fill + unit.weight > target && fill + unit.weight - target > target - fill) close();
      current.push({ unit, start: 0, end: unit.weight });
      fill += unit.weight;
      if (fill >= target) close();
      continue;
    }
    let offset = 0;
    while (offset < unit.weight) {
      const remaining = unit.weight - offset;
      const room = target - fill;
      if (remaining <= room) {
        current.push({ unit, start: offset, end: unit.weight });
        fill += remaining;
        if (fill >= target) close();
        break;
      }
      if (room < minPiece) {
        // Too little room for a piece: end this shard here (it is within minPiece of the target).
        close();
        continue;
      }
      if (remaining - room < minPiece) {
        // What would be left over is too small to be a piece of its own: take it all, overshooting a little.
        current.push({ unit, start: offset, end: unit.weight });
        close();
        break;
      }
      current.push({ unit, start: offset, end: offset + room });
      offset += room;
      close();
    }
  }
  if (current.length > 0) {
    const tail = current.reduce((sum, piece) => sum + piece.end - piece.start, 0);
    const previous = shards[shards.length - 1];
    if (previous && tail < minPiece) previous.push(...current);
    else shards.push(current);
  }
  return shards;
}

function toShard(id: number, pieces: readonly Piece[], format: InputFormat, bytesPerRecord?: number): Shard {
  const ranges: InputRange[] = [];
  let bytes = 0;
  let records = 0;
  if (format === 'parquet') {
    for (const { unit } of pieces) {
      const { object } = unit;
      const group = unit.rowGroup ?? 0;
      const rows = unit.rows ?? 0;
      bytes += unit.bytes ?? 0;
      records += rows;
      const last = ranges[ranges.length - 1];
      if (last && last.uri === object.uri && last.rowGroupEnd === group) {
        // The next row group of the same object: extend the range rather than start a new one.
        ranges[ranges.length - 1] = { ...last, rowGroupEnd: group + 1, records: (last.records ?? 0) + rows };
        continue;
      }
      ranges.push({
        uri: object.uri,
        etag: object.etag,
        ...versionOf(object),
        size: object.size,
        // A Parquet range is defined by its row groups; the byte span is the whole object (the footer is at the end).
        start: 0,
        end: object.size,
        rowGroupStart: group,
        rowGroupEnd: group + 1,
        rowStart: unit.rowStart ?? 0,
        records: rows,
      });
    }
    return { id, ranges, bytes, records, recordsExact: true };
  }
  if (format === 'files') {
    for (const { unit } of pieces) {
      const { object } = unit;
      ranges.push({
        uri: object.uri,
        etag: object.etag,
        ...versionOf(object),
        size: object.size,
        start: 0,
        end: object.size,
        records: 1,
      });
      bytes += object.size;
    }
    return { id, ranges, bytes, records: ranges.length, recordsExact: true };
  }
  for (const { unit, start, end } of pieces) {
    ranges.push({
      uri: unit.object.uri,
      etag: unit.object.etag,
      ...versionOf(unit.object),
      size: unit.object.size,
      start,
      end,
    });
    bytes += end - start;
  }
  records = Math.max(1, Math.round(bytes / (bytesPerRecord ?? DEFAULT_BYTES_PER_RECORD)));
  return { id, ranges, bytes, records, recordsExact: false };
}

/** The object's version for its ranges, when the snapshot recorded one. */
function versionOf(object: InputObject): { versionId?: string } {
  return object.versionId !== undefined ? { versionId: object.versionId } : {};
}
