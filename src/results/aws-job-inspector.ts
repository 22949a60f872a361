/**
 * `AwsBatchJobInspector`: the failed children of an array job, asked of AWS Batch (ListJobs, then DescribeJobs for
 * their log streams); single jobs are read from the cause (see ./job-inspector.ts for the shapes). A module of its
 * own so that a local run, which reads everything from the cause, does not load the Batch client.
 */
import {
  BatchClient,
  DescribeJobsCommand,
  paginateListJobs,
  type JobDetail,
  type JobSummary,
} from '@aws-sdk/client-batch';
import {
  causeOf,
  compact,
  isArrayParent,
  LocalJobInspector,
  MAX_DESCRIBED_CHILDREN,
  sortByIndex,
  type BatchJobInspector,
  type FailedJob,
} from './job-inspector.js';
import { str } from './loose-json.js';
import { awsHttpOptions } from '../runtime/aws-http.js';

/** DescribeJobs takes at most 100 job ids per call. */
const DESCRIBE_BATCH = 100;
/** ListJobs returns at most 1,000 jobs per page. */
const LIST_PAGE = 1_000;

/** Asks AWS Batch about the failed children of an array job; single jobs are read from the cause. */
export class AwsBatchJobInspector implements BatchJobInspector {
  private readonly local = new LocalJobInspector();

  constructor(private readonly client: BatchClient = new BatchClient(awsHttpOptions())) {}

  async failedJobs(inferError: unknown): Promise<FailedJob[]> {
    const cause = causeOf(inferError);
    if (!cause || !isArrayParent(cause)) return this.local.failedJobs(inferError);
    const parentId = str(cause, 'JobId', 'jobId');
    if (!parentId) return [];
    const summaries: JobSummary[] = [];
    const pages = paginateListJobs(
      { client: this.client, pageSize: LIST_PAGE },
      { arrayJobId: parentId, jobStatus: 'FAILED' },
    );
    for await (const page of pages) summaries.push(...(page.jobSummaryList ?? []));
    const failed = new Map<string, FailedJob>();
    for (const s of summaries) {
      failed.set(
        s.jobId ?? '',
        compact({
          arrayIndex: s.arrayProperties?.index,
          jobId: s.jobId,
          exitCode: s.container?.exitCode,
          statusReason: s.statusReason,
          reason: s.container?.reason,
        }),
      );
    }
    // The summaries have no log stream: describe (a bounded number of) the children for it.
    const ids = sortByIndex([...failed.values()])
      .map((f) => f.jobId)
      .filter((id): id is string => id !== undefined)
      .slice(0, MAX_DESCRIBED_CHILDREN);
    for (let i = 0; i < ids.length; i += DESCRIBE_BATCH) {
      const out = await this.client.send(new DescribeJobsCommand({ jobs: ids.slice(i, i + DESCRIBE_BATCH) }));
      for (const job of out.jobs ?? []) {
        const known = failed.get(job.jobId ?? '');
        if (known) failed.set(job.jobId!, { ...known, ...detailOf(job) });
      }
    }
    return sortByIndex([...failed.values()]);
  }
}

/** What DescribeJobs adds: the last attempt's container (exit code, reason, log stream) and the attempt count. */
function detailOf(job: JobDetail): FailedJob {
  const last = job.attempts?.at(-1);
  return compact({
    arrayIndex: job.arrayProperties?.index,
    jobId: job.jobId,
    exitCode: last?.container?.exitCode ?? job.container?.exitCode,
    statusReason: job.statusReason ?? last?.statusReason,
    reason: last?.container?.reason ?? job.container?.reason,
    logStream: last?.container?.logStreamName ?? job.container?.logStreamName,
    attempts: job.attempts?.length,
  });
}
