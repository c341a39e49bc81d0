// The create-instance wizard: name and provider (including inference servers the node probe
// found on the cluster's nodes, which pins the agent to that node) → credentials → model,
// picked from the provider's live list → skills (the cluster's SkillPacks) → channel (its
// type and the Secret holding its token; the token itself never passes through here) →
// heartbeat (a cron schedule and its task, made as a SympoziumSchedule) → confirm. Each step
// is a fieldset; Next checks the step and says which field is wrong; Back goes back.
import { useEffect, useState } from "react";
import { api, ApiError } from "../api/client";
import type { CreateInstanceRequest, ModelsResponse, ProviderNode, SkillPack, SympoziumInstance } from "../api/types.gen";
import { ErrorLine, errorText } from "../components/ui";
import { useApi } from "../hooks";

const providers = ["openai", "anthropic", "azure-openai", "ollama", "lm-studio", "bedrock", "custom"];
/** Where each provider's models are listed when no base URL is given. */
const defaultBase: Record<string, string> = {
  openai: "https://api.openai.com/v1",
  ollama: "http://ollama.default.svc:11434",
  "lm-studio": "http://localhost:1234/v1",
};
const steps = ["Provider", "Credentials", "Model", "Skills", "Channel", "Heartbeat", "Confirm"] as const;
/** Chat channels and the Secret keys their token Secret must hold (WhatsApp pairs by QR code). */
const channelKeys: Record<string, string[]> = {
  telegram: ["TELEGRAM_BOT_TOKEN"],
  slack: ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"],
  discord: ["DISCORD_BOT_TOKEN"],
  whatsapp: [],
};
const heartbeatPresets: [string, string][] = [
  ["0 * * * *", "Hourly"],
  ["*/30 * * * *", "Every 30 minutes"],
  ["0 */6 * * *", "Every 6 hours"],
  ["0 9 * * *", "Daily at 09:00"],
];
const defaultTask =
  "Review your memory and the state of what you look after; summarise anything that changed or needs attention, and store what is worth remembering.";
const namePattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const cronFields: [string, number, number][] = [
  ["minute", 0, 59],
  ["hour", 0, 23],
  ["day-of-month", 1, 31],
  ["month", 1, 12],
  ["day-of-week", 0, 7],
];

/** Why `expr` is not a 5-field cron expression (the API server checks the same). */
export function cronProblem(expr: string): string | undefined {
  const e = expr.trim();
  if (!e) return "is required, e.g. 0 * * * * (hourly)";
  const fields = e.split(/\s+/);
  if (fields.length !== 5) return `"${e}" has ${fields.length} fields; give exactly 5: minute hour day-of-month month day-of-week`;
  for (let i = 0; i < 5; i++) {
    const [name, min, max] = cronFields[i];
    if (!/^[0-9A-Za-z*,/?-]+$/.test(fields[i])) return `${name} field "${fields[i]}" has characters a cron field cannot have`;
    for (const part of fields[i].split(",")) {
      if (!part) return `${name} field "${fields[i]}" has an empty list item`;
      for (const v of part.split("/")[0].split("-")) {
        if (/^\d+$/.test(v) && (Number(v) < min || Number(v) > max)) return `${name} field "${fields[i]}": ${v} is out of range ${min}-${max}`;
      }
    }
  }
  return undefined;
}

function nameProblem(v: string): string | undefined {
  if (!v) return "is required";
  if (v.length > 63 || !namePattern.test(v)) return "use lower-case letters, digits and '-', starting and ending with a letter or digit (at most 63)";
  return undefined;
}

interface Channel {
  type: string;
  secret: string;
}

interface Heartbeat {
  enabled: boolean;
  schedule: string;
  task: string;
}

type Problem = { field: string; message: string } | undefined;

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
  const [skills, setSkills] = useState<string[]>([]);
  const [channel, setChannel] = useState<Channel>({ type: "", secret: "" });
  const [heartbeat, setHeartbeat] = useState<Heartbeat>({ enabled: false, schedule: "0 * * * *", task: defaultTask });
  const [tried, setTried] = useState(false);
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

  /** What is wrong with the current step, naming the field. */
  const problem = ((): Problem => {
    switch (step) {
      case 0: {
        const why = nameProblem(form.name ?? "");
        if (why) return { field: "Name", message: why };
        if (!form.provider) return { field: "Provider", message: "is required" };
        return undefined;
      }
      case 1:
        if (bedrock && !form.secretName) return { field: "Secret with the agent's AWS keys", message: "is required for Bedrock" };
        if (form.secretName && nameProblem(form.secretName)) return { field: "Existing Secret", message: nameProblem(form.secretName)! };
        return undefined;
      case 2:
        return form.model?.trim() ? undefined : { field: "Model", message: "is required" };
      case 4: {
        if (!channel.type) return undefined;
        const keys = channelKeys[channel.type] ?? [];
        if (!channel.secret && keys.length)
          return { field: "Token Secret", message: `is required for ${channel.type}: a Secret in this namespace with ${keys.join(" and ")}` };
        if (channel.secret && nameProblem(channel.secret)) return { field: "Token Secret", message: nameProblem(channel.secret)! };
        return undefined;
      }
      case 5: {
        if (!heartbeat.enabled) return undefined;
        const why = cronProblem(heartbeat.schedule);
        if (why) return { field: "Heartbeat schedule", message: why };
        if (!heartbeat.task.trim()) return { field: "Heartbeat task", message: "is required" };
        return undefined;
      }
      default:
        return undefined;
    }
  })();

  const body = (): CreateInstanceRequest => ({
    ...form,
    skills: skills.length ? skills.map((skillPackRef) => ({ skillPackRef })) : undefined,
    channels: channel.type ? [{ type: channel.type, configRef: { secret: channel.secret } }] : undefined,
    heartbeat: heartbeat.enabled ? { schedule: heartbeat.schedule.trim(), task: heartbeat.task.trim() } : undefined,
  });

  return (
    <form
      className="card wizard"
      aria-label="New instance"
      onSubmit={async (e) => {
        e.preventDefault();
        if (step < steps.length - 1) {
          setTried(true);
          if (!problem) {
            setTried(false);
            setStep(step + 1);
          }
          return;
        }
        setError(undefined);
        try {
          const created = await api<SympoziumInstance>("POST", "/api/v1/instances", body());
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
      {step === 3 && <SkillsStep picked={skills} onChange={setSkills} />}
      {step === 4 && (
        <fieldset className="grid-form">
          <legend>Chat channel</legend>
          <label>
            Channel
            <select value={channel.type} onChange={(e) => setChannel({ ...channel, type: e.target.value })}>
              <option value="">none</option>
              {Object.keys(channelKeys).map((t) => (
                <option key={t}>{t}</option>
              ))}
            </select>
          </label>
          {channel.type && (
            <label>
              Token Secret{(channelKeys[channel.type] ?? []).length ? "" : " (optional)"}
              <input value={channel.secret} onChange={(e) => setChannel({ ...channel, secret: e.target.value })} autoComplete="off" />
            </label>
          )}
          {channel.type && (
            <p className="muted wide">
              {(channelKeys[channel.type] ?? []).length
                ? `The name of a Secret in this namespace holding ${channelKeys[channel.type].join(" and ")}; the token itself is never sent here.`
                : "WhatsApp pairs with a QR code; a Secret is optional."}
            </p>
          )}
        </fieldset>
      )}
      {step === 5 && (
        <fieldset className="grid-form">
          <legend>Heartbeat</legend>
          <label className="wide">
            <input type="checkbox" checked={heartbeat.enabled} onChange={(e) => setHeartbeat({ ...heartbeat, enabled: e.target.checked })} />
            Run a heartbeat
          </label>
          {heartbeat.enabled && (
            <>
              <label>
                Preset
                <select
                  value={heartbeatPresets.some(([c]) => c === heartbeat.schedule) ? heartbeat.schedule : ""}
                  onChange={(e) => e.target.value && setHeartbeat({ ...heartbeat, schedule: e.target.value })}
                >
                  <option value="">custom</option>
                  {heartbeatPresets.map(([c, l]) => (
                    <option key={c} value={c}>
                      {l}
                    </option>
                  ))}
                </select>
              </label>
              <label>
                Schedule (cron)
                <input value={heartbeat.schedule} onChange={(e) => setHeartbeat({ ...heartbeat, schedule: e.target.value })} />
              </label>
              <label className="wide">
                Task
                <textarea rows={3} value={heartbeat.task} onChange={(e) => setHeartbeat({ ...heartbeat, task: e.target.value })} />
              </label>
            </>
          )}
        </fieldset>
      )}
      {step === 6 && (
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
            <dt>Skills</dt>
            <dd>{skills.length ? skills.join(", ") : "none"}</dd>
            <dt>Channel</dt>
            <dd>{channel.type ? `${channel.type}${channel.secret ? `, token in Secret ${channel.secret}` : ""}` : "none"}</dd>
            <dt>Heartbeat</dt>
            <dd>{heartbeat.enabled ? `${heartbeat.schedule.trim()}: ${heartbeat.task.trim()}` : "none"}</dd>
          </dl>
        </fieldset>
      )}
      {tried && problem && (
        <p role="alert" className="error" data-testid="step-problem">
          {problem.field}: {problem.message}
        </p>
      )}
      {error && (
        <p role="alert" className="error">
          {error.field ? `${error.field}: ` : ""}
          {error.message}
        </p>
      )}
      <p className="form-row">
        {step > 0 && (
          <button
            type="button"
            onClick={() => {
              setTried(false);
              setStep(step - 1);
            }}
          >
            Back
          </button>
        )}
        <button type="submit">
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

/** The skills step: the cluster's SkillPacks (one per name), any number of them. */
function SkillsStep({ picked, onChange }: { picked: string[]; onChange: (s: string[]) => void }) {
  const list = useApi<SkillPack[]>("/api/v1/skills", 0);
  const byName = new Map<string, SkillPack[]>();
  for (const p of list.data ?? []) {
    const n = p.metadata.name ?? "";
    if (n && n !== "memory") byName.set(n, [...(byName.get(n) ?? []), p]);
  }
  const names = [...byName.keys()].sort();
  return (
    <fieldset className="grid-form">
      <legend>Skills</legend>
      <p className="muted wide">SkillPacks on the cluster; the memory skill is always added. None is fine.</p>
      <ErrorLine error={list.error && `The SkillPacks could not be listed (${list.error}).`} />
      {list.data && names.length === 0 && <p className="muted wide">The cluster has no SkillPacks.</p>}
      <div className="wide" role="group" aria-label="SkillPacks">
        {names.map((n) => {
          const packs = byName.get(n) ?? [];
          const about = packs[0]?.spec.category ?? packs[0]?.spec.skills.map((s) => s.name).join(", ") ?? "";
          return (
            <label key={n} title={`namespace ${packs.map((p) => p.metadata.namespace).join(", ")}`}>
              <input
                type="checkbox"
                checked={picked.includes(n)}
                onChange={(e) => onChange(e.target.checked ? [...picked, n] : picked.filter((x) => x !== n))}
              />
              {n}
              {about ? <span className="muted"> ({about})</span> : null}
            </label>
          );
        })}
      </div>
    </fieldset>
  );
}
