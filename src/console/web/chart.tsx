/** uPlot wrapper: a figure with a text summary for screen readers; the numbers are in the table beneath it. */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { cssVar } from './util';

export interface Series {
  label: string;
  values: (number | null)[];
  /** dashed: projections */
  dash?: boolean;
}

const PALETTE = ['--c1', '--c2', '--c3', '--c4', '--c5', '--c6', '--c7', '--c8'];

export function Chart(props: { id: string; title: string; summary: string; x: number[]; series: Series[]; yLabel: string; theme: string }) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const fg = cssVar('--fg');
    const grid = cssVar('--grid');
    const axis = { stroke: fg, grid: { stroke: grid }, ticks: { stroke: grid } };
    const opts: uPlot.Options = {
      width: Math.max(320, el.clientWidth || 640),
      height: 240,
      scales: { x: { time: true } },
      axes: [axis, { ...axis, label: props.yLabel, size: 60 }],
      series: [
        { label: 'time (UTC)', value: (_u, v) => (v === null ? '—' : new Date(v * 1000).toISOString().slice(0, 16).replace('T', ' ')) },
        ...props.series.map((s, i) => ({
          label: s.label,
          stroke: cssVar(PALETTE[i % PALETTE.length] ?? '--c1'),
          width: 2,
          ...(s.dash ? { dash: [6, 4] } : {}),
          spanGaps: false,
        })),
      ],
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
    };
    const plot = new uPlot(opts, [props.x, ...props.series.map((s) => s.values)] as uPlot.AlignedData, el);
    el.dataset['drawn'] = 'true';
    el.dataset['fg'] = fg;
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(320, el.clientWidth), height: 240 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [props.x, props.series, props.theme]);
  return (
    <figure class="chart" aria-labelledby={`${props.id}-title`}>
      <figcaption id={`${props.id}-title`}>{props.title}</figcaption>
      <div ref={host} class="chart-host" data-testid={`${props.id}-chart`} role="img" aria-label={`${props.title}. ${props.summary} The table below has the same numbers.`} />
    </figure>
  );
}
