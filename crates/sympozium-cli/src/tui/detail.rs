//! The detail pane: what the selected object is, and for instances the chat with it.

use kube::ResourceExt;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use sympozium_api::resolve;

use super::app::App;
use super::chat;
use super::views::View;

fn kv(key: &str, value: impl Into<String>) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{key}: "), Style::default().fg(Color::DarkGray)),
        Span::raw(value.into()),
    ])
}

fn heading(text: &str) -> Line<'static> {
    Line::from(Span::styled(text.to_string(), Style::default().fg(Color::Cyan).add_modifier(Modifier::BOLD)))
}

fn find<'a, K: kube::Resource>(list: &'a [std::sync::Arc<K>], ns: &str, name: &str) -> Option<&'a K> {
    list.iter().map(AsRef::as_ref).find(|o| o.name_any() == name && o.namespace().as_deref() == Some(ns))
}

/// Title and lines of the detail pane for the selection.
pub fn lines(app: &App) -> (String, Vec<Line<'static>>) {
    let Some(row) = app.selection() else { return ("detail".into(), vec![Line::from("nothing selected")]) };
    let (ns, name) = (row.ns.as_str(), row.name.as_str());
    let mut out = Vec::new();
    match app.view {
        View::Instances | View::Channels => {
            let Some(i) = find(&app.data.instances, ns, name) else { return (name.into(), out) };
            let agent = &i.spec.agents.default;
            let status = i.status.clone().unwrap_or_default();
            out.push(kv("Phase", status.phase.unwrap_or_else(|| "-".into())));
            out.push(kv("Provider", format!("{} / {}", resolve::provider(&i.spec), agent.model)));
            if let Some(url) = agent.base_url.as_ref().filter(|u| !u.is_empty()) {
                out.push(kv("Base URL", url.clone()));
            }
            let skills: Vec<_> = i.spec.skills.iter().filter_map(|s| s.skill_pack_ref.clone()).collect();
            out.push(kv("Skills", if skills.is_empty() { "-".into() } else { skills.join(", ") }));
            let channels: Vec<_> = i
                .spec
                .channels
                .iter()
                .map(|c| {
                    let st = status.channels.iter().find(|s| s.type_ == c.type_.as_str());
                    format!("{} ({})", c.type_.as_str(), st.map(|s| s.status.as_str()).unwrap_or("?"))
                })
                .collect();
            out.push(kv("Channels", if channels.is_empty() { "-".into() } else { channels.join(", ") }));
            out.push(kv("Policy", i.spec.policy_ref.clone().unwrap_or_else(|| "-".into())));
            out.push(kv("Agent pods", status.active_agent_pods.to_string()));
            if let Some(c) = &status.cost {
                out.push(kv("Cost", format!("{} {} ({} priced runs)", c.total, c.currency, c.runs)));
            }
            out.push(Line::from(""));
            out.push(heading("Chat (R to send a message)"));
            let runs = chat::runs_of(&app.data.runs, ns, name);
            let feed = chat::feed(&runs, &app.data);
            if feed.is_empty() {
                out.push(Line::from(Span::styled("no messages yet", Style::default().fg(Color::DarkGray))));
            }
            for turn in feed.iter().rev().take(8).rev() {
                out.push(Line::from(vec![
                    Span::styled("you › ", Style::default().fg(Color::Yellow)),
                    Span::raw(turn.asked.lines().next().unwrap_or_default().to_string()),
                ]));
                let style = if turn.done { Style::default() } else { Style::default().fg(Color::DarkGray) };
                for (n, l) in turn.answer.lines().enumerate() {
                    let prefix = if n == 0 { "agent ‹ " } else { "        " };
                    out.push(Line::from(vec![
                        Span::styled(prefix, Style::default().fg(Color::Green)),
                        Span::styled(l.to_string(), style),
                    ]));
                }
            }
        }
        View::Personas => {
            let Some(p) = find(&app.data.packs, ns, name) else { return (name.into(), out) };
            out.push(Line::from(p.spec.description.clone().unwrap_or_default()));
            out.push(kv(
                "Enabled",
                if p.spec.enabled == Some(true) { "yes" } else { "no (Enter activates)" },
            ));
            if let Some(r) = p.spec.auth_refs.first() {
                out.push(kv(
                    "Provider",
                    format!("{} (Secret {})", r.provider.clone().unwrap_or_default(), r.secret),
                ));
            }
            out.push(Line::from(""));
            out.push(heading("Personas"));
            let installed: Vec<_> =
                p.status.iter().flat_map(|s| s.installed_personas.iter().map(|ip| ip.name.clone())).collect();
            for persona in &p.spec.personas {
                let mark = if installed.contains(&persona.name) { "●" } else { "○" };
                let schedule = persona
                    .schedule
                    .as_ref()
                    .map(|s| s.cron.clone().or(s.interval.clone()).unwrap_or_default())
                    .unwrap_or_default();
                out.push(Line::from(format!(
                    "{mark} {} {} {schedule}",
                    persona.name,
                    persona.model.clone().unwrap_or_default()
                )));
            }
        }
        View::Runs => {
            let Some(r) = find(&app.data.runs, ns, name) else { return (name.into(), out) };
            let status = r.status.clone().unwrap_or_default();
            out.push(kv("Instance", r.spec.instance_ref.clone()));
            out.push(kv("Phase", super::views::runs_phase(r)));
            out.push(kv("Trigger", super::views::runs_trigger(r)));
            out.push(kv("Model", format!("{} / {}", r.spec.model.provider, r.spec.model.model)));
            out.push(kv("Pod", status.pod_name.clone().unwrap_or_else(|| "-".into())));
            if let Some(u) = &status.token_usage {
                out.push(kv("Tokens", format!("{} ({} tool calls)", u.total_tokens, u.tool_calls)));
            }
            if let Some(c) = &status.cost {
                out.push(kv("Cost", format!("{} {} (priced as {})", c.total, c.currency, c.priced_as)));
            }
            out.push(Line::from(""));
            out.push(heading("Task"));
            let task = chat::asked(r);
            out.extend(task.lines().map(|l| Line::from(l.to_string())));
            out.push(Line::from(""));
            out.push(heading("Result"));
            let result =
                status.result.or(status.error.map(|e| format!("[error: {e}]"))).unwrap_or_else(|| "-".into());
            out.extend(result.lines().map(|l| Line::from(l.to_string())));
        }
        View::Policies => {
            let Some(p) = find(&app.data.policies, ns, name) else { return (name.into(), out) };
            if let Some(g) = &p.spec.tool_gating {
                out.push(kv("Tool default", format!("{:?}", g.default_action)));
                for rule in &g.rules {
                    out.push(Line::from(format!("  {} → {:?}", rule.tool, rule.action)));
                }
            }
            out.push(heading("Feature gates"));
            out.extend(super::slash::features(app, ns, name).lines().map(|l| Line::from(l.to_string())));
        }
        View::Skills => {
            let Some(s) = find(&app.data.skills, ns, name) else { return (name.into(), out) };
            for skill in &s.spec.skills {
                out.push(Line::from(format!(
                    "• {} {}",
                    skill.name,
                    skill.description.clone().unwrap_or_default()
                )));
            }
            if let Some(sc) = &s.spec.sidecar {
                out.push(kv("Sidecar", sc.image.clone()));
            }
        }
        View::Schedules => {
            let Some(s) = find(&app.data.schedules, ns, name) else { return (name.into(), out) };
            let status = s.status.clone().unwrap_or_default();
            out.push(kv(
                "Schedule",
                format!("{} ({})", s.spec.schedule, s.spec.time_zone.clone().unwrap_or("UTC".into())),
            ));
            out.push(kv("Last run", status.last_run_name.unwrap_or_else(|| "-".into())));
            out.push(heading("Task"));
            out.extend(s.spec.task.lines().map(|l| Line::from(l.to_string())));
        }
        View::Gateway => {
            let Some(i) = find(&app.data.instances, ns, name) else { return (name.into(), out) };
            let w = i.status.as_ref().and_then(|s| s.web_endpoint.clone()).unwrap_or_default();
            out.push(kv("Status", w.status.clone()));
            out.push(kv("URL", w.url.clone().unwrap_or_else(|| "-".into())));
            out.push(kv("API key Secret", w.auth_secret_name.clone().unwrap_or_else(|| "-".into())));
            out.push(kv("Serving run", format!("{name}-web-endpoint")));
            let routed = w.url.as_deref().is_some_and(|u| !u.contains(".svc"));
            out.push(kv(
                "HTTPRoute",
                if routed {
                    format!("{ns}/{name}-web-endpoint-web")
                } else {
                    "none (cluster Service only)".into()
                },
            ));
            out.push(Line::from(""));
            out.push(heading("Gateway"));
            let (banner, _) = super::views::gateway_banner(super::views::gateway_config(&app.data.configs));
            out.extend(banner.into_iter().map(Line::from));
            out.push(Line::from(""));
            out.push(Line::from(Span::styled(
                format!("sympozium instances endpoint {name} -n {ns} prints the URL and key"),
                Style::default().fg(Color::DarkGray),
            )));
        }
        View::McpServers => {
            let Some(m) = find(&app.data.mcp_servers, ns, name) else { return (name.into(), out) };
            let status = m.status.clone().unwrap_or_default();
            out.push(kv("Transport", super::views::mcp_kind(m)));
            out.push(kv(
                "URL",
                status.url.clone().or_else(|| m.spec.url.clone()).unwrap_or_else(|| "-".into()),
            ));
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
            out.push(kv(
                "Ready",
                format!(
                    "{}{}",
                    if status.ready { "yes" } else { "no" },
                    ready.map(|c| format!(" ({}: {})", c.reason, c.message)).unwrap_or_default()
                ),
            ));
            out.push(kv("Prefix", format!("{}_", m.spec.tools_prefix)));
            out.push(kv("Timeout", format!("{}s", m.spec.timeout)));
            if !m.spec.tools_allow.is_empty() {
                out.push(kv("Allow", m.spec.tools_allow.join(", ")));
            }
            if !m.spec.tools_deny.is_empty() {
                out.push(kv("Deny", m.spec.tools_deny.join(", ")));
            }
            if let Some(e) = &status.last_error {
                out.push(Line::from(Span::styled(
                    format!("Last error: {e}"),
                    Style::default().fg(Color::Red),
                )));
            }
            out.push(Line::from(""));
            match status.tool_count {
                None => out.push(heading("Tools: not discovered yet")),
                Some(n) => {
                    out.push(heading(&format!("Tools ({n}), as agents call them")));
                    for t in &status.tools {
                        out.push(Line::from(format!("• {}_{t}", m.spec.tools_prefix)));
                    }
                }
            }
        }
        View::Pods => {
            let Some(p) = find(&app.data.pods, ns, name) else { return (name.into(), out) };
            for c in p.status.iter().flat_map(|s| s.container_statuses.iter().flatten()) {
                let state = c.state.as_ref().map(|s| {
                    if s.running.is_some() {
                        "running".to_string()
                    } else if let Some(t) = &s.terminated {
                        format!("terminated ({})", t.exit_code)
                    } else {
                        "waiting".to_string()
                    }
                });
                out.push(kv(&c.name, state.unwrap_or_default()));
            }
            out.push(Line::from(Span::styled("l shows the logs", Style::default().fg(Color::DarkGray))));
        }
    }
    (format!("{ns}/{name}"), out)
}
