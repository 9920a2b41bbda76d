/**
 * Opens an uploaded model where it cannot hurt the gateway (issue #23 item 7):
 * a child process (`inspect-child`) per file, not a worker thread, because a
 * native crash in onnxruntime ends the whole process that hosts it and
 * onnxruntime's allocations are outside V8's heap (a worker's
 * `resourceLimits` would not bound them). The parent bounds the child's
 * wall time (MODEL_VALIDATE_TIMEOUT_MS) and resident memory
 * (MODEL_VALIDATE_MAX_MEMORY_BYTES, read from /proc every 50 ms) and kills
 * it past either (the child's V8 heap is capped at half that bound, past which
 * V8 aborts it: VALIDATION_CRASHED); inspections run one at a time so a burst of uploads cannot
 * fork a crowd. Every refusal is MODEL_INVALID with a reason.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ModelInvalidError } from '../errors';
import type { InspectReply } from './inspect-child';
import type { InspectReason } from './onnx-checks';
import type { TensorMetadata } from './worker-protocol';

export interface InspectorOptions {
  timeoutMs: number;
  maxMemoryBytes: number;
}

export interface GraphSignature {
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

const MEMORY_POLL_MS = 50;

/** dist/inference/inspect-child.js, also when running from src (tests: built by `npm run build:ts`). */
export function inspectChildScript(): string {
  const beside = path.join(__dirname, 'inspect-child.js');
  if (existsSync(beside)) return beside;
  return path.resolve(__dirname, '..', '..', 'dist', 'inference', 'inspect-child.js');
}

async function residentBytes(pid: number): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export class ModelInspector {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly children = new Set<ChildProcess>();

  constructor(private readonly options: InspectorOptions) {}

  /** The graph's inputs and outputs; MODEL_INVALID naming the reason when the file cannot serve. */
  inspect(model: string, file: string): Promise<GraphSignature> {
    const run = this.queue.catch(() => undefined).then(() => this.runChild(model, file));
    this.queue = run;
    return run;
  }

  /** Kills inspections in flight (shutdown). */
  close(): void {
    for (const child of this.children) child.kill('SIGKILL');
  }

  private runChild(model: string, file: string): Promise<GraphSignature> {
    const refuse = (reason: InspectReason, message: string) => new ModelInvalidError(`Model "${model}": ${message}`, { model, reason });
    return new Promise<GraphSignature>((resolve, reject) => {
      // The child's JS heap is capped at half the memory bound: a file that decodes into millions of small values
      // (packed int64_data: one byte each in the file, an object each in the heap) then dies as V8's out-of-memory
      // abort within its own heap, rather than growing faster than the 50 ms poll can see.
      const heapMiB = Math.max(Math.floor(this.options.maxMemoryBytes / 2 / 2 ** 20), 16);
      const child = fork(inspectChildScript(), [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'json', execArgv: [`--max-old-space-size=${heapMiB}`] });
      this.children.add(child);
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => {
        if (stderr.length < 4096) stderr += d.toString('utf8');
      });
      let outcome: { reply?: InspectReply; killed?: InspectReason; detail?: string } = {};
      const kill = (reason: InspectReason, detail: string) => {
        if (outcome.reply || outcome.killed) return;
        outcome = { killed: reason, detail };
        child.kill('SIGKILL');
      };
      const timer = setTimeout(() => kill('VALIDATION_TIMEOUT', `opening the model took longer than MODEL_VALIDATE_TIMEOUT_MS (${this.options.timeoutMs} ms)`), this.options.timeoutMs);
      const poll = setInterval(() => {
        if (child.pid === undefined) return;
        void residentBytes(child.pid).then((rss) => {
          if (rss !== null && rss > this.options.maxMemoryBytes) {
            kill('VALIDATION_MEMORY', `opening the model used ${rss} bytes of memory, over MODEL_VALIDATE_MAX_MEMORY_BYTES (${this.options.maxMemoryBytes})`);
          }
        });
      }, MEMORY_POLL_MS);
      child.on('message', (reply: InspectReply) => {
        if (!outcome.killed) outcome = { reply };
      });
      child.on('error', (error) => kill('VALIDATION_CRASHED', `the inspection process failed: ${error.message}`));
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        clearInterval(poll);
        this.children.delete(child);
        const { reply, killed, detail } = outcome;
        if (killed) return reject(refuse(killed, detail ?? killed));
        if (reply?.ok) return resolve({ inputs: reply.inputs, outputs: reply.outputs });
        if (reply) return reject(refuse(reply.reason, reply.message));
        // V8's own words when the heap cap was hit, else the last line the child wrote.
        const lines = stderr.trim().split('\n');
        const last = (lines.find((l) => /FATAL ERROR/.test(l)) ?? lines.slice(-1)[0] ?? '').trim();
        reject(refuse('VALIDATION_CRASHED', `the inspection process died opening the model (${signal ? `signal ${signal}` : `exit code ${code}`})${last ? `: ${last}` : ''}`));
      });
      child.send({ path: file });
    });
  }
}
