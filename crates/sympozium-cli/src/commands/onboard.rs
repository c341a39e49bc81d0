//! `sympozium onboard`: the onboarding wizard. On a terminal it is the TUI's wizard
//! (same steps, same screen); otherwise plain line prompts read from stdin. Then it checks
//! the cluster and writes the agent (see `wizard::apply::onboard`).

use std::io::IsTerminal;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::ListParams;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use sympozium_api::SkillPack;

use crate::cli::Cli;
use crate::tui::wizard_view;
use crate::wizard::onboard::{OnboardFlow, onboarding, skill_choices};
use crate::wizard::{Answers, Outcome, Wizard, apply, plain};

/// The wizard on the terminal; `Ok(false)` when the user backed out.
fn on_terminal(wizard: &mut Wizard) -> anyhow::Result<bool> {
    let mut terminal = ratatui::try_init().map_err(|e| anyhow::anyhow!("cannot open the terminal: {e}"))?;
    let outcome = loop {
        if let Err(e) = terminal.draw(|f| wizard_view::draw(f, f.area(), wizard)) {
            break Err(e.into());
        }
        match event::read() {
            Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => {
                if k.code == event::KeyCode::Char('c') && k.modifiers.contains(event::KeyModifiers::CONTROL) {
                    break Ok(false);
                }
                match wizard_view::on_key(wizard, k) {
                    Outcome::Asking => {}
                    Outcome::Done => break Ok(true),
                    Outcome::Cancelled => break Ok(false),
                }
            }
            Ok(_) => {}
            Err(e) => break Err(e.into()),
        }
    };
    ratatui::restore();
    outcome
}

/// Runs the wizard and writes its outcome.
pub async fn onboard(cli: &Cli, api_key: Option<&str>, system_namespace: &str) -> anyhow::Result<i32> {
    let client = crate::connect(cli).await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    if crds.get_opt("sympoziuminstances.sympozium.ai").await?.is_none() {
        anyhow::bail!("the Sympozium CRDs are not installed: run `sympozium install` first");
    }
    // An instance's SkillPacks are looked up in its namespace, then the system namespace
    // (as the controller does); a namespace the user may not read offers nothing.
    let ns = cli.effective_namespace();
    let mut packs = Vec::new();
    for n in [ns.as_str(), system_namespace] {
        if let Ok(list) = Api::<SkillPack>::namespaced(client.clone(), n).list(&ListParams::default()).await {
            packs.extend(list.items);
        }
    }
    let flow = OnboardFlow::new(&ns, api_key.unwrap_or_default()).with_skills(skill_choices(&packs));
    let mut wizard = Wizard::new(Box::new(flow), Answers::default());
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        if !on_terminal(&mut wizard)? {
            eprintln!("onboarding cancelled; nothing was written");
            return Ok(1);
        }
    } else {
        let stdin = std::io::stdin();
        match plain::run(&mut wizard, &mut stdin.lock(), &mut std::io::stdout()) {
            Ok(()) => {}
            Err(plain::PlainError::Cancelled) => {
                eprintln!("onboarding cancelled; nothing was written");
                return Ok(1);
            }
            Err(e) => return Err(e.into()),
        }
        crate::output::emitln!("");
    }
    let plan = onboarding(wizard.answers());
    for line in apply::onboard(&client, &plan).await? {
        crate::output::emitln!("✓ {line}");
    }
    crate::output::emitln!(
        "{} is ready: chat with it with `sympozium run {} \"hello\" -n {}` or in the TUI (`sympozium -n {}`)",
        plan.name,
        plan.name,
        plan.namespace,
        plan.namespace
    );
    Ok(0)
}
