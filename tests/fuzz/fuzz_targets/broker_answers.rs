//! Broker answers through the real components: the broker answers each request of a provider
//! with fuzzed bytes (status line, headers, body, or anything else). The provider must return
//! one of its error variants (or a token), never trap, never run past its deadline, and the host
//! must keep the old token whenever there is no new one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenhost::Error;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the provider; the rest is the broker's whole answer.
    let Some((&which, answer)) = data.split_first() else { return };
    let world = tokenhost_fuzz::world();
    let mut index = which as usize % world.plans.len();
    // The TOTP providers wait out the last seconds of a window; do not spend them here.
    if index >= 3 && tokenhost_fuzz::totp_would_wait() {
        index %= 3;
    }
    let plan = &world.plans[index];
    world.broker.answer(answer);
    let before = tokenhost_fuzz::stored(&plan.account);
    match world.rt.block_on(world.service.run(plan, true)) {
        Ok(_) => assert_ne!(tokenhost_fuzz::stored(&plan.account), before, "refreshed, yet nothing stored"),
        Err(Error::Fault { message, .. }) => {
            panic!("{}: a broker's answer broke the provider: {message}", plan.account)
        }
        Err(_) => {
            assert_eq!(tokenhost_fuzz::stored(&plan.account), before, "{}: the token changed", plan.account)
        }
    }
});
