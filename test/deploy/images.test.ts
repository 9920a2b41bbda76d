/**
 * The images (issue #27 item 3), checked offline (no Docker engine here):
 * both Dockerfiles run Node 24 LTS, the CUDA one installs onnxruntime-node's
 * CUDA 12 build on a CUDA 12 + cuDNN runtime base and ships the same files as
 * the CPU one, both run as the uid the pod spec names, and what points at the
 * CUDA image (docker-compose.gpu.yml, the Kubernetes GPU overlay) agrees.
 * Digests: every FROM is pinned to a sha256 digest (not resolvable offline, so
 * not re-verified here; README, "Images", says where they came from);
 * scripts/pin-base-images.mjs re-pins with registry access. Its parsing and
 * rewriting are checked with made-up digests, and `--check` is shown passing
 * on the files and failing on a copy with the digests stripped.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv from 'ajv';
import { parse } from 'yaml';
import { CONFIG_VARIABLES } from '../../src/config';

const ROOT = path.resolve(__dirname, '..', '..');
const PIN = path.join(ROOT, 'scripts', 'pin-base-images.mjs');
const read = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8');

interface Stage {
  /** The base image as `image:tag` (its `@sha256:` digest is checked apart, in the digest test). */
  from: string;
  name: string | null;
  lines: string[];
}

/** A Dockerfile's stages: the FROM reference, the stage name and the instructions (continuation lines joined). */
function stages(text: string): Stage[] {
  const joined = text.replace(/\\\n\s*/g, ' ');
  const out: Stage[] = [];
  for (const line of joined.split('\n')) {
    if (/^\s*(#|$)/.test(line)) continue;
    const from = /^FROM\s+([^\s@]+)(?:@\S+)?(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) out.push({ from: from[1]!, name: from[2] ?? null, lines: [] });
    else out.at(-1)?.lines.push(line.trim());
  }
  return out;
}

/** What a runtime stage puts in the image and how it runs it (order-free). */
function runtimeShape(stage: Stage): { copies: string[]; user: string | undefined; expose: string | undefined; cmd: string | undefined; workdir: string | undefined; volume: string | undefined } {
  const pick = (op: string) => stage.lines.filter((l) => l.startsWith(`${op} `)).map((l) => l.slice(op.length + 1));
  return {
    copies: pick('COPY').filter((c) => !c.includes('/usr/local/bin/node')).sort(),
    user: pick('USER')[0],
    expose: pick('EXPOSE')[0],
    cmd: pick('CMD')[0],
    workdir: pick('WORKDIR')[0],
    volume: pick('VOLUME')[0],
  };
}

function pinModule<T>(expression: string): T {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', `import * as pin from ${JSON.stringify(PIN)}; console.log(JSON.stringify(${expression}));`], { encoding: 'utf8' });
  return JSON.parse(out) as T;
}

describe('images: Node 24, the CUDA variant, digests', () => {
  const cpu = stages(read('Dockerfile'));
  const cuda = stages(read('Dockerfile.cuda'));

  it('builds and runs both images on Node 24 LTS', () => {
    expect(cpu.map((s) => s.from)).toEqual(['node:24-bookworm-slim', 'node:24-bookworm-slim']);
    expect(cuda[0]!.from).toBe('node:24-bookworm-slim');
    // The CUDA runtime stage takes Node's binary from the Node 24 build stage.
    expect(cuda[1]!.lines).toContain('COPY --from=build /usr/local/bin/node /usr/local/bin/node');
  });

  it('installs the CUDA 12 provider on a CUDA 12 + cuDNN runtime base, and ships what the CPU image ships', () => {
    const [build, runtime] = cuda;
    expect(runtime!.from).toMatch(/^nvidia\/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu\d\d\.\d\d$/);
    const install = build!.lines.find((l) => l.startsWith('RUN npm ci'));
    expect(install).toMatch(/--onnxruntime-node-install=cuda12/);
    // The build fails if the provider library did not arrive (e.g. the feed was unreachable).
    expect(install).toMatch(/providers_cuda/);
    expect(build!.lines).toContain('ENV ONNXRUNTIME_NODE_INSTALL=cuda12');
    // The CPU image skips it (the project's .npmrc), so only the CUDA image can use a GPU.
    expect(read('.npmrc')).toMatch(/^onnxruntime-node-install=skip$/m);
    expect(runtimeShape(runtime!)).toEqual(runtimeShape(cpu[1]!));
    expect(runtime!.lines.find((l) => l.startsWith('ENV '))).toMatch(/EXECUTION_PROVIDERS=cuda,cpu/);
    // Build stages install and compile the same way.
    const buildSteps = (s: Stage) => s.lines.filter((l) => !/^(ENV ONNXRUNTIME|RUN npm ci)/.test(l));
    expect(buildSteps(build!)).toEqual(buildSteps(cpu[0]!));
  });

  it('runs both as uid 1000, the user the pod spec names', () => {
    expect(runtimeShape(cpu[1]!).user).toBe('node');
    expect(cuda[1]!.lines.join('\n')).toMatch(/useradd --uid 1000 --gid node/);
    expect(cuda[1]!.lines.join('\n')).toMatch(/groupadd --gid 1000 node/);
    expect(read('deploy/kubernetes/base/modelgate.yaml')).toMatch(/runAsUser: 1000/);
  });

  it('points compose and Kubernetes GPU deployments at the CUDA image', () => {
    const gpu = parse(read('docker-compose.gpu.yml')) as { services: Record<string, { build?: { dockerfile?: string }; image?: string; environment?: Record<string, string>; deploy?: { resources?: { reservations?: { devices?: { driver?: string; capabilities?: string[] }[] } } } }> };
    const gateway = gpu.services['gateway']!;
    expect(gateway.build?.dockerfile).toBe('Dockerfile.cuda');
    expect(gateway.deploy?.resources?.reservations?.devices?.[0]).toMatchObject({ driver: 'nvidia', capabilities: ['gpu'] });
    expect(gateway.environment?.['EXECUTION_PROVIDERS']).toBe('cuda,cpu');
    for (const name of Object.keys(gateway.environment ?? {})) expect(CONFIG_VARIABLES).toContain(name);
    const overlay = read('deploy/kubernetes/overlays/gpu/kustomization.yaml');
    const tag = /newTag:\s*(\S+)/.exec(overlay)?.[1];
    expect(gateway.image).toBe(`modelgate:${tag}`);
    expect(overlay).toMatch(/Dockerfile\.cuda/);
    // The override merges into docker-compose.yml: the merged file still matches the Compose Specification.
    const base = parse(read('docker-compose.yml')) as { services: Record<string, Record<string, unknown>> };
    const merged = { ...base, services: { ...base.services, gateway: { ...base.services['gateway'], ...gateway, environment: { ...(base.services['gateway']!['environment'] as object), ...gateway.environment } } } };
    const { $schema: _draft7, ...schema } = JSON.parse(read('deploy/compose/compose-spec.json')) as { $schema: string };
    const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
    expect(validate(merged)).toBe(true);
    expect(validate(gpu)).toBe(true);
  });

  it('pins every base image by sha256 digest; --check passes on the files and fails, naming the line, on a tag left unpinned', () => {
    const files = pinModule<string[]>('pin.DOCKERFILES');
    expect(files).toEqual(['Dockerfile', 'Dockerfile.cuda']);
    const images = files.flatMap((f) => pinModule<{ repository: string; tag: string; digest: string | null }[]>(`pin.baseImages(${JSON.stringify(read(f))})`));
    expect(images.map((i) => `${i.repository}:${i.tag}`)).toEqual(['node:24-bookworm-slim', 'node:24-bookworm-slim', 'node:24-bookworm-slim', 'nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04']);
    for (const image of images) expect(image.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    // Both files name the same Node base (one digest, not two drifting pins).
    expect(new Set(images.filter((i) => i.repository === 'node').map((i) => i.digest)).size).toBe(1);
    const check = spawnSync(process.execPath, [PIN, '--check'], { encoding: 'utf8' });
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
    // The same check on the files with their digests stripped (as they were before pinning) names each line.
    const unpin = (text: string) => text.replace(/@sha256:[0-9a-f]{64}/g, '');
    const tagOnly = pinModule<string[]>(`pin.unpinned(${JSON.stringify(unpin(read('Dockerfile.cuda')))})`);
    expect(tagOnly).toEqual([expect.stringMatching(/^line \d+: node:24-bookworm-slim has no sha256 digest$/), expect.stringMatching(/^line \d+: nvidia\/cuda:12\.6\.3-cudnn-runtime-ubuntu22\.04 has no sha256 digest$/)]);
    expect(pinModule<string[]>(`pin.unpinned(${JSON.stringify(read('Dockerfile').replace(/@sha256:[0-9a-f]{64}/, '@sha256:abc'))})`)).toHaveLength(1);
    // Rewriting, with made-up digests (the real ones come from the registry): every FROM pinned, stage references untouched.
    const fake = (c: string) => `sha256:${c.repeat(64)}`;
    const text = unpin(read('Dockerfile.cuda'));
    const digests = { 'node:24-bookworm-slim': fake('a'), 'nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04': fake('b') };
    const pinned = pinModule<string>(`pin.pinText(${JSON.stringify(text)}, ${JSON.stringify(digests)})`);
    expect(pinned).toMatch(new RegExp(`^FROM node:24-bookworm-slim@${fake('a')} AS build$`, 'm'));
    expect(pinned).toMatch(new RegExp(`^FROM nvidia/cuda:12\\.6\\.3-cudnn-runtime-ubuntu22\\.04@${fake('b')}$`, 'm'));
    expect(pinned).toContain('COPY --from=build /usr/local/bin/node /usr/local/bin/node');
    expect(pinModule<string[]>(`pin.unpinned(${JSON.stringify(pinned)})`)).toEqual([]);
    // Re-pinning replaces the old digest; a digest that is not sha256 is refused.
    expect(pinModule<string>(`pin.pinText(${JSON.stringify(pinned)}, ${JSON.stringify({ ...digests, 'node:24-bookworm-slim': fake('c') })})`)).toMatch(new RegExp(`node:24-bookworm-slim@${fake('c')} AS build`));
    expect(() => pinModule(`pin.pinText(${JSON.stringify(text)}, ${JSON.stringify({ ...digests, 'node:24-bookworm-slim': 'sha256:abc' })})`)).toThrow(/not a sha256 digest/);
  });
});
