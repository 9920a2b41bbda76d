#!/usr/bin/env node
/**
 * Pins the base images of Dockerfile and Dockerfile.cuda to their digests
 * (issue #27 item 3): each `FROM image:tag` becomes `FROM image:tag@sha256:…`,
 * the digest of the tag's manifest list as the registry serves it now
 * (Docker Hub's registry API; `docker buildx imagetools inspect` gives the
 * same). The tag stays beside the digest for readers; Docker pulls by the
 * digest. Digests cannot be looked up offline, so the files in the repository
 * carry tags until someone runs this with registry access:
 *
 *   node scripts/pin-base-images.mjs           # resolve and rewrite (network)
 *   node scripts/pin-base-images.mjs --check   # exit 1 naming every unpinned FROM (offline)
 *
 * Re-run it to move to a newer patch of the same tag (security updates), and
 * commit the change so a rebuild is reproducible.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const DOCKERFILES = ['Dockerfile', 'Dockerfile.cuda'];

/** `FROM [--platform=…] image[:tag][@digest] [AS name]`: the base images of a Dockerfile's stages (stage names excluded). */
export function baseImages(text) {
  const stages = new Set();
  const images = [];
  for (const [index, line] of text.split('\n').entries()) {
    const m = /^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$/i.exec(line);
    if (!m) continue;
    const ref = m[1];
    if (!stages.has(ref)) {
      const at = ref.indexOf('@');
      const name = at === -1 ? ref : ref.slice(0, at);
      const digest = at === -1 ? null : ref.slice(at + 1);
      const colon = name.lastIndexOf(':');
      const slash = name.lastIndexOf('/');
      const hasTag = colon > slash;
      images.push({ line: index + 1, ref, repository: hasTag ? name.slice(0, colon) : name, tag: hasTag ? name.slice(colon + 1) : 'latest', digest });
    }
    if (m[2]) stages.add(m[2]);
  }
  return images;
}

/** Problems that make a FROM unreproducible: no digest, or one that is not sha256. */
export function unpinned(text) {
  return baseImages(text)
    .filter((i) => i.digest === null || !/^sha256:[0-9a-f]{64}$/.test(i.digest))
    .map((i) => `line ${i.line}: ${i.ref} has no sha256 digest`);
}

/** The text with every base image pinned to `digests[repository:tag]` (a sha256 string). */
export function pinText(text, digests) {
  const byLine = new Map(baseImages(text).map((i) => [i.line, i]));
  return text
    .split('\n')
    .map((line, index) => {
      const image = byLine.get(index + 1);
      if (!image) return line;
      const digest = digests[`${image.repository}:${image.tag}`];
      if (!digest) throw new Error(`no digest for ${image.repository}:${image.tag}`);
      if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new Error(`not a sha256 digest for ${image.repository}:${image.tag}: ${digest}`);
      return line.replace(image.ref, `${image.repository}:${image.tag}@${digest}`);
    })
    .join('\n');
}

/** Docker Hub: `node` is `library/node`; other registries are named in the repository (host with a dot or a port). */
function registryOf(repository) {
  const first = repository.split('/')[0];
  if (repository.includes('/') && (first.includes('.') || first.includes(':'))) return { host: first, name: repository.slice(first.length + 1) };
  return { host: 'registry-1.docker.io', name: repository.includes('/') ? repository : `library/${repository}` };
}

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
].join(', ');

/** The digest a registry answers for repository:tag (anonymous pull token where the registry asks for one). */
export async function resolveDigest(repository, tag) {
  const { host, name } = registryOf(repository);
  const url = `https://${host}/v2/${name}/manifests/${tag}`;
  let res = await fetch(url, { method: 'HEAD', headers: { accept: ACCEPT } });
  if (res.status === 401) {
    const challenge = res.headers.get('www-authenticate') ?? '';
    const realm = /realm="([^"]+)"/.exec(challenge)?.[1];
    const service = /service="([^"]+)"/.exec(challenge)?.[1];
    if (!realm) throw new Error(`${url}: 401 without a token realm`);
    const tokenUrl = `${realm}?${new URLSearchParams({ ...(service ? { service } : {}), scope: `repository:${name}:pull` })}`;
    const token = (await (await fetch(tokenUrl)).json()).token;
    res = await fetch(url, { method: 'HEAD', headers: { accept: ACCEPT, authorization: `Bearer ${token}` } });
  }
  const digest = res.headers.get('docker-content-digest');
  if (!res.ok || !digest) throw new Error(`${url}: ${res.status} without a digest`);
  return digest;
}

async function main() {
  const check = process.argv.includes('--check');
  let failed = false;
  for (const file of DOCKERFILES) {
    const full = path.join(ROOT, file);
    const text = readFileSync(full, 'utf8');
    if (check) {
      for (const problem of unpinned(text)) {
        console.error(`${file} ${problem}`);
        failed = true;
      }
      continue;
    }
    const digests = {};
    for (const image of baseImages(text)) {
      const key = `${image.repository}:${image.tag}`;
      digests[key] ??= await resolveDigest(image.repository, image.tag);
      console.log(`${file}: ${key} → ${digests[key]}`);
    }
    writeFileSync(full, pinText(text, digests));
  }
  if (failed) {
    console.error('unpinned base images: run `node scripts/pin-base-images.mjs` with registry access and commit the result');
    process.exit(1);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
