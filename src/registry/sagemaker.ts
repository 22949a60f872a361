/**
 * The model registry in AWS: SageMaker Model Registry model package groups.
 *
 * - `latest-approved`: ListModelPackages(group, ModelApprovalStatus=Approved, newest first), the first package whose
 *   ModelPackageStatus is Completed (a package still being created, or one that failed, has no usable artifact).
 * - `latest`: the same without the approval filter: the newest Completed package, whatever its approval status.
 * - a number: the package whose ModelPackageVersion is that number, found by listing (its ARN comes from the list,
 *   so no ARN is assembled from region and account).
 * Then DescribeModelPackage gives the artifact: InferenceSpecification.Containers[0].ModelDataUrl, or
 * ModelDataSource.S3DataSource.S3Uri (an uncompressed S3Prefix source means `<prefix>model.onnx`, the same file
 * name the local registry uses). A model.tar.gz (ModelDataUrl, or an S3Object source with CompressionType Gzip) is
 * returned as an archive: Plan extracts it (src/registry/archive.ts).
 *
 * Throttling and transient errors are retried by the SDK client's own retry strategy.
 */
import {
  BatchDescribeModelPackageCommand,
  DescribeModelPackageCommand,
  ListModelPackagesCommand,
  paginateListModelPackages,
  SageMakerClient,
  type DescribeModelPackageCommandOutput,
  type InferenceSpecification,
  type ModelApprovalStatus,
  type ModelPackageSummary,
} from '@aws-sdk/client-sagemaker';
import { ModelError } from '../spec/errors.js';
import { asPrefix, joinUri } from '../storage/uri.js';
import { isModelArchive } from './archive.js';
import { describeVersions } from './local.js';
import type {
  ApprovalStatus,
  ListableModelRegistry,
  ListedModelVersion,
  ListVersionsOptions,
  ModelVersion,
  VersionSelector,
} from './model-registry.js';
import { awsHttpOptions } from '../runtime/aws-http.js';

/** The file an uncompressed S3Prefix model source is expected to hold. */
export const PREFIX_ARTIFACT_FILE = 'model.onnx';

/** Largest page ListModelPackages returns. */
const PAGE_SIZE = 100;

export class SageMakerModelRegistry implements ListableModelRegistry {
  /** @param client a configured client (region, credentials); defaults to the environment's. */
  constructor(private readonly client: SageMakerClient = new SageMakerClient(awsHttpOptions())) {}

  async resolve(group: string, selector: VersionSelector): Promise<ModelVersion> {
    const summary = await this.find(group, selector);
    const arn = summary.ModelPackageArn!;
    const described = await this.client.send(new DescribeModelPackageCommand({ ModelPackageName: arn }));
    return this.versionOf(described, arn, group, summary);
  }

  /**
   * One model package by its ARN (`arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>`), as
   * `inspect <arn>` names it. An ARN SageMaker does not know is a ModelError naming it.
   */
  async resolveArn(arn: string): Promise<ModelVersion> {
    let described: DescribeModelPackageCommandOutput;
    try {
      described = await this.client.send(new DescribeModelPackageCommand({ ModelPackageName: arn }));
    } catch (err) {
      if ((err as { name?: string }).name === 'ValidationException') {
        throw new ModelError(
          `model package ${arn}: ${(err as Error).message.trim()} Check the ARN (list a group's versions with ` +
            '`batch-infer models <group>`)',
        );
      }
      throw err;
    }
    const group = described.ModelPackageGroupName;
    if (!group) {
      throw new ModelError(
        `model package ${arn} belongs to no model package group (an unversioned package); register it in a group`,
      );
    }
    return this.versionOf(described, arn, group, undefined);
  }

  /**
   * The group's versions, newest first (ListModelPackages, page by page), each with its artifact from one
   * BatchDescribeModelPackage per page (ListModelPackages' summaries carry no artifact).
   */
  async list(group: string, options: ListVersionsOptions = {}): Promise<ListedModelVersion[]> {
    const listed: ListedModelVersion[] = [];
    const approval = options.approvedOnly ? 'Approved' : undefined;
    const pages = paginateListModelPackages(
      { client: this.client, pageSize: PAGE_SIZE },
      {
        ModelPackageGroupName: group,
        ...(approval ? { ModelApprovalStatus: approval } : {}),
        SortBy: 'CreationTime',
        SortOrder: 'Descending',
      },
    );
    for await (const page of pages) {
      let summaries = (page.ModelPackageSummaryList ?? []).filter(
        (s) => s.ModelPackageArn !== undefined && s.ModelPackageVersion !== undefined,
      );
      if (options.limit !== undefined) summaries = summaries.slice(0, options.limit - listed.length);
      if (summaries.length > 0) listed.push(...(await this.describeAll(group, summaries)));
      if (options.limit !== undefined && listed.length >= options.limit) break;
    }
    if (listed.length === 0 && !approval) {
      throw await this.notFound(
        group,
        'has no versioned model packages',
        'Register a model package in the group',
        [],
      );
    }
    if (listed.length === 0) {
      // Nothing approved: an empty list if the group exists, the unknown-group error if it does not.
      const page = await this.client.send(
        new ListModelPackagesCommand({ ModelPackageGroupName: group, MaxResults: 1 }),
      );
      if ((page.ModelPackageSummaryList ?? []).length === 0) {
        throw await this.notFound(
          group,
          'has no model packages',
          'Register a model package in the group',
          [],
        );
      }
    }
    return listed;
  }

  /** One BatchDescribeModelPackage for up to 100 summaries: each version with its artifact or why it has none. */
  private async describeAll(
    group: string,
    summaries: readonly ModelPackageSummary[],
  ): Promise<ListedModelVersion[]> {
    const described = await this.client.send(
      new BatchDescribeModelPackageCommand({ ModelPackageArnList: summaries.map((s) => s.ModelPackageArn!) }),
    );
    return summaries.map((summary) => {
      const arn = summary.ModelPackageArn!;
      const version = summary.ModelPackageVersion!;
      const detail = described.ModelPackageSummaries?.[arn];
      const failure = described.BatchDescribeModelPackageErrorMap?.[arn];
      let artifact: { artifactUri?: string; problem?: string };
      if (detail) {
        try {
          artifact = { artifactUri: artifactOf(detail, `model package ${arn}`).artifactUri };
        } catch (err) {
          artifact = { problem: (err as Error).message };
        }
      } else {
        artifact = {
          problem: failure
            ? `BatchDescribeModelPackage: ${failure.ErrorCode ?? 'error'}: ${failure.ErrorResponse ?? ''}`.trim()
            : 'BatchDescribeModelPackage did not describe it',
        };
      }
      const createdAt = summary.CreationTime ?? detail?.CreationTime;
      const packageStatus = summary.ModelPackageStatus ?? detail?.ModelPackageStatus;
      return {
        group,
        version,
        status: approvalOf(summary.ModelApprovalStatus ?? detail?.ModelApprovalStatus),
        ...(createdAt && { createdAt: createdAt.toISOString() }),
        ...artifact,
        ...(packageStatus && { packageStatus }),
        ref: arn,
      };
    });
  }

  /** A resolved version from DescribeModelPackage: only a Completed, versioned package with an S3 artifact. */
  private versionOf(
    described: DescribeModelPackageCommandOutput,
    arn: string,
    group: string,
    summary: ModelPackageSummary | undefined,
  ): ModelVersion {
    const version = described.ModelPackageVersion ?? summary?.ModelPackageVersion;
    if (version === undefined) {
      throw new ModelError(
        `model package ${arn} has no ModelPackageVersion; only versioned packages can be used`,
      );
    }
    if (described.ModelPackageStatus !== 'Completed') {
      throw new ModelError(
        `model package ${arn} (group "${group}" version ${version}) is ${described.ModelPackageStatus ?? 'in an unknown state'}, ` +
          'not Completed; wait for it to finish or pick another version',
      );
    }
    const createdAt = described.CreationTime ?? summary?.CreationTime;
    return {
      group,
      version,
      status: approvalOf(described.ModelApprovalStatus ?? summary?.ModelApprovalStatus),
      ...artifactOf(described, `model package ${arn} (group "${group}" version ${version})`),
      ...(createdAt ? { createdAt: createdAt.toISOString() } : {}),
      ref: arn,
    };
  }

  private async find(group: string, selector: VersionSelector): Promise<ModelPackageSummary> {
    if (typeof selector === 'number') {
      const seen: ModelPackageSummary[] = [];
      for await (const summary of this.packages(group, undefined)) {
        if (summary.ModelPackageVersion === selector) return summary;
        seen.push(summary);
      }
      throw await this.notFound(group, `has no version ${selector}`, 'Pin an existing version', seen);
    }
    const approval = selector === 'latest-approved' ? 'Approved' : undefined;
    for await (const summary of this.packages(group, approval)) {
      if (summary.ModelPackageStatus === 'Completed') return summary;
    }
    if (approval) {
      throw await this.notFound(
        group,
        'has no Approved version that is Completed',
        'Approve a version in SageMaker Model Registry (UpdateModelPackage ModelApprovalStatus=Approved), or pin ' +
          'a version with model.registry.version',
      );
    }
    throw await this.notFound(group, 'has no Completed version', 'Register a model package in the group');
  }

  /** Every package of a group, newest first, page by page. */
  private async *packages(
    group: string,
    approval: ModelApprovalStatus | undefined,
  ): AsyncGenerator<ModelPackageSummary> {
    const pages = paginateListModelPackages(
      { client: this.client, pageSize: PAGE_SIZE },
      {
        ModelPackageGroupName: group,
        ...(approval ? { ModelApprovalStatus: approval } : {}),
        SortBy: 'CreationTime',
        SortOrder: 'Descending',
      },
    );
    for await (const page of pages) yield* page.ModelPackageSummaryList ?? [];
  }

  /** A ModelError naming the group, the region, what the group holds, and the fix. */
  private async notFound(
    group: string,
    problem: string,
    fix: string,
    known?: readonly ModelPackageSummary[],
  ): Promise<ModelError> {
    let summaries = known;
    if (!summaries) {
      // The failed lookup was filtered; one unfiltered page says what the group does hold.
      const page = await this.client.send(
        new ListModelPackagesCommand({
          ModelPackageGroupName: group,
          SortBy: 'CreationTime',
          SortOrder: 'Descending',
          MaxResults: PAGE_SIZE,
        }),
      );
      summaries = page.ModelPackageSummaryList ?? [];
    }
    const region = await this.client.config.region();
    const where = `model package group "${group}" (SageMaker Model Registry, ${region})`;
    if (summaries.length === 0) {
      return new ModelError(
        `${where} has no model packages or does not exist; check model.registry.group and the region`,
      );
    }
    const versions = summaries
      .filter((s) => s.ModelPackageVersion !== undefined)
      .map((s) => ({
        version: s.ModelPackageVersion!,
        status:
          (s.ModelApprovalStatus ?? 'PendingManualApproval') +
          (s.ModelPackageStatus && s.ModelPackageStatus !== 'Completed' ? `, ${s.ModelPackageStatus}` : ''),
      }))
      .sort((a, b) => a.version - b.version);
    return new ModelError(`${where} ${problem} (it has ${describeVersions(versions)}). ${fix}`);
  }
}

function approvalOf(status: ModelApprovalStatus | undefined): ApprovalStatus {
  // A versioned package always has one; SageMaker's default at registration is PendingManualApproval.
  return status ?? 'PendingManualApproval';
}

function artifactOf(
  described: { readonly InferenceSpecification?: InferenceSpecification | undefined },
  what: string,
): { artifactUri: string; archive?: true } {
  const container = described.InferenceSpecification?.Containers?.[0];
  let uri = container?.ModelDataUrl;
  let gzip = false;
  if (!uri) {
    const source = container?.ModelDataSource?.S3DataSource;
    if (source?.S3Uri) {
      gzip = source.CompressionType === 'Gzip';
      if (gzip && source.S3DataType === 'S3Prefix') {
        throw new ModelError(
          `${what} has a Gzip-compressed S3Prefix model source (${source.S3Uri}); a compressed model must be one ` +
            'S3Object (model.tar.gz). Register the archive itself, or the uncompressed prefix holding model.onnx',
        );
      }
      uri =
        source.S3DataType === 'S3Prefix'
          ? joinUri(asPrefix(source.S3Uri), PREFIX_ARTIFACT_FILE)
          : source.S3Uri;
    }
  }
  if (!uri) {
    throw new ModelError(
      `${what} has no model artifact: InferenceSpecification.Containers[0] has neither ModelDataUrl nor ` +
        'ModelDataSource.S3DataSource.S3Uri. Register the package with the S3 URI of its .onnx file or ' +
        'model.tar.gz as ModelDataUrl',
    );
  }
  if (!uri.startsWith('s3://')) {
    throw new ModelError(
      `${what} has the artifact ${uri}, which is not an s3:// URI; register an S3 location`,
    );
  }
  return gzip || isModelArchive(uri) ? { artifactUri: uri, archive: true } : { artifactUri: uri };
}
