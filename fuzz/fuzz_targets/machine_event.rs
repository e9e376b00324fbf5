//! A machine's socket.io event (name and first argument, as untrusted JSON text) through the
//! machine model: any name, any bytes; errors are values, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meticulous::MachineEvent;

fuzz_target!(|data: &[u8]| {
    // The event name up to the first 0xff, the argument after it.
    let (name, arg) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"sensors"[..], data),
    };
    let (Ok(name), Ok(arg)) = (std::str::from_utf8(name), std::str::from_utf8(arg)) else {
        return;
    };
    for name in [name, "status", "sensors", "notification", "profile", "heater_status", "button"] {
        let _ = MachineEvent::parse(name, arg);
    }
    let _ = meticulous::RawJson::parse(arg);
});
