/**
 * Read access to the model registry, and nothing more: the configured SageMaker model package groups (their versions
 * and the artifacts those versions point to) for Plan, which resolves a spec's `model.registry` to an artifact, and
 * the artifacts for the workers, which load them.
 */
import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { grantS3, type S3Location } from '../s3-access.js';

/** SageMaker's model package group name rule. */
const GROUP_NAME = /^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/;

export interface ModelRegistryAccessProps {
  /** Who resolves model versions (the Plan function): may list and describe the groups' packages. */
  readonly resolvers: readonly iam.IGrantable[];

  /**
   * Who only loads artifacts (the workers).
   *
   * @default - nobody else
   */
  readonly artifactReaders?: readonly iam.IGrantable[];

  /** The model package groups that may be resolved. */
  readonly modelPackageGroups: readonly string[];

  /** Where the groups' artifacts are stored: read-only access to these prefixes. At least one. */
  readonly artifactLocations: readonly S3Location[];
}

export class ModelRegistryAccess extends Construct {
  /** ARNs of the model packages that may be described, one pattern per group. */
  readonly modelPackageArns: readonly string[];

  constructor(scope: Construct, id: string, props: ModelRegistryAccessProps) {
    super(scope, id);
    if (props.resolvers.length === 0) {
      throw new Error('ModelRegistryAccess needs at least one resolver (the Plan function).');
    }
    for (const group of props.modelPackageGroups) {
      if (!GROUP_NAME.test(group)) {
        throw new Error(
          `ModelRegistryAccess model package group "${group}" is not a SageMaker group name (1-63 letters, digits, hyphens).`,
        );
      }
    }
    if (props.artifactLocations.length === 0) {
      throw new Error(
        'ModelRegistryAccess needs at least one artifact location (an s3:// prefix of model artifacts).',
      );
    }

    const stack = Stack.of(this);
    // SageMaker writes resource names in ARNs in lower case; the group's own spelling is kept as well, so the
    // statement matches however the ARN of a version comes back.
    const names = [...new Set(props.modelPackageGroups.flatMap((g) => [g, g.toLowerCase()]))];
    this.modelPackageArns = names.map((group) =>
      stack.formatArn({ service: 'sagemaker', resource: 'model-package', resourceName: `${group}/*` }),
    );

    for (const resolver of props.resolvers) {
      // ListModelPackages has no resource-level permissions (it takes a group name, not an ARN): it returns version
      // summaries only. What reveals an artifact, DescribeModelPackage, is limited to the configured groups.
      resolver.grantPrincipal.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions: ['sagemaker:ListModelPackages'], resources: ['*'] }),
      );
      if (this.modelPackageArns.length > 0) {
        resolver.grantPrincipal.addToPrincipalPolicy(
          new iam.PolicyStatement({
            actions: ['sagemaker:DescribeModelPackage'],
            resources: [...this.modelPackageArns],
          }),
        );
      }
    }
    for (const reader of [...props.resolvers, ...(props.artifactReaders ?? [])]) {
      for (const location of props.artifactLocations) grantS3(reader, location, 'read');
    }
  }
}
