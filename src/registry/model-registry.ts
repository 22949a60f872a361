/**
 * Where model versions come from: the SageMaker Model Registry in AWS, a folder of versions offline. Both follow
 * the same semantics: a group has numbered versions, each with an approval status and one artifact.
 */

export type ApprovalStatus = 'Approved' | 'PendingManualApproval' | 'Rejected';

export interface ModelVersion {
  readonly group: string;
  readonly version: number;
  readonly status: ApprovalStatus;
  /** The model artifact: an .onnx file, or a model archive (see `archive`). */
  readonly artifactUri: string;
  /**
   * The artifact is a gzip-compressed tar archive (model.tar.gz) holding the .onnx file and its companions, even
   * when its name does not say so (a SageMaker source with CompressionType Gzip).
   */
  readonly archive?: boolean;
  readonly createdAt?: string;
  /** Registry-specific identity, e.g. the model package ARN. */
  readonly ref?: string;
}

export type VersionSelector = 'latest-approved' | 'latest' | number;

export interface ModelRegistry {
  /**
   * Resolves a selector to one version. Throws ModelError naming the group and what was looked for when nothing
   * matches (no such group, no approved version, no such version).
   */
  resolve(group: string, selector: VersionSelector): Promise<ModelVersion>;
}

/** One version as `models <group>` lists it. */
export interface ListedModelVersion {
  readonly group: string;
  readonly version: number;
  readonly status: ApprovalStatus;
  readonly createdAt?: string;
  /** The artifact's URI; absent when the registry entry names none (the reason is in `problem`). */
  readonly artifactUri?: string;
  /** SageMaker's ModelPackageStatus (Pending, InProgress, Completed, Failed, Deleting); absent offline. */
  readonly packageStatus?: string;
  /** Registry-specific identity, e.g. the model package ARN. */
  readonly ref?: string;
  /** Why the version has no usable artifact, when it has none. */
  readonly problem?: string;
}

export interface ListVersionsOptions {
  /** Only versions whose approval status is Approved. */
  readonly approvedOnly?: boolean;
  /** At most this many versions (the newest). */
  readonly limit?: number;
}

/** A registry that can list a group's versions, newest first. */
export interface ListableModelRegistry extends ModelRegistry {
  /**
   * The group's versions, newest first. Throws ModelError when the group has no versions at all (unknown group);
   * an empty list means the group exists but nothing matches the filter.
   */
  list(group: string, options?: ListVersionsOptions): Promise<ListedModelVersion[]>;
}
