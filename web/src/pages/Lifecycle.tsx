// The instance's Lifecycle tab: pre-run hooks (init containers before the agent), post-run
// hooks (a follow-up Job after it) and the extra RBAC they need, edited as rows and saved
// with PATCH /api/v1/instances/{name} {lifecycle}, which replaces them all.
import { useState } from "react";
import { api, ApiError } from "../api/client";
import type { SympoziumInstance } from "../api/types.gen";

type Lifecycle = NonNullable<SympoziumInstance["spec"]["agents"]["default"]["lifecycle"]>;
type Hook = NonNullable<Lifecycle["preRun"]>[number];
type Rule = NonNullable<Lifecycle["rbac"]>[number];

interface HookRow {
  name: string;
  image: string;
  command: string;
  timeout: string;
}
interface RuleRow {
  apiGroups: string;
  resources: string;
  verbs: string;
}

const words = (s: string) => s.split(/\s+/).filter(Boolean);
// "" alone stays: it is the core API group.
const list = (s: string) =>
  s
    .split(",")
    .map((x) => x.trim())
    .filter((x, _, all) => x !== "" || all.length === 1);
const hookRow = (h: Hook): HookRow => ({
  name: h.name,
  image: h.image,
  command: [...(h.command ?? []), ...(h.args ?? [])].join(" "),
  timeout: h.timeout ?? "",
});
const toHook = (r: HookRow): Hook => ({
  name: r.name.trim(),
  image: r.image.trim(),
  ...(words(r.command).length ? { command: words(r.command) } : {}),
  ...(r.timeout.trim() ? { timeout: r.timeout.trim() } : {}),
});

export function LifecycleEditor({ name, lifecycle, onSaved }: { name: string; lifecycle?: Lifecycle | null; onSaved: () => void }) {
  const [pre, setPre] = useState<HookRow[]>((lifecycle?.preRun ?? []).map(hookRow));
  const [post, setPost] = useState<HookRow[]>((lifecycle?.postRun ?? []).map(hookRow));
  const [rbac, setRbac] = useState<RuleRow[]>(
    (lifecycle?.rbac ?? []).map((r: Rule) => ({ apiGroups: r.apiGroups.join(", "), resources: r.resources.join(", "), verbs: r.verbs.join(", ") })),
  );
  const [error, setError] = useState<string>();
  const [saved, setSaved] = useState(false);
  return (
    <form
      aria-label="Lifecycle hooks"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(undefined);
        setSaved(false);
        const body = {
          lifecycle: {
            preRun: pre.map(toHook),
            postRun: post.map(toHook),
            rbac: rbac.map((r) => ({ apiGroups: list(r.apiGroups), resources: list(r.resources), verbs: list(r.verbs) })),
          },
        };
        try {
          await api("PATCH", `/api/v1/instances/${encodeURIComponent(name)}`, body);
          setSaved(true);
          onSaved();
        } catch (err) {
          setError(err instanceof ApiError && err.field ? `${err.field}: ${err.message}` : String((err as Error).message ?? err));
        }
      }}
    >
      <HookList title="Pre-run hooks" help="Containers run before the agent starts (init containers)." rows={pre} setRows={setPre} />
      <HookList title="Post-run hooks" help="Containers run in a follow-up Job after the agent finishes." rows={post} setRows={setPost} />
      <fieldset>
        <legend>RBAC for the hooks</legend>
        <p className="muted">Rules bound for the run only (comma-separated; an empty API group is the core group).</p>
        {rbac.map((r, i) => (
          <div className="form-row" key={i} role="group" aria-label={`Rule ${i + 1}`}>
            {(["apiGroups", "resources", "verbs"] as const).map((k) => (
              <label key={k} className="grow">
                {{ apiGroups: "API groups", resources: "Resources", verbs: "Verbs" }[k]}
                <input value={r[k]} onChange={(e) => setRbac(rbac.map((x, j) => (j === i ? { ...x, [k]: e.target.value } : x)))} />
              </label>
            ))}
            <button type="button" onClick={() => setRbac(rbac.filter((_, j) => j !== i))} aria-label={`Remove rule ${i + 1}`}>
              Remove
            </button>
          </div>
        ))}
        <button type="button" onClick={() => setRbac([...rbac, { apiGroups: "", resources: "", verbs: "get, list" }])}>
          Add a rule
        </button>
      </fieldset>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {saved && <p role="status">Saved.</p>}
      <button type="submit">Save hooks</button>
    </form>
  );
}

function HookList({ title, help, rows, setRows }: { title: string; help: string; rows: HookRow[]; setRows: (r: HookRow[]) => void }) {
  const one = title.replace(/s$/, "").toLowerCase();
  return (
    <fieldset>
      <legend>{title}</legend>
      <p className="muted">{help}</p>
      {rows.map((r, i) => (
        <div className="form-row" key={i} role="group" aria-label={`${title} ${i + 1}`}>
          {(["name", "image", "command", "timeout"] as const).map((k) => (
            <label key={k} className={k === "command" ? "grow" : undefined}>
              {{ name: "Name", image: "Image", command: "Command", timeout: "Timeout" }[k]}
              <input
                value={r[k]}
                placeholder={k === "timeout" ? "2m" : undefined}
                required={k === "name" || k === "image"}
                onChange={(e) => setRows(rows.map((x, j) => (j === i ? { ...x, [k]: e.target.value } : x)))}
              />
            </label>
          ))}
          <button type="button" onClick={() => setRows(rows.filter((_, j) => j !== i))} aria-label={`Remove ${one} ${i + 1}`}>
            Remove
          </button>
        </div>
      ))}
      <button type="button" onClick={() => setRows([...rows, { name: "", image: "", command: "", timeout: "" }])}>
        Add a {one}
      </button>
    </fieldset>
  );
}
