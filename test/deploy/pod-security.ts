/**
 * The Pod Security Standards `restricted` profile (kubernetes.io/docs/concepts/
 * security/pod-security-standards, baseline controls included), checked by
 * code on a pod spec, plus this project's own rule: a read-only root
 * filesystem with every path the gateway writes mounted as a volume. Each
 * violation names its check, so a test can show every check can fail.
 */
export type PodSecurityCheck =
  | 'hostNamespaces'
  | 'privileged'
  | 'hostPorts'
  | 'hostPathVolumes'
  | 'volumeTypes'
  | 'allowPrivilegeEscalation'
  | 'runAsNonRoot'
  | 'runAsUser'
  | 'seccompProfile'
  | 'capabilities'
  | 'readOnlyRootFilesystem'
  | 'writablePathsMounted';

export const POD_SECURITY_CHECKS: readonly PodSecurityCheck[] = [
  'hostNamespaces',
  'privileged',
  'hostPorts',
  'hostPathVolumes',
  'volumeTypes',
  'allowPrivilegeEscalation',
  'runAsNonRoot',
  'runAsUser',
  'seccompProfile',
  'capabilities',
  'readOnlyRootFilesystem',
  'writablePathsMounted',
];

export interface SecurityContext {
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  runAsNonRoot?: boolean;
  runAsUser?: number;
  readOnlyRootFilesystem?: boolean;
  seccompProfile?: { type?: string };
  capabilities?: { add?: string[]; drop?: string[] };
}
export interface ContainerSpec {
  name: string;
  securityContext?: SecurityContext;
  ports?: { containerPort?: number; hostPort?: number }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
export interface PodSpec {
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  securityContext?: SecurityContext;
  containers: ContainerSpec[];
  initContainers?: ContainerSpec[];
  ephemeralContainers?: ContainerSpec[];
  volumes?: ({ name: string } & Record<string, unknown>)[];
}
export interface Violation {
  check: PodSecurityCheck;
  detail: string;
}

/** Volume sources `restricted` allows (everything else, hostPath included, is refused). */
const RESTRICTED_VOLUME_TYPES = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];

/**
 * Violations of `restricted` (+ read-only root) for a pod spec. `writablePaths`
 * are the directories the container writes; `claimVolumes` names volumes that
 * come from a StatefulSet's volumeClaimTemplates (persistentVolumeClaim).
 */
export function podSecurityViolations(pod: PodSpec, writablePaths: string[], claimVolumes: string[] = []): Violation[] {
  const out: Violation[] = [];
  const add = (check: PodSecurityCheck, detail: string) => out.push({ check, detail });
  const podContext = pod.securityContext ?? {};
  const containers = [...(pod.initContainers ?? []), ...pod.containers, ...(pod.ephemeralContainers ?? [])];

  for (const field of ['hostNetwork', 'hostPID', 'hostIPC'] as const) if (pod[field]) add('hostNamespaces', `${field}: true`);
  const volumes = pod.volumes ?? [];
  for (const volume of volumes) {
    const types = Object.keys(volume).filter((k) => k !== 'name');
    if (types.includes('hostPath')) add('hostPathVolumes', `volume ${volume.name} is a hostPath`);
    for (const type of types) if (!RESTRICTED_VOLUME_TYPES.includes(type)) add('volumeTypes', `volume ${volume.name}: ${type}`);
  }
  const podSeccomp = podContext.seccompProfile?.type;
  if (podSeccomp !== undefined && podSeccomp !== 'RuntimeDefault' && podSeccomp !== 'Localhost') add('seccompProfile', `pod seccompProfile ${podSeccomp}`);
  if (podContext.runAsNonRoot === false) add('runAsNonRoot', 'pod runAsNonRoot: false');
  if (podContext.runAsUser === 0) add('runAsUser', 'pod runAsUser: 0');

  for (const c of containers) {
    const sc = c.securityContext ?? {};
    if (sc.privileged) add('privileged', `${c.name}: privileged`);
    for (const p of c.ports ?? []) if (p.hostPort) add('hostPorts', `${c.name}: hostPort ${p.hostPort}`);
    if (sc.allowPrivilegeEscalation !== false) add('allowPrivilegeEscalation', `${c.name}: allowPrivilegeEscalation is not false`);
    const nonRoot = sc.runAsNonRoot ?? podContext.runAsNonRoot;
    if (nonRoot !== true) add('runAsNonRoot', `${c.name}: runAsNonRoot is not true (pod or container)`);
    if (sc.runAsUser === 0) add('runAsUser', `${c.name}: runAsUser: 0`);
    const seccomp = sc.seccompProfile?.type ?? podSeccomp;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') add('seccompProfile', `${c.name}: seccompProfile ${seccomp ?? 'unset'}`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) add('capabilities', `${c.name}: capabilities.drop lacks ALL`);
    for (const cap of sc.capabilities?.add ?? []) if (cap !== 'NET_BIND_SERVICE') add('capabilities', `${c.name}: adds ${cap}`);
    if (sc.readOnlyRootFilesystem !== true) add('readOnlyRootFilesystem', `${c.name}: readOnlyRootFilesystem is not true`);
    const writable = new Set([...volumes.map((v) => v.name), ...claimVolumes]);
    for (const dir of writablePaths) {
      const mount = (c.volumeMounts ?? []).find((m) => m.mountPath === dir);
      if (!mount || mount.readOnly || !writable.has(mount.name)) add('writablePathsMounted', `${c.name}: ${dir} is not a writable volume mount`);
    }
  }
  return out;
}
