import { useState } from "react";
import { api } from "../api/client";
import type { CreateScheduleRequest, SympoziumInstance, SympoziumSchedule } from "../api/types.gen";
import { DeleteButton, ErrorLine, errorText } from "../components/ui";
import { age, useApi } from "../hooks";
import { Link } from "../router";

export function Schedules() {
  const list = useApi<SympoziumSchedule[]>("/api/v1/schedules");
  return (
    <section aria-labelledby="sched-title">
      <h1 id="sched-title">Schedules</h1>
      <NewSchedule onCreated={list.reload} />
      <ErrorLine error={list.error} />
      {list.data?.length === 0 ? (
        <p className="muted">No schedules in this namespace.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Instance</th>
              <th>Schedule</th>
              <th>Type</th>
              <th>Next run</th>
              <th>Runs</th>
              <th>
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {(list.data ?? []).map((s) => (
              <tr key={s.metadata.name}>
                <td>{s.metadata.name}</td>
                <td>
                  <Link to={`/instances/${s.spec.instanceRef}`}>{s.spec.instanceRef}</Link>
                </td>
                <td>
                  <code>{s.spec.schedule}</code>
                  {s.spec.suspend ? " (suspended)" : ""}
                </td>
                <td>
                  <span className="phase">{s.spec.type ?? "scheduled"}</span>
                </td>
                <td>{s.status?.nextRunTime ?? "—"}</td>
                <td>
                  {s.status?.totalRuns ?? 0}
                  {s.status?.lastRunTime ? ` (last ${age(s.status.lastRunTime)} ago)` : ""}
                </td>
                <td>
                  <DeleteButton path={`/api/v1/schedules/${s.metadata.name}`} label={s.metadata.name ?? ""} onDone={list.reload} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function NewSchedule({ onCreated }: { onCreated: () => void }) {
  const instances = useApi<SympoziumInstance[]>("/api/v1/instances", 0);
  const empty: CreateScheduleRequest = { instanceRef: "", schedule: "0 * * * *", task: "", type: "scheduled" };
  const [form, setForm] = useState<CreateScheduleRequest>(empty);
  const [error, setError] = useState<string>();
  const set = (k: keyof CreateScheduleRequest) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) =>
    setForm({ ...form, [k]: e.target.value });
  return (
    <form
      className="card grid-form"
      aria-label="New schedule"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(undefined);
        try {
          await api("POST", "/api/v1/schedules", form);
          setForm(empty);
          onCreated();
        } catch (err) {
          setError(errorText(err));
        }
      }}
    >
      <label>
        Instance
        <select value={form.instanceRef ?? ""} onChange={set("instanceRef")} required>
          <option value="">Choose…</option>
          {(instances.data ?? []).map((i) => (
            <option key={i.metadata.name}>{i.metadata.name}</option>
          ))}
        </select>
      </label>
      <label>
        Cron schedule
        <input value={form.schedule ?? ""} onChange={set("schedule")} required />
      </label>
      <label>
        Type
        <select value={form.type ?? ""} onChange={set("type")}>
          {["scheduled", "heartbeat", "sweep"].map((t) => (
            <option key={t}>{t}</option>
          ))}
        </select>
      </label>
      <label>
        Task
        <input value={form.task ?? ""} onChange={set("task")} required />
      </label>
      <button type="submit">Create schedule</button>
      <ErrorLine error={error} />
    </form>
  );
}
