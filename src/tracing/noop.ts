import type { StepSpan, StepTrace } from './types';

const NOOP_SPAN: StepSpan = { set: () => undefined, fail: () => undefined };

/** For calls outside an HTTP request (tests, internal callers): every step just runs. */
export const NOOP_STEPS: StepTrace = {
  recording: false,
  step: (_name, fn) => fn(NOOP_SPAN),
  recorded: () => undefined,
  annotate: () => undefined,
};

export { NOOP_SPAN };
