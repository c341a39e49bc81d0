// Charts as plain SVG: a bar chart and a stacked time series. Each has a text alternative
// (a table) for screen readers.

export interface Datum {
  label: string;
  value: number;
  color?: string;
}

const palette = ["#4f7cff", "#2bb673", "#f5a623", "#e5484d", "#8e6bd8", "#14a3b8"];

export function BarChart({ title, data }: { title: string; data: Datum[] }) {
  const max = Math.max(1, ...data.map((d) => d.value));
  const h = 24;
  return (
    <figure className="chart" data-testid={`chart-${title}`}>
      <figcaption>{title}</figcaption>
      {data.length === 0 ? (
        <p className="muted">No data yet.</p>
      ) : (
        <svg role="img" aria-label={title} viewBox={`0 0 320 ${data.length * h}`} width="100%">
          {data.map((d, i) => (
            <g key={d.label} transform={`translate(0 ${i * h})`}>
              <text x="0" y="16" fontSize="12">
                {d.label}
              </text>
              <rect
                className="bar"
                x="110"
                y="4"
                height="16"
                width={Math.max(2, (d.value / max) * 170)}
                fill={d.color ?? palette[i % palette.length]}
              />
              <text x={116 + (d.value / max) * 170} y="16" fontSize="12">
                {d.value}
              </text>
            </g>
          ))}
        </svg>
      )}
      <table className="sr-only">
        <tbody>
          {data.map((d) => (
            <tr key={d.label}>
              <th>{d.label}</th>
              <td>{d.value}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  );
}

export interface Series {
  name: string;
  values: number[];
}

export function TimeChart({ title, times, series }: { title: string; times: number[]; series: Series[] }) {
  const n = times.length;
  const totals = times.map((_, i) => series.reduce((s, x) => s + (x.values[i] ?? 0), 0));
  const max = Math.max(1, ...totals);
  const w = 600;
  const h = 160;
  const bw = n ? w / n : w;
  return (
    <figure className="chart wide" data-testid={`chart-${title}`}>
      <figcaption>
        {title}
        <span className="legend">
          {series.map((s, i) => (
            <span key={s.name}>
              <i style={{ background: palette[i % palette.length] }} /> {s.name}
            </span>
          ))}
        </span>
      </figcaption>
      <svg role="img" aria-label={title} viewBox={`0 0 ${w} ${h + 16}`} width="100%" preserveAspectRatio="none">
        {times.map((t, i) => {
          let y = h;
          return (
            <g key={t}>
              {series.map((s, k) => {
                const v = s.values[i] ?? 0;
                const bh = (v / max) * (h - 4);
                y -= bh;
                return v > 0 ? (
                  <rect className="bar" key={s.name} x={i * bw + 1} y={y} width={Math.max(1, bw - 2)} height={bh} fill={palette[k % palette.length]}>
                    <title>{`${new Date(t).toLocaleString()}: ${s.name} ${v}`}</title>
                  </rect>
                ) : null;
              })}
            </g>
          );
        })}
        <line x1="0" x2={w} y1={h} y2={h} stroke="#999" />
        {n > 0 && (
          <>
            <text x="0" y={h + 14} fontSize="11">
              {new Date(times[0]).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}
            </text>
            <text x={w} y={h + 14} fontSize="11" textAnchor="end">
              now
            </text>
          </>
        )}
      </svg>
      <p className="sr-only">
        {series.map((s) => `${s.name}: ${s.values.reduce((a, b) => a + b, 0)} in total`).join("; ")}
      </p>
    </figure>
  );
}
