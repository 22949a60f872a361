/**
 * The offline model registry: a folder of versions, laid out like this (the root is any URI prefix the ObjectStore
 * can read, so a "local" registry can also live in a bucket of an S3-compatible store):
 *
 *   <root>/<group>/<version>/metadata.json   {"status": "Approved" | "PendingManualApproval" | "Rejected",
 *                                             "createdAt"?: "2024-05-01T12:00:00Z", ...anything else}
 *   <root>/<group>/<version>/model.onnx       the model, and its companions (labels.txt, ...) next to it
 *   <root>/<group>/<version>/model.tar.gz     ...or an archive holding them (used when there is no model.onnx)
 *
 * Versions are positive integers (folder names `1`, `2`, ...). Selectors follow SageMaker's:
 * - `latest-approved`: the highest version whose status is Approved;
 * - `latest`: the highest version, whatever its status (SageMaker's newest package regardless of approval);
 * - a number: exactly that version, whatever its status.
 * The status of the chosen version is recorded in the plan, so a run on an unapproved model is visible in its audit.
 */
import { z } from 'zod';
import { ModelError } from '../spec/errors.js';
import { getJson, type ObjectStore } from '../storage/object-store.js';
import { asPrefix, joinUri, parseUri } from '../storage/uri.js';
import type {
  ApprovalStatus,
  ListableModelRegistry,
  ListedModelVersion,
  ListVersionsOptions,
  ModelVersion,
  VersionSelector,
} from './model-registry.js';

const metadataSchema = z.looseObject({
  status: z.enum(['Approved', 'PendingManualApproval', 'Rejected'], {
    message: 'must be "Approved", "PendingManualApproval" or "Rejected"',
  }),
  createdAt: z.string().optional(),
});

export const METADATA_FILE = 'metadata.json';
export const ARTIFACT_FILE = 'model.onnx';
/** The archive a version may hold instead of ARTIFACT_FILE (SageMaker's packaging). */
export const ARCHIVE_FILE = 'model.tar.gz';

interface FoundVersion {
  readonly version: number;
  readonly status: ApprovalStatus;
  readonly createdAt?: string;
  readonly folderUri: string;
  /** The version's artifact file name, when it has one. */
  readonly artifact?: string;
}

export class LocalModelRegistry implements ListableModelRegistry {
  readonly rootUri: string;

  constructor(
    private readonly store: ObjectStore,
    rootUri: string,
  ) {
    this.rootUri = asPrefix(rootUri);
  }

  async resolve(group: string, selector: VersionSelector): Promise<ModelVersion> {
    this.checkGroupName(group);
    const versions = await this.versions(group);
    if (versions.length === 0) throw await this.unknownGroup(group);
    let chosen: FoundVersion | undefined;
    if (selector === 'latest') chosen = versions[versions.length - 1];
    else if (selector === 'latest-approved') chosen = versions.findLast((v) => v.status === 'Approved');
    else chosen = versions.find((v) => v.version === selector);
    if (!chosen) {
      const existing = describeVersions(versions);
      if (selector === 'latest-approved') {
        throw new ModelError(
          `model group "${group}" in the local registry ${this.rootUri} has no Approved version (it has ${existing}). ` +
            `Approve one by setting "status": "Approved" in its ${METADATA_FILE}, or pin a version with ` +
            'model.registry.version',
        );
      }
      throw new ModelError(
        `model group "${group}" in the local registry ${this.rootUri} has no version ${String(selector)} (it has ` +
          `${existing}). Pin an existing version, or use "latest-approved"`,
      );
    }
    if (chosen.artifact === undefined) {
      throw new ModelError(
        `model group "${group}" version ${chosen.version} (${chosen.status}) in the local registry has no artifact: ` +
          `${chosen.folderUri} holds neither ${ARTIFACT_FILE} nor ${ARCHIVE_FILE}. Add the model file to that folder`,
      );
    }
    return {
      group,
      version: chosen.version,
      status: chosen.status,
      artifactUri: joinUri(chosen.folderUri, chosen.artifact),
      ...(chosen.artifact === ARCHIVE_FILE && { archive: true }),
      ...(chosen.createdAt !== undefined ? { createdAt: chosen.createdAt } : {}),
      ref: chosen.folderUri,
    };
  }

  /** The group's versions, newest (highest) first; a ModelError when the group has none. */
  async list(group: string, options: ListVersionsOptions = {}): Promise<ListedModelVersion[]> {
    this.checkGroupName(group);
    const versions = await this.versions(group);
    if (versions.length === 0) throw await this.unknownGroup(group);
    const listed = versions
      .filter((v) => !options.approvedOnly || v.status === 'Approved')
      .reverse()
      .map((v): ListedModelVersion => ({
        group,
        version: v.version,
        status: v.status,
        ...(v.createdAt !== undefined && { createdAt: v.createdAt }),
        ...(v.artifact !== undefined
          ? { artifactUri: joinUri(v.folderUri, v.artifact) }
          : { problem: `${v.folderUri} holds neither ${ARTIFACT_FILE} nor ${ARCHIVE_FILE}` }),
        ref: v.folderUri,
      }));
    return options.limit !== undefined ? listed.slice(0, options.limit) : listed;
  }

  /** Group folders that hold at least one version, sorted. */
  async groupNames(): Promise<string[]> {
    return this.groups();
  }

  private checkGroupName(group: string): void {
    if (group === '' || group.includes('/')) {
      throw new ModelError(
        `model group "${group}" is not a folder name of the local registry ${this.rootUri}`,
      );
    }
  }

  private async unknownGroup(group: string): Promise<ModelError> {
    const groups = await this.groups();
    return new ModelError(
      `model group "${group}" has no versions in the local registry ${this.rootUri} (expected ` +
        `${joinUri(this.rootUri, group, '<version>', METADATA_FILE)}). ` +
        (groups.length > 0 ? `Groups there: ${groups.join(', ')}. ` : 'The registry is empty. ') +
        'Check model.registry.group, or register a version by creating that folder with metadata.json and model.onnx',
    );
  }

  /** Every version of a group that has a metadata.json, in ascending version order. */
  private async versions(group: string): Promise<FoundVersion[]> {
    const groupUri = asPrefix(joinUri(this.rootUri, group));
    const base = parseUri(groupUri).key;
    const found: { version: number; metadataUri: string }[] = [];
    // Artifact files per version folder, from the same listing (no HEAD per version).
    const artifacts = new Map<number, Set<string>>();
    for await (const info of this.store.list(groupUri)) {
      const rest = parseUri(info.uri).key.slice(base.length);
      const match = /^([1-9][0-9]*)\/(metadata\.json|model\.onnx|model\.tar\.gz)$/.exec(rest);
      if (!match) continue;
      const version = Number(match[1]);
      if (match[2] === METADATA_FILE) found.push({ version, metadataUri: info.uri });
      else if (info.size > 0) artifacts.set(version, (artifacts.get(version) ?? new Set()).add(match[2]!));
    }
    found.sort((a, b) => a.version - b.version);
    return Promise.all(
      found.map(async ({ version, metadataUri }) => {
        let raw: unknown;
        try {
          raw = await getJson(this.store, metadataUri);
        } catch (err) {
          throw new ModelError(
            `${metadataUri} is not valid JSON (${(err as Error).message}); fix or remove it`,
          );
        }
        const parsed = metadataSchema.safeParse(raw);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          throw new ModelError(
            `${metadataUri}: "${issue?.path.join('.') || '(root)'}" ${issue?.message ?? 'is invalid'}; ` +
              'expected {"status": "Approved" | "PendingManualApproval" | "Rejected", "createdAt"?: "..."}',
          );
        }
        const files = artifacts.get(version);
        const artifact = files?.has(ARTIFACT_FILE)
          ? ARTIFACT_FILE
          : files?.has(ARCHIVE_FILE)
            ? ARCHIVE_FILE
            : undefined;
        return {
          version,
          status: parsed.data.status,
          ...(parsed.data.createdAt !== undefined ? { createdAt: parsed.data.createdAt } : {}),
          folderUri: asPrefix(joinUri(this.rootUri, group, String(version))),
          ...(artifact !== undefined && { artifact }),
        };
      }),
    );
  }

  /** Group folders that hold at least one version, for "did you mean" in errors. */
  private async groups(): Promise<string[]> {
    const base = parseUri(this.rootUri).key;
    const names = new Set<string>();
    for await (const info of this.store.list(this.rootUri)) {
      const match = /^([^/]+)\/[1-9][0-9]*\/metadata\.json$/.exec(parseUri(info.uri).key.slice(base.length));
      if (match) names.add(match[1]!);
    }
    return [...names].sort();
  }
}

/** "1 (Approved), 2 (PendingManualApproval)": what a group holds, for error messages. */
export function describeVersions(versions: readonly { version: number; status: string }[]): string {
  if (versions.length === 0) return 'no versions';
  return `version${versions.length > 1 ? 's' : ''} ${versions.map((v) => `${v.version} (${v.status})`).join(', ')}`;
}
