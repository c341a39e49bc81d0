import { useState } from "react";
import { api, ApiError } from "../api/client";
import type { InstallDefaultsResponse, PatchPersonaPackRequest, PersonaPack } from "../api/types.gen";
import { useApi } from "../hooks";

export function Personas() {
  const packs = useApi<PersonaPack[]>("/api/v1/personapacks");
  const [notice, setNotice] = useState<string>();
  const [activating, setActivating] = useState<string>();
  return (
    <section aria-labelledby="personas-title">
      <h1 id="personas-title">Persona packs</h1>
      <button
        onClick={async () => {
          const r = await api<InstallDefaultsResponse>("POST", "/api/v1/personapacks/install-defaults");
          setNotice(`Copied ${r.copied.length} pack(s); ${r.alreadyPresent.length} already here.`);
          packs.reload();
        }}
      >
        Install default packs
      </button>
      {notice && <p role="status">{notice}</p>}
      {packs.error && <p role="alert" className="error">{packs.error}</p>}
      <div className="cards">
        {(packs.data ?? []).map((p) => (
          <article key={p.metadata.name} className="card" aria-labelledby={`pack-${p.metadata.name}`}>
            <h2 id={`pack-${p.metadata.name}`}>{p.metadata.name}</h2>
            <p className="muted">{p.spec.description}</p>
            <p>
              {p.spec.personas.length} personas · {p.spec.enabled ? `enabled (${p.status?.installedCount ?? 0} installed)` : "disabled"}
            </p>
            <ul>
              {p.spec.personas.map((x) => (
                <li key={x.name}>{x.displayName ?? x.name}</li>
              ))}
            </ul>
            {p.spec.enabled ? (
              <button
                onClick={async () => {
                  await api("PATCH", `/api/v1/personapacks/${p.metadata.name}`, { enabled: false });
                  packs.reload();
                }}
              >
                Disable
              </button>
            ) : (
              <button onClick={() => setActivating(p.metadata.name)}>Activate…</button>
            )}
            {activating === p.metadata.name && (
              <Activate
                pack={p}
                onDone={() => {
                  setActivating(undefined);
                  packs.reload();
                }}
              />
            )}
          </article>
        ))}
      </div>
    </section>
  );
}

function Activate({ pack, onDone }: { pack: PersonaPack; onDone: () => void }) {
  const [form, setForm] = useState<PatchPersonaPackRequest>({ enabled: true, provider: "openai", model: "gpt-4o" });
  const [error, setError] = useState<string>();
  const set = (k: keyof PatchPersonaPackRequest) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) =>
    setForm({ ...form, [k]: e.target.value });
  return (
    <form
      className="grid-form"
      aria-label={`Activate ${pack.metadata.name}`}
      onSubmit={async (e) => {
        e.preventDefault();
        try {
          await api("PATCH", `/api/v1/personapacks/${pack.metadata.name}`, form);
          onDone();
        } catch (err) {
          setError(err instanceof ApiError ? err.message : String(err));
        }
      }}
    >
      <label>
        Provider
        <select value={form.provider ?? ""} onChange={set("provider")}>
          {["openai", "anthropic", "azure-openai", "ollama", "lm-studio", "custom"].map((p) => (
            <option key={p}>{p}</option>
          ))}
        </select>
      </label>
      <label>
        Model
        <input value={form.model ?? ""} onChange={set("model")} required />
      </label>
      <label>
        Base URL (optional)
        <input value={form.baseURL ?? ""} onChange={set("baseURL")} />
      </label>
      <label>
        API key
        <input type="password" value={form.apiKey ?? ""} onChange={set("apiKey")} autoComplete="off" />
      </label>
      {error && <p role="alert" className="error">{error}</p>}
      <button type="submit">Activate</button>
    </form>
  );
}
