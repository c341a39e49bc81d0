//! The instance edit modal (`e`): model, base URL, memory, skills with their params, the
//! channels (type and credentials Secret; a kept channel keeps its access control), the
//! lifecycle hooks (preRun/postRun/rbac as JSON), the web endpoint (as the
//! `web-endpoint` skill, which is what the controllers read — the original wrote the
//! deprecated `spec.webEndpoint`), and the heartbeat schedule. Saving patches only these
//! fields, so channels keep their access control and skills keep their params. The same
//! form edits a SympoziumConfig's gateway (`e` on the Gateway view).

use ratatui::crossterm::event::{KeyCode, KeyEvent};
use serde_json::json;
use sympozium_api::common::SkillRef;
use sympozium_api::instance::ChannelSpec;
use sympozium_api::{SympoziumConfig, SympoziumInstance, SympoziumSchedule, labels};

use super::actions::{Action, ObjKind};

/// Why the form cannot be saved; shown under the form.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// A channel's Secret is not closed by `)`.
    #[error("Channels: \"{item}\" is missing its \")\"")]
    ChannelUnclosed {
        /// The channel as typed.
        item: String,
    },
    /// Not a channel type Sympozium knows.
    #[error("Channels: unknown channel type \"{ty}\" (telegram, slack, discord, whatsapp)")]
    UnknownChannelType {
        /// The type as typed.
        ty: String,
        /// Why the channel did not deserialize.
        #[source]
        source: serde_json::Error,
    },
    /// A channel type appears twice.
    #[error("Channels: {ty} is listed twice (one channel per type)")]
    DuplicateChannel {
        /// The type.
        ty: String,
    },
    /// A channel that needs credentials has no Secret.
    #[error("Channels: {ty} needs its credentials Secret, e.g. {ty}({ty}-creds)")]
    ChannelWithoutSecret {
        /// The type.
        ty: String,
    },
    /// A skill's parameter list is not closed by `)`.
    #[error("Skills: \"{name}(\" is missing its \")\"")]
    SkillUnclosed {
        /// The skill pack.
        name: String,
    },
    /// A skill parameter without `=`.
    #[error("Skills: \"{pair}\" is not key=value")]
    SkillParameter {
        /// The parameter as typed.
        pair: String,
    },
    /// The gateway form lacks its class or name.
    #[error("Gateway class and name cannot be empty")]
    GatewayIncomplete,
    /// The memory size is not a number.
    #[error("Memory size must be a number of KB")]
    MemorySize(#[source] std::num::ParseIntError),
    /// No model.
    #[error("Model cannot be empty")]
    EmptyModel,
    /// The lifecycle hooks are not valid JSON hooks.
    #[error("Lifecycle hooks: {0} (e.g. {{\"preRun\":[{{\"name\":\"x\",\"image\":\"busybox\"}}]}})")]
    Lifecycle(#[source] serde_json::Error),
    /// The heartbeat cron does not have 5 fields.
    #[error("Heartbeat cron needs 5 fields (minute hour day month weekday)")]
    CronFields,
}

/// One field of the form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Label.
    pub label: &'static str,
    /// Text, or `yes`/`no` for switches.
    pub value: String,
    /// Space toggles it.
    pub switch: bool,
}

/// The edit modal of one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditForm {
    /// Namespace.
    pub ns: String,
    /// Instance.
    pub name: String,
    /// Fields in order.
    pub fields: Vec<Field>,
    /// Focused field.
    pub focus: usize,
    /// Why saving was refused.
    pub error: Option<String>,
    skills: Vec<SkillRef>,
    channels: Vec<ChannelSpec>,
    /// The instance's resourceVersion when the form opened: saving is refused (409) if the
    /// instance changed since, instead of writing back a stale channel or skill list.
    resource_version: Option<String>,
    schedule: Option<String>,
    /// Editing a SympoziumConfig's gateway instead of an instance.
    gateway: bool,
}

const MODEL: usize = 0;
const BASE_URL: usize = 1;
const MEMORY: usize = 2;
const MEMORY_KB: usize = 3;
const PROMPT: usize = 4;
const SKILLS: usize = 5;
const CHANNELS: usize = 6;
const WEB: usize = 7;
const LIFECYCLE: usize = 8;
const CRON: usize = 9;
const TASK: usize = 10;
const SUSPEND: usize = 11;

/// Channels as one line: `telegram(telegram-creds), whatsapp` (the Secret in brackets).
fn channels_text(channels: &[ChannelSpec]) -> String {
    channels
        .iter()
        .map(|c| match c.config_ref.secret.as_str() {
            "" => c.type_.as_str().to_string(),
            secret => format!("{}({secret})", c.type_.as_str()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads [`channels_text`] back onto `current`: a channel still listed keeps everything but
/// its Secret (its access control above all), a new one starts without access control.
fn parse_channels(text: &str, current: &[ChannelSpec]) -> Result<Vec<ChannelSpec>, EditError> {
    let mut out: Vec<ChannelSpec> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (ty, secret) = match item.split_once('(') {
            Some((ty, rest)) => {
                let secret = rest
                    .strip_suffix(')')
                    .ok_or_else(|| EditError::ChannelUnclosed { item: item.to_string() })?;
                (ty.trim(), secret.trim())
            }
            None => (item, ""),
        };
        let mut channel = match current.iter().find(|c| c.type_.as_str() == ty) {
            Some(kept) => kept.clone(),
            None => serde_json::from_value(json!({"type": ty, "configRef": {"secret": ""}}))
                .map_err(|source| EditError::UnknownChannelType { ty: ty.to_string(), source })?,
        };
        if out.iter().any(|c| c.type_ == channel.type_) {
            return Err(EditError::DuplicateChannel { ty: ty.to_string() });
        }
        if secret.is_empty() && ty != "whatsapp" {
            return Err(EditError::ChannelWithoutSecret { ty: ty.to_string() });
        }
        channel.config_ref.secret = secret.to_string();
        out.push(channel);
    }
    Ok(out)
}

/// Skill packs as one line: `k8s-ops, github-gitops(repo=acme/infra), memory`.
fn skills_text(skills: &[SkillRef]) -> String {
    skills
        .iter()
        .filter_map(|s| {
            let name = s.skill_pack_ref.clone()?;
            Some(match s.params.as_ref().filter(|p| !p.is_empty()) {
                Some(p) => {
                    let params: Vec<_> = p.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    format!("{name}({})", params.join(";"))
                }
                None => name,
            })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads [`skills_text`] back.
fn parse_skills(text: &str) -> Result<Vec<SkillRef>, EditError> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let end_name = rest.find([',', '(']).unwrap_or(rest.len());
        let name = rest[..end_name].trim().to_string();
        rest = &rest[end_name..];
        let mut params = std::collections::BTreeMap::new();
        if let Some(after) = rest.strip_prefix('(') {
            let close = after.find(')').ok_or_else(|| EditError::SkillUnclosed { name: name.clone() })?;
            for pair in after[..close].split(';').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| EditError::SkillParameter { pair: pair.to_string() })?;
                params.insert(k.trim().to_string(), v.trim().to_string());
            }
            rest = &after[close + 1..];
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        if name.is_empty() {
            continue;
        }
        out.push(SkillRef {
            skill_pack_ref: Some(name),
            params: (!params.is_empty()).then_some(params),
            ..Default::default()
        });
    }
    Ok(out)
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

impl EditForm {
    /// The form for `inst`, with its first schedule (if any) as the heartbeat.
    pub fn new(inst: &SympoziumInstance, schedule: Option<&SympoziumSchedule>) -> Self {
        let agent = &inst.spec.agents.default;
        let memory = inst.spec.memory.clone().unwrap_or_default();
        let web = inst.spec.skills.iter().any(|s| {
            matches!(
                s.skill_pack_ref.as_deref(),
                Some(labels::skills::WEB_ENDPOINT | labels::skills::WEB_ENDPOINT_LEGACY)
            )
        });
        let text = |label, value: String| Field { label, value, switch: false };
        let switch = |label, on: bool| Field { label, value: yes(on), switch: true };
        Self {
            ns: inst.metadata.namespace.clone().unwrap_or_default(),
            name: inst.metadata.name.clone().unwrap_or_default(),
            fields: vec![
                text("Model", agent.model.clone()),
                text("Base URL", agent.base_url.clone().unwrap_or_default()),
                switch("Memory", memory.enabled),
                text("Memory size (KB)", memory.max_size_kb.to_string()),
                text("System prompt", memory.system_prompt.unwrap_or_default()),
                text("Skills", skills_text(&inst.spec.skills)),
                text("Channels", channels_text(&inst.spec.channels)),
                switch("Web endpoint", web),
                text(
                    "Lifecycle hooks (JSON)",
                    agent.lifecycle.as_ref().and_then(|l| serde_json::to_string(l).ok()).unwrap_or_default(),
                ),
                text("Heartbeat cron", schedule.map(|s| s.spec.schedule.clone()).unwrap_or_default()),
                text("Heartbeat task", schedule.map(|s| s.spec.task.clone()).unwrap_or_default()),
                switch("Heartbeat suspended", schedule.and_then(|s| s.spec.suspend).unwrap_or(false)),
            ],
            focus: 0,
            error: None,
            skills: inst.spec.skills.clone(),
            channels: inst.spec.channels.clone(),
            resource_version: inst.metadata.resource_version.clone(),
            schedule: schedule.and_then(|s| s.metadata.name.clone()),
            gateway: false,
        }
    }

    /// `None`: still editing; `Some(None)`: cancelled; `Some(Some(actions))`: saved.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Option<Vec<Action>>> {
        let n = self.fields.len();
        match key.code {
            KeyCode::Esc => return Some(None),
            KeyCode::Enter => match self.save() {
                Ok(actions) => return Some(Some(actions)),
                Err(e) => self.error = Some(e.to_string()),
            },
            KeyCode::Down | KeyCode::Tab => self.focus = (self.focus + 1) % n,
            KeyCode::Up | KeyCode::BackTab => self.focus = (self.focus + n - 1) % n,
            KeyCode::Char(' ') if self.fields[self.focus].switch => {
                let f = &mut self.fields[self.focus];
                f.value = yes(f.value != "yes");
            }
            KeyCode::Backspace if !self.fields[self.focus].switch => {
                self.fields[self.focus].value.pop();
            }
            KeyCode::Char(c) if !self.fields[self.focus].switch => self.fields[self.focus].value.push(c),
            _ => {}
        }
        None
    }

    fn value(&self, i: usize) -> &str {
        self.fields[i].value.trim()
    }

    /// The form of a SympoziumConfig's gateway (the original's Gateway edit modal).
    pub fn gateway(config: &SympoziumConfig) -> Self {
        let gw = config.spec.gateway.clone().unwrap_or_default();
        let tls = gw.tls.clone();
        let text = |label, value: String| Field { label, value, switch: false };
        let switch = |label, on: bool| Field { label, value: yes(on), switch: true };
        Self {
            ns: config.metadata.namespace.clone().unwrap_or_default(),
            name: config.metadata.name.clone().unwrap_or_default(),
            fields: vec![
                switch("Gateway enabled", gw.enabled),
                text("Gateway class", gw.gateway_class_name),
                text("Gateway name", gw.name),
                text("Base domain", gw.base_domain.unwrap_or_default()),
                switch("TLS", tls.as_ref().is_some_and(|t| t.enabled)),
                text("TLS Secret", tls.as_ref().map(|t| t.secret_name.clone()).unwrap_or_default()),
                text(
                    "cert-manager ClusterIssuer",
                    tls.and_then(|t| t.cert_manager_cluster_issuer).unwrap_or_default(),
                ),
            ],
            focus: 0,
            error: None,
            skills: Vec::new(),
            channels: Vec::new(),
            resource_version: None,
            schedule: None,
            gateway: true,
        }
    }

    fn save_gateway(&self) -> Result<Vec<Action>, EditError> {
        let opt = |i: usize| if self.value(i).is_empty() { json!(null) } else { json!(self.value(i)) };
        if self.value(1).is_empty() || self.value(2).is_empty() {
            return Err(EditError::GatewayIncomplete);
        }
        Ok(vec![Action::Patch {
            kind: ObjKind::Config,
            ns: self.ns.clone(),
            name: self.name.clone(),
            patch: json!({"spec": {"gateway": {
                "enabled": self.value(0) == "yes",
                "gatewayClassName": self.value(1),
                "name": self.value(2),
                "baseDomain": opt(3),
                "tls": {"enabled": self.value(4) == "yes", "secretName": self.value(5), "certManagerClusterIssuer": opt(6)},
            }}}),
            what: format!("{} gateway saved", self.name),
        }])
    }

    /// The patches saving writes.
    pub fn save(&self) -> Result<Vec<Action>, EditError> {
        if self.gateway {
            return self.save_gateway();
        }
        let kb: i32 = self.value(MEMORY_KB).parse().map_err(EditError::MemorySize)?;
        if self.value(MODEL).is_empty() {
            return Err(EditError::EmptyModel);
        }
        // Skill packs as typed; ConfigMap skills are not shown and stay as they are.
        let mut skills = parse_skills(self.value(SKILLS))?;
        skills.extend(self.skills.iter().filter(|s| s.skill_pack_ref.is_none()).cloned());
        let is_web = |s: &SkillRef| {
            matches!(
                s.skill_pack_ref.as_deref(),
                Some(labels::skills::WEB_ENDPOINT | labels::skills::WEB_ENDPOINT_LEGACY)
            )
        };
        let had_web = skills.iter().any(is_web);
        match (self.value(WEB) == "yes", had_web) {
            (true, false) => skills.push(SkillRef {
                skill_pack_ref: Some(labels::skills::WEB_ENDPOINT.into()),
                ..Default::default()
            }),
            (false, true) => skills.retain(|s| !is_web(s)),
            _ => {}
        }
        let lifecycle = match self.value(LIFECYCLE) {
            "" => json!(null),
            text => {
                let hooks: sympozium_api::common::LifecycleHooks =
                    serde_json::from_str(text).map_err(EditError::Lifecycle)?;
                // Every list spelled out: a merge patch would keep a list left out.
                json!({"preRun": hooks.pre_run, "postRun": hooks.post_run, "rbac": hooks.rbac})
            }
        };
        let base_url =
            if self.value(BASE_URL).is_empty() { json!(null) } else { json!(self.value(BASE_URL)) };
        let prompt = if self.value(PROMPT).is_empty() { json!(null) } else { json!(self.value(PROMPT)) };
        let mut spec = json!({
            "agents": {"default": {"model": self.value(MODEL), "baseURL": base_url, "lifecycle": lifecycle}},
            "memory": {"enabled": self.value(MEMORY) == "yes", "maxSizeKB": kb, "systemPrompt": prompt},
            "skills": skills,
        });
        // Only an edited channel list is written: the whole list goes in the patch, and a
        // list the user did not touch must not undo access control changed meanwhile.
        if self.value(CHANNELS) != channels_text(&self.channels) {
            spec["channels"] = json!(parse_channels(self.value(CHANNELS), &self.channels)?);
        }
        let mut actions = vec![Action::Patch {
            kind: ObjKind::Instance,
            ns: self.ns.clone(),
            name: self.name.clone(),
            patch: match &self.resource_version {
                Some(rv) => json!({"metadata": {"resourceVersion": rv}, "spec": spec}),
                None => json!({ "spec": spec }),
            },
            what: format!("{} saved", self.name),
        }];
        let cron = self.value(CRON);
        if !cron.is_empty() {
            if cron.split_whitespace().count() != 5 {
                return Err(EditError::CronFields);
            }
            match &self.schedule {
                Some(s) => actions.push(Action::Patch {
                    kind: ObjKind::Schedule,
                    ns: self.ns.clone(),
                    name: s.clone(),
                    patch: json!({"spec": {"schedule": cron, "task": self.value(TASK),
                                           "suspend": self.value(SUSPEND) == "yes"}}),
                    what: format!("{s} saved"),
                }),
                None => actions.push(Action::Schedule {
                    ns: self.ns.clone(),
                    instance: self.name.clone(),
                    cron: cron.into(),
                    task: self.value(TASK).into(),
                }),
            }
        }
        Ok(actions)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn skills_round_trip_with_params() {
        let text = "k8s-ops, github-gitops(repo=acme/infra;branch=main), memory";
        let skills = parse_skills(text).unwrap();
        assert_eq!(skills.len(), 3);
        assert_eq!(skills[1].params.as_ref().unwrap()["repo"], "acme/infra");
        assert_eq!(skills_text(&skills), "k8s-ops, github-gitops(branch=main;repo=acme/infra), memory");
        assert!(parse_skills("a(b=c").is_err() && parse_skills("a(bc)").is_err());
        assert!(parse_skills("").unwrap().is_empty());
    }

    #[test]
    fn channels_are_edited_and_kept_channels_keep_their_access_control() {
        let inst: SympoziumInstance = serde_json::from_value(json!({
            "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
            "metadata": {"name": "a", "namespace": "n"},
            "spec": {"agents": {"default": {"model": "m"}}, "channels": [
                {"type": "telegram", "configRef": {"secret": "tg"}, "accessControl": {"allowedSenders": ["123456"]}},
                {"type": "slack", "configRef": {"secret": "sl"}}]}
        }))
        .unwrap();
        let mut form = EditForm::new(&inst, None);
        assert_eq!(form.fields[CHANNELS].value, "telegram(tg), slack(sl)");
        let mut seen = inst.clone();
        seen.metadata.resource_version = Some("42".into());
        let Action::Patch { patch, .. } = &EditForm::new(&seen, None).save().unwrap()[0] else { panic!() };
        assert_eq!(patch["metadata"]["resourceVersion"], "42", "saving is conditional on what was shown");
        let Action::Patch { patch, .. } = &form.save().unwrap()[0] else { panic!("a patch") };
        assert!(patch["spec"].get("channels").is_none(), "an untouched list is not written");

        form.fields[CHANNELS].value = "telegram(tg-new), discord(dc)".into();
        let Action::Patch { patch, .. } = &form.save().unwrap()[0] else { panic!("a patch") };
        let channels = &patch["spec"]["channels"];
        assert_eq!(channels[0]["configRef"]["secret"], "tg-new");
        assert_eq!(channels[0]["accessControl"]["allowedSenders"], json!(["123456"]), "access control kept");
        assert_eq!(channels[1], json!({"type": "discord", "configRef": {"secret": "dc"}}));
        assert_eq!(channels.as_array().unwrap().len(), 2, "slack removed");

        for (text, error) in [
            ("irc(x)", "unknown channel type \"irc\""),
            ("slack(a), slack(b)", "slack is listed twice"),
            ("discord", "discord needs its credentials Secret"),
            ("slack(sl", "is missing its \")\""),
        ] {
            form.fields[CHANNELS].value = text.into();
            let e = form.save().unwrap_err().to_string();
            assert!(e.starts_with("Channels: ") && e.contains(error), "{text}: {e}");
        }
        form.fields[CHANNELS].value = "whatsapp".into();
        assert!(form.save().is_ok(), "WhatsApp may go without a Secret");
    }

    #[test]
    fn lifecycle_hooks_are_edited_as_json_and_checked() {
        let inst: SympoziumInstance = serde_json::from_value(json!({
            "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
            "metadata": {"name": "a", "namespace": "n"},
            "spec": {"agents": {"default": {"model": "m", "lifecycle": {
                "preRun": [{"name": "fetch", "image": "busybox"}], "postRun": [{"name": "report", "image": "busybox"}]}}}}
        }))
        .unwrap();
        let mut form = EditForm::new(&inst, None);
        assert!(form.fields[LIFECYCLE].value.contains("\"fetch\""));
        // Dropping postRun must clear it, not leave the old list behind.
        form.fields[LIFECYCLE].value = r#"{"preRun":[{"name":"fetch","image":"busybox"}]}"#.into();
        let Action::Patch { patch, .. } = &form.save().unwrap()[0] else { panic!("a patch") };
        assert_eq!(patch["spec"]["agents"]["default"]["lifecycle"]["postRun"], json!([]));
        form.fields[LIFECYCLE].value = "{not json".into();
        assert!(form.save().unwrap_err().to_string().starts_with("Lifecycle hooks:"));
    }
}
