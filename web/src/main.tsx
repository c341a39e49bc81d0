import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { NAMESPACE_KEY, namespace, onUnauthorized, token, TOKEN_KEY } from "./api/client";
import { useApi } from "./hooks";
import { Dashboard } from "./pages/Dashboard";
import { InstanceDetail, Instances } from "./pages/Instances";
import { Login } from "./pages/Login";
import { Personas } from "./pages/Personas";
import { Policies } from "./pages/Policies";
import { Skills } from "./pages/Skills";
import { Schedules } from "./pages/Schedules";
import { McpServerDetail, McpServers } from "./pages/McpServers";
import { Gateway } from "./pages/Gateway";
import { Feed } from "./components/Feed";
import { RunDetail, Runs } from "./pages/Runs";
import { Link, navigate, usePath } from "./router";
import "./styles.css";

function App() {
  const [loggedIn, setLoggedIn] = useState(!!token());
  const [ns, setNs] = useState(namespace());
  useEffect(() => onUnauthorized(() => setLoggedIn(false)), []);
  if (!loggedIn) return <Login onLogin={() => setLoggedIn(true)} />;
  return (
    <Shell
      ns={ns}
      onNamespace={(n) => {
        localStorage.setItem(NAMESPACE_KEY, n);
        setNs(n);
      }}
      onLogout={() => {
        localStorage.removeItem(TOKEN_KEY);
        setLoggedIn(false);
      }}
    />
  );
}

const nav = [
  ["/dashboard", "Dashboard"],
  ["/instances", "Instances"],
  ["/runs", "Runs"],
  ["/personas", "Personas"],
  ["/policies", "Policies"],
  ["/skills", "Skills"],
  ["/schedules", "Schedules"],
  ["/mcp-servers", "MCP servers"],
  ["/gateway", "Gateway"],
] as const;

function Shell({ ns, onNamespace, onLogout }: { ns: string; onNamespace: (n: string) => void; onLogout: () => void }) {
  const path = usePath();
  const namespaces = useApi<string[]>("/api/v1/namespaces", 30000);
  const [feed, setFeed] = useState(() => localStorage.getItem("sympozium_feed") === "open");
  const toggleFeed = (open: boolean) => {
    localStorage.setItem("sympozium_feed", open ? "open" : "closed");
    setFeed(open);
  };
  useEffect(() => {
    if (path === "/" || path === "") navigate("/dashboard");
  }, [path]);
  return (
    <div className="shell">
      <header>
        <span className="brand">Sympozium</span>
        <nav aria-label="Main">
          {nav.map(([to, label]) => (
            <Link key={to} to={to} className={path.startsWith(to) ? "active" : ""}>
              {label}
            </Link>
          ))}
        </nav>
        <label className="ns">
          Namespace
          <select value={ns} onChange={(e) => onNamespace(e.target.value)}>
            {[...new Set([ns, ...(namespaces.data ?? [])])].map((n) => (
              <option key={n}>{n}</option>
            ))}
          </select>
        </label>
        <button onClick={() => toggleFeed(!feed)} aria-expanded={feed}>
          Feed
        </button>
        <button onClick={onLogout}>Log out</button>
      </header>
      {/* Keyed by namespace: every page refetches for the namespace chosen. */}
      <div className={feed ? "body with-feed" : "body"} key={ns}>
        <main>
          <Page path={path} />
        </main>
        {feed && <Feed onClose={() => toggleFeed(false)} />}
      </div>
    </div>
  );
}

function Page({ path }: { path: string }) {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  switch (parts[0]) {
    case "instances":
      return parts[1] ? <InstanceDetail name={parts[1]} /> : <Instances />;
    case "runs":
      return parts[1] ? <RunDetail name={parts[1]} /> : <Runs />;
    case "personas":
      return <Personas />;
    case "policies":
      return <Policies />;
    case "skills":
      return <Skills />;
    case "schedules":
      return <Schedules />;
    case "mcp-servers":
      return parts[1] ? <McpServerDetail name={parts[1]} /> : <McpServers />;
    case "gateway":
      return <Gateway />;
    default:
      return <Dashboard />;
  }
}

const root = document.getElementById("root");
if (root)
  createRoot(root).render(
    <StrictMode>
      <App />
    </StrictMode>,
  );
