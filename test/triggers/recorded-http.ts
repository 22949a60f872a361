/**
 * A request handler for the real AWS SDK clients that answers with recorded HTTP responses and keeps every request,
 * so a test runs the whole client (serialization, retries, error parsing) and checks what goes over the wire.
 */
import { Readable } from 'node:stream';

export interface RecordedResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** A JSON value (serialized as JSON) or raw text (XML, an object's bytes). */
  readonly body?: unknown;
}

/** What the handler receives: the parts of the SDK's HttpRequest the tests read. */
export interface WireRequest {
  readonly method: string;
  readonly hostname: string;
  readonly path: string;
  readonly query?: Readonly<Record<string, unknown>>;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: unknown;
}

export interface SeenRequest extends WireRequest {
  /** The body as text. */
  readonly text: string;
}

function bodyText(body: unknown): string {
  if (body === undefined || body === null) return '';
  if (typeof body === 'string') return body;
  if (body instanceof Uint8Array) return new TextDecoder().decode(body);
  return JSON.stringify(body);
}

export class RecordedHttpHandler {
  readonly requests: SeenRequest[] = [];
  private next = 0;

  constructor(private readonly responses: readonly RecordedResponse[]) {}

  async handle(request: WireRequest): Promise<{ response: unknown }> {
    this.requests.push({ ...request, text: bodyText(request.body) });
    const recorded = this.responses[this.next++];
    if (!recorded) throw new Error(`unexpected request #${this.next}: ${request.method} ${request.path}`);
    const body =
      recorded.body === undefined
        ? ''
        : typeof recorded.body === 'string'
          ? recorded.body
          : JSON.stringify(recorded.body);
    return {
      response: {
        statusCode: recorded.status,
        headers: { ...recorded.headers },
        body: Readable.from([Buffer.from(body)]),
      },
    };
  }

  /** Requests answered so far. */
  get served(): number {
    return this.next;
  }

  updateHttpClientConfig(): void {}

  httpHandlerConfigs(): Record<string, never> {
    return {};
  }
}

/** Static credentials: requests are signed as in AWS, by a key that exists nowhere. */
export const TEST_CREDENTIALS = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
};
