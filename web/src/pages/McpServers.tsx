import { useState } from "react";
import { api } from "../api/client";
import type { CreateMcpServerRequest, MCPServer } from "../api/types.gen";
import { DeleteButton, ErrorLine, errorText, Raw } from "../components/ui";
import { useApi } from "../hooks";
import { Link, navigate } from "../router";

export function McpServers() {
  const list = useApi<MCPServer[]>("/api/v1/mcpservers");
  return (
    <section aria-labelledby="mcp-title">
      <h1 id="mcp-title">MCP servers</h1>
      <NewMcpServer onCreated={list.reload} />
      <ErrorLine error={list.error} />
      {list.data?.length === 0 ? (
        <p className="muted">No MCP servers.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Transport</th>
              <th>Prefix</th>
              <th>Ready</th>
              <th>Tools</th>
              <th>
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {(list.data ?? []).map((m) => (
              <tr key={`${m.metadata.namespace}/${m.metadata.name}`}>
                <td>
                  <Link to={`/mcp-servers/${m.metadata.name}`}>{m.metadata.name}</Link>
                </td>
                <td>{m.spec.transportType}</td>
                <td>{m.spec.toolsPrefix}</td>
                <td>{m.status?.ready ? "yes" : "no"}</td>
                <td>{m.status?.toolCount ?? m.status?.tools?.length ?? 0}</td>
                <td>
                  <DeleteButton path={`/api/v1/mcpservers/${m.metadata.name}`} label={m.metadata.name ?? ""} onDone={list.reload} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function NewMcpServer({ onCreated }: { onCreated: () => void }) {
  const empty: CreateMcpServerRequest = { name: "", transportType: "http", toolsPrefix: "", url: "" };
  const [form, setForm] = useState<CreateMcpServerRequest>(empty);
  const [error, setError] = useState<string>();
  const set = (k: keyof CreateMcpServerRequest) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) =>
    setForm({ ...form, [k]: e.target.value });
  return (
    <form
      className="card grid-form"
      aria-label="New MCP server"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(undefined);
        const body = { ...form, url: form.url || undefined, image: form.image || undefined };
        try {
          await api("POST", "/api/v1/mcpservers", body);
          setForm(empty);
          onCreated();
        } catch (err) {
          setError(errorText(err));
        }
      }}
    >
      <label>
        Name
        <input value={form.name ?? ""} onChange={set("name")} required />
      </label>
      <label>
        Transport
        <select value={form.transportType ?? ""} onChange={set("transportType")}>
          <option>http</option>
          <option>stdio</option>
        </select>
      </label>
      <label>
        Tools prefix
        <input value={form.toolsPrefix ?? ""} onChange={set("toolsPrefix")} required />
      </label>
      <label>
        URL (http)
        <input value={form.url ?? ""} onChange={set("url")} />
      </label>
      <label>
        Image (stdio)
        <input value={form.image ?? ""} onChange={set("image")} />
      </label>
      <button type="submit">Create MCP server</button>
      <ErrorLine error={error} />
    </form>
  );
}

export function McpServerDetail({ name }: { name: string }) {
  const m = useApi<MCPServer>(`/api/v1/mcpservers/${encodeURIComponent(name)}`);
  const [tab, setTab] = useState<"overview" | "tools" | "config">("overview");
  if (m.error && !m.data) return <ErrorLine error={m.error} />;
  const s = m.data;
  if (!s) return <p>Loading…</p>;
  return (
    <section aria-labelledby="mcp-detail-title">
      <p>
        <Link to="/mcp-servers">← MCP servers</Link>
      </p>
      <h1 id="mcp-detail-title">{name}</h1>
      <div role="tablist" aria-label="MCP server" className="tabs">
        {(["overview", "tools", "config"] as const).map((t) => (
          <button key={t} role="tab" aria-selected={tab === t} onClick={() => setTab(t)}>
            {{ overview: "Overview", tools: "Tools", config: "Configuration" }[t]}
          </button>
        ))}
      </div>
      <div role="tabpanel" className="card">
        {tab === "overview" && (
          <dl className="facts">
            <dt>Transport</dt>
            <dd>{s.spec.transportType}</dd>
            <dt>URL</dt>
            <dd>{s.status?.url ?? s.spec.url ?? "—"}</dd>
            <dt>Ready</dt>
            <dd>{s.status?.ready ? "yes" : "no"}</dd>
            <dt>Last error</dt>
            <dd>{s.status?.lastError ?? "—"}</dd>
          </dl>
        )}
        {tab === "tools" &&
          ((s.status?.tools ?? []).length ? (
            <ul>
              {(s.status?.tools ?? []).map((t) => (
                <li key={t}>
                  <code>{t}</code>
                </li>
              ))}
            </ul>
          ) : (
            <p className="muted">No tools discovered yet.</p>
          ))}
        {tab === "config" && (
          <>
            <dl className="facts">
              <dt>Allowed tools</dt>
              <dd>{(s.spec.toolsAllow ?? []).join(", ") || "all"}</dd>
              <dt>Denied tools</dt>
              <dd>{(s.spec.toolsDeny ?? []).join(", ") || "none"}</dd>
              <dt>Secrets</dt>
              <dd>{(s.spec.deployment?.secretRefs ?? []).map((r) => r.name).join(", ") || "—"}</dd>
            </dl>
            <Raw value={s.spec} label="Spec" />
          </>
        )}
      </div>
      <DeleteButton path={`/api/v1/mcpservers/${name}`} label={name} onDone={() => navigate("/mcp-servers")} />
    </section>
  );
}
