//! Token prices and run cost: the price table of `SympoziumConfig.spec.pricing` (over
//! built-in defaults), the `status.cost` of AgentRuns and the totals of instances.
//!
//! Amounts are decimal strings (Kubernetes API conventions avoid floats in objects); they
//! are computed in `f64` and written with six decimals.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Price of one model, in the table's currency per million tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelPrice {
    /// Price of one million prompt (input) tokens, e.g. `"2.50"`.
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[0-9]+(\\\\.[0-9]+)?$')").message("must be a non-negative decimal number such as \"2.50\""))]
    pub input_per_million: String,
    /// Price of one million completion (output) tokens, e.g. `"10"`.
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[0-9]+(\\\\.[0-9]+)?$')").message("must be a non-negative decimal number such as \"10.00\""))]
    pub output_per_million: String,
}

/// The price table of `SympoziumConfig.spec.pricing`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PricingSpec {
    /// Currency of every price and cost (default `USD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    pub currency: Option<String>,
    /// Prices by model name; they override the built-in defaults. A name also prices
    /// models it is a prefix of (`gpt-4o` prices `gpt-4o-2024-08-06`; the longest match wins).
    /// (At most 128 entries: the bound keeps the CEL checks of each price within the API
    /// server's cost budget, which rejects the whole CRD otherwise.)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 128))]
    pub models: BTreeMap<String, ModelPrice>,
    /// Use only `models`, not the built-in defaults.
    #[serde(default)]
    pub disable_defaults: bool,
}

/// What a run cost (`AgentRun.status.cost`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunCost {
    /// Currency of the amounts.
    pub currency: String,
    /// Cost of the input tokens.
    pub input: String,
    /// Cost of the output tokens.
    pub output: String,
    /// Input plus output.
    pub total: String,
    /// The price-table entry used.
    pub priced_as: String,
}

/// What an instance's runs cost so far (`SympoziumInstance.status.cost`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceCost {
    /// Currency of the total.
    pub currency: String,
    /// Sum of the priced runs' totals (kept when runs are pruned).
    pub total: String,
    /// Runs included in the total.
    pub runs: i64,
}

/// Built-in prices (USD per million tokens, list prices of the providers' public price
/// pages); a deployment corrects or extends them in `SympoziumConfig.spec.pricing.models`.
pub const DEFAULT_PRICES: &[(&str, &str, &str)] = &[
    ("gpt-4o", "2.50", "10.00"),
    ("gpt-4o-mini", "0.15", "0.60"),
    ("gpt-4.1", "2.00", "8.00"),
    ("gpt-4.1-mini", "0.40", "1.60"),
    ("gpt-4.1-nano", "0.10", "0.40"),
    ("gpt-5", "1.25", "10.00"),
    ("gpt-5-mini", "0.25", "2.00"),
    ("gpt-5-nano", "0.05", "0.40"),
    ("o3", "2.00", "8.00"),
    ("o4-mini", "1.10", "4.40"),
    ("claude-opus-4", "15.00", "75.00"),
    ("claude-sonnet-4", "3.00", "15.00"),
    ("claude-3-7-sonnet", "3.00", "15.00"),
    ("claude-3-5-sonnet", "3.00", "15.00"),
    ("claude-haiku-4-5", "1.00", "5.00"),
    ("claude-3-5-haiku", "0.80", "4.00"),
];

/// A resolved price table.
#[derive(Clone, Debug, PartialEq)]
pub struct PriceTable {
    currency: String,
    prices: BTreeMap<String, (f64, f64)>,
}

fn amount(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
}

/// An amount as written in statuses (six decimals).
pub fn format_amount(v: f64) -> String {
    format!("{v:.6}")
}

impl PriceTable {
    /// The defaults overridden (or replaced) by `spec`.
    pub fn new(spec: Option<&PricingSpec>) -> Self {
        let mut prices = BTreeMap::new();
        if !spec.is_some_and(|s| s.disable_defaults) {
            for (model, input, output) in DEFAULT_PRICES {
                if let (Some(i), Some(o)) = (amount(input), amount(output)) {
                    prices.insert((*model).to_string(), (i, o));
                }
            }
        }
        for (model, price) in spec.map(|s| &s.models).into_iter().flatten() {
            if let (Some(i), Some(o)) = (amount(&price.input_per_million), amount(&price.output_per_million))
            {
                prices.insert(model.trim().to_string(), (i, o));
            }
        }
        let currency = spec
            .and_then(|s| s.currency.clone())
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| "USD".into());
        Self { currency, prices }
    }

    /// The entry pricing `model`: the exact name, else the longest entry the name starts
    /// with; provider prefixes (`openai/`, Bedrock's `us.anthropic.`) are ignored.
    pub fn lookup(&self, model: &str) -> Option<(&str, f64, f64)> {
        let model = model.trim();
        let bare = model.rsplit('/').next().unwrap_or(model);
        let bare = bare.find("anthropic.").map_or(bare, |i| &bare[i + "anthropic.".len()..]);
        for name in [model, bare] {
            if let Some((k, (i, o))) = self.prices.get_key_value(name) {
                return Some((k, *i, *o));
            }
        }
        self.prices
            .iter()
            .filter(|(k, _)| bare.starts_with(k.as_str()))
            .max_by_key(|(k, _)| k.len())
            .map(|(k, (i, o))| (k.as_str(), *i, *o))
    }

    /// The cost of `input` and `output` tokens on `model`; `None` for a model without a price.
    pub fn cost(&self, model: &str, input: i64, output: i64) -> Option<RunCost> {
        let (entry, ip, op) = self.lookup(model)?;
        let input = ip * input.max(0) as f64 / 1_000_000.0;
        let output = op * output.max(0) as f64 / 1_000_000.0;
        Some(RunCost {
            currency: self.currency.clone(),
            input: format_amount(input),
            output: format_amount(output),
            total: format_amount(input + output),
            priced_as: entry.to_string(),
        })
    }
}

/// Adds run totals to an instance's total (runs in another currency are left out: a table
/// change of currency starts a new total).
pub fn add_to_total(previous: Option<&InstanceCost>, runs: &[&RunCost]) -> Option<InstanceCost> {
    let mut total = previous.cloned();
    for run in runs {
        let Some(amount) = amount(&run.total) else { continue };
        match &mut total {
            Some(t) if t.currency == run.currency => {
                t.total = format_amount(crate::pricing::amount(&t.total).unwrap_or(0.0) + amount);
                t.runs += 1;
            }
            Some(_) => {}
            None => {
                total = Some(InstanceCost {
                    currency: run.currency.clone(),
                    total: format_amount(amount),
                    runs: 1,
                })
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_price_dated_and_prefixed_model_names() {
        let t = PriceTable::new(None);
        assert_eq!(t.lookup("gpt-4o-2024-08-06").map(|p| p.0), Some("gpt-4o"));
        assert_eq!(t.lookup("gpt-4o-mini-2024-07-18").map(|p| p.0), Some("gpt-4o-mini"), "longest match");
        assert_eq!(t.lookup("openai/gpt-4.1").map(|p| p.0), Some("gpt-4.1"));
        assert_eq!(
            t.lookup("us.anthropic.claude-sonnet-4-20250514-v1:0").map(|p| p.0),
            Some("claude-sonnet-4")
        );
        assert_eq!(t.lookup("llama3.2"), None, "local models have no default price");
    }

    #[test]
    fn cost_is_per_million_tokens() {
        let t = PriceTable::new(None);
        let c = t.cost("gpt-4o", 1_000_000, 500_000).unwrap();
        assert_eq!(
            (c.input.as_str(), c.output.as_str(), c.total.as_str()),
            ("2.500000", "5.000000", "7.500000")
        );
        assert_eq!(c.currency, "USD");
    }

    #[test]
    fn the_config_overrides_and_can_replace_the_defaults() {
        let spec = PricingSpec {
            currency: Some("EUR".into()),
            models: BTreeMap::from([
                (
                    "gpt-4o".into(),
                    ModelPrice { input_per_million: "1".into(), output_per_million: "2".into() },
                ),
                (
                    "llama3".into(),
                    ModelPrice { input_per_million: "0".into(), output_per_million: "0".into() },
                ),
            ]),
            disable_defaults: false,
        };
        let t = PriceTable::new(Some(&spec));
        assert_eq!(t.cost("gpt-4o", 1_000_000, 1_000_000).unwrap().total, "3.000000");
        assert_eq!(t.cost("llama3.2", 10, 10).unwrap().total, "0.000000");
        assert_eq!(t.cost("gpt-4o", 1, 1).unwrap().currency, "EUR");
        assert!(t.lookup("claude-opus-4").is_some());
        let only = PriceTable::new(Some(&PricingSpec { disable_defaults: true, ..spec }));
        assert!(only.lookup("claude-opus-4").is_none());
    }

    #[test]
    fn totals_add_up_per_currency() {
        let a = RunCost { currency: "USD".into(), total: "0.250000".into(), ..Default::default() };
        let b = RunCost { currency: "USD".into(), total: "0.500000".into(), ..Default::default() };
        let eur = RunCost { currency: "EUR".into(), total: "9".into(), ..Default::default() };
        let t = add_to_total(None, &[&a, &b, &eur]).unwrap();
        assert_eq!((t.total.as_str(), t.runs), ("0.750000", 2));
        let t = add_to_total(Some(&t), &[&a]).unwrap();
        assert_eq!((t.total.as_str(), t.runs), ("1.000000", 3));
    }
}
