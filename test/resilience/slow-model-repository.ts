/**
 * A model repository holding a copy of fashion-cnn whose batcher waits long
 * before it runs a batch (`delay_when_idle`: even a lone request waits), so a test can hold many inference requests in
 * flight at a moment of its choosing (SIGTERM, a kill, a restart).
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../harness';

export const SLOW_MODEL = 'fashion-cnn';

export function slowModelRepository(queueDelayMs: number): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mg-slow-models-'));
  const source = path.join(REPO_ROOT, 'models', SLOW_MODEL);
  const config = JSON.parse(readFileSync(path.join(source, 'config.json'), 'utf8')) as Record<string, unknown>;
  config['max_batch_size'] = 256;
  // delay_when_idle: the delay is waited out even while the model is idle (Triton's delayed batching).
  config['dynamic_batching'] = { max_queue_delay_microseconds: queueDelayMs * 1000, delay_when_idle: true };
  mkdirSync(path.join(root, SLOW_MODEL, '1'), { recursive: true });
  writeFileSync(path.join(root, SLOW_MODEL, 'config.json'), JSON.stringify(config, null, 2));
  copyFileSync(path.join(source, '1', 'model.onnx'), path.join(root, SLOW_MODEL, '1', 'model.onnx'));
  return root;
}

/** The sum of modelgate_inference_pending_requests over every model in a /metrics scrape. */
export function pendingRequests(scrape: string): number {
  let total = 0;
  for (const line of scrape.split('\n')) {
    if (line.startsWith('modelgate_inference_pending_requests')) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}
