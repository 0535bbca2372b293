import type { ClientReadableStream, ServiceError } from "@grpc/grpc-js";

/**
 * A gRPC server stream read through an async cursor: `next()` waits (bounded)
 * for the next message and fails with a clear message when none arrives;
 * `status()` waits for the stream's final error status.
 */
export class StreamCursor<M, T = M> {
  private readonly buffered: T[] = [];
  private waiter: (() => void) | undefined;
  error: ServiceError | undefined;
  ended = false;

  constructor(
    readonly stream: ClientReadableStream<M>,
    private readonly what: string,
    map: (message: M) => T = (m) => m as unknown as T,
  ) {
    stream.on("data", (m: M) => {
      this.buffered.push(map(m));
      this.wake();
    });
    stream.on("error", (e: ServiceError) => {
      this.error = e;
      this.wake();
    });
    stream.on("end", () => {
      this.ended = true;
      this.wake();
    });
  }

  async next(timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.buffered.length > 0) return this.buffered.shift() as T;
      if (this.error) throw this.error;
      if (this.ended) throw new Error(`${this.what} ended`);
      await this.wait(deadline, () => `no ${this.what} message within ${timeoutMs} ms`);
    }
  }

  /** Reads `n` messages. */
  async take(n: number, timeoutMs = 5000): Promise<T[]> {
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(await this.next(timeoutMs));
    return out;
  }

  /** Waits for the stream's final error status, dropping messages on the way. */
  async status(timeoutMs = 5000): Promise<ServiceError> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.buffered.length = 0;
      if (this.error) return this.error;
      if (this.ended) throw new Error(`${this.what} ended without an error status`);
      await this.wait(deadline, () => `${this.what} did not end within ${timeoutMs} ms`);
    }
  }

  cancel(): void {
    this.stream.cancel();
  }

  private wait(deadline: number, timeoutMessage: () => string): Promise<void> {
    const left = deadline - Date.now();
    if (left <= 0) return Promise.reject(new Error(timeoutMessage()));
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, left);
      this.waiter = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}
