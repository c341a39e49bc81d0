// The dashboard's one door to the API: the token and namespace from localStorage, JSON
// errors turned into messages, network errors retried twice.

export const TOKEN_KEY = "sympozium_token";
export const NAMESPACE_KEY = "sympozium_namespace";

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    public field?: string,
  ) {
    super(message);
  }
}

export function token(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

export function namespace(): string {
  return localStorage.getItem(NAMESPACE_KEY) || "default";
}

type Listener = () => void;
const unauthorizedListeners: Listener[] = [];
/** Calls `l` when the API refuses the token; returns the unsubscribe function. */
export function onUnauthorized(l: Listener): () => void {
  unauthorizedListeners.push(l);
  return () => {
    const i = unauthorizedListeners.indexOf(l);
    if (i >= 0) unauthorizedListeners.splice(i, 1);
  };
}

function withNamespace(path: string): string {
  const sep = path.includes("?") ? "&" : "?";
  return `${path}${sep}namespace=${encodeURIComponent(namespace())}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function api<T>(method: string, path: string, body?: unknown, extraHeaders?: Record<string, string>): Promise<T> {
  const headers: Record<string, string> = { ...extraHeaders, Authorization: `Bearer ${token() ?? ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let lastError: unknown;
  for (const delay of [0, 1000, 2000]) {
    if (delay) await sleep(delay);
    let res: Response;
    try {
      res = await fetch(withNamespace(path), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      lastError = e;
      continue;
    }
    if (res.status === 401) {
      localStorage.removeItem(TOKEN_KEY);
      unauthorizedListeners.forEach((l) => l());
      throw new ApiError(401, "The token was not accepted.");
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    const json = text ? JSON.parse(text) : undefined;
    if (!res.ok) {
      throw new ApiError(res.status, json?.error ?? `HTTP ${res.status}`, json?.field);
    }
    return json as T;
  }
  throw new ApiError(0, `Network error: ${String(lastError)}`);
}

/** Checks a token without storing it. */
export async function checkToken(candidate: string): Promise<boolean> {
  const res = await fetch("/api/v1/namespaces", { headers: { Authorization: `Bearer ${candidate}` } });
  return res.ok;
}

/** The live stream of run output (`agent.stream.chunk` envelopes), reconnecting every 3 s. */
export function stream(onEnvelope: (e: StreamEnvelope) => void, run?: string): () => void {
  let ws: WebSocket | null = null;
  let closed = false;
  let timer: number | undefined;
  const open = () => {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const params = new URLSearchParams({ token: token() ?? "", namespace: namespace() });
    if (run) params.set("run", run);
    ws = new WebSocket(`${proto}://${location.host}/ws/stream?${params}`);
    ws.onmessage = (m) => {
      try {
        onEnvelope(JSON.parse(m.data));
      } catch {
        /* not an envelope */
      }
    };
    ws.onclose = () => {
      if (!closed) timer = window.setTimeout(open, 3000);
    };
  };
  open();
  return () => {
    closed = true;
    if (timer) clearTimeout(timer);
    ws?.close();
  };
}

export interface StreamEnvelope {
  topic: string;
  timestamp: string;
  metadata: Record<string, string>;
  data: { content?: string; index?: number; type?: string };
}
