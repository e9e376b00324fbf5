//! `crema-gateway`: one connection per machine, fanned out to many browsers over WebSocket and
//! Server-Sent Events, every shot recorded. Thin: wiring, configuration and the CLI.
//!
//! The gateway is composed in a later step; today the binary only says so.

fn main() -> std::process::ExitCode {
    eprintln!(
        "crema-gateway is not assembled yet: the codecs are in place, the client, recorder and \
         fan-out follow. Try `crema-recorder decode FILE` to look at captured traffic."
    );
    std::process::ExitCode::from(2)
}
