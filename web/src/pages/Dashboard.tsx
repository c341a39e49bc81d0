import type { AgentRun, ObservabilityMetrics, SympoziumInstance, TimeSeries } from "../api/types.gen";
import { BarChart, TimeChart } from "../components/charts";
import { age, useApi } from "../hooks";
import { Link } from "../router";
import { Phase } from "./Runs";

const statusColor: Record<string, string> = {
  succeeded: "#2bb673",
  failed: "#e5484d",
  running: "#4f7cff",
  pending: "#f5a623",
  serving: "#8e6bd8",
};

export function Dashboard() {
  const metrics = useApi<ObservabilityMetrics>("/api/v1/observability/metrics");
  const series = useApi<TimeSeries>("/api/v1/observability/timeseries?range=24h", 15000);
  const runs = useApi<AgentRun[]>("/api/v1/runs?limit=8");
  const instances = useApi<SympoziumInstance[]>("/api/v1/instances");
  const m = metrics.data;
  const buckets = series.data?.buckets ?? [];
  const failed = m?.runStatus["failed"] ?? 0;
  return (
    <section aria-labelledby="dash-title">
      <h1 id="dash-title">Dashboard</h1>
      {metrics.error && <p role="alert" className="error">{metrics.error}</p>}
      <div className="tiles">
        <Tile label="Total tokens" value={m ? m.inputTokensTotal + m.outputTokensTotal : "…"} />
        <Tile label="Tool calls" value={m?.toolInvocations ?? "…"} />
        <Tile label="Runs" value={m?.agentRunsTotal ?? "…"} />
        <Tile label="Active runs" value={m ? (m.runStatus["running"] ?? 0) + (m.runStatus["pending"] ?? 0) : "…"} />
        <Tile label="Failure rate" value={m && m.agentRunsTotal ? `${Math.round((failed / m.agentRunsTotal) * 100)}%` : "0%"} />
        <Tile label="Instances" value={instances.data?.length ?? "…"} />
      </div>
      <div className="charts">
        <TimeChart
          title="Tokens over time (24h)"
          times={buckets.map((b) => b.ts)}
          series={[
            { name: "input", values: buckets.map((b) => b.inputTokens) },
            { name: "output", values: buckets.map((b) => b.outputTokens) },
          ]}
        />
        <BarChart
          title="Runs by status"
          data={Object.entries(m?.runStatus ?? {}).map(([label, value]) => ({ label, value, color: statusColor[label] }))}
        />
        <BarChart title="Tokens by model" data={(m?.inputByModel ?? []).map((d) => ({ label: d.label, value: d.value + (m?.outputByModel.find((o) => o.label === d.label)?.value ?? 0) }))} />
        <TimeChart title="Runs over time (24h)" times={buckets.map((b) => b.ts)} series={[{ name: "runs", values: buckets.map((b) => b.runs - b.failed) }, { name: "failed", values: buckets.map((b) => b.failed) }]} />
      </div>
      <h2>Recent runs</h2>
      <table>
        <thead>
          <tr>
            <th>Run</th>
            <th>Instance</th>
            <th>Phase</th>
            <th>Tokens</th>
            <th>Age</th>
          </tr>
        </thead>
        <tbody>
          {(runs.data ?? []).map((r) => (
            <tr key={r.metadata.name}>
              <td>
                <Link to={`/runs/${r.metadata.name}`}>{r.metadata.name}</Link>
              </td>
              <td>{r.spec.instanceRef}</td>
              <td>
                <Phase phase={r.status?.phase} />
              </td>
              <td>{r.status?.tokenUsage?.totalTokens ?? ""}</td>
              <td>{age(r.metadata.creationTimestamp)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Tile({ label, value }: { label: string; value: React.ReactNode }) {
  return (
    <div className="tile">
      <div className="tile-value">{value}</div>
      <div className="tile-label">{label}</div>
    </div>
  );
}
