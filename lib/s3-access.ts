/**
 * S3 grants with explicit actions, scoped to a key prefix. CDK's `bucket.grantRead*` grant wildcard actions
 * (`s3:GetObject*`, `s3:List*`, `s3:Abort*`, ...); these list exactly what src/storage/s3.ts calls:
 *
 * - read: GetObject (GetObject, HeadObject, the source of UploadPartCopy) on the prefix, and ListBucket on the bucket
 *   (ListObjectsV2). ListBucket is not narrowed with an `s3:prefix` condition: S3 consults it to answer 404 rather
 *   than 403 for a missing key, and GetObject and HeadObject requests carry no prefix to match. It reveals key
 *   names, not data;
 * - write: PutObject (PutObject and every multipart call but the abort), AbortMultipartUpload, DeleteObject.
 *
 * `denyS3Writes` makes a location read-only whatever else is granted (an explicit Deny wins over any Allow).
 */
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';

export type S3Access = 'read' | 'readwrite';

export const S3_READ_ACTIONS = ['s3:GetObject'] as const;
export const S3_WRITE_ACTIONS = ['s3:PutObject', 's3:AbortMultipartUpload', 's3:DeleteObject'] as const;

/** A bucket and a key prefix inside it ('' for the whole bucket). */
export interface S3Location {
  readonly bucket: s3.IBucket;
  readonly keyPrefix: string;
}

/** The policy statements of an S3 grant. */
export function s3Statements(location: S3Location, access: S3Access): iam.PolicyStatement[] {
  const { bucket, keyPrefix } = location;
  const objectActions = access === 'read' ? [...S3_READ_ACTIONS] : [...S3_READ_ACTIONS, ...S3_WRITE_ACTIONS];
  return [
    new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn] }),
    new iam.PolicyStatement({ actions: objectActions, resources: [bucket.arnForObjects(`${keyPrefix}*`)] }),
  ];
}

/** Grants `grantee` read or read-write access to the objects under a location. */
export function grantS3(grantee: iam.IGrantable, location: S3Location, access: S3Access): void {
  for (const statement of s3Statements(location, access)) {
    grantee.grantPrincipal.addToPrincipalPolicy(statement);
  }
}

/**
 * Denies `grantee` every write under a location (an explicit Deny, which no Allow overrides): for locations inside a
 * broader read-write grant that must stay read-only, such as model artifacts in the data bucket.
 */
export function denyS3Writes(grantee: iam.IGrantable, location: S3Location): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({
      effect: iam.Effect.DENY,
      actions: [...S3_WRITE_ACTIONS],
      resources: [location.bucket.arnForObjects(`${location.keyPrefix}*`)],
    }),
  );
}
