//! Slash commands (`/`): navigation and quick edits. Edits are computed here from the
//! watched objects (pure) and queued as actions; the README's TUI section lists them.

use kube::ResourceExt;
use serde_json::json;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::instance::ChannelSpec;

use super::actions::{Action, ObjKind};
use super::app::{App, Mode};
use super::views::View;

/// Every command, for completion and help.
pub const COMMANDS: &[(&str, &str)] = &[
    ("/instances", "Instances view (/inst)"),
    ("/runs", "Runs view"),
    ("/policies", "Policies view (/pol)"),
    ("/skills", "Skills view"),
    ("/channels", "[inst] Channels view (/ch)"),
    ("/pods", "[inst] Pods view"),
    ("/schedules", "Schedules view (/sched)"),
    ("/personas", "Personas view"),
    ("/gateway", "Gateway view: gateway status and web endpoint routes (/gw)"),
    ("/mcp", "MCP Servers view: servers and their tools (/mcpservers)"),
    ("/persona", "delete <pack>: disable a team · exclude <pack> <persona>: remove one agent"),
    ("/schedule", "<inst> <cron: 5 fields> <task>: set <inst>-schedule"),
    ("/memory", "<inst>: show the legacy memory"),
    ("/channel", "<inst> <type> <secret | token=T [apptoken=A]>: add a channel"),
    ("/rmchannel", "<inst> <type>: remove a channel (others keep their access control)"),
    ("/provider", "<inst> <provider> <model>: switch provider and model"),
    ("/baseurl", "<inst> <url>: set the model endpoint"),
    ("/run", "<inst> <task>: send a task"),
    ("/abort", "<run>: stop a run that has not finished"),
    ("/result", "<run>: show a run's answer"),
    ("/status", "[run]: counts, or one run's phase"),
    ("/features", "<policy>: feature gates"),
    ("/delete", "<instance|run|policy|schedule|persona> <name>"),
    ("/ns", "[namespace|all]: show or switch namespace"),
    ("/onboard", "onboarding wizard"),
    ("/help", "this help (/h, /?)"),
    ("/quit", "quit (/q, /exit)"),
];

/// Completes a command name.
pub fn complete(text: &str) -> String {
    let typed = format!("/{}", text.trim_start_matches('/'));
    let matches: Vec<_> = COMMANDS.iter().filter(|(c, _)| c.starts_with(&typed)).collect();
    match matches.as_slice() {
        [(only, _)] => format!("{} ", only.trim_start_matches('/')),
        _ => text.to_string(),
    }
}

/// The help pager.
pub fn help() -> Mode {
    let mut body = String::from(
        "Keys: 1-9, 0 views (8 Gateway: status + routes · 0 MCP Servers: Enter shows the tools)\n\
         Tab/←/→ cycle · j/k move · Enter detail/drill-in · Esc Instances\n\
         f detail pane · F full detail · l logs/events · d describe · R chat/run on instance\n\
         O onboard · x delete (y confirms) · e edit instance / gateway (8) · / command · ? help · q quit\n\n",
    );
    for (c, h) in COMMANDS {
        body.push_str(&format!("{c:<12} {h}\n"));
    }
    Mode::Pager { title: "help".into(), body, scroll: 0 }
}

/// The feature gates of a policy, one per line.
pub fn features(app: &App, ns: &str, policy: &str) -> String {
    let Some(p) =
        app.data.policies.iter().find(|p| p.name_any() == policy && p.namespace().as_deref() == Some(ns))
    else {
        return format!("policy \"{policy}\" not found in namespace \"{ns}\"");
    };
    match &p.spec.feature_gates {
        Some(g) if !g.is_empty() => g
            .iter()
            .map(|(k, v)| format!("{k:<24} {}", if *v { "enabled" } else { "disabled" }))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => "no feature gates".into(),
    }
}

/// Why a command was refused; shown in the status line.
#[derive(Debug, thiserror::Error)]
enum SlashError {
    /// Across all namespaces, several hold an object of that name.
    #[error("\"{name}\" exists in namespaces {}: narrow with /ns <namespace>", .namespaces.join(", "))]
    AmbiguousName {
        /// The object's name.
        name: String,
        /// The namespaces holding one.
        namespaces: Vec<String>,
    },
    /// `/channel` for a type the instance already has.
    #[error("{instance} already has a {ty} channel")]
    ChannelExists {
        /// The instance.
        instance: String,
        /// The channel type.
        ty: String,
    },
    /// `/channel` with a type Sympozium does not know.
    #[error("unknown channel type \"{ty}\" (telegram, slack, discord, whatsapp)")]
    UnknownChannelType {
        /// The type as typed.
        ty: String,
        /// Why the channel did not deserialize.
        #[source]
        source: serde_json::Error,
    },
    /// `/rmchannel` for a type the instance does not have.
    #[error("{instance} has no {ty} channel")]
    NoSuchChannel {
        /// The instance.
        instance: String,
        /// The channel type.
        ty: String,
    },
}

fn err(app: &mut App, msg: impl Into<String>) {
    app.status = Some((msg.into(), true));
}

/// The namespace of the object named `name` in `items`. Narrowed to a namespace, that one.
/// Across all namespaces: the selected row's when it is that object, else the only
/// namespace holding one, else the shown namespace when none does (so "not found" names it);
/// several namespaces holding one is an error asking to narrow.
fn namespace_of<K: kube::Resource>(
    app: &App,
    items: &[std::sync::Arc<K>],
    name: &str,
) -> Result<String, SlashError> {
    if !app.all_namespaces {
        return Ok(app.ns.clone());
    }
    let mut found: Vec<String> =
        items.iter().filter(|o| o.name_any() == name).filter_map(|o| o.namespace()).collect();
    found.sort();
    found.dedup();
    if let Some(row) = app.selection().filter(|r| r.name == name && found.contains(&r.ns)) {
        return Ok(row.ns);
    }
    match found.as_slice() {
        [] => Ok(app.ns.clone()),
        [only] => Ok(only.clone()),
        several => Err(SlashError::AmbiguousName { name: name.to_string(), namespaces: several.to_vec() }),
    }
}

/// The namespace a command acts in, from the object it names (see [`namespace_of`]).
fn target_namespace(app: &App, cmd: &str, args: &[&str]) -> Result<String, SlashError> {
    let d = &app.data;
    match (cmd, args) {
        ("schedule" | "memory" | "channel" | "rmchannel" | "provider" | "baseurl" | "run", [inst, ..]) => {
            namespace_of(app, &d.instances, inst)
        }
        ("persona", [_, pack, ..]) => namespace_of(app, &d.packs, pack),
        ("abort" | "result" | "status", [run]) => namespace_of(app, &d.runs, run),
        ("features", [policy]) => namespace_of(app, &d.policies, policy),
        ("delete", [kind, name]) => match *kind {
            "instance" | "inst" => namespace_of(app, &d.instances, name),
            "run" => namespace_of(app, &d.runs, name),
            "policy" | "pol" => namespace_of(app, &d.policies, name),
            "schedule" | "sched" => namespace_of(app, &d.schedules, name),
            "persona" => namespace_of(app, &d.packs, name),
            _ => Ok(app.ns.clone()),
        },
        _ => Ok(app.ns.clone()),
    }
}

/// Runs a command line (without the leading `/`).
pub fn run(app: &mut App, line: &str) {
    let line = line.trim().trim_start_matches('/');
    let mut words = line.split_whitespace();
    let cmd = words.next().unwrap_or("help");
    let args: Vec<&str> = words.collect();
    let ns = match target_namespace(app, cmd, &args) {
        Ok(ns) => ns,
        Err(e) => return err(app, e.to_string()),
    };
    match (cmd, args.as_slice()) {
        ("instances" | "inst", _) => app.show(View::Instances),
        ("runs", _) => app.show(View::Runs),
        ("policies" | "pol", _) => app.show(View::Policies),
        ("skills", _) => app.show(View::Skills),
        ("schedules" | "sched", _) => app.show(View::Schedules),
        ("personas", _) => app.show(View::Personas),
        ("gateway" | "gw", _) => app.show(View::Gateway),
        ("mcp" | "mcpservers" | "mcp-servers", _) => app.show(View::McpServers),
        ("channels" | "ch", rest) => {
            app.show(View::Channels);
            app.instance_filter = rest.first().map(|s| s.to_string());
        }
        ("pods", rest) => {
            app.show(View::Pods);
            app.instance_filter = rest.first().map(|s| s.to_string());
        }
        ("persona", ["delete", pack]) => {
            app.mode = Mode::Confirm {
                question: format!("Disable team {pack} (removes its agents)? y/n"),
                action: Box::new(Action::Patch {
                    kind: ObjKind::Pack,
                    ns,
                    name: pack.to_string(),
                    patch: json!({"spec": {"enabled": false}}),
                    what: format!("personapack/{pack} disabled"),
                }),
            }
        }
        ("schedule", [inst, rest @ ..]) if rest.len() > 5 => {
            let cron = rest[..5].join(" ");
            let task = rest[5..].join(" ");
            app.outbox.push(Action::Schedule { ns, instance: inst.to_string(), cron, task });
        }
        ("memory", [inst]) => app.outbox.push(Action::Memory { ns, instance: inst.to_string() }),
        ("persona", ["exclude", pack, persona]) => {
            let Some(p) = app
                .data
                .packs
                .iter()
                .find(|p| p.name_any() == *pack && p.namespace().as_deref() == Some(ns.as_str()))
            else {
                return err(app, format!("pack \"{pack}\" not found in namespace \"{ns}\""));
            };
            if !p.spec.personas.iter().any(|x| x.name == *persona) {
                return err(app, format!("pack {pack} has no persona \"{persona}\""));
            }
            let mut excluded = p.spec.exclude_personas.clone();
            if !excluded.iter().any(|x| x == persona) {
                excluded.push(persona.to_string());
            }
            app.mode = Mode::Confirm {
                question: format!("Remove {persona} from team {pack}? y/n"),
                action: Box::new(Action::Patch {
                    kind: ObjKind::Pack,
                    ns,
                    name: pack.to_string(),
                    patch: json!({"spec": {"excludePersonas": excluded}}),
                    what: format!("{persona} removed from {pack}"),
                }),
            }
        }
        ("channel", [inst, ty, first, rest @ ..]) if first.starts_with("token=") => {
            // Tokens typed here go into the channel's own Secret, never into the instance.
            let keys =
                crate::wizard::providers::CHANNELS.iter().find(|(t, _, _)| t == ty).map(|(_, _, k)| *k);
            let Some(keys) = keys else {
                return err(
                    app,
                    format!("unknown channel type \"{ty}\" (telegram, slack, discord, whatsapp)"),
                );
            };
            let mut data = std::collections::BTreeMap::new();
            for (arg, (key, _)) in std::iter::once(first).chain(rest.iter()).zip(keys.iter()) {
                let value = arg.split_once('=').map(|(_, v)| v).unwrap_or_default();
                data.insert(key.to_string(), value.to_string());
            }
            if data.len() < keys.len() {
                return err(app, format!("{ty} needs {} token(s): token=… apptoken=…", keys.len()));
            }
            let secret = format!("{inst}-{ty}-secret");
            let before = app.outbox.len();
            run(app, &format!("channel {inst} {ty} {secret}"));
            if app.outbox.len() > before {
                app.outbox.insert(before, Action::ChannelSecret { ns, name: secret, data });
            }
        }
        ("channel", [inst, ty, secret]) => edit_channels(app, ns, inst, |channels| {
            if channels.iter().any(|c| c.type_.as_str() == *ty) {
                return Err(SlashError::ChannelExists { instance: inst.to_string(), ty: ty.to_string() });
            }
            let mut c: ChannelSpec =
                serde_json::from_value(json!({"type": ty, "configRef": {"secret": secret}}))
                    .map_err(|source| SlashError::UnknownChannelType { ty: ty.to_string(), source })?;
            c.access_control = None;
            channels.push(c);
            Ok(format!("{inst}: {ty} channel added"))
        }),
        ("rmchannel", [inst, ty]) => edit_channels(app, ns, inst, |channels| {
            let before = channels.len();
            channels.retain(|c| c.type_.as_str() != *ty);
            if channels.len() == before {
                return Err(SlashError::NoSuchChannel { instance: inst.to_string(), ty: ty.to_string() });
            }
            Ok(format!("{inst}: {ty} channel removed"))
        }),
        ("provider", [inst, provider, model]) => provider_patch(app, &ns, inst, provider, model),
        ("baseurl", [inst, url]) => {
            if app.instance(&ns, inst).is_none() {
                return err(app, format!("instance \"{inst}\" not found in namespace \"{ns}\""));
            }
            app.outbox.push(Action::Patch {
                kind: ObjKind::Instance,
                ns,
                name: inst.to_string(),
                patch: json!({"spec": {"agents": {"default": {"baseURL": url}}}}),
                what: format!("{inst}: base URL {url}"),
            });
        }
        ("run", [inst, task @ ..]) if !task.is_empty() => app.send_chat(&ns, inst, &task.join(" ")),
        ("abort", [run]) => abort(app, &ns, run),
        ("result", [run]) => match find_run(app, &ns, run) {
            Some(r) => {
                let s = r.status.clone().unwrap_or_default();
                let body = s
                    .result
                    .or(s.error.map(|e| format!("[error: {e}]")))
                    .unwrap_or_else(|| "no result yet".into());
                app.mode = Mode::Pager { title: format!("result of {run}"), body, scroll: 0 };
            }
            None => err(app, format!("run \"{run}\" not found in namespace \"{ns}\"")),
        },
        ("status", []) => {
            let all = app.all_namespaces;
            let in_ns = |n: Option<String>| all || n.as_deref() == Some(ns.as_str());
            let runs: Vec<_> = app.data.runs.iter().filter(|r| in_ns(r.namespace())).collect();
            let active = runs
                .iter()
                .filter(|r| !r.status.as_ref().and_then(|s| s.phase).is_some_and(AgentRunPhase::is_terminal))
                .count();
            let instances = app.data.instances.iter().filter(|i| in_ns(i.namespace())).count();
            let scope = if all { "all namespaces" } else { ns.as_str() };
            app.status = Some((
                format!("{scope}: {instances} instances, {} runs ({active} active)", runs.len()),
                false,
            ));
        }
        ("status", [run]) => match find_run(app, &ns, run) {
            Some(r) => app.status = Some((format!("{run}: {}", super::views::runs_phase(&r)), false)),
            None => err(app, format!("run \"{run}\" not found in namespace \"{ns}\"")),
        },
        ("features", [policy]) => {
            let body = features(app, &ns, policy);
            app.mode = Mode::Pager { title: format!("feature gates of {policy}"), body, scroll: 0 };
        }
        ("delete", [kind, name]) => {
            let kind = match *kind {
                "instance" | "inst" => ObjKind::Instance,
                "run" => ObjKind::Run,
                "policy" | "pol" => ObjKind::Policy,
                "schedule" | "sched" => ObjKind::Schedule,
                "persona" => ObjKind::Pack,
                other => {
                    return err(
                        app,
                        format!("cannot delete \"{other}\": use instance, run, policy, schedule or persona"),
                    );
                }
            };
            app.mode = Mode::Confirm {
                question: format!("Delete {}/{name}? y/n", kind.resource()),
                action: Box::new(Action::Delete { kind, ns, name: name.to_string() }),
            };
        }
        ("ns" | "namespace", []) => {
            app.status = Some((format!("namespace: {}", if app.all_namespaces { "all" } else { &ns }), false))
        }
        ("ns" | "namespace", ["all"]) => {
            app.all_namespaces = true;
            app.selected = 0;
        }
        ("ns" | "namespace", [new]) => {
            app.ns = new.to_string();
            app.all_namespaces = false;
            app.selected = 0;
        }
        ("onboard", _) => app.open_onboard_wizard(),
        ("help" | "h" | "" | "?", _) => app.mode = help(),
        ("quit" | "q" | "exit", _) => app.quit = true,
        _ => err(app, format!("unknown or incomplete command \"/{line}\" (try /help)")),
    }
}

fn find_run(app: &App, ns: &str, name: &str) -> Option<std::sync::Arc<sympozium_api::AgentRun>> {
    app.data.runs.iter().find(|r| r.name_any() == name && r.namespace().as_deref() == Some(ns)).cloned()
}

/// Stops a run by deleting it — unless it already reached a terminal phase.
fn abort(app: &mut App, ns: &str, run: &str) {
    let Some(r) = find_run(app, ns, run) else {
        return err(app, format!("run \"{run}\" not found in namespace \"{ns}\""));
    };
    match r.status.as_ref().and_then(|s| s.phase) {
        Some(p) if p.is_terminal() => err(app, format!("{run} already finished ({p:?})")),
        _ => app.outbox.push(Action::Delete { kind: ObjKind::Run, ns: ns.into(), name: run.into() }),
    }
}

/// Rewrites an instance's channel list with `edit`; the channels it leaves alone keep
/// everything, access control included (the original dropped it on save).
fn edit_channels(
    app: &mut App,
    ns: String,
    inst: &str,
    edit: impl FnOnce(&mut Vec<ChannelSpec>) -> Result<String, SlashError>,
) {
    let Some(i) = app.instance(&ns, inst) else {
        return err(app, format!("instance \"{inst}\" not found in namespace \"{ns}\""));
    };
    let mut channels = i.spec.channels.clone();
    match edit(&mut channels) {
        Err(e) => err(app, e.to_string()),
        Ok(what) => app.outbox.push(Action::Patch {
            kind: ObjKind::Instance,
            ns,
            name: inst.into(),
            patch: json!({"spec": {"channels": channels}}),
            what,
        }),
    }
}

/// Switches provider and model; the provider is stored in `authRefs[].provider` (the
/// original forgot it), keeping the credential Secret; the base URL is cleared unless the
/// provider talks to a custom endpoint.
fn provider_patch(app: &mut App, ns: &str, inst: &str, provider: &str, model: &str) {
    let ns = ns.to_string();
    let Some(i) = app.instance(&ns, inst) else {
        return err(app, format!("instance \"{inst}\" not found in namespace \"{ns}\""));
    };
    let mut refs = i.spec.auth_refs.clone();
    match refs.first_mut() {
        Some(r) => r.provider = Some(provider.into()),
        None => refs.push(sympozium_api::common::SecretRef {
            provider: Some(provider.into()),
            secret: String::new(),
        }),
    }
    let keep_url = matches!(provider, "openai-compatible" | "custom" | "ollama" | "lm-studio");
    let mut agent = json!({"model": model});
    if !keep_url {
        agent["baseURL"] = serde_json::Value::Null;
    }
    app.outbox.push(Action::Patch {
        kind: ObjKind::Instance,
        ns,
        name: inst.into(),
        patch: json!({"spec": {"authRefs": refs, "agents": {"default": agent}}}),
        what: format!("{inst}: provider {provider}, model {model}"),
    });
}
