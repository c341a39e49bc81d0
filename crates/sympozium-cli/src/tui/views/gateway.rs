//! Gateway: the SympoziumConfig gateway status (a banner above the table, whatever namespace
//! is shown: the gateway serves every namespace) and one row per web endpoint route.

use kube::ResourceExt;
use sympozium_api::SympoziumConfig;

use super::{Ctx, Table, Tone, or_dash, phase_tone, row};

/// The namespace and name `sympozium install` gives the one config that counts.
const HOME: (&str, &str) = ("sympozium-system", "default");

/// The config whose gateway routes attach to: `sympozium-system/default`, else the first.
pub fn config(configs: &[std::sync::Arc<SympoziumConfig>]) -> Option<&SympoziumConfig> {
    configs
        .iter()
        .find(|c| c.namespace().as_deref() == Some(HOME.0) && c.name_any() == HOME.1)
        .or_else(|| configs.first())
        .map(AsRef::as_ref)
}

/// The gateway status lines and their tone.
pub fn banner(c: Option<&SympoziumConfig>) -> (Vec<String>, Tone) {
    let Some(c) = c else {
        return (
            vec![
                "no SympoziumConfig: no gateway (`sympozium install` creates sympozium-system/default)"
                    .into(),
            ],
            Tone::Dim,
        );
    };
    let id = format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any());
    let status = c.status.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or_default();
    let Some(g) = c.spec.gateway.as_ref().filter(|g| g.enabled) else {
        return (
            vec![format!("gateway disabled ({id}); web endpoints answer on their Services only")],
            Tone::Dim,
        );
    };
    let gs = status.gateway.clone().unwrap_or_default();
    let tls = match &g.tls {
        Some(t) if t.enabled => format!("TLS {}", t.secret_name),
        _ => "no TLS".into(),
    };
    let lines = vec![
        format!(
            "gateway {}/{} · class {} · base domain {} · {tls}",
            c.namespace().unwrap_or_default(),
            g.name,
            g.gateway_class_name,
            or_dash(g.base_domain.clone().unwrap_or_default()),
        ),
        format!(
            "phase {} · ready {} · address {} · listeners {}  (config {id})",
            or_dash(phase.clone()),
            if gs.ready { "yes" } else { "no" },
            or_dash(gs.address.clone().unwrap_or_default()),
            gs.listener_count.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
        ),
    ];
    (lines, if gs.ready { Tone::Good } else { phase_tone(&phase) })
}

/// The host of a URL (`-` for a cluster Service address: no gateway route).
fn hostname(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', ':', '?']).next().unwrap_or_default();
    if host.ends_with(".svc") || host.ends_with(".svc.cluster.local") { "-".into() } else { or_dash(host) }
}

/// `INSTANCE HOSTNAME URL STATUS AGE`: instances with a web endpoint.
pub fn table(ctx: &Ctx<'_>) -> Table {
    let rows = ctx
        .scoped(&ctx.data.instances)
        .into_iter()
        .filter_map(|i| {
            let w = i.status.as_ref()?.web_endpoint.clone()?;
            let url = w.url.clone().unwrap_or_default();
            Some(row(
                i.as_ref(),
                vec![
                    i.name_any(),
                    hostname(&url),
                    or_dash(url),
                    or_dash(w.status.clone()),
                    ctx.age(i.metadata.creation_timestamp.as_ref()),
                ],
                phase_tone(&w.status),
            ))
        })
        .collect();
    let (banner, banner_tone) = banner(config(&ctx.data.configs));
    Table { headers: vec!["INSTANCE", "HOSTNAME", "URL", "STATUS", "AGE"], rows, banner, banner_tone }
}

#[cfg(test)]
mod tests {
    use super::hostname;

    #[test]
    fn hostnames_of_routes_and_services() {
        assert_eq!(hostname("https://my-agent.example.com"), "my-agent.example.com");
        assert_eq!(hostname("http://a.example.com:8080/v1"), "a.example.com");
        assert_eq!(hostname("http://x-web-endpoint-server.team.svc:8080"), "-");
        assert_eq!(hostname(""), "-");
    }
}
