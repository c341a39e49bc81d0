import { useCallback, useEffect, useState } from "react";
import { api } from "./api/client";

/** GETs `path` now and every `refreshMs`; `reload` refetches at once. */
export function useApi<T>(path: string | null, refreshMs = 5000) {
  const [data, setData] = useState<T | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => {
    if (!path) return;
    let live = true;
    const load = () =>
      api<T>("GET", path)
        .then((d) => {
          if (live) {
            setData(d);
            setError(undefined);
          }
        })
        .catch((e) => live && setError(String(e.message ?? e)));
    load();
    const id = refreshMs ? window.setInterval(load, refreshMs) : undefined;
    return () => {
      live = false;
      if (id) clearInterval(id);
    };
  }, [path, refreshMs, tick]);
  return { data, error, reload };
}

export function age(ts?: string): string {
  if (!ts) return "";
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(ts)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}
