import { useState } from "react";
import { checkToken, TOKEN_KEY } from "../api/client";

export function Login({ onLogin }: { onLogin: () => void }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  return (
    <main className="login">
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(undefined);
          try {
            if (await checkToken(value.trim())) {
              localStorage.setItem(TOKEN_KEY, value.trim());
              onLogin();
            } else {
              setError("That token was not accepted.");
            }
          } catch (err) {
            setError(`Cannot reach the API server: ${String(err)}`);
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1>Sympozium</h1>
        <p className="muted">
          Paste the UI token (<code>sympozium serve</code> prints it).
        </p>
        <label htmlFor="token">Token</label>
        <input id="token" type="password" autoComplete="current-password" value={value} onChange={(e) => setValue(e.target.value)} required autoFocus />
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy || !value.trim()}>
          Log in
        </button>
      </form>
    </main>
  );
}
