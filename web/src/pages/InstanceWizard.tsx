// The create-instance wizard: name and provider (including inference servers the node probe
// found on the cluster's nodes, which pins the agent to that node) → credentials → model,
// picked from the provider's live list → confirm. Each step is a fieldset; Back/Next move.
import { useEffect, useState } from "react";
import { api, ApiError } from "../api/client";
import type { CreateInstanceRequest, ModelsResponse, ProviderNode, SympoziumInstance } from "../api/types.gen";
import { ErrorLine, errorText } from "../components/ui";
import { useApi } from "../hooks";

const providers = ["openai", "anthropic", "azure-openai", "ollama", "lm-studio", "bedrock", "custom"];
/** Where each provider's models are listed when no base URL is given. */
const defaultBase: Record<string, string> = {
  openai: "https://api.openai.com/v1",
  ollama: "http://ollama.default.svc:11434",
  "lm-studio": "http://localhost:1234/v1",
};
const steps = ["Provider", "Credentials", "Model", "Confirm"] as const;

interface Aws {
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
}

export function InstanceWizard({ onCreated }: { onCreated: (name: string) => void }) {
  const [step, setStep] = useState(0);
  const [form, setForm] = useState<CreateInstanceRequest>({ name: "", provider: "openai", model: "" });
  const [aws, setAws] = useState<Aws>({ region: "us-east-1", accessKeyId: "", secretAccessKey: "", sessionToken: "" });
  const [pinned, setPinned] = useState<string>();
  const [error, setError] = useState<{ message: string; field?: string }>();
  const nodes = useApi<ProviderNode[]>("/api/v1/providers/nodes", 0);
  const set = (k: keyof CreateInstanceRequest) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) =>
    setForm({ ...form, [k]: e.target.value });
  const bedrock = form.provider === "bedrock";
  const found = (nodes.data ?? []).flatMap((n) => n.providers.map((p) => ({ node: n, p })));

  const pick = (node: ProviderNode, name: string, port: number) => {
    const base = `http://${node.nodeIP}:${port}${name === "ollama" ? "" : "/v1"}`;
    setForm({ ...form, provider: name, baseURL: base, nodeSelector: { "kubernetes.io/hostname": node.nodeName } });
    setPinned(`${name} on ${node.nodeName}`);
  };

  const canNext = [
    !!form.name && !!form.provider,
    bedrock ? !!form.secretName : true,
    !!form.model,
    true,
  ][step];

  return (
    <form
      className="card wizard"
      aria-label="New instance"
      onSubmit={async (e) => {
        e.preventDefault();
        if (step < steps.length - 1) {
          if (canNext) setStep(step + 1);
          return;
        }
        setError(undefined);
        try {
          const created = await api<SympoziumInstance>("POST", "/api/v1/instances", form);
          onCreated(created.metadata.name ?? "");
        } catch (err) {
          setError(err instanceof ApiError ? { message: err.message, field: err.field } : { message: String(err) });
        }
      }}
    >
      <ol className="steps" aria-label="Steps">
        {steps.map((s, i) => (
          <li key={s} aria-current={i === step ? "step" : undefined}>
            {i + 1}. {s}
          </li>
        ))}
      </ol>
      {step === 0 && (
        <fieldset className="grid-form">
          <legend>Name and provider</legend>
          <label>
            Name
            <input value={form.name ?? ""} onChange={set("name")} required pattern="[a-z0-9]([-a-z0-9]*[a-z0-9])?" />
          </label>
          <label>
            Provider
            <select
              value={form.provider ?? ""}
              onChange={(e) => {
                setPinned(undefined);
                setForm({ ...form, provider: e.target.value, baseURL: "", nodeSelector: undefined });
              }}
            >
              {providers.map((p) => (
                <option key={p}>{p}</option>
              ))}
            </select>
          </label>
          <div className="wide" role="group" aria-label="Found on your nodes">
            <p className="muted">
              {found.length
                ? "Inference servers the node probe found (the agent then runs on that node):"
                : "No inference servers found on the cluster's nodes."}
            </p>
            {found.map(({ node, p }) => (
              <button
                type="button"
                key={`${node.nodeName}/${p.name}`}
                aria-pressed={pinned === `${p.name} on ${node.nodeName}`}
                onClick={() => pick(node, p.name, p.proxyPort ?? p.port)}
              >
                {`Use ${p.name} on ${node.nodeName}`} ({p.models.length} models)
              </button>
            ))}
          </div>
        </fieldset>
      )}
      {step === 1 && (
        <fieldset className="grid-form">
          <legend>Credentials</legend>
          {!bedrock && (
            <>
              <label>
                Base URL (optional)
                <input value={form.baseURL ?? ""} onChange={set("baseURL")} placeholder={defaultBase[form.provider ?? ""] ?? ""} />
              </label>
              <label>
                API key (stored in a Secret)
                <input type="password" value={form.apiKey ?? ""} onChange={set("apiKey")} autoComplete="off" />
              </label>
            </>
          )}
          {bedrock && (
            <>
              <label>
                AWS region
                <input value={aws.region} onChange={(e) => setAws({ ...aws, region: e.target.value })} />
              </label>
              <label>
                AWS access key id (to list models)
                <input value={aws.accessKeyId} onChange={(e) => setAws({ ...aws, accessKeyId: e.target.value })} autoComplete="off" />
              </label>
              <label>
                AWS secret access key (to list models)
                <input type="password" value={aws.secretAccessKey} onChange={(e) => setAws({ ...aws, secretAccessKey: e.target.value })} autoComplete="off" />
              </label>
              <label>
                AWS session token (optional)
                <input type="password" value={aws.sessionToken} onChange={(e) => setAws({ ...aws, sessionToken: e.target.value })} autoComplete="off" />
              </label>
            </>
          )}
          <label>
            {bedrock ? "Secret with the agent's AWS keys" : "Existing Secret (instead of a key)"}
            <input value={form.secretName ?? ""} onChange={set("secretName")} required={bedrock} />
          </label>
        </fieldset>
      )}
      {step === 2 && <ModelStep form={form} aws={bedrock ? aws : undefined} onModel={(m) => setForm({ ...form, model: m })} />}
      {step === 3 && (
        <fieldset>
          <legend>Confirm</legend>
          <dl className="facts">
            <dt>Name</dt>
            <dd>{form.name}</dd>
            <dt>Provider</dt>
            <dd>{form.provider}</dd>
            <dt>Model</dt>
            <dd>{form.model}</dd>
            <dt>Base URL</dt>
            <dd>{form.baseURL || "—"}</dd>
            <dt>Runs on</dt>
            <dd>{form.nodeSelector?.["kubernetes.io/hostname"] ?? "any node"}</dd>
            <dt>Credentials</dt>
            <dd>{form.apiKey ? "a new Secret with the key" : form.secretName || "none"}</dd>
          </dl>
        </fieldset>
      )}
      {error && (
        <p role="alert" className="error">
          {error.field ? `${error.field}: ` : ""}
          {error.message}
        </p>
      )}
      <p className="form-row">
        {step > 0 && (
          <button type="button" onClick={() => setStep(step - 1)}>
            Back
          </button>
        )}
        <button type="submit" disabled={!canNext}>
          {step < steps.length - 1 ? "Next" : "Create"}
        </button>
      </p>
    </form>
  );
}

/** The model step: the provider's live model list (or a typed name when it cannot be had). */
function ModelStep({ form, aws, onModel }: { form: CreateInstanceRequest; aws?: Aws; onModel: (m: string) => void }) {
  const [models, setModels] = useState<string[]>();
  const [error, setError] = useState<string>();
  const [loading, setLoading] = useState(false);
  const base = form.baseURL || defaultBase[form.provider ?? ""] || "";
  const load = async () => {
    setLoading(true);
    setError(undefined);
    try {
      let r: ModelsResponse;
      if (aws) {
        r = await api<ModelsResponse>("POST", "/api/v1/providers/bedrock/models", {
          region: aws.region,
          accessKeyId: aws.accessKeyId,
          secretAccessKey: aws.secretAccessKey,
          sessionToken: aws.sessionToken || undefined,
        });
      } else {
        const q = new URLSearchParams({ baseURL: base, provider: form.provider ?? "" });
        r = await api<ModelsResponse>("GET", `/api/v1/providers/models?${q}`, undefined, form.apiKey ? { "X-Provider-Api-Key": form.apiKey } : undefined);
      }
      setModels(r.models);
      if (!form.model && r.models.length) onModel(r.models[0]);
    } catch (e) {
      setError(`The model list could not be loaded (${errorText(e)}); type the model's name instead.`);
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    if (aws ? aws.accessKeyId && aws.secretAccessKey : base) void load();
    // Loaded once on entering the step; "Reload" asks again.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  return (
    <fieldset className="grid-form">
      <legend>Model</legend>
      {models && models.length > 0 && (
        <label>
          Live models ({models.length})
          <select value={form.model ?? ""} onChange={(e) => onModel(e.target.value)}>
            {!models.includes(form.model ?? "") && <option value={form.model ?? ""}>{form.model || "—"}</option>}
            {models.map((m) => (
              <option key={m}>{m}</option>
            ))}
          </select>
        </label>
      )}
      <label>
        Model
        <input value={form.model ?? ""} onChange={(e) => onModel(e.target.value)} required />
      </label>
      <p>
        <button type="button" onClick={() => void load()} disabled={loading}>
          {loading ? "Loading…" : "Reload the model list"}
        </button>
      </p>
      {models && models.length === 0 && <p className="muted">The provider lists no models.</p>}
      <ErrorLine error={error} />
    </fieldset>
  );
}
