import { useState } from "react";
import { api } from "../api/client";
import type { AgentRun, InstanceMemory, SympoziumInstance, WebEndpointStatusResponse } from "../api/types.gen";
import { ErrorLine, errorText } from "../components/ui";
import { age, useApi } from "../hooks";
import { Link, navigate } from "../router";
import { InstanceWizard } from "./InstanceWizard";
import { LifecycleEditor } from "./Lifecycle";
import { NewRun, RunsTable } from "./Runs";

export function Instances() {
  const list = useApi<SympoziumInstance[]>("/api/v1/instances");
  const [creating, setCreating] = useState(false);
  return (
    <section aria-labelledby="inst-title">
      <h1 id="inst-title">Instances</h1>
      <button onClick={() => setCreating(!creating)} aria-expanded={creating}>
        {creating ? "Cancel" : "New instance"}
      </button>
      {creating && <InstanceWizard onCreated={(n) => navigate(`/instances/${n}`)} />}
      {list.error && <p role="alert" className="error">{list.error}</p>}
      {list.data && list.data.length === 0 ? (
        <p className="muted">No instances in this namespace.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Phase</th>
              <th>Model</th>
              <th>Skills</th>
              <th>Runs</th>
              <th>Age</th>
            </tr>
          </thead>
          <tbody>
            {(list.data ?? []).map((i) => (
              <tr key={i.metadata.name}>
                <td>
                  <Link to={`/instances/${i.metadata.name}`}>{i.metadata.name}</Link>
                </td>
                <td>{i.status?.phase ?? "Pending"}</td>
                <td>{i.spec.agents.default.model}</td>
                <td>{(i.spec.skills ?? []).map((s) => s.skillPackRef).join(", ")}</td>
                <td>{i.status?.totalAgentRuns ?? 0}</td>
                <td>{age(i.metadata.creationTimestamp)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function InstanceDetail({ name }: { name: string }) {
  const inst = useApi<SympoziumInstance>(`/api/v1/instances/${encodeURIComponent(name)}`);
  const runs = useApi<AgentRun[]>("/api/v1/runs?limit=200");
  const web = useApi<WebEndpointStatusResponse>(`/api/v1/instances/${encodeURIComponent(name)}/web-endpoint`, 10000);
  const [tab, setTab] = useState<Tab>("overview");
  const i = inst.data;
  if (inst.error && !i) return <p role="alert" className="error">{inst.error}</p>;
  if (!i) return <p>Loading…</p>;
  const mine = (runs.data ?? []).filter((r) => r.spec.instanceRef === name);
  const a = i.spec.agents.default;
  return (
    <section aria-labelledby="inst-detail-title">
      <p>
        <Link to="/instances">← Instances</Link>
      </p>
      <h1 id="inst-detail-title">{name}</h1>
      <div role="tablist" aria-label="Instance" className="tabs">
        {tabs.map((t) => (
          <button key={t} role="tab" aria-selected={tab === t} onClick={() => setTab(t)}>
            {tabLabels[t]}
          </button>
        ))}
      </div>
      <div role="tabpanel" className="card">
        {tab === "overview" && (
          <dl className="facts">
            <dt>Phase</dt>
            <dd>{i.status?.phase ?? "Pending"}</dd>
            <dt>Model</dt>
            <dd>{a.model}</dd>
            <dt>Base URL</dt>
            <dd>{a.baseURL ?? "—"}</dd>
            <dt>Credentials</dt>
            <dd>{(i.spec.authRefs ?? []).map((r) => `${r.provider ?? ""}: ${r.secret}`).join(", ") || "—"}</dd>
            <dt>Skills</dt>
            <dd>{(i.spec.skills ?? []).map((s) => s.skillPackRef).join(", ") || "—"}</dd>
            <dt>Policy</dt>
            <dd>{i.spec.policyRef ?? "—"}</dd>
            <dt>Memory</dt>
            <dd>{i.spec.memory?.enabled ? `on (${i.spec.memory.maxSizeKB} KB)` : "off"}</dd>
            <dt>Runs</dt>
            <dd>{i.status?.totalAgentRuns ?? 0}</dd>
          </dl>
        )}
        {tab === "runs" && (
          <>
            <NewRun instance={name} onCreated={(n) => navigate(`/runs/${n}`)} />
            <RunsTable runs={mine} />
          </>
        )}
        {tab === "skills" &&
          ((i.spec.skills ?? []).length ? (
            <ul>
              {(i.spec.skills ?? []).map((s) => (
                <li key={s.skillPackRef}>
                  <strong>{s.skillPackRef}</strong>
                  {s.params && Object.keys(s.params).length ? ` — ${Object.entries(s.params).map(([k, v]) => `${k}=${v}`).join(", ")}` : ""}
                </li>
              ))}
            </ul>
          ) : (
            <p className="muted">No skills.</p>
          ))}
        {tab === "channels" &&
          ((i.spec.channels ?? []).length ? (
            <ul>
              {(i.spec.channels ?? []).map((c, n) => (
                <li key={n}>
                  <strong>{c.type}</strong>
                  {c.configRef?.secret ? ` (Secret ${c.configRef.secret})` : ""}
                </li>
              ))}
            </ul>
          ) : (
            <p className="muted">No channels.</p>
          ))}
        {tab === "memory" && <MemoryTab name={name} />}
        {tab === "web" && <WebToggle name={name} enabled={!!web.data?.enabled} onSaved={web.reload} />}
        {tab === "web" && (
          <dl className="facts">
            <dt>Enabled</dt>
            <dd>{web.data?.enabled ? "yes" : "no"}</dd>
            <dt>Gateway ready</dt>
            <dd>{web.data?.gatewayReady ? "yes" : "no"}</dd>
            <dt>URL</dt>
            <dd>{web.data?.routeURL ?? "—"}</dd>
            <dt>Key Secret</dt>
            <dd>{web.data?.authSecretName ?? "—"}</dd>
          </dl>
        )}
        {tab === "lifecycle" && <LifecycleEditor name={name} lifecycle={a.lifecycle} onSaved={inst.reload} />}
        {tab === "yaml" && <pre>{JSON.stringify(i, null, 2)}</pre>}
      </div>
    </section>
  );
}

type Tab = "overview" | "runs" | "skills" | "channels" | "memory" | "web" | "lifecycle" | "yaml";
const tabs: Tab[] = ["overview", "runs", "skills", "channels", "memory", "web", "lifecycle", "yaml"];
const tabLabels: Record<Tab, string> = {
  overview: "Overview",
  runs: "Runs",
  skills: "Skills",
  channels: "Channels",
  memory: "Memory",
  web: "Web endpoint",
  lifecycle: "Lifecycle",
  yaml: "Spec",
};

function MemoryTab({ name }: { name: string }) {
  const [q, setQ] = useState("");
  const [search, setSearch] = useState("");
  const path = `/api/v1/instances/${encodeURIComponent(name)}/memory${search ? `?q=${encodeURIComponent(search)}` : ""}`;
  const mem = useApi<InstanceMemory>(path, 15000);
  return (
    <>
      <form
        className="form-row"
        role="search"
        aria-label="Search memory"
        onSubmit={(e) => {
          e.preventDefault();
          setSearch(q);
        }}
      >
        <label className="grow">
          Search memory
          <input value={q} onChange={(e) => setQ(e.target.value)} />
        </label>
        <button type="submit">Search</button>
      </form>
      <ErrorLine error={mem.error} />
      {mem.data && !mem.data.enabled && <p className="muted">Memory is off for this instance.</p>}
      {mem.data?.enabled && mem.data.entries.length === 0 && <p className="muted">No memories{search ? " match" : " yet"}.</p>}
      <ul className="memories">
        {(mem.data?.entries ?? []).map((e) => (
          <li key={e.id}>
            <p>{e.content}</p>
            <small className="muted">
              #{e.id} · {e.created_at} {e.tags?.length ? `· ${e.tags.join(", ")}` : ""}
            </small>
          </li>
        ))}
      </ul>
    </>
  );
}

function WebToggle({ name, enabled, onSaved }: { name: string; enabled: boolean; onSaved: () => void }) {
  const [error, setError] = useState<string>();
  return (
    <p>
      <button
        onClick={async () => {
          setError(undefined);
          try {
            await api("PATCH", `/api/v1/instances/${encodeURIComponent(name)}`, { webEndpoint: { enabled: !enabled } });
            onSaved();
          } catch (err) {
            setError(errorText(err));
          }
        }}
      >
        {enabled ? "Turn the web endpoint off" : "Turn the web endpoint on"}
      </button>
      <ErrorLine error={error} />
    </p>
  );
}
