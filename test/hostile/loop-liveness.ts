/**
 * The event-loop liveness guard of the hostile tests. Not a speed budget
 * (bench/hostile-latency.mjs measures the delay and holds that): on two cores
 * shared with other suites an idle gateway showed 0.25 s at load 9 and 1.65 s
 * at load 6, while the defects these tests guard against blocked the loop for
 * 14.3 s (12 largest bodies) before their fix. Only a loop held this long fails.
 */
export const LOOP_HUNG_S = 10;
