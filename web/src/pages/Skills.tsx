import { useState } from "react";
import { api } from "../api/client";
import type { GithubAuthStatus, SkillPack } from "../api/types.gen";
import { ErrorLine, errorText, Raw } from "../components/ui";
import { useApi } from "../hooks";

export function Skills() {
  const list = useApi<SkillPack[]>("/api/v1/skills");
  return (
    <section aria-labelledby="skills-title">
      <h1 id="skills-title">Skills</h1>
      <GithubToken />
      <ErrorLine error={list.error} />
      {list.data?.length === 0 && <p className="muted">No SkillPacks.</p>}
      <div className="cards">
        {(list.data ?? []).map((p) => {
          const sc = p.spec.sidecar;
          const host = sc?.hostAccess;
          return (
            <article key={`${p.metadata.namespace}/${p.metadata.name}`} className="card" aria-labelledby={`sk-${p.metadata.name}`}>
              <h2 id={`sk-${p.metadata.name}`}>{p.metadata.name}</h2>
              <p className="muted">
                namespace {p.metadata.namespace}
                {p.spec.category ? ` · ${p.spec.category}` : ""}
              </p>
              <ul>
                {p.spec.skills.map((s) => (
                  <li key={s.name}>
                    <strong>{s.name}</strong>
                    {s.description ? ` — ${s.description}` : ""}
                  </li>
                ))}
              </ul>
              <dl className="facts">
                <dt>Sidecar</dt>
                <dd>{sc?.image ?? "—"}</dd>
                <dt>RBAC rules</dt>
                <dd>{(sc?.rbac?.length ?? 0) + (sc?.clusterRBAC?.length ?? 0)}</dd>
                <dt>Host access</dt>
                <dd>{host?.enabled ? `yes${host.privileged ? ", privileged" : ""}${host.hostNetwork ? ", host network" : ""}` : "no"}</dd>
              </dl>
              <Raw value={p.spec} label="Spec" />
            </article>
          );
        })}
      </div>
    </section>
  );
}

function GithubToken() {
  const status = useApi<GithubAuthStatus>("/api/v1/skills/github-gitops/auth/status", 0);
  const [token, setToken] = useState("");
  const [error, setError] = useState<string>();
  return (
    <form
      className="card form-row"
      aria-label="GitHub token"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(undefined);
        try {
          await api("POST", "/api/v1/skills/github-gitops/auth/token", { token });
          setToken("");
          status.reload();
        } catch (err) {
          setError(errorText(err));
        }
      }}
    >
      <label className="grow">
        GitHub token for the github-gitops skill ({status.data?.status === "complete" ? "set" : "not set"})
        <input type="password" value={token} onChange={(e) => setToken(e.target.value)} autoComplete="off" required />
      </label>
      <button type="submit">Save token</button>
      <ErrorLine error={error} />
    </form>
  );
}
