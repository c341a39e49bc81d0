//! Wizard steps shared by the TUI's wizards and `sympozium onboard`: what is asked
//! ([`step`]), the provider and channel questions every wizard shares ([`providers`]), the two
//! wizards ([`pack`], [`onboard`]), plain line prompts when there is no terminal ([`plain`]),
//! and writing the outcome ([`apply`]).

pub mod apply;
pub mod onboard;
pub mod pack;
pub mod plain;
pub mod providers;
pub mod step;

pub use step::{Answers, Check, Choice, Flow, Input, Outcome, Step, Wizard};
