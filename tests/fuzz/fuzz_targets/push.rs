//! Pushed bodies through the Upstox component (`accept-push`), with a request pending so the
//! body is read in full: any body gives a token or an error variant, never a trap, and a refused
//! push changes nothing stored.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenhost::Error;

fuzz_target!(|body: &[u8]| {
    let world = tokenhost_fuzz::world();
    let plan = world.plans.iter().find(|p| p.account == "upstox").expect("the upstox plan");
    tokenhost_fuzz::pending_request("upstox");
    let before = tokenhost_fuzz::stored("upstox");
    match world.rt.block_on(world.service.push(plan, body)) {
        Ok(_) => {}
        Err(Error::Fault { message, .. }) => panic!("a pushed body broke the provider: {message}"),
        Err(_) => assert_eq!(tokenhost_fuzz::stored("upstox"), before, "a refused push changed the token"),
    }
});
