// The chat feed: pick a running instance, send a message (a new run), and watch the
// answer stream in over /ws/stream, then settle to the run's result.
import { useEffect, useMemo, useRef, useState } from "react";
import MarkdownIt from "markdown-it";
import { api, stream } from "../api/client";
import type { AgentRun, SympoziumInstance } from "../api/types.gen";
import { useApi } from "../hooks";
import { Link } from "../router";
import { ErrorLine, errorText } from "./ui";

const md = new MarkdownIt({ html: false, linkify: true });
const READY = ["Running", "Ready", "Active"];

interface Turn {
  run: string;
  task: string;
}

export function Feed({ onClose }: { onClose: () => void }) {
  const instances = useApi<SympoziumInstance[]>("/api/v1/instances", 10000);
  const runs = useApi<AgentRun[]>("/api/v1/runs?limit=200", 3000);
  const [instance, setInstance] = useState("");
  const [message, setMessage] = useState("");
  const [turns, setTurns] = useState<Turn[]>([]);
  const [chunks, setChunks] = useState<Record<string, string[]>>({});
  const [error, setError] = useState<string>();
  const end = useRef<HTMLDivElement>(null);
  // Instances reported ready first; others stay choosable (a run wakes them).
  const choices = useMemo(() => {
    const all = instances.data ?? [];
    return [...all.filter((i) => READY.includes(i.status?.phase ?? "")), ...all.filter((i) => !READY.includes(i.status?.phase ?? ""))];
  }, [instances.data]);
  useEffect(() => {
    if (!instance && choices.length) setInstance(choices[0].metadata.name ?? "");
  }, [choices, instance]);
  useEffect(
    () =>
      stream((e) => {
        const run = e.metadata.agentRunID;
        if (!run || typeof e.data.content !== "string") return;
        setChunks((prev) => {
          const list = [...(prev[run] ?? [])];
          list[e.data.index ?? list.length] = e.data.content ?? "";
          return { ...prev, [run]: list };
        });
      }),
    [],
  );
  useEffect(() => {
    end.current?.scrollIntoView?.({ block: "end" });
  }, [turns, chunks]);
  const byName = new Map((runs.data ?? []).map((r) => [r.metadata.name, r]));
  return (
    <aside className="feed" aria-labelledby="feed-title">
      <div className="feed-head">
        <h2 id="feed-title">Feed</h2>
        <button onClick={onClose} aria-label="Close the feed">
          ×
        </button>
      </div>
      <label>
        Chat with
        <select value={instance} onChange={(e) => setInstance(e.target.value)}>
          {choices.map((i) => (
            <option key={i.metadata.name} value={i.metadata.name}>
              {i.metadata.name} ({i.status?.phase ?? "Pending"})
            </option>
          ))}
        </select>
      </label>
      <div className="feed-log" role="log" aria-live="polite" aria-label="Conversation">
        {turns.length === 0 && <p className="muted">Send a message to start a run.</p>}
        {turns.map((t) => {
          const r = byName.get(t.run);
          const text = r?.status?.result || (chunks[t.run] ?? []).join("");
          return (
            <div key={t.run} className="turn">
              <p className="you">{t.task}</p>
              <div className="agent" data-testid={`feed-answer-${t.run}`}>
                {text ? <div className="markdown" dangerouslySetInnerHTML={{ __html: md.render(text) }} /> : <p className="muted">…</p>}
                <small>
                  <Link to={`/runs/${t.run}`}>{t.run}</Link> · {r?.status?.phase ?? "Pending"}
                </small>
              </div>
            </div>
          );
        })}
        <div ref={end} />
      </div>
      <form
        className="feed-send"
        aria-label="Send a message"
        onSubmit={async (e) => {
          e.preventDefault();
          if (!instance || !message.trim()) return;
          setError(undefined);
          try {
            const run = await api<AgentRun>("POST", "/api/v1/runs", { instanceRef: instance, task: message });
            setTurns((t) => [...t, { run: run.metadata.name ?? "", task: message }]);
            setMessage("");
            runs.reload();
          } catch (err) {
            setError(errorText(err));
          }
        }}
      >
        <label className="grow">
          Message
          <textarea
            value={message}
            rows={2}
            onChange={(e) => setMessage(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey) {
                e.preventDefault();
                e.currentTarget.form?.requestSubmit();
              }
            }}
          />
        </label>
        <button type="submit" disabled={!instance}>
          Send
        </button>
        <ErrorLine error={error} />
      </form>
    </aside>
  );
}
