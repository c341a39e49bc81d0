import { useEffect, useState } from "react";
import { api } from "../api/client";
import type { GatewayConfigResponse, GatewayMetrics, GatewayRequest, SympoziumInstance } from "../api/types.gen";
import { TimeChart } from "../components/charts";
import { ErrorLine, errorText } from "../components/ui";
import { useApi } from "../hooks";
import { Link } from "../router";

export function Gateway() {
  const gw = useApi<GatewayConfigResponse>("/api/v1/gateway");
  const [range, setRange] = useState("24h");
  const metrics = useApi<GatewayMetrics>(`/api/v1/gateway/metrics?range=${range}`, 15000);
  const instances = useApi<SympoziumInstance[]>("/api/v1/instances", 15000);
  const g = gw.data;
  const routes = (instances.data ?? []).filter((i) => i.status?.webEndpoint?.url);
  const m = metrics.data;
  return (
    <section aria-labelledby="gw-title">
      <h1 id="gw-title">Gateway</h1>
      <ErrorLine error={gw.error} />
      <div className="tiles">
        {[
          ["Status", g ? (g.enabled ? (g.ready ? "ready" : g.phase ?? "pending") : "off") : "…"],
          ["Address", g?.address ?? "—"],
          ["Listeners", String(g?.listenerCount ?? 0)],
          ["Requests", String(m?.totalRequests ?? 0)],
          ["Errors", String(m?.errorCount ?? 0)],
          ["Serving endpoints", String(m?.servingInstances ?? 0)],
        ].map(([label, value]) => (
          <div className="tile" key={label}>
            <div className="tile-value">{value}</div>
            <div className="tile-label">{label}</div>
          </div>
        ))}
      </div>
      {g?.message && <p className="muted">{g.message}</p>}
      {g && <GatewayForm current={g} onSaved={gw.reload} />}
      <label className="form-row" style={{ maxWidth: 240 }}>
        Activity range
        <select value={range} onChange={(e) => setRange(e.target.value)}>
          <option value="1h">last hour</option>
          <option value="24h">last 24 hours</option>
          <option value="7d">last 7 days</option>
        </select>
      </label>
      {m && (
        <TimeChart
          title="Web endpoint requests"
          times={m.buckets.map((b) => b.ts)}
          series={[
            { name: "ok", values: m.buckets.map((b) => b.requests - b.errors) },
            { name: "errors", values: m.buckets.map((b) => b.errors) },
          ]}
        />
      )}
      <h2>Routes</h2>
      {routes.length === 0 ? (
        <p className="muted">No instance in this namespace has a web endpoint route.</p>
      ) : (
        <ul>
          {routes.map((i) => (
            <li key={i.metadata.name}>
              <Link to={`/instances/${i.metadata.name}`}>{i.metadata.name}</Link>: {i.status?.webEndpoint?.url}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function GatewayForm({ current, onSaved }: { current: GatewayConfigResponse; onSaved: () => void }) {
  const init = (): GatewayRequest => ({
    enabled: current.enabled,
    gatewayClassName: current.gatewayClassName ?? "",
    name: current.name ?? "",
    baseDomain: current.baseDomain ?? "",
    tlsEnabled: current.tlsEnabled,
    certManagerClusterIssuer: current.certManagerClusterIssuer ?? "",
    tlsSecretName: current.tlsSecretName ?? "",
  });
  const [form, setForm] = useState<GatewayRequest>(init);
  const [error, setError] = useState<string>();
  const [saved, setSaved] = useState(false);
  const exists = !!(current.gatewayClassName || current.name || current.enabled);
  useEffect(() => {
    setSaved(false);
  }, [form]);
  const text = (k: keyof GatewayRequest, label: string) => (
    <label>
      {label}
      <input value={String(form[k] ?? "")} onChange={(e) => setForm({ ...form, [k]: e.target.value })} />
    </label>
  );
  return (
    <form
      className="card grid-form"
      aria-label="Gateway configuration"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(undefined);
        try {
          await api(exists ? "PATCH" : "POST", "/api/v1/gateway", form);
          setSaved(true);
          onSaved();
        } catch (err) {
          setError(errorText(err));
        }
      }}
    >
      <label className="check">
        <input type="checkbox" checked={!!form.enabled} onChange={(e) => setForm({ ...form, enabled: e.target.checked })} />
        Gateway enabled
      </label>
      {text("gatewayClassName", "Gateway class")}
      {text("name", "Gateway name")}
      {text("baseDomain", "Base domain")}
      <label className="check">
        <input type="checkbox" checked={!!form.tlsEnabled} onChange={(e) => setForm({ ...form, tlsEnabled: e.target.checked })} />
        TLS
      </label>
      {text("certManagerClusterIssuer", "cert-manager ClusterIssuer")}
      {text("tlsSecretName", "TLS Secret")}
      <button type="submit">Save gateway</button>
      {saved && <p role="status">Saved.</p>}
      <ErrorLine error={error} />
    </form>
  );
}
