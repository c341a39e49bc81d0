import { useEffect, useMemo, useState } from "react";
import MarkdownIt from "markdown-it";
import { api, ApiError, stream } from "../api/client";
import type { AgentRun, CreateRunRequest, SympoziumInstance } from "../api/types.gen";
import { age, useApi } from "../hooks";
import { Link, navigate } from "../router";

// html: false — an agent's answer is untrusted; markdown-it escapes any HTML in it.
const md = new MarkdownIt({ html: false, linkify: true });

export function Phase({ phase }: { phase?: string | null }) {
  const p = phase || "Pending";
  return <span className={`phase phase-${p.toLowerCase()}`}>{p}</span>;
}

export function RunsTable({ runs }: { runs: AgentRun[] }) {
  return (
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
        {runs.map((r) => (
          <tr key={r.metadata.name}>
            <td>
              <Link to={`/runs/${r.metadata.name}`}>{r.metadata.name}</Link>
            </td>
            <td>
              <Link to={`/instances/${r.spec.instanceRef}`}>{r.spec.instanceRef}</Link>
            </td>
            <td>
              <Phase phase={r.status?.phase} />
            </td>
            <td>{r.status?.tokenUsage?.totalTokens ?? ""}</td>
            <td>{age(r.metadata.creationTimestamp)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function Runs() {
  const runs = useApi<AgentRun[]>("/api/v1/runs?limit=200");
  return (
    <section aria-labelledby="runs-title">
      <h1 id="runs-title">Runs</h1>
      <NewRun onCreated={(name) => navigate(`/runs/${name}`)} />
      {runs.error && <p role="alert" className="error">{runs.error}</p>}
      {runs.data && runs.data.length === 0 ? <p className="muted">No runs in this namespace.</p> : <RunsTable runs={runs.data ?? []} />}
    </section>
  );
}

export function NewRun({ instance, onCreated }: { instance?: string; onCreated: (name: string) => void }) {
  const instances = useApi<SympoziumInstance[]>(instance ? null : "/api/v1/instances", 0);
  const [form, setForm] = useState<CreateRunRequest>({ instanceRef: instance ?? "", task: "" });
  const [error, setError] = useState<string>();
  return (
    <form
      className="card form-row"
      aria-label="Start a run"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(undefined);
        try {
          const run = await api<AgentRun>("POST", "/api/v1/runs", form);
          setForm({ ...form, task: "" });
          onCreated(run.metadata.name ?? "");
        } catch (err) {
          setError(err instanceof ApiError ? err.message : String(err));
        }
      }}
    >
      {!instance && (
        <label>
          Instance
          <select value={form.instanceRef ?? ""} onChange={(e) => setForm({ ...form, instanceRef: e.target.value })} required>
            <option value="">Choose…</option>
            {(instances.data ?? []).map((i) => (
              <option key={i.metadata.name}>{i.metadata.name}</option>
            ))}
          </select>
        </label>
      )}
      <label className="grow">
        Task
        <input value={form.task ?? ""} onChange={(e) => setForm({ ...form, task: e.target.value })} placeholder="What should the agent do?" required />
      </label>
      <button type="submit">Run</button>
      {error && <p role="alert" className="error">{error}</p>}
    </form>
  );
}

export function RunDetail({ name }: { name: string }) {
  const run = useApi<AgentRun>(`/api/v1/runs/${encodeURIComponent(name)}`, 3000);
  const [tab, setTab] = useState<"result" | "task" | "spec">("result");
  const [live, setLive] = useState<string[]>([]);
  useEffect(() => stream((e) => {
    if (e.metadata.agentRunID !== name || typeof e.data.content !== "string") return;
    const i = e.data.index ?? 0;
    setLive((prev) => {
      const next = [...prev];
      next[i] = e.data.content ?? "";
      return next;
    });
  }, name), [name]);
  const r = run.data;
  const result = r?.status?.result ?? "";
  const html = useMemo(() => md.render(result || live.join("")), [result, live]);
  if (run.error && !r) return <p role="alert" className="error">{run.error}</p>;
  if (!r) return <p>Loading…</p>;
  const u = r.status?.tokenUsage;
  return (
    <section aria-labelledby="run-title">
      <p>
        <Link to="/runs">← Runs</Link>
      </p>
      <h1 id="run-title">
        {name} <Phase phase={r.status?.phase} />
      </h1>
      <dl className="facts">
        <dt>Instance</dt>
        <dd>
          <Link to={`/instances/${r.spec.instanceRef}`}>{r.spec.instanceRef}</Link>
        </dd>
        <dt>Model</dt>
        <dd>
          {r.spec.model.provider}/{r.spec.model.model}
        </dd>
        <dt>Tokens</dt>
        <dd>{u ? `${u.inputTokens} in, ${u.outputTokens} out, ${u.toolCalls} tool calls, ${((u.durationMs ?? 0) / 1000).toFixed(1)} s` : "—"}</dd>
        {r.status?.error && (
          <>
            <dt>Error</dt>
            <dd className="error">{r.status.error}</dd>
          </>
        )}
      </dl>
      <div role="tablist" aria-label="Run" className="tabs">
        {(["result", "task", "spec"] as const).map((t) => (
          <button key={t} role="tab" aria-selected={tab === t} onClick={() => setTab(t)}>
            {t[0].toUpperCase() + t.slice(1)}
          </button>
        ))}
      </div>
      <div role="tabpanel" className="card">
        {tab === "result" &&
          (result || live.length ? (
            <div className="markdown" data-testid="run-result" dangerouslySetInnerHTML={{ __html: html }} />
          ) : (
            <p className="muted">No result yet{r.status?.phase === "Running" ? " — the answer streams in here." : "."}</p>
          ))}
        {tab === "task" && <pre className="wrap">{r.spec.task}</pre>}
        {tab === "spec" && <pre>{JSON.stringify(r.spec, null, 2)}</pre>}
      </div>
    </section>
  );
}
