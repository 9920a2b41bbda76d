/**
 * Each replica's local copy of catalog weights, one file per SHA-256 digest
 * (MODEL_CACHE_DIR, default DATA_DIR/model-cache). A file is written under a
 * temporary name while hashing, renamed into place only when its digest
 * matches, and re-hashed before every load, so a corrupted or truncated
 * cache file is fetched again, never served.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { once } from 'node:events';
import type { WeightStore } from './weight-store';
import { SHA256_HEX } from './weight-store';

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export class WeightCache {
  private readonly inFlight = new Map<string, Promise<string>>();

  constructor(
    readonly dir: string,
    private readonly store: WeightStore,
  ) {}

  /** The path of a verified local copy of the weights, fetched from the store when missing or corrupt. */
  ensure(digest: string): Promise<string> {
    if (!SHA256_HEX.test(digest)) return Promise.reject(new Error(`not a SHA-256 digest: ${digest}`));
    let running = this.inFlight.get(digest);
    if (!running) {
      running = this.fetch(digest).finally(() => this.inFlight.delete(digest));
      this.inFlight.set(digest, running);
    }
    return running;
  }

  private async fetch(digest: string): Promise<string> {
    const file = path.join(this.dir, `${digest}.onnx`);
    if (await stat(file).then((s) => s.isFile(), () => false)) {
      if ((await sha256File(file)) === digest) return file;
      await rm(file, { force: true });
    }
    await mkdir(this.dir, { recursive: true });
    const partial = `${file}.${randomUUID()}.part`;
    const hash = createHash('sha256');
    const out = createWriteStream(partial);
    try {
      for await (const chunk of this.store.open(digest)) {
        hash.update(chunk);
        if (!out.write(chunk)) await once(out, 'drain');
      }
      out.end();
      await once(out, 'finish');
      const got = hash.digest('hex');
      if (got !== digest) throw new Error(`weights fetched for ${digest} hash to ${got}`);
      await rename(partial, file);
      return file;
    } catch (error) {
      out.destroy();
      await rm(partial, { force: true });
      throw error;
    }
  }

  /**
   * Deletes local copies of digests not in `keep` and partial fetches (a
   * `kill -9` mid-fetch leaves a `.part`) last written more than `graceMs`
   * ago; answers the file names removed.
   */
  async collect(keep: ReadonlySet<string>, graceMs: number): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const removed: string[] = [];
    const cutoff = Date.now() - graceMs;
    for (const name of names) {
      const digest = name.slice(0, 64);
      const whole = name === `${digest}.onnx` && SHA256_HEX.test(digest);
      if (this.inFlight.has(digest) || (whole ? keep.has(digest) : !name.endsWith('.part'))) continue;
      const file = path.join(this.dir, name);
      const modified = await stat(file).then((s) => s.mtimeMs, () => null);
      if (modified === null || modified > cutoff) continue;
      await rm(file, { force: true });
      removed.push(name);
    }
    return removed;
  }
}
