//! The host side of the contract, generated once: the `provider` export, and the
//! `wasi:config` and `wasi:keyvalue` imports that `crate::caps` implements.

/// An open `wasi:keyvalue` bucket (there is one per account, so it holds nothing).
pub struct Bucket;

wasmtime::component::bindgen!({
    path: [
        "../wit/deps/io.wit",
        "../wit/deps/clocks.wit",
        "../wit/deps/random.wit",
        "../wit/deps/filesystem.wit",
        "../wit/deps/sockets.wit",
        "../wit/deps/cli.wit",
        "../wit/deps/http.wit",
        "../wit/deps/config",
        "../wit/deps/keyvalue",
        "../wit/since_v0.1.0",
    ],
    inline: "
        package tokenhost:host;
        world provider-host {
            import wasi:config/store@0.2.0-rc.1;
            import wasi:keyvalue/store@0.2.0-draft;
            export tokenhost:provider/provider@0.1.0;
        }
    ",
    imports: { default: trappable },
    exports: { default: async },
    with: { "wasi:keyvalue/store.bucket": Bucket },
});
