// Small pieces every list page uses: an error line, a confirmed delete button, raw JSON.
import { useState } from "react";
import { api, ApiError } from "../api/client";

export function ErrorLine({ error }: { error?: string }) {
  return error ? (
    <p role="alert" className="error">
      {error}
    </p>
  ) : null;
}

export function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.field ? `${err.message}` : err.message;
  return String(err);
}

/** Deletes `path` after a second click (the first arms it), then calls `onDone`. */
export function DeleteButton({ path, label, onDone }: { path: string; label: string; onDone: () => void }) {
  const [armed, setArmed] = useState(false);
  const [error, setError] = useState<string>();
  return (
    <>
      <button
        aria-label={armed ? `Confirm delete ${label}` : `Delete ${label}`}
        onClick={async () => {
          if (!armed) return setArmed(true);
          try {
            await api("DELETE", path);
            onDone();
          } catch (e) {
            setError(errorText(e));
          }
          setArmed(false);
        }}
        onBlur={() => setArmed(false)}
      >
        {armed ? "Confirm" : "Delete"}
      </button>
      <ErrorLine error={error} />
    </>
  );
}

export function Raw({ value, label }: { value: unknown; label: string }) {
  return (
    <details>
      <summary>{label}</summary>
      <pre>{JSON.stringify(value, null, 2)}</pre>
    </details>
  );
}
