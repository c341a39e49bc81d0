import type { SympoziumPolicy } from "../api/types.gen";
import { ErrorLine, Raw } from "../components/ui";
import { useApi } from "../hooks";

export function Policies() {
  const list = useApi<SympoziumPolicy[]>("/api/v1/policies");
  return (
    <section aria-labelledby="pol-title">
      <h1 id="pol-title">Policies</h1>
      <ErrorLine error={list.error} />
      {list.data?.length === 0 && <p className="muted">No policies.</p>}
      <div className="cards">
        {(list.data ?? []).map((p) => {
          const s = p.spec;
          const rules = s.toolGating?.rules ?? [];
          return (
            <article key={`${p.metadata.namespace}/${p.metadata.name}`} className="card" aria-labelledby={`pol-${p.metadata.name}`}>
              <h2 id={`pol-${p.metadata.name}`}>{p.metadata.name}</h2>
              <p className="muted">namespace {p.metadata.namespace} · bound to {p.status?.boundInstances ?? 0} instance(s)</p>
              <dl className="facts">
                <dt>Tool gating</dt>
                <dd>
                  {s.toolGating ? `default ${s.toolGating.defaultAction ?? "allow"}` : "—"}
                  {rules.length > 0 && (
                    <ul>
                      {rules.map((r) => (
                        <li key={r.tool}>
                          {r.tool}: {r.action}
                        </li>
                      ))}
                    </ul>
                  )}
                </dd>
                <dt>Sandbox</dt>
                <dd>{s.sandboxPolicy ? JSON.stringify(s.sandboxPolicy) : "—"}</dd>
                <dt>Network</dt>
                <dd>{s.networkPolicy ? JSON.stringify(s.networkPolicy) : "—"}</dd>
              </dl>
              <Raw value={s} label="Spec" />
            </article>
          );
        })}
      </div>
    </section>
  );
}
