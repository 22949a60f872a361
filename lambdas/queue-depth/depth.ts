/**
 * Queue depth: how many jobs of each job queue wait for capacity (RUNNABLE), start, and run. AWS Batch publishes no
 * queue metrics of its own, so this is measured every minute and emitted as EMF metrics (QUEUE_METRICS): the
 * dashboard's "queue depth" and the "stuck RUNNABLE" alarm read them.
 *
 * Array jobs are counted child by child: a parent array job is listed once with the count of its children in each
 * status (`arrayProperties.statusSummary`), which is what occupies (or waits for) capacity.
 */
import { paginateListJobs, type BatchClient, type JobStatus, type JobSummary } from '@aws-sdk/client-batch';
import { QUEUE_METRICS, type Metrics } from '../../src/runtime/metrics.js';

/** The statuses of jobs that are not finished, listed one by one (ListJobs filters on one status per call). */
export const ACTIVE_STATUSES = [
  'SUBMITTED',
  'PENDING',
  'RUNNABLE',
  'STARTING',
  'RUNNING',
] as const satisfies readonly JobStatus[];

export interface QueueDepth {
  readonly queue: string;
  readonly pending: number;
  readonly runnable: number;
  readonly starting: number;
  readonly running: number;
}

/** ListJobs pages hold at most 100 jobs. */
const PAGE_SIZE = 100;

function bucketOf(status: string): keyof Omit<QueueDepth, 'queue'> | undefined {
  switch (status) {
    case 'SUBMITTED':
    case 'PENDING':
      return 'pending';
    case 'RUNNABLE':
      return 'runnable';
    case 'STARTING':
      return 'starting';
    case 'RUNNING':
      return 'running';
    default:
      return undefined;
  }
}

export async function measureQueue(client: BatchClient, queue: string): Promise<QueueDepth> {
  const depth = { queue, pending: 0, runnable: 0, starting: 0, running: 0 };
  const seen = new Set<string>();
  const count = (job: JobSummary, listedAs: string): void => {
    if (job.jobId !== undefined) {
      // A job that changes status between two ListJobs calls may be listed twice: count it once.
      if (seen.has(job.jobId)) return;
      seen.add(job.jobId);
    }
    const summary = job.arrayProperties?.statusSummary;
    if (summary !== undefined && job.arrayProperties?.index === undefined) {
      for (const [status, n] of Object.entries(summary)) {
        const bucket = bucketOf(status);
        if (bucket) depth[bucket] += n;
      }
      return;
    }
    const bucket = bucketOf(job.status ?? listedAs);
    if (bucket) depth[bucket] += 1;
  };
  for (const status of ACTIVE_STATUSES) {
    const pages = paginateListJobs({ client, pageSize: PAGE_SIZE }, { jobQueue: queue, jobStatus: status });
    for await (const page of pages) for (const job of page.jobSummaryList ?? []) count(job, status);
  }
  return depth;
}

/** Writes one queue's depth as metrics with the JobQueue dimension. */
export function emitQueueDepth(depth: QueueDepth, metrics: Metrics): void {
  metrics.add(QUEUE_METRICS.pending, depth.pending, 'Count');
  metrics.add(QUEUE_METRICS.runnable, depth.runnable, 'Count');
  metrics.add(QUEUE_METRICS.starting, depth.starting, 'Count');
  metrics.add(QUEUE_METRICS.running, depth.running, 'Count');
  metrics.flush();
}
