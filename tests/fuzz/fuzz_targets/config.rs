//! The config file into account plans: any text gives plans or a clear error, never a panic;
//! and a plan's settings against a provider's declared ones give values or an error naming a
//! setting.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenhost::plan::Planner;
use tokenhost::settings::Config;

fuzz_target!(|text: &str| {
    let config = match Config::parse(text, None, Default::default()) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let planner = Planner::new(config, tokenhost_fuzz::state());
    let _ = planner.select(&[]);
    for name in planner.config().account_names() {
        match planner.plan(&name) {
            Ok(plan) => match plan.settings(&tokenhost_fuzz::example_info()) {
                Ok(values) => assert!(values.keys().all(|k| k.starts_with("api-") || k == "mode")),
                Err(e) => assert!(e.to_string().contains("setting"), "{e}"),
            },
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
});
