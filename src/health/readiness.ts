/**
 * Readiness: each component (database, redis, models, …) reports its state;
 * `/readyz` is 200 only when every required component is ready.
 */
export interface ComponentReport {
  ready: boolean;
  /** Shown in /readyz; say what is wrong when not ready. */
  detail: Record<string, unknown>;
}

export type ComponentCheck = () => ComponentReport;

export class Readiness {
  private readonly components = new Map<string, { check: ComponentCheck; required: boolean }>();

  /** A component that is not required is shown but never makes /readyz fail. */
  register(name: string, check: ComponentCheck, options: { required?: boolean } = {}): void {
    this.components.set(name, { check, required: options.required ?? true });
  }

  report(): { ready: boolean; components: Record<string, ComponentReport & { required: boolean }> } {
    const components: Record<string, ComponentReport & { required: boolean }> = {};
    let ready = true;
    for (const [name, { check, required }] of this.components) {
      let result: ComponentReport;
      try {
        result = check();
      } catch (error) {
        result = { ready: false, detail: { error: error instanceof Error ? error.message : String(error) } };
      }
      components[name] = { ...result, required };
      if (required && !result.ready) ready = false;
    }
    return { ready, components };
  }
}
